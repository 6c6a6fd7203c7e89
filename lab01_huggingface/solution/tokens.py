"""Task 2: tokens and chat templates.

A model sees token ids, never text. This task makes the round trip explicit: text to ids
(with the special tokens the model expects), ids back to text, and a chat (a list of messages)
to the exact prompt string the model was trained on, through the tokenizer's chat template.

Readings: the tokenizers summary and "Chat templates" pages of the transformers docs.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from shared.validation import check_not_empty

ROLES = ("system", "user", "assistant")


def encode(tokenizer: PreTrainedTokenizerBase, text: str, add_special_tokens: bool = True) -> list[int]:
    """Token ids of ``text``; with ``add_special_tokens`` the tokenizer adds what the model
    expects around a document (a bos token for Llama-style models)."""
    # BEGIN SOLUTION task 2: the token ids of text, with or without the special tokens the model expects (README task 2; transformers 'Summary of the tokenizers').
    # HINT task 2 level 1: each function of task 2 is a short, exact use of the tokenizer's own API; the work
    #   is knowing which call adds special tokens, which drops them, and what a chat template
    #   renders. Reading: "Summary of the tokenizers" and "Chat templates" in the transformers docs;
    #   try each call on the fixture tokenizer in a Python shell first.
    # HINT task 2 level 2: encode returns a plain list of ints (not a BatchEncoding, not a tensor), and
    #   count_tokens counts what the model sees as a prompt, special tokens included. token_pieces
    #   shows the tokenizer's own token strings (its byte-level alphabet, such as the marker for a
    #   space), not decoded text, and no special tokens.
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    # END SOLUTION


def decode(tokenizer: PreTrainedTokenizerBase, token_ids: list[int], skip_special_tokens: bool = True) -> str:
    """Text of ``token_ids``; special tokens (bos, eos, pad, chat markers) are dropped unless
    ``skip_special_tokens`` is False."""
    # BEGIN SOLUTION task 2: the text of token ids, special tokens dropped unless asked for (README task 2).
    return tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)
    # END SOLUTION


def count_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """How many tokens ``text`` costs as a prompt, special tokens included."""
    # BEGIN SOLUTION task 2: how many tokens text costs as a prompt, as the model sees it (README task 2).
    return len(encode(tokenizer, text))
    # END SOLUTION


def token_pieces(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """The readable piece of text each token of ``text`` stands for (no special tokens).

    For a byte-level BPE, one character may span several tokens (an emoji is four bytes); each of
    those pieces is shown as the tokenizer's own token string (``convert_ids_to_tokens``), which
    keeps the byte-level alphabet (``Ġ`` for a space) instead of a broken character.
    """
    # BEGIN SOLUTION task 2: the tokenizer's own piece for each token of text, special tokens left out (README task 2; the docstring).
    return tokenizer.convert_ids_to_tokens(encode(tokenizer, text, add_special_tokens=False))
    # END SOLUTION


def chat_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]],
                add_generation_prompt: bool = True) -> str:
    """The prompt text for a chat, rendered by the tokenizer's chat template.

    Args:
        messages: ``[{"role": "system" | "user" | "assistant", "content": str}, ...]``.
        add_generation_prompt: end with the marker that starts the assistant's turn, so the
            model's continuation is its answer.

    Raises:
        ValueError: ``messages`` is empty, a message lacks ``role`` or ``content``, a role is not one
            of ``system``, ``user``, ``assistant``, or the tokenizer has no chat template.
    """
    # BEGIN SOLUTION task 2: the prompt text of a chat, rendered by the tokenizer's chat template; a bad message or a missing template refused as the docstring says (README task 2; transformers 'Chat templates').
    # HINT task 2 level 2: chat_prompt checks every message before rendering and names a bad one by its index
    #   (messages[2]) in a ValueError; a tokenizer without a chat template is a ValueError of yours
    #   too, not transformers' own error.
    # HINT task 2 level 3: chat_prompt renders to text, not ids; add_generation_prompt goes to the template
    #   unchanged (it appends the marker that opens the assistant's turn).
    check_not_empty("messages", messages)
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"messages[{index}] must be a dict with 'role' and 'content', got {message!r}")
        if message["role"] not in ROLES:
            raise ValueError(f"messages[{index}]['role'] must be one of {', '.join(ROLES)}, "
                             f"got {message['role']!r}")
    if not tokenizer.chat_template:
        raise ValueError("this tokenizer has no chat template (tokenizer.chat_template is empty)")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    # END SOLUTION


def chat_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]],
             add_generation_prompt: bool = True) -> list[int]:
    """Token ids of :func:`chat_prompt`. The template already holds the special tokens (bos and
    the role markers), so none may be added again."""
    # BEGIN SOLUTION task 2: the token ids of the rendered chat, each special token exactly once (README task 2; the docstring).
    # HINT task 2 level 3: the rendered template already starts with bos and holds the role
    #   markers, so encoding it must add no special token, or the model sees bos twice.
    return encode(tokenizer, chat_prompt(tokenizer, messages, add_generation_prompt), add_special_tokens=False)
    # END SOLUTION
