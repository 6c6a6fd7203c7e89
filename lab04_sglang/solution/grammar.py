"""Task 1: a JSON Schema or a regular expression, compiled to a byte-level automaton.

Constrained decoding needs one question answered fast, at every step: "which bytes may come
next?". A finite automaton answers it in O(1) per byte. This file builds one in three stages:

1. a *pattern tree* (``ByteSet`` / ``Seq`` / ``Alt`` / ``Repeat``) from a regex (``parse_regex``)
   or from a JSON Schema (``schema_node``): JSON with canonical whitespace, ``{"a": 1, "b": [2, 3]}``,
   the text ``json.dumps`` writes;
2. a Thompson NFA over **bytes**, not characters: a byte-level BPE token may hold half of a
   UTF-8 character, so the automaton must be able to stop inside one (``utf8_ranges`` turns a
   range of code points into byte sequences);
3. a DFA built lazily from the NFA (subset construction, one DFA state per set of NFA states,
   made the first time a walk reaches it), so that ``Automaton.step`` is one table look-up.

SGLang, vLLM and xgrammar do the same with a pushdown automaton, which also handles recursive
schemas; a finite automaton cannot nest without bound, so a recursive ``$ref`` is an error here.

Readings: Willard & Louf 2023, "Efficient Guided Generation for LLMs" (outlines: regex → FSM →
token index); the SGLang paper (arXiv 2312.07104), section on compressed finite state machines;
Russ Cox, "Regular Expression Matching Can Be Simple And Fast" (Thompson NFA).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_CODEPOINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)
MAX_REPEAT = 1000  # a bounded repeat is unrolled: {0,100000} would build 100000 NFA copies
#: The most NFA states one pattern may build. A schema or regex arrives in a request, and nested
#: repeats multiply ((a{1000}){1000} is a million copies): past this, compiling is refused up front
#: (``nfa_size``) instead of stalling the server.
MAX_NFA_STATES = 250_000  # about 2 s of compiling on one core


class GrammarError(ValueError):
    """A schema or regex this compiler does not support, or one that matches nothing.

    The message names the keyword, the construct, or the offset in the pattern."""


@contextlib.contextmanager
def refusing_deep_nesting(what: str) -> Iterator[None]:
    """Turn Python's ``RecursionError`` into a GrammarError naming ``what`` (given).

    The regex parser, the schema compiler and Thompson's construction recurse once per level of
    nesting, and a pattern or schema from a request may nest thousands of levels deep: that is a
    refusal, not a crash."""
    try:
        yield
    except RecursionError:
        raise GrammarError(f"{what} nests too deeply to compile (deeper than Python's recursion limit, "
                           f"{sys.getrecursionlimit()})") from None


# --------------------------------------------------------------------------------------------
# The pattern tree (given)


@dataclass(frozen=True)
class ByteSet:
    """Exactly one byte whose value lies in one of ``ranges`` (inclusive ``(low, high)`` pairs)."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Seq:
    """The items one after another (``Seq(())`` matches the empty string)."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    """Any one of the options (``Alt(())`` matches nothing at all)."""

    options: tuple[Node, ...]


@dataclass(frozen=True)
class Repeat:
    """``item`` repeated between ``low`` and ``high`` times (``high=None``: no upper bound)."""

    item: Node
    low: int
    high: int | None


Node = ByteSet | Seq | Alt | Repeat
EMPTY = Seq(())
NOTHING = Alt(())


def literal(text: str) -> Seq:
    """The exact UTF-8 bytes of ``text``."""
    return Seq(tuple(ByteSet(((b, b),)) for b in text.encode("utf-8")))


def seq(*items: Node) -> Seq:
    return Seq(tuple(items))


def alt(*options: Node) -> Alt:
    return Alt(tuple(options))


def utf8_ranges(low: int, high: int) -> list[list[tuple[int, int]]]:
    """The UTF-8 encodings of every code point in ``[low, high]``, as sequences of byte ranges.

    ``utf8_ranges(0x00, 0x7F) == [[(0x00, 0x7F)]]``; a range that crosses an encoding length or
    a continuation-byte boundary is split (the algorithm of Rust's ``regex-syntax`` utf8 module).
    Surrogates (U+D800–U+DFFF) are left out: UTF-8 cannot encode them.
    """
    if low > high:
        return []
    if low <= SURROGATES[1] and high >= SURROGATES[0]:
        return utf8_ranges(low, SURROGATES[0] - 1) + utf8_ranges(SURROGATES[1] + 1, high)
    for boundary in (0x7F, 0x7FF, 0xFFFF):  # split where the encoded length changes
        if low <= boundary < high:
            return utf8_ranges(low, boundary) + utf8_ranges(boundary + 1, high)
    if high <= 0x7F:
        return [[(low, high)]]
    for i in range(1, 4):  # split until low and high differ only in bytes that span 80..BF
        mask = (1 << (6 * i)) - 1
        if low & ~mask != high & ~mask:
            if low & mask != 0:
                return utf8_ranges(low, low | mask) + utf8_ranges((low | mask) + 1, high)
            if high & mask != mask:
                return utf8_ranges(low, (high & ~mask) - 1) + utf8_ranges(high & ~mask, high)
    first, last = chr(low).encode("utf-8"), chr(high).encode("utf-8")
    return [list(zip(first, last, strict=True))]


def codepoints(ranges: list[tuple[int, int]]) -> Node:
    """One character whose code point lies in one of ``ranges``, as UTF-8 bytes."""
    options: list[Node] = []
    for low, high in ranges:
        for sequence in utf8_ranges(low, high):
            options.append(Seq(tuple(ByteSet(((a, b),)) for a, b in sequence)))
    return options[0] if len(options) == 1 else Alt(tuple(options))


def complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Every code point not in ``ranges`` (which may overlap and come in any order)."""
    out, start = [], 0
    for low, high in sorted(ranges):
        if low > start:
            out.append((start, low - 1))
        start = max(start, high + 1)
    if start <= MAX_CODEPOINT:
        out.append((start, MAX_CODEPOINT))
    return out


# --------------------------------------------------------------------------------------------
# Regular expressions

DIGIT = [(0x30, 0x39)]
WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
SPACE = [(0x09, 0x0D), (0x20, 0x20)]
BOUND = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")
CLASS_ESCAPES = {"d": DIGIT, "w": WORD, "s": SPACE}
CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a", "0": "\0"}
UNSUPPORTED_ESCAPES = {"b": "a word boundary \\b", "B": "a non-boundary \\B", "A": "the anchor \\A",
                       "Z": "the anchor \\Z", "z": "the anchor \\z", "G": "the anchor \\G"}


class _RegexParser:
    """Recursive descent over the pattern: alternation > sequence > quantified atom."""

    def __init__(self, pattern: str) -> None:
        self.pattern, self.pos = pattern, 0

    def error(self, what: str, at: int | None = None) -> GrammarError:
        at = self.pos if at is None else at
        return GrammarError(f"regex {self.pattern!r}: {what} at offset {at}")

    def peek(self, n: int = 1) -> str:
        return self.pattern[self.pos:self.pos + n]

    def parse(self) -> Node:
        # BEGIN SOLUTION task 1: the whole pattern as one pattern tree meaning what re.fullmatch means, or a GrammarError naming what is wrong and where (README task 1).
        # HINT task 1 level 1: regex and schema both become the same pattern tree (ByteSet, Seq, Alt, Repeat),
        #   then a Thompson NFA over bytes and a lazy DFA. Reading: README task 1, Russ Cox's 'Regular
        #   Expression Matching Can Be Simple And Fast' (Thompson's construction, the subset construction),
        #   'Understanding JSON Schema', and the given helpers at the top of grammar.py (literal, codepoints,
        #   complement, utf8_ranges, seq, alt, EMPTY). The tests compare with re.fullmatch(..., re.ASCII) and
        #   jsonschema on Hypothesis-generated inputs, so match their meaning exactly, errors included.
        # HINT task 1 level 2: the parser is a recursive descent with one method per precedence level:
        #   alternation ('|', lowest), then sequence, then a quantified atom. parse: fullmatch semantics make a
        #   leading ^ and a trailing $ mean nothing; after one alternation the whole pattern must be used up (a
        #   stray ')' is 'unbalanced'). Raise self.error(...) so the message names the pattern and the offset.
        # HINT task 1 level 3: skip a leading '^'; node = alternation(); skip a '$' that is the very last
        #   character; anything left is an error; return node.
        if self.peek() == "^":
            self.pos += 1
        node = self.alternation()
        if self.peek() == "$" and self.pos == len(self.pattern) - 1:
            self.pos += 1
        if self.pos != len(self.pattern):
            char = self.peek()
            raise self.error("unbalanced ')'" if char == ")" else f"unexpected {char!r}")
        return node
        # END SOLUTION

    def alternation(self) -> Node:
        # BEGIN SOLUTION task 1: one or more sequences separated by '|' as one node (README task 1).
        # HINT task 1 level 3: a first sequence; while the next character is '|', step over it and
        #   parse another; a single option is returned as it is, several as an Alt of them.
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Alt(tuple(options))
        # END SOLUTION

    def sequence(self) -> Node:
        # BEGIN SOLUTION task 1: the quantified atoms up to the next '|', ')' or the end, as one node (README task 1).
        # HINT task 1 level 2: an empty sequence is allowed ('a|' matches 'a' or ''): EMPTY, or an
        #   empty Seq. '$' may only be the pattern's last character; elsewhere it is an error (this course
        #   supports no multi-line anchors).
        # HINT task 1 level 3: collect quantified(atom()) while the next character is not '|' or ')'
        #   and the pattern is not used up; stop before a final '$'; one item is returned alone, several as a
        #   Seq.
        items: list[Node] = []
        while self.pos < len(self.pattern) and self.peek() not in "|)":
            if self.peek() == "$":
                if self.pos == len(self.pattern) - 1:
                    break
                raise self.error("an anchor '$' inside the pattern (only at its end)")
            items.append(self.quantified(self.atom()))
        return items[0] if len(items) == 1 else Seq(tuple(items))
        # END SOLUTION

    def bound(self) -> tuple[int, int | None, int] | None:
        """The ``{n}``, ``{n,}``, ``{,m}``, ``{n,m}`` or ``{,}`` at ``self.pos`` as ``(low, high, end)``.

        None when the ``{`` starts no bound: Python's ``re`` then reads it as a literal."""
        match = BOUND.match(self.pattern, self.pos)
        if not match or (match.group(1) == "" and match.group(2) is None):
            return None
        low = int(match.group(1) or 0)
        high = low if match.group(2) is None else (int(match.group(3)) if match.group(3) else None)
        return low, high, match.end()

    def quantified(self, node: Node) -> Node:
        """Apply the ``*``, ``+``, ``?`` or ``{...}`` bound that may follow an atom."""
        # BEGIN SOLUTION task 1: the atom repeated as the quantifier after it says (*, +, ?, {n,m}), or unchanged when none follows; bounds checked (README task 1; Python's re syntax).
        # HINT task 1 level 2: self.bound() reads a '{...}' and returns None when Python would read
        #   the brace as a literal. A lazy '?' after a quantifier changes which match re.search finds, never
        #   whether a full match exists, so it adds nothing here. Any other quantifier right after the first
        #   is refused: 'a**' is an error in Python, and a '+' there is Python 3.11's possessive form ('a*+'
        #   never gives back what it took, so 'a*+a' matches nothing), which changes the full matches. A
        #   maximum below the minimum, or a bound over MAX_REPEAT, is an error naming the bound.
        # HINT task 1 level 3: map '*', '+', '?' to (low, high) = (0, None), (1, None), (0, 1), or
        #   take the bound; no quantifier -> return the node; skip one lazy '?'; refuse a following quantifier;
        #   the result is a Repeat of the node between those bounds.
        start, char = self.pos, self.peek()
        if char in ("*", "+", "?"):
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
            self.pos += 1
        elif char == "{" and (bound := self.bound()) is not None:
            low, high, self.pos = bound
            if high is not None and high < low:
                raise self.error(f"the bound {self.pattern[start:self.pos]} has its maximum below its minimum", start)
            if max(low, high or 0) > MAX_REPEAT:
                raise self.error(f"the bound {self.pattern[start:self.pos]} is over {MAX_REPEAT}", start)
        else:
            return node
        if self.peek() == "?":
            self.pos += 1  # lazy: the same set of full matches
        if self.peek() in ("*", "+", "?") or (self.peek() == "{" and self.bound() is not None):
            raise self.error("a multiple repeat (a quantifier right after another; a possessive '*+', '++', "
                             "'?+' or '{n}+' is not supported either)")
        return Repeat(node, low, high)
        # END SOLUTION

    def atom(self) -> Node:
        """One group, class, '.', escape or literal character."""
        # BEGIN SOLUTION task 1: one atom (group, class, '.', escape or literal character) as a node; what Python supports but an automaton cannot is refused by name (README task 1).
        # HINT task 1 level 2: groups capture nothing here, so '(', '(?:' and '(?P<name>' all just group;
        #   lookarounds and backreferences need more than a finite automaton: refuse them, saying which. '.' is
        #   any character but a newline (re without DOTALL). char_class and escape are given. A quantifier with
        #   nothing before it and a '^' inside the pattern are errors. A literal character is its UTF-8 bytes
        #   (literal() does that).
        # HINT task 1 level 3: '(' -> step in, handle '?:' / '?P<name>' / refuse other '(?', parse an
        #   alternation, require ')'; '[' -> char_class(); '.' -> codepoints of the complement of newline; '\\'
        #   -> codepoints(escape(False)); a quantifier or '^' -> error; else consume one character: its
        #   literal node.
        start = self.pos
        char = self.peek()
        if char == "(":
            self.pos += 1
            if self.peek() == "?":
                if self.peek(2) == "?:":
                    self.pos += 2
                elif self.peek(3) == "?P<":
                    close = self.pattern.find(">", self.pos)
                    if close < 0:
                        raise self.error("an unterminated group name")
                    self.pos = close + 1
                else:
                    kinds = {"?=": "a lookahead (?=", "?!": "a negative lookahead (?!",
                             "?<": "a lookbehind (?<", "?P": "a named backreference (?P="}
                    raise self.error(f"{kinds.get(self.peek(2), 'the group ' + repr('(' + self.peek(2)))} is not supported", start)
            node = self.alternation()
            if self.peek() != ")":
                raise self.error("a '(' that is never closed", start)
            self.pos += 1
            return node
        if char == "[":
            return self.char_class()
        if char == ".":
            self.pos += 1
            return codepoints(complement([(0x0A, 0x0A)]))
        if char == "\\":
            ranges = self.escape(in_class=False)
            return codepoints(ranges)
        if char in ("*", "+", "?") or (char == "{" and self.bound() is not None):
            raise self.error(f"the quantifier {char!r} has nothing to repeat", start)
        if char == "^":
            raise self.error("an anchor '^' inside the pattern (only at its start)")
        self.pos += 1
        return literal(char)
        # END SOLUTION

    def escape(self, in_class: bool) -> list[tuple[int, int]]:
        """The code point ranges of the escape at ``self.pos`` (which points at the backslash)."""
        start = self.pos
        self.pos += 1
        if self.pos >= len(self.pattern):
            raise self.error("a trailing backslash", start)
        char = self.pattern[self.pos]
        self.pos += 1
        if char.lower() in CLASS_ESCAPES:
            ranges = CLASS_ESCAPES[char.lower()]
            return complement(ranges) if char.isupper() else ranges
        if char == "b" and in_class:
            return [(0x08, 0x08)]  # inside a class, \\b is a backspace (as in Python)
        if char in CHAR_ESCAPES:
            return [(ord(CHAR_ESCAPES[char]),) * 2]
        if char in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[char]
            digits = self.pattern[self.pos:self.pos + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.error(f"\\{char} needs {width} hex digits", start)
            self.pos += width
            return [(int(digits, 16),) * 2]
        if char.isdigit():
            raise self.error(f"a backreference \\{char} is not supported", start)
        if char in UNSUPPORTED_ESCAPES and not in_class:
            raise self.error(f"{UNSUPPORTED_ESCAPES[char]} is not supported", start)
        if char.isalnum():
            raise self.error(f"unknown escape \\{char}", start)
        return [(ord(char), ord(char))]

    def class_item(self) -> list[tuple[int, int]]:
        """One character or escape inside ``[...]``."""
        if self.peek() == "\\":
            return self.escape(in_class=True)
        self.pos += 1
        return [(ord(self.pattern[self.pos - 1]),) * 2]

    def char_class(self) -> Node:
        """``[...]`` or ``[^...]``: one character in (or not in) a set of ranges."""
        start = self.pos
        self.pos += 1
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            if self.pos >= len(self.pattern):
                raise self.error("a '[' that is never closed", start)
            if self.peek() == "]" and not first:
                self.pos += 1
                break
            first, item_start = False, self.pos
            item = self.class_item()
            if self.peek() == "-" and self.pos + 1 < len(self.pattern) and self.pattern[self.pos + 1] != "]":
                self.pos += 1
                end = self.class_item()
                if len(item) != 1 or item[0][0] != item[0][1] or len(end) != 1 or end[0][0] != end[0][1]:
                    raise self.error("a character range with a class escape at one end", item_start)
                if end[0][0] < item[0][0]:
                    raise self.error("a bad character range (its end is below its start)", item_start)
                item = [(item[0][0], end[0][0])]
            ranges += item
        chosen = complement(ranges) if negate else ranges
        if not chosen:
            return NOTHING
        return codepoints(_merge(chosen))


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def parse_regex(pattern: str) -> Node:
    """The pattern tree of a regular expression, matched in full (``^`` and ``$`` implied).

    Supported: literals, escapes (``\\d \\w \\s \\D \\W \\S \\n \\t \\xHH \\uHHHH``, escaped
    punctuation), classes ``[a-z_]`` and ``[^...]``, ``.`` (any character but a newline),
    groups ``(...)``, ``(?:...)``, ``(?P<name>...)``, alternation ``|``, and the quantifiers
    ``* + ? {n} {n,} {,m} {n,m}`` (lazy ones too). Character classes mean what Python's
    ``re`` means with ``re.ASCII``.

    Raises:
        GrammarError: for lookarounds, backreferences, ``\\b``, anchors inside the pattern,
            unbalanced brackets, a quantifier with nothing to repeat, a bound whose maximum is
            below its minimum; the message names the construct and its offset.
    """
    if not isinstance(pattern, str):
        raise GrammarError(f"regex must be a string, got {type(pattern).__name__}")
    with refusing_deep_nesting("regex"):
        return _RegexParser(pattern).parse()


# --------------------------------------------------------------------------------------------
# JSON Schema

#: The keywords of JSON Schema (drafts 4 to 2020-12) that constrain an instance. A keyword here that
#: the compiler does not handle is refused by name; any other keyword (``title``, ``description``,
#: ``examples``, ``$comment``, an extension such as ``x-order`` or ``markdownDescription``) only
#: describes the schema and is ignored, as ``jsonschema`` and xgrammar ignore it.
CONSTRAINING = {
    # applicators
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies",
    "prefixItems", "items", "additionalItems", "contains", "properties", "patternProperties",
    "additionalProperties", "propertyNames", "unevaluatedItems", "unevaluatedProperties",
    # validation
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "maxContains", "minContains", "maxProperties", "minProperties", "required", "dependentRequired",
    "format",  # an annotation to jsonschema by default, but a client sending it expects it honoured
    # references
    "$ref", "$dynamicRef", "$recursiveRef", "$defs", "definitions",
}
#: The constraining keywords this compiler handles (``additionalProperties`` only as ``false``).
SUPPORTED = {"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
             "minLength", "maxLength", "enum", "const", "anyOf", "$ref", "$defs", "definitions"}
# ASCII sets are one ByteSet each (one NFA state), not an Alt of ranges: JSON_CHAR is repeated up
# to maxLength times, so its size multiplies.
HEX_DIGIT = ByteSet(((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)))
D_DIGIT = ByteSet(((0x44, 0x44), (0x64, 0x64)))  # 'D' or 'd': the first hex digit of a surrogate
#: ``u`` and the four hex digits of a code point outside the surrogates (U+D800-U+DFFF).
U_ESCAPE = seq(literal("u"), alt(
    seq(ByteSet(((0x30, 0x39), (0x41, 0x43), (0x45, 0x46), (0x61, 0x63), (0x65, 0x66))), HEX_DIGIT, HEX_DIGIT,
        HEX_DIGIT),
    seq(D_DIGIT, ByteSet(((0x30, 0x37),)), HEX_DIGIT, HEX_DIGIT)))
#: An escaped surrogate pair (``\ud83c\udf55`` is one character, 🍕, as ``json.loads`` reads it
#: and as ``minLength`` counts it); a lone escaped surrogate is no character and is not allowed.
SURROGATE_PAIR = seq(literal("u"), D_DIGIT, ByteSet(((0x38, 0x39), (0x41, 0x42), (0x61, 0x62))), HEX_DIGIT,
                     HEX_DIGIT, literal("\\u"), D_DIGIT, ByteSet(((0x43, 0x46), (0x63, 0x66))), HEX_DIGIT,
                     HEX_DIGIT)
#: One JSON string character: anything but '"', '\' and control characters, or an escape.
JSON_CHAR = alt(
    codepoints(complement([(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)])),
    seq(literal("\\"), alt(ByteSet(((0x22, 0x22), (0x2F, 0x2F), (0x5C, 0x5C), (0x62, 0x62), (0x66, 0x66),
                                   (0x6E, 0x6E), (0x72, 0x72), (0x74, 0x74))),
                          U_ESCAPE, SURROGATE_PAIR)),
)
ONE_TO_NINE, DIGIT_NODE = codepoints([(0x31, 0x39)]), codepoints(DIGIT)
INTEGER = seq(Repeat(literal("-"), 0, 1),
              alt(literal("0"), seq(ONE_TO_NINE, Repeat(DIGIT_NODE, 0, None))))
NUMBER = seq(INTEGER, Repeat(seq(literal("."), Repeat(DIGIT_NODE, 1, None)), 0, 1),
             Repeat(seq(codepoints([(0x45, 0x45), (0x65, 0x65)]),
                        Repeat(codepoints([(0x2B, 0x2B), (0x2D, 0x2D)]), 0, 1),
                        Repeat(DIGIT_NODE, 1, None)), 0, 1))
ITEM_SEPARATOR, KEY_SEPARATOR = ", ", ": "  # json.dumps' defaults: canonical whitespace


def json_text(value: Any) -> str:
    """``value`` as canonical JSON text (what ``enum`` and ``const`` allow)."""
    return json.dumps(value, ensure_ascii=False, separators=(ITEM_SEPARATOR, KEY_SEPARATOR))


def load_schema(schema: Any) -> dict:
    """A schema given as a pydantic model class, a dict or JSON text, as a checked dict.

    Raises:
        GrammarError: the schema is not valid JSON (naming the offset) or not a valid JSON
            Schema (naming the failing keyword, via ``jsonschema``'s meta-schema check: the draft
            its ``$schema`` names, Draft 2020-12 when it names none; a ``$schema`` jsonschema does
            not know is refused).
    """
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        schema = schema.model_json_schema()
    elif isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as error:
            raise GrammarError(f"json_schema is not valid JSON: {error.msg} at offset {error.pos}") from None
    if not isinstance(schema, dict):
        raise GrammarError(f"json_schema must be an object (a dict), got {type(schema).__name__}")
    import jsonschema

    validator = jsonschema.validators.validator_for(schema, default=None)
    if validator is None:
        if "$schema" in schema:  # jsonschema would fall back to its newest draft, with a warning
            raise GrammarError(f"json_schema $schema {schema['$schema']!r} is not a meta-schema jsonschema "
                               "knows (draft-04, -06, -07, 2019-09 or 2020-12)")
        validator = jsonschema.Draft202012Validator
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "the root"
        draft = validator.META_SCHEMA.get("$schema", "its draft")
        raise GrammarError(f"json_schema is not a valid JSON Schema ({draft}) at {where}: {error.message}") from None
    return schema


class _SchemaCompiler:
    def __init__(self, root: dict) -> None:
        self.root = root
        self.resolving: list[str] = []  # the $refs being expanded right now: a repeat is recursion
        # each $ref's tree, built once and shared: definitions that each use the next one twice would
        # otherwise cost 2^depth calls before any size check could refuse the schema
        self.expanded: dict[str, Node] = {}

    def unsupported(self, keyword: str, where: str) -> GrammarError:
        return GrammarError(f"json_schema keyword {keyword!r} at {where} is not supported")

    def node(self, schema: Any, where: str = "#") -> Node:
        """The pattern tree for one (sub)schema; ``where`` is its JSON pointer, for messages."""
        # BEGIN SOLUTION task 1: the pattern tree of every canonical JSON text that validates against this subschema; a constraining keyword it does not support refused by name with its JSON pointer (README task 1).
        # HINT task 1 level 2: keywords that only describe are ignored; a keyword in CONSTRAINING but not
        #   in SUPPORTED is refused (self.unsupported), as are additional properties other than false, `true` as
        #   a schema, and a schema without a type (any value). const and enum are literal JSON texts (json_text
        #   writes them canonically). A list of types is an Alt of the same schema with each type. INTEGER and
        #   NUMBER are given.
        # HINT task 1 level 3: validate the schema's shape and keywords; then in order: const -> literal;
        #   enum -> Alt of literals; $ref -> self.ref; anyOf -> Alt of the subschemas' nodes (pointer
        #   .../anyOf/i); a type list -> Alt over {**schema, type: t}; object / array / string -> their methods;
        #   integer, number, boolean, null -> the fixed nodes.
        if schema is True:
            raise GrammarError(f"json_schema at {where} is `true` (any value): not supported")
        if not isinstance(schema, dict):
            raise GrammarError(f"json_schema at {where} must be an object, got {schema!r}")
        for keyword in schema:
            if keyword in CONSTRAINING and keyword not in SUPPORTED:
                raise self.unsupported(keyword, where)
        if schema.get("additionalProperties", False) is not False:
            raise self.unsupported("additionalProperties", where)
        if "const" in schema:
            return literal(json_text(schema["const"]))
        if "enum" in schema:
            return Alt(tuple(literal(json_text(v)) for v in schema["enum"]))
        if "$ref" in schema:
            return self.ref(schema["$ref"], where)
        if "anyOf" in schema:
            return Alt(tuple(self.node(s, f"{where}/anyOf/{i}") for i, s in enumerate(schema["anyOf"])))
        kind = schema.get("type")
        if kind is None:
            raise GrammarError(f"json_schema at {where} has no 'type' (any value): not supported")
        if isinstance(kind, list):
            return Alt(tuple(self.node({**schema, "type": k}, where) for k in kind))
        if kind == "object":
            return self.object_node(schema, where)
        if kind == "array":
            return self.array_node(schema, where)
        if kind == "string":
            return self.string_node(schema, where)
        return {"integer": INTEGER, "number": NUMBER, "boolean": alt(literal("true"), literal("false")),
                "null": literal("null")}[kind]
        # END SOLUTION

    def ref(self, ref: str, where: str) -> Node:
        # BEGIN SOLUTION task 1: the tree of a local $ref, built once and shared; a recursive or dangling reference refused (README task 1; JSON Schema '$defs').
        # HINT task 1 level 2: only '#/$defs/<name>' (and draft-07's '#/definitions/<name>'). A finite
        #   automaton cannot nest without bound, so a ref met again while it is being expanded (self.resolving)
        #   is an error. Definitions that use the next one twice would cost 2^depth expansions: keep each ref's
        #   tree in self.expanded and reuse it.
        parts = ref.split("/")
        if len(parts) != 3 or parts[0] != "#" or parts[1] not in ("$defs", "definitions"):
            raise GrammarError(f"json_schema $ref {ref!r} at {where}: only '#/$defs/<name>' is supported")
        target = self.root.get(parts[1], {}).get(parts[2])
        if target is None:
            raise GrammarError(f"json_schema $ref {ref!r} at {where} points at nothing")
        if ref in self.resolving:
            raise GrammarError(f"json_schema $ref {ref!r} at {where} is recursive: a finite "
                               "automaton cannot nest without bound")
        if ref not in self.expanded:
            self.resolving.append(ref)
            try:
                self.expanded[ref] = self.node(target, ref)
            finally:
                self.resolving.pop()
        return self.expanded[ref]
        # END SOLUTION

    def object_node(self, schema: dict, where: str) -> Node:
        """``{"key": value, ...}`` with the properties in the schema's order; optional ones may be left out."""
        # BEGIN SOLUTION task 1: every canonical JSON object the schema allows: properties in the schema's order, optional ones omissible, separators exactly ', ' and ': ', and a tree that grows polynomially with the properties (README task 1, on size).
        # HINT task 1 level 2: a member is the key's JSON text, KEY_SEPARATOR and the value's node;
        #   ITEM_SEPARATOR goes only between two present members. A required key missing from properties is an
        #   error. The hard part is size: an optional member written as 'present or absent, then a copy of
        #   everything after it' doubles the tree per optional property (19 of them: millions of NFA states).
        #   Decide instead which member comes first: every later member then follows after a comma, and that
        #   tail can be built once and shared.
        # HINT task 1 level 3: build the members; build later[i] from the end: later[i] = (comma +
        #   member i), optional if member i is, then later[i + 1]. The options for the inside of the braces: for
        #   each k in order, member k followed by later[k + 1], stopping after the first required member; when
        #   no member is required, the empty object is an option too. Return '{' + Alt(options) + '}'.
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        for name in required:
            if name not in properties:
                raise GrammarError(f"json_schema at {where}: required property {name!r} is not in 'properties'")
        members = [(seq(literal(json_text(name) + KEY_SEPARATOR),
                        self.node(sub, f"{where}/properties/{name}")), name in required)
                   for name, sub in properties.items()]

        # After the first present member, each later one comes after ', ' (an optional one may be
        # left out): later[i] is members i.. in that position, built once and shared.
        later: list[Node] = [EMPTY] * (len(members) + 1)
        for i in reversed(range(len(members))):
            member, needed = members[i]
            after_comma = seq(literal(ITEM_SEPARATOR), member)
            later[i] = seq(after_comma if needed else Repeat(after_comma, 0, 1), later[i + 1])
        # The first present member is some k with every member before k optional (left out); it is
        # the first required one at the latest. One option per such k, each followed by the shared
        # tail: the tree is linear in the members and Thompson's NFA at most quadratic (each option
        # gets its own copy of its tail), where a choice per optional member that copies the rest
        # doubles it each time (2^n).
        options: list[Node] = []
        for k, (member, needed) in enumerate(members):
            options.append(seq(member, later[k + 1]))
            if needed:
                break
        else:
            options.append(EMPTY)  # no required member: '{}' too
        return seq(literal("{"), Alt(tuple(options)), literal("}"))
        # END SOLUTION

    def array_node(self, schema: dict, where: str) -> Node:
        """``[item, item, ...]`` with between ``minItems`` and ``maxItems`` items."""
        # BEGIN SOLUTION task 1: every canonical JSON array of the items' schema with between minItems and maxItems items (README task 1).
        # HINT task 1 level 2: no 'items' (any value) and a list of items (tuple validation) are
        #   refused. Items are separated by ', '. Zero items is '[]'; otherwise one item then (count - 1) more
        #   after a comma. Impossible or oversized bounds (above MAX_REPEAT) are errors naming them.
        if "items" not in schema:
            raise GrammarError(f"json_schema at {where}: an array needs 'items' (any value is not supported)")
        if isinstance(schema["items"], list):
            raise GrammarError(f"json_schema at {where}: 'items' as a list (tuple validation, draft-07 and "
                               "before) is not supported")
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if high is not None and high < low:
            raise GrammarError(f"json_schema at {where}: minItems {low} is above maxItems {high}: nothing can match")
        if max(low, high or 0) > MAX_REPEAT:
            raise GrammarError(f"json_schema at {where}: minItems/maxItems over {MAX_REPEAT}")
        if high == 0:
            return literal("[]")
        item = self.node(schema["items"], f"{where}/items")
        more = Repeat(seq(literal(ITEM_SEPARATOR), item), max(low - 1, 0), None if high is None else high - 1)
        full = seq(literal("["), item, more, literal("]"))
        return alt(literal("[]"), full) if low == 0 else full
        # END SOLUTION

    def string_node(self, schema: dict, where: str) -> Node:
        """``"..."`` holding between ``minLength`` and ``maxLength`` characters (an escape is one)."""
        # BEGIN SOLUTION task 1: every JSON string with between minLength and maxLength characters, an escape counting as one (README task 1; the docstring).
        # HINT task 1 level 2: JSON_CHAR (given) is one JSON string character, escapes included, so
        #   the length bounds become a Repeat of it between two quotes. Impossible or oversized bounds are
        #   errors.
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if high is not None and high < low:
            raise GrammarError(f"json_schema at {where}: minLength {low} is above maxLength {high}: nothing can match")
        if max(low, high or 0) > MAX_REPEAT:
            raise GrammarError(f"json_schema at {where}: minLength/maxLength over {MAX_REPEAT}")
        return seq(literal('"'), Repeat(JSON_CHAR, low, high), literal('"'))
        # END SOLUTION


def schema_node(schema: Any) -> Node:
    """The pattern tree of every canonical JSON text that validates against ``schema``.

    Args:
        schema: a pydantic model class, a dict, or JSON text.

    Supported: ``type`` object (``properties``, ``required``; no additional properties),
    array (``items``, ``minItems``, ``maxItems``), string (``minLength``, ``maxLength``),
    integer, number, boolean, null, and a list of types; ``enum``, ``const``, ``anyOf``,
    local ``$ref`` into ``$defs``. Keywords that do not constrain (title, description, examples,
    ``x-*`` extensions...) are ignored; ``$schema`` picks the draft the schema is checked against.
    A string's length counts characters as ``json.loads`` reads them (an escape, or an escaped
    surrogate pair, is one); a lone escaped surrogate is never written.

    Raises:
        GrammarError: an invalid schema, an unsupported keyword (named, with its JSON pointer),
            a recursive ``$ref``, or bounds that nothing can satisfy.
    """
    with refusing_deep_nesting("json_schema"):
        root = load_schema(schema)
        return _SchemaCompiler(root).node(root)


# --------------------------------------------------------------------------------------------
# NFA and lazy DFA


def nfa_size(node: Node) -> int:
    """How many NFA states Thompson's construction of ``node`` makes (``Automaton._build``'s count).

    Counted over the tree without building anything, each shared sub-tree once, so that a pattern
    too big to build is refused before it costs time and memory."""
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, ByteSet):
            total = 1
        elif isinstance(node, Seq):
            total = sum(size(item) for item in node.items)
        elif isinstance(node, Alt):
            total = 1 + sum(1 + size(option) for option in node.options)
        else:
            item = size(node.item)
            total = node.low * item + 1 + (item if node.high is None else (node.high - node.low) * item)
        sizes[id(node)] = total
        return total

    return size(node)



class Automaton:
    """A DFA over bytes, built lazily from a pattern tree.

    States are small integers; ``start`` is the first, ``DEAD`` (-1) means no match is possible
    any more. ``step(state, byte)`` is one look-up once a state's row is built.
    """

    DEAD = -1

    def __init__(self, node: Node, source: str = "pattern") -> None:
        self.source = source
        # NFA: byte-range edges and epsilon edges per state; state 0 starts, self.final accepts.
        self.edges: list[list[tuple[int, int, int]]] = []
        self.epsilons: list[list[int]] = []
        states = nfa_size(node)
        if states > MAX_NFA_STATES:
            raise GrammarError(f"{source} would compile to {states:,} automaton states, over the limit of "
                               f"{MAX_NFA_STATES:,} (grammar.MAX_NFA_STATES): simplify it (fewer optional "
                               "properties, smaller bounds)")
        start = self._new_state()
        self.final = self._build(node, start)
        self._trim(start)
        # DFA: each state is a closed set of NFA states, numbered in order of discovery.
        self._sets: list[frozenset[int]] = []
        self._ids: dict[frozenset[int], int] = {}
        self._rows: list[list[int] | None] = []
        self.start = self._intern(self._closure({start}))

    # NFA construction ----------------------------------------------------------------------

    def _new_state(self) -> int:
        self.edges.append([])
        self.epsilons.append([])
        return len(self.edges) - 1

    def _build(self, node: Node, start: int) -> int:
        """Add ``node``'s NFA fragment beginning at state ``start``; return its end state."""
        # BEGIN SOLUTION task 1: the NFA fragment of a node, starting at a given state, returning its end state (README task 1; Russ Cox, Thompson's construction).
        # HINT task 1 level 2: states are made with _new_state; self.edges[s] holds (low byte, high
        #   byte, target) and self.epsilons[s] the targets reached without reading. Each node kind is one rule
        #   of Thompson's construction; a Repeat expands into copies of its item's fragment (a fresh fragment
        #   per copy: one fragment cannot be re-entered from two places). The fragment must accept exactly
        #   the node's language: test a Repeat with low 0, with high None, and with low = high.
        # HINT task 1 level 3: ByteSet: one new end state, an edge per range. Seq: build each item from
        #   the previous end. Alt: a shared end; per option a new begin reached by epsilon from start, its end
        #   joined to the shared end by epsilon. Repeat: low copies in a row; unbounded -> a loop state reached
        #   by epsilon, the item built from it and returning to it by epsilon; bounded -> (high - low) copies,
        #   each skippable by an epsilon to one end.
        if isinstance(node, ByteSet):
            end = self._new_state()
            self.edges[start] += [(low, high, end) for low, high in node.ranges]
            return end
        if isinstance(node, Seq):
            for item in node.items:
                start = self._build(item, start)
            return start
        if isinstance(node, Alt):
            end = self._new_state()
            for option in node.options:
                begin = self._new_state()
                self.epsilons[start].append(begin)
                self.epsilons[self._build(option, begin)].append(end)
            return end
        for _ in range(node.low):
            start = self._build(node.item, start)
        if node.high is None:
            loop = self._new_state()
            self.epsilons[start].append(loop)
            self.epsilons[self._build(node.item, loop)].append(loop)
            return loop
        end = self._new_state()
        for _ in range(node.high - node.low):
            self.epsilons[start].append(end)
            start = self._build(node.item, start)
        self.epsilons[start].append(end)
        return end
        # END SOLUTION

    def _trim(self, start: int) -> None:
        """Drop edges into states from which the final state cannot be reached.

        Then every DFA state but ``DEAD`` can still be completed, so a token mask never lets
        a model walk into a dead end; a pattern that matches nothing is an error here."""
        backward: list[list[int]] = [[] for _ in self.edges]
        for state in range(len(self.edges)):
            for _, _, target in self.edges[state]:
                backward[target].append(state)
            for target in self.epsilons[state]:
                backward[target].append(state)
        alive, todo = {self.final}, [self.final]
        while todo:
            for previous in backward[todo.pop()]:
                if previous not in alive:
                    alive.add(previous)
                    todo.append(previous)
        if start not in alive:
            raise GrammarError(f"{self.source} can never match anything")
        for state in range(len(self.edges)):
            self.edges[state] = [e for e in self.edges[state] if e[2] in alive]
            self.epsilons[state] = [t for t in self.epsilons[state] if t in alive]

    # DFA ------------------------------------------------------------------------------------

    def _closure(self, states: set[int]) -> frozenset[int]:
        todo, seen = list(states), set(states)
        while todo:
            for target in self.epsilons[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return frozenset(seen)

    def _intern(self, states: frozenset[int]) -> int:
        if states not in self._ids:
            self._ids[states] = len(self._sets)
            self._sets.append(states)
            self._rows.append(None)
        return self._ids[states]

    def _row(self, state: int) -> list[int]:
        """The 256 successors of DFA ``state`` (``DEAD`` where a byte is not allowed), built once."""
        # BEGIN SOLUTION task 1: the 256 successors of a DFA state, built once and cached, DEAD where a byte is not allowed (README task 1; the subset construction).
        # HINT task 1 level 2: a DFA state is a set of NFA states (self._sets[state]); the successor on a
        #   byte is the epsilon closure (_closure) of every target reachable on that byte; _intern numbers new
        #   sets. Build a row the first time it is asked for (lazy DFA) and store it in self._rows. Many bytes
        #   lead to the same set: look each set up once.
        row = self._rows[state]
        if row is None:
            targets: list[set[int]] = [set() for _ in range(256)]
            for nfa_state in self._sets[state]:
                for low, high, target in self.edges[nfa_state]:
                    for byte in range(low, high + 1):
                        targets[byte].add(target)
            cache: dict[frozenset[int], int] = {}
            row = []
            for byte_targets in targets:
                key = frozenset(byte_targets)
                if key not in cache:
                    cache[key] = self._intern(self._closure(byte_targets)) if byte_targets else self.DEAD
                row.append(cache[key])
            self._rows[state] = row
        return row
        # END SOLUTION

    def step(self, state: int, byte: int) -> int:
        """The state after reading ``byte`` (0..255) in ``state``; ``DEAD`` if it is not allowed."""
        return self.DEAD if state == self.DEAD else self._row(state)[byte]

    def walk(self, state: int, data: bytes) -> int:
        """The state after reading every byte of ``data``; ``DEAD`` as soon as one is not allowed."""
        for byte in data:
            if state == self.DEAD:
                break
            state = self._row(state)[byte]
        return state

    def is_accepting(self, state: int) -> bool:
        """Whether the text read so far is a complete match."""
        return state != self.DEAD and self.final in self._sets[state]

    def matches(self, text: str | bytes) -> bool:
        """Whether the whole of ``text`` is a match."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        return self.is_accepting(self.walk(self.start, data))

    @property
    def num_states(self) -> int:
        """DFA states built so far (the DFA grows as walks discover it)."""
        return len(self._sets)


def compile_regex(pattern: str) -> Automaton:
    """The automaton of a regex, matched in full. Raises GrammarError (see ``parse_regex``)."""
    node = parse_regex(pattern)
    with refusing_deep_nesting("regex"):
        return Automaton(node, source=f"regex {pattern!r}")


def compile_json_schema(schema: Any) -> Automaton:
    """The automaton of canonical JSON texts valid against ``schema`` (see ``schema_node``)."""
    node = schema_node(schema)
    with refusing_deep_nesting("json_schema"):
        return Automaton(node, source="json_schema")


def compile_constraint(regex: str | None = None, json_schema: Any = None) -> Automaton | None:
    """The automaton for ``regex`` or ``json_schema`` (at most one; None for neither), compiled
    once per distinct pattern.

    Programs and servers meet the same schema request after request, and one automaton keeps one
    masker with its cached masks (``program.LocalBackend.masker``), so reusing it is what makes
    masks cached across requests. The 64 most recently used are kept. A dict schema is keyed by
    its JSON text, property order included (it decides the order of the output's properties).

    Raises:
        ValueError: both are given. GrammarError: what ``compile_regex`` / ``compile_json_schema`` raise.
    """
    if regex is not None and json_schema is not None:
        raise ValueError("regex and json_schema: give one of them, not both")
    if regex is not None:
        return _compile_once("regex", regex)
    if json_schema is None:
        return None
    if isinstance(json_schema, dict):
        try:
            return _compile_once("json_schema", json.dumps(json_schema))
        except TypeError:  # not JSON-serialisable: compile it as it is, for its own error
            return compile_json_schema(json_schema)
    if isinstance(json_schema, (str, type)):  # JSON text, or a pydantic model class
        return _compile_once("json_schema", json_schema)
    return compile_json_schema(json_schema)


@functools.lru_cache(maxsize=64)
def _compile_once(kind: str, spec: Any) -> Automaton:
    return compile_regex(spec) if kind == "regex" else compile_json_schema(spec)
