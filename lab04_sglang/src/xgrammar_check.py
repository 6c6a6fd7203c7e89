# Student skeleton for lab04_sglang: fill in each TODO, then run `course test lab04_sglang`.
# (Generated from the reference solution by `course stubs`.)
"""Task 3: your masks against a production grammar engine, step by step.

xgrammar is the default structured-output backend of SGLang and vLLM. Given the same schema and
tokenizer, at each step of a completion it answers the same question as ``TokenMasker.mask``:
which tokens may come next. Where the two answers differ, the difference must be explained by a
*choice* (whitespace, how strings and special tokens are treated), never by a bug.

xgrammar's API (0.2.x): ``TokenizerInfo.from_huggingface(tokenizer, vocab_size=...)``;
``GrammarCompiler(info).compile_json_schema(schema, any_whitespace=..., separators=...)`` or
``.compile_regex(pattern)``; ``GrammarMatcher(compiled)`` with ``fill_next_token_bitmask(bitmask)``
(a ``(1, ceil(vocab / 32))`` int32 tensor from ``allocate_token_bitmask``: bit ``i % 32`` of word
``i // 32`` is token ``i``), ``accept_token(id)`` and ``is_terminated()``.

With ``any_whitespace=False`` and ``separators=(", ", ": ")`` xgrammar writes the same canonical
JSON as task 1; the differences that remain on the course fixture are listed in the README.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from .masks import TokenMasker, Vocabulary

#: Why a token may be allowed by one engine and not the other.
SPECIAL_TOKEN = "special token"  # xgrammar lets a special token's text (e.g. '<pad>') into a string
CONTROL_CHARACTER = "control character"  # a raw byte below 0x20 inside a string
ESCAPE = "escape in a length-bounded string"  # xgrammar's bounded-string rule has no escapes
WHITESPACE = "whitespace"  # flexible whitespace between JSON tokens (any_whitespace=True)
UNEXPLAINED = "unexplained"
CATEGORIES = (SPECIAL_TOKEN, CONTROL_CHARACTER, ESCAPE, WHITESPACE, UNEXPLAINED)


@dataclass
class StepDifference:
    """At ``step`` (before the step-th generated token), tokens allowed by only one engine."""

    step: int
    only_ours: set[int]
    only_xgrammar: set[int]


def xgrammar_compiled(tokenizer: Any, vocab_size: int, json_schema: Any = None, regex: str | None = None,
                      any_whitespace: bool = False) -> Any:
    """xgrammar's compiled grammar for a JSON schema (canonical separators) or a regex.

    Args:
        tokenizer: the Hugging Face tokenizer; vocab_size: the model's logits width.
        json_schema: a dict or JSON text; regex: a pattern (exactly one of the two).
        any_whitespace: let xgrammar accept any whitespace between JSON tokens (its default);
            False pins it to ``", "`` and ``": "`` like task 1.
    """
    # TODO(lab04 task 3): xgrammar's compiled grammar for the same schema (canonical separators unless any_whitespace) or regex, for this tokenizer and logits width (README task 3; xgrammar docs 'Tokenizer info', 'JSON schema').
    raise NotImplementedError("lab04 task 3: xgrammar_compiled is not written yet (see lab04_sglang/README.md, task 3)")


def bitmask_to_set(bitmask: torch.Tensor, vocab_size: int) -> set[int]:
    """The token ids whose bit is set in xgrammar's ``(1, words)`` int32 bitmask."""
    # TODO(lab04 task 3): the token ids whose bit is set in xgrammar's int32 bitmask (README task 3; xgrammar's bitmask layout).
    raise NotImplementedError("lab04 task 3: bitmask_to_set is not written yet (see lab04_sglang/README.md, task 3)")


def xgrammar_allowed(compiled: Any, token_ids: list[int], vocab_size: int) -> list[set[int]]:
    """xgrammar's allowed tokens before each token of ``token_ids`` and after the last one.

    Returns ``len(token_ids) + 1`` sets (fewer if xgrammar refuses a token: the list then ends
    with the set in which it was refused, so the caller can see what it allowed instead)."""
    # TODO(lab04 task 3): xgrammar's allowed set before each token of a completion and after the last, ending early where xgrammar refuses a token (README task 3; the docstring).
    raise NotImplementedError("lab04 task 3: xgrammar_allowed is not written yet (see lab04_sglang/README.md, task 3)")


def ours_allowed(masker: TokenMasker, token_ids: list[int]) -> list[set[int]]:
    """Task 2's allowed tokens at the same steps as ``xgrammar_allowed``."""
    state, steps = masker.automaton.start, []
    for token_id in token_ids:
        steps.append({int(i) for i in torch.nonzero(masker.mask(state)).flatten()})
        state = masker.advance(state, token_id)
    steps.append({int(i) for i in torch.nonzero(masker.mask(state)).flatten()})
    return steps


def compare(ours: list[set[int]], theirs: list[set[int]]) -> list[StepDifference]:
    """One ``StepDifference`` per step where the two sets differ (steps in order)."""
    # TODO(lab04 task 3): a StepDifference for each step where the two engines' allowed sets differ (README task 3).
    raise NotImplementedError("lab04 task 3: compare is not written yet (see lab04_sglang/README.md, task 3)")


def inside_string(text: bytes) -> bool:
    """Whether JSON ``text`` ends inside a string: an odd number of unescaped quotes so far."""
    inside, escaped = False, False
    for byte in text:
        if escaped:
            escaped = False
        elif inside and byte == 0x5C:  # a backslash escapes the next byte
            escaped = True
        elif byte == 0x22:
            inside = not inside
    return inside


def explain(token_id: int, vocabulary: Vocabulary, special_ids: set[int], text_so_far: bytes) -> str:
    """Which of ``CATEGORIES`` explains a token allowed by one engine only, after ``text_so_far``.

    Args:
        token_id: the token; vocabulary: its bytes (``vocabulary.pieces``);
        special_ids: the tokenizer's special ids (``tokenizer.all_special_ids`` and added ones);
        text_so_far: the completion's bytes before this step (where in the JSON we are).
    """
    # TODO(lab04 task 3): which category of README task 3's table explains a token allowed by one engine only, from where in the JSON it comes (README task 3).
    raise NotImplementedError("lab04 task 3: explain is not written yet (see lab04_sglang/README.md, task 3)")
