"""Blind round 11 for lab02: plausible mistakes in task 5's batched sampler (inverse transform draw), written from the README, docstrings and solution only (reviewer had not read the tests)."""

MUTANTS = [
    # ---------------------------------------------------------------- the all-greedy shortcut
    {"task": 5, "file": "engine.py",
     "find": "    if all(s.params.greedy and s.params.logprobs is None",
     "replace": "    if any(s.params.greedy and s.params.logprobs is None",
     "why": "the argmax shortcut taken when any row (not every row) is greedy: the sampled rows of a mixed batch are argmaxed too",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0))]
>>> seqs += [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(200)]
>>> toks = engine.sample_tokens(torch.zeros(201, 64), seqs, set(), torch.Generator().manual_seed(0))
>>> assert toks[0] == 0 and len(set(toks[1:])) > 10, toks[:20]  # the sampled rows are spread over the 64 tokens
"""},
    {"task": 5, "file": "engine.py",
     "find": "s.params.logprobs is None and s.num_output_tokens >= s.params.min_tokens",
     "replace": "s.params.logprobs is None",
     "why": "the all-greedy shortcut forgets min_tokens: a greedy batch under min_tokens takes processed's argmax, eos included",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, min_tokens=2))
>>> assert engine.sample_tokens(torch.tensor([[5.0, 1.0, 0.0]]), [s], {0}) == [1]  # eos 0 banned before 2 outputs
"""},
    {"task": 5, "file": "engine.py",
     "find": "s.params.greedy and s.params.logprobs is None and",
     "replace": "s.params.greedy and",
     "why": "the all-greedy shortcut forgets logprobs: a greedy request that asks for logprobs gets none recorded",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, logprobs=1))
>>> assert engine.sample_tokens(torch.tensor([[0.0, 2.0, 1.0]]), [s], set()) == [1]
>>> assert len(s.logprobs) == 1 and set(s.logprobs[0]) == {1}, s.logprobs
"""},
    {"task": 5, "file": "engine.py",
     "find": "    chosen = scores.argmax(dim=-1)",
     "replace": "    chosen = processed.argmax(dim=-1)",
     "why": "greedy rows take the argmax of processed (before the min_tokens bans), so a greedy row in a mixed batch stops early on eos",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> g = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, min_tokens=3))
>>> r = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0))
>>> toks = engine.sample_tokens(torch.tensor([[5.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), [g, r], {0}, torch.Generator().manual_seed(0))
>>> assert toks[0] == 1, toks  # eos 0 is banned for g until 3 outputs
"""},
    # ---------------------------------------------------------------- min_tokens bans
    {"task": 5, "file": "engine.py",
     "find": "for token in set(seq.params.stop_token_ids) | stop_ids]",
     "replace": "for token in set(seq.params.stop_token_ids) | (set() if seq.params.ignore_eos else stop_ids)]",
     "why": "under ignore_eos the eos ids are not banned during min_tokens (the docstring: banned even under ignore_eos, as vLLM's all_stop_token_ids)",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, min_tokens=2, ignore_eos=True))
>>> assert engine.sample_tokens(torch.tensor([[5.0, 1.0, 0.0]]), [s], {0}) == [1]
"""},
    {"task": 5, "file": "engine.py",
     "find": "if seq.num_output_tokens < seq.params.min_tokens",
     "replace": "if seq.num_output_tokens <= seq.params.min_tokens",
     "why": "off by one in the min_tokens ban: eos stays banned at the step where min_tokens outputs already exist (and always, with min_tokens=0, for non-shortcut rows)",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, min_tokens=1, logprobs=0))
>>> s.append_token(7)  # one output already: min_tokens=1 is met
>>> assert engine.sample_tokens(torch.tensor([[5.0, 1.0, 0.0]]), [s], {0}) == [0]
"""},
    {"task": 5, "file": "engine.py",
     "find": "if seq.num_output_tokens < seq.params.min_tokens",
     "replace": "if len(seq) < seq.params.min_tokens",
     "why": "min_tokens counted against the whole sequence (prompt included), so a long enough prompt lifts the ban at once",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2, 3], sp.SamplingParams(temperature=0.0, min_tokens=2))
