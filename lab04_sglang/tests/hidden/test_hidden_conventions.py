"""Hidden: token bytes and constrained decoding on model folders with real tokenizer conventions
(``shared.convention_models``: random-weight models with the tokenizers of GPT-2, Llama 2 and
Llama 3 from llama.cpp's own vocab files, a SentencePiece byte-fallback BPE, no pad token, and a
Mixtral). SentencePiece's ``▁`` and byte tokens, a 128k vocabulary and a list of eos ids are
where token bytes and masks go wrong."""

from __future__ import annotations

import functools

import pytest

from shared.convention_models import ConventionUnavailable, convention_model

from ..helpers import check_regex_completion, completion_text, grammar, load, masks

PATTERN = r" (yes|no|[a-z]{2,5})"
#: SentencePiece with byte fallback (trained here, and Llama 2's) and Llama 3's 128k byte-level BPE
#: with a list of eos ids (GPT-2's vocabulary, no pad token and the Mixtral add nothing here: the
#: fixture's kind of byte-level BPE, and masks never pad).
CONVENTIONS = ["spm-byte-fallback", "llama-spm", "llama-bpe"]


@functools.cache
def _load(convention: str):
    try:
        return load(convention_model(convention))
    except ConventionUnavailable as error:
        return f"this model folder cannot be built here: {error}"


@pytest.mark.task(2)
@pytest.mark.points(0.5)
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.timeout(600)  # the first run builds the folders (Llama 3's tokenizer: ~25 s idle)
def test_token_bytes_and_regex_completions_with_any_tokenizer(convention):
    """The bytes of a text's tokens join to the text they add after a prompt, with the folder's own
    tokenizer; a random model constrained by a regex that starts with a space (the piece that a
    SentencePiece '▁' carries) ends with one of its eos ids, and its decoded completion matches."""
    loaded = _load(convention)
    if isinstance(loaded, str):
        pytest.skip(loaded)
    model, tokenizer = loaded
    pieces = masks.token_bytes(tokenizer)
    prompt = tokenizer("Q:", add_special_tokens=False).input_ids
    for text in (" yes", "Grüße 👋🏽 naïve", ' {"a": 1}'):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert b"".join(pieces[i] for i in ids) == completion_text(tokenizer, prompt, ids).encode(), (convention, text)
    eos = model.generation_config.eos_token_id
    eos_ids = eos if isinstance(eos, list) else [eos]
    vocabulary = masks.Vocabulary(tokenizer, model.config.vocab_size, eos)
    masker = masks.TokenMasker(grammar.compile_regex(PATTERN), vocabulary)
    prompt = tokenizer("Q:").input_ids
    out = masks.constrained_generate(model, masker, prompt, 12, temperature=1.0, seed=0)
    assert out[-1] in eos_ids, f"{convention}: the completion must end with an eos id ({eos_ids})"
    check_regex_completion(completion_text(tokenizer, prompt, out[:-1]), PATTERN)
