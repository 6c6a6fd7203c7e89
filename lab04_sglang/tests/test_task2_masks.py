"""Task 2: token masks from an automaton, cached per state; a logits processor; valid completions.

Most tests run on ``helpers.FiniteLanguage``, an automaton the tests build themselves, so this
task is graded on its own; the Hypothesis tests on generated schemas use task 1's compiler."""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken
from transformers import LogitsProcessorList

from .helpers import (
    RECORD,
    RECORD_TEXTS,
    SHORT_WORDS,
    YES_NO,
    FiniteLanguage,
    allowed_ids,
    check_json_completion,
    completion_text,
    fixture_model,
    grammar,
    masks,
    random_model,
    schemas,
    sentencepiece_model,
)

pytestmark = pytest.mark.task(2)
__all__ = ["fixture_model", "random_model", "sentencepiece_model"]
FIXTURE_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.fixture
def fixture_dir_tokenizer():
    """A fresh copy of the fixture tokenizer (a test adds a token to it)."""
    from transformers import AutoTokenizer

    from .helpers import fixture_dir

    return AutoTokenizer.from_pretrained(fixture_dir())


def vocabulary_of(model, tokenizer):
    return masks.Vocabulary(tokenizer, model.config.vocab_size, model.generation_config.eos_token_id)


@pytest.mark.points(2)
@pytest.mark.parametrize("text", ["The cat sat.", '{"name": "Zoë", "age": 3}', "Café crème 🍕 東京\n\tx"])
def test_token_bytes_join_to_the_text(tokenizer, text):
    """The bytes of a text's tokens join to the text they add after a prompt (the tokenizer's own decode, in
    context: a SentencePiece '▁The' is ' The'), multi-byte pieces included; specials are None."""
    pieces = masks.token_bytes(tokenizer)
    text_ids = tokenizer.encode(text, add_special_tokens=False)
    prompt = tokenizer("Q:", add_special_tokens=False).input_ids
    assert b"".join(pieces[i] for i in text_ids) == completion_text(tokenizer, prompt, text_ids).encode("utf-8")
    for special in tokenizer.all_special_ids:
        assert pieces[special] is None
    wider = masks.token_bytes(tokenizer, len(tokenizer) + 7)  # logits wider than the tokenizer
    assert len(wider) == len(tokenizer) + 7 and wider[:len(tokenizer)] == pieces
    assert wider[len(tokenizer):] == [None] * 7, "ids past the tokenizer have no bytes (None): never generated freely"


SENTENCEPIECE_TEXTS = ["The cat sat.", " yes", "Café crème 🍕\n\tx", '{"name": "Zoë"}']


@pytest.mark.points(1)
def test_sentencepiece_pieces_and_completions(sentencepiece_model):
    """A SentencePiece-style tokenizer (byte fallback, '▁' for a space): token bytes are what the tokenizer
    decodes in context (llama.cpp's token_to_piece: '▁cat' is b' cat', '<0x0A>' is b'\\n'), so a constrained
    completion of a random Llama over it, decoded in context, is one of the words."""
    model, tokenizer = sentencepiece_model
    pieces = masks.token_bytes(tokenizer)
    prompt = tokenizer("Q:").input_ids
    for text in SENTENCEPIECE_TEXTS:
        text_ids = tokenizer.encode(text, add_special_tokens=False)
        assert b"".join(pieces[i] for i in text_ids) == completion_text(tokenizer, prompt, text_ids).encode(), text
    assert all(pieces[i] is None for i in tokenizer.all_special_ids)
    words = [" cat", " the hat", " yes", " crème", " 🍕", " ab\n"]
    masker = masks.TokenMasker(FiniteLanguage(words), masks.Vocabulary(tokenizer, model.config.vocab_size, 2))
    for seed in range(4):
        out = masks.constrained_generate(model, masker, prompt, 20, temperature=1.0, seed=seed)
        assert out[-1] == 2
        assert completion_text(tokenizer, prompt, out[:-1]) in words


@pytest.mark.xgrammar
@pytest.mark.points(0.5)
def test_token_bytes_equal_xgrammars_vocabulary(sentencepiece_model, tokenizer):
    """Every token's bytes equal xgrammar's own decoding of the vocabulary (TokenizerInfo.decoded_vocab), for
    a SentencePiece-style tokenizer with byte fallback and for the model's tokenizer, each with added tokens
    (plain ones are their text; one marked special in added_tokens_decoder has no bytes); special tokens are None."""
    import xgrammar
    from transformers import AutoTokenizer

    for original in (sentencepiece_model[1], tokenizer):
        tok = AutoTokenizer.from_pretrained(original.name_or_path)  # a copy: the session's tokenizers stay as they are
        tok.add_tokens(["zzword", " two words", AddedToken("<|tool|>", special=True)])
        decoded = xgrammar.TokenizerInfo.from_huggingface(tok).decoded_vocab
        pieces = masks.token_bytes(tok)
        differ = [(i, pieces[i], decoded[i]) for i in range(len(tok))
                  if pieces[i] is not None and pieces[i] != decoded[i]]
        assert differ == [], differ[:5]
        added = tok.convert_tokens_to_ids(["zzword", " two words", "<|tool|>"])
        assert [pieces[i] for i in added] == [b"zzword", b" two words", None], type(tok.backend_tokenizer.decoder)
        assert all(pieces[i] is None for i in tok.all_special_ids)


