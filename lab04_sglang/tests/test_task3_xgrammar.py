"""Task 3: the allowed-token sets of task 2, step by step, against xgrammar's."""

import json

import pytest
import torch

from .helpers import RECORD, fixture_model, grammar, masks, xgrammar_check

pytestmark = [pytest.mark.task(3), pytest.mark.xgrammar]
__all__ = ["fixture_model"]
SCHEMAS = {
    "record": RECORD,
    "flags": {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "null"},
                                               "tags": {"type": "array", "items": {"enum": ["a", "b"]},
                                                        "maxItems": 3}}, "required": ["ok", "tags"]},
    "free string": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}
PATTERNS = [r"\d{3}-\d{4}", r"(yes|no|maybe)", r"[A-Z][a-z]{1,5}"]


def _special_ids(tokenizer) -> set[int]:
    return set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}


def _text(vocabulary, tokens: list[int]) -> bytes:
    return b"".join(vocabulary.pieces[t] or b"" for t in tokens)


def _completions(model, tokenizer, masker, prompt: str) -> list[list[int]]:
    ids = tokenizer(prompt).input_ids
    return [masks.constrained_generate(model, masker, ids, 50, temperature=t, seed=s)
            for t, s in [(0.0, 0), (1.0, 1), (2.0, 2)]]


