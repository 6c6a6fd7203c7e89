"""Task 9: the other ``/generate`` dialects the chapter shows, through their own clients.

TGI's, through ``huggingface_hub.InferenceClient`` (the chapter's TGI client code, unchanged);
vLLM's demo server's, through plain ``requests`` (the chapter's ``python -m
vllm.entrypoints.api_server`` example). Texts are checked against transformers' greedy output.
"""

from __future__ import annotations

import itertools
import json

import httpx
import pytest

from .serving_fixtures import (
    MAX_MODEL_LEN,
    course_server_fixture,  # noqa: F401  (the fixture course_server)
    dialects,
    hf_greedy_text,
    raises_server_errors,
)

pytestmark = pytest.mark.task(9)

PROMPT = "Ana lives in Lima and works as a"


@pytest.fixture
def tgi_client(course_server, monkeypatch):
    """``huggingface_hub.InferenceClient`` on the course server. The course runs with
    ``HF_HUB_OFFLINE=1`` (no model hub), which also stops this client; it only talks to our
    loopback server, so lift it for the test."""
    hub = pytest.importorskip("huggingface_hub", reason="needs huggingface_hub (pip install huggingface_hub)")
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)
    return hub.InferenceClient(course_server.url)


@pytest.mark.points(2)
@raises_server_errors
def test_inference_client_text_generation(tgi_client, model, tokenizer):
    """``InferenceClient(url).text_generation``: TGI is greedy by default; ``details`` carries the
    finish reason in TGI's words, the token count and the tokens."""
    client = tgi_client
    expected, new_ids = hf_greedy_text(model, tokenizer, tokenizer(PROMPT).input_ids, 16)
    assert client.text_generation(PROMPT, max_new_tokens=16) == expected
    detailed = client.text_generation(PROMPT, max_new_tokens=16, details=True)
    assert detailed.generated_text == expected
    assert detailed.details.generated_tokens == len(new_ids)
    assert [t.id for t in detailed.details.tokens] == new_ids
    assert detailed.details.finish_reason == ("eos_token" if tokenizer.eos_token_id in new_ids else "length")
    full = client.text_generation(PROMPT, max_new_tokens=4, return_full_text=True)
    assert full == PROMPT + hf_greedy_text(model, tokenizer, tokenizer(PROMPT).input_ids, 4)[0]


@pytest.mark.points(1)
@raises_server_errors
def test_inference_client_streaming(tgi_client, model, tokenizer):
    """Streamed tokens join to the whole text; with ``details`` the last event carries the whole
    text and the finish reason, the others none."""
    client = tgi_client
    expected, new_ids = hf_greedy_text(model, tokenizer, tokenizer(PROMPT).input_ids, 16)
    pieces = list(client.text_generation(PROMPT, max_new_tokens=16, stream=True))
    assert len(pieces) == len(new_ids) and "".join(pieces) == expected
    events = list(client.text_generation(PROMPT, max_new_tokens=16, stream=True, details=True))
    assert [e.token.id for e in events] == new_ids
    assert all(e.details is None and e.generated_text is None for e in events[:-1])
    assert events[-1].generated_text == expected
    assert events[-1].details.generated_tokens == len(new_ids)
    assert events[-1].details.finish_reason in {"length", "eos_token"}


@pytest.mark.scaffold
def test_inference_client_raises_its_validation_error(tgi_client):
    """Given code: a bad TGI request comes back in TGI's error shape, so the client raises its own
    ``ValidationError`` (with our message naming the field), as it would against real TGI."""
    from huggingface_hub.errors import ValidationError

    with pytest.raises(ValidationError, match="max_new_tokens"):
        tgi_client.text_generation(PROMPT, max_new_tokens=MAX_MODEL_LEN)


@pytest.mark.points(1)
@raises_server_errors
def test_sampling_with_a_seed_reproduces(tgi_client):
    """``do_sample`` with a ``seed``: the same text twice; greedy otherwise whatever the seed."""
    client = tgi_client
    first = client.text_generation("The dog", max_new_tokens=12, do_sample=True, seed=77, temperature=1.0)
    again = client.text_generation("The dog", max_new_tokens=12, do_sample=True, seed=77, temperature=1.0)
    assert first == again
    params = dialects.tgi_sampling_params(dialects.TGIParameters(), 5, MAX_MODEL_LEN)
    assert params.greedy, "TGI parameters without do_sample mean greedy"
    assert params.max_tokens == 100, f"TGI's default max_new_tokens is 100, got {params.max_tokens}"
    assert not dialects.tgi_sampling_params(dialects.TGIParameters(do_sample=True), 5, MAX_MODEL_LEN).greedy
    knob = dialects.tgi_sampling_params(dialects.TGIParameters(top_k=5), 5, MAX_MODEL_LEN)
    assert not knob.greedy and knob.top_k == 5  # a sampling knob alone turns sampling on, as in TGI
    rest = dialects.tgi_sampling_params(dialects.TGIParameters(max_new_tokens=None), 5, MAX_MODEL_LEN)
    assert rest.max_tokens == MAX_MODEL_LEN - 5


