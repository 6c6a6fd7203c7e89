"""Task 7: greedy speculative decoding."""

import pytest
import torch

from .helpers import PROMPTS, hf_greedy, speculative

pytestmark = pytest.mark.task(7)


@pytest.fixture(scope="module")
def draft_model(draft_model, model):
    """The session draft, when it shares the model's vocabulary (a draft must: it proposes token ids)."""
    if draft_model.config.vocab_size != model.config.vocab_size:
        pytest.skip(f"the draft's vocabulary ({draft_model.config.vocab_size}) differs from the model's "
                    f"({model.config.vocab_size}): pass a matching draft with $COURSE_DRAFT_MODEL")
    return draft_model


@pytest.mark.points(6)
@pytest.mark.parametrize("k", [1, 3, 6])
def test_output_is_the_targets_greedy_output(model, draft_model, tokenizer, k):
    """For every prompt and k, exactly the target's own greedy tokens; the bookkeeping adds up."""
    for index, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt).input_ids
        result = speculative.speculative_generate(model, draft_model, ids, 30, k=k)
        assert result.tokens == hf_greedy(model, ids, 30), f"prompt {prompt!r}, k={k}"
        assert 0 <= result.accepted <= result.proposed
        assert result.draft_forward_passes == result.proposed, "one draft pass per proposed token"
        # each target pass keeps the accepted guesses plus one token of its own (eos may cut the last)
        assert len(result.tokens) <= result.accepted + result.target_forward_passes
        assert result.target_forward_passes <= len(result.tokens)
        if index >= 2 or k == 1:  # the checks below do not depend on k: two values suffice
            continue
        endless = speculative.speculative_generate(model, draft_model, ids, 30, k=k, eos_token_id=-1)
        assert len(endless.tokens) == 30 == endless.accepted + endless.target_forward_passes
        assert endless.proposed == endless.draft_forward_passes
        stops = [endless.tokens[7], 0]  # a list of eos ids, one of them 0
        cut = speculative.speculative_generate(model, draft_model, ids, 30, k=k, eos_token_id=stops)
        assert cut.tokens == hf_greedy(model, ids, 30, eos_token_id=stops), f"eos_token_id={stops}"
        zero = speculative.speculative_generate(model, draft_model, ids, 30, k=k, eos_token_id=0)
        assert zero.tokens == hf_greedy(model, ids, 30, eos_token_id=0), "eos_token_id=0 is an id"


@pytest.mark.points(3)
def test_a_perfect_draft_is_always_accepted(model, tokenizer):
    """With the target as its own draft every guess is accepted, so each pass yields k + 1 tokens;
    near max_new_tokens a round proposes only what can still be kept."""
    ids = tokenizer(PROMPTS[2]).input_ids
    result = speculative.speculative_generate(model, model, ids, 22, k=3, eos_token_id=-1)
    assert result.tokens == hf_greedy(model, ids, 22, eos_token_id=None, min_new_tokens=22)
    assert result.acceptance_rate == 1.0
    # rounds at 0, 4, 8, 12, 16 keep 3 guesses + 1 token; the round at 20 proposes 1 and keeps 2
    assert (result.target_forward_passes, result.proposed, result.accepted) == (6, 16, 16)
    assert result.draft_forward_passes == 16


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


@pytest.mark.points(1)
def test_bad_arguments_name_the_argument(model, draft_model, tokenizer):
    ids = tokenizer("The cat").input_ids
    for kwargs, name in [({"k": 0}, r"\bk\b"), ({"max_new_tokens": 0}, "max_new_tokens")]:
        arguments = {"prompt_ids": ids, "max_new_tokens": 5, "k": 2, **kwargs}
        with pytest.raises(ValueError, match=name):
            speculative.speculative_generate(model, draft_model, **arguments)
    with pytest.raises(ValueError, match="prompt_ids"):
        speculative.speculative_generate(model, draft_model, [], 5)
