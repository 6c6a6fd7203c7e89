"""Lab 05 — Benchmark: compare frameworks on throughput, latency and memory, and choose: your code.

Each ``TODO(lab05 task K)`` is yours to write: ``course test lab05 --task K`` checks it,
``course hint lab05 --task K`` gives a hint (``--level 2`` a nearer one).
"""
