"""Task 6 (the parts that need no server): SGLang's /generate request and response, served by tasks 2 and 4,
and the real server's command line. The HTTP routes and real `sgl.RuntimeEndpoint` runs arrive with lab02's server."""

import json

import jsonschema
import pytest
import torch
from pydantic import ValidationError

from .helpers import RECORD, fixture_dir, fixture_model, program, sglang_api

pytestmark = pytest.mark.task(6)
__all__ = ["fixture_model"]


@pytest.fixture(scope="module")
def backend(fixture_model):
    model, tokenizer = fixture_model
    return program.LocalBackend(model, tokenizer)


def hf_greedy(model, ids: list[int], n: int) -> list[int]:
    inputs = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False, max_new_tokens=n,
                             pad_token_id=model.generation_config.pad_token_id)
    return out[0, len(ids):].tolist()


@pytest.mark.sglang
@pytest.mark.points(2)
def test_requests_as_runtime_endpoint_sends_them():
    """The payload SGLang's own client builds (SglSamplingParams.to_srt_kwargs) parses; bad ones name their field."""
    from sglang.lang.ir import SglSamplingParams

    params = SglSamplingParams(max_new_tokens=16, temperature=0.0, regex=r"\d+", stop=["\n"])
    payload = json.loads(json.dumps({"text": "Q: 1+1?\nA:", "return_logprob": True, "logprob_start_len": 2,
                                     "sampling_params": {"skip_special_tokens": True,
                                                         "spaces_between_special_tokens": True,
                                                         **params.to_srt_kwargs()}}))
    request = sglang_api.GenerateRequest.model_validate(payload)
    [(prompt, sampling, logprob, start)] = request.split()
    assert prompt == "Q: 1+1?\nA:" and sampling.regex == r"\d+" and logprob is True and start == 2
    bad = [({"text": "x", "sampling_params": {"regex": "a", "json_schema": "{}"}}, "regex, json_schema"),
           ({"sampling_params": {}}, "text and input_ids"),
           ({"text": "x", "sampling_params": {"temprature": 0}}, "temprature"),
           ({"text": "x", "sampling_params": {"max_new_tokens": -1}}, "max_new_tokens"),
           ({"text": "x", "sampling_params": {"top_p": 0.5}}, "top_p")]
    # what the course engine cannot honour is refused by name, never ignored (SGLang's "Sampling parameters")
    bad += [({"text": "x", "sampling_params": {name: value}}, name) for name, value in [
        ("ebnf", 'root ::= "a"'), ("stop_regex", r"\d"), ("min_p", 0.1), ("frequency_penalty", 0.5),
        ("presence_penalty", -0.5), ("min_new_tokens", 2), ("top_k", 5)]]
    bad.append(({"text": "x", "sampling_params": {"regex": "a", "ebnf": 'root ::= "a"'}}, "ebnf"))
    for body, named in bad:
        with pytest.raises(ValidationError, match=named):
            sglang_api.GenerateRequest.model_validate(body)
    batch = sglang_api.GenerateRequest.model_validate({"text": ["a", "b"], "sampling_params": [{}, {}, {}]})
    with pytest.raises(ValueError, match="sampling_params"):
        batch.split()
    # SGLang's batch: each of sampling_params, return_logprob, logprob_start_len is one value or one per prompt
    batch = sglang_api.GenerateRequest.model_validate({
        "text": ["a", "b"], "sampling_params": [{"max_new_tokens": 1}, {"max_new_tokens": 2}],
        "return_logprob": [True, False], "logprob_start_len": [0, 3]})
    assert [(p, s.max_new_tokens, lp, start) for p, s, lp, start in batch.split()] == [
        ("a", 1, True, 0), ("b", 2, False, 3)]
    for name, value in (("return_logprob", [True]), ("logprob_start_len", [0, 1, 2])):
        with pytest.raises(ValueError, match=name):
            sglang_api.GenerateRequest.model_validate({"text": ["a", "b"], name: value}).split()
    [(prompt, sampling, logprob, start)] = sglang_api.GenerateRequest.model_validate({"input_ids": [5, 6, 7]}).split()
    assert prompt == [5, 6, 7] and sampling == sglang_api.SamplingParams() and logprob is False and start == -1


