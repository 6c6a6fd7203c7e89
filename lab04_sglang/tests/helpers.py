"""What several lab04 test files share: the modules under test, schemas, and small oracles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import torch
from hypothesis import strategies as st

from shared.impl import lab_module

LAB = "lab04_sglang"
grammar = lab_module(LAB, "grammar")
masks = lab_module(LAB, "masks")
xgrammar_check = lab_module(LAB, "xgrammar_check")
radix = lab_module(LAB, "radix")
prefix_cache = lab_module(LAB, "prefix_cache")
program = lab_module(LAB, "program")
sglang_api = lab_module(LAB, "sglang_api")

#: The fixture's kind of record, as a JSON Schema with every supported type in it.
RECORD = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer"},
        "city": {"enum": ["Lima", "Seoul", "Tokyo", "Madrid"]},
        "active": {"type": "boolean"},
    },
    "required": ["name", "age"],
}

#: Regexes of the kind SGLang programs use, each with strings it must and must not match.
REGEXES = {
    r"\d{3}-\d{4}": (["555-1234", "000-0000"], ["5551234", "555-123", "55a-1234", "5555-1234"]),
    r".{2}x": (["é🍕x", "abx", "\t x"], ["\nax", "a\nx", "ax"]),
    r"(yes|no|maybe)": (["yes", "maybe"], ["ye", "yesno", ""]),
    r"[A-Z][a-z]{1,5}": (["Lima", "Ab"], ["A", "lima", "Abcdefg"]),
    r"\w+@\w+\.(com|org)": (["a@b.com", "x_1@y2.org"], ["a@b.net", "@b.com"]),
    r"-?(0|[1-9]\d*)(\.\d+)?": (["0", "-12.50", "7"], ["01", "1.", "--1"]),
    r"[^,\n]{0,8},?": (["héllo,", "🍕🍕", ","], ["a\nb", "123456789"]),
    r"\d+ \$": (["5 $", "12 $"], ["5", "5 ", "5 $$", "$"]),  # an escaped '$' at the end is a literal dollar
    r"(?P<code>[A-Z]{2})-(?:\d)+": (["AB-1", "XY-123"], ["AB-", "ab-1", "AB>-1", "AB1"]),  # a named group
    r"^[a-c]+x": (["ax", "abcx"], ["x", "axx", "^ax"]),  # a leading '^' anchors what fullmatch anchors anyway
    r"[a-c]+x$": (["ax", "abcx"], ["x", "axx", "ax$"]),  # and an unescaped trailing '$' means nothing more
    r"a{1000}": (["a" * 1000], ["a" * 999, "a" * 1001]),  # MAX_REPEAT itself is allowed (the limit is inclusive)
}


def json_text(value) -> str:
    """Canonical JSON text, as task 1 writes it (json.dumps' separators, raw UTF-8)."""
    return json.dumps(value, ensure_ascii=False)


def check_json_completion(text: str, schema: dict) -> None:
    """The oracle: the text parses and validates against the schema (jsonschema)."""
    jsonschema.validate(json.loads(text), schema)


def canonical_validator(schema: dict):
    """jsonschema's validator for the schema's draft, plus the one rule of task 1's canonical JSON
    that JSON Schema leaves open: an object's properties come in the order ``properties`` lists
    them. (Extra properties are the schema's to refuse: the generated schemas say
    ``"additionalProperties": false``, which is what task 1 compiles.)"""
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)

    def properties_in_order(validator, properties, instance, subschema):
        yield from base.VALIDATORS["properties"](validator, properties, instance, subschema)
        if validator.is_type(instance, "object"):
            listed = [key for key in instance if key in properties]
            if listed != [key for key in properties if key in instance]:
                yield jsonschema.ValidationError(f"properties {listed} are not in the order {list(properties)}")

    return jsonschema.validators.extend(base, {"properties": properties_in_order})(schema)


