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
        # BEGIN SOLUTION task 6: the new text that no later token can change, never a broken character, so that all deltas join to the full decode (README task 6; transformers' TextStreamer).
        # HINT task 6 level 1: decoding a prefix of the ids need not give a prefix of the final text: a
        #   byte-level token may end inside a character, and a byte-fallback tokenizer turns a run of byte
        #   tokens back into U+FFFD until the character completes. So return only text that cannot change any
        #   more. Reading: README task 6 (its 'naïve 👋' example), transformers' generation/streamers.py
        #   (TextStreamer holds back the last word), and vLLM's incremental detokenizer.
        # HINT task 6 level 2: decode all ids so far each time (simple and correct; vLLM keeps a window to
        #   avoid it). Everything up to and including the last space is settled; what follows may still change.
        #   emitted_chars counts what you returned already: return only what is settled beyond it, and '' when
        #   nothing is. Do not flush at a newline: a byte-fallback newline can turn back too.
        # HINT task 6 level 3: append the id; decode with skip_special_tokens as configured; settled = the
        #   index just past the last space (0 without one); if it is not beyond emitted_chars return ''; else
        #   return text from emitted_chars to settled and move emitted_chars there.
        self.token_ids.append(int(token_id))
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=self.skip_special_tokens)
        settled = text.rfind(" ") + 1  # 0 when there is no space yet
        if settled <= self.emitted_chars:
            return ""
        delta = text[self.emitted_chars:settled]
        self.emitted_chars = settled
        return delta
        # END SOLUTION

    def flush(self) -> str:
        """The text still held back at the end of generation (possibly with U+FFFD, if the model
        stopped inside a character)."""
        # BEGIN SOLUTION task 6: at the end of generation, everything not returned yet, U+FFFD included if the model stopped inside a character (README task 6).
        # HINT task 6 level 2: the joined deltas must equal tokenizer.decode of all ids exactly, so flush
        #   returns the rest of the full decode as it is, broken character and all.
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=self.skip_special_tokens)
        delta = text[self.emitted_chars:]
        self.emitted_chars = len(text)
        return delta
        # END SOLUTION


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
