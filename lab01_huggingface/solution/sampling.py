"""Task 4: sampling: temperature, top-k, top-p, min-p and repetition penalty.

Each function takes a ``(batch, vocab)`` tensor of logits and returns a new one (never changing
its input); a filtered-out token gets ``-inf``, so softmax gives it probability 0. These are the
knobs every serving API exposes (vLLM's ``SamplingParams``, OpenAI's ``temperature`` / ``top_p``),
and transformers implements each as a logits processor: the tests compare yours with them.

Readings: transformers' ``generation/logits_process.py`` (``TemperatureLogitsWarper``,
``TopKLogitsWarper``, ``TopPLogitsWarper``, ``MinPLogitsWarper``,
``RepetitionPenaltyLogitsProcessor``); Holtzman et al. 2019, "The Curious Case of Neural Text
Degeneration" (top-p); Nguyen et al. 2024, "Min-p sampling".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from shared.validation import check_at_least, check_in_range

from .generation import TokenPicker, decode

NEG_INF = float("-inf")


@dataclass
class SamplingParams:
    """Sampling settings; the defaults sample from the model's plain distribution."""

    temperature: float = 1.0  # 0 means greedy
    top_k: int | None = None  # None: no top-k
    top_p: float = 1.0  # 1.0: no top-p
    min_p: float = 0.0  # 0.0: no min-p
    repetition_penalty: float = 1.0  # 1.0: none


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide ``(batch, vocab)`` logits by ``temperature`` (> 0): below 1 sharpens, above 1 flattens.

    Raises:
        ValueError: ``temperature`` <= 0 (0 means greedy: take the argmax instead of sampling).
    """
    # BEGIN SOLUTION task 4: logits scaled by the temperature, a temperature of 0 or below refused (README task 4; transformers' TemperatureLogitsWarper).
    # HINT task 4 level 1: every filter takes (batch, vocab) logits and returns a new tensor, the input
    #   untouched, with removed tokens at -inf; each must equal the matching transformers processor. Reading:
    #   README task 4, transformers' generation/logits_process.py (read what each warper keeps, not how it is
    #   written), Holtzman et al. 2019 for top-p and the min-p paper. Check every argument with
    #   shared.validation so the error names it.
    # HINT task 4 level 2: 0 means greedy and is handled by the caller, so here it is an
    #   error; any positive value is allowed.
    check_in_range("temperature", temperature, 0.0, float("inf"), low_inclusive=False)
    return logits / temperature
    # END SOLUTION


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits in each row of ``(batch, vocab)`` logits; set the rest to -inf.

    A logit equal to the k-th largest is kept too (as transformers does). ``k`` larger than the
    vocabulary keeps everything.

    Raises:
        ValueError: ``k`` < 1.
    """
    # BEGIN SOLUTION task 4: each row's k largest logits kept, ties with the k-th included, the rest at -inf (README task 4; the docstring).
    # HINT task 4 level 2: keeping ties with the k-th largest means comparing with its value, not
    #   keeping k indices. k above the vocabulary size keeps everything (torch refuses a k larger than the
    #   axis).
    # HINT task 4 level 3: clamp k to the vocabulary; the k-th largest value of each row, kept as
    #   (batch, 1); every logit strictly below it becomes -inf (masked_fill returns a new tensor).
    check_at_least("top_k", k, 1)
    k = min(k, logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, NEG_INF)
    # END SOLUTION


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probabilities add up
    to at least ``p``; set the rest to -inf. The most likely token is always kept.

    Raises:
        ValueError: ``p`` outside (0, 1].
    """
    # BEGIN SOLUTION task 4: nucleus filtering: the smallest set of most likely tokens whose probability reaches p kept, the top token always (README task 4; Holtzman et al. 2019).
    # HINT task 4 level 2: the set is decided in order of probability, so work on each row sorted
    #   descending and map the decision back to vocabulary order. A token belongs to the nucleus when the
    #   probability mass of the tokens before it is still below p (it is the one that reaches p). Rounding in a
    #   running sum can drop the tail when p is 1: p = 1 keeps everything.
    # HINT task 4 level 3: p == 1 -> a copy; sort the logits (values and order), softmax, running
    #   sum minus each token's own probability = mass before it; remove where that is >= p, never position 0;
    #   scatter the removal mask back through the order; masked_fill with -inf.
    check_in_range("top_p", p, 0.0, 1.0, low_inclusive=False)
    if p == 1.0:  # the whole vocabulary; cumsum's rounding could otherwise drop the tail
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    remove_sorted = mass_before >= p
    remove_sorted[..., 0] = False
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, NEG_INF)
    # END SOLUTION


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens whose probability is at least ``min_p`` times the most likely token's;
    set the rest to -inf.

    Raises:
        ValueError: ``min_p`` outside [0, 1].
    """
    # BEGIN SOLUTION task 4: tokens kept when their probability is at least min_p times the row's top probability (README task 4; the min-p paper).
    # HINT task 4 level 2: the threshold scales with each row's own peak, so a flat distribution
    #   keeps many tokens and a peaked one few; min_p 0 keeps all, and the top token always survives.
    check_in_range("min_p", min_p, 0.0, 1.0)
    probs = torch.softmax(logits, dim=-1)
    threshold = min_p * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < threshold, NEG_INF)
    # END SOLUTION


