"""Blind round 8 for lab02_vllm: plausible mistakes written from the README, docstrings and solution only (reviewer had not read the tests)."""

MUTANTS = [
    # ------------------------------------------------------------------ task 3: the model runner
    {"task": 3, "file": "model_runner.py",
     "find": "return self.o_proj(out.reshape(num_tokens, self.q_size))",
     "replace": "return self.o_proj(out.transpose(0, 1).reshape(num_tokens, self.q_size))",
     "why": "attention's output is flattened as SDPA's (heads, tokens, head_dim) layout; a decode-only step "
            "(one token) is unchanged, every prompt chunk of several tokens is scrambled",
     "check": ">>> import torch\n"
              ">>> from transformers import AutoModelForCausalLM\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> hf = AutoModelForCausalLM.from_pretrained(fixture_path(), dtype=torch.float32)\n"
              ">>> prompt = [1, 318, 316, 328, 40, 41, 42]\n"
              ">>> seq = Sequence('s', prompt, SamplingParams()); seq.block_table = [3, 5]\n"
              ">>> ours = runner.run([seq], [7])[0]\n"
              ">>> theirs = hf(torch.tensor([prompt])).logits[0, -1]\n"
              ">>> bool((ours - theirs).abs().max() < 1e-4)\n"
              "True"},
    {"task": 3, "file": "model_runner.py",
     "find": "        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n"
             "        out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n",
     "replace": "        out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n"
                "        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n",
     "why": "the step's keys and values are stored after attention (so that the next step finds them), so "
            "no token attends to itself or to the other new tokens of its chunk",
     "check": ">>> import torch\n"
              ">>> from transformers import AutoModelForCausalLM\n"
              ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> hf = AutoModelForCausalLM.from_pretrained(fixture_path(), dtype=torch.float32)\n"
              ">>> prompt = [1, 318, 316, 328, 40, 41, 42]\n"
              ">>> seq = Sequence('s', prompt, SamplingParams()); seq.block_table = [3, 5]\n"
              ">>> ours = runner.run([seq], [7])[0]\n"
              ">>> theirs = hf(torch.tensor([prompt])).logits[0, -1]\n"
              ">>> bool((ours - theirs).abs().max() < 1e-4)\n"
              "True"},
    {"task": 3, "file": "model_runner.py",
     "find": "context_lens.append(end)",
     "replace": "context_lens.append(len(seq))",
     "why": "a chunk's context length is taken as the sequence's length, not where the chunk ends: a "
            "sequence in the middle of its prompt attends to slots nothing has written yet",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [0, 1, 2], 8\n"
              ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [3, 4, 5], 4\n"
              ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [6, 7], 5\n"
              ">>> ids, pos, meta, rows = runner.prepare([a, b, c], [1, 6, 2])\n"
              ">>> meta.context_lens_list, meta.context_lens.tolist(), meta.max_context_len  # README's picture\n"
              "([9, 10, 7], [9, 10, 7], 10)"},
    {"task": 3, "file": "model_runner.py",
     "find": "            if end == len(seq):",
     "replace": "            if n == 1 or end == len(seq):",
     "why": "a one-query row is taken for a decode and sampled (nano-vllm's decode step), so a one-token "
            "prompt chunk in the middle of a prompt (budget or long_prefill_token_threshold of 1) gets a logits row",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [0, 1, 2], 8\n"
              ">>> b = Sequence('b', list(range(30, 37)), SamplingParams()); b.block_table, b.num_computed_tokens = [3, 4], 3\n"
              ">>> ids, pos, meta, rows = runner.prepare([a, b], [1, 1])\n"
              ">>> rows.tolist()  # b's chunk ends at token 4 of 7: nothing to sample\n"
              "[0]"},
    {"task": 3, "file": "model_runner.py",
     "find": "is_prefill=any(n > 1 for n in num_new_tokens)",
     "replace": "is_prefill=num_new_tokens[0] > 1",
     "why": "the step's kind is read from its first sequence (nano-vllm's batches are all prefill or all "
            "decode), but a step puts the running decodes first and the new prompts' chunks after them",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [0, 1, 2], 8\n"
              ">>> b = Sequence('b', list(range(30, 37)), SamplingParams()); b.block_table = [3, 4]\n"
              ">>> ids, pos, meta, rows = runner.prepare([a, b], [1, 7])\n"
              ">>> meta.is_prefill\n"
              "True"},
    {"task": 3, "file": "model_runner.py",
     "find": "positions.extend(range(start, end))",
     "replace": "positions.extend(range(len(seq) - n, len(seq)))",
     "why": "positions counted back from the sequence's end (a decode's position is len - 1), which is "
            "wrong for every chunk that stops before the end of its prompt",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [0, 1, 2], 8\n"
              ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [3, 4, 5], 4\n"
              ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [6, 7], 5\n"
              ">>> ids, pos, meta, rows = runner.prepare([a, b, c], [1, 6, 2])\n"
              ">>> pos.tolist()  # README's picture\n"
              "[8, 4, 5, 6, 7, 8, 9, 5, 6]"},
    {"task": 3, "file": "model_runner.py",
     "find": "input_ids.extend(seq.token_ids[start:end])",
     "replace": "input_ids.extend(seq.token_ids[-n:])",
     "why": "a sequence's new tokens are taken as its last n (a decode's newest token generalised), not "
            "the n after num_computed_tokens: a first chunk of a long prompt feeds the prompt's tail",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [3, 4, 5], 4\n"
              ">>> ids, pos, meta, rows = runner.prepare([b], [6])\n"
              ">>> ids.tolist()\n"
              "[34, 35, 36, 37, 38, 39]"},
    {"task": 3, "file": "model_runner.py",
     "find": "slots.extend(seq.block_table[i // bs] * bs + i % bs for i in range(start, end))",
     "replace": "slots.extend(seq.block_table[-1] * bs + i % bs for i in range(start, end))",
     "why": "every new token's slot is taken in the table's last block (where a decode writes), so a chunk "
            "that spans several blocks writes its first tokens into the wrong block",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [3, 4, 5], 4\n"
              ">>> ids, pos, meta, rows = runner.prepare([b], [6])\n"
              ">>> meta.slot_mapping.tolist()  # tokens 4..9: block 4 then block 5\n"
              "[16, 17, 18, 19, 20, 21]"},
    {"task": 3, "file": "model_runner.py",
     "find": "logits_indices.append(starts[-1] - 1)",
     "replace": "logits_indices.append(end - 1)",
     "why": "the sampled row is the last token's position in its sequence instead of its row in the "
            "flat batch: right for a lone sequence computed from 0, wrong beside others or after a prefix",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.model_runner import ModelRunner\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> runner = ModelRunner(fixture_path(), block_size=4, num_kv_blocks=16)\n"
              ">>> a = Sequence('a', list(range(10, 19)), SamplingParams()); a.block_table, a.num_computed_tokens = [0, 1, 2], 8\n"
              ">>> b = Sequence('b', list(range(30, 50)), SamplingParams()); b.block_table, b.num_computed_tokens = [3, 4, 5], 4\n"
              ">>> c = Sequence('c', list(range(60, 67)), SamplingParams()); c.block_table, c.num_computed_tokens = [6, 7], 5\n"
              ">>> ids, pos, meta, rows = runner.prepare([a, b, c], [1, 6, 2])\n"
              ">>> meta.query_start_loc.tolist(), rows.tolist()  # README's picture\n"
              "([0, 1, 7, 9], [0, 8])"},

    # ------------------------------------------------------------------ task 4: the scheduler
    {"task": 4, "file": "scheduler.py",
     "find": "num_new = self._cap(len(seq) - seq.num_computed_tokens, token_budget)",
     "replace": "num_new = min(len(seq) - seq.num_computed_tokens, token_budget)",
     "why": "long_prefill_token_threshold is applied only when a prompt is admitted: its later chunks, "
            "scheduled from the running queue, take everything the budget leaves",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(16, 4), max_num_seqs=4, max_num_batched_tokens=100, long_prefill_token_threshold=4)\n"
              ">>> a = Sequence('a', list(range(10)), SamplingParams()); s.add(a)\n"
              ">>> s.schedule().num_new_tokens\n"
              "[4]\n"
              ">>> a.num_computed_tokens += 4\n"
              ">>> s.schedule().num_new_tokens  # the threshold caps every step's chunk\n"
              "[4]"},
    {"task": 4, "file": "scheduler.py",
     "find": "victim = self.running.pop()  # the newest",
     "replace": "victim = seq; self.running.remove(seq)  # the one that cannot grow",
     "why": "the sequence that cannot grow is preempted itself, instead of the newest running one (vLLM "
            "preempts the newest, so the oldest keeps running)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(4, 2), max_num_seqs=4, max_num_batched_tokens=100)\n"
              ">>> a = Sequence('a', [5, 6, 7, 8], SamplingParams()); b = Sequence('b', [9, 10, 11, 12], SamplingParams())\n"
              ">>> s.add(a); s.add(b); s.schedule().num_new_tokens\n"
              "[4, 4]\n"
              ">>> for q in (a, b): q.num_computed_tokens += 4; q.append_token(3)\n"
              ">>> out = s.schedule()\n"
              ">>> [q.request_id for q in out.seqs], [q.request_id for q in out.preempted], [q.request_id for q in s.waiting]\n"
              "(['a'], ['b'], ['b'])"},
    {"task": 4, "file": "scheduler.py",
     "find": "                if victim is seq:\n                    break\n",
     "replace": "",
     "why": "forgets the case where the sequence had to preempt itself: it keeps looping, re-grows the "
            "freed sequence from token 0 and schedules it while it also sits in the waiting queue",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(4, 2), max_num_seqs=4, max_num_batched_tokens=100)\n"
              ">>> a = Sequence('a', [5, 6, 7], SamplingParams()); b = Sequence('b', [9, 10, 11, 12], SamplingParams())\n"
              ">>> s.add(a); s.add(b); s.schedule().num_new_tokens\n"
              "[3, 4]\n"
              ">>> a.num_computed_tokens += 3; b.num_computed_tokens += 4; a.append_token(3); b.append_token(3)\n"
              ">>> out = s.schedule()  # a's token fits its block; b (the newest) needs one and preempts itself\n"
              ">>> [q.request_id for q in out.seqs], [q.request_id for q in out.preempted], b.block_table\n"
              "(['a'], ['b'], [])"},
    {"task": 4, "file": "scheduler.py",
     "find": "            if 0 < self.long_prefill_token_threshold < num_new:\n"
             "                num_new = self.long_prefill_token_threshold\n"
             "            if not self.enable_chunked_prefill and num_new > token_budget:\n"
             "                bm.free(seq)\n"
             "                break\n",
     "replace": "            if not self.enable_chunked_prefill and num_new > token_budget:\n"
                "                bm.free(seq)\n"
                "                break\n"
                "            if 0 < self.long_prefill_token_threshold < num_new:\n"
                "                num_new = self.long_prefill_token_threshold\n",
     "why": "with chunking off the whole prompt is compared with the budget left before "
            "long_prefill_token_threshold caps it (vLLM caps first, then checks the capped chunk)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(16, 4), max_num_seqs=4, max_num_batched_tokens=8, long_prefill_token_threshold=4, enable_chunked_prefill=False)\n"
              ">>> s.add(Sequence('a', list(range(10, 20)), SamplingParams()))\n"
              ">>> s.schedule().num_new_tokens  # capped to 4 first, and 4 fits the budget of 8\n"
              "[4]"},
    {"task": 4, "file": "scheduler.py",
     "find": "            if not self.enable_chunked_prefill and num_new > token_budget:\n"
             "                bm.free(seq)\n"
             "                break\n",
     "replace": "            if not self.enable_chunked_prefill and num_new > token_budget:\n"
                "                break\n",
     "why": "with chunking off, a prompt that does not fit the budget left stops admission but keeps the "
            "cached-prefix blocks it was just given (only the pool-full branch gives them back)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(16, 2, enable_prefix_caching=True)\n"
              ">>> s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=6, enable_chunked_prefill=False)\n"
              ">>> a = Sequence('a', [1, 2, 3, 4, 5, 6], SamplingParams()); s.add(a); s.schedule().num_new_tokens\n"
              "[6]\n"
              ">>> a.num_computed_tokens += 6; a.append_token(7)\n"
              ">>> b = Sequence('b', [1, 2, 3, 4, 5, 6, 9, 9, 9, 9, 9, 9], SamplingParams()); s.add(b)\n"
              ">>> s.schedule().num_new_tokens  # b's 6 uncached tokens do not fit the 5 left\n"
              "[1]\n"
              ">>> b.block_table, b.num_computed_tokens, bm.num_free_blocks\n"
              "([], 0, 12)\n"
              ">>> s.schedule().num_new_tokens  # b asks for its cached prefix again next step\n"
              "[1]"},
    {"task": 4, "file": "scheduler.py",
     "find": "            num_new = len(seq) - computed",
     "replace": "            num_new = seq.num_prompt_tokens - computed",
     "why": "an admitted sequence is given its prompt to compute, not all its tokens: a sequence back "
            "after a preemption recomputes only its prompt in its first chunk (the prefill is 'the prompt')",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(16, 4), max_num_seqs=4, max_num_batched_tokens=100)\n"
              ">>> a = Sequence('a', [5, 6, 7, 8], SamplingParams())\n"
              ">>> for t in (9, 10, 11): a.append_token(t)  # 3 outputs before it was preempted\n"
              ">>> s.add(a); s.schedule().num_new_tokens  # recomputed whole: prompt and outputs\n"
              "[7]"},
    {"task": 4, "file": "scheduler.py",
     "find": "num_new = self._cap(len(seq) - seq.num_computed_tokens, token_budget)",
     "replace": "num_new = 1 if seq.num_output_tokens else self._cap(len(seq) - seq.num_computed_tokens, token_budget)",
     "why": "a running sequence with outputs is taken for a decode and given 1 token, so a preempted "
            "sequence recomputed in chunks creeps one token per step after its first chunk",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(16, 4), max_num_seqs=4, max_num_batched_tokens=5)\n"
              ">>> a = Sequence('a', [5, 6, 7, 8], SamplingParams())\n"
              ">>> for t in (9, 10, 11, 12): a.append_token(t)  # back after a preemption, 8 tokens to recompute\n"
              ">>> s.add(a); s.schedule().num_new_tokens\n"
              "[5]\n"
              ">>> a.num_computed_tokens += 5\n"
              ">>> s.schedule().num_new_tokens  # the rest of its recomputation\n"
              "[3]"},
    {"task": 4, "file": "scheduler.py",
     "find": "        seq.num_preemptions += 1\n",
     "replace": "",
     "why": "only the scheduler's total is counted; the preempted sequence's own num_preemptions (the "
            "docstring's second counter) stays 0",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(4, 2), max_num_seqs=4, max_num_batched_tokens=100)\n"
              ">>> a = Sequence('a', [5, 6, 7, 8], SamplingParams()); b = Sequence('b', [9, 10, 11, 12], SamplingParams())\n"
              ">>> s.add(a); s.add(b); _ = s.schedule()\n"
              ">>> for q in (a, b): q.num_computed_tokens += 4; q.append_token(3)\n"
              ">>> _ = s.schedule()\n"
              ">>> s.num_preemptions, a.num_preemptions, b.num_preemptions\n"
              "(1, 0, 1)"},
    {"task": 4, "file": "scheduler.py",
     "find": "        self.block_manager.free(seq)\n        seq.status = SequenceStatus.WAITING\n",
     "replace": "        seq.block_table, seq.num_computed_tokens = [], 0  # its KV is dropped\n"
                "        seq.status = SequenceStatus.WAITING\n",
     "why": "preemption drops the table by hand instead of freeing it through the block manager: the "
            "blocks keep their references, nothing returns to the pool, and the preemption frees no room",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(4, 2)\n"
              ">>> s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=100)\n"
              ">>> a = Sequence('a', [5, 6, 7, 8], SamplingParams()); b = Sequence('b', [9, 10, 11, 12], SamplingParams())\n"
              ">>> s.add(a); s.add(b); _ = s.schedule()\n"
              ">>> for q in (a, b): q.num_computed_tokens += 4; q.append_token(3)\n"
              ">>> out = s.schedule()\n"
              ">>> [q.request_id for q in out.seqs], bm.num_free_blocks  # b's 2 blocks back, a took one\n"
              "(['a'], 1)"},
    {"task": 4, "file": "block_manager.py",
     "find": "if not new or self.num_used_blocks == len(seq.block_table):",
     "replace": "if not new or self.num_used_blocks == 0:",
     "why": "'alone' is read as 'no block in use' (task 1's empty-pool waiver), so a lone sequence that "
            "holds its own cached prefix is refused the watermark's blocks and may never be admitted",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(10, 2, watermark=0.1, enable_prefix_caching=True)\n"
              ">>> x = Sequence('x', [1, 2, 3, 4], SamplingParams()); _ = bm.allocate_slots(x, 4); bm.free(x)\n"
              ">>> y = Sequence('y', [1, 2, 3, 4] + list(range(20, 36)), SamplingParams())\n"
              ">>> bm.allocate_cached_prefix(y)  # its prefix is cached; nobody else holds a block\n"
              "4\n"
              ">>> bm.can_allocate_slots(y, 16, new=True)  # the 8 blocks it lacks are the 8 free\n"
              "True"},
    {"task": 4, "file": "block_manager.py",
     "find": "if not new or self.num_used_blocks == len(seq.block_table):",
     "replace": "if self.num_used_blocks == len(seq.block_table):",
     "why": "the watermark is kept for running sequences too, so a running sequence is preempted (or "
            "preempts another) while the blocks it needs are free",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(10, 2, watermark=0.1)\n"
              ">>> a = Sequence('a', list(range(10)), SamplingParams()); _ = bm.allocate_slots(a, 10)\n"
              ">>> b = Sequence('b', list(range(8)), SamplingParams()); _ = bm.allocate_slots(b, 8)\n"
              ">>> a.num_computed_tokens = 10; a.append_token(3)\n"
              ">>> bm.num_free_blocks, bm.can_allocate_slots(a, 1)  # the last free block is a running sequence's\n"
              "(1, True)"},
    {"task": 4, "file": "block_manager.py",
     "find": "return needed <= self.num_free_blocks - self.watermark_blocks",
     "replace": "return needed < self.num_free_blocks - self.watermark_blocks",
     "why": "an admission that leaves exactly watermark_blocks free is refused (strictly above the "
            "watermark instead of at least it)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(10, 2, watermark=0.1)\n"
              ">>> b = Sequence('b', list(range(8)), SamplingParams()); _ = bm.allocate_slots(b, 8)\n"
              ">>> c = Sequence('c', list(range(10)), SamplingParams())\n"
              ">>> bm.num_free_blocks, bm.watermark_blocks, bm.can_allocate_slots(c, 10, new=True)  # 5 of 6, 1 left\n"
              "(6, 1, True)"},
    {"task": 4, "file": "block_manager.py",
     "find": "for index in range(seq.num_computed_tokens // self.block_size, end // self.block_size):",
     "replace": "for index in range(seq.num_computed_tokens // self.block_size, -(-end // self.block_size)):",
     "why": "every block the chunk writes into is reported as full, the partly filled last one too: the "
            "prefix cache names a half-empty block by the tokens it has so far",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4, enable_prefix_caching=True)\n"
              ">>> s = Sequence('s', [1, 2, 3, 4, 5, 6], SamplingParams()); _ = bm.allocate_slots(s, 6)\n"
              ">>> [bm.blocks[b].block_hash is not None for b in s.block_table]\n"
              "[True, False]"},
    {"task": 4, "file": "block_manager.py",
     "find": "        for _ in range(missing):\n"
             "            seq.block_table.append(self._take_free_block())\n"
             "        end = seq.num_computed_tokens + num_new_tokens\n"
             "        for index in range(seq.num_computed_tokens // self.block_size, end // self.block_size):",
     "replace": "        first_new = len(seq.block_table)\n"
                "        for _ in range(missing):\n"
                "            seq.block_table.append(self._take_free_block())\n"
                "        end = seq.num_computed_tokens + num_new_tokens\n"
                "        for index in range(first_new, end // self.block_size):",
     "why": "only the blocks appended for the chunk are reported (as task 1's allocate reports 'each new "
            "block'), so a block the previous chunk began and this one completes never reaches the prefix cache",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4, enable_prefix_caching=True)\n"
              ">>> s = Sequence('s', list(range(10, 19)), SamplingParams()); _ = bm.allocate_slots(s, 2)\n"
              ">>> s.num_computed_tokens = 2; _ = bm.allocate_slots(s, 6)  # tokens 2..7 complete blocks 0 and 1\n"
              ">>> [bm.blocks[b].block_hash is not None for b in s.block_table]\n"
              "[True, True]"},
    {"task": 4, "file": "scheduler.py",
     "find": "while index < len(self.running) and token_budget > 0:",
     "replace": "while index < len(self.running):",
     "why": "the running loop does not stop when the budget is spent: the sequences after it are "
            "scheduled with 0 tokens (the docstring says each computes at least 1)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(16, 4), max_num_seqs=4, max_num_batched_tokens=3)\n"
              ">>> seqs = [Sequence(r, [5], SamplingParams()) for r in 'abc']\n"
              ">>> for q in seqs: s.add(q)\n"
              ">>> _ = s.schedule()\n"
              ">>> for q in seqs: q.num_computed_tokens += 1; q.append_token(3)\n"
              ">>> s.max_num_batched_tokens = 2\n"
              ">>> s.schedule().num_new_tokens\n"
              "[1, 1]"},
    {"task": 4, "file": "scheduler.py",
     "find": "while self.waiting and token_budget > 0 and len(self.running) < self.max_num_seqs:",
     "replace": "while self.waiting and len(self.running) < self.max_num_seqs:",
     "why": "admission does not stop when the budget is spent: a waiting sequence joins running with 0 "
            "tokens and takes one of the max_num_seqs places",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(16, 4), max_num_seqs=4, max_num_batched_tokens=2)\n"
              ">>> a, b = Sequence('a', [5], SamplingParams()), Sequence('b', [6], SamplingParams())\n"
              ">>> s.add(a); s.add(b); _ = s.schedule()\n"
              ">>> for q in (a, b): q.num_computed_tokens += 1; q.append_token(3)\n"
              ">>> s.add(Sequence('c', [7, 8], SamplingParams()))\n"
              ">>> out = s.schedule()\n"
              ">>> out.num_new_tokens, len(s.running), len(s.waiting)\n"
              "([1, 1], 2, 1)"},
    {"task": 4, "file": "scheduler.py",
     "find": "if not self.enable_chunked_prefill and num_new > token_budget:",
     "replace": "if not self.enable_chunked_prefill and num_new > self.max_num_batched_tokens:",
     "why": "with chunking off a prompt is compared with the whole budget, not the budget the running "
            "sequences left: a prompt that fits max_num_batched_tokens is admitted chunked anyway",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(16, 4), max_num_seqs=4, max_num_batched_tokens=10, enable_chunked_prefill=False)\n"
              ">>> a = Sequence('a', [5], SamplingParams()); s.add(a); _ = s.schedule()\n"
              ">>> a.num_computed_tokens += 1; a.append_token(3)\n"
              ">>> s.add(Sequence('b', list(range(20, 30)), SamplingParams()))\n"
              ">>> s.schedule().num_new_tokens  # b's 10 tokens do not fit the 9 left: it waits whole\n"
              "[1]"},
    {"task": 4, "file": "block_manager.py",
     "find": "            return needed <= self.num_free_blocks\n",
     "replace": "            return needed <= len(self.free_block_ids)\n",
     "why": "free blocks counted on the free list alone: with prefix caching, a pool full of parked "
            "(evictable) cached blocks looks full, so sequences are preempted or refused for nothing",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(4, 2, enable_prefix_caching=True)\n"
              ">>> x = Sequence('x', list(range(10, 18)), SamplingParams()); _ = bm.allocate_slots(x, 8); bm.free(x)\n"
              ">>> y = Sequence('y', [1, 2, 3, 4], SamplingParams())\n"
              ">>> len(bm.free_block_ids), bm.num_free_blocks, bm.can_allocate_slots(y, 4, new=True)\n"
              "(0, 4, True)"},
    {"task": 4, "file": "scheduler.py",
     "find": "            out.new_seqs.append(seq)\n",
     "replace": "",
     "why": "new_seqs is left empty: the engine then counts no admitted prompt (prompt_tokens, prefix-cache "
            "queries and hits, prefill tokens stay 0 in the stats)",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> s = Scheduler(BlockManager(16, 4), max_num_seqs=4, max_num_batched_tokens=100)\n"
              ">>> a = Sequence('a', [5, 6, 7], SamplingParams()); s.add(a)\n"
              ">>> [q.request_id for q in s.schedule().new_seqs]\n"
              "['a']"},
    {"task": 4, "file": "scheduler.py",
     "find": "                copy = bm.allocate_slots(seq, num_new)\n"
             "                if copy is not None:\n"
             "                    out.copies.append(copy)\n",
     "replace": "                bm.allocate_slots(seq, num_new)\n",
     "why": "the running loop grows the tables but drops the copy-on-write pairs (only admission keeps "
            "them), so a forked sequence's private block is never filled with the shared block's KV",
     "check": ">>> from lab02_vllm.solution.block_manager import BlockManager\n"
              ">>> from lab02_vllm.solution.scheduler import Scheduler\n"
              ">>> from lab02_vllm.solution.sequence import Sequence, SequenceStatus\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> bm = BlockManager(8, 4)\n"
              ">>> s = Scheduler(bm, max_num_seqs=4, max_num_batched_tokens=100)\n"
              ">>> a = Sequence('a', [5, 6, 7, 8, 9, 10], SamplingParams()); s.add(a); _ = s.schedule()\n"
              ">>> a.num_computed_tokens += 6; a.append_token(3)\n"
              ">>> b = Sequence('a', [5, 6, 7, 8, 9, 10], SamplingParams(), index=1); bm.fork(a, b)\n"
              ">>> b.append_token(4); b.status = SequenceStatus.RUNNING; s.running.append(b)\n"
              ">>> out = s.schedule()  # both write token 6 into their shared block 1\n"
              ">>> len(out.copies), out.num_new_tokens\n"
              "(1, [1, 1])"},

    # ------------------------------------------------------------------ task 5: the engine
    {"task": 5, "file": "engine.py",
     "find": "banned = set(params.stop_token_ids) | stop_ids  # eos too under ignore_eos, as vLLM",
     "replace": "banned = set(stop_ids)  # the eos ids",
     "why": "min_tokens bans only the eos ids; the request's stop_token_ids can still be sampled before "
            "min_tokens (vLLM bans both)",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=0, min_tokens=1, stop_token_ids=[5]))\n"
              ">>> logits = torch.zeros(1, 8); logits[0, 5] = 3.0; logits[0, 6] = 2.0\n"
              ">>> sample_tokens(logits, [seq], {2})\n"
              "[6]"},
    {"task": 5, "file": "engine.py",
     "find": "            scores = scores / params.temperature\n"
             "            if 0 < params.top_k < scores.shape[-1]:\n"
             "                kth = torch.topk(scores, params.top_k).values[-1]\n"
             "                scores = scores.masked_fill(scores < kth, float(\"-inf\"))\n"
             "            if params.top_p < 1.0:\n"
             "                sorted_scores, order = torch.sort(scores, descending=True)\n"
             "                probs = sorted_scores.softmax(dim=-1)\n"
             "                drop = probs.cumsum(dim=-1) - probs > params.top_p  # mass before this token already enough\n"
             "                scores = scores.scatter(0, order[drop], float(\"-inf\"))\n",
     "replace": "            if 0 < params.top_k < scores.shape[-1]:\n"
                "                kth = torch.topk(scores, params.top_k).values[-1]\n"
                "                scores = scores.masked_fill(scores < kth, float(\"-inf\"))\n"
                "            if params.top_p < 1.0:\n"
                "                sorted_scores, order = torch.sort(scores, descending=True)\n"
                "                probs = sorted_scores.softmax(dim=-1)\n"
                "                drop = probs.cumsum(dim=-1) - probs > params.top_p  # mass before this token already enough\n"
                "                scores = scores.scatter(0, order[drop], float(\"-inf\"))\n"
                "            scores = scores / params.temperature\n",
     "why": "the temperature is applied after the top-k / top-p filters (just before the softmax), so top-p "
            "measures the untempered distribution: a high temperature no longer widens the nucleus",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=2.0, top_p=0.7))\n"
              ">>> seq.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[2.0, 1.0, -30.0, -30.0]])  # at T=2: p = 0.62, 0.38, so both are in the nucleus\n"
              ">>> sorted({sample_tokens(logits, [seq], set())[0] for _ in range(200)})\n"
              "[0, 1]"},
    {"task": 5, "file": "engine.py",
     "find": "if 0 < params.top_k < scores.shape[-1]:",
     "replace": "if params.top_k != -1 and params.top_k < scores.shape[-1]:",
     "why": "only -1 is taken for 'top-k off' (vLLM's old convention); top_k=0, which the README says is "
            "off too, asks torch.topk for 0 values",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=1.0, top_k=0))\n"
              ">>> seq.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[0.0, 9.0, 0.0, 0.0]])\n"
              ">>> sample_tokens(logits, [seq], set())\n"
              "[1]"},
    {"task": 5, "file": "engine.py",
     "find": "scores = scores.scatter(0, order[drop], float(\"-inf\"))",
     "replace": "scores = scores.masked_fill(drop, float(\"-inf\"))",
     "why": "the top-p mask, computed over the sorted tokens, is applied to the unsorted row: it drops "
            "whichever tokens sit at those positions in the vocabulary",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=1.0, top_p=0.5))\n"
              ">>> seq.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[0.0, 5.0, 0.0, 0.0]])  # token 1 alone holds 0.98\n"
              ">>> sorted({sample_tokens(logits, [seq], set())[0] for _ in range(20)})\n"
              "[1]"},
    {"task": 5, "file": "engine.py",
     "find": "            if 0 < params.top_k < scores.shape[-1]:\n"
             "                kth = torch.topk(scores, params.top_k).values[-1]\n"
             "                scores = scores.masked_fill(scores < kth, float(\"-inf\"))\n"
             "            if params.top_p < 1.0:\n"
             "                sorted_scores, order = torch.sort(scores, descending=True)\n"
             "                probs = sorted_scores.softmax(dim=-1)\n"
             "                drop = probs.cumsum(dim=-1) - probs > params.top_p  # mass before this token already enough\n"
             "                scores = scores.scatter(0, order[drop], float(\"-inf\"))\n",
     "replace": "            if params.top_p < 1.0:\n"
                "                sorted_scores, order = torch.sort(scores, descending=True)\n"
                "                probs = sorted_scores.softmax(dim=-1)\n"
                "                drop = probs.cumsum(dim=-1) - probs > params.top_p  # mass before this token already enough\n"
                "                scores = scores.scatter(0, order[drop], float(\"-inf\"))\n"
                "            if 0 < params.top_k < scores.shape[-1]:\n"
                "                kth = torch.topk(scores, params.top_k).values[-1]\n"
                "                scores = scores.masked_fill(scores < kth, float(\"-inf\"))\n",
     "why": "top-p is applied before top-k, over the whole vocabulary, instead of over the top-k tokens "
            "renormalised (vLLM's and transformers' order): the nucleus is wider than it should be",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=1.0, top_k=2, top_p=0.5))\n"
              ">>> seq.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[1.0, 0.9, 0.0, 0.0]])  # within the top 2: 0.525 and 0.475\n"
              ">>> sorted({sample_tokens(logits, [seq], set())[0] for _ in range(200)})\n"
              "[0]"},
    {"task": 5, "file": "engine.py",
     "find": "logprobs = torch.log_softmax(row, dim=-1)",
     "replace": "logprobs = torch.log_softmax(scores, dim=-1)",
     "why": "logprobs are taken from the scores the token was drawn from (after temperature, top-k, top-p: "
            "vLLM's processed_logprobs), not the model's raw ones (vLLM's default raw_logprobs)",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=0.5, logprobs=1))\n"
              ">>> seq.generator = torch.Generator().manual_seed(0)\n"
              ">>> logits = torch.tensor([[1.0, 2.0, 0.5, 0.0]])\n"
              ">>> token = sample_tokens(logits, [seq], set())[0]\n"
              ">>> raw = torch.log_softmax(logits[0], dim=-1)\n"
              ">>> all(abs(lp - float(raw[t])) < 1e-6 for t, lp in seq.logprobs[0].items())\n"
              "True"},
    {"task": 5, "file": "engine.py",
     "find": "        if params.logprobs is not None:\n            logprobs = torch.log_softmax",
     "replace": "        if params.logprobs:\n            logprobs = torch.log_softmax",
     "why": "logprobs=0 is taken for 'off', but vLLM (and OpenAI's logprobs=0) still returns the chosen "
            "token's logprob: the completion's logprobs list stays empty",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=0, logprobs=0))\n"
              ">>> logits = torch.tensor([[1.0, 2.0, 0.5, 0.0]])\n"
              ">>> sample_tokens(logits, [seq], set()), list(seq.logprobs[0]) if seq.logprobs else None\n"
              "([1], [1])"},
    {"task": 5, "file": "engine.py",
     "find": "token = int(scores.argmax())",
     "replace": "token = int(processed_row.argmax())",
     "why": "a greedy row in a mixed batch takes the argmax of the processed row, skipping the min_tokens "
            "ban that was put on the scores (only sampled rows honour it)",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=0, min_tokens=2))\n"
              ">>> logits = torch.zeros(1, 8); logits[0, 2] = 3.0; logits[0, 6] = 2.0  # eos (2) is the argmax\n"
              ">>> sample_tokens(logits, [seq], {2})\n"
              "[6]"},
    {"task": 5, "file": "engine.py",
     "find": "scores = processed_row.clone()",
     "replace": "scores = processed_row",
     "why": "the min_tokens ban is written into the processed row itself, which is the caller's logits when "
            "no request has logit_bias or allowed_token_ids: the input is modified and the eos logprob reads -inf",
     "check": ">>> import torch\n"
              ">>> from lab02_vllm.solution.engine import sample_tokens\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> seq = Sequence('r', [1, 3], SamplingParams(temperature=0, min_tokens=2, logprobs=1))\n"
              ">>> logits = torch.zeros(1, 8); logits[0, 2] = 3.0; logits[0, 6] = 2.0\n"
              ">>> before = logits.clone()\n"
              ">>> sample_tokens(logits, [seq], {2}), torch.equal(logits, before), 2 in seq.logprobs[0]\n"
              "([6], True, True)"},
    {"task": 5, "file": "engine.py",
     "find": "            if token in params.stop_token_ids:",
     "replace": "            if token in params.stop_token_ids and token != self.tokenizer.eos_token_id:",
     "why": "under ignore_eos the tokenizer's eos is never a stop, even when the request lists it in "
            "stop_token_ids (vLLM stops there, with stop_reason the id)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLMEngine\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> engine = LLMEngine(fixture_path(), max_model_len=64, num_kv_blocks=32, block_size=4, max_num_seqs=4)\n"
              ">>> eos = engine.tokenizer.eos_token_id\n"
              ">>> seq = Sequence('r', [1, 318, 316, 328], SamplingParams(ignore_eos=True, stop_token_ids=[eos]))\n"
              ">>> seq.append_token(296); engine._check_stop(seq)\n"
              ">>> seq.append_token(eos); engine._check_stop(seq), seq.stop_reason == eos\n"
              "('stop', True)"},
    {"task": 5, "file": "engine.py",
     "find": "            if not params.ignore_eos and token in self.eos_token_ids:",
     "replace": "            if token in self.eos_token_ids:",
     "why": "ignore_eos is honoured for the tokenizer's eos only: the model's eos ids (generation config) "
            "still end the sequence, so ignore_eos benchmarks stop early",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLMEngine\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> engine = LLMEngine(fixture_path(), max_model_len=64, num_kv_blocks=32, block_size=4, max_num_seqs=4)\n"
              ">>> seq = Sequence('r', [1, 318, 316, 328], SamplingParams(ignore_eos=True))\n"
              ">>> seq.append_token(min(engine.eos_token_ids)); engine._check_stop(seq) is None\n"
              "True"},
    {"task": 5, "file": "engine.py",
     "find": "at = seq.text.find(stop, max(0, old_length - len(stop) + 1))",
     "replace": "at = seq.text.find(stop)",
     "why": "the stop string is searched in the whole text, so one produced by the first min_tokens tokens "
            "(which vLLM does not search) stops the sequence as soon as min_tokens is passed",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLMEngine\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> engine = LLMEngine(fixture_path(), max_model_len=64, num_kv_blocks=32, block_size=4, max_num_seqs=4)\n"
              ">>> seq = Sequence('r', [1, 318, 316, 328], SamplingParams(min_tokens=1, stop=['is']))\n"
              ">>> [(seq.append_token(t), engine._check_stop(seq))[1] for t in (296, 475, 17)], seq.text  # ' is small,'\n"
              "([None, None, None], ' is small,')"},
    {"task": 5, "file": "engine.py",
     "find": "if seq.num_output_tokens > params.min_tokens:  # vLLM: only text after the first min_tokens tokens",
     "replace": "if seq.num_output_tokens >= params.min_tokens:  # vLLM: only text after the first min_tokens tokens",
     "why": "stop strings are searched from min_tokens outputs on, like eos: the text of the min_tokens-th "
            "token itself is searched, which vLLM's detokenizer leaves out",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLMEngine\n"
              ">>> from lab02_vllm.solution.sequence import Sequence\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> engine = LLMEngine(fixture_path(), max_model_len=64, num_kv_blocks=32, block_size=4, max_num_seqs=4)\n"
              ">>> seq = Sequence('r', [1, 318, 316, 328], SamplingParams(min_tokens=1, stop=['small']))\n"
              ">>> seq.append_token(475); engine._check_stop(seq), seq.text  # ' small' is the first (min_tokens-th) token\n"
              "(None, ' small')"},
    {"task": 5, "file": "engine.py",
     "find": "if seq.num_output_tokens >= params.max_tokens or len(seq) >= self.max_model_len:",
     "replace": "if seq.num_output_tokens >= params.max_tokens or len(seq) > self.max_model_len:",
     "why": "max_model_len is a limit the sequence may reach and pass by one: a sequence grows to "
            "max_model_len + 1 tokens (vLLM stops at max_model_len)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=8, block_size=4, num_kv_blocks=8, max_num_seqs=4)\n"
              ">>> out = llm.generate([[1, 318, 316, 328, 296, 475, 17]], SamplingParams(temperature=0, ignore_eos=True))[0]\n"
              ">>> len(out.outputs[0].token_ids), out.outputs[0].finish_reason\n"
              "(1, 'length')"},
    {"task": 5, "file": "engine.py",
     "find": "if params.stop_strings or self.incremental_text:",
     "replace": "if self.incremental_text:",
     "why": "the text is decoded only when streaming; LLM.generate turns incremental text off, so its "
            "requests' stop strings are never seen and they run to eos or max_tokens",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> c = llm.generate('The cat', SamplingParams(temperature=0, max_tokens=20, stop=' but'))[0].outputs[0]\n"
              ">>> c.text, c.finish_reason, c.stop_reason\n"
              "(' is small,', 'stop', ' but')"},
    {"task": 5, "file": "engine.py",
     "find": "        old_length = len(seq.text)\n"
             "        if params.stop_strings or self.incremental_text:\n"
             "            self._detokenize(seq)\n",
     "replace": "        if params.stop_strings or self.incremental_text:\n"
                "            self._detokenize(seq)\n"
                "        old_length = len(seq.text)\n",
     "why": "the old text length is taken after the newest token is decoded, so the search starts inside "
            "the new text's last characters and a stop string the token completes is never found",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> c = llm.generate('The cat', SamplingParams(temperature=0, max_tokens=20, stop=' but'))[0].outputs[0]\n"
              ">>> c.text, c.finish_reason, c.stop_reason\n"
              "(' is small,', 'stop', ' but')"},
    {"task": 5, "file": "engine.py",
     "find": "            if seq.first_token_time is None:\n                seq.first_token_time = now\n",
     "replace": "            seq.first_token_time = now\n",
     "why": "first_token_time is stamped at every token, so it ends as the last token's time: a request's "
            "TTFT reads as its whole latency",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLMEngine\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> engine = LLMEngine(fixture_path(), max_model_len=64, num_kv_blocks=32, block_size=4, max_num_seqs=4)\n"
              ">>> engine.add_request('r', 'The cat', SamplingParams(temperature=0, max_tokens=5, ignore_eos=True))\n"
              ">>> outs = [o for _ in range(5) for o in engine.step()]\n"
              ">>> m = outs[-1].metrics; outs[-1].finished, m.first_token_time == outs[0].metrics.first_token_time < m.finished_time\n"
              "(True, True)"},
    {"task": 5, "file": "engine.py",
     "find": "        touched: dict[str, _Request] = {}\n"
             "        for seq, token in zip(sampled, tokens, strict=True):\n"
             "            seq.append_token(token)\n"
             "            if seq.first_token_time is None:\n"
             "                seq.first_token_time = now\n"
             "            reason = self._check_stop(seq)\n"
             "            if reason is not None:\n"
             "                self.scheduler.finish(seq, reason)\n"
             "            touched[seq.request_id] = self.requests[seq.request_id]\n"
             "        outputs = []\n"
             "        for request in touched.values():\n",
     "replace": "        touched: list[_Request] = []\n"
                "        for seq, token in zip(sampled, tokens, strict=True):\n"
                "            seq.append_token(token)\n"
                "            if seq.first_token_time is None:\n"
                "                seq.first_token_time = now\n"
                "            reason = self._check_stop(seq)\n"
                "            if reason is not None:\n"
                "                self.scheduler.finish(seq, reason)\n"
                "            touched.append(self.requests[seq.request_id])\n"
                "        outputs = []\n"
                "        for request in touched:\n",
     "why": "one output per sampled sequence instead of one per request: a request with n > 1 appears n "
            "times in a step's outputs (and is forgotten twice when it finishes)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLMEngine\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> engine = LLMEngine(fixture_path(), max_model_len=64, num_kv_blocks=32, block_size=4, max_num_seqs=4)\n"
              ">>> engine.add_request('r', 'The cat', SamplingParams(temperature=0, max_tokens=3, n=2))\n"
              ">>> outs = engine.step()\n"
              ">>> len(outs), len(outs[0].outputs)\n"
              "(1, 2)"},
    {"task": 5, "file": "engine.py",
     "find": "            if all(s.is_finished for s in request.seqs):",
     "replace": "            if any(s.is_finished for s in request.seqs):",
     "why": "a request is forgotten as soon as one of its n completions finishes: its other sequences "
            "keep running for a request the engine no longer knows",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> out = llm.generate('The cat', SamplingParams(temperature=1.0, seed=7, n=2, max_tokens=12))[0]\n"
              ">>> lengths = [len(c.token_ids) for c in out.outputs]; lengths[0] != lengths[1]  # they end at different steps\n"
              "True\n"
              ">>> [c.finish_reason is not None for c in out.outputs], llm.engine.has_unfinished_requests()\n"
              "([True, True], False)"},
    {"task": 5, "file": "engine.py",
     "find": "                self._counters[\"num_requests_finished\"] += 1\n",
     "replace": "",
     "why": "finished requests are not counted: the stats' num_requests_finished (vLLM's "
            "request_success counter on /metrics) stays 0",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> _ = llm.generate(['The cat', 'Once upon a time'], SamplingParams(temperature=0, max_tokens=4))\n"
              ">>> llm.engine.stats.num_requests_finished\n"
              "2"},
    {"task": 5, "file": "engine.py",
     "find": "                request.finished_time = now\n",
     "replace": "",
     "why": "a finished request's finished_time is never stamped: its metrics report finished_time None "
            "(end-to-end latency unknown)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> m = llm.generate('The cat', SamplingParams(temperature=0, max_tokens=4))[0].metrics\n"
              ">>> m.finished_time is not None and m.first_token_time <= m.finished_time\n"
              "True"},
    {"task": 5, "file": "engine.py",
     "find": "        self._record_step(out)\n"
             "        logits = self.runner.run(out.seqs, out.num_new_tokens)\n"
             "        sampled = []\n"
             "        for seq, num_new in zip(out.seqs, out.num_new_tokens, strict=True):\n"
             "            seq.num_computed_tokens += num_new\n"
             "            if seq.num_computed_tokens == len(seq):\n"
             "                sampled.append(seq)\n",
     "replace": "        logits = self.runner.run(out.seqs, out.num_new_tokens)\n"
                "        sampled = []\n"
                "        for seq, num_new in zip(out.seqs, out.num_new_tokens, strict=True):\n"
                "            seq.num_computed_tokens += num_new\n"
                "            if seq.num_computed_tokens == len(seq):\n"
                "                sampled.append(seq)\n"
                "        self._record_step(out)\n",
     "why": "the step is recorded after num_computed_tokens has advanced (the docstring records it before the "
            "run): prefill tokens computed and generation tokens are counted from the wrong starting point",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> _ = llm.generate([[1, 318, 316, 328]], SamplingParams(temperature=0, max_tokens=5, ignore_eos=True))\n"
              ">>> st = llm.engine.stats; st.prompt_tokens, st.prefill_tokens_computed, st.generation_tokens\n"
              "(4, 4, 5)"},
    {"task": 5, "file": "engine.py",
     "find": "        out = self.scheduler.schedule()\n"
             "        if not out.seqs:\n"
             "            return []\n"
             "        if out.copies:\n"
             "            self.runner.copy_blocks(out.copies)\n"
             "        self._record_step(out)\n",
     "replace": "        out = self.scheduler.schedule()\n"
                "        self._record_step(out)\n"
                "        if not out.seqs:\n"
                "            return []\n"
                "        if out.copies:\n"
                "            self.runner.copy_blocks(out.copies)\n",
     "why": "the step is recorded before checking that anything was scheduled: an idle engine's step() "
            "(the async loop polls it) counts steps that ran nothing",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLMEngine\n"
              ">>> engine = LLMEngine(fixture_path(), max_model_len=64, num_kv_blocks=32, block_size=4, max_num_seqs=4)\n"
              ">>> engine.step(), engine.step(), engine.stats.num_steps\n"
              "([], [], 0)"},
    {"task": 5, "file": "engine.py",
     "find": "        outputs = []\n        for request in touched.values():",
     "replace": "        for seq in out.seqs:  # every request the step computed for\n"
                "            touched.setdefault(seq.request_id, self.requests[seq.request_id])\n"
                "        outputs = []\n"
                "        for request in touched.values():",
     "why": "every request the step computed for reports back, also one that only computed a prompt chunk "
            "and got no token (the docstring: an empty list when the step only computed prompt chunks)",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLMEngine\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> engine = LLMEngine(fixture_path(), max_model_len=64, num_kv_blocks=32, block_size=4, max_num_seqs=4, max_num_batched_tokens=4)\n"
              ">>> engine.add_request('r', list(range(10, 20)), SamplingParams(temperature=0, max_tokens=2))\n"
              ">>> engine.step(), engine.step(), len(engine.step())  # chunks of 4, 4, then 2 and a token\n"
              "([], [], 1)"},
    {"task": 5, "file": "engine.py",
     "find": "        previous, self.engine.incremental_text = self.engine.incremental_text, False\n"
             "        try:\n"
             "            while len(finished) < len(ids):\n"
             "                for output in self.engine.step():\n"
             "                    if output.finished:\n"
             "                        finished[output.request_id] = output\n"
             "        finally:\n"
             "            self.engine.incremental_text = previous\n",
     "replace": "        self.engine.incremental_text = False  # the text is built once, at the end\n"
                "        while len(finished) < len(ids):\n"
                "            for output in self.engine.step():\n"
                "                if output.finished:\n"
                "                    finished[output.request_id] = output\n",
     "why": "generate turns incremental detokenization off and never turns it back on: the same engine, "
            "stepped afterwards (a stream, the server), reports no text until a request finishes",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> _ = llm.generate('The cat', SamplingParams(temperature=0, max_tokens=3))\n"
              ">>> llm.engine.add_request('s', 'The cat', SamplingParams(temperature=0, max_tokens=3))\n"
              ">>> o = llm.engine.step()[0]; o.finished, o.outputs[0].text\n"
              "(False, ' is')"},
    {"task": 5, "file": "engine.py",
     "find": "if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):",
     "replace": "if isinstance(prompts, str) or isinstance(prompts[0], int):",
     "why": "the single-token-list test reads prompts[0] before the empty check: generate([]) fails with an "
            "IndexError instead of the promised ValueError",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> try:\n"
              "...     llm.generate([])\n"
              "... except ValueError as error:\n"
              "...     print('ValueError', error)\n"
              "ValueError prompts must not be empty"},
    {"task": 5, "file": "engine.py",
     "find": "params_list = [sampling_params or self.get_default_sampling_params()] * len(prompts)",
     "replace": "params_list = [sampling_params or SamplingParams(temperature=0)] * len(prompts)",
     "why": "no sampling_params is taken for greedy decoding (transformers' generate default), while "
            "vLLM's default SamplingParams samples at temperature 1.0",
     "check": ">>> from shared.models import fixture_path\n"
              ">>> from lab02_vllm.solution.engine import LLM\n"
              ">>> from lab02_vllm.solution.sampling_params import SamplingParams\n"
              ">>> llm = LLM(fixture_path(), max_model_len=64, block_size=4, num_kv_blocks=32, max_num_seqs=4)\n"
              ">>> greedy = llm.generate(['Once upon a time'] * 4, SamplingParams(temperature=0))\n"
              ">>> default = llm.generate(['Once upon a time'] * 4)\n"
              ">>> any(d.outputs[0].token_ids != g.outputs[0].token_ids for d, g in zip(default, greedy))\n"
              "True"},
]