@pytest.mark.points(2)
@pytest.mark.parametrize("language", ["records", "short words"])
def test_mask_equals_walking_every_token(fixture_model, language):
    """In every state along a completion, the mask is exactly the tokens whose bytes the automaton reads
    without dying; eos iff the state accepts."""
    model, tokenizer = fixture_model
    automaton = FiniteLanguage(RECORD_TEXTS if language == "records" else SHORT_WORDS)
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
    automaton = FiniteLanguage(RECORD_TEXTS)
    masker = masks.TokenMasker(automaton, vocabulary_of(model, tokenizer))
    first = masker.mask(automaton.start).clone()
    brace = tokenizer("{", add_special_tokens=False).input_ids[0]
    state = masker.advance(automaton.start, brace)
    second = masker.mask(state).clone()
    calls = []
    monkeypatch.setattr(automaton, "step", lambda *a: calls.append(a) or automaton.DEAD)
    monkeypatch.setattr(automaton, "walk", lambda *a: calls.append(a) or automaton.DEAD)
    assert torch.equal(masker.mask(automaton.start), first) and torch.equal(masker.mask(state), second)
    assert masker.advance(automaton.start, brace) == state
    assert calls == [], "after a state's first step, its masks and next states come from the cache"
    assert masker.mask(state) is masker.mask(state), "the same cached tensor, not a new one each step"


@pytest.mark.points(1)
def test_tokens_with_the_same_bytes_and_lists_of_eos_ids(fixture_dir_tokenizer):
    """Two ids with the same bytes (an added token repeating a BPE piece) are both allowed; every id of a
    list of eos ids is allowed where the output is complete; an added token marked special has no bytes."""
    tokenizer = fixture_dir_tokenizer
    pieces = masks.token_bytes(tokenizer)
    word = next(p.decode() for p in pieces if p and len(p) >= 4 and p[:1] == b" " and p[1:].isalpha() and p.isascii())
    old_id = pieces.index(word.encode())
    tokenizer.add_tokens([word])
    new_id = tokenizer.convert_tokens_to_ids(word)
    vocabulary = masks.Vocabulary(tokenizer, len(tokenizer), eos_token_ids=[2, 5])
    masker = masks.TokenMasker(FiniteLanguage([word]), vocabulary)
    start = masker.mask(masker.automaton.start)
    assert start[old_id], "the word's own token must be allowed at the start"
    assert start[new_id], "the added token with the same bytes must be allowed too"
    assert new_id != old_id, "the added token must get a new id"
    done = masker.mask(masker.advance(masker.automaton.start, new_id))
    assert done[2], "every listed EOS id is allowed once the word is complete (id 2)"
    assert done[5], "every listed EOS id is allowed once the word is complete (id 5)"
    assert done.sum() == 2, "only the EOS ids are allowed once the word is complete"
    tokenizer.add_tokens([AddedToken("<|tool|>", special=True)])  # special, yet not in all_special_ids (Qwen's kind)
    tool_id = tokenizer.convert_tokens_to_ids("<|tool|>")
    assert masks.token_bytes(tokenizer)[tool_id] is None, \
        "an added token marked special (added_tokens_decoder) is None even when all_special_ids does not list it"


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_fixture_completions_validate(fixture_model, seed):
    """Greedy (seed None) and sampled completions of the trained fixture, through model.generate with the
    processor, are records of the language and validate against the schema."""
    model, tokenizer = fixture_model
    masker = masks.TokenMasker(FiniteLanguage(RECORD_TEXTS), vocabulary_of(model, tokenizer))
    prompt = tokenizer("Give me a user record as JSON: ", return_tensors="pt")
    processor = masks.ConstrainedLogitsProcessor(masker, prompt.input_ids.shape[1])
    if seed is not None:
        torch.manual_seed(seed)
    out = model.generate(**prompt, max_new_tokens=60, do_sample=seed is not None, temperature=1.5 if seed else None,
                         logits_processor=LogitsProcessorList([processor]), pad_token_id=tokenizer.pad_token_id)
    new = out[0, prompt.input_ids.shape[1]:].tolist()
    assert new[-1] == tokenizer.eos_token_id, "the fixture should finish a record within 60 tokens"
    text = tokenizer.decode(new, skip_special_tokens=True)
    assert text in RECORD_TEXTS
    check_json_completion(text, RECORD)


