"""Task 2: from an automaton over bytes to a mask over the vocabulary, at every decoding step.

The model chooses tokens, not bytes. In an automaton state, a token is allowed when all of its
bytes can be read one after another without reaching ``DEAD``; the state after its last byte is
where decoding continues. Eos is allowed only in an accepting state: the output is complete.

Walking all ``V`` tokens at every step would cost ``V × bytes`` steps per token generated, so:
- the vocabulary is stored as a **trie** of token bytes, and one depth-first walk per state
  visits each shared prefix once and drops a whole subtree as soon as a byte is refused
  (in a state that allows only digits, almost every subtree dies at its first byte);
- the result for a state (the mask and each token's next state) is **cached**: a decode loop
  reaches the same few states again and again, so after a warm-up a step costs one dict look-up
  and one ``masked_fill``. (xgrammar goes further: it precomputes the tokens whose answer does not
  depend on the stack, the "adaptive token mask cache".)

Readings: the outlines paper (Willard & Louf 2023), section 3 (indexing the vocabulary);
xgrammar's paper (Dong et al. 2024), sections 3.1–3.2; transformers' ``LogitsProcessor``.
"""

from __future__ import annotations

import random
import re
from typing import Any

import torch
from transformers import LogitsProcessor, PreTrainedModel

from shared.validation import check_at_least, check_not_empty

from .grammar import Automaton

BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
SENTENCEPIECE_SPACE = "\u2581"


def gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet reversed: the printable character that stands for each byte.

    Byte-level BPE writes every byte as a printable character (space is 'Ġ', newline 'Ċ', the
    byte 0xF0 'ð'...), so a token's string is its bytes in disguise."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def is_byte_level(tokenizer: Any) -> bool:
    """Whether a (fast) tokenizer is byte-level BPE (GPT-2, Llama 3, Qwen, the course fixture)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in str(backend.decoder)


def token_bytes(tokenizer: Any, vocab_size: int | None = None) -> list[bytes | None]:
    """The bytes each token id stands for; None for ids that must never be generated freely.

    Args:
        tokenizer: a Hugging Face tokenizer: byte-level BPE (pieces in GPT-2's alphabet), or
            SentencePiece-style (``▁`` for a space, ``<0x0A>`` byte-fallback pieces).
        vocab_size: the model's vocabulary size (the logits' width), which may exceed
            ``len(tokenizer)``; ids past the tokenizer are None. Default ``len(tokenizer)``.

    Returns:
        A list of ``vocab_size`` entries: the exact bytes (a piece may hold part of a UTF-8
        character), or None for special tokens (bos, eos, pad, chat markers) and empty pieces.
        A piece's bytes are what llama.cpp's ``token_to_piece`` and xgrammar's ``TokenizerInfo``
        give: ``'▁cat'`` is ``b' cat'`` wherever it comes. ``tokenizer.decode([id])`` is not: a
        SentencePiece decoder strips the space of a first ``▁``, as at the start of a text, so the
        text of a completion is its pieces joined (or the decode of prompt and completion, minus
        the prompt's), never ``decode(completion)`` alone.
    """
    # BEGIN SOLUTION task 2: the exact bytes each token id stands for, None for special and empty tokens, for byte-level BPE and SentencePiece vocabularies alike (README task 2; the docstring).
    # HINT task 2 level 1: a token is allowed in a state when the automaton can read all its bytes without
    #   dying; eos only where the output is complete. Reading: README task 2, the outlines paper §3 (indexing
    #   the vocabulary) and transformers' LogitsProcessor. The tests decode with real tokenizers of both kinds
    #   and check every completion with jsonschema or re.fullmatch.
    # HINT task 2 level 2: work from the tokenizer's own pieces, not decode([id]) (the docstring
    #   says why). A byte-level BPE writes each byte as a character of GPT-2's alphabet (the given byte decoder
    #   maps it back); a SentencePiece piece writes a space as '▁' and a raw byte as '<0xHH>'. Special ids
    #   (all_special_ids and added tokens marked special), ids past the tokenizer, and pieces with no bytes are
    #   None. The list has vocab_size entries.
    size = len(tokenizer) if vocab_size is None else vocab_size
    special = set(tokenizer.all_special_ids)
    special |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
    decoder = gpt2_byte_decoder() if is_byte_level(tokenizer) else None
    pieces: list[bytes | None] = []
    for token_id in range(size):
        piece = tokenizer.convert_ids_to_tokens(token_id) if token_id < len(tokenizer) else None
        if piece is None or token_id in special:
            pieces.append(None)
            continue
        if decoder is not None:
            data = bytes(decoder[c] for c in piece) if all(c in decoder for c in piece) \
                else piece.encode("utf-8")  # an added (non-special) token is stored as text
        elif match := BYTE_FALLBACK.match(piece):
            data = bytes([int(match.group(1), 16)])
        else:
            data = piece.replace(SENTENCEPIECE_SPACE, " ").encode("utf-8")
        pieces.append(data or None)
    return pieces
    # END SOLUTION


class Vocabulary:
    """A model's vocabulary as bytes and as a trie of those bytes (built once per tokenizer).

    ``trie`` nodes are dicts ``{byte: child}``; a node's key ``-1`` lists the token ids that end
    there (several ids can share the same bytes)."""

    def __init__(self, tokenizer: Any, vocab_size: int | None = None,
                 eos_token_ids: int | list[int] | None = None) -> None:
        self.pieces = token_bytes(tokenizer, vocab_size)
        self.size = len(self.pieces)
        if eos_token_ids is None:
            eos_token_ids = tokenizer.eos_token_id
        self.eos_ids = list(eos_token_ids) if isinstance(eos_token_ids, (list, tuple)) else [eos_token_ids]
        if any(e is None or not 0 <= e < self.size for e in self.eos_ids):
            raise ValueError(f"eos_token_ids must be token ids below {self.size}, got {self.eos_ids}")
        self.trie: dict[int, Any] = {}
        for token_id, data in enumerate(self.pieces):
            if data is None:
                continue
            node = self.trie
            for byte in data:
                node = node.setdefault(byte, {})
            node.setdefault(-1, []).append(token_id)


class TokenMasker:
    """Allowed-token masks of one automaton over one vocabulary, cached per automaton state."""

    FINISHED = -2  # the state after eos: nothing may follow

    def __init__(self, automaton: Automaton, vocabulary: Vocabulary) -> None:
        """``automaton``: task 1's, or anything with ``start``, ``DEAD``, ``step`` and ``is_accepting``."""
        self.automaton, self.vocabulary = automaton, vocabulary
        self._next: dict[int, dict[int, int]] = {}  # state -> {allowed token id: next state}
        self._masks: dict[int, torch.Tensor] = {}  # state -> (vocab,) bool, on the CPU

    def next_states(self, state: int) -> dict[int, int]:
        """``{token id: state after it}`` for every token allowed in ``state`` (eos excluded).

        One depth-first walk over the vocabulary trie, computed once per state and cached."""
        # BEGIN SOLUTION task 2: every token allowed in a state, with the state after it, from one walk of the vocabulary trie, cached per state (README task 2; outlines §3).
        # HINT task 2 level 2: the trie (given, in Vocabulary) maps a byte to a child node and the
        #   key -1 to the ids of tokens ending there. Walking it depth-first while stepping the automaton byte
        #   by byte shares the work between tokens with a common prefix, and a byte that kills the automaton
        #   drops its whole subtree. Cache the result per state: after warm-up a step is a look-up.
        # HINT task 2 level 3: return the cached dict if any; else a stack of (trie node, automaton
        #   state) from (root, state); pop; for each byte child: after = step(state, byte); skip if DEAD; every
        #   id at the child's -1 maps to after; push (child, after). Store and return the dict.
        cached = self._next.get(state)
        if cached is not None:
            return cached
        allowed: dict[int, int] = {}
        step, dead = self.automaton.step, self.automaton.DEAD
        stack = [(self.vocabulary.trie, state)]
        while stack:
            node, current = stack.pop()
            for byte, child in node.items():
                if byte == -1:
                    continue
                after = step(current, byte)
                if after == dead:
                    continue  # every token below this byte is refused: skip the subtree
                for token_id in child.get(-1, ()):
                    allowed[token_id] = after
                stack.append((child, after))
        self._next[state] = allowed
        return allowed
        # END SOLUTION

    def mask(self, state: int) -> torch.Tensor:
        """``(vocab,)`` bool: True where a token may come next in ``state``.

        Eos ids are True exactly when ``state`` is accepting; after eos (``FINISHED``) nothing is."""
        # BEGIN SOLUTION task 2: the allowed-token mask of a state, eos allowed exactly where the text is complete, nothing after eos (README task 2; the docstring).
        # HINT task 2 level 2: (vocab,) bool on the CPU, cached per state (the processor reuses it each
        #   step). Eos may be several ids (vocabulary.eos_ids). FINISHED is not an automaton state: its mask is
        #   all False.
        cached = self._masks.get(state)
        if cached is None:
            cached = torch.zeros(self.vocabulary.size, dtype=torch.bool)
            if state != self.FINISHED:
                allowed = list(self.next_states(state))
                if allowed:
                    cached[allowed] = True
                if self.automaton.is_accepting(state):
                    cached[self.vocabulary.eos_ids] = True
            self._masks[state] = cached
        return cached
        # END SOLUTION

    def advance(self, state: int, token_id: int) -> int:
        """The state after ``token_id``: ``FINISHED`` after eos.

        Raises:
            ValueError: the token is not allowed in ``state`` (naming both).
        """
        # BEGIN SOLUTION task 2: the state after a token, FINISHED after eos, or a ValueError for a token the state does not allow (README task 2; the docstring).
        # HINT task 2 level 2: eos is allowed only in an accepting state; any other token must be in
        #   next_states(state). After FINISHED nothing is allowed.
        if token_id in self.vocabulary.eos_ids and state != self.FINISHED \
                and self.automaton.is_accepting(state):
            return self.FINISHED
        after = self.next_states(state).get(token_id) if state != self.FINISHED else None
        if after is None:
            raise ValueError(f"token {token_id} is not allowed in automaton state {state}")
        return after
        # END SOLUTION

    def walk(self, token_ids: list[int]) -> int:
        """The state after a list of tokens, from the start state."""
        state = self.automaton.start
        for token_id in token_ids:
            state = self.advance(state, token_id)
        return state

    def precompute(self) -> int:
        """Compute the masks of every state reachable through tokens; return how many there are.

        What an eager compiler does up front (xgrammar compiles when a schema arrives); the
        lazy default computes a state's mask the first time decoding reaches it."""
        todo, seen = [self.automaton.start], {self.automaton.start}
        while todo:
            state = todo.pop()
            self.mask(state)
            for after in self.next_states(state).values():
                if after not in seen:
                    seen.add(after)
                    todo.append(after)
        return len(seen)


class ConstrainedLogitsProcessor(LogitsProcessor):
    """A transformers ``LogitsProcessor``: every disallowed token's score becomes -inf.

    Pass it as ``model.generate(..., logits_processor=LogitsProcessorList([processor]))``. It
    remembers each row's automaton state and advances it by the tokens generated since the last
    call; rows that emitted eos are left alone (generate pads them)."""

    def __init__(self, masker: TokenMasker, prompt_length: int) -> None:
        """``prompt_length``: the (padded) width of the prompt ids passed to ``generate``."""
        self.masker, self.prompt_length = masker, prompt_length
        self.states: list[int] = []
        self.consumed = 0  # generated tokens already folded into self.states

    def _eos_only(self) -> torch.Tensor:
        """The mask of a finished row: generate still samples it (then pads), so leave eos open."""
        mask = torch.zeros(self.masker.vocabulary.size, dtype=torch.bool)
        mask[self.masker.vocabulary.eos_ids] = True
        return mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """``input_ids``: ``(batch, seq)``; ``scores``: ``(batch, vocab)``; returns new scores."""
        # BEGIN SOLUTION task 2: scores with every token the row's automaton state forbids at -inf, for a batch that generate drives one step at a time (README task 2; transformers' LogitsProcessor).
        # HINT task 2 level 2: generate calls it once per step with all ids so far (the prompt is the
        #   first prompt_length columns, left-padded). Keep one automaton state per row and fold in only the
        #   tokens generated since the last call. A row that has finished still gets sampled (then padded): give
        #   it eos only, since an all -inf row makes sampling fail. Return a new tensor; the masks live on the
        #   CPU while scores may not, and a model's scores may be narrower than the mask (cut it to their width).
        # HINT task 2 level 3: first call: one start state per row; for each row, advance through its
        #   new tokens (unless finished); count them as consumed; stack each row's mask (eos-only for FINISHED),
        #   move it to the scores' device, and return the scores with the forbidden positions filled with -inf.
        if not self.states:
            self.states = [self.masker.automaton.start] * input_ids.shape[0]
        new_tokens = input_ids[:, self.prompt_length + self.consumed:].tolist()
        for row, tokens in enumerate(new_tokens):
            for token_id in tokens:
                if self.states[row] == TokenMasker.FINISHED:
                    break  # generate pads a finished row
                self.states[row] = self.masker.advance(self.states[row], token_id)
        self.consumed += input_ids.shape[1] - self.prompt_length - self.consumed
        rows = [self.masker.mask(state) if state != TokenMasker.FINISHED else self._eos_only() for state in self.states]
        masks = torch.stack(rows).to(scores.device)
        return scores.masked_fill(~masks[:, : scores.shape[1]], float("-inf"))
        # END SOLUTION


# leak-check: allowed, given: lab04 must not need the student's lab01, so it keeps its own decode loop
# (lab01 task 3's subject); its points are the masks this loop applies (tasks 1 and 2)
def constrained_generate(model: PreTrainedModel, masker: TokenMasker, prompt_ids: list[int],
                         max_new_tokens: int, temperature: float = 0.0,
                         seed: int | None = None) -> list[int]:
    """Decode one sequence with the KV cache, every step restricted to ``masker``'s allowed tokens.

    Args:
        model: a causal LM in eval mode.
        masker: the grammar's masks over the model's vocabulary.
        prompt_ids: the prompt (special tokens included), at least one id.
        max_new_tokens: the most tokens to generate, at least 1.
        temperature: 0 picks the most likely allowed token; above 0 samples
            ``softmax(masked logits / temperature)``.
        seed: seeds the sampler (a ``torch.Generator``) for a reproducible sample.

    Returns:
        The generated ids; ending with an eos id exactly when the output is complete.
    """
    check_not_empty("prompt_ids", prompt_ids)
    check_at_least("max_new_tokens", max_new_tokens, 1)
    check_at_least("temperature", temperature, 0.0)
    generator = torch.Generator(device="cpu").manual_seed(random.randrange(2**31) if seed is None else seed)
    state, generated, past = masker.automaton.start, [], None
    next_input = torch.tensor([prompt_ids], device=model.device)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            out = model(input_ids=next_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float().cpu()
            logits = logits.masked_fill(~masker.mask(state)[: logits.shape[0]], float("-inf"))
            if temperature == 0:
                token_id = int(torch.argmax(logits))
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                token_id = int(torch.multinomial(probs, 1, generator=generator))
            generated.append(token_id)
            state = masker.advance(state, token_id)
            if state == TokenMasker.FINISHED:
                break
            next_input = torch.tensor([[token_id]], device=model.device)
    return generated
