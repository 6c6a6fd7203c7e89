"""Task 1: JSON Schema and regex to a byte-level automaton."""

import itertools
import json
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from .helpers import RECORD, REGEXES, canonical_validator, grammar, json_text, schemas

pytestmark = pytest.mark.task(1)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DRAFTS = {"draft-04": "http://json-schema.org/draft-04/schema#", "draft-06": "http://json-schema.org/draft-06/schema#",
          "draft-07": "http://json-schema.org/draft-07/schema#",
          "2019-09": "https://json-schema.org/draft/2019-09/schema", "2020-12": "https://json-schema.org/draft/2020-12/schema"}
DRAFT_07 = DRAFTS["draft-07"]


@pytest.mark.points(2)
@pytest.mark.parametrize("pattern", list(REGEXES))
def test_regex_matches_what_python_matches(pattern):
    """Each regex accepts its examples and refuses its counter-examples, like re.fullmatch."""
    automaton = grammar.compile_regex(pattern)
    good, bad = REGEXES[pattern]
    for text in good:
        assert re.fullmatch(pattern, text, re.ASCII) and automaton.matches(text), f"{pattern!r} must match {text!r}"
    for text in bad:
        assert not re.fullmatch(pattern, text, re.ASCII) and not automaton.matches(text), \
            f"{pattern!r} must not match {text!r}"


REGEX_PARTS = st.sampled_from(["a", "b", "[a-c]", "[^b]", r"\d", r"\w", ".", "é", "(a|bc)", "(?:ab)", "x{2}",
                               "[0-9]{1,2}", "a?", "b*", "c+", "(a|b){,2}", r"\.", "[é🍕-]"])


@pytest.mark.points(1.5)
@SETTINGS
@given(parts=st.lists(REGEX_PARTS, min_size=1, max_size=4),
       texts=st.lists(st.text("abcx01.-é🍕\n", max_size=6), min_size=5, max_size=5))
def test_regex_agrees_with_re_fullmatch_on_random_text(parts, texts):
    """Hypothesis: on random patterns and strings (multi-byte characters included), the automaton and re agree."""
    pattern = "".join(parts)
    automaton = grammar.compile_regex(pattern)
    for text in texts:
        assert automaton.matches(text) == bool(re.fullmatch(pattern, text, re.ASCII)), (pattern, text)


@pytest.mark.points(1)
@SETTINGS
@given(data=st.data())
def test_regex_accepts_hypothesis_strings_of_the_pattern(data):
    """Strings Hypothesis builds from a pattern (from_regex, fullmatch) are all accepted."""
    pattern = data.draw(st.sampled_from([r"\d{2,4}", r"[a-f]+@x\.(io|org)", r"(ab|c)*d?", r"[^\n]{1,3}"]))
    text = data.draw(st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True))
    assert grammar.compile_regex(pattern).matches(text), (pattern, text)


#: Repeats side by side (a loop must not leak into its neighbour) and lazy quantifiers (the same full matches);
#: the bounds `{n,}` and `{0}`, and empty alternatives ('a|' is 'a' or '', the parser's hint).
STARS_AND_LAZY = ["a*b*", "c+b*", "(ab)*c*", "a*(b|c)*a", "(a|bc)*b?", "a+?b", "a??b*?", "a{1,2}?c", "(?:ab)+?c*",
                  "a{2,}b?", "a{0}b", "(a|)b|", "a||b", "(|c)a"]


@pytest.mark.points(0.5)
@pytest.mark.parametrize("pattern", STARS_AND_LAZY)
def test_repeats_agree_with_re_on_every_short_string(pattern):
    """Every string of up to 5 letters over 'abc' is accepted iff re.fullmatch matches it: repeats next to
    each other stay apart, a lazy quantifier ('+?', '??', '{m,n}?') has the same full matches as greedy,
    `{n,}` has no upper bound, `{0}` matches only the empty string, and an empty alternative matches ''."""
    automaton = grammar.compile_regex(pattern)
    texts = ["".join(chars) for n in range(6) for chars in itertools.product("abc", repeat=n)]
    differ = [t for t in texts if automaton.matches(t) != bool(re.fullmatch(pattern, t, re.ASCII))]
    assert differ == [], (pattern, differ[:5])