def completion_text(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The text ``new_ids`` add after the prompt, as the tokenizer decodes it **in context**.

    ``tokenizer.decode(new_ids)`` alone is not it for a SentencePiece-style tokenizer: its decoder
    strips the space of the first ``▁`` piece, as at the start of a text, though the piece follows a
    prompt (``' yes'`` comes back as ``'yes'``). The bytes the automaton read are the continuation."""
    before = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    after = tokenizer.decode(list(prompt_ids) + list(new_ids), skip_special_tokens=True)
    assert after.startswith(before), (before, after)
    return after[len(before):]


def check_regex_completion(text: str, pattern: str) -> None:
    assert re.fullmatch(pattern, text, re.ASCII), f"{text!r} does not fully match {pattern!r}"


class FiniteLanguage:
    """A test-side automaton that accepts exactly a finite set of strings (bytes in, like task 1's).

    A state is a prefix of some string (numbered as met), so task 2 can be tested without task 1."""

    DEAD = -1

    def __init__(self, texts) -> None:
        self.words = {t.encode("utf-8") for t in texts}
        self.prefixes = {w[:i] for w in self.words for i in range(len(w) + 1)}
        self.names, self.ids = [b""], {b"": 0}
        self.start = 0

    def step(self, state: int, byte: int) -> int:
        if state == self.DEAD:
            return self.DEAD
        after = self.names[state] + bytes([byte])
        if after not in self.prefixes:
            return self.DEAD
        if after not in self.ids:
            self.ids[after] = len(self.names)
            self.names.append(after)
        return self.ids[after]

    def walk(self, state: int, data: bytes) -> int:
        for byte in data:
            state = self.step(state, byte)
        return state

    def is_accepting(self, state: int) -> bool:
        return state != self.DEAD and self.names[state] in self.words


#: The fixture's kind of record, as a finite language (the fixture writes such records).
RECORD_TEXTS = [json.dumps({"name": name, "age": age, **extra})
                for name in ("Lena", "Mateo", "Ana", "Hiro", "user255", "user903")
                for age in (21, 25, 33, 50, 62)
                for extra in ({}, {"city": "Lima"}, {"city": "Tokyo"}, {"city": "Seoul", "active": True})]
YES_NO = ["yes", "no", "maybe"]
#: Every string of 1 to 3 characters from a multi-byte alphabet (tokens may split characters).
SHORT_WORDS = ["".join(chars) for n in (1, 2, 3) for chars in __import__("itertools").product("aé🍕", repeat=n)]


def allowed_ids(mask: torch.Tensor) -> set[int]:
    return {int(i) for i in torch.nonzero(mask).flatten()}


def fixture_dir() -> Path:
    """The course fixture (trained): tests that need trained behaviour use it even with --model."""
    from shared.models import fixture_path

    return fixture_path()


def load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, tokenizer


@pytest.fixture(scope="session")
def fixture_model():
    """The trained fixture model and tokenizer."""
    return load(fixture_dir())


@pytest.fixture(scope="session")
def sentencepiece_model(tmp_path_factory):
    """A SentencePiece-style tokenizer (Llama 2's kind: BPE with byte fallback, ``<0x0A>`` byte pieces and
    ``▁`` for a space, the Metaspace pre-tokenizer, a decoder that strips the first space), trained here on a
    few sentences and loaded as transformers loads a tokenizer folder; with a tiny random Llama over it."""
    import json as json_module

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = ["The cat sat on the mat.", "Give me a user record as JSON.", '{"name": "Lena", "age": 25}',
              "yes no maybe, hello there", "the hat and the bat", "Café crème"] * 10
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trained.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=200, show_progress=False))
    learned = json_module.loads(trained.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"<0x{b:02X}>": 3 + b for b in range(256)}
    for piece in sorted(learned["vocab"], key=learned["vocab"].get):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    backend.add_special_tokens([AddedToken(t, special=True) for t in ("<unk>", "<s>", "</s>")])
    folder = tmp_path_factory.mktemp("sentencepiece")
    PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    sentencepiece = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(sentencepiece), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config).eval(), sentencepiece


@pytest.fixture(scope="session")
def random_model():
    """A Qwen2-shaped model with random weights and a list of eos ids (see shared.models)."""
    from shared.models import build_random_model

    return load(build_random_model("qwen2", seed=3))


# ---------------------------------------------------------------------------------------------
# Hypothesis: small schemas that always end (bounded strings and arrays)

scalar_schemas = st.one_of(
    st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(0, 6)),
    st.builds(lambda lo, extra: {"type": "string", "minLength": lo, "maxLength": lo + extra},
              st.integers(0, 3), st.integers(0, 3)),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(lambda values: {"enum": values},
              st.lists(st.one_of(st.text("abcxyz é", max_size=4), st.integers(-50, 50), st.booleans(),
                                 st.none()), min_size=1, max_size=4, unique_by=json_text)),
    st.builds(lambda v: {"const": v}, st.one_of(st.text("ab", max_size=3), st.integers(0, 9))),
)
NAMES = st.text("abcdefgh", min_size=1, max_size=5)


def _object(props: dict, required_mask: list[bool]) -> dict:
    names = list(props)
    return {"type": "object", "properties": props, "additionalProperties": False,
            "required": [n for n, keep in zip(names, required_mask, strict=False) if keep]}


def schemas(depth: int = 2):
    """A strategy of JSON Schemas in task 1's subset whose completions are always short."""
    if depth == 0:
        return scalar_schemas
    inner = schemas(depth - 1)
    return st.one_of(
        scalar_schemas,
        st.builds(lambda items, lo, extra: {"type": "array", "items": items, "minItems": lo,
                                            "maxItems": lo + extra},
                  inner, st.integers(0, 2), st.integers(0, 2)),
        st.builds(_object, st.dictionaries(NAMES, inner, min_size=0, max_size=3),
                  st.lists(st.booleans(), min_size=3, max_size=3)),
        st.builds(lambda a, b: {"anyOf": [a, b]}, inner, inner),
    )
