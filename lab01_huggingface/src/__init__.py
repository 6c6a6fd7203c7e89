"""Lab 01 — Hugging Face transformers by hand: your code.

Each ``TODO(lab01 task K)`` is yours to write: ``course test lab01 --task K`` checks it,
``course hint lab01 --task K`` gives a hint (``--level 2`` a nearer one).
"""
