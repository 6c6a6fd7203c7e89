"""Blind round 9 for lab02_vllm: plausible mistakes written from the README, docstrings and solution only (reviewer had not read the tests)."""

MUTANTS = [
    # ---------------------------------------------------------------------------------------
    # Task 3: the model runner
    {"task": 3, "file": "model_runner.py",
     "find": "        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n        out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n",
     "replace": "        out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n",
     "why": "attends before storing the step's keys and values (a token cannot see itself nor the earlier tokens of its own chunk)",
     "check": ">>> import torch\n"
              ">>> from transformers import AutoModelForCausalLM\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> M = fixture_path(); ids = [1, 318, 316, 328, 289, 328, 17, 265, 322]\n"
              ">>> ref = AutoModelForCausalLM.from_pretrained(M).eval()(torch.tensor([ids])).logits[0, -1].detach()\n"
              ">>> r = ModelRunner(M, block_size=4, num_kv_blocks=8); s = Sequence('x', ids, SamplingParams()); s.block_table = [5, 2, 7]\n"
              ">>> outs = []\n"
              ">>> for n in (4, 1, 2, 2):\n"
              "...     outs.append(r.run([s], [n])); s.num_computed_tokens += n\n"
              ">>> assert [o.shape[0] for o in outs] == [0, 0, 0, 1]\n"
              ">>> assert torch.allclose(outs[-1][0], ref, atol=1e-4)"},
    {"task": 3, "file": "model_runner.py",
     "find": "return self.o_proj(out.reshape(num_tokens, self.q_size))",
     "replace": "return self.o_proj(out.transpose(0, 1).reshape(num_tokens, self.q_size))",
     "why": "treats attention's output as (heads, tokens, head_dim), SDPA's layout, and transposes it before merging the heads",
     "check": ">>> import torch\n"
              ">>> from transformers import AutoModelForCausalLM\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> M = fixture_path(); ids = [1, 318, 316, 328, 289, 328, 17, 265, 322]\n"
              ">>> ref = AutoModelForCausalLM.from_pretrained(M).eval()(torch.tensor([ids])).logits[0, -1].detach()\n"
              ">>> r = ModelRunner(M, block_size=4, num_kv_blocks=8); s = Sequence('x', ids, SamplingParams()); s.block_table = [5, 2, 7]\n"
              ">>> assert torch.allclose(r.run([s], [9])[0], ref, atol=1e-4)"},
    {"task": 3, "file": "model_runner.py",
     "find": "            positions.extend(range(start, end))",
     "replace": "            positions.extend(range(len(seq) - n, len(seq)))",
     "why": "takes a sequence's new tokens to be its last n (true for decodes and last chunks), so a middle prompt chunk gets the positions of the prompt's end",
     "check": ">>> import torch\n"
              ">>> from transformers import AutoModelForCausalLM\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> M = fixture_path(); ids = [1, 318, 316, 328, 289, 328, 17, 265, 322]\n"
              ">>> ref = AutoModelForCausalLM.from_pretrained(M).eval()(torch.tensor([ids])).logits[0, -1].detach()\n"
              ">>> r = ModelRunner(M, block_size=4, num_kv_blocks=8); s = Sequence('x', ids, SamplingParams()); s.block_table = [5, 2, 7]\n"
              ">>> outs = []\n"
              ">>> for n in (4, 1, 2, 2):\n"
              "...     outs.append(r.run([s], [n])); s.num_computed_tokens += n\n"
              ">>> assert torch.allclose(outs[-1][0], ref, atol=1e-4)"},
    {"task": 3, "file": "model_runner.py",
     "find": "slots.extend(seq.block_table[i // bs] * bs + i % bs for i in range(start, end))",
     "replace": "slots.extend(seq.block_table[-1] * bs + i % bs for i in range(start, end))",
     "why": "nano-vllm's prepare_decode slot (the last block of the table) used for every token, so a chunk spanning several blocks writes them all into the last one",
     "check": ">>> import torch\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n"
              ">>> s = Sequence('x', list(range(3, 12)), SamplingParams()); s.block_table = [5, 2, 7]; s.num_computed_tokens = 2\n"
              ">>> _, _, meta, _ = r.prepare([s], [5])\n"
              ">>> assert meta.slot_mapping.tolist() == [22, 23, 8, 9, 10]"},
    {"task": 3, "file": "model_runner.py",
     "find": "            context_lens.append(end)",
     "replace": "            context_lens.append(len(seq))",
     "why": "context length taken as len(seq) instead of where the chunk ends: a middle chunk attends to slots not written yet (the README's 'not len(s)')",
     "check": ">>> import torch\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n"
              ">>> s = Sequence('x', list(range(3, 12)), SamplingParams()); s.block_table = [5, 2, 7]; s.num_computed_tokens = 2\n"
              ">>> _, _, meta, li = r.prepare([s], [5])\n"
              ">>> assert meta.context_lens_list == [7] and meta.context_lens.tolist() == [7] and li.tolist() == []"},
    {"task": 3, "file": "model_runner.py",
     "find": "            if end == len(seq):\n",
     "replace": "            if n == 1 or end == len(seq):\n",
     "why": "every one-token entry taken for a decode and sampled, also a one-token chunk in the middle of a prompt (the budget left can be 1)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n"
              ">>> a = Sequence('a', [3, 4, 5], SamplingParams()); a.block_table = [1]; a.num_computed_tokens = 2\n"
              ">>> b = Sequence('b', list(range(3, 12)), SamplingParams()); b.block_table = [5, 2, 7]; b.num_computed_tokens = 4\n"
              ">>> _, _, meta, li = r.prepare([a, b], [1, 1])\n"
              ">>> assert li.tolist() == [0] and meta.query_start_loc.tolist() == [0, 1, 2]"},
    {"task": 3, "file": "model_runner.py",
     "find": "is_prefill=any(n > 1 for n in num_new_tokens)",
     "replace": "is_prefill=any(seq.num_computed_tokens == 0 for seq in seqs)",
     "why": "vLLM v0's notion of a prefill (a sequence with nothing computed): a step of later prompt chunks (or chunks after a cached prefix) is sent to decode attention",
     "check": ">>> import torch\n"
              ">>> from transformers import AutoModelForCausalLM\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> M = fixture_path(); ids = [1, 318, 316, 328, 289, 328, 17, 265, 322]\n"
              ">>> ref = AutoModelForCausalLM.from_pretrained(M).eval()(torch.tensor([ids])).logits[0, -1].detach()\n"
              ">>> r = ModelRunner(M, block_size=4, num_kv_blocks=8); s = Sequence('x', ids, SamplingParams()); s.block_table = [5, 2, 7]\n"
              ">>> outs = []\n"
              ">>> for n in (4, 1, 2, 2):\n"
              "...     outs.append(r.run([s], [n])); s.num_computed_tokens += n\n"
              ">>> assert torch.allclose(outs[-1][0], ref, atol=1e-4)"},
    {"task": 3, "file": "model_runner.py",
     "find": "block_tables=self._block_tables(seqs), context_lens=self._tensor(context_lens),",
     "replace": "block_tables=self._block_tables(seqs), context_lens=self._tensor([len(s) for s in seqs]),",
     "why": "the context-length tensor built from len(seq) (the list is right): decode attention's mask, which reads the tensor, lets a one-token middle chunk see unwritten slots of its block",
     "check": ">>> import torch\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n"
              ">>> s = Sequence('x', list(range(3, 12)), SamplingParams()); s.block_table = [5, 2, 7]; s.num_computed_tokens = 4\n"
              ">>> _, _, meta, _ = r.prepare([s], [1])\n"
              ">>> assert meta.context_lens.tolist() == [5]"},
    # ---------------------------------------------------------------------------------------
    # Task 4: the scheduler
    {"task": 4, "file": "scheduler.py",
     "find": "        while index < len(self.running) and token_budget > 0:\n",
     "replace": "        while index < len(self.running):\n",
     "why": "walks every running sequence even when the budget is spent, scheduling the ones behind with 0 tokens (the runner's 'at least 1' broken)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(16, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=4)\n"
              ">>> a = Sequence('a', list(range(3, 13)), SamplingParams()); b = Sequence('b', list(range(3, 13)), SamplingParams())\n"
              ">>> for q in (a, b):\n"
              "...     _ = bm.allocate_cached_prefix(q); _ = bm.allocate_slots(q, 2); q.num_computed_tokens = 2; q.status = SequenceStatus.RUNNING; s.running.append(q)\n"
              ">>> out = s.schedule()\n"
              ">>> assert out.seqs == [a] and out.num_new_tokens == [4]"},
    {"task": 4, "file": "scheduler.py",
     "find": "victim = self.running.pop()  # the newest",
     "replace": "victim = self.running.popleft()  # the newest",
     "why": "preempts the oldest running sequence instead of the newest (README: the newest, as vLLM)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(4, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n"
              ">>> a = Sequence('a', list(range(3, 11)), SamplingParams()); b = Sequence('b', list(range(3, 11)), SamplingParams())\n"
              ">>> for q in (a, b):\n"
              "...     _ = bm.allocate_cached_prefix(q); _ = bm.allocate_slots(q, 8); q.num_computed_tokens = 8; q.append_token(5); q.status = SequenceStatus.RUNNING; s.running.append(q)\n"
              ">>> out = s.schedule()\n"
              ">>> assert out.preempted == [b] and out.seqs == [a] and list(s.waiting) == [b]"},
    {"task": 4, "file": "scheduler.py",
     "find": "        if out.preempted:\n            return out\n",
     "replace": "",
     "why": "admits waiting sequences in a step that preempted one (README: only if no one was preempted), so the victim is readmitted at once",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(4, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=5)\n"
              ">>> a = Sequence('a', list(range(3, 11)), SamplingParams()); b = Sequence('b', list(range(3, 11)), SamplingParams())\n"
              ">>> for q in (a, b):\n"
              "...     _ = bm.allocate_cached_prefix(q); _ = bm.allocate_slots(q, 8); q.num_computed_tokens = 8; q.append_token(5); q.status = SequenceStatus.RUNNING; s.running.append(q)\n"
              ">>> out = s.schedule()\n"
              ">>> assert out.seqs == [a] and out.preempted == [b] and b.block_table == []"},
    {"task": 4, "file": "scheduler.py",
     "find": "        self.waiting.appendleft(seq)\n",
     "replace": "        self.waiting.append(seq)\n",
     "why": "a preempted sequence goes to the back of the waiting queue, behind newer requests (README: the front)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n"
              ">>> a = Sequence('a', [3, 4, 5], SamplingParams()); c = Sequence('c', [3, 4], SamplingParams())\n"
              ">>> _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 3); a.num_computed_tokens = 3\n"
              ">>> s.add(c); s.preempt(a)\n"
              ">>> assert list(s.waiting) == [a, c] and a.num_computed_tokens == 0 and a.block_table == []"},
    {"task": 4, "file": "scheduler.py",
     "find": "        self.num_preemptions += 1\n",
     "replace": "",
     "why": "counts the preemption on the sequence only, not in the scheduler's total the engine's stats report",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n"
              ">>> a = Sequence('a', [3, 4, 5], SamplingParams()); _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 3)\n"
              ">>> s.preempt(a)\n"
              ">>> assert s.num_preemptions == 1 and a.num_preemptions == 1"},
    {"task": 4, "file": "scheduler.py",
     "find": "        for queue in (self.running, self.waiting):\n",
     "replace": "        for queue in (self.running,):\n",
     "why": "finish takes the sequence out of the running queue only: an aborted waiting request stays queued and is scheduled later",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n"
              ">>> a = Sequence('a', [3, 4, 5], SamplingParams()); s.add(a)\n"
              ">>> assert s.abort('a') == [a]\n"
              ">>> assert not s.waiting and not s.has_unfinished() and a.finish_reason == 'abort'"},
    {"task": 4, "file": "scheduler.py",
     "find": "while self.waiting and token_budget > 0 and len(self.running) < self.max_num_seqs:",
     "replace": "while self.waiting and token_budget > 0 and len(self.running) <= self.max_num_seqs:",
     "why": "off by one on max_num_seqs: one sequence more than allowed runs at once",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4); s = Scheduler(bm, max_num_seqs=1, max_num_batched_tokens=64)\n"
              ">>> s.add(Sequence('a', [3, 4, 5], SamplingParams())); s.add(Sequence('b', [3, 4], SamplingParams()))\n"
              ">>> out = s.schedule()\n"
              ">>> assert len(out.seqs) == 1 and len(s.running) == 1 and len(s.waiting) == 1"},
    {"task": 4, "file": "scheduler.py",
     "find": "            num_new = len(seq) - computed\n",
     "replace": "            num_new = len(seq)\n",
     "why": "ignores the cached prefix when sizing an admitted sequence's chunk: a prefix-cache hit is scheduled past the sequence's end",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(16, 4, enable_prefix_caching=True); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n"
              ">>> a = Sequence('a', list(range(3, 12)), SamplingParams()); s.add(a); _ = s.schedule(); a.num_computed_tokens = 9; s.finish(a, 'stop')\n"
              ">>> b = Sequence('b', list(range(3, 12)) + [20], SamplingParams()); s.add(b); out = s.schedule()\n"
              ">>> assert b.num_computed_tokens == 8 and out.num_new_tokens == [2] and len(b.block_table) == 3"},
    {"task": 4, "file": "scheduler.py",
     "find": "            if 0 < self.long_prefill_token_threshold < num_new:\n                num_new = self.long_prefill_token_threshold\n",
     "replace": "",
     "why": "long_prefill_token_threshold applied to running sequences' chunks only (through _cap), not to a newly admitted prompt's first chunk",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(16, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64, long_prefill_token_threshold=4)\n"
              ">>> s.add(Sequence('a', list(range(3, 13)), SamplingParams())); s.add(Sequence('b', list(range(3, 9)), SamplingParams()))\n"
              ">>> assert s.schedule().num_new_tokens == [4, 4]"},
    {"task": 4, "file": "scheduler.py",
     "find": "if not self.enable_chunked_prefill and num_new > token_budget:",
     "replace": "if not self.enable_chunked_prefill and num_new >= token_budget:",
     "why": "with chunking off, a prompt that exactly fills the budget left is refused (boundary)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(16, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=8, enable_chunked_prefill=False)\n"
              ">>> s.add(Sequence('a', [3, 4, 5], SamplingParams())); s.add(Sequence('b', [3, 4, 5, 6, 7], SamplingParams()))\n"
              ">>> assert s.schedule().num_new_tokens == [3, 5]"},
    {"task": 4, "file": "scheduler.py",
     "find": "            if not self.enable_chunked_prefill and num_new > token_budget:\n                bm.free(seq)\n                break\n",
     "replace": "",
     "why": "enable_chunked_prefill=False ignored: a prompt that does not fit the budget left is chunked anyway instead of stopping admission",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(16, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=8, enable_chunked_prefill=False)\n"
              ">>> s.add(Sequence('a', [3, 4, 5, 6, 7], SamplingParams())); s.add(Sequence('b', [3, 4, 5, 6, 7], SamplingParams()))\n"
              ">>> assert s.schedule().num_new_tokens == [5] and len(s.waiting) == 1 and s.waiting[0].block_table == []"},
    {"task": 4, "file": "scheduler.py",
     "find": "if not bm.can_allocate_slots(seq, num_new, new=True):",
     "replace": "if not bm.can_allocate_slots(seq, num_new):",
     "why": "admission checks the pool like a running sequence's growth: the watermark kept for running sequences is not left free",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(20, 1, watermark=0.25); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n"
              ">>> a = Sequence('a', [3, 4, 5, 6, 7], SamplingParams()); s.add(a); _ = s.schedule(); a.num_computed_tokens = 5; a.append_token(9)\n"
              ">>> s.add(Sequence('b', list(range(3, 15)), SamplingParams())); out = s.schedule()\n"
              ">>> assert out.seqs == [a] and len(s.waiting) == 1"},
    {"task": 4, "file": "scheduler.py",
     "find": "            if not bm.can_allocate_slots(seq, num_new, new=True):\n                bm.free(seq)\n                break\n",
     "replace": "            if not bm.can_allocate_slots(seq, num_new, new=True):\n                break\n",
     "why": "a waiting sequence whose chunk does not fit keeps the cached-prefix blocks it was just given (held while it waits, and allocate_cached_prefix refuses it next step)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(6, 4, enable_prefix_caching=True); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n"
              ">>> a = Sequence('a', list(range(3, 12)), SamplingParams()); s.add(a); _ = s.schedule(); a.num_computed_tokens = 9; s.finish(a, 'stop')\n"
              ">>> c = Sequence('c', list(range(100, 106)), SamplingParams()); s.add(c); _ = s.schedule(); c.num_computed_tokens = 6; c.append_token(7)\n"
              ">>> b = Sequence('b', list(range(3, 11)) + list(range(200, 212)), SamplingParams()); s.add(b); out = s.schedule()\n"
              ">>> assert out.seqs == [c] and b.block_table == [] and bm.num_free_blocks == 4\n"
              ">>> _ = s.schedule()"},
    {"task": 4, "file": "scheduler.py",
     "find": "            num_new = self._cap(len(seq) - seq.num_computed_tokens, token_budget)\n",
     "replace": "            num_new = self._cap(1, token_budget)\n",
     "why": "nano-vllm's shape: a running sequence is taken to be decoding (1 token), so a partly prefilled prompt advances one token a step",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(16, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=4)\n"
              ">>> a = Sequence('a', list(range(3, 13)), SamplingParams()); s.add(a)\n"
              ">>> assert s.schedule().num_new_tokens == [4]; a.num_computed_tokens = 4\n"
              ">>> assert s.schedule().num_new_tokens == [4]"},
    {"task": 4, "file": "scheduler.py",
     "find": "                copy = bm.allocate_slots(seq, num_new)\n                if copy is not None:\n                    out.copies.append(copy)\n",
     "replace": "                bm.allocate_slots(seq, num_new)\n",
     "why": "the copy-on-write pair of a running sequence's growth is dropped (only admissions' pairs kept): a forked sequence writes into a block whose KV was never copied",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n"
              ">>> a = Sequence('a', [3, 4, 5, 6, 7, 8], SamplingParams()); s.add(a); _ = s.schedule(); a.num_computed_tokens = 6; a.append_token(9)\n"
              ">>> c = Sequence('a', list(a.token_ids), SamplingParams(), index=1); bm.fork(a, c); c.status = SequenceStatus.RUNNING; s.running.append(c)\n"
              ">>> old = a.block_table[1]; out = s.schedule()\n"
              ">>> assert out.copies == [(old, a.block_table[1])] and out.num_new_tokens == [1, 1]"},
    {"task": 4, "file": "scheduler.py",
     "find": "            out.new_seqs.append(seq)\n            token_budget -= num_new\n",
     "replace": "            out.new_seqs.append(seq)\n",
     "why": "the budget is not decreased by admitted prompts' chunks, so a step can exceed max_num_batched_tokens",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(16, 4); s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=8)\n"
              ">>> s.add(Sequence('a', [3, 4, 5, 6, 7], SamplingParams())); s.add(Sequence('b', [3, 4, 5, 6, 7], SamplingParams()))\n"
              ">>> assert s.schedule().num_new_tokens == [5, 3]"},
    {"task": 4, "file": "block_manager.py",
     "find": "        needed = missing + int(shared)\n",
     "replace": "        needed = missing\n",
     "why": "can_allocate_slots forgets the block a copy-on-write takes: a forked sequence on a full pool is said to fit, and allocate_slots then runs out of blocks",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(2, 4); a = Sequence('a', [3, 4, 5, 6, 7, 8], SamplingParams())\n"
              ">>> _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 6); a.num_computed_tokens = 6; a.append_token(9)\n"
              ">>> c = Sequence('a', list(a.token_ids), SamplingParams(), index=1); bm.fork(a, c)\n"
              ">>> assert not bm.can_allocate_slots(a, 1)"},
    {"task": 4, "file": "block_manager.py",
     "find": "        if not new or self.num_used_blocks == len(seq.block_table):\n",
     "replace": "        if not new:\n",
     "why": "the watermark is applied even to a lone sequence on an unused pool, so a prompt needing the whole pool is never admitted",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(100, 1); a = Sequence('a', [3] * 100, SamplingParams())\n"
              ">>> assert bm.watermark_blocks == 1 and bm.can_allocate_slots(a, 100, new=True)"},
    {"task": 4, "file": "block_manager.py",
     "find": "        return needed <= self.num_free_blocks - self.watermark_blocks\n",
     "replace": "        return needed < self.num_free_blocks - self.watermark_blocks\n",
     "why": "off by one at the watermark: an admission that leaves exactly watermark_blocks free is refused",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(100, 1, watermark=0.1); b = Sequence('b', [3] * 10, SamplingParams())\n"
              ">>> _ = bm.allocate_cached_prefix(b); _ = bm.allocate_slots(b, 10)\n"
              ">>> a = Sequence('a', [4] * 80, SamplingParams())\n"
              ">>> assert bm.can_allocate_slots(a, 80, new=True) and not bm.can_allocate_slots(a, 81, new=True)"},
    {"task": 4, "file": "block_manager.py",
     "find": "self.num_used_blocks == len(seq.block_table)",
     "replace": "self.num_used_blocks == 0",
     "why": "'alone' read as 'the pool is unused': a lone sequence holding its own cached-prefix blocks still has to leave the watermark free",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(10, 1, watermark=0.2, enable_prefix_caching=True)\n"
              ">>> a = Sequence('a', [3, 4, 5, 6, 7], SamplingParams()); _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 5); bm.free(a)\n"
              ">>> b = Sequence('b', [3, 4, 5, 6, 7, 8, 9, 10, 11, 12], SamplingParams())\n"
              ">>> assert bm.allocate_cached_prefix(b) == 5 and bm.can_allocate_slots(b, 5, new=True)"},
    {"task": 4, "file": "block_manager.py",
     "find": "range(seq.num_computed_tokens // self.block_size, end // self.block_size)",
     "replace": "range(seq.num_computed_tokens // self.block_size, (end - 1) // self.block_size)",
     "why": "off by one on the blocks a chunk fills: a block whose last slot is the chunk's last token is never reported to the prefix cache",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4, enable_prefix_caching=True); a = Sequence('a', list(range(3, 12)), SamplingParams())\n"
              ">>> _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 8)\n"
              ">>> assert all(bm.blocks[i].block_hash is not None for i in a.block_table[:2])"},
    {"task": 4, "file": "block_manager.py",
     "find": "for index in range(seq.num_computed_tokens // self.block_size, end // self.block_size):",
     "replace": "for index in range(-(-seq.num_computed_tokens // self.block_size), end // self.block_size):",
     "why": "counts the filled blocks from the first block after the computed tokens: a partly filled block that a later chunk completes is never reported",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4, enable_prefix_caching=True); a = Sequence('a', list(range(3, 12)), SamplingParams())\n"
              ">>> _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 2); a.num_computed_tokens = 2; _ = bm.allocate_slots(a, 2)\n"
              ">>> assert bm.blocks[a.block_table[0]].block_hash is not None"},
    {"task": 4, "file": "block_manager.py",
     "find": "            copy = (old, seq.block_table[index])\n",
     "replace": "            copy = (seq.block_table[index], old)\n",
     "why": "the copy-on-write pair reported as (destination, source): the fresh block's garbage is copied over the shared one",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(4, 4); a = Sequence('a', [3, 4, 5, 6, 7, 8], SamplingParams())\n"
              ">>> _ = bm.allocate_cached_prefix(a); _ = bm.allocate_slots(a, 6); a.num_computed_tokens = 6; a.append_token(9)\n"
              ">>> c = Sequence('a', list(a.token_ids), SamplingParams(), index=1); bm.fork(a, c)\n"
              ">>> shared = a.block_table[1]; pair = bm.allocate_slots(a, 1)\n"
              ">>> assert pair == (shared, a.block_table[1]) and c.block_table[1] == shared"},
    # ---------------------------------------------------------------------------------------
    # Task 5: the engine — sample_tokens
    {"task": 5, "file": "engine.py",
     "find": "    if all(s.params.greedy and s.params.logprobs is None and s.num_output_tokens >= s.params.min_tokens\n           for s in seqs):",
     "replace": "    if all(s.params.greedy and s.params.logprobs is None\n           for s in seqs):",
     "why": "the all-greedy fast path forgets min_tokens: a greedy request can pick its eos before min_tokens",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=0, min_tokens=2)); logits = torch.zeros(1, 8); logits[0, 2] = 5.0; logits[0, 6] = 1.0\n"
              ">>> assert sample_tokens(logits, [s], {2}) == [6]"},
    {"task": 5, "file": "engine.py",
     "find": "    if all(s.params.greedy and s.params.logprobs is None and s.num_output_tokens >= s.params.min_tokens\n           for s in seqs):",
     "replace": "    if all(s.params.greedy and s.num_output_tokens >= s.params.min_tokens\n           for s in seqs):",
     "why": "the all-greedy fast path taken even when logprobs are asked for: a greedy request's logprobs stay empty",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=0, logprobs=1)); logits = torch.arange(8.0)[None]\n"
              ">>> assert sample_tokens(logits, [s], {2}) == [7] and list(s.logprobs[0]) == [7]"},
    {"task": 5, "file": "engine.py",
     "find": "        return processed.argmax(dim=-1).tolist()",
     "replace": "        return logits.argmax(dim=-1).tolist()",
     "why": "the greedy fast path takes the raw logits' argmax: logit_bias and allowed_token_ids ignored for greedy requests",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> a = Sequence('a', [1], SP(temperature=0, logit_bias={3: 100})); b = Sequence('b', [1], SP(temperature=0, allowed_token_ids=[4, 5]))\n"
              ">>> assert sample_tokens(torch.arange(8.0).repeat(2, 1), [a, b], {2}) == [3, 5]"},
    {"task": 5, "file": "engine.py",
     "find": "            banned = set(params.stop_token_ids) | stop_ids  # eos too under ignore_eos, as vLLM",
     "replace": "            banned = set(params.stop_token_ids) | (set() if params.ignore_eos else stop_ids)",
     "why": "under ignore_eos the eos ids are not banned before min_tokens (vLLM bans all_stop_token_ids even then; README)",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=0, min_tokens=2, ignore_eos=True)); logits = torch.zeros(1, 8); logits[0, 2] = 5.0; logits[0, 6] = 1.0\n"
              ">>> assert sample_tokens(logits, [s], {2}) == [6]"},
    {"task": 5, "file": "engine.py",
     "find": "            banned = set(params.stop_token_ids) | stop_ids  # eos too under ignore_eos, as vLLM",
     "replace": "            banned = set(stop_ids)",
     "why": "min_tokens bans only the eos ids, not the request's stop_token_ids",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=0, min_tokens=2, stop_token_ids=[4])); logits = torch.zeros(1, 8); logits[0, 4] = 5.0; logits[0, 6] = 1.0\n"
              ">>> assert sample_tokens(logits, [s], {2}) == [6]"},
    {"task": 5, "file": "engine.py",
     "find": "        if seq.num_output_tokens < params.min_tokens:\n",
     "replace": "        if seq.num_output_tokens <= params.min_tokens:\n",
     "why": "off by one on min_tokens: the stop ids stay banned for the token after the first min_tokens outputs",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=0, min_tokens=2, logprobs=0)); s.append_token(5); s.append_token(5)\n"
              ">>> logits = torch.zeros(1, 8); logits[0, 2] = 5.0\n"
              ">>> assert sample_tokens(logits, [s], {2}) == [2]"},
    {"task": 5, "file": "engine.py",
     "find": "            scores = scores / params.temperature\n            if 0 < params.top_k < scores.shape[-1]:\n                kth = torch.topk(scores, params.top_k).values[-1]\n                scores = scores.masked_fill(scores < kth, float(\"-inf\"))\n            if params.top_p < 1.0:\n                sorted_scores, order = torch.sort(scores, descending=True)\n                probs = sorted_scores.softmax(dim=-1)\n                drop = probs.cumsum(dim=-1) - probs > params.top_p  # mass before this token already enough\n                scores = scores.scatter(0, order[drop], float(\"-inf\"))\n            probs = scores.softmax(dim=-1)\n",
     "replace": "            if 0 < params.top_k < scores.shape[-1]:\n                kth = torch.topk(scores, params.top_k).values[-1]\n                scores = scores.masked_fill(scores < kth, float(\"-inf\"))\n            if params.top_p < 1.0:\n                sorted_scores, order = torch.sort(scores, descending=True)\n                probs = sorted_scores.softmax(dim=-1)\n                drop = probs.cumsum(dim=-1) - probs > params.top_p  # mass before this token already enough\n                scores = scores.scatter(0, order[drop], float(\"-inf\"))\n            probs = (scores / params.temperature).softmax(dim=-1)\n",
     "why": "temperature applied after top-k/top-p (at the softmax): top-p keeps the set of the untempered distribution, not vLLM's (temperature first)",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=2.0, top_p=0.5)); s.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[1.0, 0.1, 0.0]])\n"
              ">>> drawn = {sample_tokens(logits, [s], {2})[0] for _ in range(100)}\n"
              ">>> assert drawn == {0, 1}"},
    {"task": 5, "file": "engine.py",
     "find": "scores = scores.masked_fill(scores < kth, float(\"-inf\"))",
     "replace": "scores = scores.masked_fill(scores <= kth, float(\"-inf\"))",
     "why": "off by one in top-k: the k-th largest logit is dropped too (k - 1 kept; top_k=1 leaves nothing)",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=1.0, top_k=2)); s.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[3.0, 2.5, 0.0, 0.0]])\n"
              ">>> drawn = {sample_tokens(logits, [s], {7})[0] for _ in range(100)}\n"
              ">>> assert drawn == {0, 1}"},
    {"task": 5, "file": "engine.py",
     "find": "                kth = torch.topk(scores, params.top_k).values[-1]\n                scores = scores.masked_fill(scores < kth, float(\"-inf\"))\n",
     "replace": "                keep = torch.topk(scores, params.top_k).indices\n                scores = torch.full_like(scores, float(\"-inf\")).scatter(0, keep, scores[keep])\n",
     "why": "top-k keeps exactly k indices (torch.topk's), dropping tokens tied with the k-th logit that vLLM's threshold keeps",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=1.0, top_k=1)); s.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[1.0, 1.0, 0.0, 0.0]])\n"
              ">>> drawn = {sample_tokens(logits, [s], {7})[0] for _ in range(100)}\n"
              ">>> assert drawn == {0, 1}"},
    {"task": 5, "file": "engine.py",
     "find": "drop = probs.cumsum(dim=-1) - probs > params.top_p",
     "replace": "drop = probs.cumsum(dim=-1) > params.top_p",
     "why": "top-p drops the token whose cumulative probability crosses top_p (the set no longer reaches top_p; the most likely token itself can go)",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=1.0, top_p=0.7)); s.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[0.6, 0.3, 0.1]]).log()\n"
              ">>> drawn = {sample_tokens(logits, [s], {7})[0] for _ in range(100)}\n"
              ">>> assert drawn == {0, 1}"},
    {"task": 5, "file": "engine.py",
     "find": "token = int(torch.multinomial(probs, 1, generator=seq.generator or default_generator))",
     "replace": "token = int(torch.multinomial(probs, 1, generator=default_generator))",
     "why": "every row draws from the engine's generator: a seeded request's tokens then depend on what else is in the batch and on earlier requests",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> logits = torch.zeros(1, 64)\n"
              ">>> def draws(engine_seed):\n"
              "...     s = Sequence('r', [1], SP(temperature=1.0, seed=7)); s.generator = torch.Generator().manual_seed(7)\n"
              "...     g = torch.Generator().manual_seed(engine_seed)\n"
              "...     return [sample_tokens(logits, [s], {2}, g)[0] for _ in range(20)]\n"
              ">>> assert draws(0) == draws(1)"},
    {"task": 5, "file": "engine.py",
     "find": "            logprobs = torch.log_softmax(row, dim=-1)\n",
     "replace": "            logprobs = torch.log_softmax(processed_row, dim=-1)\n",
     "why": "logprobs reported from the processed row (logit_bias / allowed_token_ids applied) instead of the model's raw logits (vLLM's default raw_logprobs)",
     "check": ">>> import math, torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=0, logprobs=0, logit_bias={3: 5})); logits = torch.zeros(1, 8)\n"
              ">>> assert sample_tokens(logits, [s], {2}) == [3] and abs(s.logprobs[0][3] - math.log(1 / 8)) < 1e-5"},
    {"task": 5, "file": "engine.py",
     "find": "            top = torch.topk(logprobs, params.logprobs).indices.tolist() if params.logprobs else []",
     "replace": "            top = torch.topk(logprobs, params.logprobs + 1).indices.tolist()",
     "why": "logprobs=n taken as the chosen token plus n + 1 top ones (the chosen one counted apart twice): one entry too many when it is the most likely",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> a = Sequence('a', [1], SP(temperature=0, logprobs=2)); b = Sequence('b', [1], SP(temperature=0, logprobs=0))\n"
              ">>> assert sample_tokens(torch.arange(8.0).repeat(2, 1), [a, b], {2}) == [7, 7]\n"
              ">>> assert sorted(a.logprobs[0]) == [6, 7] and list(b.logprobs[0]) == [7]"},
    {"task": 5, "file": "engine.py",
     "find": "            token = int(scores.argmax())\n",
     "replace": "            token = int(processed_row.argmax())\n",
     "why": "a greedy row outside the fast path takes processed's argmax, before the min_tokens ban",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> s = Sequence('r', [1], SP(temperature=0, min_tokens=2)); logits = torch.zeros(1, 8); logits[0, 2] = 5.0; logits[0, 6] = 1.0\n"
              ">>> assert sample_tokens(logits, [s], {2}) == [6]"},
    {"task": 5, "file": "engine.py",
     "find": "            if 0 < params.top_k < scores.shape[-1]:\n",
     "replace": "            if params.top_k != -1:\n",
     "why": "only -1 read as 'top-k off' (the docstring's default): top_k=0, which vLLM also takes as off, or a top_k above the vocabulary breaks the draw",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> a = Sequence('a', [1], SP(temperature=1.0, top_k=0, seed=1)); a.generator = torch.Generator().manual_seed(1)\n"
              ">>> b = Sequence('b', [1], SP(temperature=1.0, top_k=50, seed=1)); b.generator = torch.Generator().manual_seed(1)\n"
              ">>> toks = sample_tokens(torch.zeros(2, 8), [a, b], {2})\n"
              ">>> assert len(toks) == 2"},
    # Task 5: the engine — step
    {"task": 5, "file": "engine.py",
     "find": "            if seq.first_token_time is None:\n                seq.first_token_time = now\n",
     "replace": "            seq.first_token_time = now\n",
     "why": "first_token_time overwritten at every token: the request's time to first token becomes its last token's time",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> m = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=6, ignore_eos=True))[0].metrics\n"
              ">>> assert m.arrival_time <= m.first_token_time < m.finished_time"},
    {"task": 5, "file": "engine.py",
     "find": "            if all(s.is_finished for s in request.seqs):\n                request.finished_time = now",
     "replace": "            if any(s.is_finished for s in request.seqs):\n                request.finished_time = now",
     "why": "a request with n > 1 completions is reported finished (and forgotten) when its first sequence ends",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=2, max_num_batched_tokens=6)\n"
              ">>> out = llm.generate([[1, 318, 316, 328, 289]], SP(n=2, temperature=0, max_tokens=2, ignore_eos=True))[0]\n"
              ">>> assert [len(c.token_ids) for c in out.outputs] == [2, 2] and all(c.finish_reason == 'length' for c in out.outputs)"},
    {"task": 5, "file": "engine.py",
     "find": "        for request in touched.values():\n",
     "replace": "        for request in list(self.requests.values()):\n",
     "why": "step reports every unfinished request, also those in the middle of their prompt that got no token (README: only the requests that got a token)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=2, max_num_batched_tokens=8); e = llm.engine\n"
              ">>> e.add_request('a', [1, 318, 316], SP(temperature=0, max_tokens=3)); e.add_request('b', [1] + list(range(300, 319)), SP(temperature=0, max_tokens=3))\n"
              ">>> assert [o.request_id for o in e.step()] == ['a']"},
    {"task": 5, "file": "engine.py",
     "find": "                request.finished_time = now\n                del self.requests[request.request_id]\n",
     "replace": "                del self.requests[request.request_id]\n",
     "why": "the finished request's finished_time is never stamped (its metrics say it never finished)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> m = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=3))[0].metrics\n"
              ">>> assert m.finished_time is not None and m.finished_time >= m.first_token_time"},
    {"task": 5, "file": "engine.py",
     "find": "        self._record_step(out)\n        logits = self.runner.run(out.seqs, out.num_new_tokens)\n        sampled = []\n        for seq, num_new in zip(out.seqs, out.num_new_tokens, strict=True):\n            seq.num_computed_tokens += num_new\n            if seq.num_computed_tokens == len(seq):\n                sampled.append(seq)\n",
     "replace": "        logits = self.runner.run(out.seqs, out.num_new_tokens)\n        sampled = []\n        for seq, num_new in zip(out.seqs, out.num_new_tokens, strict=True):\n            seq.num_computed_tokens += num_new\n            if seq.num_computed_tokens == len(seq):\n                sampled.append(seq)\n        self._record_step(out)\n",
     "why": "the step recorded after num_computed_tokens advanced: computed prompt tokens are counted as prefix-cache savings",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> out = llm.generate([[1, 318, 316, 328, 289]], SP(temperature=0, max_tokens=3, ignore_eos=True))[0]\n"
              ">>> st = llm.engine.stats\n"
              ">>> assert st.prefill_tokens_computed == 5 and st.prefill_tokens_saved == 0 and st.generation_tokens == 3"},
    {"task": 5, "file": "engine.py",
     "find": "tokens = sample_tokens(logits, sampled, self.eos_token_ids, self.generator) if sampled else []",
     "replace": "tokens = sample_tokens(logits, sampled, {self.tokenizer.eos_token_id}, self.generator) if sampled else []",
     "why": "only the tokenizer's eos is banned under min_tokens, not the generation config's other eos ids",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> assert llm.generate(['The cat sat'], SP(temperature=0, max_tokens=4))[0].outputs[0].token_ids[2] == 17\n"
              ">>> llm.engine.eos_token_ids = {2, 17}\n"
              ">>> out = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=8, min_tokens=4))[0].outputs[0]\n"
              ">>> assert 17 not in out.token_ids[:4]"},
    {"task": 5, "file": "engine.py",
     "find": "tokens = sample_tokens(logits, sampled, self.eos_token_ids, self.generator) if sampled else []",
     "replace": "tokens = sample_tokens(logits, sampled, self.eos_token_ids) if sampled else []",
     "why": "the engine's seeded generator is not passed: unseeded requests draw from torch's global generator, so the engine's seed decides nothing",
     "check": ">>> import torch\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> def run(global_seed):\n"
              "...     llm.engine.generator.manual_seed(3); _ = torch.manual_seed(global_seed)\n"
              "...     return llm.generate(['The cat sat'], SP(temperature=2.0, max_tokens=20, ignore_eos=True))[0].outputs[0].token_ids\n"
              ">>> assert run(1) == run(2)"},
    # Task 5: the engine — _check_stop
    {"task": 5, "file": "engine.py",
     "find": "        if seq.num_output_tokens >= params.min_tokens and token == eos:\n            return \"stop\"  # vLLM checks it before stop_token_ids: stop_reason None even when listed there\n        if seq.num_output_tokens >= params.min_tokens:\n            if token in params.stop_token_ids:\n                seq.stop_reason = token\n                return \"stop\"\n",
     "replace": "        if seq.num_output_tokens >= params.min_tokens:\n            if token in params.stop_token_ids:\n                seq.stop_reason = token\n                return \"stop\"\n        if seq.num_output_tokens >= params.min_tokens and token == eos:\n            return \"stop\"\n        if seq.num_output_tokens >= params.min_tokens:\n",
     "why": "stop_token_ids checked before the tokenizer's eos: an eos listed in stop_token_ids reports stop_reason = its id (vLLM: None)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine\n"
              ">>> s = Sequence('r', [1, 318], SP(stop_token_ids=[2, 19])); s.append_token(2)\n"
              ">>> assert e._check_stop(s) == 'stop' and s.stop_reason is None"},
    {"task": 5, "file": "engine.py",
     "find": "        eos = None if params.ignore_eos else self.tokenizer.eos_token_id  # vLLM's eos_token_id\n",
     "replace": "        eos = self.tokenizer.eos_token_id  # vLLM's eos_token_id\n",
     "why": "ignore_eos honoured for the generation config's eos ids but not for the tokenizer's own eos",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine\n"
              ">>> s = Sequence('r', [1, 318], SP(ignore_eos=True)); s.append_token(2)\n"
              ">>> assert e._check_stop(s) is None"},
    {"task": 5, "file": "engine.py",
     "find": "            if not params.ignore_eos and token in self.eos_token_ids:\n",
     "replace": "            if token in self.eos_token_ids:\n",
     "why": "the generation config's other eos ids stop a request even under ignore_eos",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine; e.eos_token_ids = {2, 17}\n"
              ">>> s = Sequence('r', [1, 318], SP(ignore_eos=True)); s.append_token(17)\n"
              ">>> assert e._check_stop(s) is None"},
    {"task": 5, "file": "engine.py",
     "find": "                seq.stop_reason = token  # vLLM adds the other eos ids to stop_token_ids\n",
     "replace": "",
     "why": "another eos id of the generation config stops like the tokenizer's eos, with stop_reason None (vLLM: the id, as a stop token)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine; e.eos_token_ids = {2, 17}\n"
              ">>> s = Sequence('r', [1, 318], SP()); s.append_token(17)\n"
              ">>> assert e._check_stop(s) == 'stop' and s.stop_reason == 17"},
    {"task": 5, "file": "engine.py",
     "find": "        if seq.num_output_tokens > params.min_tokens:  # vLLM: only text after the first min_tokens tokens\n",
     "replace": "        if seq.num_output_tokens >= params.min_tokens:  # vLLM: only text after the first min_tokens tokens\n",
     "why": "stop strings searched from the min_tokens-th token on, so a stop string in the text of the first min_tokens tokens ends the request",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine\n"
              ">>> s = Sequence('r', [1, 318, 316, 328], SP(min_tokens=1, stop=['is'])); s.append_token(296)\n"
              ">>> assert e._check_stop(s) is None and s.text == ' is'"},
    {"task": 5, "file": "engine.py",
     "find": "at = seq.text.find(stop, max(0, old_length - len(stop) + 1))",
     "replace": "at = seq.text.find(stop, old_length)",
     "why": "stop strings searched in the new text only: one that straddles two tokens' text is missed",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine\n"
              ">>> s = Sequence('r', [1, 318, 316, 328], SP(stop=['s sm'])); s.append_token(296)\n"
              ">>> assert e._check_stop(s) is None; s.append_token(475)\n"
              ">>> assert e._check_stop(s) == 'stop' and s.text == ' i' and s.stop_reason == 's sm'"},
    {"task": 5, "file": "engine.py",
     "find": "at = seq.text.find(stop, max(0, old_length - len(stop) + 1))",
     "replace": "at = seq.text.find(stop, max(0, old_length - len(stop)))",
     "why": "searches one character too far back: a stop string lying wholly in the text of the first min_tokens tokens (never searched then) is found a step later",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine\n"
              ">>> s = Sequence('r', [1, 318, 316, 328], SP(min_tokens=1, stop=[' is'])); s.append_token(296)\n"
              ">>> assert e._check_stop(s) is None; s.append_token(475)\n"
              ">>> assert e._check_stop(s) is None and s.text == ' is small'"},
    {"task": 5, "file": "engine.py",
     "find": "                    seq.text, seq.stop_reason = seq.text[:at], stop\n",
     "replace": "                    seq.text, seq.stop_reason = seq.text[:at + len(stop)], stop\n",
     "why": "the text is cut after the stop string instead of before it (include_stop_str_in_output's behaviour, off by default)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine\n"
              ">>> s = Sequence('r', [1, 318, 316, 328], SP(stop='small')); s.append_token(296); _ = e._check_stop(s); s.append_token(475)\n"
              ">>> assert e._check_stop(s) == 'stop' and s.text == ' is '"},
    {"task": 5, "file": "engine.py",
     "find": "        if seq.num_output_tokens >= params.max_tokens or len(seq) >= self.max_model_len:\n",
     "replace": "        if len(seq) >= params.max_tokens or len(seq) >= self.max_model_len:\n",
     "why": "max_tokens compared with prompt + output (max_model_len's count) instead of the generated tokens alone",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> c = llm.generate([[1, 318, 316, 328, 289, 328]], SP(temperature=0, max_tokens=4, ignore_eos=True))[0].outputs[0]\n"
              ">>> assert len(c.token_ids) == 4 and c.finish_reason == 'length'"},
    {"task": 5, "file": "engine.py",
     "find": "        if seq.num_output_tokens >= params.max_tokens or len(seq) >= self.max_model_len:\n",
     "replace": "        if seq.num_output_tokens >= params.max_tokens or len(seq) > self.max_model_len:\n",
     "why": "off by one at max_model_len: a sequence grows one token past the model length",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=16, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> c = llm.generate([[1] + list(range(300, 312))], SP(temperature=0, max_tokens=10, ignore_eos=True))[0].outputs[0]\n"
              ">>> assert len(c.token_ids) == 3 and c.finish_reason == 'length'"},
    {"task": 5, "file": "engine.py",
     "find": "        eos = None if params.ignore_eos else self.tokenizer.eos_token_id  # vLLM's eos_token_id\n",
     "replace": "        eos = None if params.ignore_eos else self.tokenizer.eos_token_id  # vLLM's eos_token_id\n        if seq.num_output_tokens >= params.max_tokens:\n            return \"length\"\n",
     "why": "the length limit checked first: an eos (or stop token) that is also the max_tokens-th token reports 'length' instead of 'stop'",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> e = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4).engine\n"
              ">>> s = Sequence('r', [1, 318], SP(max_tokens=1)); s.append_token(2)\n"
              ">>> assert e._check_stop(s) == 'stop'"},
    {"task": 5, "file": "engine.py",
     "find": "        if params.stop_strings or self.incremental_text:\n",
     "replace": "        if self.incremental_text:\n",
     "why": "text decoded only when streaming: under LLM.generate (incremental text off) stop strings are never found",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> c = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=20, stop=['small']))[0].outputs[0]\n"
              ">>> assert c.text == ' is ' and c.finish_reason == 'stop' and c.stop_reason == 'small'"},
    # Task 5: the engine — LLM.generate
    {"task": 5, "file": "engine.py",
     "find": "        if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):\n",
     "replace": "        if isinstance(prompts, str):\n",
     "why": "one token-id list is taken as a list of prompts (README: a single token-id list is one prompt)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> outs = llm.generate([1, 318, 316], SP(temperature=0, max_tokens=2))\n"
              ">>> assert len(outs) == 1 and outs[0].prompt_token_ids == [1, 318, 316]"},
    {"task": 5, "file": "engine.py",
     "find": "            params_list = [sampling_params or self.get_default_sampling_params()] * len(prompts)",
     "replace": "            params_list = [sampling_params or SamplingParams()] * len(prompts)",
     "why": "no settings means SamplingParams()'s own defaults, not the model's (vLLM's get_default_sampling_params, README)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> llm.get_default_sampling_params = lambda: SP(temperature=0, max_tokens=3, ignore_eos=True)\n"
              ">>> c = llm.generate('The cat sat')[0].outputs[0]\n"
              ">>> assert c.token_ids == [296, 475, 17]"},
    {"task": 5, "file": "engine.py",
     "find": "        except ValueError:\n            for request_id in added:\n                self.engine.abort(request_id)\n            raise\n",
     "replace": "        except ValueError:\n            raise\n",
     "why": "a bad prompt part-way raises but leaves the prompts before it queued (README: nothing is queued when any prompt is bad)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> try:\n"
              "...     _ = llm.generate([[1, 318], [1, 99999]], SP(max_tokens=2)); raised = False\n"
              "... except ValueError:\n"
              "...     raised = True\n"
              ">>> assert raised and not llm.engine.has_unfinished_requests() and not llm.engine.scheduler.has_unfinished()"},
    {"task": 5, "file": "engine.py",
     "find": "        finally:\n            self.engine.incremental_text = previous\n",
     "replace": "        finally:\n            pass\n",
     "why": "incremental text is turned off for generate and never turned back on: a later streamed step (engine.step, the async server) carries no text",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> _ = llm.generate(['The cat sat'], SP(temperature=0, max_tokens=2))\n"
              ">>> llm.engine.add_request('s', 'The cat sat', SP(temperature=0, max_tokens=5))\n"
              ">>> assert llm.engine.step()[0].outputs[0].text == ' is'"},
    {"task": 5, "file": "engine.py",
     "find": "        return [finished[request_id] for request_id in ids]\n",
     "replace": "        return list(finished.values())\n",
     "why": "outputs returned in the order the requests finished, not the prompts' order",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> prompts = ['The cat sat', 'Once upon a time']\n"
              ">>> outs = llm.generate(prompts, [SP(temperature=0, max_tokens=6, ignore_eos=True), SP(temperature=0, max_tokens=1)])\n"
              ">>> assert [o.prompt for o in outs] == prompts"},
    {"task": 5, "file": "engine.py",
     "find": "        if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):\n            prompts = [prompts]  # type: ignore[list-item]\n        if not prompts:\n            raise ValueError(\"prompts must not be empty\")\n",
     "replace": "        if not prompts:\n            raise ValueError(\"prompts must not be empty\")\n        if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):\n            prompts = [prompts]  # type: ignore[list-item]\n",
     "why": "the emptiness check runs before a lone prompt is wrapped, so the text \"\" (one bos token, accepted as in vLLM's LLM) is refused as an empty prompt list",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams as SP\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, num_kv_blocks=16, max_num_seqs=4)\n"
              ">>> outs = llm.generate('', SP(temperature=0, max_tokens=2))\n"
              ">>> assert len(outs) == 1 and outs[0].prompt == '' and outs[0].prompt_token_ids == [1]"},
]
