# Student skeleton for lab01_huggingface: fill in each TODO, then run `course test lab01_huggingface`.
# (Generated from the reference solution by `course stubs`.)
"""Task 6: streaming text as it is generated.

A chat UI shows tokens as they come, so the first words appear after the time to first token,
not after the whole answer. Turning token ids into text piece by piece has one trap: with a
byte-level tokenizer a character such as an emoji (4 bytes in UTF-8) spans several tokens, and
decoding only some of them gives the replacement character U+FFFD. A second trap hides in
SentencePiece tokenizers with *byte fallback* (Llama 2, Mistral): a character missing from the
vocabulary is spelled as byte tokens (``<0xF0>`` ...), and the decoder turns a whole run of byte
tokens into U+FFFD as soon as the run holds one unfinished character, so text already decoded
("naïve 👋", or a newline ``<0x0A>``) turns back into U+FFFD when the next byte token arrives:
decoding a prefix of the ids need not give a prefix of the final text. An incremental
detokenizer therefore holds back the text that may still change, as transformers' ``TextStreamer``
does with words: everything after the last space (a space is never part of a multi-byte character,
and a SentencePiece tokenizer writes it as the ``▁`` token, not as a byte token). ``TextStreamer``
also flushes at a newline, which byte fallback can take back (``<0x0A>`` is a byte token).

Readings: transformers' ``generation/streamers.py`` (``BaseStreamer``, ``TextIteratorStreamer``);
vLLM's ``detokenize_incrementally``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from shared.validation import check_at_least, check_not_empty

REPLACEMENT_CHARACTER = "\ufffd"


class IncrementalDetokenizer:
    """Turns token ids, pushed one at a time, into text deltas that never split a character.

    Joining every delta from :meth:`push` and the final :meth:`flush` gives exactly
    ``tokenizer.decode(all_ids, skip_special_tokens=...)``, for byte-level BPE and byte-fallback
    SentencePiece tokenizers alike: a delta is only returned once no later token can change it.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, skip_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.token_ids: list[int] = []
        self.emitted_chars = 0  # how much of the decoded text has been returned already

    def push(self, token_id: int) -> str:
        """Add one token; return the new text that can no longer change: everything up to the last
        space not returned yet (``""`` while the last word may still change)."""
        # TODO(lab01 task 6): the new text that no later token can change, never a broken character, so that all deltas join to the full decode (README task 6; transformers' TextStreamer).
        raise NotImplementedError("lab01 task 6: push is not written yet (see lab01_huggingface/README.md, task 6)")

    def flush(self) -> str:
        """The text still held back at the end of generation (possibly with U+FFFD, if the model
        stopped inside a character)."""
        # TODO(lab01 task 6): at the end of generation, everything not returned yet, U+FFFD included if the model stopped inside a character (README task 6).
        raise NotImplementedError("lab01 task 6: flush is not written yet (see lab01_huggingface/README.md, task 6)")


@dataclass
class StreamChunk:
    text: str
    seconds: float  # since the call to stream_generate


class _TokenQueue(BaseStreamer):
    """Receives token ids from ``model.generate`` (in its thread) and queues them (given)."""

    def __init__(self) -> None:
        self.tokens: queue.Queue[int | None] = queue.Queue()
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first sends the whole prompt
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.tokens.put(int(token))

    def end(self) -> None:
        self.tokens.put(None)


def stream_generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt_ids: list[int],
                    max_new_tokens: int, **generate_kwargs: object) -> Iterator[StreamChunk]:
    """Greedy generation that yields text as it is produced (given: it uses your detokenizer).

    ``model.generate`` runs in a thread and hands each new token id to a streamer; this
    generator turns them into text with :class:`IncrementalDetokenizer` and yields every non-empty
    delta with the time since the call.
    """
    check_not_empty("prompt_ids", prompt_ids)
    check_at_least("max_new_tokens", max_new_tokens, 1)
    started = time.perf_counter()
    streamer = _TokenQueue()
    detokenizer = IncrementalDetokenizer(tokenizer)
    inputs = torch.tensor([prompt_ids], device=model.device)
    kwargs = {"do_sample": False, **generate_kwargs}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.no_grad():
                model.generate(inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=max_new_tokens,
                               streamer=streamer, pad_token_id=tokenizer.pad_token_id, **kwargs)
        except BaseException as error:  # surfaced in the caller's thread below
            errors.append(error)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while (token := streamer.tokens.get()) is not None:
        if text := detokenizer.push(token):
            yield StreamChunk(text, time.perf_counter() - started)
    worker.join()
    if errors:
        raise errors[0]
    if rest := detokenizer.flush():
        yield StreamChunk(rest, time.perf_counter() - started)
