"""Lab 03 — llama.cpp: the GGUF format, converting, quantizing, and running on a CPU: your code.

Each ``TODO(lab03 task K)`` is yours to write: ``course test lab03 --task K`` checks it,
``course hint lab03 --task K`` gives a hint (``--level 2`` a nearer one).
"""