@pytest.mark.points(0.5)
def test_bitmask_decoding():
    """Bit i % 32 of word i // 32 is token i, sign bit included, ids past the vocabulary dropped: the tokens
    xgrammar's own apply_token_bitmask_inplace leaves finite in a row of logits."""
    import xgrammar

    generator = torch.Generator().manual_seed(0)
    words = torch.randint(-2**31, 2**31 - 1, (1, 4), generator=generator, dtype=torch.int64).to(torch.int32)
    expected = {i for i in range(120) if (int(words[0, i // 32]) >> (i % 32)) & 1}
    assert xgrammar_check.bitmask_to_set(words, 120) == expected
    every = torch.full((1, 4), -1, dtype=torch.int32)  # all bits set: the padding past the vocabulary too
    for vocab_size, bitmask in [(120, words), (40, every[:, :2]), (33, every[:, :2]), (128, every), (1, every[:, :1])]:
        logits = torch.zeros(1, vocab_size)
        xgrammar.apply_token_bitmask_inplace(logits, bitmask)
        kept = {int(i) for i in torch.nonzero(torch.isfinite(logits[0]))}
        assert xgrammar_check.bitmask_to_set(bitmask, vocab_size) == kept, vocab_size


@pytest.mark.points(4)
@pytest.mark.parametrize("name", list(SCHEMAS))
def test_schema_masks_match_xgrammar_or_are_explained(fixture_model, name):
    """xgrammar accepts every token of our completions; every step's difference is explained (none 'unexplained')."""
    model, tokenizer = fixture_model
    vocabulary = masks.Vocabulary(tokenizer, model.config.vocab_size)
    masker = masks.TokenMasker(grammar.compile_json_schema(SCHEMAS[name]), vocabulary)
    compiled = xgrammar_check.xgrammar_compiled(tokenizer, model.config.vocab_size, json_schema=SCHEMAS[name])
    special = _special_ids(tokenizer)
    for tokens in _completions(model, tokenizer, masker, "Give me a user record as JSON: "):
        theirs = xgrammar_check.xgrammar_allowed(compiled, tokens, model.config.vocab_size)
        assert len(theirs) == len(tokens) + 1, "xgrammar refused a token of our completion"
        for difference in xgrammar_check.compare(xgrammar_check.ours_allowed(masker, tokens), theirs):
            for token_id in difference.only_ours | difference.only_xgrammar:
                why = xgrammar_check.explain(token_id, vocabulary, special, _text(vocabulary, tokens[:difference.step]))
                assert why not in (xgrammar_check.UNEXPLAINED, xgrammar_check.WHITESPACE), \
                    (name, difference.step, tokenizer.convert_ids_to_tokens(token_id), why)
                if token_id in difference.only_ours:  # we are stricter, never looser, than xgrammar...
                    assert why == xgrammar_check.ESCAPE  # ...but for escapes in bounded strings


@pytest.mark.points(2)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_regex_masks_equal_xgrammar(fixture_model, pattern):
    """For regexes without special-token or string issues, the sets are equal at every step."""
    model, tokenizer = fixture_model
    masker = masks.TokenMasker(grammar.compile_regex(pattern), masks.Vocabulary(tokenizer, model.config.vocab_size))
    compiled = xgrammar_check.xgrammar_compiled(tokenizer, model.config.vocab_size, regex=pattern)
    for tokens in _completions(model, tokenizer, masker, "Answer:"):
        theirs = xgrammar_check.xgrammar_allowed(compiled, tokens, model.config.vocab_size)
        assert xgrammar_check.compare(xgrammar_check.ours_allowed(masker, tokens), theirs) == []


@pytest.mark.points(1)
def test_any_whitespace_differences_are_whitespace(fixture_model):
    """With xgrammar's default any_whitespace=True the extra tokens it allows are whitespace, and only those
    (a newline after ':' among them); inside a string a raw newline is a control character, a space is not."""
    model, tokenizer = fixture_model
    schema = SCHEMAS["flags"]
    vocabulary = masks.Vocabulary(tokenizer, model.config.vocab_size)
    masker = masks.TokenMasker(grammar.compile_json_schema(schema), vocabulary)
    compiled = xgrammar_check.xgrammar_compiled(tokenizer, model.config.vocab_size, json_schema=schema,
                                                any_whitespace=True)
    tokens = _completions(model, tokenizer, masker, "JSON: ")[0]
    differences = xgrammar_check.compare(xgrammar_check.ours_allowed(masker, tokens),
                                         xgrammar_check.xgrammar_allowed(compiled, tokens, model.config.vocab_size))
    assert differences, "xgrammar with any_whitespace=True should allow more than canonical JSON"
    for difference in differences:
        assert not difference.only_ours
        for token_id in difference.only_xgrammar:
            so_far = _text(vocabulary, tokens[:difference.step])
            why = xgrammar_check.explain(token_id, vocabulary, _special_ids(tokenizer), so_far)
            assert why == xgrammar_check.WHITESPACE, (difference.step, vocabulary.pieces[token_id])
    after_colon = tokenizer('{"ok":', add_special_tokens=False).input_ids
    newline = vocabulary.pieces.index(b"\n")
    assert newline in xgrammar_check.xgrammar_allowed(compiled, after_colon, model.config.vocab_size)[-1], (
        "with any_whitespace=True xgrammar must allow a newline after ':' (its separators left free, not ', ' / ': ')")
    in_string = b'{"text": "'
    assert xgrammar_check.explain(newline, vocabulary, set(), in_string) == xgrammar_check.CONTROL_CHARACTER, (
        "a raw newline inside a JSON string is a control character")
    space = vocabulary.pieces.index(b" ")
    assert xgrammar_check.explain(space, vocabulary, set(), in_string) == xgrammar_check.UNEXPLAINED, (
        "a space inside a JSON string is an ordinary character (below 0x20 is control): unexplained")
    backslash, letter = vocabulary.pieces.index(b"\\"), vocabulary.pieces.index(b"t")
    eos = tokenizer.eos_token_id
    rows = [(backslash, set(), in_string, xgrammar_check.ESCAPE),  # an escape inside a string
            (eos, {eos}, in_string, xgrammar_check.SPECIAL_TOKEN),  # a special token, inside a string or not
            (eos, {eos}, b'{"ok": true', xgrammar_check.SPECIAL_TOKEN),
            (letter, set(), b'{"ok":', xgrammar_check.WHITESPACE),  # no space right after ':' ...
            (letter, set(), b'{"ok": true,', xgrammar_check.WHITESPACE),  # ... or after ','
            (newline, set(), b'{"ok": true', xgrammar_check.WHITESPACE),  # whitespace between JSON tokens
            (vocabulary.pieces.index(b"\t"), set(), b"{", xgrammar_check.WHITESPACE),
            (letter, set(), b'{"ok": true', xgrammar_check.UNEXPLAINED)]  # outside a string, not whitespace
    for token_id, special, so_far, category in rows:
        assert xgrammar_check.explain(token_id, vocabulary, special, so_far) == category, (
            vocabulary.pieces[token_id], so_far, category)


@pytest.mark.points(0.5)
def test_compare_checks_lengths():
    """Lists of different lengths are a ValueError; equal steps give no difference."""
    with pytest.raises(ValueError, match="steps") as error:
        xgrammar_check.compare([{1}], [{1}, {2}])
    assert "1" in str(error.value) and "2" in str(error.value), "the error gives both lengths"
    found = xgrammar_check.compare([{1, 2}, {3}], [{1}, {3}])
    assert [(d.step, d.only_ours, d.only_xgrammar) for d in found] == [(0, {2}, set())]


@pytest.mark.points(1)
def test_xgrammar_stops_at_a_refused_token(fixture_model):
    """A completion xgrammar refuses ends the list at the refused step (with the set it allowed there); logits
    wider than the tokenizer (vocab_size past it) change no allowed set."""
    model, tokenizer = fixture_model
    compiled = xgrammar_check.xgrammar_compiled(tokenizer, model.config.vocab_size, regex=r"(yes|no) sir")
    good = tokenizer("no", add_special_tokens=False).input_ids
    bad = good + tokenizer("pe sir", add_special_tokens=False).input_ids
    steps = xgrammar_check.xgrammar_allowed(compiled, bad, model.config.vocab_size)
    assert len(steps) == len(good) + 1
    assert tokenizer(" sir", add_special_tokens=False).input_ids[0] in steps[-1]
    wide = model.config.vocab_size + 88  # logits wider than the tokenizer (padded embeddings, as many models have)
    wide_compiled = xgrammar_check.xgrammar_compiled(tokenizer, wide, regex=r"(yes|no) sir")
    assert xgrammar_check.xgrammar_allowed(wide_compiled, good, wide) == steps, \
        "with logits wider than the tokenizer xgrammar allows the same tokens at each step (none past the tokenizer)"
    for both_or_neither in ({"regex": "a", "json_schema": {"type": "null"}}, {}):
        with pytest.raises(ValueError):
            xgrammar_check.xgrammar_compiled(tokenizer, model.config.vocab_size, **both_or_neither)
    schema, record = SCHEMAS["flags"], tokenizer('{"ok": true, "tags": []}', add_special_tokens=False).input_ids
    schema_text = json.dumps(schema)
    as_text = xgrammar_check.xgrammar_compiled(tokenizer, model.config.vocab_size, json_schema=schema_text)
    as_dict = xgrammar_check.xgrammar_compiled(tokenizer, model.config.vocab_size, json_schema=schema)
    assert xgrammar_check.xgrammar_allowed(as_text, record, model.config.vocab_size) == \
        xgrammar_check.xgrammar_allowed(as_dict, record, model.config.vocab_size), "a schema as JSON text or as a dict"
