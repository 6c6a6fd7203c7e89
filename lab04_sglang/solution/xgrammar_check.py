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
    # BEGIN SOLUTION task 3: xgrammar's compiled grammar for the same schema (canonical separators unless any_whitespace) or regex, for this tokenizer and logits width (README task 3; xgrammar docs 'Tokenizer info', 'JSON schema').
    # HINT task 3 level 1: task 3 checks task 2 against a production engine: the same constraint compiled by
    #   xgrammar, walked along the same completion, and the allowed sets compared step by step. Reading: README
    #   task 3 (its table of the expected differences), xgrammar's docs ('Tokenizer info', 'JSON schema',
    #   'GrammarMatcher') and the xgrammar paper §3.1-3.2. Read the installed xgrammar's signatures rather than
    #   guessing them.
    # HINT task 3 level 2: exactly one of json_schema and regex (a ValueError otherwise). The
    #   TokenizerInfo must know the model's vocab_size (the logits width, which may exceed the tokenizer's).
    #   Without any_whitespace, pin the separators to task 1's canonical ', ' and ': '. A dict schema is passed
    #   as JSON text.
    import xgrammar

    if (json_schema is None) == (regex is None):
        raise ValueError("give exactly one of json_schema and regex")
    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
    compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)
    if regex is not None:
        return compiler.compile_regex(regex)
    text = json_schema if isinstance(json_schema, str) else json.dumps(json_schema)
    separators = None if any_whitespace else (", ", ": ")
    return compiler.compile_json_schema(text, any_whitespace=any_whitespace, separators=separators)
    # END SOLUTION


def bitmask_to_set(bitmask: torch.Tensor, vocab_size: int) -> set[int]:
    """The token ids whose bit is set in xgrammar's ``(1, words)`` int32 bitmask."""
    # BEGIN SOLUTION task 3: the token ids whose bit is set in xgrammar's int32 bitmask (README task 3; xgrammar's bitmask layout).
    # HINT task 3 level 2: token i is bit i % 32 of word i // 32, counted from the least significant
    #   bit. The words are signed int32 (bit 31 makes a word negative): shift right by i % 32 and keep the
    #   low bit (& 1), which reads bit i % 32 whatever the sign. Ids at or past vocab_size are padding bits.
    words = bitmask[0].to(torch.int64) & 0xFFFFFFFF
    bits = (words[:, None] >> torch.arange(32)) & 1
    ids = torch.nonzero(bits.flatten()).flatten()
    return {int(i) for i in ids if i < vocab_size}
    # END SOLUTION


def xgrammar_allowed(compiled: Any, token_ids: list[int], vocab_size: int) -> list[set[int]]:
    """xgrammar's allowed tokens before each token of ``token_ids`` and after the last one.

    Returns ``len(token_ids) + 1`` sets (fewer if xgrammar refuses a token: the list then ends
    with the set in which it was refused, so the caller can see what it allowed instead)."""
    # BEGIN SOLUTION task 3: xgrammar's allowed set before each token of a completion and after the last, ending early where xgrammar refuses a token (README task 3; the docstring).
    # HINT task 3 level 2: a fresh matcher per completion; fill the bitmask before accepting
    #   each token. A refused token ends the list with the set it was refused in. After the last token, a
    #   terminated matcher (it accepted eos) allows nothing: the empty set, as task 2's FINISHED mask.
    import xgrammar

    matcher = xgrammar.GrammarMatcher(compiled)
    bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)
    steps: list[set[int]] = []
    for token_id in token_ids:
        matcher.fill_next_token_bitmask(bitmask)
        steps.append(bitmask_to_set(bitmask, vocab_size))
        if not matcher.accept_token(token_id):
            return steps
    if matcher.is_terminated():
        steps.append(set())
    else:
        matcher.fill_next_token_bitmask(bitmask)
        steps.append(bitmask_to_set(bitmask, vocab_size))
    return steps
    # END SOLUTION


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
    # BEGIN SOLUTION task 3: a StepDifference for each step where the two engines' allowed sets differ (README task 3).
    # HINT task 3 level 2: the two lists must cover the same steps: lengths that differ are a
    #   ValueError giving both. Steps where the sets are equal produce nothing.
    if len(ours) != len(theirs):
        raise ValueError(f"ours has {len(ours)} steps but theirs has {len(theirs)}")
    return [StepDifference(step, a - b, b - a) for step, (a, b) in enumerate(zip(ours, theirs, strict=True))
            if a != b]
    # END SOLUTION


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
    # BEGIN SOLUTION task 3: which category of README task 3's table explains a token allowed by one engine only, from where in the JSON it comes (README task 3).
    # HINT task 3 level 2: read the table in README task 3 row by row: special tokens first; then
    #   whether the text so far ends inside a string (inside_string is given): an escape or a raw control byte
    #   there; outside strings, whitespace where canonical JSON has one fixed space (right after ':' or ',') or
    #   none. Anything else is UNEXPLAINED (the test wants none).
    if token_id in special_ids:
        return SPECIAL_TOKEN
    data = vocabulary.pieces[token_id] or b""
    if inside_string(text_so_far):
        if b"\\" in data:
            return ESCAPE
        if any(b < 0x20 for b in data):
            return CONTROL_CHARACTER
        return UNEXPLAINED
    if data[:1] in (b" ", b"\t", b"\n", b"\r") or text_so_far.endswith((b":", b",")):
        return WHITESPACE
    return UNEXPLAINED
    # END SOLUTION
