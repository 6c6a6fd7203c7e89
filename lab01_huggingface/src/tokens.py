# Student skeleton for lab01_huggingface: fill in each TODO, then run `course test lab01_huggingface`.
# (Generated from the reference solution by `course stubs`.)
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
    # TODO(lab01 task 2): the token ids of text, with or without the special tokens the model expects (README task 2; transformers 'Summary of the tokenizers').
    raise NotImplementedError("lab01 task 2: encode is not written yet (see lab01_huggingface/README.md, task 2)")


def decode(tokenizer: PreTrainedTokenizerBase, token_ids: list[int], skip_special_tokens: bool = True) -> str:
    """Text of ``token_ids``; special tokens (bos, eos, pad, chat markers) are dropped unless
    ``skip_special_tokens`` is False."""
    # TODO(lab01 task 2): the text of token ids, special tokens dropped unless asked for (README task 2).
    raise NotImplementedError("lab01 task 2: decode is not written yet (see lab01_huggingface/README.md, task 2)")


def count_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """How many tokens ``text`` costs as a prompt, special tokens included."""
    # TODO(lab01 task 2): how many tokens text costs as a prompt, as the model sees it (README task 2).
    raise NotImplementedError("lab01 task 2: count_tokens is not written yet (see lab01_huggingface/README.md, task 2)")


def token_pieces(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """The readable piece of text each token of ``text`` stands for (no special tokens).

    For a byte-level BPE, one character may span several tokens (an emoji is four bytes); each of
    those pieces is shown as the tokenizer's own token string (``convert_ids_to_tokens``), which
    keeps the byte-level alphabet (``Ġ`` for a space) instead of a broken character.
    """
    # TODO(lab01 task 2): the tokenizer's own piece for each token of text, special tokens left out (README task 2; the docstring).
    raise NotImplementedError("lab01 task 2: token_pieces is not written yet (see lab01_huggingface/README.md, task 2)")


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
    # TODO(lab01 task 2): the prompt text of a chat, rendered by the tokenizer's chat template; a bad message or a missing template refused as the docstring says (README task 2; transformers 'Chat templates').
    raise NotImplementedError("lab01 task 2: chat_prompt is not written yet (see lab01_huggingface/README.md, task 2)")


def chat_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]],
             add_generation_prompt: bool = True) -> list[int]:
    """Token ids of :func:`chat_prompt`. The template already holds the special tokens (bos and
    the role markers), so none may be added again."""
    # TODO(lab01 task 2): the token ids of the rendered chat, each special token exactly once (README task 2; the docstring).
    raise NotImplementedError("lab01 task 2: chat_ids is not written yet (see lab01_huggingface/README.md, task 2)")