@pytest.mark.points(2)
@pytest.mark.parametrize("pattern, named", [
    (r"(?=a)b", "lookahead"), (r"(a)\1", "backreference"), (r"\bword", "boundary"), (r"(ab", "never closed"),
    (r"ab)", "unbalanced"), (r"*a", "nothing to repeat"), (r"a{3,2}", "below its minimum"),
    ("a$b", "anchor"), (r"[^\x00-\U0010FFFF]", "never match"), ("[abc", "never closed"),
    pytest.param("(" * 3000 + "a" + ")" * 3000, "nests too deeply", id="groups-3000-deep"),
    # Python's re refuses these too ("multiple repeat")
    ("a**", "repeat"), ("a{2}{3}", "repeat"),
    # Python 3.11 reads 'a*+' as possessive (re.fullmatch("a*+a", "aa") is None): refused, not read as (a*)+
    ("a*+a", "possessive|repeat"),
    ("a^b", r"anchor|\^"), ("(?!a)b", "lookahead"), ("(?<=a)b", "lookbehind"), ("(?P<x>a)(?P=x)", "backreference"),
    ("(?P<x", "name"), ("a{1001}", "1000"), ("b{2,1001}", "1000"),
    # re compiles it (no limit of 1000): an open bound whose minimum alone is over MAX_REPEAT
    ("a{1001,}", "1000"),
    # a counted bound with nothing before it: Python's re refuses it ("nothing to repeat"), it is no literal text
    ("{2}a", "nothing to repeat"), ("(|{3})", "nothing to repeat")])
def test_regex_errors_name_the_construct(pattern, named):
    """Unsupported or impossible regexes fail with a GrammarError (a ValueError) naming what is wrong: what a
    finite automaton cannot do (lookarounds, backreferences, anchors inside), what Python refuses or reads
    differently (a quantifier after a quantifier, possessive ones), a bound over MAX_REPEAT."""
    with pytest.raises(ValueError, match=named):
        grammar.compile_regex(pattern)