>>> assert engine.sample_tokens(torch.tensor([[5.0, 1.0, 0.0]]), [s], {0}) == [1]  # no output yet: eos banned
"""},
    {"task": 5, "file": "engine.py",
     "find": "if seq.num_output_tokens < seq.params.min_tokens",
     "replace": "if any(s.num_output_tokens < s.params.min_tokens for s in seqs)",
     "why": "the min_tokens ban applied to every row of the batch as soon as one row is under its min_tokens",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> a = sequence.Sequence("a", [1, 2], sp.SamplingParams(temperature=0.0, min_tokens=3))
>>> b = sequence.Sequence("b", [1, 2], sp.SamplingParams(temperature=0.0))
>>> assert engine.sample_tokens(torch.tensor([[5.0, 1.0, 0.0]] * 2), [a, b], {0}) == [1, 0]  # b may stop
"""},
    {"task": 5, "file": "engine.py",
     "find": "for token in set(seq.params.stop_token_ids) | stop_ids]",
     "replace": "for token in stop_ids]",
     "why": "min_tokens bans only the model's eos ids, not the request's stop_token_ids",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, min_tokens=1, stop_token_ids=[1]))
>>> assert engine.sample_tokens(torch.tensor([[0.0, 5.0, 1.0]]), [s], {0}) == [2]
"""},
    {"task": 5, "file": "engine.py",
     "find": 'scores[list(rows), list(tokens)] = float("-inf")',
     "replace": "scores[list(rows), list(tokens)] = 0.0",
     "why": "a banned token's logit set to 0 (a probability-mask habit) instead of -inf: it stays the argmax whenever the other logits are negative",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, min_tokens=1))
>>> assert engine.sample_tokens(torch.tensor([[5.0, -1.0, -2.0]]), [s], {0}) == [1]
"""},
    {"task": 5, "file": "engine.py",
     "find": "    scores = processed.clone()",
     "replace": "    scores = processed",
     "why": "no copy: the bans and the in-place temperature division write into processed, which is the caller's logits when no request has logit_bias / allowed_token_ids",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> logits = torch.tensor([[2.0, 1.0, 0.0]]); before = logits.clone()
>>> s = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=0.5, min_tokens=1))
>>> _ = engine.sample_tokens(logits, [s], {0}, torch.Generator().manual_seed(0))
>>> assert torch.equal(logits, before), logits
"""},
    # ---------------------------------------------------------------- temperature, top-k, top-p
    {"task": 5, "file": "engine.py",
     "find": "scores /= column(",
     "replace": "scores *= column(",
     "why": "temperature multiplied instead of divided: a low temperature flattens the distribution",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=0.25)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[1.0, 0.0]] * 400), seqs, set(), torch.Generator().manual_seed(0))
>>> assert toks.count(0) > 360, toks.count(0)  # softmax([4, 0]) gives token 0 with p = 0.982
"""},
    {"task": 5, "file": "engine.py",
     "find": 'scores = torch.empty_like(scores).scatter_(1, order, sorted_scores)',
     "replace": 'scores = sorted_scores.gather(1, order)',
     "why": "the filtered sorted scores put back with gather (the inverse permutation) instead of scatter: tokens get other tokens' scores",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=1)) for _ in range(20)]
>>> toks = engine.sample_tokens(torch.tensor([[1.0, 3.0, 2.0]] * 20), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {1}, toks
"""},
    {"task": 5, "file": "engine.py",
     "find": 'sorted_scores.masked_fill_(sorted_scores < kth, float("-inf"))',
     "replace": 'sorted_scores.masked_fill_(sorted_scores <= kth, float("-inf"))',
     "why": "top-k keeps only the scores strictly above the k-th (k-1 tokens, and rows with top-k off lose their smallest token)",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=2)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[1.0, 1.5, 0.0, -1.0]] * 400), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {0, 1}, sorted(set(toks))
"""},
    {"task": 5, "file": "engine.py",
     "find": 'sorted_scores.masked_fill_(sorted_scores < kth, float("-inf"))',
     "replace": 'sorted_scores.masked_fill_(torch.arange(vocab, device=scores.device) >= column(top_k), float("-inf"))',
     "why": "top-k by rank (the first k positions of the sort) instead of by value: ties with the k-th are dropped, one of them arbitrarily kept",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=1)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[2.0, 2.0, 0.0, 0.0]] * 400), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {0, 1}, sorted(set(toks))  # both tokens tie with the 1st largest: both kept
