"""Blind round 1 for lab02 (tasks 1-7, 11): plausible mistakes written from the README, docstrings and solution only."""
MUTANTS = [
    # ------------------------------------------------------------------------------------------
    # Task 1: block manager
    {"task": 1, "file": "block_manager.py",
     "find": "        if self.num_free_blocks == self.num_blocks:\n            return needed <= self.num_blocks\n"
             "        return self.num_free_blocks - needed >= self.watermark_blocks\n",
     "replace": "        return self.num_free_blocks - needed >= self.watermark_blocks\n",
     "why": "I apply the watermark always; I forgot the empty-pool exception, so a lone sequence that needs the "
            "whole pool is never admitted",
     "check": "BlockManager(100, 16) (watermark 1 block), empty pool, a 1600-token sequence (100 blocks): "
              "can_allocate is True in the reference, False here"},
    {"task": 1, "file": "block_manager.py",
     "find": "return self.num_free_blocks - needed >= self.watermark_blocks",
     "replace": "return self.num_free_blocks - needed > self.watermark_blocks",
     "why": "I wanted strictly more than the watermark left over, so the last free blocks above it are never handed out",
     "check": "BlockManager(8, 4) (watermark 0), one 4-token sequence allocated (7 free), a 28-token sequence "
              "(7 blocks): can_allocate True in the reference, False here"},
    {"task": 1, "file": "block_manager.py",
     "find": "for index in range(reused, seq.num_blocks_needed(self.block_size)):",
     "replace": "for index in range(reused, len(seq) // self.block_size + 1):",
     "why": "blocks needed = len // block_size + 1, which takes an extra empty block when the length is a multiple "
            "of the block size",
     "check": "BlockManager(8, 4), allocate an 8-token sequence: block_table has 2 blocks in the reference, 3 here "
              "(a whole block to spare)"},
    {"task": 1, "file": "block_manager.py",
     "find": "return self.num_free_blocks >= int(needs_block or shared_last)",
     "replace": "return self.num_free_blocks >= int(needs_block)",
     "why": "can_append only asks whether the table is full; I forgot that a shared last block needs a free block "
            "for its copy",
     "check": "BlockManager(2, 4): parent with 2 tokens, fork a child, allocate a 4-token sequence (0 free), child "
              "appends a token: can_append(child) False in the reference, True here and append_slot then raises "
              "NoFreeBlocksError"},
    {"task": 1, "file": "block_manager.py",
     "find": "            self._release_block(last)\n",
     "replace": "",
     "why": "on copy-on-write I take the new block and swap it into the table but never drop my reference to the "
            "shared one",
     "check": "BlockManager(4, 4): parent with 2 tokens, fork, child appends a token, append_slot(child): the old "
              "block's ref_count is 1 in the reference, 2 here; after freeing both, 4 free blocks vs 3"},
    {"task": 1, "file": "block_manager.py",
     "find": "            return last, copy\n",
     "replace": "            return copy, last\n",
     "why": "I returned the pair as (new, old) instead of (source, destination)",
     "check": "parent with 2 tokens in block 0, fork, child appends, append_slot(child) returns (0, 1) in the "
              "reference, (1, 0) here, so the runner copies the empty block over the parent's KV"},
    {"task": 1, "file": "block_manager.py",
     "find": "        child.block_table = list(parent.block_table)\n",
     "replace": "        child.block_table = parent.block_table\n",
     "why": "fork gives the child the parent's table itself, not a copy, so the two tables are one list",
     "check": "BlockManager(8, 4): parent with 4 tokens, fork, child appends a token, append_slot(child): the "
              "parent's block_table stays [0] in the reference, becomes [0, 1] here"},
    {"task": 1, "file": "block_manager.py",
     "find": "            if (index + 1) * self.block_size <= len(seq):\n                self._on_block_full(seq, index)\n",
     "replace": "            self._on_block_full(seq, index)\n",
     "why": "I record every new block in the prefix cache, the partial last one too",
     "check": "prefix caching, block_size 4: allocate a 6-token prompt: the cache holds 1 hash in the reference, 2 "
              "here (the partial block, hashed on 2 tokens and never re-hashed once full); a later prompt sharing "
              "the first 8 tokens then reuses 1 block instead of 2"},
    # ------------------------------------------------------------------------------------------
    # Task 2: paged attention
    {"task": 2, "file": "paged_attention.py",
     "find": "v_cache.view(-1, num_kv_heads, head_dim)[slot_mapping] = value.to(v_cache.dtype)",
     "replace": "v_cache.view(-1, num_kv_heads, head_dim)[slot_mapping] = key.to(v_cache.dtype)",
     "why": "copy-paste: I stored the keys in the value cache too",
     "check": "write_kv_cache(k, v, kc, vc, slots) with k != v: vc.view(-1, H, D)[slots] equals v in the reference, "
              "k here"},
    {"task": 2, "file": "paged_attention.py",
     "find": "allowed = torch.arange(ctx_len, device=query.device)[None, :] <= positions[:, None]",
     "replace": "allowed = torch.arange(ctx_len, device=query.device)[None, :] < positions[:, None]",
     "why": "strict inequality in the offset causal mask: a new token does not attend to itself",
     "check": "one sequence, 4 cached + 2 new tokens (q_len 2, ctx_len 6): the output differs from dense SDPA with "
              "is_causal over the 6 tokens (last 2 rows) in the mutant"},
    {"task": 2, "file": "paged_attention.py",
     "find": "positions = torch.arange(ctx_len - q_len, ctx_len, device=query.device)",
     "replace": "positions = torch.arange(q_len, device=query.device)",
     "why": "the new tokens' positions start at 0, as if there were no cached prefix, so the mask is not offset",
     "check": "4 cached + 2 new tokens: new token 0 should see keys 0..4; here it sees only key 0 (output differs "
              "from dense causal SDPA)"},
    {"task": 2, "file": "paged_attention.py",
     "find": "        v = gather_kv(v_cache, meta.block_tables[seq], ctx_len).transpose(0, 1)\n",
     "replace": "        v = gather_kv(v_cache, meta.block_tables[seq], ctx_len).transpose(0, 1)\n"
                "        rep = q.shape[0] // k.shape[0]\n"
                "        k, v = k.repeat(rep, 1, 1), v.repeat(rep, 1, 1)\n",
     "why": "I expanded the KV heads for GQA with repeat (head h reads KV head h % kv_heads) instead of "
            "repeat_interleave (h // group)",
     "check": "prefill with 4 query heads over 2 KV heads, different K per KV head: query head 1 should read KV head "
              "0; here it reads KV head 1, so heads 1 and 2 differ from dense SDPA with repeat_interleave"},
    {"task": 2, "file": "paged_attention.py",
     "find": "valid = torch.arange(num_blocks * block_size, device=query.device)[None, :] < meta.context_lens[rows, None]",
     "replace": "valid = torch.arange(num_blocks * block_size, device=query.device)[None, :] <= meta.context_lens[rows, None]",
     "why": "off by one in the decode padding mask: the slot just past the context is attended",
     "check": "decode, block_size 4, context_len 5, garbage (e.g. 100.0) in the cache's slot 5 of the last block: "
              "the output differs from dense SDPA over the 5 keys"},
    {"task": 2, "file": "paged_attention.py",
     "find": "out[rows] = F.scaled_dot_product_attention(",
     "replace": "out[start:start + len(group)] = F.scaled_dot_product_attention(",
     "why": "I sort by length to gather in groups but write the results back in sorted order, not to the rows they "
            "came from",
     "check": "decode of two sequences with context lengths [9, 3]: output rows are swapped against dense SDPA "
              "(equal only when the batch is already sorted by length)"},
    {"task": 2, "file": "paged_attention.py",
     "find": "                                                   scale=scale, enable_gqa=True)[:, :, 0, :]",
     "replace": "                                                   enable_gqa=True)[:, :, 0, :]",
     "why": "I forgot to pass the scale to SDPA in decode; its default 1/sqrt(head_dim) happens to be Llama's",
     "check": "decode_attention(q, kc, vc, meta, scale=0.5) with head_dim 16: the reference matches dense SDPA with "
              "scale 0.5, the mutant uses 0.25 (the prefill path still honours the scale)"},
    # ------------------------------------------------------------------------------------------
    # Task 3: model runner
    {"task": 3, "file": "model_runner.py",
     "find": "positions.extend(range(start, end))",
     "replace": "positions.extend(range(end - start))",
     "why": "positions restart at 0 for the tokens I feed, forgetting the cached prefix before them",
     "check": "prepare_prefill of a 6-token sequence with num_computed_tokens 4: positions [4, 5] in the reference, "
              "[0, 1] here (rotary angles wrong after a prefix-cache hit)"},
    {"task": 3, "file": "model_runner.py",
     "find": "            context_lens.append(end)\n",
     "replace": "            context_lens.append(end - start)\n",
     "why": "I set the context length to the number of new tokens, not the cached prefix plus the new tokens",
     "check": "prepare_prefill of a 6-token sequence with num_computed_tokens 4: context_lens [6] in the reference, "
              "[2] here (the prefix is not attended)"},
    {"task": 3, "file": "model_runner.py",
     "find": "slots.extend(seq.block_table[i // bs] * bs + i % bs for i in range(start, end))",
     "replace": "slots.extend(seq.block_table[i // bs] + i % bs for i in range(start, end))",
     "why": "slot = block id + offset: I forgot to multiply the block id by the block size",
     "check": "block_size 4, block_table [3], 2 tokens: slot_mapping [12, 13] in the reference, [3, 4] here"},
    {"task": 3, "file": "model_runner.py",
     "find": "context_lens = [len(s) for s in seqs]",
     "replace": "context_lens = [len(s) - 1 for s in seqs]",
     "why": "in decode I counted only the tokens computed before this step, not the new one whose key was just written",
     "check": "prepare_decode of a 5-token sequence: context_lens [5] in the reference, [4] here (the new token does "
              "not attend to itself; logits differ from transformers)"},
    {"task": 3, "file": "model_runner.py",
     "find": "        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n"
             "        out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n",
     "replace": "        out = paged_attention(q, k_cache, v_cache, meta, self.scale)\n"
                "        write_kv_cache(k, v, k_cache, v_cache, meta.slot_mapping)\n",
     "why": "I attend first and write the new keys and values afterwards, so attention reads stale cache slots",
     "check": "first prefill on a zeroed cache: logits differ from transformers (the new tokens' keys are zeros "
              "when attention reads them)"},
    # ------------------------------------------------------------------------------------------
    # Task 4: scheduler
    {"task": 4, "file": "scheduler.py",
     "find": "self.preempt(self.running.pop())",
     "replace": "self.preempt(self.running.popleft())",
     "why": "I preempt the oldest other running sequence instead of the newest",
     "check": "A, B, C admitted in that order, pool full, A needs a block: the reference preempts C, the mutant B"},
    {"task": 4, "file": "scheduler.py",
     "find": "                if self.running:\n                    self.preempt(self.running.pop())\n"
             "                else:\n                    self.preempt(seq)\n                    break\n",
     "replace": "                self.preempt(seq)\n                break\n",
     "why": "when a sequence cannot grow I preempt that sequence itself, whatever its age",
     "check": "A, B, C admitted in that order, pool full, A needs a block: the reference preempts C (the newest) and "
              "decodes A; the mutant preempts A itself"},
    {"task": 4, "file": "scheduler.py",
     "find": "        self.waiting.appendleft(seq)\n",
     "replace": "        self.waiting.append(seq)\n",
     "why": "a preempted sequence goes to the back of the waiting queue, behind requests that arrived after it",
     "check": "waiting [D], running [A, B, C], C preempted: waiting is [C, D] in the reference, [D, C] here"},
    {"task": 4, "file": "scheduler.py",
     "find": "while self.waiting and len(self.running) < self.max_num_seqs:",
     "replace": "while self.waiting and len(self.running) <= self.max_num_seqs:",
     "why": "off by one on max_num_seqs",
     "check": "max_num_seqs 2, three short waiting sequences, a roomy pool: schedule() admits 2 in the reference, 3 here"},
    {"task": 4, "file": "scheduler.py",
     "find": "            num_tokens += len(seq) - seq.num_computed_tokens\n",
     "replace": "",
     "why": "I check each prompt against the token budget on its own and never add up the step's tokens",
     "check": "max_num_batched_tokens 10, two waiting 6-token prompts: one is admitted in the reference, both (12 "
              "tokens) here"},
    {"task": 4, "file": "scheduler.py",
     "find": "        for queue in (self.running, self.waiting):\n            if seq in queue:\n                queue.remove(seq)\n",
     "replace": "        if seq in self.running:\n            self.running.remove(seq)\n",
     "why": "finish only takes the sequence out of running; I forgot that an abort can finish a waiting one",
     "check": "add a request, abort it before any step: scheduler.waiting is empty in the reference, still holds the "
              "finished sequence here (and it is scheduled later)"},
    {"task": 4, "file": "scheduler.py",
     "find": "        self.num_preemptions += 1\n",
     "replace": "",
     "why": "I counted the preemption on the sequence only, not the scheduler's total that the stats report",
     "check": "a pool so small that one sequence is preempted: scheduler.num_preemptions (and engine.stats."
              "num_preemptions) is 1 in the reference, 0 here"},
    # ------------------------------------------------------------------------------------------
    # Task 5: engine, sampling, stopping
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
     "why": "I apply the temperature last, after the top-p cut, so the nucleus is chosen on the unscaled distribution "
            "(vLLM scales first)",
     "check": "logits [2, 1, 0], temperature 2, top_p 0.6: with T first probs are [.51, .31, .19] and tokens {0, 1} "
              "are kept; the mutant cuts on [.67, .24, .09] and keeps only token 0"},
    {"task": 5, "file": "engine.py",
     "find": "scores = scores.masked_fill(scores < kth, float(\"-inf\"))",
     "replace": "scores = scores.masked_fill(scores <= kth, float(\"-inf\"))",
     "why": "top-k masks everything up to and including the k-th largest, keeping k - 1 tokens",
     "check": "logits [3, 2, 1], top_k 2, temperature 1: tokens 0 and 1 are drawn in the reference, only token 0 here "
              "(top_k 1 masks everything and multinomial fails)"},
    {"task": 5, "file": "engine.py",
     "find": "drop = probs.cumsum(dim=-1) - probs > params.top_p",
     "replace": "drop = probs.cumsum(dim=-1) > params.top_p",
     "why": "I drop the token whose cumulative probability crosses top_p, instead of keeping it",
     "check": "probs [0.5, 0.3, 0.2], top_p 0.6: tokens {0, 1} kept in the reference, only {0} here (and with "
              "top_p below the top probability every token is dropped)"},
    {"task": 5, "file": "engine.py",
     "find": "generator=seq.generator or default_generator",
     "replace": "generator=default_generator",
     "why": "I always draw from the engine's generator, so a request's seed is not honoured",
     "check": "SamplingParams(temperature=1, seed=7) alone and then beside other sampled requests: the same tokens in "
              "the reference, different ones here"},
    {"task": 5, "file": "engine.py",
     "find": "            banned = set(params.stop_token_ids) | stop_ids  # eos too under ignore_eos, as vLLM\n",
     "replace": "            banned = set(params.stop_token_ids)\n",
     "why": "the min_tokens mask bans only the request's stop_token_ids; I forgot the model's eos ids",
     "check": "logits whose argmax is eos, min_tokens 3, temperature 0: the first output token is not eos in the "
              "reference, eos here (kept in the output since it cannot stop yet)"},
    {"task": 5, "file": "engine.py",
     "find": "    if all(s.params.greedy and s.params.logprobs is None and s.num_output_tokens >= s.params.min_tokens\n",
     "replace": "    if all(s.params.greedy and s.params.logprobs is None\n",
     "why": "my all-greedy fast path (plain argmax) skips the min_tokens mask",
     "check": "a greedy batch, min_tokens 3, eos is the argmax: sample_tokens returns a non-eos token in the "
              "reference, eos here"},
    {"task": 5, "file": "engine.py",
     "find": "seq.text, seq.stop_reason = seq.text[:at], stop",
     "replace": "seq.text, seq.stop_reason = seq.text[:at + len(stop)], stop",
     "why": "I cut the text after the stop string, keeping it (vLLM's default drops it)",
     "check": "stop=['.'] and the text 'Hi. there': text 'Hi' in the reference, 'Hi.' here"},
    {"task": 5, "file": "engine.py",
     "find": "if not params.ignore_eos and token in self.eos_token_ids:",
     "replace": "if token in self.eos_token_ids:",
     "why": "ignore_eos only removes the min_tokens ban in my sampler; _check_stop still stops on eos",
     "check": "ignore_eos=True, max_tokens 20, a model that samples eos at token 5: finish_reason 'length' with 20 "
              "tokens in the reference, 'stop' with 5 here"},
    {"task": 5, "file": "engine.py",
     "find": "if seq.num_output_tokens >= params.max_tokens or len(seq) >= self.max_model_len:",
     "replace": "if seq.num_output_tokens > params.max_tokens or len(seq) >= self.max_model_len:",
     "why": "off by one on max_tokens",
     "check": "SamplingParams(temperature=0, max_tokens=4, ignore_eos=True): 4 output tokens in the reference, 5 here"},
    {"task": 5, "file": "engine.py",
     "find": "        return [finished[request_id] for request_id in ids]\n",
     "replace": "        return list(finished.values())\n",
     "why": "I return the outputs in the order they finished, not the prompts' order",
     "check": "generate(['a b c', 'd'], [SamplingParams(max_tokens=8, ignore_eos=True), SamplingParams(max_tokens=1)]): "
              "request ids gen-0, gen-1 in the reference; gen-1 comes first here"},
    # ------------------------------------------------------------------------------------------
    # Task 6: prefix caching
    {"task": 6, "file": "prefix_cache.py",
     "find": "    return hash((parent_hash, tuple(token_ids)))\n",
     "replace": "    return hash(tuple(token_ids))\n",
     "why": "I hash each block's tokens alone, ignoring the parent block",
     "check": "hash_block(1, [5, 6]) != hash_block(2, [5, 6]) in the reference; equal here"},
    {"task": 6, "file": "prefix_cache.py",
     "find": "    return hash((parent_hash, tuple(token_ids)))\n",
     "replace": "    return hash((parent_hash, frozenset(token_ids)))\n",
     "why": "I made the token list hashable with frozenset, losing the tokens' order (and repeats)",
     "check": "hash_block(None, [1, 2]) != hash_block(None, [2, 1]) in the reference; equal here (and [1, 1, 2] "
              "equals [1, 2, 2])"},
    {"task": 6, "file": "prefix_cache.py",
     "find": "        if block_hash in self.block_of_hash or block_id in self.hash_of_block:\n            return\n",
     "replace": "        if block_id in self.hash_of_block:\n            return\n",
     "why": "when two blocks hold the same hash the newer one replaces the first in the cache",
     "check": "insert(h, 1); insert(h, 2): lookup(h) is 1 in the reference, 2 here (and evicting block 1 later "
              "forgets block 2's entry)"},
    {"task": 6, "file": "prefix_cache.py",
     "find": "block_id, _ = self.evictable.popitem(last=False)",
     "replace": "block_id, _ = self.evictable.popitem()",
     "why": "popitem() without last=False evicts the most recently parked block (MRU), not the least recent",
     "check": "insert blocks 1 and 2, park(1) then park(2): evict() returns 1 in the reference, 2 here"},
    {"task": 6, "file": "block_manager.py",
     "find": "for index in range((len(seq) - 1) // self.block_size):",
     "replace": "for index in range(len(seq) // self.block_size):",
     "why": "I look up every full block of the prompt, including the block of its last token",
     "check": "block_size 4, cache an 8-token prompt (finish it), allocate the same 8 tokens again: "
              "num_computed_tokens 4 in the reference, 8 here (no token left to compute the logits from)"},
    {"task": 6, "file": "block_manager.py",
     "find": "            if block_id is None or self.blocks[block_id].token_ids != tokens:\n",
     "replace": "            if block_id is None:\n",
     "why": "I trust a hash hit without comparing the stored tokens",
     "check": "with hash_block patched to a constant: cache prompt [1, 2, 3, 4, 5], then allocate [9, 9, 9, 9, 5]: "
              "0 blocks reused in the reference, 1 here (wrong KV reused)"},
    {"task": 6, "file": "block_manager.py",
     "find": "            if block.ref_count == 0:\n                self.prefix_cache.unpark(block_id)\n",
     "replace": "",
     "why": "on a hit I take a reference but leave a parked block in the evictable set",
     "check": "block_size 4, allocate and free a 5-token prompt (block 0 parked), allocate it again: num_evictable 0 "
              "and num_free_blocks num_blocks - 2 in the reference; here num_evictable 1 and the held block can be "
              "evicted for another sequence"},
    {"task": 6, "file": "block_manager.py",
     "find": "        parent = self.blocks[seq.block_table[index - 1]].block_hash if index > 0 else None\n",
     "replace": "        parent = seq.block_table[index - 1] if index > 0 else None\n",
     "why": "I chained to the previous block's id instead of its hash",
     "check": "block_size 4, cache a 12-token prompt, then allocate the same 12 tokens + 1: 3 blocks reused in the "
              "reference, 1 here (the lookup chains hashes, the insert chained block ids)"},
    {"task": 6, "file": "block_manager.py",
     "find": "            parent = block_hash\n",
     "replace": "",
     "why": "in the lookup loop I never move the parent hash forward, so every block after the first is looked up "
            "as if it came first",
     "check": "block_size 4, cache a 12-token prompt, then allocate the same 12 tokens + 1: 3 blocks reused in the "
              "reference, 1 here"},
    # ------------------------------------------------------------------------------------------
    # Task 7: KV capacity
    {"task": 7, "file": "model_runner.py",
     "find": "return 2 * config.num_hidden_layers * block_size * config.num_key_value_heads * config.head_dim * element",
     "replace": "return config.num_hidden_layers * block_size * config.num_key_value_heads * config.head_dim * element",
     "why": "I counted the keys only, forgetting the factor 2 for K and V",
     "check": "2 layers, 4 KV heads, head_dim 16, block_size 16, float32: 16384 bytes per block in the reference, "
              "8192 here (twice as many blocks as vLLM reports)"},
    {"task": 7, "file": "model_runner.py",
     "find": "block_size * config.num_key_value_heads * config.head_dim * element",
     "replace": "block_size * config.num_attention_heads * config.head_dim * element",
     "why": "I used the attention heads instead of the KV heads (forgetting grouped-query attention)",
     "check": "6 heads over 2 KV heads: bytes per block 3x too large here, so 3x fewer blocks than vLLM reports"},
    {"task": 7, "file": "model_runner.py",
     "find": "    return kv_cache_bytes // kv_cache_bytes_per_block(config, block_size, dtype)\n",
     "replace": "    return round(kv_cache_bytes / kv_cache_bytes_per_block(config, block_size, dtype))\n",
     "why": "I rounded the number of blocks to the nearest instead of down",
     "check": "2 layers, 4 KV heads, head_dim 16, block_size 16, float32 (16384 bytes per block), a budget of "
              "26214 bytes (1.6 blocks): 1 block in the reference, 2 here (more than the budget)"},
    {"task": 7, "file": "model_runner.py",
     "find": "    element = torch.empty((), dtype=dtype).element_size()\n",
     "replace": "    element = 4\n",
     "why": "I hard-coded 4 bytes per element (float32), ignoring the cache's dtype",
     "check": "dtype torch.bfloat16: element size 2 in the reference, 4 here (half the blocks for a bf16 budget)"},
    # ------------------------------------------------------------------------------------------
    # Task 11: deployment sizing
    {"task": 11, "file": "deploy.py",
     "find": "    kv_heads = max(1, shape.num_kv_heads // tensor_parallel_size)\n",
     "replace": "    kv_heads = max(1, shape.num_kv_heads) // tensor_parallel_size\n",
     "why": "I divide by the tensor-parallel size after the max(1, ...), so KV heads are never replicated",
     "check": "Llama-3-8B (8 KV heads), tensor_parallel_size 16: 1 head per GPU, 2*32*1*128*2 = 16384 bytes per token "
              "in the reference; 0 here (and blocks_for_cache divides by zero)"},
    {"task": 11, "file": "deploy.py",
     "find": "    return 2 * shape.num_layers * kv_heads * shape.head_dim * DTYPE_BYTES[dtype]\n",
     "replace": "    return shape.num_layers * kv_heads * shape.head_dim * DTYPE_BYTES[dtype]\n",
     "why": "I forgot the factor 2 for K and V",
     "check": "Llama-2-7B fp16: 524288 bytes per token in the reference, 262144 here"},
    {"task": 11, "file": "deploy.py",
     "find": "    return 2 * shape.num_layers * kv_heads * shape.head_dim * DTYPE_BYTES[dtype]\n",
     "replace": "    return 2 * shape.num_layers * kv_heads * (shape.hidden_size // shape.num_heads) * DTYPE_BYTES[dtype]\n",
     "why": "I computed head_dim as hidden_size // num_heads instead of reading the config's head_dim",
     "check": "a Mistral-NeMo-like shape (40 layers, hidden 5120, 32 heads, 8 KV heads, head_dim 128), fp16: 163840 "
              "bytes per token in the reference, 204800 here"},
    {"task": 11, "file": "deploy.py",
     "find": "    weights = weight_bytes(shape, dtype, quantization) // tensor_parallel_size\n",
     "replace": "    weights = weight_bytes(shape, dtype, quantization)\n",
     "why": "I subtract the whole model's weights on each GPU, forgetting tensor parallelism splits them",
     "check": "Llama-2-13B fp16 on 2 x 24 GiB at 0.9, tensor_parallel_size 2: the reference plans ~7.5 GiB of KV "
              "cache per GPU (weights 12.1 GiB each), the mutant counts 24.2 GiB and raises 'leaves nothing for the "
              "KV cache'"},
    {"task": 11, "file": "deploy.py",
     "find": "        return self.num_blocks // math.ceil(seq_len / self.block_size)\n",
     "replace": "        return self.num_blocks * self.block_size // seq_len\n",
     "why": "I divided the cache's tokens by the sequence length, ignoring that each sequence takes whole blocks",
     "check": "num_blocks 10, block_size 16, seq_len 20: 5 sequences in the reference (2 blocks each), 8 here"},
    {"task": 11, "file": "deploy.py",
     "find": "attention = self.hidden_size * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)",
     "replace": "attention = self.hidden_size * self.head_dim * 4 * self.num_heads",
     "why": "I counted k and v projections as full hidden x hidden matrices, forgetting GQA",
     "check": "Llama-3-8B (32 heads, 8 KV heads): linear_parameters 6979321856 in the reference, 7784628224 here "
              "(transformers' count disagrees; Llama-2-7B, without GQA, is unchanged)"},
    {"task": 11, "file": "deploy.py",
     "find": "            if shape.num_kv_heads % tp and tp % shape.num_kv_heads:\n",
     "replace": "            if shape.num_kv_heads % tp:\n",
     "why": "I required the tensor-parallel size to divide the KV heads, refusing the replicated case",
     "check": "a shape with 32 heads and 8 KV heads, tensor_parallel_size 16: accepted in the reference (16 % 8 == 0, "
              "vLLM replicates), ValueError here"},
    {"task": 11, "file": "deploy.py",
     "find": "                command.append(flag if value else \"--no-\" + flag[2:])\n",
     "replace": "                if value:\n                    command.append(flag)\n",
     "why": "I write a True boolean as its flag and simply leave a False one out",
     "check": "DeployConfig(model='m', enable_prefix_caching=False).cli_args() holds '--no-enable-prefix-caching' in "
              "the reference, nothing here (vLLM then enables prefix caching, its default)"},
]