@pytest.mark.points(2)
def test_record_schema_canonical_text():
    """The record schema accepts json.dumps of valid records, with optional keys left out in order."""
    automaton = grammar.compile_json_schema(RECORD)
    for record in [{"name": "Lena", "age": 25}, {"name": "", "age": -3, "city": "Lima", "active": True},
                   {"name": "Ana", "age": 0, "active": False}, {"name": "Zoë \"Z\"", "age": 7, "city": "Tokyo"}]:
        assert automaton.matches(json_text(record)), record
    for text in ['{"age": 25, "name": "Lena"}', '{"name": "Lena"}', '{"name":"Lena", "age": 25}',
                 '{"name": "Lena", "age": 025}', '{"name": "Lena", "age": 25, "city": "Paris"}',
                 '{"name": "Lena", "age": 2.5}', '{"name": "' + "x" * 17 + '", "age": 1}',
                 '{"name": "Lena", "age": 25, "extra": 1}', '{"name": "a\nb", "age": 1}']:
        assert not automaton.matches(text), text
    optional_first = grammar.compile_json_schema({"type": "object", "required": ["b"], "properties": {
        "a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "null"}}})
    for text in ['{"b": 1}', '{"a": 1, "b": 2}', '{"b": 1, "c": null}', '{"a": 0, "b": 1, "c": null}']:
        assert optional_first.matches(text), text
    for text in ['{, "b": 1}', '{"a": 1}', '{"b": 1, }', '{"a": 1 "b": 2}', '{"c": null, "b": 1}']:
        assert not optional_first.matches(text), text
    pair = grammar.compile_json_schema({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2})
    assert pair.matches("[1, 2]") and pair.matches("[3]")
    assert not pair.matches("[1, 2, 3]") and not pair.matches("[]") and not pair.matches("[1,2]")


class Address(BaseModel):
    street: str
    number: int


class Person(BaseModel):
    name: str
    score: float
    tags: list[str]
    home: Address
    nickname: str | None = None


@pytest.mark.points(2)
def test_pydantic_model_with_refs_and_optional():
    """A pydantic model ($defs/$ref, anyOf with null, float, list) compiles; its JSON is accepted. A list of
    types, `const` / `enum` null and `maxItems` 0 accept exactly what jsonschema finds valid."""
    automaton = grammar.compile_json_schema(Person)
    person = Person(name="Ana", score=-1.5e3, tags=["a", "b"], home=Address(street="Main", number=4))
    assert automaton.matches(json_text(person.model_dump()))
    assert automaton.matches(json_text({**person.model_dump(), "nickname": "Ani", "tags": []}))
    assert not automaton.matches(json_text({**person.model_dump(), "home": {"street": "Main"}}))
    cities = grammar.compile_json_schema({"enum": ["café", "Zürich", 3]})
    assert cities.matches('"café"'), "enum strings are written as canonical JSON, raw UTF-8 (not \\u00e9)"
    assert not cities.matches('"caf\\u00e9"'), "canonical JSON writes 'é' itself, never an escape"
    assert cities.matches("3")
    # a list of types is any one of them; null is a value of const / enum, not 'no const'; maxItems 0 is only [];
    # a const string is written as canonical JSON too (raw UTF-8, as enum)
    for schema in ({"type": ["integer", "null"]}, {"const": None}, {"enum": [None]},
                   {"type": "array", "items": {"type": "integer"}, "maxItems": 0}, {"const": "café"}):
        automaton = grammar.compile_json_schema(schema)
        for text in ["3", "-40", "null", "true", '"3"', "3.5", "[]", "[1]", "[null]", '"café"', '"cafe"']:
            valid = jsonschema.Draft202012Validator(schema).is_valid(json.loads(text))
            assert automaton.matches(text) == valid, (schema, text)
    # property names are JSON strings: a quote, a backslash or a control character in one is escaped as json.dumps does
    odd = {"type": "object", "properties": {'say "hi"': {"type": "integer"}, "a\\b\n": {"type": "integer"}},
           "required": ['say "hi"', "a\\b\n"]}
    assert grammar.compile_json_schema(odd).matches(json_text({'say "hi"': 1, "a\\b\n": 2}))
    assert jsonschema.Draft202012Validator(odd).is_valid(json.loads(json_text({'say "hi"': 1, "a\\b\n": 2})))


@pytest.mark.points(3)
@SETTINGS
@given(schema=schemas(), data=st.data())
def test_schema_accepts_exactly_the_valid_instances(schema, data):
    """Hypothesis: for generated schemas, an instance built from the schema (keys in any order, an extra key
    sometimes) is accepted iff jsonschema says it is valid, with the properties in the schema's order."""
    automaton = grammar.compile_json_schema(schema)
    value = data.draw(_instances(schema))
    valid = canonical_validator(schema).is_valid(value)
    assert automaton.matches(json_text(value)) == valid, (schema, value)


def _instances(schema):
    """Values near a schema: valid ones and plausible mistakes."""
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-20, 20), st.text("abé\"\\", max_size=8))
    # leak-check: allowed, the test's own reference validator
    if "enum" in schema:
        return st.one_of(st.sampled_from(schema["enum"]), scalar)
    # leak-check: allowed, the test's own reference validator dispatches on the same keywords
    if "const" in schema:
        return st.one_of(st.just(schema["const"]), scalar)
    # leak-check: allowed, the test's own reference validator
    if "anyOf" in schema:
        return st.one_of(*[_instances(s) for s in schema["anyOf"]])
    if schema["type"] == "array":
        return st.lists(_instances(schema["items"]), max_size=schema.get("maxItems", 3) + 1)
    if schema["type"] == "object":
        props = schema["properties"]
        present = st.fixed_dictionaries({}, optional={**{k: _instances(v) for k, v in props.items()}, "zz": scalar})
        # the keys in the schema's order or shuffled: both sides must agree on what order means
        return present.flatmap(lambda d: st.permutations(list(d.items())).map(dict) | st.just(d))
    return scalar


@pytest.mark.points(1)
@pytest.mark.parametrize("schema, named", [
    ({"type": "string", "pattern": "a+"}, "pattern"), ({"type": "object", "properties": {"a": {"type": "integer",
     "minimum": 0}}}, "minimum"), ({"type": "array"}, "items"), ({"type": "string", "minLength": 3, "maxLength": 1},
     "minLength"), ({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
                    "$ref": "#/$defs/N"}, "recursive"), ({"type": "strin"}, "not a valid JSON Schema"),
    ('{"type": "object"', "not valid JSON"), ({"type": "object", "properties": {}, "required": ["a"]}, "'a'"),
    ({"type": "object", "additionalProperties": True}, "additionalProperties"),
    ({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}, "additionalProperties"),
    ({"type": "string", "format": "date"}, "format"), ({"oneOf": [{"type": "null"}]}, "oneOf"),
    ({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "a+"}]}, "'pattern' at #/anyOf/1"),
    ({"$schema": "https://example.com/my-meta-schema", "type": "integer"}, "$schema"),
    ({"$schema": DRAFT_07, "type": "array", "items": [{"type": "integer"}]}, "items"),
    pytest.param('{"type": "array", "items": ' * 3000 + '{"type": "null"}' + "}" * 3000, "nests too deeply",
                 id="arrays-3000-deep"),
    ({"type": "array", "items": True}, "items"), ({}, "type"), ({"$ref": "https://example.com/s.json"}, "$ref"),
    ({"$defs": {}, "$ref": "#/$defs/Missing"}, "Missing"),
    ({"type": "array", "items": {"type": "null"}, "minItems": 3, "maxItems": 1}, "minItems"),
    ({"type": "array", "items": {"type": "null"}, "maxItems": 1001}, "maxItems"),
    ({"type": "string", "maxLength": 1001}, "maxLength"),
    # maxLength 0 is a bound like any other (a falsy one): below minLength 1 nothing can match
    ({"type": "string", "minLength": 1, "maxLength": 0}, "minLength")])