"""},
    {"task": 5, "file": "engine.py",
     "find": "kth = sorted_scores.gather(1, column(top_k).long() - 1)",
     "replace": "kth = scores.gather(1, column(top_k).long() - 1)",
     "why": "the k-th threshold read from the unsorted scores (the score of token k-1) instead of the sorted ones",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=1)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[0.0, 5.0, 1.0, 2.0]] * 400), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {1}, sorted(set(toks))
"""},
    {"task": 5, "file": "engine.py",
     "find": "kth = sorted_scores.gather(1, column(top_k).long() - 1)",
     "replace": "kth = sorted_scores[:, min(top_k) - 1:min(top_k)]",
     "why": "one k for the whole batch (the smallest row's): a row with top-k off is cut to another request's k",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("k", [1, 2], sp.SamplingParams(temperature=1.0, top_k=1))]
>>> seqs += [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[1.0, 0.5, 0.0, -0.5]] * 401), seqs, set(), torch.Generator().manual_seed(0))
>>> assert toks[0] == 0 and set(toks[1:]) == {0, 1, 2, 3}, sorted(set(toks[1:]))
"""},
    {"task": 5, "file": "engine.py",
     "find": "top_k = [s.params.top_k if 0 < s.params.top_k < vocab else vocab for s in seqs]",
     "replace": "top_k = [s.params.top_k if s.params.top_k > 0 else vocab for s in seqs]",
     "why": "a top_k larger than the vocabulary is not treated as off: the k-th sorted value is read past the end when the filter runs",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=10, top_p=0.9))
>>> toks = engine.sample_tokens(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), [s], set(), torch.Generator().manual_seed(0))
>>> assert 0 <= toks[0] < 4
"""},
    {"task": 5, "file": "engine.py",
     "find": "top_k = [s.params.top_k if 0 < s.params.top_k < vocab else vocab for s in seqs]",
     "replace": "top_k = [s.params.top_k if s.params.top_k != -1 else vocab for s in seqs]",
     "why": "only top_k = -1 treated as off; top_k = 0 (also off, as in vLLM) reads the k-th value at index -1",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=0)) for _ in range(200)]
>>> toks = engine.sample_tokens(torch.zeros(200, 4), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {0, 1, 2, 3}
"""},
    {"task": 5, "file": "engine.py",
     "find": 'top_p = [s.params.top_p if s.params.top_p < 1.0 else float("inf") for s in seqs]',
     "replace": "top_p = [s.params.top_p for s in seqs]",
     "why": "top_p = 1 compared as 1.0: when the filter runs (top-k on), the running sum's rounding reaches 1.0 early and drops the tail (here a token of probability 2e-9 that u = 0, a value torch.rand returns, must pick)",
     "check": """
>>> import torch; torch.set_num_threads(1); from unittest import mock; from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=2))
>>> zeros = lambda *size, generator=None, device=None: torch.zeros(size, device=device)
>>> with mock.patch.object(torch, "rand", zeros):
...     toks = engine.sample_tokens(torch.tensor([[0.0, 20.0, -30.0]]), [s], set())
>>> assert toks == [0], toks  # token 0 is kept by top-k (2 largest) and top-p off: the first token with probability > 0
"""},
    {"task": 5, "file": "engine.py",
     "find": "if min(top_k) < vocab or min(top_p) < 1.0:",
     "replace": "if min(top_k) < vocab and min(top_p) < 1.0:",
     "why": "the sort-and-filter block runs only when some row has both top-k and top-p on: top-p alone (or top-k alone) is ignored",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_p=0.4)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 400), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {0}, sorted(set(toks))  # p(token 0) = 0.475 reaches 0.4 alone
"""},
    {"task": 5, "file": "engine.py",
     "find": "probs.cumsum(dim=-1) - probs >= column(top_p)",
     "replace": "probs.cumsum(dim=-1) - probs > column(top_p)",
     "why": "top-p keeps one token too many when the mass before it equals top_p exactly (the smallest set whose probability reaches top_p)",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_p=0.5)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.zeros(400, 4), seqs, set(), torch.Generator().manual_seed(0))
