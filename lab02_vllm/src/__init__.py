"""Lab 02 — vLLM from the inside: your code.

Each ``TODO(lab02 task K)`` is yours to write: ``course test lab02 --task K`` checks it,
``course hint lab02 --task K`` gives a hint (``--level 2`` a nearer one).
"""