def test_schema_errors_name_the_keyword(schema, named):
    """Unsupported keywords, invalid schemas and impossible bounds fail with a ValueError naming them (an
    unsupported keyword with its JSON pointer, into anyOf's options too): `true` (any value) as a subschema, a
    schema without a type, a $ref that is not local or points at nothing, array bounds that nothing satisfies
    or that pass MAX_REPEAT (which itself is allowed)."""
    assert grammar.compile_json_schema({"type": "integer"}).matches("-12")
    assert grammar.nfa_size(grammar.schema_node({"type": "array", "items": {"type": "null"}, "maxItems": 1000}))
    with pytest.raises(ValueError, match=re.escape(named)):
        grammar.compile_json_schema(schema)


#: GitHub workflows' `permissions-event` (schemastore.org): 19 optional properties, no extra ones.
PERMISSIONS_EVENT = {
    "type": "object", "additionalProperties": False,
    "properties": {name: {"$ref": "#/definitions/permissions-level"} for name in (
        "actions", "attestations", "checks", "contents", "deployments", "discussions", "id-token", "issues",
        "models", "packages", "pages", "pull-requests", "repository-projects", "security-events", "statuses",
        "artifact-metadata", "copilot-requests", "merge-queues", "vulnerability-alerts")},
    "definitions": {"permissions-level": {"type": "string", "enum": ["read", "write", "none"]}},
}


@pytest.mark.points(1)
@pytest.mark.timeout(60)  # the right answer takes well under a second; doubling the work per level never ends
def test_many_optional_properties_compile_small():
    """A schema arrives in a request: 19 optional properties (GitHub's `permissions-event`) compile to an
    automaton whose size grows with the properties, not with their 2^19 subsets, and it accepts exactly the
    subsets in order (jsonschema plus the order rule); 40 definitions that each use the next one twice are
    refused at once, naming MAX_NFA_STATES (each $ref built once and shared, then counted)."""
    names = list(PERMISSIONS_EVENT["properties"])
    # given nfa_size counts the states Thompson's construction builds; a choice per optional property
    # that copies the rest of the object needs 2^n (16 properties: 1,375,183 states; xgrammar: instant)
    for count in (16, 19):
        schema = {**PERMISSIONS_EVENT, "properties": {n: PERMISSIONS_EVENT["properties"][n] for n in names[:count]}}
        assert grammar.nfa_size(grammar.schema_node(schema)) < 60 * count**2, count
    automaton = grammar.compile_json_schema(PERMISSIONS_EVENT)
    oracle = canonical_validator(PERMISSIONS_EVENT)
    rng = __import__("random").Random(19)
    for _ in range(40):
        chosen = rng.sample(names, rng.randint(0, len(names)))
        for keys in (sorted(chosen, key=names.index), chosen):  # in order, and as sampled
            value = {key: rng.choice(["read", "write", "none", "admin"]) for key in keys}
            assert automaton.matches(json_text(value)) == oracle.is_valid(value), value
    assert automaton.matches("{}") and not automaton.matches('{, "actions": "read"}')
    assert not automaton.matches('{"actions": "read", }')
    twice = {f"D{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/D{i + 1}"},
                                                          "b": {"$ref": f"#/$defs/D{i + 1}"}}, "required": ["a", "b"]}
             for i in range(40)}
    with pytest.raises(ValueError, match="MAX_NFA_STATES"):
        grammar.compile_json_schema({"$defs": {**twice, "D40": {"type": "null"}}, "$ref": "#/$defs/D0"})