>>> assert len(set(toks)) == 2, sorted(set(toks))  # 0.25 + 0.25 reaches 0.5: two tokens
"""},
    {"task": 5, "file": "engine.py",
     "find": "probs.cumsum(dim=-1) - probs >= column(top_p)",
     "replace": "probs.cumsum(dim=-1) > column(top_p)",
     "why": "top-p drops the token whose cumulative probability crosses top_p (inclusive running sum): one token short, and nothing left when the top token alone exceeds top_p",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_p=0.3)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.zeros(400, 4), seqs, set(), torch.Generator().manual_seed(0))
>>> assert len(set(toks)) == 2, sorted(set(toks))  # 0.25 < 0.3: the second token is needed to reach 0.3
"""},
    {"task": 5, "file": "engine.py",
     "find": "probs = sorted_scores.softmax(dim=-1)",
     "replace": "probs = scores.sort(dim=-1, descending=True).values.softmax(dim=-1)",
     "why": "top-p measured on the distribution before top-k, not renormalized over the top-k survivors (vLLM and transformers renormalize)",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=2, top_p=0.5)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 400), seqs, set(), torch.Generator().manual_seed(0))
>>> assert len(set(toks)) == 1, sorted(set(toks))  # after top-k: 0.5, 0.5; the first reaches top_p
"""},
    {"task": 5, "file": "engine.py",
     "find": "probs.cumsum(dim=-1) - probs >= column(top_p)",
     "replace": "probs.cumsum(dim=-1) - probs >= min(top_p)",
     "why": "one top_p for the whole batch (the smallest row's): a request with top-p off is cut by another's",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("p", [1, 2], sp.SamplingParams(temperature=1.0, top_p=0.3))]
>>> seqs += [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.zeros(401, 4), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks[1:]) == {0, 1, 2, 3}, sorted(set(toks[1:]))
"""},
    # ---------------------------------------------------------------- the draw
    {"task": 5, "file": "engine.py",
     "find": "greedy = torch.tensor([s.params.greedy for s in seqs], device=scores.device)",
     "replace": "greedy = torch.tensor([s.params.temperature == 0 for s in seqs], device=scores.device)",
     "why": "greedy rows of the draw taken as temperature == 0, not params.greedy (below 1e-5): a temperature 1e-6 row gets a temperature of 1 and is sampled",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=1e-6)) for _ in range(100)]
>>> seqs.append(sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)))
>>> toks = engine.sample_tokens(torch.zeros(101, 16), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks[:100]) == {0}, sorted(set(toks[:100]))  # greedy: the argmax (first of the ties)
"""},
    {"task": 5, "file": "engine.py",
     "find": "chosen = torch.where(greedy, chosen, drawn)",
     "replace": "chosen = torch.where(greedy, drawn, chosen)",
     "why": "the greedy/drawn mix inverted: greedy rows get the drawn token and sampled rows the argmax",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0))]
>>> seqs += [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(200)]
>>> logits = torch.zeros(201, 64); logits[0, 5] = 1.0
>>> toks = engine.sample_tokens(logits, seqs, set(), torch.Generator().manual_seed(0))
>>> assert toks[0] == 5 and len(set(toks[1:])) > 10, toks[:20]
"""},
    {"task": 5, "file": "engine.py",
     "find": "drawn = torch.searchsorted(cdf, target, right=True)[:, 0]",
     "replace": "drawn = torch.searchsorted(cdf, target, right=False)[:, 0]",
     "why": "the search's side: right=False finds the first running sum >= u*total, so u = 0 (a value torch.rand returns) or a u landing on a flat stretch picks a zero-probability (filtered, banned, disallowed) token",
     "check": """
>>> import torch; torch.set_num_threads(1); from unittest import mock; from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, allowed_token_ids=[1, 2]))
>>> zeros = lambda *size, generator=None, device=None: torch.zeros(size, device=device)
>>> with mock.patch.object(torch, "rand", zeros):
...     toks = engine.sample_tokens(torch.zeros(1, 3), [s], set())
>>> assert toks == [1], toks  # token 0 is not allowed
"""},
    {"task": 5, "file": "engine.py",
     "find": "drawn = torch.searchsorted(cdf, target, right=True)[:, 0]",
     "replace": "drawn = torch.searchsorted(cdf, target, right=True)[:, 0] - 1",
     "why": "off by one after the search (taken as the last running sum <= u, minus one): the token before the drawn one, -1 for the first",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=1)) for _ in range(20)]
