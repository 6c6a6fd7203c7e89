"""Instructor-only tests (left out of the student edition): inputs the visible tests never show."""

import json

import jsonschema
import pytest
import torch

from ..helpers import (
    check_regex_completion,
    completion_text,
    fixture_model,
    grammar,
    load,
    masks,
    prefix_cache,
    program,
    xgrammar_check,
)

__all__ = ["fixture_model"]


@pytest.mark.task(1)
@pytest.mark.points(2)
def test_nested_refs_arrays_of_objects_and_number_spellings():
    """$defs used twice, arrays of objects, anyOf of types, and every way json.dumps writes a float."""
    point = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": ["integer", "null"]}},
             "required": ["x"]}
    schema = {"$defs": {"P": point}, "type": "object", "required": ["a", "b"],
              "properties": {"a": {"$ref": "#/$defs/P"},
                             "b": {"type": "array", "items": {"$ref": "#/$defs/P"}, "minItems": 2}}}
    automaton = grammar.compile_json_schema(schema)
    for x in (0.0, -1.5, 1e-05, 2.5e20, 123456789.125, -0.0001):
        value = {"a": {"x": x, "y": None}, "b": [{"x": 1}, {"x": x, "y": -4}]}
        jsonschema.validate(value, schema)
        assert automaton.matches(json.dumps(value)), value
    assert not automaton.matches(json.dumps({"a": {"x": 1}, "b": [{"x": 1}]}))
    assert not automaton.matches('{"a": {"x": 1.}, "b": [{"x": 1}, {"x": 2}]}')
    assert not automaton.matches('{"a": {"x": .5}, "b": [{"x": 1}, {"x": 2}]}')


@pytest.mark.task(2)
@pytest.mark.points(1.5)
def test_gpt2_shaped_random_model_with_eos_zero():
    """A GPT-2-shaped random model whose eos id is 0 (also its pad id): completions end with eos 0 and match."""
    from shared.models import build_random_model

    model, tokenizer = load(build_random_model("gpt2", seed=5))
    assert model.generation_config.eos_token_id == 0
    vocabulary = masks.Vocabulary(tokenizer, model.config.vocab_size, 0)
    pattern = r"(ja|nein|vielleicht) [a-zé]{2,4}"
    masker = masks.TokenMasker(grammar.compile_regex(pattern), vocabulary)
    prompt = tokenizer("Q:").input_ids
    for seed in range(4):
        out = masks.constrained_generate(model, masker, prompt, 30, temperature=1.0, seed=seed)
        assert out[-1] == 0, "generation must end with the EOS token (id 0)"
        assert 0 not in out[:-1], "EOS (id 0) may only come last"
        check_regex_completion(completion_text(tokenizer, prompt, out[:-1]), pattern)


@pytest.mark.task(3)
@pytest.mark.points(1)
def test_regex_with_non_ascii_class_equals_xgrammar(fixture_model):
    """A class of accented letters (multi-byte pieces) gives xgrammar's sets at every step."""
    model, tokenizer = fixture_model
    pattern = r"[a-zàéèü]{3,6}!"
    masker = masks.TokenMasker(grammar.compile_regex(pattern), masks.Vocabulary(tokenizer, model.config.vocab_size))
    compiled = xgrammar_check.xgrammar_compiled(tokenizer, model.config.vocab_size, regex=pattern)
    for seed in range(3):
        tokens = masks.constrained_generate(model, masker, tokenizer("Café").input_ids, 20, temperature=2.0, seed=seed)
        theirs = xgrammar_check.xgrammar_allowed(compiled, tokens, model.config.vocab_size)
        assert xgrammar_check.compare(xgrammar_check.ours_allowed(masker, tokens), theirs) == []


@pytest.mark.task(4)
@pytest.mark.points(2)
def test_cached_generation_on_a_gqa_model_with_eviction():
    """A Qwen2-shaped random model (GQA, biases, list of eos ids), a tight capacity: cached output equals HF greedy."""
    from shared.models import build_random_model

    model, tokenizer = load(build_random_model("qwen2", seed=9))
    generator = prefix_cache.PrefixCachingGenerator(model, max_cached_tokens=40)
    base = tokenizer("A long shared system prompt about cats and dogs and the weather today.").input_ids
    for tail in ("Q1", "Q2 is longer", "Q1", "Q3"):
        ids = base + tokenizer(tail, add_special_tokens=False).input_ids
        out = generator.generate(ids, 12)
        inputs = torch.tensor([ids])
        expected = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False, max_new_tokens=12,
                                  pad_token_id=tokenizer.pad_token_id)[0, len(ids):].tolist()
        assert out.token_ids == expected
        assert generator.radix.total_size() <= 40, (
            f"the radix cache must stay within its capacity of 40 tokens, holds {generator.radix.total_size()}"
        )
        assert generator.radix.protected_size() == 0, "every lock must be released once generation ends"


@pytest.mark.task(5)
@pytest.mark.points(1)
def test_role_context_managers_run_batch_and_fork_add(fixture_model):
    """`with s.user():` blocks, run_batch, and `forks += expr` applied to every branch."""
    model, tokenizer = fixture_model
    backend = program.LocalBackend(model, tokenizer)

    @program.function
    def ask(s, question):
        with s.user():
            s += question
        with s.assistant():
            s += program.gen("answer", max_tokens=16)
        forks = s.fork(2)
        forks += program.user("Again?")
        s.forks = forks

    states = ask.run_batch([{"question": "What is the capital of Japan?"}, {"question": "Name a city."}],
                           temperature=0, backend=backend)
    assert [m["role"] for m in states[0].messages()] == ["user", "assistant"]
    assert states[0].messages()[0]["content"] == "What is the capital of Japan?"
    for state in states:
        assert all(f.messages()[-1] == {"role": "user", "content": "Again?"} for f in state.forks)
