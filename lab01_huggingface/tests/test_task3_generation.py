"""Task 3: one decode loop, with and without the KV cache, driven by a token-picking function."""

import copy

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from .helpers import PROMPTS, ForwardRecorder, generation, hf_greedy

pytestmark = pytest.mark.task(3)


class ScriptedPicker:
    """A TokenPicker that returns a fixed script of tokens and records what it was given."""

    def __init__(self, script: list[int]) -> None:
        self.script = script
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, logits: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
        self.calls.append((logits.clone(), sequence.clone()))
        return torch.tensor([self.script[len(self.calls) - 1]])


class LeastLikely(LogitsProcessor):
    """For transformers' generate: leaves only the least likely token, so greedy picks it."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return -scores


def with_eos(model, eos):
    """The session model (same weights) with another generation_config.eos_token_id."""
    clone = copy.copy(model)
    clone.generation_config = copy.deepcopy(model.generation_config)
    clone.generation_config.eos_token_id = eos
    return clone


@pytest.mark.points(2)
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_transformers_generate(model, tokenizer, prompt, use_cache):
    """greedy_generate (your decode with the argmax picker) is token for token
    model.generate(do_sample=False), stopping where it stops."""
    ids = tokenizer(prompt).input_ids
    expected = hf_greedy(model, ids, 24)
    assert generation.greedy_generate(model, ids, 24, use_cache=use_cache) == expected


@pytest.mark.points(2)
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
def test_decode_uses_the_picker_like_generate_uses_logits(model, tokenizer, use_cache):
    """With a picker that takes the *least* likely token, decode equals generate() with a logits
    processor doing the same; the picker gets float32 (1, vocab) logits and the sequence so far."""
    ids = tokenizer(PROMPTS[0]).input_ids
    seen: list[tuple[tuple[int, ...], torch.dtype, list[int]]] = []

    def least_likely(logits: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(logits.shape), logits.dtype, sequence[0].tolist()))
        return torch.argmin(logits, dim=-1)

    out = generation.decode(model, ids, 12, least_likely, eos_token_id=-1, use_cache=use_cache)
    assert out == hf_greedy(model, ids, 12, logits_processor=LogitsProcessorList([LeastLikely()]),
                            eos_token_id=None, min_new_tokens=12)
    assert [shape for shape, _, _ in seen] == [(1, model.config.vocab_size)] * 12
    assert all(dtype == torch.float32 for _, dtype, _ in seen)
    assert [sequence for _, _, sequence in seen] == [ids + out[:step] for step in range(12)]


@pytest.mark.points(1)
def test_stops_at_eos_and_at_max_new_tokens(trained_model, trained_tokenizer):
    """On the trained fixture (a model that learned to end a sentence), generation ends right
    after eos, or after exactly max_new_tokens when eos never comes."""
    model, tokenizer = trained_model, trained_tokenizer
    ids = tokenizer("The cat").input_ids
    free = generation.greedy_generate(model, ids, 60)
    eos = tokenizer.eos_token_id
    assert free == hf_greedy(model, ids, 60)
    assert free[-1] == eos and eos not in free[:-1], "expected the fixture to end this sentence with eos"
    capped = generation.greedy_generate(model, ids, 3)
    assert capped == free[:3]
    never = generation.greedy_generate(model, ids, 40, eos_token_id=-1)
    assert len(never) == 40, f"with no EOS to stop at, exactly max_new_tokens (40) tokens, got {len(never)}"
    assert never[: len(free)] == free, "without EOS the tokens must continue the run that stopped at EOS"


@pytest.mark.points(2)
def test_every_eos_convention_stops_the_loop(model, tokenizer):
    """eos may be 0 (a valid id), a list of ids (Llama 3, Qwen), the model's own setting (an id or a
    list), or absent (None: only max_new_tokens stops)."""
    ids = tokenizer(PROMPTS[1]).input_ids
    script = [7, 9, 0, 4, 5, 6, 3, 8]
    for eos, expected in [(0, [7, 9, 0]), ([11, 9], [7, 9]), ([4, 0], [7, 9, 0]), (-1, script)]:
        picker = ScriptedPicker(script)
        assert generation.decode(model, ids, 8, picker, eos_token_id=eos) == expected, f"eos_token_id={eos!r}"
    for config_eos, expected in [(0, [7, 9, 0]), ([5, 4], [7, 9, 0, 4]), (None, script[:6])]:
        clone = with_eos(model, config_eos)
        picker = ScriptedPicker(script)
        assert generation.decode(clone, ids, 6, picker) == expected, f"generation_config.eos_token_id={config_eos!r}"
    assert generation.stop_ids(model, 0) == {0}
    assert generation.stop_ids(model, [3, 0]) == {3, 0}
    assert generation.stop_ids(with_eos(model, [2, 5]), None) == {2, 5}
    assert generation.stop_ids(with_eos(model, None), None) == set()


@pytest.mark.points(2)
def test_the_cache_feeds_one_token_per_step(model, tokenizer):
    """With the cache the prompt is fed once, then one token per step; without it, the whole prefix."""
    ids = tokenizer(PROMPTS[2]).input_ids
    with ForwardRecorder(model) as cached:
        out = generation.greedy_generate(model, ids, 8, eos_token_id=-1, use_cache=True)
    assert cached.fed == [len(ids)] + [1] * (len(out) - 1)
    with ForwardRecorder(model) as uncached:
        generation.greedy_generate(model, ids, 8, eos_token_id=-1, use_cache=False)
    assert uncached.fed == [len(ids) + step for step in range(8)]


@pytest.mark.points(1)
def test_bad_arguments_fail_before_the_model_runs(model, tokenizer):
    """Empty prompt and max_new_tokens <= 0 raise ValueError naming the argument; the model is never called."""
    ids = tokenizer("The cat").input_ids
    with ForwardRecorder(model) as calls:
        with pytest.raises(ValueError, match="prompt_ids"):
            generation.greedy_generate(model, [], 5)
        for bad in (0, -3):
            with pytest.raises(ValueError, match="max_new_tokens"):
                generation.decode(model, ids, bad, generation.pick_greedy)
    assert calls.fed == []