>>> toks = engine.sample_tokens(torch.tensor([[0.0, 5.0, 1.0]] * 20), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {1}, sorted(set(toks))
"""},
    {"task": 5, "file": "engine.py",
     "find": "target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))",
     "replace": "target = u",
     "why": "u compared with the running sum as if it ended at exactly 1: float32 sums end a little below 1 for some rows, and a u above that total finds no token (id = vocab)",
     "check": """
>>> import torch; torch.set_num_threads(1); from unittest import mock; from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0))
>>> top = lambda *size, generator=None, device=None: torch.full(size, 1 - 2 ** -24, device=device)  # torch.rand's largest value
>>> with mock.patch.object(torch, "rand", top):
...     toks = engine.sample_tokens(torch.tensor([[0.0, 2.0, 1.0]]), [s], set())  # float32 sum: 0.99999988
>>> assert toks == [2], toks
"""},
    {"task": 5, "file": "engine.py",
     "find": "total = cdf[:, -1:]",
     "replace": "total = cdf.sum(dim=-1, keepdim=True)",
     "why": "the total taken as the sum of the running sums instead of their last value: u*total is clamped to the end, always the last token",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.zeros(400, 4), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {0, 1, 2, 3}, sorted(set(toks))
"""},
    {"task": 5, "file": "engine.py",
     "find": "target = torch.minimum(u * total",
     "replace": "target = torch.maximum(u * total",
     "why": "the clamp below the total with maximum instead of minimum: every row draws its last token of nonzero probability",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.zeros(400, 4), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {0, 1, 2, 3}, sorted(set(toks))
"""},
    {"task": 5, "file": "engine.py",
     "find": "cdf = scores.softmax(dim=-1).cumsum(dim=-1)",
     "replace": "cdf = scores.exp().cumsum(dim=-1)",
     "why": "softmax skipped since u is scaled by the total anyway: exact in theory, but exp overflows float32 for logits above ~88 (or a low temperature), and the row always draws its first overflowing token",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=0.5)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[50.0, 49.5]] * 400), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {0, 1}, sorted(set(toks))  # p = 0.73, 0.27
"""},
    {"task": 5, "file": "engine.py",
     "find": "cdf = scores.softmax(dim=-1).cumsum(dim=-1)",
     "replace": "cdf = scores.softmax(dim=-1).cumsum(dim=0)",
     "why": "the running sum taken along the batch axis instead of the vocabulary",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(2)]
>>> toks = engine.sample_tokens(torch.tensor([[0.0, 30.0, 0.0], [0.0, 0.0, 30.0]]), seqs, set(), torch.Generator().manual_seed(0))
>>> assert toks == [1, 2], toks
"""},
    {"task": 5, "file": "engine.py",
     "find": "cdf = scores.softmax(dim=-1).cumsum(dim=-1)",
     "replace": "cdf = processed.softmax(dim=-1).cumsum(dim=-1)",
     "why": "the draw made from processed instead of the filtered scores: temperature, top-k, top-p and the min_tokens bans are all lost",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, top_k=1)) for _ in range(400)]
>>> toks = engine.sample_tokens(torch.tensor([[0.0, 3.0, 1.0]] * 400), seqs, set(), torch.Generator().manual_seed(0))
>>> assert set(toks) == {1}, sorted(set(toks))
"""},
    {"task": 5, "file": "engine.py",
     "find": "u = torch.rand(len(seqs), 1, generator=default_generator, device=scores.device)",
     "replace": "u = torch.rand(1, 1, generator=default_generator, device=scores.device)",
     "why": "one uniform for the whole batch ('one draw picks every row's token') broadcast to every unseeded row: rows with the same distribution all get the same token",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(64)]
