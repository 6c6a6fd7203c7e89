"""Incremental detokenization: the text of each new token, computed once, in the context before it.

Given code (no task). A stream must never take back text it has sent, and decoding the whole
output again at every step breaks that as well as costing O(n) per token: a byte-fallback
tokenizer (Llama 2's SentencePiece) spells a rare character as several byte tokens, and until the
last of them arrives the decoded text ends in U+FFFD, which the next token then replaces.

So, as vLLM's detokenizer does (through the tokenizers library's ``DecodeStream``; TGI does the
same), keep two offsets into the sequence's token ids, ``prefix_offset <= read_offset``: the text
sent so far ends with the text of the window ``[prefix_offset, read_offset)``. For each new token,
decode the window once without it and once with it. If the window's text grew and does not end in
U+FFFD (an incomplete character), send the difference and move the window to the tokens just sent.
Otherwise send nothing and wait: the tokens stay in the window until the character they start is
complete. A sequence that finishes in the middle of a character never sends those bytes.

Two details follow vLLM exactly. The window starts at the prompt, so the first output token is
spelled in context: a SentencePiece word-start token keeps its space (``"▁Paris"`` -> ``" Paris"``),
where ``tokenizer.decode(output_ids)`` alone would drop it. And when the grown text does not start
with the text already sent (byte-fallback bytes that read differently once more arrive), vLLM
restarts the window at the new token, without context, dropping the bytes still waiting: so does
this. Lengths are compared in UTF-8 bytes, as ``DecodeStream`` compares them.

Readings: vLLM's ``vllm/v1/engine/detokenizer.py`` (``BaseIncrementalDetokenizer.update``) and
``detokenize_incrementally`` in ``vllm/tokenizers/detokenizer_utils.py``; the tokenizers library's
``tokenizers.decoders.DecodeStream``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INCOMPLETE = "\ufffd"  # what a decoder writes for bytes that are not (yet) a whole character


@dataclass
class IncrementalDetokenizer:
    """One sequence's detokenization state.

    Attributes:
        tokenizer: the model's (transformers) tokenizer; special tokens are skipped.
        prefix_offset, read_offset: the window's start, and where the text sent so far ends, as
            indices into the sequence's token ids (prompt included).
        num_tokens: how many of the sequence's token ids have been seen.
    """

    tokenizer: Any
    prefix_offset: int
    read_offset: int
    num_tokens: int

    @classmethod
    def after_prompt(cls, tokenizer: Any, num_prompt_tokens: int) -> IncrementalDetokenizer:
        """A detokenizer whose output starts after ``num_prompt_tokens`` prompt tokens."""
        return cls(tokenizer, 0, num_prompt_tokens, num_prompt_tokens)

    def decode_new(self, token_ids: list[int]) -> str:
        """The text that the tokens not seen yet add, one token at a time.

        Args:
            token_ids: the sequence's token ids so far, prompt included (only ever appended to).

        Returns:
            New text to append to what was sent, possibly ``""`` (the new tokens end in an
            incomplete character, or are special tokens).
        """
        pieces = [self._step(token_ids, end) for end in range(self.num_tokens + 1, len(token_ids) + 1)]
        self.num_tokens = max(self.num_tokens, len(token_ids))
        return "".join(pieces)

    def _step(self, token_ids: list[int], end: int) -> str:
        """Token ``end - 1`` arrives: the text it completes, if any."""
        before = self._decode(token_ids[self.prefix_offset:self.read_offset])
        after = self._decode(token_ids[self.prefix_offset:end])
        if len(after.encode()) <= len(before.encode()) or after.endswith(INCOMPLETE):
            return ""
        if not after.startswith(before):  # the sent text would change: restart at this token, as vLLM
            self.prefix_offset = self.read_offset = end - 1
            return self._step(token_ids, end)
        self.prefix_offset, self.read_offset = self.read_offset, end
        return after[len(before):]

    def _decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
