"""Task 5: the engine: requests in, tokens out, one scheduled step at a time.

``LLMEngine`` ties the parts together. ``add_request`` turns a prompt into sequences queued in
the scheduler; each ``step()`` asks the scheduler for the step's tokens (decodes and prompt
chunks under one budget), runs the model once on them, samples one token for each sequence whose
tokens are now all computed, checks whether each is finished, and returns what changed. ``LLM`` is the
offline front door (``generate`` loops ``step()`` until every prompt is done), and
``AsyncLLMEngine`` drives the same engine from an asyncio loop for the HTTP server (part 2):
each request's outputs arrive through an async iterator as they are produced.

The public API (``LLM``, ``SamplingParams``, ``RequestOutput``, ``CompletionOutput``,
``LLMEngine.add_request / step / abort``, ``AsyncLLMEngine.generate / abort``) is shaped like
vLLM's, and the server, lab04 and lab05 code against it: keep it stable.

Readings: nano-vllm's ``engine/llm_engine.py``; vLLM's docs "Offline inference" and the
``LLMEngine`` / ``AsyncLLMEngine`` API pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.hardware import resolve_device, resolve_dtype
from shared.validation import check_at_least

from .block_manager import BlockManager
from .detokenizer import IncrementalDetokenizer
from .model_runner import ModelConfig, ModelRunner, kv_cache_num_blocks
from .sampling_params import SamplingParams
from .scheduler import Scheduler, SchedulerOutput
from .sequence import Sequence, SequenceStatus

#: The default pool when neither ``num_kv_blocks`` nor ``kv_cache_bytes`` is given holds
#: ``max_num_seqs`` sequences of ``max_model_len`` tokens, but at most this many blocks.
DEFAULT_MAX_KV_BLOCKS = 4096


# -------------------------------------------------------------------------------------------
# Outputs (given)


@dataclass
class CompletionOutput:
    """One completion of a request (vLLM's ``CompletionOutput``).

    Attributes:
        index: which of the request's ``n`` completions.
        text: the generated text so far (special tokens skipped; cut before a stop string).
        token_ids: the generated token ids so far (an eos or stop token id that ended it included).
        finish_reason: "stop" (eos, a stop token or a stop string), "length" (``max_tokens`` or
            the model's length), "abort", or None while it runs.
        stop_reason: the stop token id or stop string that ended it, else None.
        logprobs: when asked for, one ``{token_id: logprob}`` per generated token.
    """

    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    logprobs: list[dict[int, float]] | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestMetrics:
    """Times (``time.monotonic()`` seconds) and counts of one request."""

    arrival_time: float
    first_token_time: float | None
    finished_time: float | None
    num_prompt_tokens: int
    num_cached_tokens: int
    num_generation_tokens: int


@dataclass
class RequestOutput:
    """What a request has produced so far (vLLM's ``RequestOutput``)."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool
    metrics: RequestMetrics | None = None


@dataclass
class EngineStats:
    """Counters a ``/metrics`` endpoint reads (names after vLLM's Prometheus metrics)."""

    num_running: int
    num_waiting: int
    kv_cache_usage: float  # share of KV blocks in use, 0..1
    num_kv_blocks: int
    num_free_kv_blocks: int
    num_preemptions: int
    prompt_tokens: int  # prompt tokens of admitted sequences (re-admissions after preemption included)
    prefill_tokens_computed: int  # of those, tokens run through the model (prompt chunks, not decodes)
    prefill_tokens_saved: int  # prompt tokens found in the prefix cache instead
    prefix_cache_queries: int  # tokens looked up in the prefix cache
    prefix_cache_hits: int  # tokens found there
    generation_tokens: int
    num_steps: int
    num_requests_finished: int

    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.prefix_cache_hits / self.prefix_cache_queries if self.prefix_cache_queries else 0.0


@dataclass
class _Request:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    params: SamplingParams
    seqs: list[Sequence]
    finished_time: float | None = None


# -------------------------------------------------------------------------------------------
# Sampling (task 5)


def apply_logits_processors(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """Given: the requests' own changes to their rows before sampling, as vLLM's sampler applies
    them (``allowed_token_ids``: every other logit -inf; then ``logit_bias`` added).

    Returns:
        ``logits`` itself when no sequence asks for either (nothing copied), else a changed copy;
        ``logits`` is never modified (its raw rows are what logprobs report).
    """
    if not any(s.params.logit_bias or s.params.allowed_token_ids for s in seqs):
        return logits
    processed = logits.clone()
    for row, seq in zip(processed, seqs, strict=True):
        allowed, bias = seq.params.allowed_token_ids, seq.params.logit_bias
        if allowed:
            keep = torch.zeros_like(row, dtype=torch.bool)
            keep[allowed] = True
            row.masked_fill_(~keep, float("-inf"))
        if bias:
            ids = torch.tensor(list(bias), dtype=torch.long, device=row.device)
            row.index_add_(0, ids, torch.tensor(list(bias.values()), dtype=row.dtype, device=row.device))
    return processed


def sample_tokens(logits: torch.Tensor, seqs: list[Sequence], stop_ids: set[int],
                  default_generator: torch.Generator | None = None) -> list[int]:
    """Pick one token per sequence from its logits, each row with its own sampling settings, the
    whole batch at once (vLLM v1's ``Sampler``: per-row settings become tensors, no loop over rows).

    Sampling starts from ``processed`` (given, first line: the rows after the requests'
    ``allowed_token_ids`` and ``logit_bias``, see ``apply_logits_processors``; ``logits``
    itself when no request has them). Per row: while a sequence has fewer than ``min_tokens``
    outputs, its eos ids (``stop_ids``, even under ``ignore_eos``: vLLM bans its
    ``all_stop_token_ids``) and ``stop_token_ids`` cannot be picked (logit -inf). Greedy rows
    (``params.greedy``) take the argmax. Others divide by the temperature, keep the ``top_k``
    largest logits (when ``0 < top_k < vocab``; ties with the k-th are kept), keep the smallest
    set of most likely tokens whose probability reaches ``top_p``, and draw from the softmax of
    what is left: a sequence with its own ``generator`` (a seeded request) draws only from it,
    so that its tokens do not depend on the rest of the batch; the others from
    ``default_generator``. Any exact draw passes; the reference draws every row at once by
    inverse transform sampling (one uniform ``u`` per row; the token where the row's running sum
    of probabilities first exceeds ``u`` times its total), where vLLM's GPU sampler uses the
    exponential race (``argmax(probs / q)``, one Exponential(1) ``q`` per token). When
    ``params.logprobs`` is not None, append ``{token: logprob}`` for the chosen token and the
    ``logprobs`` most likely ones to ``seq.logprobs``, from the log-softmax of the raw ``logits``
    (vLLM's default ``logprobs_mode="raw_logprobs"``: the model's, before any processing).

    Args:
        logits: ``(num_seqs, vocab)`` float32, row ``i`` for ``seqs[i]``. Not modified.
        seqs: the step's sequences.
        stop_ids: the model's eos token ids.
        default_generator: the engine's generator, for requests without a seed.

    Returns:
        One token id per sequence.
    """
    processed = apply_logits_processors(logits, seqs)
    # BEGIN SOLUTION task 5: one token per row, drawn as vLLM's sampler would under that row's own settings, the batch at once, with its logprobs recorded when asked (README task 5; docs/02 on sampling; vLLM's SamplingParams docs).
    # HINT task 5 level 1: every row obeys its own SamplingParams, but the work is done on the whole
    #   (num_seqs, vocab) batch at once, as vLLM v1's sampler does: the settings become per-row tensors. What
    #   must hold: greedy rows give the argmax; sampled rows draw from the distribution the docstring's filters
    #   leave; a seeded request draws the same tokens whatever else is in the batch; min_tokens forbids
    #   stopping early; the reported logprobs describe the model (raw logits), not the filtered scores:
    #   sample from processed (the requests' logit_bias and allowed_token_ids already in), report from logits.
    #   Reading: README task 5, the docstring above, vLLM's SamplingParams documentation (top_k, top_p,
    #   min_tokens, logprobs), vLLM v1's sampler (v1/sample/sampler.py, ops/topk_topp_sampler.py), and
    #   Holtzman et al. 2019 for top-p.
    # HINT task 5 level 2: processed and logits must not be modified: work on a copy. Forbidding a token
    #   means its logit becomes -inf before any filter (one indexed assignment with row and column lists).
    #   Greedy rows divide by 1, not 0, and take the argmax anyway. top_k = 0 (or >= vocab) keeps
    #   everything, so treat it as vocab; one descending sort serves both filters: the k-th sorted value is
    #   each row's threshold, and top_p keeps the most likely tokens up to and including the one whose
    #   cumulative probability first reaches top_p (so the most likely always survives); scatter the sorted
    #   scores back. Draw: one uniform per row from the default generator, then each seeded row's again
    #   from its own generator; the token is where the row's cumulative probabilities pass it (a search in
    #   sorted values). logprobs = 0 still records the chosen token. An all-greedy batch with nothing to
    #   record is processed's argmax.
    # HINT task 5 level 3: scores: a copy of processed; -inf at the (row, id) pairs banned under min_tokens;
    #   greedy = argmax(scores); temperature (1 for greedy rows), top_k (vocab when off) and top_p as
    #   (num_seqs, 1) tensors; scores / temperature; sort descending; mask sorted values below the k-th;
    #   probs = softmax of that, drop where cumsum - probs >= top_p; scatter back along the sort's indices;
    #   probs = softmax, cdf = its cumsum; u = rand (default generator), seeded rows' u from their
    #   generators; drawn = searchsorted(cdf, u x total, right=True); greedy rows keep the argmax;
    #   logprobs: log_softmax of the rows that ask.
    if all(s.params.greedy and s.params.logprobs is None and s.num_output_tokens >= s.params.min_tokens
           for s in seqs):
        return processed.argmax(dim=-1).tolist()
    scores = processed.clone()
    banned = [(row, token) for row, seq in enumerate(seqs) if seq.num_output_tokens < seq.params.min_tokens
              for token in set(seq.params.stop_token_ids) | stop_ids]  # eos too under ignore_eos, as vLLM
    if banned:
        rows, tokens = zip(*banned, strict=True)
        scores[list(rows), list(tokens)] = float("-inf")
    chosen = scores.argmax(dim=-1)
    greedy = torch.tensor([s.params.greedy for s in seqs], device=scores.device)
    if not bool(greedy.all()):
        vocab = scores.shape[-1]

        def column(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=scores.dtype, device=scores.device)[:, None]

        scores /= column([1.0 if s.params.greedy else s.params.temperature for s in seqs])
        top_k = [s.params.top_k if 0 < s.params.top_k < vocab else vocab for s in seqs]
        # top_p = 1 keeps everything: the running sum's rounding must not drop a long tail's last tokens
        top_p = [s.params.top_p if s.params.top_p < 1.0 else float("inf") for s in seqs]
        if min(top_k) < vocab or min(top_p) < 1.0:
            sorted_scores, order = scores.sort(dim=-1, descending=True)
            kth = sorted_scores.gather(1, column(top_k).long() - 1)
            sorted_scores.masked_fill_(sorted_scores < kth, float("-inf"))
            probs = sorted_scores.softmax(dim=-1)
            sorted_scores.masked_fill_(probs.cumsum(dim=-1) - probs >= column(top_p), float("-inf"))
            scores = torch.empty_like(scores).scatter_(1, order, sorted_scores)
        # Inverse transform sampling: one uniform per row (vocab-many random numbers per row, as the
        # exponential race draws, cost ~20x more in PyTorch on a CPU: vLLM fuses them into a kernel)
        cdf = scores.softmax(dim=-1).cumsum(dim=-1)
        u = torch.rand(len(seqs), 1, generator=default_generator, device=scores.device)
        for row, seq in enumerate(seqs):
            if seq.generator is not None:
                u[row] = torch.rand(1, generator=seq.generator, device=scores.device)
        total = cdf[:, -1:]
        target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))  # below the total
        drawn = torch.searchsorted(cdf, target, right=True)[:, 0]  # the first token whose cdf passes it
        chosen = torch.where(greedy, chosen, drawn)
    tokens = chosen.tolist()
    asking = [row for row, seq in enumerate(seqs) if seq.params.logprobs is not None]
    if asking:
        logprobs = torch.log_softmax(logits[asking], dim=-1)
        most = max(seqs[row].params.logprobs for row in asking)
        top = torch.topk(logprobs, most).indices.tolist() if most else [[] for _ in asking]
        for i, row in enumerate(asking):
            ids = [tokens[row], *top[i][:seqs[row].params.logprobs]]
            seqs[row].logprobs.append({t: float(logprobs[i, t]) for t in ids})
    return tokens
    # END SOLUTION


# -------------------------------------------------------------------------------------------
# The engine


class LLMEngine:
    """A paged, continuously batched engine for one Llama-architecture model.

    Args:
        model: a Hugging Face model folder (config.json, safetensors, tokenizer).
        block_size: token slots per KV block.
        num_kv_blocks: blocks in the KV pool; or give ``kv_cache_bytes`` (task 7) instead; with
            neither, enough for ``max_num_seqs`` full-length sequences, at most
            ``DEFAULT_MAX_KV_BLOCKS``.
        kv_cache_bytes: the KV pool's budget in bytes (as vLLM's ``VLLM_CPU_KVCACHE_SPACE``).
        max_num_seqs: the most sequences running at once.
        max_num_batched_tokens: the most tokens one step computes, decodes and prompt chunks
            together (at least ``max_num_seqs``, as vLLM requires; with chunked prefill off, at least
            ``max_model_len``); default 2048 (``max(2048, max_model_len)`` with chunking off).
        long_prefill_token_threshold: when > 0, the most tokens one prompt computes in a step.
        enable_chunked_prefill: chunk prompts longer than the budget left (vLLM v1's default);
            False admits a prompt only whole.
        max_model_len: the longest sequence (prompt + output); default the model's
            ``max_position_embeddings``.
        enable_prefix_caching: reuse the KV blocks of prompt prefixes seen before (task 6).
        device: "auto", "cpu", "cuda", "cuda:1", "mps".
        dtype: "auto" (float32 on a CPU, bfloat16 on a GPU that has it), or a torch dtype name.
        seed: seed of the engine's generator, for requests without their own seed.
        load_format: "auto" (the folder's safetensors) or "dummy" (random weights, as vLLM's).
        tensor_parallel_size: run the model over this many worker processes (task 13's
            ``TensorParallelRunner``); the scheduler, the block manager and sampling stay here,
            once. Call ``shutdown()`` (or ``LLM.shutdown()``) to stop the workers.

    Raises:
        ValueError: naming the argument, before the model is loaded (or the folder, when it is not
            a Llama-architecture model).
    """

    def __init__(self, model: str | Path, *, block_size: int = 16, num_kv_blocks: int | None = None,
                 kv_cache_bytes: int | None = None, max_num_seqs: int = 256,
                 max_num_batched_tokens: int | None = None, max_model_len: int | None = None,
                 long_prefill_token_threshold: int = 0, enable_chunked_prefill: bool = True,
                 enable_prefix_caching: bool = False, device: str = "auto", dtype: str | torch.dtype = "auto",
                 seed: int = 0, load_format: str = "auto", tensor_parallel_size: int = 1) -> None:
        self.model_dir = Path(model)
        if not self.model_dir.is_dir():
            raise ValueError(f"model folder not found: {self.model_dir} (argument model)")
        self.config = ModelConfig.from_folder(self.model_dir, need_weights=load_format == "auto")
        check_at_least("block_size", block_size, 1)
        check_at_least("max_num_seqs", max_num_seqs, 1)
        if num_kv_blocks is not None and kv_cache_bytes is not None:
            raise ValueError("give num_kv_blocks or kv_cache_bytes, not both")
        if max_model_len is None:
            max_model_len = self.config.max_position_embeddings
        check_at_least("max_model_len", max_model_len, 1)
        if max_model_len > self.config.max_position_embeddings:
            raise ValueError(f"max_model_len must be at most the model's max_position_embeddings="
                             f"{self.config.max_position_embeddings}, got {max_model_len}")
        if max_num_batched_tokens is None:
            max_num_batched_tokens = 2048 if enable_chunked_prefill else max(2048, max_model_len)
        check_at_least("max_num_batched_tokens", max_num_batched_tokens, 1)
        # vLLM's SchedulerConfig checks, in its words: a longer prompt could never be scheduled whole
        if not enable_chunked_prefill and max_num_batched_tokens < max_model_len:
            raise ValueError(f"max_num_batched_tokens ({max_num_batched_tokens}) is smaller than max_model_len "
                             f"({max_model_len}). This effectively limits the maximum sequence length to "
                             "max_num_batched_tokens and makes vLLM reject longer sequences. Please increase "
                             "max_num_batched_tokens or decrease max_model_len.")
        if max_num_batched_tokens < max_num_seqs:  # every running sequence may need a token in one step
            raise ValueError(f"max_num_batched_tokens ({max_num_batched_tokens}) must be greater than or "
                             f"equal to max_num_seqs ({max_num_seqs}).")
        check_at_least("long_prefill_token_threshold", long_prefill_token_threshold, 0)
        check_at_least("tensor_parallel_size", tensor_parallel_size, 1)
        if tensor_parallel_size > 1:  # refused before the tokenizer and the weights load, as vLLM does
            from .parallel import check_tensor_parallel_size

            check_tensor_parallel_size(self.config, tensor_parallel_size)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        blocks_per_seq = -(-max_model_len // block_size)
        if kv_cache_bytes is not None:
            check_at_least("kv_cache_bytes", kv_cache_bytes, 1)
            num_kv_blocks = kv_cache_num_blocks(self.config, kv_cache_bytes, block_size, self.dtype)
            name = f"kv_cache_bytes={kv_cache_bytes} ({num_kv_blocks} blocks)"
        elif num_kv_blocks is None:
            num_kv_blocks = min(max_num_seqs * blocks_per_seq, max(DEFAULT_MAX_KV_BLOCKS, blocks_per_seq))
            name = f"num_kv_blocks={num_kv_blocks}"
        else:
            check_at_least("num_kv_blocks", num_kv_blocks, 1)
            name = f"num_kv_blocks={num_kv_blocks}"
        if num_kv_blocks < blocks_per_seq:
            raise ValueError(f"{name} is too small for even one sequence of max_model_len={max_model_len} "
                             f"tokens ({blocks_per_seq} blocks of {block_size}); give more, or a smaller "
                             "max_model_len")
        self.block_size, self.max_model_len = block_size, max_model_len
        self.tokenizer = load_tokenizer(self.model_dir)
        self.eos_token_ids = eos_token_ids(self.model_dir, self.tokenizer)
        if tensor_parallel_size > 1:  # task 13: N worker processes behind the model runner's interface
            from .parallel import TensorParallelRunner

            self.runner: ModelRunner = TensorParallelRunner(
                self.model_dir, block_size=block_size, num_kv_blocks=num_kv_blocks, device=self.device,
                dtype=self.dtype, load_format=load_format, tensor_parallel_size=tensor_parallel_size)
        else:
            self.runner = ModelRunner(self.model_dir, block_size=block_size, num_kv_blocks=num_kv_blocks,
                                      device=self.device, dtype=self.dtype, load_format=load_format)
        self.block_manager = BlockManager(num_kv_blocks, block_size, enable_prefix_caching=enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, max_num_seqs, max_num_batched_tokens,
                                   long_prefill_token_threshold, enable_chunked_prefill)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.requests: dict[str, _Request] = {}
        self.incremental_text = True  # detokenize every step (streaming); LLM.generate turns it off
        self.detokenize_outputs = True  # False in an engine core process: its client makes the text
        self._counters = dict.fromkeys(
            ("prompt_tokens", "prefill_tokens_computed", "prefill_tokens_saved", "prefix_cache_queries",
             "prefix_cache_hits", "generation_tokens", "num_steps", "num_requests_finished"), 0)

    # ---------------------------------------------------------------------------------------
    # Requests (given)

    def add_request(self, request_id: str, prompt: str | list[int], params: SamplingParams | None = None) -> None:
        """Queue a request: a prompt (text, or token ids) and its sampling settings.

        Raises:
            ValueError: a duplicate ``request_id``; a prompt of no token ids (``[]``; the text
                ``""`` still gets the tokenizer's bos, and is accepted, as vLLM's ``LLM`` accepts
                it); token ids outside the vocabulary; a prompt of ``max_model_len`` tokens or
                more (argument ``prompt``); ``params`` that name ids outside the vocabulary or ask
                for more logprobs than it holds (``SamplingParams.check_vocabulary``), or whose
                ``allowed_token_ids`` are all stop or eos ids under ``min_tokens`` (nothing could be
                sampled).
        """
        params = params or SamplingParams()
        if not isinstance(params, SamplingParams):
            raise ValueError(f"params must be a SamplingParams, got {type(params).__name__}")
        if request_id in self.requests:
            raise ValueError(f"request_id {request_id!r} is already running")
        if isinstance(prompt, str):
            text: str | None = prompt
            token_ids = self.tokenizer(prompt).input_ids
        else:
            text, token_ids = None, list(prompt)
            bad = [t for t in token_ids if not isinstance(t, int) or not 0 <= t < self.config.vocab_size]
            if bad:
                raise ValueError(f"prompt holds token ids outside [0, {self.config.vocab_size}): {bad[:5]}")
        if not token_ids:
            raise ValueError("prompt must not be empty")
        params.check_vocabulary(self.config.vocab_size)
        params.check_sampleable(self.eos_token_ids)
        if len(token_ids) >= self.max_model_len:
            raise ValueError(f"prompt is {len(token_ids)} tokens long: it must be shorter than "
                             f"max_model_len={self.max_model_len}")
        seqs = []
        for index in range(params.n):
            seq = Sequence(request_id, token_ids, params, index=index)
            if params.seed is not None:
                seq.generator = torch.Generator(device=self.device).manual_seed(params.seed + index)
            seqs.append(seq)
        self.requests[request_id] = _Request(request_id, text, list(token_ids), params, seqs)
        for seq in seqs:
            self.scheduler.add(seq)

    def abort(self, request_id: str) -> RequestOutput | None:
        """Stop a request now and free its blocks at once.

        Returns:
            Its final output (finish reason "abort"), or None for an unknown or finished request.
        """
        request = self.requests.pop(request_id, None)
        if request is None:
            return None
        self.scheduler.abort(request_id)
        request.finished_time = time.monotonic()
        return self._output(request)

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    def shutdown(self) -> None:
        """Stop the runner's worker processes, if it has any (``tensor_parallel_size`` > 1)."""
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()

    def get_num_unfinished_requests(self) -> int:
        return len(self.requests)

    # ---------------------------------------------------------------------------------------
    # One step (task 5)

    def step(self) -> list[RequestOutput]:
        """Run one scheduled step.

        Schedule (a ``SchedulerOutput``); copy any copy-on-write blocks; record the step
        (``self._record_step``, given); run the model on the batch (``runner.run(seqs,
        num_new_tokens)``: logits only for the sequences whose chunk reaches their last token);
        advance every scheduled sequence's ``num_computed_tokens`` by its tokens; sample a token
        for each sequence that now has all its tokens computed (``sample_tokens`` with
        ``self.eos_token_ids`` and ``self.generator``): append it, set ``first_token_time`` on the
        first one, and finish it through the scheduler when ``self._check_stop(seq)`` says so. A
        sequence in the middle of its prompt gets no token this step.

        Returns:
            One ``RequestOutput`` (built by ``self._output``) for each request that got a token in
            this step, in the order of the step's sequences; finished requests are then forgotten.
            An empty list (and nothing recorded) when the scheduler has nothing to run; an empty
            list too when the step only computed prompt chunks.
        """
        # BEGIN SOLUTION task 5: one engine iteration: the scheduler's tokens run once, the sequences that completed their tokens get one more, and the requests it touched report back (README task 5; vLLM v1's EngineCore.step).
        # HINT task 5 level 1: the engine only orchestrates: the scheduler decides who computes how many
        #   tokens (task 4), the runner computes logits for those that sample (task 3), sample_tokens picks the
        #   tokens. After a step every scheduled sequence has num_computed_tokens advanced by its tokens; those
        #   that reached their end got a new token, and the stop rules of _check_stop have been applied to them;
        #   a request whose sequences are all finished is reported finished once and then forgotten.
        #   Reading: README task 5, the docstring above, and vLLM's LLMEngine.step.
        # HINT task 5 level 2: a step with nothing scheduled returns an empty list. Copy-on-write copies the
        #   scheduler asks for must reach the runner before the model runs. The runner returns one logits row per
        #   sampling sequence, in the batch's order: a sequence samples when its computed tokens reach len(seq).
        #   first_token_time is set only on a sequence's first token. A request with several sequences (n > 1)
        #   gives one output per step, not one per sequence, in the order its first sequence appeared.
        # HINT task 5 level 3: out = schedule(); return [] if no seqs; copy blocks; record the step; logits =
        #   run(out.seqs, out.num_new_tokens); for each (seq, n): computed += n, collect it when computed ==
        #   len; tokens = sample_tokens over the collected; for each (seq, token): append, stamp the first token
        #   time, finish through the scheduler when _check_stop gives a reason; collect the requests touched; for
        #   each: when all its seqs are finished, stamp, count and forget it; output it.
        out = self.scheduler.schedule()
        if not out.seqs:
            return []
        if out.copies:
            self.runner.copy_blocks(out.copies)
        self._record_step(out)
        logits = self.runner.run(out.seqs, out.num_new_tokens)
        sampled = []
        for seq, num_new in zip(out.seqs, out.num_new_tokens, strict=True):
            seq.num_computed_tokens += num_new
            if seq.num_computed_tokens == len(seq):
                sampled.append(seq)
        tokens = sample_tokens(logits, sampled, self.eos_token_ids, self.generator) if sampled else []
        now = time.monotonic()
        touched: dict[str, _Request] = {}
        for seq, token in zip(sampled, tokens, strict=True):
            seq.append_token(token)
            if seq.first_token_time is None:
                seq.first_token_time = now
            reason = self._check_stop(seq)
            if reason is not None:
                self.scheduler.finish(seq, reason)
            touched[seq.request_id] = self.requests[seq.request_id]
        outputs = []
        for request in touched.values():
            if all(s.is_finished for s in request.seqs):
                request.finished_time = now
                del self.requests[request.request_id]
                self._counters["num_requests_finished"] += 1
            outputs.append(self._output(request))
        return outputs
        # END SOLUTION

    def _check_stop(self, seq: Sequence) -> str | None:
        """Whether ``seq`` is done after its newest token, and why.

        From ``min_tokens`` outputs on, in this order (as vLLM 0.32's ``check_stop``), unless
        ``ignore_eos``: the tokenizer's eos id (``self.tokenizer.eos_token_id``, vLLM's
        ``eos_token_id``) -> "stop" with ``stop_reason`` None, even when it is also listed in
        ``stop_token_ids``; then a ``stop_token_ids`` token -> "stop" (``stop_reason`` = the id, also
        for the tokenizer's eos id under ``ignore_eos``); then the model's other eos ids
        (``self.eos_token_ids``, from its generation config), unless ``ignore_eos`` -> "stop" with
        ``stop_reason`` the id (vLLM moves them into ``stop_token_ids``). Past
        ``min_tokens`` outputs (vLLM searches only the text after the first ``min_tokens`` tokens):
        a stop string in the text added since the previous step (it may straddle the old end) ->
        "stop" (text cut before it, ``stop_reason`` = the string). Then, at any length,
        ``max_tokens`` outputs or ``max_model_len`` tokens -> "length"; else None. Keep
        ``seq.text`` up to date (``self._detokenize``) when ``self.incremental_text`` is on or the
        request has stop strings.
        """
        # BEGIN SOLUTION task 5: decide whether a sequence stops after its newest token and why, with vLLM's precedence of reasons (README task 5; vLLM's SamplingParams docs on stop, stop_token_ids, ignore_eos, min_tokens).
        # HINT task 5 level 1: a sequence stops for the first reason that applies, in the docstring's order,
        #   and its finish_reason ("stop" or "length") and stop_reason are what an OpenAI client reads back. A
        #   stop string never appears in the returned text. Reading: README task 5 and vLLM's SamplingParams
        #   documentation for stop, stop_token_ids, ignore_eos, min_tokens and include_stop_str_in_output.
        # HINT task 5 level 2: below min_tokens only the length limits can stop a sequence, and a stop string
        #   counts only once a token past the first min_tokens has come. A stop string may
        #   begin in text produced by an earlier step and end in this one: search from a little before the old
        #   end of the text, not only the new part. Decode the text only when it is needed (stop strings, or
        #   incremental_text on). max_tokens counts outputs; max_model_len counts prompt + outputs.
        # HINT task 5 level 3: remember the old text length; detokenize when needed; from min_tokens on:
        #   the tokenizer's eos unless ignore_eos -> "stop" (no stop_reason); a stop_token_ids hit ->
        #   stop_reason the id, "stop"; another eos id unless ignore_eos -> the same; past
        #   min_tokens, each stop string found from old length minus its length + 1 -> cut the text there,
        #   stop_reason the string, "stop"; then "length" at either limit; else None.
        params, token = seq.params, seq.last_token_id
        old_length = len(seq.text)
        if params.stop_strings or self.incremental_text:
            self._detokenize(seq)
        eos = None if params.ignore_eos else self.tokenizer.eos_token_id  # vLLM's eos_token_id
        if seq.num_output_tokens >= params.min_tokens and token == eos:
            return "stop"  # vLLM checks it before stop_token_ids: stop_reason None even when listed there
        if seq.num_output_tokens >= params.min_tokens:
            if token in params.stop_token_ids:
                seq.stop_reason = token
                return "stop"
            if not params.ignore_eos and token in self.eos_token_ids:
                seq.stop_reason = token  # vLLM adds the other eos ids to stop_token_ids
                return "stop"
        if seq.num_output_tokens > params.min_tokens:  # vLLM: only text after the first min_tokens tokens
            for stop in params.stop_strings:
                at = seq.text.find(stop, max(0, old_length - len(stop) + 1))
                if at >= 0:
                    seq.text, seq.stop_reason = seq.text[:at], stop
                    return "stop"
        if seq.num_output_tokens >= params.max_tokens or len(seq) >= self.max_model_len:
            return "length"
        return None
        # END SOLUTION

    # ---------------------------------------------------------------------------------------
    # Bookkeeping (given)

    def _detokenize(self, seq: Sequence) -> None:
        """Append to ``seq.text`` the text of its tokens not yet decoded (incrementally, as vLLM:
        see detokenizer.py; a character whose bytes are not all there yet waits)."""
        if seq.detokenizer is None:
            seq.detokenizer = IncrementalDetokenizer.after_prompt(self.tokenizer, seq.num_prompt_tokens)
        seq.text += seq.detokenizer.decode_new(seq.token_ids)

    def _record_step(self, out: SchedulerOutput) -> None:
        """Count a step before it runs: an admitted sequence's tokens (prompt, or all so far after a
        preemption) are prefill tokens, computed chunk by chunk or found in the prefix cache;
        every token computed at or past that length is a decode (given)."""
        c = self._counters
        c["num_steps"] += 1
        for seq in out.new_seqs:
            seq.num_prefill_tokens = len(seq)
            c["prompt_tokens"] += len(seq)
            c["prefill_tokens_saved"] += seq.num_computed_tokens
            if self.block_manager.prefix_cache is not None:
                c["prefix_cache_queries"] += len(seq)
                c["prefix_cache_hits"] += seq.num_computed_tokens
        for seq, num_new in zip(out.seqs, out.num_new_tokens, strict=True):
            prefill = max(0, min(seq.num_computed_tokens + num_new, seq.num_prefill_tokens) - seq.num_computed_tokens)
            c["prefill_tokens_computed"] += prefill
            if seq.num_computed_tokens + num_new == len(seq):
                c["generation_tokens"] += 1

    def _output(self, request: _Request) -> RequestOutput:
        completions = []
        for seq in request.seqs:
            if self.detokenize_outputs and seq.is_finished and not isinstance(seq.stop_reason, str):
                self._detokenize(seq)
            completions.append(CompletionOutput(
                index=seq.index, text=seq.text, token_ids=seq.output_token_ids,
                finish_reason=seq.finish_reason if seq.is_finished else None, stop_reason=seq.stop_reason,
                logprobs=list(seq.logprobs) if request.params.logprobs is not None else None))
        first = [s.first_token_time for s in request.seqs if s.first_token_time is not None]
        metrics = RequestMetrics(
            arrival_time=min(s.arrival_time for s in request.seqs), first_token_time=min(first) if first else None,
            finished_time=request.finished_time, num_prompt_tokens=len(request.prompt_token_ids),
            num_cached_tokens=max(s.num_cached_tokens for s in request.seqs),
            num_generation_tokens=sum(s.num_output_tokens for s in request.seqs))
        return RequestOutput(request.request_id, request.prompt, list(request.prompt_token_ids), completions,
                             finished=all(s.is_finished for s in request.seqs), metrics=metrics)

    @property
    def num_running(self) -> int:
        return len(self.scheduler.running)

    @property
    def num_waiting(self) -> int:
        return len(self.scheduler.waiting)

    @property
    def kv_cache_usage(self) -> float:
        return self.block_manager.usage

    @property
    def stats(self) -> EngineStats:
        """A snapshot of the engine's counters."""
        return EngineStats(
            num_running=self.num_running, num_waiting=self.num_waiting, kv_cache_usage=self.kv_cache_usage,
            num_kv_blocks=self.block_manager.num_blocks, num_free_kv_blocks=self.block_manager.num_free_blocks,
            num_preemptions=self.scheduler.num_preemptions, **self._counters)


# -------------------------------------------------------------------------------------------
# Offline front door


class LLM:
    """vLLM's offline ``LLM``: load a model once, then ``generate`` for many prompts at once.

    Takes the same arguments as ``LLMEngine``; ``llm.engine`` is the engine, ``llm.tokenizer``
    its tokenizer.
    """

    def __init__(self, model: str | Path, **engine_args: Any) -> None:
        self.engine = LLMEngine(model, **engine_args)
        self.tokenizer = self.engine.tokenizer
        self._ids = itertools.count()

    def shutdown(self) -> None:
        """Stop the engine's worker processes (tensor parallelism); the ``LLM`` is unusable after."""
        self.engine.shutdown()

    def get_default_sampling_params(self) -> SamplingParams:
        """What ``generate`` uses when given no settings, as vLLM's ``LLM``: ``SamplingParams``
        with the model's generation-config defaults (:func:`generation_defaults`) over its own."""
        return SamplingParams(**generation_defaults(self.engine.model_dir))

    def generate(self, prompts: str | list[str] | list[list[int]],
                 sampling_params: SamplingParams | list[SamplingParams] | None = None) -> list[RequestOutput]:
        """Generate completions for every prompt, batched by the engine.

        Args:
            prompts: one prompt, a list of prompts, or a list of token-id lists.
            sampling_params: one setting for all prompts, one per prompt, or None
                (``self.get_default_sampling_params()``: the model's generation-config defaults).

        Returns:
            One finished ``RequestOutput`` per prompt, in the prompts' order.

        Raises:
            ValueError: an empty prompt list, or a list of settings of another length
                (argument ``sampling_params``); bad prompts as ``add_request``. Nothing is queued
                when any prompt is bad.
        """
        # BEGIN SOLUTION task 5: vLLM's offline LLM.generate: every prompt queued or none, the engine stepped to completion, the finished outputs returned in the prompts' order (README task 5; vLLM's LLM.generate docs).
        # HINT task 5 level 1: the batch is all-or-nothing: a bad prompt or setting raises before anything
        #   runs and leaves no request behind in the engine. The outputs come back in the order of the prompts,
        #   not the order they finished. Reading: README task 5, the docstring above, and vLLM's LLM.generate.
        # HINT task 5 level 2: accepted shapes: one string, one list of token ids, a list of either. One
        #   SamplingParams (or None for the model's defaults) applies to all; a list must have one per prompt. Validation
        #   happens in add_request, so a failure part-way must undo the requests already added (abort). Text is
        #   built once at the end here, so incremental detokenization can be off during the loop (restore it).
        # HINT task 5 level 3: wrap a single prompt in a list; refuse an empty list; expand the settings or
        #   check their count; add each request with a fresh id, aborting the added ones on ValueError and
        #   re-raising; step until every id has a finished output, keeping outputs with finished set; return
        #   them by id in prompt order.
        if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):
            prompts = [prompts]  # type: ignore[list-item]
        if not prompts:
            raise ValueError("prompts must not be empty")
        if sampling_params is None or isinstance(sampling_params, SamplingParams):
            params_list = [sampling_params or self.get_default_sampling_params()] * len(prompts)
        else:
            params_list = list(sampling_params)
            if len(params_list) != len(prompts):
                raise ValueError(f"sampling_params must be one SamplingParams or one per prompt "
                                 f"({len(prompts)}), got {len(params_list)}")
        ids = [f"gen-{next(self._ids)}" for _ in prompts]
        added: list[str] = []
        try:
            for request_id, prompt, params in zip(ids, prompts, params_list, strict=True):
                self.engine.add_request(request_id, prompt, params)
                added.append(request_id)
        except ValueError:
            for request_id in added:
                self.engine.abort(request_id)
            raise
        finished: dict[str, RequestOutput] = {}
        previous, self.engine.incremental_text = self.engine.incremental_text, False
        try:
            while len(finished) < len(ids):
                for output in self.engine.step():
                    if output.finished:
                        finished[output.request_id] = output
        finally:
            self.engine.incremental_text = previous
        return [finished[request_id] for request_id in ids]
        # END SOLUTION


# -------------------------------------------------------------------------------------------
# Async front door, for the server (given)


def _unfinished(request: _Request) -> list[Sequence]:
    return [seq for seq in request.seqs if not seq.is_finished]


@dataclass
class _SeqState:
    """What one step may change in a sequence, as it was before the step."""

    status: SequenceStatus
    num_tokens: int
    num_logprobs: int
    text: str
    detokenizer: IncrementalDetokenizer | None
    finish_reason: str | None
    stop_reason: int | str | None
    first_token_time: float | None
    generator_state: torch.Tensor | None


@dataclass
class _StepSnapshot:
    """The engine's unfinished requests before a step, so that a step that raised can be undone."""

    requests: dict[str, _Request]
    seqs: dict[Sequence, _SeqState]
    counters: dict[str, int]
    num_preemptions: int
    generator_state: torch.Tensor
    running: list[Sequence]  # the scheduler's running queue (any of them may be in the step)

    @classmethod
    def take(cls, engine: LLMEngine) -> _StepSnapshot:
        seqs = {seq: _SeqState(seq.status, len(seq.token_ids), len(seq.logprobs), seq.text,
                               copy.copy(seq.detokenizer), seq.finish_reason,
                               seq.stop_reason, seq.first_token_time,
                               None if seq.generator is None else seq.generator.get_state())
                for request in engine.requests.values() for seq in request.seqs}
        return cls(dict(engine.requests), seqs, dict(engine._counters), engine.scheduler.num_preemptions,
                   engine.generator.get_state(), list(engine.scheduler.running))

    def undo(self, engine: LLMEngine) -> list[str]:
        """Put every sequence the failed step touched back as it was before it, without KV blocks
        (waiting to be recomputed, as after a preemption), and out of the scheduler's queues.

        Returns:
            The ids of the step's requests, in their order: every sequence in the running queue
            before it (a step may compute any of them), and any it admitted, preempted or finished.
        """
        running = set(self.running)
        touched = [seq for seq, before in self.seqs.items() if seq in running or seq.status is not before.status]
        scheduler = engine.scheduler
        batch: list[str] = []
        for seq in touched:
            before = self.seqs[seq]
            engine.block_manager.free(seq)
            for queue in (scheduler.running, scheduler.waiting):
                if seq in queue:
                    queue.remove(seq)
            del seq.token_ids[before.num_tokens:]
            del seq.logprobs[before.num_logprobs:]
            seq.text, seq.finish_reason, seq.stop_reason = before.text, before.finish_reason, before.stop_reason
            seq.detokenizer = before.detokenizer
            seq.first_token_time, seq.num_computed_tokens = before.first_token_time, 0
            seq.status = SequenceStatus.WAITING
            if seq.generator is not None and before.generator_state is not None:
                seq.generator.set_state(before.generator_state)
            if seq.request_id not in batch:
                batch.append(seq.request_id)
        for request_id in batch:  # a request the step finished is not finished any more
            engine.requests[request_id] = self.requests[request_id]
            for seq in self.requests[request_id].seqs:  # its other sequences leave the queues too
                if seq not in touched and not seq.is_finished:
                    for queue in (scheduler.running, scheduler.waiting):
                        if seq in queue:
                            engine.block_manager.free(seq)
                            queue.remove(seq)
                            seq.status = SequenceStatus.WAITING
        engine._counters.clear()
        engine._counters.update(self.counters)
        scheduler.num_preemptions = self.num_preemptions
        engine.generator.set_state(self.generator_state)
        return batch



class AsyncLLMEngine:
    """Drives an ``LLMEngine`` from an asyncio loop: one background task steps the engine (in a
    worker thread, so the loop stays responsive) while any number of requests stream.

    Use ``AsyncLLMEngine(model, **engine_args)`` or ``AsyncLLMEngine.from_engine(engine)``; then
    ``async for out in engine.generate(prompt, params, request_id): ...``. The engine itself is
    only touched between steps, by the background task.

    With ``engine_core_process=True`` (what ``course serve`` runs) the engine and this loop run in
    an engine core process of their own (``core.py``, as vLLM v1 runs them); this object is then
    its client: ``self.engine`` is None, ``self.core`` the client, and the text is made here.
    ``shutdown()`` (or the server's exit) stops the process.
    """

    def __init__(self, model: str | Path | None = None, *, engine: LLMEngine | None = None,
                 engine_core_process: bool = False, **engine_args: Any) -> None:
        self.core: Any = None
        if engine_core_process:
            if engine is not None or model is None:
                raise ValueError("engine_core_process=True needs a model folder (argument model), not an engine")
            from .core import EngineCoreClient

            # The engine's own checks (arguments, the folder) run first, in the core, as in-process.
            self.core = EngineCoreClient(model, engine_args, __package__ or "lab02_vllm.solution")
            self.tokenizer = self.core.tokenizer = load_tokenizer(Path(model))
            self.engine: LLMEngine = None  # type: ignore[assignment]  # it lives in the core process
            self.model_dir = Path(model)
            self.max_model_len, self.vocab_size = self.core.max_model_len, self.core.vocab_size
            self.eos_token_ids = eos_token_ids(self.model_dir, self.tokenizer)  # the core's, read here too
            return
        if engine is None:
            if model is None:
                raise ValueError("AsyncLLMEngine needs a model folder (argument model) or an engine")
            engine = LLMEngine(model, **engine_args)
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.model_dir, self.max_model_len = engine.model_dir, engine.max_model_len
        self.vocab_size = engine.config.vocab_size
        self.eos_token_ids: set[int] = engine.eos_token_ids
        self._queues: dict[str, asyncio.Queue[RequestOutput | BaseException]] = {}
        self._pending_adds: list[tuple[str, str | list[int], SamplingParams]] = []
        self._pending_aborts: list[str] = []
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        # Fault isolation: requests set aside after a failed step, and the one now on trial.
        self._suspects: list[str] = []
        self._trial: str | None = None

    @classmethod
    def from_engine(cls, engine: LLMEngine) -> AsyncLLMEngine:
        return cls(engine=engine)

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._wake = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def generate(self, prompt: str | list[int], params: SamplingParams | None,
                       request_id: str) -> AsyncIterator[RequestOutput]:
        """Stream a request's outputs as they are produced (each holds the text so far).

        Bad input (a duplicate id, a bad prompt) raises ``ValueError`` at the first iteration.
        Leaving the loop early (a client that disconnects) aborts the request.
        """
        params = params or SamplingParams()
        if self.core is not None:  # the engine core process does the work
            async for output in self.core.generate(prompt, params, request_id):
                yield output
            return
        if request_id in self._queues:
            raise ValueError(f"request_id {request_id!r} is already running")
        queue: asyncio.Queue[RequestOutput | BaseException] = asyncio.Queue()
        self._queues[request_id] = queue
        self._pending_adds.append((request_id, prompt, params))
        self._ensure_loop()
        assert self._wake is not None
        self._wake.set()
        finished = False
        try:
            while not finished:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
        finally:
            self._queues.pop(request_id, None)
            if not finished:
                self.abort(request_id)

    def abort(self, request_id: str) -> None:
        """Abort a request at the next step boundary (its stream ends with finish reason "abort")."""
        if self.core is not None:
            self.core.abort(request_id)
            return
        self._pending_aborts.append(request_id)
        if self._wake is not None:
            self._wake.set()

    @property
    def stats(self) -> EngineStats:
        return self.core.stats if self.core is not None else self.engine.stats

    @property
    def dead_error(self) -> Exception | None:
        """Why this engine cannot serve any more (its core process died), or None."""
        return self.core.dead_error if self.core is not None else None

    def _publish(self) -> None:
        """Called between steps, where the engine is consistent: the engine core process sends
        its outputs and counters here (``core.EngineCore``); nothing to do in-process."""

    #: Step in a worker thread, so that this process's event loop (the HTTP server's) keeps
    #: serving during a step; the engine core process, whose loop serves nobody, steps inline.
    step_in_thread = True

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self.step_in_thread:
                await asyncio.sleep(0)  # let the messages that arrived during the step in
            adds, self._pending_adds = self._pending_adds, []
            for request_id, prompt, params in adds:
                try:
                    self.engine.add_request(request_id, prompt, params)
                except Exception as error:  # a bad prompt fails its own stream, never the loop
                    if request_id in self._queues:
                        self._queues[request_id].put_nowait(error)
            aborts, self._pending_aborts = self._pending_aborts, []
            for request_id in aborts:
                output = self.engine.abort(request_id)
                if output is not None and request_id in self._queues:
                    self._queues[request_id].put_nowait(output)
            if not self.engine.has_unfinished_requests():
                self._suspects, self._trial = [], None
                self._wake.clear()
                if not self._pending_adds and not self._pending_aborts:
                    self._publish()
                    await self._wake.wait()
                continue
            held_waiting, held_running = self._start_trial()
            snapshot = _StepSnapshot.take(self.engine)
            self._publish()
            try:
                outputs = await asyncio.to_thread(self.engine.step) if self.step_in_thread else self.engine.step()
            except Exception as error:
                self._after_failed_step(error, snapshot)
                outputs = []
            finally:
                self.engine.scheduler.waiting.extend(held_waiting)
                self.engine.scheduler.running.extendleft(reversed(held_running))
            if self._trial is not None and self.engine._counters["num_steps"] == snapshot.counters["num_steps"]:
                self._trial = None  # nothing could run alone (the held ones fill the pool): no trial then
            for output in outputs:
                if output.request_id == self._trial:
                    self._trial = None  # it got a token: it was not what failed
                queue = self._queues.get(output.request_id)
                if queue is not None:
                    queue.put_nowait(output)
            if self._trial is not None and self._trial not in self.engine.requests:
                self._trial = None

    # ---------------------------------------------------------------------------------------
    # Fault isolation (given): one request whose step raises fails alone

    def _start_trial(self) -> tuple[list[Sequence], list[Sequence]]:
        """Put the next suspect (a request of a failed step) back in the queue, *alone* in its
        steps until it has its first token (its prompt may take several chunks): the other
        waiting sequences and the running ones are held aside for those steps and returned (the
        caller puts the waiting ones back behind it and the running ones before it, with their
        blocks), so that a failure now can only be this request's."""
        if self._trial is None:
            while self._suspects and self._trial is None:
                request_id = self._suspects.pop(0)
                request = self.engine.requests.get(request_id)
                if request is not None:  # not aborted meanwhile
                    self._trial = request_id
                    self.engine.scheduler.waiting.extendleft(reversed(_unfinished(request)))
        if self._trial is None:
            return [], []
        scheduler = self.engine.scheduler
        held_waiting = [s for s in scheduler.waiting if s.request_id != self._trial]
        held_running = [s for s in scheduler.running if s.request_id != self._trial]
        for seq in held_waiting:
            scheduler.waiting.remove(seq)
        for seq in held_running:
            scheduler.running.remove(seq)
        return held_waiting, held_running

    def _after_failed_step(self, error: Exception, snapshot: _StepSnapshot) -> None:
        """A step raised. Undo it (every sequence of the step back to where it was, its blocks
        freed, to be recomputed), then: if the request on trial was in it, that request is the
        cause and fails alone with ``error``; otherwise every request of the step becomes a
        suspect, to be tried again one by one. A step that cannot be undone, or a
        ``NotImplementedError`` (an unwritten task, not a bad request), fails every request."""
        if isinstance(error, NotImplementedError):
            self._fail_all(error)
            return
        try:
            batch = snapshot.undo(self.engine)
        except Exception:  # the engine's state is beyond repair: fail everyone, keep serving
            self._fail_all(error)
            return
        if self._trial is not None and self._trial in batch:
            culprit, self._trial = self._trial, None
            self._fail(culprit, error)
            batch.remove(culprit)
            for request_id in reversed(batch):  # innocent: back at the front, in their order
                self.engine.scheduler.waiting.extendleft(reversed(_unfinished(self.engine.requests[request_id])))
        else:
            self._suspects.extend(batch)

    def _fail(self, request_id: str, error: BaseException) -> None:
        """End one request with ``error`` (its stream raises it); its sequences are out of the queues."""
        request = self.engine.requests.pop(request_id, None)
        if request is not None:
            for seq in request.seqs:
                seq.status, seq.finish_reason = SequenceStatus.FINISHED, "abort"
        if request_id in self._queues:
            self._queues[request_id].put_nowait(error)

    def _fail_all(self, error: BaseException) -> None:
        for request_id in list(self.engine.requests):
            with contextlib.suppress(Exception):
                self.engine.abort(request_id)
            self._fail(request_id, error)
        self._suspects, self._trial = [], None
        for queue in list(self._queues.values()):
            queue.put_nowait(error)

    async def shutdown(self) -> None:
        """Stop the background task (pending streams are aborted), or the engine core process."""
        if self.core is not None:
            await asyncio.to_thread(self.core.close)
            return
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None


# -------------------------------------------------------------------------------------------
# Tokenizer and eos ids (given)


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except Exception as error:
        raise ValueError(f"model folder {model_dir}: could not load its tokenizer ({error})") from error


def generation_defaults(model_dir: Path) -> dict[str, Any]:
    """The request defaults vLLM 0.32 takes from a model's ``generation_config.json`` (its
    ``--generation-config auto``, and its offline ``LLM.get_default_sampling_params``):
    ``temperature``, ``top_p``, ``top_k``, and ``max_new_tokens`` as ``max_tokens``, where the file
    sets them; a request's own value always wins."""
    import json

    path = model_dir / "generation_config.json"
    try:
        config = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        config = {}
    names = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "max_new_tokens": "max_tokens"}
    return {ours: config[theirs] for theirs, ours in names.items() if config.get(theirs) is not None}


def eos_token_ids(model_dir: Path, tokenizer: Any) -> set[int]:
    """The model's eos ids: the generation config's (an int or a list) and the tokenizer's."""
    import json

    ids: set[int] = set()
    path = model_dir / "generation_config.json"
    if path.is_file():
        value = json.loads(path.read_text()).get("eos_token_id")
        ids |= set(value) if isinstance(value, list) else ({value} if value is not None else set())
    if not ids and tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
