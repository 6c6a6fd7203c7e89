"""Lab 04 — SGLang: constrained decoding, RadixAttention, structured programs: your code.

Each ``TODO(lab04 task K)`` is yours to write: ``course test lab04 --task K`` checks it,
``course hint lab04 --task K`` gives a hint (``--level 2`` a nearer one).
"""
