"""Task 2: token masks from the automaton, cached per state; a logits processor; valid completions."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessorList

from .helpers import (
    RECORD,
    allowed_ids,
    check_json_completion,
    check_regex_completion,
    fixture_model,
    grammar,
    masks,
    random_model,
    schemas,
)

pytestmark = pytest.mark.task(2)
__all__ = ["fixture_model", "random_model"]
BOUNDED_REGEXES = [r"\d{3}-\d{4}", r"(yes|no|maybe)", r"[A-Z][a-z]{1,5}", r"[^,\n]{0,8},?", r"(ab|é){1,3}x?"]


def vocabulary_of(model, tokenizer):
    return masks.Vocabulary(tokenizer, model.config.vocab_size, model.generation_config.eos_token_id)


@pytest.mark.points(3)
@pytest.mark.parametrize("text", ["The cat sat.", '{"name": "Zoë", "age": 3}', "Café crème 🍕 東京\n\tx"])
def test_token_bytes_join_to_the_text(tokenizer, text):
    """The bytes of a text's tokens join to its UTF-8 bytes, multi-byte pieces included; specials are None."""
    pieces = masks.token_bytes(tokenizer)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert b"".join(pieces[i] for i in ids) == text.encode("utf-8")
    for special in tokenizer.all_special_ids:
        assert pieces[special] is None
    assert len(masks.token_bytes(tokenizer, len(tokenizer) + 7)) == len(tokenizer) + 7


@pytest.mark.points(3)
@pytest.mark.parametrize("spec", ["record", r"[A-Z][a-z]{1,5}", r"(ab|é){1,3}x?"])
def test_mask_equals_walking_every_token(fixture_model, spec):
    """In every state along a completion, the mask is exactly the tokens whose bytes the automaton reads without dying;
    eos iff accepting."""
    model, tokenizer = fixture_model
    automaton = grammar.compile_json_schema(RECORD) if spec == "record" else grammar.compile_regex(spec)
    vocabulary = vocabulary_of(model, tokenizer)
    masker = masks.TokenMasker(automaton, vocabulary)
    out = masks.constrained_generate(model, masker, tokenizer("Give me a user record as JSON.").input_ids, 40,
                                     temperature=1.0, seed=5)
    state = automaton.start
    for token_id in out:
        expected = {i for i, data in enumerate(vocabulary.pieces)
                    if data is not None and automaton.walk(state, data) != automaton.DEAD}
        if automaton.is_accepting(state):
            expected |= set(vocabulary.eos_ids)
        assert allowed_ids(masker.mask(state)) == expected
        state = masker.advance(state, token_id)


@pytest.mark.points(2)
def test_masks_are_cached_per_state(fixture_model, monkeypatch):
    """A state's mask is computed once: asking again never walks the automaton."""
    model, tokenizer = fixture_model
    automaton = grammar.compile_json_schema(RECORD)
    masker = masks.TokenMasker(automaton, vocabulary_of(model, tokenizer))
    first = masker.mask(automaton.start).clone()
    calls = []
    monkeypatch.setattr(automaton, "step", lambda *a: calls.append(a) or automaton.DEAD)
    monkeypatch.setattr(automaton, "walk", lambda *a: calls.append(a) or automaton.DEAD)
    assert torch.equal(masker.mask(automaton.start), first) and calls == []


@pytest.mark.points(4)
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_fixture_completions_validate(fixture_model, seed):
    """Greedy (seed None) and sampled completions of the trained fixture, through model.generate with the processor,
    validate against the schema."""
    model, tokenizer = fixture_model
    masker = masks.TokenMasker(grammar.compile_json_schema(RECORD), vocabulary_of(model, tokenizer))
    prompt = tokenizer("Give me a user record as JSON: ", return_tensors="pt")
    processor = masks.ConstrainedLogitsProcessor(masker, prompt.input_ids.shape[1])
    if seed is not None:
        torch.manual_seed(seed)
    out = model.generate(**prompt, max_new_tokens=60, do_sample=seed is not None, temperature=1.5 if seed else None,
                         logits_processor=LogitsProcessorList([processor]), pad_token_id=tokenizer.pad_token_id)
    new = out[0, prompt.input_ids.shape[1]:].tolist()
    assert new[-1] == tokenizer.eos_token_id, "the fixture should finish a record within 60 tokens"
    check_json_completion(tokenizer.decode(new, skip_special_tokens=True), RECORD)