@pytest.mark.points(0.5)
def test_dollar_schema_picks_the_draft_and_annotations_are_ignored():
    """`$schema` picks the draft the schema is checked against (jsonschema's meta-schemas, draft-04 to
    2020-12); keywords that only describe (title, examples, x-*, markdownDescription, $comment) are ignored
    as jsonschema and xgrammar ignore them."""
    texts = ['{"name": "Lena", "age": 25}', '{"name": "Ana", "age": 0, "active": false}', '{"age": 25}']
    plain = grammar.compile_json_schema(RECORD)
    for draft, uri in DRAFTS.items():
        automaton = grammar.compile_json_schema({"$schema": uri, **RECORD})
        assert [automaton.matches(t) for t in texts] == [plain.matches(t) for t in texts] == [True, True, False], draft
    # the draft-04 meta-schema is a valid draft-04 schema: refused for what it uses, not as invalid
    with pytest.raises(ValueError) as error:
        grammar.compile_json_schema(jsonschema.Draft4Validator.META_SCHEMA)
    assert "not a valid JSON Schema" not in str(error.value) and "not supported" in str(error.value)
    # `required: []` is valid in 2020-12 and invalid in draft-04 (minItems 1)
    empty_required = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": []}
    assert grammar.compile_json_schema(empty_required).matches('{"a": 1}')
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        grammar.compile_json_schema({"$schema": DRAFTS["draft-04"], **empty_required})
    described = {"type": "object", "title": "Record", "$comment": "c", "markdownDescription": "**r**",
                 "examples": [{"name": "x", "age": 1}], "x-order": 3, "deprecated": False,
                 "properties": {name: {**sub, "description": name, "x-ui": {"hidden": True}, "title": name}
                                for name, sub in RECORD["properties"].items()},
                 "required": RECORD["required"]}
    automaton = grammar.compile_json_schema(described)
    assert [automaton.matches(t) for t in texts] == [True, True, False]


@pytest.mark.points(0.5)
@SETTINGS
@given(text=st.text("aé🍕😀\n\"\\", max_size=5), low=st.integers(0, 4), extra=st.integers(0, 3))
def test_string_length_counts_characters_as_json_loads_does(text, low, extra):
    """Hypothesis: minLength/maxLength count characters as jsonschema counts json.loads' string: an escape is
    one, an escaped surrogate pair (json.dumps' ASCII form of 🍕) is one."""
    schema = {"type": "string", "minLength": low, "maxLength": low + extra}
    automaton = grammar.compile_json_schema(schema)
    valid = jsonschema.Draft202012Validator(schema).is_valid(text)
    upper_hex = re.sub(r"\\u[0-9a-f]{4}", lambda m: "\\u" + m.group(0)[2:].upper(), json.dumps(text))
    for written in (json.dumps(text), json.dumps(text, ensure_ascii=False), upper_hex):
        assert json.loads(written) == text
        assert automaton.matches(written) == valid, (written, schema)
    assert not automaton.matches('"\\ud83c"')  # a lone surrogate is no character


@pytest.mark.points(1)
def test_automaton_stops_inside_a_character():
    """The automaton is over bytes: the first byte of 'é' leads to a live, non-accepting state."""
    automaton = grammar.compile_regex("é+")
    first, second = "é".encode()
    middle = automaton.step(automaton.start, first)
    assert middle != automaton.DEAD, "a prefix of a multi-byte character is still alive (not DEAD)"
    assert not automaton.is_accepting(middle), "a state inside a character must not be accepting"
    assert automaton.is_accepting(automaton.step(middle, second))
    assert automaton.step(automaton.start, second) == automaton.DEAD
    assert json.loads(json_text("é")) == "é"
