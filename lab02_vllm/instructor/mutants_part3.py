"""Plausible wrong answers to lab02 part 3's reference, task 13 (tensor parallelism; instructor-only).

Same format as ``mutants.py``: each entry edits ``solution/<file>`` once into a mistake a student
could make; ``course mutants lab02 --task 13`` runs task 13's tests on each.
"""

MUTANTS = [
    {"task": 13, "file": "parallel.py",
     "find": "            weight = weight.narrow(0, rank * q_rows, q_rows)",
     "replace": "            weight = weight.narrow(1, rank * q_rows, q_rows)",
     "why": "q_proj split along its columns (inputs) instead of its rows (output heads)"},
    {"task": 13, "file": "parallel.py",
     "find": "            weight = weight.narrow(1, rank * columns, columns)",
     "replace": "            weight = weight.narrow(0, rank * columns, columns).t()",
     "why": "down_proj split like a column-parallel layer (its rows), transposed to fit"},
    {"task": 13, "file": "parallel.py",
     "find": "    kv_rank = rank // replicas\n",
     "replace": "    kv_rank = rank % config.num_key_value_heads\n",
     "why": "KV heads dealt round-robin: a rank holds a KV head its query heads do not read"},
    {"task": 13, "file": "parallel.py",
     "find": "    replicas = max(1, tensor_parallel_size // config.num_key_value_heads)\n",
     "replace": "    replicas = 1\n",
     "why": "KV heads never replicated: past K ranks a rank slices past the last KV head"},
    {"task": 13, "file": "parallel.py",
     "find": "        num_key_value_heads=max(1, config.num_key_value_heads // n),",
     "replace": "        num_key_value_heads=config.num_key_value_heads,",
     "why": "every rank keeps all KV heads' shape (the cache is not split)"},
    {"task": 13, "file": "parallel.py",
     "find": "        layer.down_proj = RowParallelLinear(local.intermediate_size, config.hidden_size)\n",
     "replace": "        layer.down_proj = nn.Linear(local.intermediate_size, config.hidden_size, bias=False)\n",
     "why": "no all-reduce after the MLP: each rank adds only its partial sum"},
    {"task": 13, "file": "parallel.py",
     "find": "            dist.all_reduce(y)\n",
     "replace": "            dist.all_reduce(y)\n            y = y / dist.get_world_size()\n",
     "why": "the partial sums averaged instead of added"},
    {"task": 13, "file": "parallel.py",
     "find": "    if (n % kv_heads if n >= kv_heads else kv_heads % n) != 0:",
     "replace": "    if n < kv_heads and kv_heads % n != 0:",
     "why": "only a split of the KV heads checked: 6 ranks over 4 KV heads (no whole replication) accepted"},
    {"task": 13, "file": "parallel.py",
     "find": "        raise ValueError(f\"Total number of attention heads ({heads}) must be divisible by tensor \"\n                         f\"parallel size ({n}).\")",
     "replace": "        raise ValueError(f\"tensor_parallel_size={n} must divide num_attention_heads={heads}\")",
     "why": "a message of our own instead of vLLM's wording"},
]
