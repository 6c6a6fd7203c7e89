"""Task 7: greedy speculative decoding."""

import pytest
import torch

from .helpers import PROMPTS, hf_greedy, speculative

pytestmark = pytest.mark.task(7)


@pytest.mark.points(6)
@pytest.mark.parametrize("k", [1, 3, 6])
def test_output_is_the_targets_greedy_output(model, draft_model, tokenizer, k):
    """For every prompt and k, exactly the target's own greedy tokens; the bookkeeping adds up."""
    for prompt in PROMPTS:
        ids = tokenizer(prompt).input_ids
        result = speculative.speculative_generate(model, draft_model, ids, 30, k=k)
        assert result.tokens == hf_greedy(model, ids, 30), f"prompt {prompt!r}, k={k}"
        assert 0 <= result.accepted <= result.proposed
        # each target pass keeps the accepted guesses plus one token of its own
        assert len(result.tokens) <= result.accepted + result.target_forward_passes
        assert result.target_forward_passes <= len(result.tokens)


@pytest.mark.points(3)
def test_a_perfect_draft_is_always_accepted(model, tokenizer):
    """With the target as its own draft every guess is accepted, so each pass yields k + 1 tokens."""
    ids = tokenizer(PROMPTS[2]).input_ids
    result = speculative.speculative_generate(model, model, ids, 24, k=3, eos_token_id=-1)
    assert result.tokens == hf_greedy(model, ids, 24, eos_token_id=None, min_new_tokens=24)
    assert result.acceptance_rate == 1.0
    assert result.target_forward_passes == 6  # 24 tokens / (3 guesses + 1)


@pytest.mark.points(3)
def test_agrees_with_transformers_assisted_generation(model, draft_model, tokenizer):
    """The tokens equal transformers' own assisted generation (assistant_model=draft)."""
    for prompt in PROMPTS[:3]:
        ids = tokenizer(prompt).input_ids
        inputs = torch.tensor([ids], device=model.device)
        with torch.no_grad():
            assisted = model.generate(inputs, attention_mask=torch.ones_like(inputs), assistant_model=draft_model,
                                      do_sample=False, max_new_tokens=20, pad_token_id=tokenizer.pad_token_id)
        result = speculative.speculative_generate(model, draft_model, ids, 20, k=4)
        assert result.tokens == assisted[0, len(ids):].tolist()


@pytest.mark.points(2)
def test_bad_arguments_name_the_argument(model, draft_model, tokenizer):
    ids = tokenizer("The cat").input_ids
    for kwargs, name in [({"k": 0}, "k"), ({"max_new_tokens": 0}, "max_new_tokens")]:
        arguments = {"prompt_ids": ids, "max_new_tokens": 5, "k": 2, **kwargs}
        with pytest.raises(ValueError, match=name):
            speculative.speculative_generate(model, draft_model, **arguments)
    with pytest.raises(ValueError, match="prompt_ids"):
        speculative.speculative_generate(model, draft_model, [], 5)
