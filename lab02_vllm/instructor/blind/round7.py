"""Blind round 7 for lab02_vllm: plausible mistakes written from the README, docstrings and solution only (reviewer had not read the tests)."""

MUTANTS = [
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'context_lens.append(end)',
        'replace': 'context_lens.append(len(seq))',
        'why': 'context length taken as len(seq) instead of where the chunk ends: a prefill chunk attends to (unwritten) slots past its end',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n'
            ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [3, 9, 1], 8\n"
            ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [4, 6, 11], 4\n"
            ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [8, 2], 5\n"
            ">>> ids, pos, meta, rows = r.prepare([a, b, c], [1, 6, 2])  # README task 3's picture\n"
            '>>> assert meta.context_lens_list == [9, 10, 7] and meta.context_lens.tolist() == [9, 10, 7]'
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'if end == len(seq):',
        'replace': 'if n == 1 or end == len(seq):',
        'why': 'treats every one-token entry as a decode and samples it, so a one-token chunk in the middle of a prompt (budget or threshold 1) gets logits and a token',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n'
            ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [3, 9, 1], 8\n"
            ">>> d = Sequence('d', list(range(20, 30)), SamplingParams()); d.block_table, d.num_computed_tokens = [5, 6, 7], 3\n"
            '>>> ids, pos, meta, rows = r.prepare([a, d], [1, 1])  # d: one token of its prompt, 6 more to go\n'
            '>>> assert rows.tolist() == [0]'
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'logits_indices.append(starts[-1] - 1)',
        'replace': 'logits_indices.append(starts[-2])',
        'why': 'samples the first row of a final prefill chunk instead of its last (right only for decodes and one-token chunks)',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n'
            ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [3, 9, 1], 8\n"
            ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [4, 6, 11], 4\n"
            ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [8, 2], 5\n"
            ">>> ids, pos, meta, rows = r.prepare([a, b, c], [1, 6, 2])  # README task 3's picture\n"
            '>>> assert rows.tolist() == [0, 8]'
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'positions.extend(range(start, end))',
        'replace': 'positions.extend(range(n))',
        'why': "positions counted from the chunk's start, not from num_computed_tokens: wrong rotary angles for a later chunk or a decode",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n'
            ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [3, 9, 1], 8\n"
            ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [4, 6, 11], 4\n"
            ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [8, 2], 5\n"
            ">>> ids, pos, meta, rows = r.prepare([a, b, c], [1, 6, 2])  # README task 3's picture\n"
            '>>> assert pos.tolist() == [8, 4, 5, 6, 7, 8, 9, 5, 6]'
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'input_ids.extend(seq.token_ids[start:end])',
        'replace': 'input_ids.extend(seq.token_ids[-n:])',
        'why': "feeds the sequence's last n tokens (nano-vllm's 'last token' habit): right for decodes and final chunks, wrong for a chunk in the middle of a prompt",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n'
            ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [3, 9, 1], 8\n"
            ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [4, 6, 11], 4\n"
            ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [8, 2], 5\n"
            ">>> ids, pos, meta, rows = r.prepare([a, b, c], [1, 6, 2])  # README task 3's picture\n"
            '>>> assert ids.tolist() == [18, 34, 35, 36, 37, 38, 39, 65, 66]'
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'slots.extend(seq.block_table[i // bs] * bs + i % bs for i in range(start, end))',
        'replace': 'slots.extend(seq.block_table[-1] * bs + i % bs for i in range(start, end))',
        'why': "slot taken in the table's last block (the decode formula) for every token: a chunk spanning blocks overwrites its own last block",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n'
            ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [3, 9, 1], 8\n"
            ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [4, 6, 11], 4\n"
            ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [8, 2], 5\n"
            ">>> ids, pos, meta, rows = r.prepare([a, b, c], [1, 6, 2])  # README task 3's picture\n"
            '>>> assert meta.slot_mapping.tolist() == [4, 24, 25, 26, 27, 44, 45, 9, 10]'
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'is_prefill=any(n > 1 for n in num_new_tokens)',
        'replace': 'is_prefill=any(seq.num_computed_tokens == 0 for seq in seqs)',
        'why': "is_prefill read as 'some sequence starts from scratch': a step of later chunks (after a cached prefix or earlier chunks) goes to decode attention",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n'
            ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [3, 9, 1], 8\n"
            ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [4, 6, 11], 4\n"
            ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [8, 2], 5\n"
            ">>> ids, pos, meta, rows = r.prepare([a, b, c], [1, 6, 2])  # README task 3's picture\n"
            '>>> assert meta.is_prefill'
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'query_start_loc=self._tensor(starts)',
        'replace': 'query_start_loc=self._tensor(starts[1:])',
        'why': "query_start_loc given as the chunks' ends (num_seqs entries) instead of vLLM's num_seqs + 1 starts beginning with 0",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n'
            ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [3, 9, 1], 8\n"
            ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [4, 6, 11], 4\n"
            ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [8, 2], 5\n"
            ">>> ids, pos, meta, rows = r.prepare([a, b, c], [1, 6, 2])  # README task 3's picture\n"
            '>>> assert meta.query_start_loc.tolist() == [0, 1, 7, 9]'
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': (
            'write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n'
            '        out = paged_attention(q, k_cache, v_cache, meta, self.scale)'
        ),
        'replace': (
            'out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n'
            '        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)'
        ),
        'why': "attends before storing this step's keys and values: each new token misses itself and the rest of its chunk",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=9))[0].outputs[0]\n"
            ">>> assert out.token_ids == [296, 475, 17, 478, 470, 296, 474, 476, 19]  # transformers' greedy"
        ),
    },
    {
        'task': 3,
        'file': 'model_runner.py',
        'find': 'return self.o_proj(out.reshape(num_tokens, self.q_size))',
        'replace': 'return self.o_proj(out.transpose(1, 2).reshape(num_tokens, self.q_size))',
        'why': "transposes heads and head_dim before o_proj (SDPA's (heads, tokens, dim) habit): o_proj reads the features in the wrong order",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=9))[0].outputs[0]\n"
            ">>> assert out.token_ids == [296, 475, 17, 478, 470, 296, 474, 476, 19]  # transformers' greedy"
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': 'victim = self.running.pop()  # the newest',
        'replace': (
            'victim = seq  # the one that cannot grow\n'
            '                self.running.remove(seq)'
        ),
        'why': "preempts the sequence that cannot grow instead of the newest running one (vLLM pops running's end): the oldest request is thrown back",
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(4, 2, watermark=0.0); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a, b = new('a', 4), new('b', 4); s.add(a); s.add(b); _ = run(s)\n"
            ">>> c = new('c', 1); s.add(c)\n"
            '>>> out = run(s)  # a needs a block, the pool is full: b, the newest running, is preempted\n'
            '>>> assert out.preempted == [b] and out.seqs == [a]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'out.preempted.append(victim)\n'
            '                if victim is seq:'
        ),
        'replace': 'if victim is seq:',
        'why': 'preempts without recording it in the output: the step then goes on to admit waiting sequences although one was just preempted',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(4, 2, watermark=0.0); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a, b = new('a', 4), new('b', 4); s.add(a); s.add(b); _ = run(s)\n"
            ">>> c = new('c', 1); s.add(c)\n"
            '>>> out = run(s)  # a needs a block, the pool is full: b, the newest running, is preempted\n'
            '>>> assert out.preempted == [b] and out.seqs == [a]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'if out.preempted:\n'
            '            return out\n'
            '        while self.waiting'
        ),
        'replace': 'while self.waiting',
        'why': 'admits waiting sequences in a step that preempted one (vLLM admits none then): with a small budget the victim is readmitted in the same step',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(5, 2, watermark=0.0); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=5)\n'
            ">>> a, b = new('a', 4), new('b', 4); s.add(a); s.add(b); _ = run(s); _ = run(s)\n"
            '>>> out = run(s)  # a needs a block: b is preempted; 2 blocks are then free, enough for a 4-token chunk of b\n'
            '>>> assert out.preempted == [b] and out.seqs == [a] and list(s.waiting) == [b]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': 'self.waiting.appendleft(seq)',
        'replace': 'self.waiting.append(seq)',
        'why': 'puts a preempted sequence at the back of the waiting queue: newer requests overtake it (vLLM prepends it)',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(4, 2, watermark=0.0); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a, b = new('a', 4), new('b', 4); s.add(a); s.add(b); _ = run(s)\n"
            ">>> c = new('c', 1); s.add(c)\n"
            '>>> out = run(s)  # a needs a block, the pool is full: b, the newest running, is preempted\n'
            '>>> assert list(s.waiting) == [b, c]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'seq.num_preemptions += 1\n'
            '        self.num_preemptions += 1'
        ),
        'replace': 'self.num_preemptions += 1',
        'why': "counts the preemption in the scheduler's total only, not in the sequence's own counter the docstring asks for",
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(4, 2, watermark=0.0); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a, b = new('a', 4), new('b', 4); s.add(a); s.add(b); _ = run(s)\n"
            ">>> c = new('c', 1); s.add(c)\n"
            '>>> out = run(s)  # a needs a block, the pool is full: b, the newest running, is preempted\n'
            '>>> assert s.num_preemptions == 1 and b.num_preemptions == 1'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'self.block_manager.free(seq)\n'
            '        seq.status = SequenceStatus.WAITING'
        ),
        'replace': (
            'seq.block_table, seq.num_computed_tokens = [], 0  # forget the KV\n'
            '        seq.status = SequenceStatus.WAITING'
        ),
        'why': "preemption forgets the victim's table instead of freeing its blocks: they leak, the preempting sequence still finds none",
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(4, 2, watermark=0.0); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a, b = new('a', 4), new('b', 4); s.add(a); s.add(b); _ = run(s)\n"
            ">>> c = new('c', 1); s.add(c)\n"
            '>>> out = run(s)  # a needs a block, the pool is full: b, the newest running, is preempted\n'
            '>>> assert bm.num_free_blocks == 1 and out.seqs == [a]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': 'for queue in (self.running, self.waiting):',
        'replace': 'for queue in (self.running,):',
        'why': 'finish removes the sequence from running only: an aborted waiting request stays queued and is scheduled later',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> s = Scheduler(BlockManager(8, 2), max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a = new('a', 4); s.add(a); aborted = s.abort('a')\n"
            '>>> assert aborted == [a] and not s.has_unfinished() and not run(s).seqs'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': 'len(self.running) < self.max_num_seqs:',
        'replace': 'len(self.running) <= self.max_num_seqs:',
        'why': 'off by one on max_num_seqs: admits one sequence more than allowed',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> s = Scheduler(BlockManager(16, 2), max_num_seqs=1, max_num_batched_tokens=16)\n'
            ">>> a, b = new('a', 3), new('b', 3); s.add(a); s.add(b)\n"
            '>>> assert run(s).seqs == [a] and run(s).seqs == [a]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'num_new = len(seq) - computed\n'
            '            if 0 < self.long_prefill_token_threshold < num_new:\n'
            '                num_new = self.long_prefill_token_threshold\n'
        ),
        'replace': (
            'num_new = len(seq) - computed\n'
        ),
        'why': 'long_prefill_token_threshold applied to running sequences only (the given _cap) and not on admission: one new long prompt takes the whole budget',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> s = Scheduler(BlockManager(32, 2), max_num_seqs=4, max_num_batched_tokens=16, long_prefill_token_threshold=4)\n'
            ">>> a, b = new('a', 10), new('b', 10); s.add(a); s.add(b)\n"
            '>>> assert run(s).num_new_tokens == [4, 4]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'if 0 < self.long_prefill_token_threshold < num_new:\n'
            '                num_new = self.long_prefill_token_threshold\n'
            '            if not self.enable_chunked_prefill and num_new > token_budget:\n'
            '                bm.free(seq)\n'
            '                break\n'
        ),
        'replace': (
            'if not self.enable_chunked_prefill and num_new > token_budget:\n'
            '                bm.free(seq)\n'
            '                break\n'
            '            if 0 < self.long_prefill_token_threshold < num_new:\n'
            '                num_new = self.long_prefill_token_threshold\n'
        ),
        'why': 'with chunking off, compares the whole prompt with the budget before the threshold caps it (vLLM caps first): a prompt the threshold would fit never runs',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> s = Scheduler(BlockManager(32, 2), max_num_seqs=4, max_num_batched_tokens=6, long_prefill_token_threshold=4, enable_chunked_prefill=False)\n'
            ">>> a = new('a', 10); s.add(a)\n"
            '>>> assert run(s).num_new_tokens == [4]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': 'if not self.enable_chunked_prefill and num_new > token_budget:',
        'replace': 'if not self.enable_chunked_prefill and num_new >= token_budget:',
        'why': 'with chunking off, a prompt that exactly fills the budget left is refused (off by one)',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> s = Scheduler(BlockManager(32, 2), max_num_seqs=4, max_num_batched_tokens=8, enable_chunked_prefill=False)\n'
            ">>> a = new('a', 8); s.add(a)\n"
            '>>> assert run(s).num_new_tokens == [8]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'if not self.enable_chunked_prefill and num_new > token_budget:\n'
            '                bm.free(seq)\n'
            '                break'
        ),
        'replace': (
            'if not self.enable_chunked_prefill and num_new > token_budget:\n'
            '                break'
        ),
        'why': 'with chunking off, a prompt that does not fit keeps the cached-prefix blocks allocate_cached_prefix gave it while it waits (and gets them again next step)',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(16, 2, enable_prefix_caching=True)\n'
            '>>> s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=10, enable_chunked_prefill=False)\n'
            ">>> x = Sequence('x', list(range(1, 10)), SamplingParams()); s.add(x); _ = run(s); s.finish(x, 'stop')\n"
            ">>> y = Sequence('y', list(range(1, 21)), SamplingParams()); s.add(y)\n"
            '>>> out = run(s)  # y: 8 tokens cached, 12 left > the budget of 10\n'
            '>>> assert not out.seqs and y.block_table == [] and bm.num_free_blocks == 16'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'if not bm.can_allocate_slots(seq, num_new, new=True):\n'
            '                bm.free(seq)\n'
            '                break'
        ),
        'replace': (
            'if not bm.can_allocate_slots(seq, num_new, new=True):\n'
            '                break'
        ),
        'why': 'a waiting sequence whose chunk does not fit the pool keeps its cached-prefix blocks while it waits',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(6, 2, watermark=0.0, enable_prefix_caching=True)\n'
            '>>> s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=32)\n'
            ">>> x = Sequence('x', list(range(1, 10)), SamplingParams()); s.add(x); _ = run(s); s.finish(x, 'stop')\n"
            ">>> y = Sequence('y', list(range(1, 21)), SamplingParams()); s.add(y)\n"
            '>>> out = run(s)  # y: 4 blocks cached, 6 more needed, 2 left\n'
            '>>> assert not out.seqs and y.block_table == [] and bm.num_free_blocks == 6'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': 'bm.can_allocate_slots(seq, num_new, new=True)',
        'replace': 'bm.can_allocate_slots(seq, num_new)',
        'why': 'admits a waiting sequence as if it were running: the watermark is not kept free for the running ones',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(10, 1, watermark=0.2); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a = new('a', 3); s.add(a); _ = run(s)\n"
            ">>> b = new('b', 6); s.add(b)\n"
            '>>> assert run(s).seqs == [a]  # b would leave 0 free blocks, below the watermark of 2'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': 'num_new = self._cap(len(seq) - seq.num_computed_tokens, token_budget)',
        'replace': 'num_new = self._cap(1, token_budget)',
        'why': 'gives every running sequence one token (running = decoding): a prompt admitted with a partial chunk then crawls one token per step',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> s = Scheduler(BlockManager(32, 2), max_num_seqs=4, max_num_batched_tokens=4)\n'
            ">>> a = new('a', 10); s.add(a)\n"
            '>>> assert [run(s).num_new_tokens for _ in range(4)] == [[4], [4], [2], [1]]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'out.new_seqs.append(seq)\n'
            '            token_budget -= num_new\n'
            '        return out'
        ),
        'replace': (
            'token_budget -= num_new\n'
            '        return out'
        ),
        'why': "does not list admitted sequences in new_seqs: the engine's prompt-token and prefix-cache counters never see them",
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> s = Scheduler(BlockManager(32, 2), max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a, b = new('a', 3), new('b', 3); s.add(a); out = run(s); s.add(b)\n"
            '>>> assert out.new_seqs == [a] and run(s).new_seqs == [b]'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'copy = bm.allocate_slots(seq, num_new)\n'
            '                if copy is not None:\n'
            '                    out.copies.append(copy)\n'
        ),
        'replace': (
            'bm.allocate_slots(seq, num_new)\n'
        ),
        'why': "drops the copy-on-write pair of a running sequence: the model runner never copies the shared block's KV into the private one",
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> bm = BlockManager(8, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16)\n'
            ">>> a = new('a', 2); s.add(a); _ = run(s)\n"
            ">>> child = new('a', 2); child.token_ids = list(a.token_ids); bm.fork(a, child)\n"
            '>>> child.status = a.status; s.running.append(child); shared = a.block_table[0]\n'
            '>>> out = run(s)  # a writes its third token into the block it shares with child\n'
            '>>> assert out.copies == [(shared, a.block_table[0])] and a.block_table[0] != shared'
        ),
    },
    {
        'task': 4,
        'file': 'scheduler.py',
        'find': (
            'num_new = min(num_new, token_budget)\n'
            '            if not bm.can_allocate_slots'
        ),
        'replace': 'if not bm.can_allocate_slots',
        'why': 'forgets to chunk an admitted prompt to the budget left: a long prompt overruns max_num_batched_tokens',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> def run(s):  # one step as the engine runs it: computed tokens advance, a completed sequence gets a token\n'
            '...     out = s.schedule()\n'
            '...     for q, n in zip(out.seqs, out.num_new_tokens):\n'
            '...         q.num_computed_tokens += n\n'
            '...         if q.num_computed_tokens == len(q):\n'
            '...             q.append_token(7)\n'
            '...     return out\n'
            '>>> new = lambda name, n: Sequence(name, list(range(100, 100 + n)), SamplingParams())\n'
            '>>> s = Scheduler(BlockManager(32, 2), max_num_seqs=4, max_num_batched_tokens=4)\n'
            ">>> a = new('a', 10); s.add(a)\n"
            '>>> assert run(s).num_new_tokens == [4]'
        ),
    },
    {
        'task': 4,
        'file': 'block_manager.py',
        'find': 'needed = missing + int(shared)',
        'replace': 'needed = missing',
        'why': 'can_allocate_slots forgets the copy-on-write block: a sequence writing into a shared last block is told yes on a full pool',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> new = lambda name, tokens: Sequence(name, list(tokens), SamplingParams())\n'
            '>>> bm = BlockManager(2, 4, watermark=0.0)\n'
            ">>> a = new('a', range(2)); _ = bm.allocate_slots(a, 2); a.num_computed_tokens = 2; a.append_token(9)\n"
            ">>> b = new('b', a.token_ids); bm.fork(a, b); o = new('o', range(3)); _ = bm.allocate_slots(o, 3)\n"
            '>>> assert bm.num_free_blocks == 0 and not bm.can_allocate_slots(a, 1)'
        ),
    },
    {
        'task': 4,
        'file': 'block_manager.py',
        'find': 'if not new or self.num_used_blocks == len(seq.block_table):',
        'replace': 'if not new or self.num_free_blocks == self.num_blocks:',
        'why': "waives the watermark only on an untouched pool (task 1's test), not for a lone sequence holding its own cached prefix: a long prompt with a prefix hit is refused forever",
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> new = lambda name, tokens: Sequence(name, list(tokens), SamplingParams())\n'
            '>>> bm = BlockManager(10, 2, watermark=0.2, enable_prefix_caching=True)\n'
            ">>> x = new('x', range(1, 10)); _ = bm.allocate_cached_prefix(x); _ = bm.allocate_slots(x, 9); bm.free(x)\n"
            ">>> y = new('y', list(range(1, 9)) + list(range(50, 62)))\n"
            '>>> assert bm.allocate_cached_prefix(y) == 8 and bm.can_allocate_slots(y, 12, new=True)'
        ),
    },
    {
        'task': 4,
        'file': 'block_manager.py',
        'find': 'return needed <= self.num_free_blocks - self.watermark_blocks',
        'replace': 'return needed < self.num_free_blocks - self.watermark_blocks',
        'why': 'off by one at the watermark: a new sequence that leaves exactly watermark_blocks free is refused',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> new = lambda name, tokens: Sequence(name, list(tokens), SamplingParams())\n'
            ">>> bm = BlockManager(10, 1, watermark=0.2); a = new('a', range(2)); _ = bm.allocate_slots(a, 2)\n"
            ">>> assert bm.can_allocate_slots(new('b', range(6)), 6, new=True)"
        ),
    },
    {
        'task': 4,
        'file': 'block_manager.py',
        'find': 'if not new or self.num_used_blocks == len(seq.block_table):',
        'replace': 'if self.num_used_blocks == len(seq.block_table):',
        'why': 'keeps the watermark free against running sequences too: a running one is preempted while watermark blocks are still free',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> new = lambda name, tokens: Sequence(name, list(tokens), SamplingParams())\n'
            '>>> bm = BlockManager(10, 1, watermark=0.2)\n'
            ">>> a = new('a', range(8)); _ = bm.allocate_slots(a, 8); a.num_computed_tokens = 8; a.append_token(9)\n"
            ">>> b = new('b', range(1)); _ = bm.allocate_slots(b, 1)\n"
            '>>> assert bm.num_free_blocks == 1 and bm.can_allocate_slots(a, 1)'
        ),
    },
    {
        'task': 4,
        'file': 'block_manager.py',
        'find': 'for index in range(seq.num_computed_tokens // self.block_size, end // self.block_size):',
        'replace': 'for index in range(seq.num_computed_tokens // self.block_size, len(seq.block_table)):',
        'why': 'reports every block the chunk writes into as full, the partial last one too: it is hashed with too few tokens and keeps that hash when it fills, so it is never found',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> new = lambda name, tokens: Sequence(name, list(tokens), SamplingParams())\n'
            '>>> bm = BlockManager(10, 2, enable_prefix_caching=True)\n'
            ">>> x = new('x', range(1, 6)); _ = bm.allocate_slots(x, 5); x.num_computed_tokens = 5\n"
            '>>> x.append_token(6); _ = bm.allocate_slots(x, 1); x.num_computed_tokens = 6; bm.free(x)\n'
            ">>> assert bm.allocate_cached_prefix(new('y', range(1, 8))) == 6"
        ),
    },
    {
        'task': 4,
        'file': 'block_manager.py',
        'find': 'range(seq.num_computed_tokens // self.block_size, end // self.block_size)',
        'replace': 'range(seq.num_computed_tokens // self.block_size, (end - 1) // self.block_size)',
        'why': 'off by one on the blocks a chunk fills: a chunk ending exactly at a block boundary does not report its last block, which never enters the prefix cache',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> new = lambda name, tokens: Sequence(name, list(tokens), SamplingParams())\n'
            '>>> bm = BlockManager(10, 2, enable_prefix_caching=True)\n'
            ">>> x = new('x', range(1, 5)); _ = bm.allocate_slots(x, 4); x.num_computed_tokens = 4; bm.free(x)\n"
            ">>> assert bm.allocate_cached_prefix(new('y', range(1, 6))) == 4"
        ),
    },
    {
        'task': 4,
        'file': 'block_manager.py',
        'find': (
            'self._release_block(old)\n'
            '            copy = (old, seq.block_table[index])'
        ),
        'replace': 'copy = (old, seq.block_table[index])',
        'why': 'copy-on-write takes a private block but keeps its reference to the shared one: the shared block never returns to the pool',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> new = lambda name, tokens: Sequence(name, list(tokens), SamplingParams())\n'
            '>>> bm = BlockManager(4, 4)\n'
            ">>> a = new('a', range(2)); _ = bm.allocate_slots(a, 2); a.num_computed_tokens = 2; a.append_token(9)\n"
            ">>> b = new('b', a.token_ids); bm.fork(a, b); old = a.block_table[0]\n"
            '>>> pair = bm.allocate_slots(a, 1)  # a writes its third token into the block it shares with b\n'
            '>>> bm.free(a); bm.free(b)\n'
            '>>> assert bm.blocks[old].ref_count == 0 and bm.num_free_blocks == 4'
        ),
    },
    {
        'task': 4,
        'file': 'block_manager.py',
        'find': 'copy = (old, seq.block_table[index])',
        'replace': 'copy = (seq.block_table[index], old)',
        'why': 'copy-on-write pair returned as (new, old): the runner copies the empty private block over the shared one',
        'check': (
            '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
            '>>> new = lambda name, tokens: Sequence(name, list(tokens), SamplingParams())\n'
            '>>> bm = BlockManager(4, 4)\n'
            ">>> a = new('a', range(2)); _ = bm.allocate_slots(a, 2); a.num_computed_tokens = 2; a.append_token(9)\n"
            ">>> b = new('b', a.token_ids); bm.fork(a, b); old = a.block_table[0]\n"
            '>>> pair = bm.allocate_slots(a, 1)  # a writes its third token into the block it shares with b\n'
            '>>> assert pair == (old, a.block_table[0]) and pair[0] != pair[1]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': (
            'if all(s.params.greedy and s.params.logprobs is None and s.num_output_tokens >= s.params.min_tokens\n'
            '           for s in seqs):'
        ),
        'replace': (
            'if all(s.params.greedy and s.params.logprobs is None\n'
            '           for s in seqs):'
        ),
        'why': 'the all-greedy shortcut forgets min_tokens: a greedy request can stop on eos before min_tokens',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[5.0, 1.0, 0.0, 0.0, 0.0]])  # id 0 is the eos\n'
            ">>> s = Sequence('r', [1], SP(temperature=0, min_tokens=1))\n"
            '>>> assert sample_tokens(logits, [s], {0}) == [1]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'banned = set(params.stop_token_ids) | stop_ids  # eos too under ignore_eos, as vLLM',
        'replace': 'banned = set(params.stop_token_ids) | (set() if params.ignore_eos else stop_ids)',
        'why': 'exempts the eos ids from the min_tokens ban under ignore_eos (vLLM bans all_stop_token_ids whatever ignore_eos says)',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[5.0, 1.0, 0.0, 0.0, 0.0]])  # id 0 is the eos\n'
            ">>> s = Sequence('r', [1], SP(temperature=0, min_tokens=2, ignore_eos=True))\n"
            '>>> assert sample_tokens(logits, [s], {0}) == [1]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'banned = set(params.stop_token_ids) | stop_ids  # eos too under ignore_eos, as vLLM',
        'replace': 'banned = set(stop_ids)',
        'why': "min_tokens bans only the eos ids, not the request's stop_token_ids",
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[0.0, 1.0, 0.0, 5.0, 0.0]])\n'
            ">>> s = Sequence('r', [1], SP(temperature=0, min_tokens=1, stop_token_ids=[3]))\n"
            '>>> assert sample_tokens(logits, [s], {0}) == [1]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if seq.num_output_tokens < params.min_tokens:',
        'replace': 'if seq.num_output_tokens <= params.min_tokens:',
        'why': 'off by one on min_tokens in the sampler: eos is still banned for the token after the first min_tokens (seen on sampled rows, the greedy shortcut hides it)',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[30.0, 0.0, 0.0, 0.0, 0.0]])\n'
            ">>> s = Sequence('r', [1], SP(temperature=1.0, min_tokens=1)); s.append_token(3)  # min_tokens reached\n"
            '>>> assert sample_tokens(logits, [s], {0}, torch.Generator().manual_seed(0)) == [0]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'sorted_scores, order = torch.sort(scores, descending=True)',
        'replace': 'sorted_scores, order = torch.sort(scores * params.temperature, descending=True)',
        'why': "top-p computed on the model's distribution before temperature (vLLM applies temperature first, then top-k and top-p)",
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[2.0, 1.0, 0.0, -9.0, -9.0]])\n'
            ">>> seqs = [Sequence('r', [1], SP(temperature=0.5, top_p=0.8)) for _ in range(200)]\n"
            '>>> toks = sample_tokens(logits.repeat(200, 1), seqs, {4}, torch.Generator().manual_seed(0))\n'
            '>>> assert set(toks) == {0}  # after T=0.5 token 0 alone has 0.87 >= 0.8'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'scores = scores.masked_fill(scores < kth, float("-inf"))',
        'replace': 'scores = scores.masked_fill(scores <= kth, float("-inf"))',
        'why': 'top-k masks the k-th largest logit too: keeps k - 1 tokens (top_k=1 leaves nothing)',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[3.0, 2.9, 0.0, 0.0, 0.0]])\n'
            ">>> seqs = [Sequence('r', [1], SP(top_k=2)) for _ in range(200)]\n"
            '>>> toks = sample_tokens(logits.repeat(200, 1), seqs, {4}, torch.Generator().manual_seed(0))\n'
            '>>> assert set(toks) == {0, 1}'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'drop = probs.cumsum(dim=-1) - probs > params.top_p',
        'replace': 'drop = probs.cumsum(dim=-1) > params.top_p',
        'why': 'top-p drops the token whose cumulative probability crosses top_p (keeps a set below top_p, none at all when the first token alone exceeds it)',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[0.4, 0.35, 0.25, 0.0, 0.0]]).log()\n'
            ">>> seqs = [Sequence('r', [1], SP(top_p=0.5)) for _ in range(200)]\n"
            '>>> toks = sample_tokens(logits.repeat(200, 1), seqs, {4}, torch.Generator().manual_seed(0))\n'
            '>>> assert set(toks) == {0, 1}'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'generator=seq.generator or default_generator',
        'replace': 'generator=default_generator',
        'why': "ignores the request's own seeded generator: a seeded request's tokens depend on what else shares its batch",
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.zeros(30, 5)\n'
            '>>> def draw(engine_seed):\n'
            "...     seqs = [Sequence('r', [1], SP(seed=i)) for i in range(30)]\n"
            '...     for i, s in enumerate(seqs):\n'
            '...         s.generator = torch.Generator().manual_seed(i)\n'
            '...     return sample_tokens(logits, seqs, {4}, torch.Generator().manual_seed(engine_seed))\n'
            '>>> assert draw(100) == draw(200)'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'logprobs = torch.log_softmax(row, dim=-1)',
        'replace': 'logprobs = torch.log_softmax(scores, dim=-1)',
        'why': "logprobs taken from the processed scores (after temperature, top-k/top-p, bans) instead of the model's raw logits (vLLM's raw_logprobs)",
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -2.0]])\n'
            ">>> s = Sequence('r', [1], SP(temperature=0.5, logprobs=1)); s.generator = torch.Generator().manual_seed(0)\n"
            '>>> tok = sample_tokens(logits, [s], {4})[0]; raw = torch.log_softmax(logits[0], -1)\n'
            '>>> assert tok in s.logprobs[0] and all(abs(v - float(raw[t])) < 1e-6 for t, v in s.logprobs[0].items())'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'seq.logprobs.append({t: float(logprobs[t]) for t in [token, *top]})',
        'replace': 'seq.logprobs.append({t: float(logprobs[t]) for t in top})',
        'why': 'records only the top-n alternatives, not the chosen token: logprobs=0 gives empty entries, a sampled token outside the top-n has no logprob',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[5.0, 1.0, 0.0, 0.0, 0.0]])  # id 0 is the eos\n'
            ">>> s = Sequence('r', [1], SP(temperature=0, logprobs=0))\n"
            '>>> assert sample_tokens(logits, [s], {4}) == [0] and list(s.logprobs[0]) == [0]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if all(s.params.greedy and s.params.logprobs is None and s.num_output_tokens >= s.params.min_tokens',
        'replace': 'if all(s.params.greedy and s.num_output_tokens >= s.params.min_tokens',
        'why': 'the all-greedy shortcut is taken even when a request asks for logprobs: greedy requests get none',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[5.0, 1.0, 0.0, 0.0, 0.0]])  # id 0 is the eos\n'
            ">>> s = Sequence('r', [1], SP(temperature=0, logprobs=2))\n"
            '>>> assert sample_tokens(logits, [s], {4}) == [0] and len(s.logprobs) == 1 and set(s.logprobs[0]) == {0, 1}'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'return processed.argmax(dim=-1).tolist()',
        'replace': 'return logits.argmax(dim=-1).tolist()',
        'why': 'the all-greedy shortcut takes the argmax of the raw logits: allowed_token_ids and logit_bias are ignored for greedy batches',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.tensor([[5.0, 1.0, 0.0, 0.0, 0.0]])  # id 0 is the eos\n'
            ">>> s = Sequence('r', [1], SP(temperature=0, allowed_token_ids=[1, 2]))\n"
            ">>> t = Sequence('t', [1], SP(temperature=0, logit_bias={3: 100}))\n"
            '>>> assert sample_tokens(logits.repeat(2, 1), [s, t], {4}) == [1, 3]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if 0 < params.top_k < scores.shape[-1]:',
        'replace': 'if params.top_k > 0:',
        'why': 'top_k larger than the vocabulary is not treated as off: torch.topk raises (vLLM keeps every token)',
        'check': (
            '>>> import torch\n'
            '>>> from lab02_vllm.solution.engine import sample_tokens\n'
            '>>> from lab02_vllm.solution.sequence import Sequence\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> logits = torch.zeros(1, 5)\n'
            ">>> s = Sequence('r', [1], SP(top_k=10))\n"
            '>>> assert sample_tokens(logits, [s], {4}, torch.Generator().manual_seed(0))[0] in range(5)'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': (
            'if seq.num_computed_tokens == len(seq):\n'
            '                sampled.append(seq)'
        ),
        'replace': (
            'if seq.num_computed_tokens >= seq.num_prompt_tokens:\n'
            '                sampled.append(seq)'
        ),
        'why': 'samples once the prompt is computed instead of once all tokens are: a preempted sequence recomputed in chunks samples in the middle of its recomputation',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> prompts, sp = ['The cat sat', 'Once upon a time', 'A dog', 'The cat'], SP(temperature=0, max_tokens=20, ignore_eos=True)\n"
            '>>> tight = LLM(fixture_path(), num_kv_blocks=8, block_size=4, max_num_batched_tokens=4, max_num_seqs=4, max_model_len=32)\n'
            '>>> outs = tight.generate(prompts, sp)  # preempted and recomputed in 4-token chunks\n'
            '>>> assert tight.engine.stats.num_preemptions > 0\n'
            '>>> assert [o.outputs[0].token_ids for o in outs] == [o.outputs[0].token_ids for o in llm.generate(prompts, sp)]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': (
            'if seq.first_token_time is None:\n'
            '                seq.first_token_time = now'
        ),
        'replace': 'seq.first_token_time = now',
        'why': "stamps first_token_time at every token: the request's time to first token becomes its whole generation time",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> m = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=5))[0].metrics\n"
            '>>> assert m.arrival_time < m.first_token_time < m.finished_time'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': (
            'del self.requests[request.request_id]\n'
            '                self._counters'
        ),
        'replace': 'self._counters',
        'why': 'a finished request is reported but never forgotten: has_unfinished_requests stays true and the id stays taken',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> _ = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=5))\n"
            '>>> assert not llm.engine.has_unfinished_requests() and llm.engine.stats.num_requests_finished == 1'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if all(s.is_finished for s in request.seqs):',
        'replace': 'if any(s.is_finished for s in request.seqs):',
        'why': 'an n > 1 request is forgotten when its first completion finishes: the others still run and the next step fails on the missing request',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> o = llm.generate(['Once upon a time'], SP(n=2, seed=2, temperature=1.0, max_tokens=30))[0]\n"
            '>>> assert o.finished and len({len(c.token_ids) for c in o.outputs}) == 2  # completions of different lengths'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'tokens = sample_tokens(logits, sampled, self.eos_token_ids, self.generator)',
        'replace': 'tokens = sample_tokens(logits, sampled, self.eos_token_ids)',
        'why': "does not pass the engine's generator: unseeded sampling uses torch's global generator, so the engine's seed argument does nothing",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            '>>> import torch\n'
            '>>> def sampled(global_seed):\n'
            '...     llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128, seed=0)\n'
            '...     _ = torch.manual_seed(global_seed)\n'
            "...     return [o.outputs[0].token_ids for o in llm.generate(['The cat sat', 'A dog'], SP(temperature=1.0, max_tokens=12))]\n"
            '>>> assert sampled(1) == sampled(2)  # same engine seed, same tokens'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if seq.num_output_tokens >= params.min_tokens and token == eos:',
        'replace': 'if seq.num_output_tokens >= params.min_tokens and token == eos and token not in params.stop_token_ids:',
        'why': "checks stop_token_ids before the tokenizer's eos: an eos listed in stop_token_ids reports stop_reason = its id (vLLM: None)",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=20, stop_token_ids=[2]))[0].outputs[0]\n"
            ">>> assert out.token_ids[-1] == 2 and out.finish_reason == 'stop' and out.stop_reason is None"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'eos = None if params.ignore_eos else self.tokenizer.eos_token_id',
        'replace': 'eos = self.tokenizer.eos_token_id',
        'why': "the tokenizer's eos ends the request even under ignore_eos",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=12, ignore_eos=True))[0].outputs[0]\n"
            ">>> assert out.token_ids[9] == 2 and len(out.token_ids) == 12 and out.finish_reason == 'length'"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if not params.ignore_eos and token in self.eos_token_ids:',
        'replace': 'if token in self.eos_token_ids:',
        'why': "the model's generation-config eos ids end the request even under ignore_eos",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=12, ignore_eos=True))[0].outputs[0]\n"
            ">>> assert out.token_ids[9] == 2 and len(out.token_ids) == 12 and out.finish_reason == 'length'"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if token in params.stop_token_ids:',
        'replace': 'if token in params.stop_token_ids and not (params.ignore_eos and token in self.eos_token_ids):',
        'why': 'ignore_eos also silences an eos id the request lists in stop_token_ids (vLLM stops there, stop_reason = the id)',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=12, ignore_eos=True, stop_token_ids=[2]))[0].outputs[0]\n"
            ">>> assert len(out.token_ids) == 10 and out.finish_reason == 'stop' and out.stop_reason == 2"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if seq.num_output_tokens > params.min_tokens:',
        'replace': 'if seq.num_output_tokens >= params.min_tokens:',
        'why': 'off by one on min_tokens for stop strings: the text of the min_tokens-th token is searched too (vLLM searches only after the first min_tokens tokens)',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=12, stop=['is'], min_tokens=1))[0].outputs[0]\n"
            ">>> assert out.text == ' is small, but it ' and out.stop_reason == 'is'  # the first ' is' is token 1"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'at = seq.text.find(stop, max(0, old_length - len(stop) + 1))',
        'replace': 'at = seq.text.find(stop, old_length)',
        'why': "searches a stop string only in the new token's text: one that straddles two tokens is missed",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=12, stop=['s s']))[0].outputs[0]\n"
            ">>> assert out.text == ' i' and out.stop_reason == 's s'  # ' is' + ' small'"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'seq.text, seq.stop_reason = seq.text[:at], stop',
        'replace': 'seq.text, seq.stop_reason = seq.text[:at + len(stop)], stop',
        'why': "keeps the stop string in the text (vLLM's include_stop_str_in_output=False cuts before it)",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=12, stop=['small']))[0].outputs[0]\n"
            ">>> assert out.text == ' is ' and out.finish_reason == 'stop'"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'seq.text, seq.stop_reason = seq.text[:at], stop',
        'replace': 'seq.text = seq.text[:at]',
        'why': 'a stop string ends the request without saying which (stop_reason stays None)',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=12, stop=['small']))[0].outputs[0]\n"
            ">>> assert out.stop_reason == 'small'"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'len(seq) >= self.max_model_len',
        'replace': 'len(seq) > self.max_model_len',
        'why': 'off by one on max_model_len: a sequence grows one token past the model length',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=10)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=16, ignore_eos=True))[0].outputs[0]\n"
            ">>> assert len(out.token_ids) == 4 and out.finish_reason == 'length'  # 6 prompt tokens + 4 = max_model_len"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'seq.num_output_tokens >= params.max_tokens',
        'replace': 'len(seq) >= params.max_tokens',
        'why': 'max_tokens counted over prompt and output (it counts generated tokens only)',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=8, ignore_eos=True))[0].outputs[0]\n"
            '>>> assert len(out.token_ids) == 8'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'eos = None if params.ignore_eos else self.tokenizer.eos_token_id',
        'replace': (
            'if seq.num_output_tokens >= params.max_tokens or len(seq) >= self.max_model_len:\n'
            '            return "length"\n'
            '        eos = None if params.ignore_eos else self.tokenizer.eos_token_id'
        ),
        'why': "checks the length limits first: an eos arriving as the max_tokens-th token reports 'length' instead of 'stop'",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=10))[0].outputs[0]\n"
            ">>> assert out.token_ids[-1] == 2 and len(out.token_ids) == 10 and out.finish_reason == 'stop'"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if params.stop_strings or self.incremental_text:',
        'replace': 'if params.stop_strings:',
        'why': 'detokenizes only for stop strings: step() outputs of a streaming request carry no text until it finishes',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> from lab02_vllm.solution.engine import LLMEngine\n'
            '>>> e = LLMEngine(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> e.add_request('r', 'The cat sat', SP(temperature=0, max_tokens=5))\n"
            ">>> assert [e.step()[0].outputs[0].text for _ in range(2)] == [' is', ' is small']"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):',
        'replace': 'if isinstance(prompts, str):',
        'why': 'a single prompt given as one list of token ids is taken as a list of prompts',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            '>>> outs = llm.generate([1, 318, 316, 328], SP(temperature=0, max_tokens=3))\n'
            '>>> assert len(outs) == 1 and outs[0].prompt_token_ids == [1, 318, 316, 328]'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': (
            'except ValueError:\n'
            '            for request_id in added:\n'
            '                self.engine.abort(request_id)\n'
            '            raise'
        ),
        'replace': (
            'except ValueError:\n'
            '            raise'
        ),
        'why': 'a bad prompt late in the list leaves the earlier ones queued in the engine (vLLM queues all or none)',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            '>>> try:\n'
            "...     _ = llm.generate(['The cat', [99999]])\n"
            '... except ValueError:\n'
            '...     refused = True\n'
            '>>> assert refused and not llm.engine.has_unfinished_requests()'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': 'return [finished[request_id] for request_id in ids]',
        'replace': 'return list(finished.values())',
        'why': "returns the outputs in the order they finished, not the prompts' order",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> outs = llm.generate(['The cat sat', 'A dog'], [SP(temperature=0, max_tokens=8), SP(temperature=0, max_tokens=2)])\n"
            ">>> assert [o.prompt for o in outs] == ['The cat sat', 'A dog']"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': (
            'finally:\n'
            '            self.engine.incremental_text = previous'
        ),
        'replace': (
            'finally:\n'
            '            pass'
        ),
        'why': "turns incremental detokenization off for generate and never back on: the engine's later streaming outputs have no text",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> _ = llm.generate(['A dog'], SP(temperature=0, max_tokens=2))\n"
            ">>> llm.engine.add_request('r', 'The cat sat', SP(temperature=0, max_tokens=5))\n"
            ">>> assert llm.engine.step()[0].outputs[0].text == ' is'"
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': (
            'if not prompts:\n'
            '            raise ValueError("prompts must not be empty")\n'
            '        if sampling_params'
        ),
        'replace': 'if sampling_params',
        'why': 'an empty prompt list returns [] instead of the ValueError the docstring promises',
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            '>>> try:\n'
            '...     _ = llm.generate([])\n'
            '... except ValueError:\n'
            '...     refused = True\n'
            '>>> assert refused'
        ),
    },
    {
        'task': 5,
        'file': 'engine.py',
        'find': (
            'if output.finished:\n'
            '                        finished[output.request_id] = output'
        ),
        'replace': 'finished[output.request_id] = output',
        'why': "keeps every step's output, finished or not: generate returns as soon as each prompt has produced one token",
        'check': (
            '>>> from shared.models import fixture_path\n'
            '>>> from lab02_vllm.solution.engine import LLM\n'
            '>>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n'
            '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_num_batched_tokens=16, max_num_seqs=4, max_model_len=128)\n'
            ">>> outs = llm.generate(['The cat sat', 'A dog'], SP(temperature=0, max_tokens=8))\n"
            '>>> assert all(o.finished for o in outs) and len(outs[0].outputs[0].token_ids) == 8'
        ),
    },
]
