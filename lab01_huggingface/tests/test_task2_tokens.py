"""Task 2: tokens, special tokens and the chat template."""

import copy

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .helpers import tokens

pytestmark = pytest.mark.task(2)

TEXTS = ["Hello, world!", '{"name": "user109", "age": 25}', "Tabs\tand  double  spaces\n",
         "Café crème à Paris", "東京は大きい都市です。", "I love pizza 🍕!", ""]
CHAT = [{"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"}]


def _no_special(tokenizer, text: str) -> bool:
    return not any(special in text for special in tokenizer.all_special_tokens)


@pytest.mark.points(2)
@pytest.mark.parametrize("text", TEXTS)
def test_encode_and_count_match_the_tokenizer(tokenizer, text):
    """encode / count_tokens agree with calling the tokenizer, with and without special tokens."""
    assert tokens.encode(tokenizer, text) == tokenizer(text).input_ids
    plain = tokenizer(text, add_special_tokens=False).input_ids
    assert tokens.encode(tokenizer, text, add_special_tokens=False) == plain
    assert tokens.count_tokens(tokenizer, text) == len(tokenizer(text).input_ids)


@pytest.mark.points(2)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
@example(text=" ")
@example(text="a  b\n\tc 👋🏽")
def test_decode_round_trips_any_text(tokenizer, text):
    """decode(encode(text)) gives back what the tokenizer's own round trip gives, special tokens
    skipped or kept (a property, checked by Hypothesis). That is the text itself for a byte-level BPE;
    a SentencePiece tokenizer (Llama 2) gives " " back as "" (its decoder drops the leading space)."""
    if not _no_special(tokenizer, text):
        return
    own_round_trip = tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True)
    assert tokens.decode(tokenizer, tokens.encode(tokenizer, text)) == own_round_trip
    with_special = tokens.decode(tokenizer, tokens.encode(tokenizer, text), skip_special_tokens=False)
    assert with_special == tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=False)


@pytest.mark.points(1)
@pytest.mark.parametrize("text", TEXTS[:-1])
def test_token_pieces_spell_the_text(tokenizer, text):
    """token_pieces gives one piece per token (no special tokens) that together spell the text."""
    pieces = tokens.token_pieces(tokenizer, text)
    assert len(pieces) == len(tokenizer(text, add_special_tokens=False).input_ids)
    assert tokenizer.convert_tokens_to_string(pieces) == text


@pytest.mark.points(2)
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_chat_prompt_and_ids_follow_the_template(tokenizer, generation_prompt):
    """chat_prompt renders the tokenizer's chat template; chat_ids holds bos exactly once."""
    if not tokenizer.chat_template:
        pytest.skip("this tokenizer has no chat template (a base model's, such as GPT-2 or Llama 2): "
                    "there is nothing to render; the refusal is checked by test_chat_prompt_rejects_bad_messages")
    expected = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=generation_prompt)
    assert tokens.chat_prompt(tokenizer, CHAT, add_generation_prompt=generation_prompt) == expected
    ids = tokens.chat_ids(tokenizer, CHAT, add_generation_prompt=generation_prompt)
    oracle = tokenizer.apply_chat_template(CHAT, tokenize=True, add_generation_prompt=generation_prompt,
                                           return_dict=True)["input_ids"]
    assert ids == list(oracle)
    if tokenizer.bos_token_id is not None:
        assert ids.count(tokenizer.bos_token_id) <= 1, "bos added twice: the template already has it"


@pytest.mark.points(1)
def test_chat_prompt_rejects_bad_messages(tokenizer):
    """Bad chats raise ValueError naming the problem: empty, missing content, unknown role, no template."""
    with pytest.raises(ValueError, match="messages"):
        tokens.chat_prompt(tokenizer, [])
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        tokens.chat_prompt(tokenizer, [CHAT[0], {"role": "user"}])
    with pytest.raises(ValueError, match="robot"):
        tokens.chat_prompt(tokenizer, [{"role": "robot", "content": "beep"}])
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        tokens.chat_prompt(plain, CHAT)