@pytest.mark.points(2)
def test_generate_answers_like_transformers(backend, fixture_model):
    """Greedy text equals transformers' generate; a batch answers a list; input_ids work like text; a json_schema
    answer validates; a repeated prompt comes from the radix cache; finish_reason says why it stopped."""
    model, tokenizer = fixture_model
    prompt = "<|user|>\nWhat is the capital of Japan?</s>\n<|assistant|>\n"
    ids = tokenizer(prompt).input_ids
    expected = hf_greedy(model, ids, 20)
    one = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"text": prompt, "sampling_params": {"max_new_tokens": 20, "temperature": 0}}))
    assert one.output_ids == expected and one.text == tokenizer.decode(expected, skip_special_tokens=True)
    assert one.meta_info.finish_reason == {"type": "stop", "matched": tokenizer.eos_token_id}
    assert one.meta_info.prompt_tokens == len(ids), "meta_info.prompt_tokens must count the prompt's tokens"
    assert one.meta_info.completion_tokens == len(expected), (
        "meta_info.completion_tokens must count the generated tokens"
    )
    cut = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"text": prompt, "sampling_params": {"max_new_tokens": 20, "temperature": 0, "stop": [" of", " "]}}))
    assert one.text.startswith(cut.text + " ") and " " not in cut.text
    assert cut.meta_info.finish_reason == {"type": "stop", "matched": " "}
    both = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"input_ids": [ids, ids[:5]], "sampling_params": {"max_new_tokens": 3, "temperature": 0}}))
    assert isinstance(both, list) and both[0].output_ids == expected[:3] and both[0].meta_info.cached_tokens > 0
    assert both[1].output_ids == hf_greedy(model, ids[:5], 3)
    assert both[0].meta_info.finish_reason == {"type": "length", "length": 3}
    forced = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"text": prompt, "sampling_params": {"max_new_tokens": len(expected) + 20, "temperature": 0,
                                             "ignore_eos": True}}))
    assert forced.meta_info.completion_tokens == len(expected) + 20, "ignore_eos: past eos to max_new_tokens"
    assert forced.meta_info.finish_reason == {"type": "length", "length": len(expected) + 20}
    assert forced.output_ids[:len(expected)] == expected
    stop_id = expected[2]  # a stop token id ends the answer there, kept in it like eos (SGLang's stop_token_ids)
    stopped = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"text": prompt, "sampling_params": {"max_new_tokens": 20, "temperature": 0, "stop_token_ids": [stop_id]}}))
    assert stopped.output_ids == expected[:expected.index(stop_id) + 1]
    assert stopped.meta_info.finish_reason == {"type": "stop", "matched": stop_id}
    # SGLang's defaults: 128 new tokens, temperature 1.0 (a sample follows the greedy path of 30-odd tokens
    # with a probability below 1e-4 on the fixture)
    sampled = sglang_api.generate_one(backend, prompt, sglang_api.SamplingParams(ignore_eos=True))
    assert sampled.meta_info.completion_tokens == 128, "max_new_tokens defaults to 128 (SGLang)"
    assert sampled.output_ids[:len(forced.output_ids)] != forced.output_ids, "temperature defaults to 1.0 (SGLang)"
    record = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"text": "Give me a user record as JSON: ", "sampling_params": {"max_new_tokens": 60, "temperature": 1.0,
                                                                        "json_schema": json.dumps(RECORD)}}))
    jsonschema.validate(json.loads(record.text), RECORD)


@pytest.mark.points(1)
def test_prefill_only_logprobs_match_transformers(backend, fixture_model):
    """max_new_tokens 0 with return_logprob: [logprob, id, text] for the prompt from logprob_start_len, as
    transformers computes them; the first prompt token's logprob is None (how select scores choices)."""
    model, tokenizer = fixture_model
    text = "The capital of Japan is Tokyo."
    ids = tokenizer(text).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    expected = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()
    none = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"text": text, "sampling_params": {"max_new_tokens": 0}, "return_logprob": True, "logprob_start_len": -1}))
    assert none.meta_info.input_token_logprobs == [], "logprob_start_len -1 (SGLang's default): no prompt token"
    default = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"text": text, "sampling_params": {"max_new_tokens": 0}, "return_logprob": True}))
    assert default.meta_info.input_token_logprobs == [], "logprob_start_len defaults to -1 (SGLang): no prompt token"
    for start in (0, 3):
        answer = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
            {"text": text, "sampling_params": {"max_new_tokens": 0}, "return_logprob": True,
             "logprob_start_len": start, "return_text_in_logprobs": True}))
        triples = answer.meta_info.input_token_logprobs
        assert answer.text == "" and answer.output_ids == [] and answer.meta_info.completion_tokens == 0
        assert [t[1] for t in triples] == ids[start:]
        assert [t[2] for t in triples] == [tokenizer.decode([i]) for i in ids[start:]]
        scores = [t[0] for t in triples]
        if start == 0:
            assert scores[0] is None
            scores = scores[1:]
        assert scores == pytest.approx(expected[max(start - 1, 0):], abs=1e-4)
    answer = sglang_api.generate(backend, sglang_api.GenerateRequest.model_validate(
        {"text": text, "sampling_params": {"max_new_tokens": 4, "temperature": 0, "ignore_eos": True},
         "return_logprob": True}))
    full = ids + answer.output_ids  # every new token scored as transformers scores it after the prompt
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0]
    scored = torch.log_softmax(logits[len(ids) - 1:-1], dim=-1).gather(1, torch.tensor(answer.output_ids)[:, None])
    triples = answer.meta_info.output_token_logprobs
    assert [t[1] for t in triples] == answer.output_ids and len(answer.output_ids) == 4
    assert [t[0] for t in triples] == pytest.approx(scored[:, 0].tolist(), abs=1e-4)
    assert [t[2] for t in triples] == [None] * 4, "the text of each entry only with return_text_in_logprobs"
    fresh = "Name a city. Name a city."  # max_new_tokens 0 prefills: the next request finds the prompt cached
    sglang_api.generate_one(backend, fresh, sglang_api.SamplingParams(max_new_tokens=0))
    again = sglang_api.generate_one(backend, fresh, sglang_api.SamplingParams(max_new_tokens=1, temperature=0))
    assert again.meta_info.cached_tokens == len(tokenizer(fresh).input_ids) - 1


