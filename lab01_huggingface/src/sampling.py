# Student skeleton for lab01_huggingface: fill in each TODO, then run `course test lab01_huggingface`.
# (Generated from the reference solution by `course stubs`.)
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
    # TODO(lab01 task 4): logits scaled by the temperature, a temperature of 0 or below refused (README task 4; transformers' TemperatureLogitsWarper).
    raise NotImplementedError("lab01 task 4: apply_temperature is not written yet (see lab01_huggingface/README.md, task 4)")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits in each row of ``(batch, vocab)`` logits; set the rest to -inf.

    A logit equal to the k-th largest is kept too (as transformers does). ``k`` larger than the
    vocabulary keeps everything.

    Raises:
        ValueError: ``k`` < 1.
    """
    # TODO(lab01 task 4): each row's k largest logits kept, ties with the k-th included, the rest at -inf (README task 4; the docstring).
    raise NotImplementedError("lab01 task 4: top_k_filter is not written yet (see lab01_huggingface/README.md, task 4)")


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probabilities add up
    to at least ``p``; set the rest to -inf. The most likely token is always kept.

    Raises:
        ValueError: ``p`` outside (0, 1].
    """
    # TODO(lab01 task 4): nucleus filtering: the smallest set of most likely tokens whose probability reaches p kept, the top token always (README task 4; Holtzman et al. 2019).
    raise NotImplementedError("lab01 task 4: top_p_filter is not written yet (see lab01_huggingface/README.md, task 4)")


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep tokens whose probability is at least ``min_p`` times the most likely token's;
    set the rest to -inf.

    Raises:
        ValueError: ``min_p`` outside [0, 1].
    """
    # TODO(lab01 task 4): tokens kept when their probability is at least min_p times the row's top probability (README task 4; the min-p paper).
    raise NotImplementedError("lab01 task 4: min_p_filter is not written yet (see lab01_huggingface/README.md, task 4)")


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
    # TODO(lab01 task 4): the logits of tokens already seen moved down by the penalty, whatever their sign (README task 4; CTRL, Keskar et al. 2019).
    raise NotImplementedError("lab01 task 4: apply_repetition_penalty is not written yet (see lab01_huggingface/README.md, task 4)")


def check_sampling_params(params: SamplingParams) -> None:
    """Check every setting of ``params``, whatever the others are (temperature 0 does not make a
    bad ``top_p`` acceptable: an API must refuse it, not ignore it).

    Raises:
        ValueError: naming the field: ``temperature`` < 0, ``top_k`` < 1, ``top_p`` outside (0, 1],
            ``min_p`` outside [0, 1], ``repetition_penalty`` <= 0.
    """
    # TODO(lab01 task 4): every sampling setting checked, whatever the others are, each error naming its field (README task 4; the docstring's ranges).
    raise NotImplementedError("lab01 task 4: check_sampling_params is not written yet (see lab01_huggingface/README.md, task 4)")


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
    # TODO(lab01 task 4): one token per row, greedy at temperature 0, else drawn exactly as transformers' generate(do_sample=True) draws with the same seed (README task 4; the docstring's order).
    raise NotImplementedError("lab01 task 4: sample_next_token is not written yet (see lab01_huggingface/README.md, task 4)")


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
