"""Blind round 6 for lab02_vllm: plausible mistakes written from the README, docstrings and solution only (reviewer had not read the tests)."""

MUTANTS = [{'task': 3,
  'file': 'model_runner.py',
  'find': 'positions.extend(range(start, end))',
  'replace': 'positions.extend(range(n))',
  'why': 'positions counted from 0 within the chunk (as for a fresh prompt), not from num_computed_tokens: a '
         'later chunk or a decode after a cached prefix gets the wrong rotary positions',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> s = Sequence("a", [5, 6, 7, 8, 9, 10, 11], SamplingParams())\n'
           '>>> s.block_table, s.num_computed_tokens = [3, 6], 4\n'
           '>>> ids, pos, meta, rows = r.prepare([s], [2])\n'
           '>>> assert pos.tolist() == [4, 5], pos.tolist()'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'for i in range(start, end))',
  'replace': 'for i in range(n))',
  'why': 'slots of the chunk computed from chunk-relative indices: the second chunk overwrites the first '
         "chunk's slots in block 0",
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> s = Sequence("a", [5, 6, 7, 8, 9, 10, 11], SamplingParams())\n'
           '>>> s.block_table, s.num_computed_tokens = [3, 6], 4\n'
           '>>> ids, pos, meta, rows = r.prepare([s], [2])\n'
           '>>> assert meta.slot_mapping.tolist() == [24, 25], meta.slot_mapping.tolist()'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'context_lens.append(end)',
  'replace': 'context_lens.append(n)',
  'why': "context length taken as the chunk's length (query length), forgetting the cached prefix / earlier "
         'chunks the new tokens must attend to',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> s = Sequence("a", [5, 6, 7, 8, 9, 10, 11], SamplingParams())\n'
           '>>> s.block_table, s.num_computed_tokens = [3, 6], 4\n'
           '>>> ids, pos, meta, rows = r.prepare([s], [2])\n'
           '>>> assert meta.context_lens_list == [6] and meta.context_lens.tolist() == [6], '
           'meta.context_lens_list'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'context_lens.append(end)',
  'replace': 'context_lens.append(len(seq))',
  'why': "context length taken as len(seq), as nano-vllm's whole-prompt prefill: a chunk that stops before "
         'the end attends over slots not written yet',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> s = Sequence("a", [5, 6, 7, 8, 9, 10, 11], SamplingParams())\n'
           '>>> s.block_table, s.num_computed_tokens = [3, 6], 4\n'
           '>>> ids, pos, meta, rows = r.prepare([s], [2])\n'
           '>>> assert meta.context_lens_list == [6] and meta.max_context_len == 6, meta.context_lens_list'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'if end == len(seq):',
  'replace': 'if end >= seq.num_prompt_tokens:',
  'why': 'a row is sampled once the chunk covers the prompt, not the whole sequence: a preempted sequence '
         'recomputing prompt + outputs samples in the middle of its recomputation',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> s = Sequence("a", [5, 6, 7, 8], SamplingParams())\n'
           '>>> s.append_token(9); s.append_token(10)\n'
           '>>> s.block_table = [1, 2]\n'
           '>>> ids, pos, meta, rows = r.prepare([s], [4])\n'
           '>>> assert rows.tolist() == [], rows.tolist()\n'
           '>>> s.num_computed_tokens = 4\n'
           '>>> ids, pos, meta, rows = r.prepare([s], [2])\n'
           '>>> assert rows.tolist() == [1], rows.tolist()'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'logits_indices.append(starts[-1] - 1)',
  'replace': 'logits_indices.append(starts[-2])',
  'why': "the sampled row of a prefill chunk is its first token's (its query start), not its last token's",
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> d = Sequence("d", [5, 6, 7, 8, 9], SamplingParams())\n'
           '>>> d.block_table, d.num_computed_tokens = [1, 2], 4\n'
           '>>> p = Sequence("p", [20, 21, 22], SamplingParams())\n'
           '>>> p.block_table = [5]\n'
           '>>> ids, pos, meta, rows = r.prepare([d, p], [1, 3])\n'
           '>>> assert rows.tolist() == [0, 3], rows.tolist()'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'is_prefill=any(n > 1 for n in num_new_tokens)',
  'replace': 'is_prefill=all(n > 1 for n in num_new_tokens)',
  'why': 'is_prefill set only when every sequence is a prefill chunk: a mixed batch of decodes and a chunk '
         'is sent down the decode-only path',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> d = Sequence("d", [5, 6, 7, 8, 9], SamplingParams())\n'
           '>>> d.block_table, d.num_computed_tokens = [1, 2], 4\n'
           '>>> p = Sequence("p", [20, 21, 22], SamplingParams())\n'
           '>>> p.block_table = [5]\n'
           '>>> ids, pos, meta, rows = r.prepare([d, p], [1, 3])\n'
           '>>> assert meta.is_prefill is True'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'max_context_len=max(context_lens)',
  'replace': 'max_context_len=context_lens[-1]',
  'why': 'max_context_len taken from the last sequence only (single-sequence thinking), smaller than an '
         "earlier decode's context",
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> d = Sequence("d", [5, 6, 7, 8, 9], SamplingParams())\n'
           '>>> d.block_table, d.num_computed_tokens = [1, 2], 4\n'
           '>>> p = Sequence("p", [20, 21, 22], SamplingParams())\n'
           '>>> p.block_table = [5]\n'
           '>>> ids, pos, meta, rows = r.prepare([d, p], [1, 3])\n'
           '>>> assert meta.max_context_len == 5, meta.max_context_len'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'input_ids.extend(seq.token_ids[start:end])',
  'replace': 'input_ids.extend(seq.token_ids[-n:])',
  'why': "a sequence's new tokens taken as its last n tokens (right for a decode or a whole prompt) instead "
         "of token_ids[c:c + n]: a middle chunk feeds the prompt's tail",
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> s = Sequence("a", [5, 6, 7, 8, 9, 10, 11], SamplingParams())\n'
           '>>> s.block_table, s.num_computed_tokens = [3, 6], 4\n'
           '>>> ids, pos, meta, rows = r.prepare([s], [2])\n'
           '>>> assert ids.tolist() == [9, 10], ids.tolist()'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n'
          '        out = paged_attention(q, k_cache, v_cache, meta, self.scale)',
  'replace': 'out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n'
             '        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)',
  'why': "attends before storing the step's keys and values: each new token misses itself and the rest of "
         'its chunk (stale or zero slots)',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> import torch\n'
           '>>> from transformers import AutoModelForCausalLM\n'
           '>>> hf = AutoModelForCausalLM.from_pretrained(fixture_path()).eval()\n'
           '>>> s = Sequence("a", [1, 267, 81, 357, 362, 81, 73], SamplingParams())\n'
           '>>> s.block_table = [2, 5]\n'
           '>>> got = r.run([s], [7])\n'
           '>>> with torch.no_grad():\n'
           '...     want = hf(torch.tensor([s.token_ids])).logits[0, -1:]\n'
           '>>> assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()\n'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'return self.o_proj(out.reshape(num_tokens, self.q_size))',
  'replace': 'return self.o_proj(out.transpose(0, 1).reshape(num_tokens, self.q_size))',
  'why': 'attention output assumed (heads, tokens, head_dim) as SDPA returns it, so it is transposed before '
         'the merge of the heads: the rows are scrambled across tokens',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> import torch\n'
           '>>> from transformers import AutoModelForCausalLM\n'
           '>>> hf = AutoModelForCausalLM.from_pretrained(fixture_path()).eval()\n'
           '>>> s = Sequence("a", [1, 267, 81, 357, 362, 81, 73], SamplingParams())\n'
           '>>> s.block_table = [2, 5]\n'
           '>>> got = r.run([s], [7])\n'
           '>>> with torch.no_grad():\n'
           '...     want = hf(torch.tensor([s.token_ids])).logits[0, -1:]\n'
           '>>> assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()\n'},
 {'task': 3,
  'file': 'model_runner.py',
  'find': 'out = paged_attention(q, k_cache, v_cache, meta, self.scale)',
  'replace': 'out = paged_attention(q, k_cache, v_cache, meta, self.q_size ** -0.5)',
  'why': 'softmax scale 1/sqrt(num_heads x head_dim) (the model width) instead of 1/sqrt(head_dim)',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.model_runner import ModelRunner\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> r = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=8)\n'
           '>>> import torch\n'
           '>>> from transformers import AutoModelForCausalLM\n'
           '>>> hf = AutoModelForCausalLM.from_pretrained(fixture_path()).eval()\n'
           '>>> s = Sequence("a", [1, 267, 81, 357, 362, 81, 73], SamplingParams())\n'
           '>>> s.block_table = [2, 5]\n'
           '>>> got = r.run([s], [7])\n'
           '>>> with torch.no_grad():\n'
           '...     want = hf(torch.tensor([s.token_ids])).logits[0, -1:]\n'
           '>>> assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()\n'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'victim = self.running.pop()  # the newest',
  'replace': 'victim = self.running.popleft()',
  'why': 'preempts the oldest running sequence instead of the newest (vLLM preempts from the end of running)',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=4, block_size=4, watermark=0.0)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16, '
           'long_prefill_token_threshold=4)\n'
           '>>> a, b = Sequence("a", list(range(1, 9)), SamplingParams()), Sequence("b", list(range(11, '
           '19)), SamplingParams())\n'
           '>>> sch.add(a); sch.add(b)\n'
           '>>> for _ in range(2):\n'
           '...     o = sch.schedule()\n'
           '...     for q, n in zip(o.seqs, o.num_new_tokens):\n'
           '...         q.num_computed_tokens += n\n'
           '>>> a.append_token(3); b.append_token(3)\n'
           '>>> o = sch.schedule()\n'
           '>>> assert o.preempted == [b] and o.seqs == [a], (o.preempted, o.seqs)'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'if out.preempted:\n            return out',
  'replace': 'if out.preempted:\n            pass',
  'why': 'waiting sequences still admitted in a step that preempted: the victim (or a newer request) is '
         'readmitted at once and thrashes',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=4, block_size=4, watermark=0.0)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16, '
           'long_prefill_token_threshold=4)\n'
           '>>> a, b = Sequence("a", list(range(1, 9)), SamplingParams()), Sequence("b", list(range(11, '
           '19)), SamplingParams())\n'
           '>>> sch.add(a); sch.add(b)\n'
           '>>> for _ in range(2):\n'
           '...     o = sch.schedule()\n'
           '...     for q, n in zip(o.seqs, o.num_new_tokens):\n'
           '...         q.num_computed_tokens += n\n'
           '>>> a.append_token(3); b.append_token(3)\n'
           '>>> o = sch.schedule()\n'
           '>>> assert o.preempted == [b] and o.new_seqs == [] and list(sch.waiting) == [b], o.new_seqs'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'token_budget -= num_new\n                index += 1',
  'replace': 'index += 1',
  'why': "the running sequences' tokens are not taken off the step's budget: a partly prefilled running "
         'sequence gets a chunk past max_num_batched_tokens',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=64, block_size=4, watermark=0.0)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=8)\n'
           '>>> a, b = Sequence("a", [1, 2, 3, 4], SamplingParams()), Sequence("b", list(range(10, 30)), '
           'SamplingParams())\n'
           '>>> sch.add(a); sch.add(b)\n'
           '>>> o = sch.schedule()\n'
           '>>> assert o.num_new_tokens == [4, 4]\n'
           '>>> for q, n in zip(o.seqs, o.num_new_tokens):\n'
           '...     q.num_computed_tokens += n\n'
           '>>> a.append_token(7)\n'
           '>>> o = sch.schedule()\n'
           '>>> assert o.num_new_tokens == [1, 7], o.num_new_tokens\n'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'num_new = self._cap(len(seq) - seq.num_computed_tokens, token_budget)',
  'replace': 'num_new = 1',
  'why': 'every running sequence treated as a decode (one token): a prompt chunked over several steps '
         'advances one token per step after its first chunk',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=64, block_size=4, watermark=0.0)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=8)\n'
           '>>> a, b = Sequence("a", [1, 2, 3, 4], SamplingParams()), Sequence("b", list(range(10, 30)), '
           'SamplingParams())\n'
           '>>> sch.add(a); sch.add(b)\n'
           '>>> o = sch.schedule()\n'
           '>>> assert o.num_new_tokens == [4, 4]\n'
           '>>> for q, n in zip(o.seqs, o.num_new_tokens):\n'
           '...     q.num_computed_tokens += n\n'
           '>>> a.append_token(7)\n'
           '>>> o = sch.schedule()\n'
           '>>> assert o.num_new_tokens == [1, 7], o.num_new_tokens\n'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'num_new = len(seq) - computed',
  'replace': 'num_new = len(seq)',
  'why': 'the prefix-cache hit is not taken off the tokens to compute: a waiting sequence with a cached '
         'prefix is scheduled for len(seq) tokens after it',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=16, block_size=4, watermark=0.0, enable_prefix_caching=True)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=32)\n'
           '>>> a = Sequence("a", list(range(1, 10)), SamplingParams())\n'
           '>>> sch.add(a); o = sch.schedule(); sch.finish(a, "stop")\n'
           '>>> b = Sequence("b", list(range(1, 10)), SamplingParams())\n'
           '>>> sch.add(b); o = sch.schedule()\n'
           '>>> assert o.num_new_tokens == [1] and b.num_computed_tokens == 8, o.num_new_tokens'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'num_new = self.long_prefill_token_threshold',
  'replace': 'pass',
  'why': 'long_prefill_token_threshold applied to running sequences only (through _cap), not to a waiting '
         "prompt's first chunk",
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=16, block_size=4, watermark=0.0)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=32, '
           'long_prefill_token_threshold=4)\n'
           '>>> a = Sequence("a", list(range(1, 11)), SamplingParams())\n'
           '>>> sch.add(a); o = sch.schedule()\n'
           '>>> assert o.num_new_tokens == [4], o.num_new_tokens'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'if not self.enable_chunked_prefill and num_new > token_budget:\n'
          '                bm.free(seq)\n'
          '                break',
  'replace': 'if not self.enable_chunked_prefill and num_new > token_budget:\n                break',
  'why': 'with chunked prefill off, a prompt that does not fit keeps the cached-prefix blocks it was just '
         "given: it holds them while waiting and the next schedule refuses it ('already has blocks')",
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=16, block_size=4, watermark=0.0, enable_prefix_caching=True)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=8, enable_chunked_prefill=False)\n'
           '>>> a = Sequence("a", [1, 2, 3, 4, 5], SamplingParams())\n'
           '>>> sch.add(a); o = sch.schedule(); sch.finish(a, "stop")\n'
           '>>> b = Sequence("b", [1, 2, 3, 4] + list(range(20, 30)), SamplingParams())\n'
           '>>> sch.add(b); o = sch.schedule()\n'
           '>>> assert o.seqs == [] and b.block_table == [] and bm.num_used_blocks == 0, b.block_table\n'
           '>>> o = sch.schedule()'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'if not bm.can_allocate_slots(seq, num_new, new=True):',
  'replace': 'if not bm.can_allocate_slots(seq, num_new):',
  'why': 'a waiting sequence admitted as if running: the watermark is not kept free, so the running ones are '
         'preempted soon after',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=10, block_size=4, watermark=0.2)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=64)\n'
           '>>> a, b = Sequence("a", [1, 2, 3, 4], SamplingParams()), Sequence("b", list(range(10, 42)), '
           'SamplingParams())\n'
           '>>> sch.add(a); sch.add(b); o = sch.schedule()\n'
           '>>> assert o.seqs == [a] and list(sch.waiting) == [b], o.seqs'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'self.waiting.appendleft(seq)',
  'replace': 'self.waiting.append(seq)',
  'why': 'a preempted sequence goes to the back of the waiting queue, behind newer requests (vLLM puts it at '
         'the front)',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=4, block_size=4, watermark=0.0)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=16, '
           'long_prefill_token_threshold=4)\n'
           '>>> a, b = Sequence("a", list(range(1, 9)), SamplingParams()), Sequence("b", list(range(11, '
           '19)), SamplingParams())\n'
           '>>> sch.add(a); sch.add(b)\n'
           '>>> for _ in range(2):\n'
           '...     o = sch.schedule()\n'
           '...     for q, n in zip(o.seqs, o.num_new_tokens):\n'
           '...         q.num_computed_tokens += n\n'
           '>>> a.append_token(3); b.append_token(3)\n'
           '>>> c = Sequence("c", [40, 41], SamplingParams()); sch.add(c)\n'
           '>>> o = sch.schedule()\n'
           '>>> assert list(sch.waiting) == [b, c], list(sch.waiting)'},
 {'task': 4,
  'file': 'scheduler.py',
  'find': 'for queue in (self.running, self.waiting):',
  'replace': 'for queue in (self.running,):',
  'why': 'finish takes a sequence out of running only: an aborted waiting request stays queued and is '
         'scheduled later',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=16, block_size=4, watermark=0.0)\n'
           '>>> sch = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=32)\n'
           '>>> a = Sequence("a", [1, 2], SamplingParams()); sch.add(a)\n'
           '>>> aborted = sch.abort("a")\n'
           '>>> assert list(sch.waiting) == [] and not sch.has_unfinished() and sch.schedule().seqs == []'},
 {'task': 4,
  'file': 'block_manager.py',
  'find': 'needed = missing + int(shared)',
  'replace': 'needed = missing',
  'why': 'can_allocate_slots ignores the copy-on-write block: a forked sequence writing into a shared last '
         'block is let through on a full pool and allocate_slots then fails',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=2, block_size=4, watermark=0.0)\n'
           '>>> p = Sequence("p", [1, 2, 3, 4, 5, 6], SamplingParams())\n'
           '>>> bm.allocate_cached_prefix(p)\n'
           '0\n'
           '>>> bm.allocate_slots(p, 6)\n'
           '>>> p.num_computed_tokens = 6\n'
           '>>> c = Sequence("p", [1, 2, 3, 4, 5, 6], SamplingParams(), index=1)\n'
           '>>> bm.fork(p, c)\n'
           '>>> c.append_token(9)\n'
           '>>> assert not bm.can_allocate_slots(c, 1)'},
 {'task': 4,
  'file': 'block_manager.py',
  'find': 'if not new or self.num_used_blocks == len(seq.block_table):',
  'replace': 'if not new or self.num_used_blocks == 0:',
  'why': "'alone' read as 'nothing in use', as task 1's can_allocate: a lone sequence whose cached prefix is "
         'in its own table is held to the watermark and may never be admitted',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=10, block_size=4, watermark=0.5, enable_prefix_caching=True)\n'
           '>>> a = Sequence("a", list(range(1, 10)), SamplingParams())\n'
           '>>> bm.allocate_cached_prefix(a)\n'
           '0\n'
           '>>> bm.allocate_slots(a, 9); bm.free(a)\n'
           '>>> b = Sequence("b", list(range(1, 9)) + list(range(50, 70)), SamplingParams())\n'
           '>>> bm.allocate_cached_prefix(b)\n'
           '8\n'
           '>>> assert bm.can_allocate_slots(b, 20, new=True)'},
 {'task': 4,
  'file': 'block_manager.py',
  'find': 'return needed <= self.num_free_blocks - self.watermark_blocks',
  'replace': 'return needed < self.num_free_blocks - self.watermark_blocks',
  'why': 'off by one at the watermark: an admission that leaves exactly watermark_blocks free is refused',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=10, block_size=4, watermark=0.2)\n'
           '>>> a = Sequence("a", [1, 2, 3, 4], SamplingParams())\n'
           '>>> bm.allocate_cached_prefix(a)\n'
           '0\n'
           '>>> bm.allocate_slots(a, 4)\n'
           '>>> b = Sequence("b", list(range(10, 38)), SamplingParams())\n'
           '>>> assert bm.can_allocate_slots(b, 28, new=True)'},
 {'task': 4,
  'file': 'block_manager.py',
  'find': 'if not new or self.num_used_blocks == len(seq.block_table):',
  'replace': 'if self.num_used_blocks == len(seq.block_table):',
  'why': 'the watermark applied to running sequences too: a running sequence is preempted although free '
         'blocks remain for its next block',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=4, block_size=4, watermark=0.5)\n'
           '>>> a, b = Sequence("a", [1, 2, 3, 4], SamplingParams()), Sequence("b", [5, 6, 7, 8], '
           'SamplingParams())\n'
           '>>> for q in (a, b):\n'
           '...     _ = bm.allocate_cached_prefix(q); _ = bm.allocate_slots(q, 4); q.num_computed_tokens = '
           '4; q.append_token(9)\n'
           '>>> assert bm.can_allocate_slots(a, 1)'},
 {'task': 4,
  'file': 'block_manager.py',
  'find': 'for index in range(seq.num_computed_tokens // self.block_size, end // self.block_size):',
  'replace': 'for index in range(seq.num_computed_tokens // self.block_size + 1, end // self.block_size):',
  'why': 'the block the chunk starts in is assumed already reported: a block that an earlier chunk began and '
         'this chunk completes is never hashed, so the prefix cache misses it',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=8, block_size=4, watermark=0.0, enable_prefix_caching=True)\n'
           '>>> a = Sequence("a", list(range(1, 10)), SamplingParams())\n'
           '>>> bm.allocate_cached_prefix(a)\n'
           '0\n'
           '>>> bm.allocate_slots(a, 2); a.num_computed_tokens = 2\n'
           '>>> bm.allocate_slots(a, 7)\n'
           '>>> assert bm.blocks[a.block_table[0]].block_hash is not None and '
           'bm.blocks[a.block_table[1]].block_hash is not None'},
 {'task': 4,
  'file': 'block_manager.py',
  'find': 'for index in range(seq.num_computed_tokens // self.block_size, end // self.block_size):',
  'replace': 'for index in range(seq.num_computed_tokens // self.block_size, -(-end // self.block_size)):',
  'why': "the chunk's partly filled last block is reported full too (ceil instead of floor): it gets a hash "
         'for tokens it does not hold yet',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=8, block_size=4, watermark=0.0, enable_prefix_caching=True)\n'
           '>>> a = Sequence("a", list(range(1, 7)), SamplingParams())\n'
           '>>> bm.allocate_cached_prefix(a)\n'
           '0\n'
           '>>> bm.allocate_slots(a, 6)\n'
           '>>> assert bm.blocks[a.block_table[0]].block_hash is not None and '
           'bm.blocks[a.block_table[1]].block_hash is None'},
 {'task': 4,
  'file': 'block_manager.py',
  'find': 'copy = (old, seq.block_table[index])',
  'replace': 'copy = (seq.block_table[index], old)',
  'why': 'copy-on-write pair reversed (destination, source): the runner copies the new empty block over the '
         'shared one',
  'check': '>>> from lab02_vllm.solution.block_manager import BlockManager\n'
           '>>> from lab02_vllm.solution.scheduler import Scheduler\n'
           '>>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> bm = BlockManager(num_blocks=4, block_size=4, watermark=0.0)\n'
           '>>> p = Sequence("p", [1, 2, 3, 4, 5, 6], SamplingParams())\n'
           '>>> bm.allocate_cached_prefix(p)\n'
           '0\n'
           '>>> bm.allocate_slots(p, 6)\n'
           '>>> p.num_computed_tokens = 6\n'
           '>>> c = Sequence("p", [1, 2, 3, 4, 5, 6], SamplingParams(), index=1)\n'
           '>>> bm.fork(p, c)\n'
           '>>> c.append_token(9)\n'
           '>>> pair = bm.allocate_slots(c, 1)\n'
           '>>> assert pair == (p.block_table[1], c.block_table[1]) and pair[0] != pair[1], pair'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'logprobs = torch.log_softmax(row, dim=-1)',
  'replace': 'logprobs = torch.log_softmax(scores, dim=-1)',
  'why': 'logprobs taken from the processed scores (after temperature and top-k/top-p) instead of the raw '
         "logits (vLLM's raw_logprobs default)",
  'check': '>>> import torch\n'
           '>>> from lab02_vllm.solution.engine import sample_tokens\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])\n'
           '>>> s = Sequence("a", [1], SamplingParams(temperature=0.5, logprobs=1))\n'
           '>>> s.generator = torch.Generator().manual_seed(0)\n'
           '>>> tok = sample_tokens(logits, [s], {3})\n'
           '>>> want = torch.log_softmax(logits[0], dim=-1)\n'
           '>>> assert all(abs(v - float(want[t])) < 1e-5 for t, v in s.logprobs[0].items()), s.logprobs'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'banned = set(params.stop_token_ids) | (set() if params.ignore_eos else stop_ids)',
  'replace': 'banned = set(params.stop_token_ids) | stop_ids',
  'why': 'min_tokens bans eos even with ignore_eos, where eos is an ordinary token that vLLM lets be sampled',
  'check': '>>> import torch\n'
           '>>> from lab02_vllm.solution.engine import sample_tokens\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])\n'
           '>>> s = Sequence("a", [1], SamplingParams(temperature=0, min_tokens=1, ignore_eos=True))\n'
           '>>> assert sample_tokens(logits, [s], {0}) == [0]'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'drop = probs.cumsum(dim=-1) - probs > params.top_p',
  'replace': 'drop = probs.cumsum(dim=-1) > params.top_p',
  'why': 'top-p drops the token whose cumulative probability first crosses top_p, so the kept mass is below '
         "top_p (Holtzman's nucleus keeps it)",
  'check': '>>> import torch\n'
           '>>> from lab02_vllm.solution.engine import sample_tokens\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> logits = torch.tensor([[0.5, 0.3, 0.2]]).log()\n'
           '>>> s = Sequence("a", [1], SamplingParams(top_p=0.6))\n'
           '>>> s.generator = torch.Generator().manual_seed(0)\n'
           '>>> drawn = {sample_tokens(logits, [s], set())[0] for _ in range(200)}\n'
           '>>> assert drawn == {0, 1}, drawn'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'generator=seq.generator or default_generator',
  'replace': 'generator=default_generator or seq.generator',
  'why': "the engine's generator preferred over the request's own: a seeded request's draws depend on the "
         "other requests and the engine's history",
  'check': '>>> import torch\n'
           '>>> from lab02_vllm.solution.engine import sample_tokens\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> logits = torch.zeros(1, 64)\n'
           '>>> def draws(engine_seed):\n'
           '...     s = Sequence("a", [1], SamplingParams(seed=5))\n'
           '...     s.generator = torch.Generator().manual_seed(5)\n'
           '...     g = torch.Generator().manual_seed(engine_seed)\n'
           '...     return [sample_tokens(logits, [s], set(), g)[0] for _ in range(5)]\n'
           '>>> assert draws(1) == draws(2)'},
 {'task': 5,
  'file': 'engine.py',
  'find': 's.params.logprobs is None and s.num_output_tokens >= s.params.min_tokens',
  'replace': 's.params.logprobs is None',
  'why': 'the all-greedy fast path taken while a sequence is under min_tokens: eos is picked before '
         'min_tokens',
  'check': '>>> import torch\n'
           '>>> from lab02_vllm.solution.engine import sample_tokens\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])\n'
           '>>> s = Sequence("a", [1], SamplingParams(temperature=0, min_tokens=2))\n'
           '>>> assert sample_tokens(logits, [s], {0}) == [1]'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'if params.logprobs is not None:',
  'replace': 'if params.logprobs:',
  'why': "logprobs=0 treated as off: vLLM still returns the chosen token's logprob",
  'check': '>>> import torch\n'
           '>>> from lab02_vllm.solution.engine import sample_tokens\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])\n'
           '>>> s = Sequence("a", [1], SamplingParams(temperature=0, logprobs=0))\n'
           '>>> tok = sample_tokens(logits, [s], set())\n'
           '>>> assert len(s.logprobs) == 1 and list(s.logprobs[0]) == [0], s.logprobs'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'at = seq.text.find(stop, max(0, old_length - len(stop) + 1))',
  'replace': 'at = seq.text.find(stop, old_length)',
  'why': "stop strings searched only in the new text: one that begins in the previous step's text and ends "
         'in this one is missed',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.engine import LLMEngine\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> e = LLMEngine(fixture_path(), num_kv_blocks=64, block_size=4, max_model_len=64)\n'
           '>>> ids = e.tokenizer("hello world, the cat sat").input_ids\n'
           '>>> s = Sequence("a", ids[:2], SamplingParams(stop="ll"))\n'
           '>>> reasons = []\n'
           '>>> for t in ids[2:5]:\n'
           '...     s.append_token(t); reasons.append(e._check_stop(s))\n'
           '...     if reasons[-1]: break\n'
           '>>> assert reasons == [None, "stop"] and s.text == "" and s.stop_reason == "ll", (reasons, '
           's.text)'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'if seq.num_output_tokens > params.min_tokens:',
  'replace': 'if seq.num_output_tokens >= params.min_tokens:',
  'why': 'stop strings checked from min_tokens outputs on, so the text of the first min_tokens tokens is '
         'searched (vLLM skips it)',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.engine import LLMEngine\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> e = LLMEngine(fixture_path(), num_kv_blocks=64, block_size=4, max_model_len=64)\n'
           '>>> ids = e.tokenizer("hello world, the cat sat").input_ids\n'
           '>>> s = Sequence("a", ids[:2], SamplingParams(stop="l", min_tokens=1))\n'
           '>>> s.append_token(ids[2])\n'
           '>>> assert e._check_stop(s) is None and s.text == "l", s.text'},
 {'task': 5,
  'file': 'engine.py',
  'find': '            if token in params.stop_token_ids:\n'
          '                seq.stop_reason = token\n'
          '                return "stop"\n'
          '            if not params.ignore_eos and token in self.eos_token_ids:\n'
          '                seq.stop_reason = token  # vLLM adds the other eos ids to stop_token_ids\n'
          '                return "stop"',
  'replace': '            if not params.ignore_eos and token in self.eos_token_ids:\n'
             '                return "stop"\n'
             '            if token in params.stop_token_ids:\n'
             '                seq.stop_reason = token\n'
             '                return "stop"',
  'why': 'eos checked before stop_token_ids: an eos id also listed in stop_token_ids ends with stop_reason '
         'None instead of the id',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.engine import LLMEngine\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> e = LLMEngine(fixture_path(), num_kv_blocks=64, block_size=4, max_model_len=64)\n'
           '>>> ids = e.tokenizer("hello world, the cat sat").input_ids\n'
           '>>> s = Sequence("a", [1, 5], SamplingParams(stop_token_ids=[2]))\n'
           '>>> s.append_token(2)\n'
           '>>> assert e._check_stop(s) == "stop" and s.stop_reason == 2, s.stop_reason'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'if seq.num_output_tokens >= params.min_tokens:\n            if token in params.stop_token_ids:',
  'replace': 'if seq.num_output_tokens >= params.max_tokens:\n'
             '            return "length"\n'
             '        if seq.num_output_tokens >= params.min_tokens:\n'
             '            if token in params.stop_token_ids:',
  'why': "max_tokens checked first: a stop token that is also the last allowed token reports 'length' "
         "instead of 'stop'",
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.engine import LLMEngine\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> e = LLMEngine(fixture_path(), num_kv_blocks=64, block_size=4, max_model_len=64)\n'
           '>>> ids = e.tokenizer("hello world, the cat sat").input_ids\n'
           '>>> s = Sequence("a", [1, 5], SamplingParams(max_tokens=1, stop_token_ids=[7]))\n'
           '>>> s.append_token(7)\n'
           '>>> assert e._check_stop(s) == "stop" and s.stop_reason == 7'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'if params.stop_strings or self.incremental_text:',
  'replace': 'if params.stop_strings:',
  'why': 'text decoded only for stop strings: a streamed request without stop strings has no incremental '
         'text',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.engine import LLMEngine\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> e = LLMEngine(fixture_path(), num_kv_blocks=64, block_size=4, max_model_len=64)\n'
           '>>> ids = e.tokenizer("hello world, the cat sat").input_ids\n'
           '>>> s = Sequence("a", ids[:2], SamplingParams())\n'
           '>>> s.append_token(ids[2]); s.append_token(ids[3])\n'
           '>>> assert e._check_stop(s) is None and s.text == "llo", s.text'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'if seq.first_token_time is None:\n                seq.first_token_time = now',
  'replace': 'seq.first_token_time = now',
  'why': 'first_token_time overwritten at every token: TTFT becomes the time of the latest token',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.engine import LLMEngine\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> e = LLMEngine(fixture_path(), num_kv_blocks=64, block_size=4, max_model_len=64)\n'
           '>>> ids = e.tokenizer("hello world, the cat sat").input_ids\n'
           '>>> e.add_request("r", [1, 267, 81], SamplingParams(temperature=0, max_tokens=2, '
           'ignore_eos=True))\n'
           '>>> seq = e.requests["r"].seqs[0]\n'
           '>>> first = e.step()\n'
           '>>> t = seq.first_token_time\n'
           '>>> assert t is not None\n'
           '>>> second = e.step()\n'
           '>>> assert seq.first_token_time == t'},
 {'task': 5,
  'file': 'engine.py',
  'find': '                self._counters["num_requests_finished"] += 1\n'
          '            outputs.append(self._output(request))',
  'replace': '                self._counters["num_requests_finished"] += 1\n'
             '                outputs.append(self._output(request))',
  'why': 'step reports only finished requests: a streaming request gets nothing until it ends',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.engine import LLMEngine\n'
           '>>> from lab02_vllm.solution.sequence import Sequence\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> e = LLMEngine(fixture_path(), num_kv_blocks=64, block_size=4, max_model_len=64)\n'
           '>>> ids = e.tokenizer("hello world, the cat sat").input_ids\n'
           '>>> e.add_request("r", [1, 267, 81], SamplingParams(temperature=0, max_tokens=2, '
           'ignore_eos=True))\n'
           '>>> seq = e.requests["r"].seqs[0]\n'
           '>>> first = e.step()\n'
           '>>> assert len(first) == 1 and not first[0].finished and len(first[0].outputs[0].token_ids) == '
           '1, first'},
 {'task': 5,
  'file': 'engine.py',
  'find': 'for request_id in added:\n                self.engine.abort(request_id)',
  'replace': 'for request_id in added:\n                pass',
  'why': 'generate does not undo the requests queued before a bad prompt: they stay in the engine and run in '
         'a later call',
  'check': '>>> from shared.models import fixture_path\n'
           '>>> from lab02_vllm.solution.engine import LLM\n'
           '>>> from lab02_vllm.solution.sampling_params import SamplingParams\n'
           '>>> llm = LLM(fixture_path(), num_kv_blocks=64, block_size=4, max_model_len=64)\n'
           '>>> try:\n'
           '...     llm.generate(["hello", [99999]])\n'
           '... except ValueError:\n'
           '...     pass\n'
           '>>> assert not llm.engine.has_unfinished_requests()'}]