@pytest.mark.points(1)
def test_processor_handles_a_padded_batch(fixture_model):
    """Two prompts of different lengths, left-padded, in one sampled generate call: both rows are allowed
    words, even after one row has finished."""
    model, tokenizer = fixture_model
    masker = masks.TokenMasker(FiniteLanguage(YES_NO), vocabulary_of(model, tokenizer))
    batch = tokenizer(["Is it", "The capital of Japan is Tokyo. True?"], return_tensors="pt", padding=True)
    processor = masks.ConstrainedLogitsProcessor(masker, batch.input_ids.shape[1])
    scores = torch.zeros(2, model.config.vocab_size)
    masked = processor(batch.input_ids, scores)
    assert bool(torch.isinf(masked).any()), "the first step must forbid the tokens no word starts with"
    assert bool((scores == 0).all()), "the processor must return new scores, not write -inf into the caller's"
    narrow = masks.ConstrainedLogitsProcessor(masker, batch.input_ids.shape[1])
    cut = narrow(batch.input_ids, torch.zeros(2, model.config.vocab_size - 3))  # the hint: scores may be narrower
    assert cut.shape == (2, model.config.vocab_size - 3) and torch.equal(cut, masked[:, :-3])
    processor = masks.ConstrainedLogitsProcessor(masker, batch.input_ids.shape[1])
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=8, do_sample=True, logits_processor=LogitsProcessorList([processor]),
                         pad_token_id=tokenizer.pad_token_id)
    for row in out[:, batch.input_ids.shape[1]:]:
        assert tokenizer.decode(row, skip_special_tokens=True) in YES_NO


@pytest.mark.points(1.5)
@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURE_HEALTH)
@given(seed=st.integers(0, 10_000), greedy=st.booleans(), size=st.integers(1, 39))
def test_random_model_completions_are_in_the_language(random_model, seed, greedy, size):
    """Hypothesis: a random-weights model (eos a list of ids), greedy or sampled, over languages of multi-byte
    words: the completion ends with an eos id and is one of the words."""
    model, tokenizer = random_model
    words = SHORT_WORDS[-size:]
    masker = masks.TokenMasker(FiniteLanguage(words), vocabulary_of(model, tokenizer))
    prompt = tokenizer("Word:").input_ids
    out = masks.constrained_generate(model, masker, prompt, 30, temperature=0.0 if greedy else 1.0, seed=seed)
    assert out[-1] in model.generation_config.eos_token_id
    assert completion_text(tokenizer, prompt, out[:-1]) in words


@pytest.mark.points(2)
@settings(max_examples=10, deadline=None, suppress_health_check=FIXTURE_HEALTH)
@given(schema=schemas(depth=1), seed=st.integers(0, 10_000), greedy=st.booleans())
def test_random_model_schema_completions_validate(random_model, schema, seed, greedy):
    """Hypothesis, with task 1's compiler: any generated schema, greedy or sampled: the completion ends with
    eos and validates (jsonschema)."""
    model, tokenizer = random_model
    masker = masks.TokenMasker(grammar.compile_json_schema(schema), vocabulary_of(model, tokenizer))
    prompt = tokenizer("JSON:").input_ids
    out = masks.constrained_generate(model, masker, prompt, 300, temperature=0.0 if greedy else 1.0, seed=seed)
    assert out[-1] in model.generation_config.eos_token_id
    check_json_completion(completion_text(tokenizer, prompt, out[:-1]), schema)


@pytest.mark.points(0.5)
def test_eos_only_where_complete_and_refused_tokens(fixture_model):
    """Eos is allowed exactly in accepting states; advancing by a refused token is a ValueError; after eos
    nothing is allowed."""
    model, tokenizer = fixture_model
    masker = masks.TokenMasker(FiniteLanguage(["a", "ab"]), vocabulary_of(model, tokenizer))
    eos = tokenizer.eos_token_id
    a_id = tokenizer("a", add_special_tokens=False).input_ids
    assert not masker.mask(masker.automaton.start)[eos]
    state = masker.walk(a_id)
    assert masker.mask(state)[eos]
    with pytest.raises(ValueError, match="not allowed"):
        masker.advance(masker.automaton.start, eos)
    refused = tokenizer("b", add_special_tokens=False).input_ids[0]  # 'b' cannot start "a" or "ab"
    assert not masker.mask(masker.automaton.start)[refused]
    with pytest.raises(ValueError, match="not allowed") as error:
        masker.advance(masker.automaton.start, refused)
    assert str(refused) in str(error.value) and str(masker.automaton.start) in str(error.value), (
        "the error names both the token and the state (the docstring)")
    finished = masker.advance(state, eos)
    assert not masker.mask(finished).any()
    with pytest.raises(ValueError, match="not allowed"):
        masker.advance(finished, a_id[0])


@pytest.mark.points(0.5)
def test_bad_arguments_fail_before_the_model_runs(fixture_model):
    """Empty prompt, max_new_tokens < 1 and a negative temperature raise ValueError naming the argument."""
    model, tokenizer = fixture_model
    masker = masks.TokenMasker(FiniteLanguage(YES_NO), vocabulary_of(model, tokenizer))
    masker.mask(masker.automaton.start)
    for kwargs, named in [({"prompt_ids": []}, "prompt_ids"), ({"max_new_tokens": 0}, "max_new_tokens"),
                          ({"temperature": -1.0}, "temperature")]:
        call = {"prompt_ids": [1, 50], "max_new_tokens": 4, **kwargs}
        with pytest.raises(ValueError, match=named):
            masks.constrained_generate(model, masker, **call)
    assert json.loads("1") == 1