>>> toks = engine.sample_tokens(torch.zeros(64, 64), seqs, set(), torch.Generator().manual_seed(0))
>>> assert len(set(toks)) > 10, toks
"""},
    {"task": 5, "file": "engine.py",
     "find": "u = torch.rand(len(seqs), 1, generator=default_generator, device=scores.device)",
     "replace": "u = torch.rand(len(seqs), 1, device=scores.device)",
     "why": "the unseeded rows' uniforms drawn from torch's global generator instead of default_generator: the engine's seed no longer fixes its output",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> def run(global_seed):
...     torch.manual_seed(global_seed)
...     seqs = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(32)]
...     return engine.sample_tokens(torch.zeros(32, 64), seqs, set(), torch.Generator().manual_seed(0))
>>> assert run(1) == run(2)
"""},
    {"task": 5, "file": "engine.py",
     "find": "u[row] = torch.rand(1, generator=seq.generator, device=scores.device)",
     "replace": "u[row] = torch.rand(1, generator=default_generator, device=scores.device)",
     "why": "seeded rows draw their uniform from the engine's generator, not their own: a seeded request's tokens depend on the engine's state and batch",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> def run(engine_seed):
...     seqs = [sequence.Sequence("s", [1, 2], sp.SamplingParams(temperature=1.0, seed=7)) for _ in range(16)]
...     for s in seqs: s.generator = torch.Generator().manual_seed(7)
...     return engine.sample_tokens(torch.zeros(16, 1000), seqs, set(), torch.Generator().manual_seed(engine_seed))
>>> a = run(0)
>>> assert a == run(1) and len(set(a)) == 1, a  # each row's first uniform from its own seed-7 generator
"""},
    {"task": 5, "file": "engine.py",
     "find": "u[row] = torch.rand(1, generator=seq.generator, device=scores.device)",
     "replace": "u[row] = torch.rand(len(seqs), 1, generator=seq.generator, device=scores.device)[row]",
     "why": "a seeded row draws a whole batch's uniforms from its generator and keeps its row's: its token depends on its place and the batch size",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> def seeded():
...     s = sequence.Sequence("s", [1, 2], sp.SamplingParams(temperature=1.0, seed=7)); s.generator = torch.Generator().manual_seed(7)
...     return s
>>> alone = engine.sample_tokens(torch.zeros(1, 1000), [seeded()], set(), torch.Generator().manual_seed(0))
>>> others = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(5)]
>>> mixed = engine.sample_tokens(torch.zeros(6, 1000), others + [seeded()], set(), torch.Generator().manual_seed(0))
>>> assert mixed[5] == alone[0], (alone, mixed)
"""},
    {"task": 5, "file": "engine.py",
     "find": "        for row, seq in enumerate(seqs):\n            if seq.generator is not None:",
     "replace": "        for row, seq in enumerate([s for s in seqs if s.generator is not None]):\n            if seq.generator is not None:",
     "why": "the seeded rows enumerated after filtering: row counts seeded requests, not batch rows, so a seeded request's uniform lands on another row",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> def seeded():
...     s = sequence.Sequence("s", [1, 2], sp.SamplingParams(temperature=1.0, seed=7)); s.generator = torch.Generator().manual_seed(7)
...     return s
>>> alone = engine.sample_tokens(torch.zeros(1, 1000), [seeded()], set(), torch.Generator().manual_seed(0))
>>> others = [sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0)) for _ in range(3)]
>>> mixed = engine.sample_tokens(torch.zeros(6, 1000), others + [seeded() for _ in range(3)], set(), torch.Generator().manual_seed(0))
>>> assert mixed[3:] == alone * 3, (alone, mixed)
"""},
    # ---------------------------------------------------------------- logprobs
    {"task": 5, "file": "engine.py",
     "find": "logprobs = torch.log_softmax(logits[asking], dim=-1)",
     "replace": "logprobs = torch.log_softmax(processed[asking], dim=-1)",
     "why": "logprobs taken after logit_bias / allowed_token_ids (processed) instead of from the raw logits (vLLM's raw_logprobs)",
     "check": """