@pytest.mark.points(1)
def test_launch_server_command_line():
    """The real server's argv for a GPU machine; bad settings are ValueErrors naming the flag's field."""
    config = sglang_api.LaunchConfig(model_path=str(fixture_dir()), port=30001, tp=2, mem_fraction_static=0.8,
                                     context_length=2048)
    assert config.command() == ["python", "-m", "sglang.launch_server", "--model-path", str(fixture_dir()),
                                "--host", "127.0.0.1", "--port", "30001", "--tp", "2", "--mem-fraction-static", "0.8",
                                "--context-length", "2048", "--grammar-backend", "xgrammar"]
    defaults = sglang_api.LaunchConfig(model_path="m").command()
    assert "--mem-fraction-static" not in defaults, "an unset mem_fraction_static is left out of the command"
    assert "--context-length" not in defaults, "an unset context_length is left out of the command (not 'None')"
    assert "None" not in defaults, "no unset setting may be written as the text 'None'"
    whole = sglang_api.LaunchConfig(model_path="m", mem_fraction_static=1.0).command()
    assert whole[whole.index("--mem-fraction-static") + 1] == "1.0", "mem_fraction_static is in (0, 1]: 1.0 is allowed"
    edges = sglang_api.LaunchConfig(model_path="m", port=65535, context_length=1).command()
    assert edges[edges.index("--port") + 1] == "65535" and edges[edges.index("--context-length") + 1] == "1"
    for field, value in [("tp", 0), ("mem_fraction_static", 1.5), ("mem_fraction_static", 0), ("context_length", 0),
                         ("grammar_backend", "regex"), ("port", 70000), ("port", 0), ("model_path", "")]:
        with pytest.raises(ValueError, match=field):
            sglang_api.LaunchConfig(**{"model_path": "m", field: value}).command()


@pytest.mark.scaffold
def test_the_same_schema_reuses_its_automaton_and_masks(backend):
    """Given code: a server compiles a pattern once (``grammar.compile_constraint``), so the second request with
    the same schema reuses the first one's automaton and its cached masks; property order is part of the key."""
    from .helpers import grammar

    two_fields = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}},
              "required": ["a", "b"]}
    reordered = {"type": "object", "properties": {"b": {"type": "boolean"}, "a": {"type": "integer"}},
                 "required": ["a", "b"]}
    first = grammar.compile_constraint(json_schema=two_fields)
    assert grammar.compile_constraint(json_schema=json.loads(json.dumps(two_fields))) is first
    assert grammar.compile_constraint(json_schema=json.dumps(two_fields)) is not None
    assert grammar.compile_constraint(json_schema=reordered) is not first
    assert grammar.compile_constraint(regex=r"\d+") is grammar.compile_constraint(regex=r"\d+")
    assert grammar.compile_constraint() is None
    with pytest.raises(ValueError, match="regex and json_schema"):
        grammar.compile_constraint(regex="a", json_schema=two_fields)
    assert backend.masker(first) is backend.masker(grammar.compile_constraint(json_schema=two_fields))
    params = sglang_api.SamplingParams(max_new_tokens=12, temperature=0.0, json_schema=json.dumps(two_fields))
    texts = [sglang_api.generate_one(backend, "A record:", params).text for _ in range(2)]
    assert texts[0] == texts[1]
    masker = backend.masker(grammar.compile_constraint(json_schema=json.dumps(two_fields)))
    assert len(masker._masks) > 0  # the masks the first request computed are there for the next one
