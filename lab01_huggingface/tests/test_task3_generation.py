"""Task 3: greedy decoding by hand, with and without the KV cache."""

import pytest

from .helpers import PROMPTS, ForwardRecorder, generation, hf_greedy

pytestmark = pytest.mark.task(3)


@pytest.mark.points(3)
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_transformers_generate(model, tokenizer, prompt, use_cache):
    """Token for token the same as model.generate(do_sample=False), stopping at eos like it does."""
    ids = tokenizer(prompt).input_ids
    expected = hf_greedy(model, ids, 24)
    assert generation.greedy_generate(model, ids, 24, use_cache=use_cache) == expected


@pytest.mark.points(2)
def test_stops_at_eos_and_at_max_new_tokens(model, tokenizer):
    """Generation ends right after eos, or after exactly max_new_tokens when eos never comes."""
    ids = tokenizer("The cat").input_ids
    free = generation.greedy_generate(model, ids, 60)
    eos = tokenizer.eos_token_id
    assert free[-1] == eos and eos not in free[:-1], "expected the fixture to end this sentence with eos"
    capped = generation.greedy_generate(model, ids, 3)
    assert capped == free[:3]
    never = generation.greedy_generate(model, ids, 40, eos_token_id=-1)
    assert len(never) == 40 and never[: len(free)] == free


@pytest.mark.points(4)
def test_the_cache_feeds_one_token_per_step(model, tokenizer):
    """With the cache the prompt is fed once, then one token per step; without it, the whole prefix."""
    ids = tokenizer(PROMPTS[2]).input_ids
    with ForwardRecorder(model) as cached:
        out = generation.greedy_generate(model, ids, 8, eos_token_id=-1, use_cache=True)
    assert cached.fed == [len(ids)] + [1] * (len(out) - 1)
    with ForwardRecorder(model) as uncached:
        generation.greedy_generate(model, ids, 8, eos_token_id=-1, use_cache=False)
    assert uncached.fed == [len(ids) + step for step in range(8)]


@pytest.mark.points(2)
def test_bad_arguments_fail_before_the_model_runs(model, tokenizer):
    """Empty prompt and max_new_tokens <= 0 raise ValueError naming the argument; the model is never called."""
    ids = tokenizer("The cat").input_ids
    with ForwardRecorder(model) as calls:
        with pytest.raises(ValueError, match="prompt_ids"):
            generation.greedy_generate(model, [], 5)
        for bad in (0, -3):
            with pytest.raises(ValueError, match="max_new_tokens"):
                generation.greedy_generate(model, ids, bad)
    assert calls.fed == []