@pytest.mark.points(2)
def test_processor_handles_a_padded_batch(fixture_model):
    """Two prompts of different lengths, left-padded, in one generate call: both rows validate."""
    model, tokenizer = fixture_model
    masker = masks.TokenMasker(grammar.compile_regex(r"(yes|no|maybe)"), vocabulary_of(model, tokenizer))
    batch = tokenizer(["Is it", "The capital of Japan is Tokyo. True?"], return_tensors="pt", padding=True)
    processor = masks.ConstrainedLogitsProcessor(masker, batch.input_ids.shape[1])
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=8, do_sample=True, logits_processor=LogitsProcessorList([processor]),
                         pad_token_id=tokenizer.pad_token_id)
    for row in out[:, batch.input_ids.shape[1]:]:
        check_regex_completion(tokenizer.decode(row, skip_special_tokens=True), r"(yes|no|maybe)")


@pytest.mark.points(4)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(schema=schemas(depth=1), seed=st.integers(0, 10_000), greedy=st.booleans())
def test_random_model_completions_validate(random_model, schema, seed, greedy):
    """Hypothesis: a random-weights model (eos a list of ids), any generated schema, greedy or sampled: the completion
    ends with eos and validates."""
    model, tokenizer = random_model
    masker = masks.TokenMasker(grammar.compile_json_schema(schema), vocabulary_of(model, tokenizer))
    out = masks.constrained_generate(model, masker, tokenizer("JSON:").input_ids, 300,
                                     temperature=0.0 if greedy else 1.0, seed=seed)
    assert out[-1] in model.generation_config.eos_token_id
    check_json_completion(tokenizer.decode(out[:-1]), schema)


@pytest.mark.points(2)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=st.sampled_from(BOUNDED_REGEXES), seed=st.integers(0, 10_000))
def test_random_model_regex_completions_fully_match(random_model, pattern, seed):
    """Hypothesis: sampled completions of a random model fully match their regex (re.fullmatch)."""
    model, tokenizer = random_model
    masker = masks.TokenMasker(grammar.compile_regex(pattern), vocabulary_of(model, tokenizer))
    out = masks.constrained_generate(model, masker, tokenizer("Answer:").input_ids, 40, temperature=1.0, seed=seed)
    assert out[-1] in model.generation_config.eos_token_id
    check_regex_completion(tokenizer.decode(out[:-1]), pattern)


@pytest.mark.points(2)
def test_eos_only_where_complete_and_refused_tokens(fixture_model):
    """Eos is allowed exactly in accepting states; advancing by a refused token is a ValueError; after eos nothing is
    allowed."""
    model, tokenizer = fixture_model
    vocabulary = vocabulary_of(model, tokenizer)
    masker = masks.TokenMasker(grammar.compile_regex(r"ab?"), vocabulary)
    eos = tokenizer.eos_token_id
    a_id = tokenizer("a", add_special_tokens=False).input_ids
    assert not masker.mask(masker.automaton.start)[eos]
    state = masker.walk(a_id)
    assert masker.mask(state)[eos]
    with pytest.raises(ValueError, match="not allowed"):
        masker.advance(masker.automaton.start, eos)
    finished = masker.advance(state, eos)
    assert not masker.mask(finished).any()


@pytest.mark.points(1)
def test_bad_arguments_fail_before_the_model_runs(fixture_model):
    """Empty prompt, max_new_tokens < 1 and a negative temperature raise ValueError naming the argument."""
    model, tokenizer = fixture_model
    masker = masks.TokenMasker(grammar.compile_regex("a"), vocabulary_of(model, tokenizer))
    for kwargs, named in [({"prompt_ids": []}, "prompt_ids"), ({"max_new_tokens": 0}, "max_new_tokens"),
                          ({"temperature": -1.0}, "temperature")]:
        call = {"prompt_ids": [1, 50], "max_new_tokens": 4, **kwargs}
        with pytest.raises(ValueError, match=named):
            masks.constrained_generate(model, masker, **call)