@pytest.mark.points(1)
@raises_server_errors
def test_vllm_demo_api_with_requests(course_server, model, tokenizer):
    """vLLM's demo server: ``{"prompt", **sampling}`` gives ``{"text": [prompt + output, ...]}``;
    streaming sends one JSON object a line, each with the texts so far."""
    requests = pytest.importorskip("requests")
    url = course_server.url + "/generate"
    expected, _ = hf_greedy_text(model, tokenizer, tokenizer(PROMPT).input_ids, 16)
    reply = requests.post(url, json={"prompt": PROMPT, "max_tokens": 16, "temperature": 0}, timeout=60)
    assert reply.status_code == 200 and reply.json() == {"text": [PROMPT + expected]}
    two = requests.post(url, json={"prompt": PROMPT, "max_tokens": 16, "temperature": 0, "n": 2}, timeout=60)
    assert two.json()["text"] == [PROMPT + expected] * 2
    with requests.post(url, json={"prompt": PROMPT, "max_tokens": 16, "temperature": 0, "stream": True},
                       stream=True, timeout=60) as streamed:
        lines = [json.loads(line) for line in streamed.iter_lines() if line]
    texts = [line["text"][0] for line in lines]
    assert len(texts) > 1, "the demo API must stream more than one chunk"
    assert texts[-1] == PROMPT + expected, "the last chunk is the prompt plus the whole completion"
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))


@pytest.mark.points(1)
@raises_server_errors
def test_dialects_are_told_apart_and_bad_bodies_refused(course_server, tokenizer):
    """One route, two dialects; an unknown shape is a 400 naming both; bad values name their field, in each
    dialect's own error shape (TGI's 422 validation error, vLLM's 400); the demo server's context check
    counts the default ``max_tokens`` (16) when the body names none."""
    assert dialects.detect_dialect({"inputs": "x", "parameters": {}}) == "tgi"
    assert dialects.detect_dialect({"inputs": "x"}) == "tgi"  # TGI's parameters are optional
    assert dialects.detect_dialect({"prompt": "x", "max_tokens": 3}) == "vllm"
    url = course_server.url + "/generate"
    bare = httpx.post(url, json={"inputs": "The cat"}, timeout=60)
    assert bare.status_code == 200 and isinstance(bare.json()["generated_text"], str)
    unknown = httpx.post(url, json={"text": "x"})
    assert unknown.status_code == 400
    assert "inputs" in unknown.json()["error"]["message"] and "prompt" in unknown.json()["error"]["message"]
    assert httpx.post(url, json=["inputs"]).status_code == 400
    cases = [
        ({"inputs": "Hi", "parameters": {"max_new_tokens": 0}}, "max_new_tokens"),
        ({"inputs": "Hi", "parameters": {"max_new_tokens": MAX_MODEL_LEN}}, "max_new_tokens"),
        ({"inputs": "Hi", "parameters": {"temperature": -1.0}}, "temperature"),
        ({"prompt": "Hi", "max_token": 5}, "max_token"),  # a typo is refused, not ignored
        ({"prompt": "Hi", "temperature": -1}, "temperature"),
        ({"prompt": "Hi", "max_tokens": 0}, "max_tokens"),
    ]
    for body, param in cases:
        response = httpx.post(url, json=body)
        if "inputs" in body:  # TGI's validation error: 422, {"error": message, "error_type": "validation"}
            assert response.status_code == 422 and response.json()["error_type"] == "validation", body
            assert param in response.json()["error"] and response.json()["param"] == param, body
        else:  # vLLM's: 400 and an OpenAI-style error object
            assert response.status_code == 400, body
            assert response.json()["error"]["param"] == param, body
    words = (" ".join(["cat"] * n) for n in range(1, MAX_MODEL_LEN))
    # shorter than the context, but without room for the default 16 tokens
    near_the_end = next(text for text in words if len(tokenizer(text).input_ids) > MAX_MODEL_LEN - 16)
    assert len(tokenizer(near_the_end).input_ids) < MAX_MODEL_LEN, "the prompt itself must fit the context"
    no_room = httpx.post(url, json={"prompt": near_the_end, "temperature": 0}, timeout=60)
    assert no_room.status_code == 400, (
        "a demo body without max_tokens asks for SamplingParams' default 16 tokens: a prompt that leaves "
        f"fewer than 16 of the {MAX_MODEL_LEN} is a 400"
    )
    assert no_room.json()["error"]["param"] == "max_tokens", "the context refusal names max_tokens"
    assert httpx.get(course_server.url + "/health").status_code == 200