>>> import math, torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, logprobs=0, logit_bias={1: 5.0}))
>>> assert engine.sample_tokens(torch.zeros(1, 4), [s], set()) == [1]
>>> assert abs(s.logprobs[0][1] - math.log(0.25)) < 1e-5, s.logprobs
"""},
    {"task": 5, "file": "engine.py",
     "find": "logprobs = torch.log_softmax(logits[asking], dim=-1)",
     "replace": "logprobs = torch.log_softmax(scores[asking], dim=-1)",
     "why": "logprobs taken from the scores the draw used (after temperature, bans, top-k/top-p) instead of the raw logits",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> logits = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
>>> s = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=0.5, logprobs=4))
>>> _ = engine.sample_tokens(logits, [s], set(), torch.Generator().manual_seed(0))
>>> raw = torch.log_softmax(logits[0], dim=-1)
>>> assert all(abs(v - raw[t].item()) < 1e-5 for t, v in s.logprobs[0].items()), s.logprobs
"""},
    {"task": 5, "file": "engine.py",
     "find": "logprobs = torch.log_softmax(logits[asking], dim=-1)",
     "replace": "logprobs = torch.log_softmax(logits[asking], dim=0)",
     "why": "log-softmax normalized over the asking rows (batch axis) instead of the vocabulary",
     "check": """
>>> import math, torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("g", [1, 2], sp.SamplingParams(temperature=0.0, logprobs=0))
>>> assert engine.sample_tokens(torch.tensor([[1.0, 0.0, 0.0]]), [s], set()) == [0]
>>> assert abs(s.logprobs[0][0] - (1 - math.log(math.e + 2))) < 1e-5, s.logprobs
"""},
    {"task": 5, "file": "engine.py",
     "find": "seqs[row].logprobs.append({t: float(logprobs[i, t]) for t in ids})",
     "replace": "seqs[row].logprobs.append({t: float(logprobs[row, t]) for t in ids})",
     "why": "the logprobs of asking row i read at the batch row's index instead of its place among the asking rows",
     "check": """
>>> import math, torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> a = sequence.Sequence("a", [1, 2], sp.SamplingParams(temperature=0.0))
>>> b = sequence.Sequence("b", [1, 2], sp.SamplingParams(temperature=0.0, logprobs=0))
>>> c = sequence.Sequence("c", [1, 2], sp.SamplingParams(temperature=0.0, logprobs=0))
>>> logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
>>> assert engine.sample_tokens(logits, [a, b, c], set()) == [0, 0, 2]
>>> assert abs(b.logprobs[0][0] - torch.log_softmax(logits[1], -1)[0].item()) < 1e-5, b.logprobs
"""},
    {"task": 5, "file": "engine.py",
     "find": "asking = [row for row, seq in enumerate(seqs) if seq.params.logprobs is not None]",
     "replace": "asking = [row for row, seq in enumerate(seqs) if seq.params.logprobs]",
     "why": "logprobs=0 taken as off: the chosen token's logprob is not recorded (README/hints: logprobs = 0 still records it)",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, logprobs=0))
>>> toks = engine.sample_tokens(torch.zeros(1, 4), [s], set(), torch.Generator().manual_seed(0))
>>> assert len(s.logprobs) == 1 and set(s.logprobs[0]) == set(toks), s.logprobs
"""},
    {"task": 5, "file": "engine.py",
     "find": "ids = [tokens[row], *top[i][:seqs[row].params.logprobs]]",
     "replace": "ids = [tokens[row], *top[i]]",
     "why": "every asking row gets the batch's largest logprobs count of top tokens, not its own",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> a = sequence.Sequence("a", [1, 2], sp.SamplingParams(temperature=0.0, logprobs=1))
>>> b = sequence.Sequence("b", [1, 2], sp.SamplingParams(temperature=0.0, logprobs=3))
>>> _ = engine.sample_tokens(torch.tensor([[3.0, 2.0, 1.0, 0.0]] * 2), [a, b], set())
>>> assert set(a.logprobs[0]) == {0} and set(b.logprobs[0]) == {0, 1, 2}, (a.logprobs, b.logprobs)
"""},
    {"task": 5, "file": "engine.py",
     "find": "ids = [tokens[row], *top[i][:seqs[row].params.logprobs]]",
     "replace": "ids = top[i][:seqs[row].params.logprobs]",
     "why": "the chosen token's logprob left out when it is not among the most likely ones",
     "check": """
>>> import torch; torch.set_num_threads(1); from lab02_vllm.solution import engine, sequence, sampling_params as sp
>>> s = sequence.Sequence("r", [1, 2], sp.SamplingParams(temperature=1.0, logprobs=1, allowed_token_ids=[2]))
>>> assert engine.sample_tokens(torch.tensor([[3.0, 2.0, 1.0, 0.0]]), [s], set(), torch.Generator().manual_seed(0)) == [2]
>>> assert set(s.logprobs[0]) == {2, 0}, s.logprobs
"""},
]