def apply_repetition_penalty(logits: torch.Tensor, previous_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens already in ``previous_ids`` less likely (CTRL, Keskar et al. 2019).

    Args:
        logits: ``(batch, vocab)``.
        previous_ids: ``(batch, seq)`` ids of the prompt and the tokens generated so far.
        penalty: > 0; above 1 discourages repeats. A seen token's logit is divided by ``penalty``
            when positive and multiplied by it when negative (so it always moves down).

    Raises:
        ValueError: ``penalty`` <= 0.
    """
    # BEGIN SOLUTION task 4: the logits of tokens already seen moved down by the penalty, whatever their sign (README task 4; CTRL, Keskar et al. 2019).
    # HINT task 4 level 2: previous_ids is (batch, seq) and may repeat an id; every
    #   seen token is penalised once, not once per occurrence. Dividing a negative logit would raise it, hence
    #   the sign rule in the docstring. No Python loop over the vocabulary: gather the seen logits and scatter
    #   the new values into a copy.
    check_in_range("repetition_penalty", penalty, 0.0, float("inf"), low_inclusive=False)
    seen = torch.gather(logits, -1, previous_ids)
    penalised = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(-1, previous_ids, penalised)
    # END SOLUTION


def check_sampling_params(params: SamplingParams) -> None:
    """Check every setting of ``params``, whatever the others are (temperature 0 does not make a
    bad ``top_p`` acceptable: an API must refuse it, not ignore it).

    Raises:
        ValueError: naming the field: ``temperature`` < 0, ``top_k`` < 1, ``top_p`` outside (0, 1],
            ``min_p`` outside [0, 1], ``repetition_penalty`` <= 0.
    """
    # BEGIN SOLUTION task 4: every sampling setting checked, whatever the others are, each error naming its field (README task 4; the docstring's ranges).
    # HINT task 4 level 2: temperature 0 is allowed (greedy) but does not excuse another
    #   bad setting; top_k None means unset; mind which ends of each range are open.
    check_in_range("temperature", params.temperature, 0.0, float("inf"))
    if params.top_k is not None:
        check_at_least("top_k", params.top_k, 1)
    check_in_range("top_p", params.top_p, 0.0, 1.0, low_inclusive=False)
    check_in_range("min_p", params.min_p, 0.0, 1.0)
    check_in_range("repetition_penalty", params.repetition_penalty, 0.0, float("inf"), low_inclusive=False)
    # END SOLUTION


def sample_next_token(logits: torch.Tensor, params: SamplingParams,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row of ``(batch, vocab)`` logits.

    ``temperature == 0`` is greedy (argmax). Otherwise apply, in this order, temperature, top-k,
    top-p and min-p (each only when set), then draw from the softmax with ``torch.multinomial``
    using ``generator``, so that a seeded generator gives the same tokens every run (and
    ``generator=None`` draws from torch's global generator, as transformers' ``generate`` does).

    Returns:
        ``(batch,)`` token ids (int64).

    Raises:
        ValueError: a setting out of range (:func:`check_sampling_params`), before anything is sampled.
    """
    # BEGIN SOLUTION task 4: one token per row, greedy at temperature 0, else drawn exactly as transformers' generate(do_sample=True) draws with the same seed (README task 4; the docstring's order).
    # HINT task 4 level 2: the same tokens as transformers with the same seed means the same
    #   filters, in the same order (temperature first), each only when set, and the same single random draw per
    #   row from the generator passed in. The repetition penalty is not applied here (the given sampling_picker
    #   does it). Returns (batch,) ids.
    # HINT task 4 level 3: check the params; temperature 0 -> argmax per row; else
    #   temperature, then top-k if set, top-p if below 1, min-p if above 0; softmax in float32; one multinomial
    #   draw per row with the generator; drop the trailing axis.
    check_sampling_params(params)
    if params.temperature == 0:
        return torch.argmax(logits, dim=-1)
    logits = apply_temperature(logits, params.temperature)
    if params.top_k is not None:
        logits = top_k_filter(logits, params.top_k)
    if params.top_p < 1.0:
        logits = top_p_filter(logits, params.top_p)
    if params.min_p > 0.0:
        logits = min_p_filter(logits, params.min_p)
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
    # END SOLUTION


def sampling_picker(params: SamplingParams, generator: torch.Generator | None = None) -> TokenPicker:
    """A task-3 :data:`TokenPicker` that samples with ``params`` (given): the repetition penalty
    (which needs the sequence so far), then :func:`sample_next_token`."""

    def pick(logits: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
        if params.repetition_penalty != 1.0:
            logits = apply_repetition_penalty(logits, sequence, params.repetition_penalty)
        return sample_next_token(logits, params, generator)

    return pick


def sample_generate(model: PreTrainedModel, prompt_ids: list[int], max_new_tokens: int,
                    params: SamplingParams, seed: int | None = None,
                    eos_token_id: int | list[int] | None = None) -> list[int]:
    """Generate up to ``max_new_tokens`` tokens by sampling (given: your task-3 :func:`decode` loop
    with :func:`sampling_picker`).

    The same ``seed`` gives the same tokens. ``seed=None`` draws from torch's global generator, as
    ``model.generate(do_sample=True)`` does, so after the same ``torch.manual_seed`` both give the
    same tokens. ``params.temperature == 0`` gives greedy output.
    """
    check_sampling_params(params)  # before the model runs
    generator = None if seed is None else torch.Generator(device=model.device).manual_seed(seed)
    return decode(model, prompt_ids, max_new_tokens, sampling_picker(params, generator), eos_token_id)
