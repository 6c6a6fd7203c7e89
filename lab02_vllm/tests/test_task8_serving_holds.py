"""Serving that holds (given code, not graded): one request that breaks a step fails alone, and a
client that leaves stops its request, on every route, streamed or not.

Both are properties of the given scaffolding (``AsyncLLMEngine``'s loop, the stream guard and
the disconnect watcher in ``server.py``), checked through the same in-process course server as
task 8's tests, with plain HTTP clients.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from .serving_fixtures import (
    API_KEY,
    MAX_MODEL_LEN,
    course_server_fixture,  # noqa: F401  (the fixture course_server)
    course_server_with_key_fixture,  # noqa: F401
    hf_greedy_text,
    require_chat_template,
    wait_until,
)

pytestmark = [pytest.mark.task(8), pytest.mark.scaffold]

GOOD = ["The cat", "Ana lives in Lima and", "A language model", '{"name": "', "Once upon a time",
        "The capital of Peru is", "1, 2, 3,", "Dear Sir,"]
POISON = "Poison pill number"


def model_name(server) -> str:
    return server.app.state.course.model_name


def idle(server) -> bool:
    stats = server.llm.stats
    return stats.num_running == 0 and stats.num_waiting == 0 and stats.num_free_kv_blocks == stats.num_kv_blocks


def gauges(server) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.url + "/metrics").text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name in {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}}


@pytest.mark.parametrize("fail_at", [1, 3], ids=["prefill", "third-step"])
def test_a_request_whose_step_raises_fails_alone(course_server, model, tokenizer, monkeypatch, fail_at):
    """Eight good requests (four streamed) beside two whose step raises (a fault injected in the
    model runner for their prompt, at their first step or their third): the two end in an error
    (a 500 error object; in a stream an error event, then ``[DONE]``), the eight each equal
    their solo greedy text, and the engine is idle again with every block free."""
    assert wait_until(lambda: idle(course_server))
    poison_ids = [tokenizer(f"{POISON} {i}").input_ids for i in range(2)]
    runner = course_server.llm.engine.runner
    real_run = runner.run
    calls = {0: 0, 1: 0}

    def run(seqs, num_new_tokens):  # a step with a poisoned sequence raises on its fail_at-th step
        for i, ids in enumerate(poison_ids):
            if any(seq.prompt_token_ids == ids for seq in seqs):
                calls[i] += 1
                if calls[i] >= fail_at:
                    raise RuntimeError(f"injected fault in poisoned request {i}")
        return real_run(seqs, num_new_tokens)

    monkeypatch.setattr(runner, "run", run)
    name, url = model_name(course_server), course_server.base_url + "/completions"

    def body(prompt: str, stream: bool) -> dict:  # the poisoned ones cannot stop before their fault
        return {"model": name, "prompt": prompt, "max_tokens": 10, "temperature": 0,
                "ignore_eos": prompt.startswith(POISON), "stream": stream}

    async def plain(client: httpx.AsyncClient, prompt: str) -> tuple[int, dict]:
        response = await client.post(url, json=body(prompt, False))
        return response.status_code, response.json()

    async def streamed(client: httpx.AsyncClient, prompt: str) -> tuple[int, list]:
        async with client.stream("POST", url, json=body(prompt, True)) as response:
            raw = "".join([piece async for piece in response.aiter_text()])
        events = [e.removeprefix("data: ") for e in raw.split("\n\n") if e]
        return response.status_code, [e if e == "[DONE]" else json.loads(e) for e in events]

    async def run_all() -> list:
        async with httpx.AsyncClient(timeout=120) as client:
            work = [streamed(client, p) if i % 2 else plain(client, p) for i, p in enumerate(GOOD)]
            work += [streamed(client, f"{POISON} 0"), plain(client, f"{POISON} 1")]
            return await asyncio.gather(*work)

    results = asyncio.run(run_all())
    for i, (prompt, (status, reply)) in enumerate(zip(GOOD, results)):
        expected, _ = hf_greedy_text(model, tokenizer, tokenizer(prompt).input_ids, 10)
        assert status == 200, (prompt, reply)
        if i % 2:
            assert reply[-1] == "[DONE]" and not any("error" in e for e in reply[:-1]), prompt
            assert "".join(e["choices"][0]["text"] for e in reply[:-1] if e["choices"]) == expected, prompt
        else:
            assert reply["choices"][0]["text"] == expected, prompt
    (stream_status, events), (plain_status, error) = results[-2:]
    assert stream_status == 200 and events[-1] == "[DONE]", events
    assert "injected fault" in events[-2]["error"]["message"], events
    assert plain_status == 500 and "injected fault" in error["error"]["message"], error
    assert wait_until(lambda: idle(course_server)), course_server.llm.stats
    assert gauges(course_server) == {"vllm:num_requests_running": 0, "vllm:num_requests_waiting": 0,
                                     "vllm:kv_cache_usage_perc": 0}


def send_then_leave(server, url: str, body: dict, headers: dict | None = None) -> None:
    """Send a request on a raw connection, wait until the engine is generating it, then close the
    connection (as a client that gives up does), streamed or not."""
    target = httpx.URL(url)
    payload = json.dumps(body).encode()
    head = [f"POST {target.raw_path.decode()} HTTP/1.1", f"Host: {target.host}:{target.port}",
            "Content-Type: application/json", f"Content-Length: {len(payload)}",
            *[f"{key}: {value}" for key, value in (headers or {}).items()]]
    before = server.llm.stats.generation_tokens
    with socket.create_connection((target.host, target.port), timeout=30) as connection:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        assert wait_until(lambda: server.llm.stats.generation_tokens >= before + 8, timeout=30), \
            "the request never started"


LONG = MAX_MODEL_LEN - 32


@pytest.mark.parametrize("route", ["completions", "chat", "tgi", "demo", "completions-with-key",
                                   "completions-stream", "chat-stream", "tgi-stream", "demo-stream"])
def test_an_abandoned_request_stops(course_server, course_server_with_key, monkeypatch, route):
    """A client that leaves, streamed or not, on every route (and behind ``--api-key``), stops its
    request within a step or two: within 2 s nothing runs any more, and the engine's
    generation-token counter stops growing, long before the request's ``max_tokens``."""
    if route.startswith("chat"):
        require_chat_template()
    server = course_server_with_key if route.endswith("with-key") else course_server
    headers = {"Authorization": f"Bearer {API_KEY}"} if route.endswith("with-key") else None
    # No eos for the test's duration: every request would run to its full length (TGI's dialect
    # has no ignore_eos), so only an abort can stop it early.
    monkeypatch.setattr(server.llm.engine, "eos_token_ids", set())
    openai_body = {"model": model_name(server), "prompt": "The cat", "max_tokens": LONG, "temperature": 0}
    chat_body = {"model": model_name(server), "messages": [{"role": "user", "content": "Hi"}],
                 "max_tokens": LONG, "temperature": 0}
    tgi_body = {"inputs": "The cat", "parameters": {"max_new_tokens": LONG}}
    demo_body = {"prompt": "The cat", "max_tokens": LONG, "temperature": 0}
    path, body = {
        "completions": ("/v1/completions", openai_body),
        "completions-with-key": ("/v1/completions", openai_body),
        "chat": ("/v1/chat/completions", chat_body),
        "tgi": ("/generate", tgi_body),
        "demo": ("/generate", demo_body),
        "completions-stream": ("/v1/completions", {**openai_body, "stream": True}),
        "chat-stream": ("/v1/chat/completions", {**chat_body, "stream": True}),
        "tgi-stream": ("/generate_stream", tgi_body),
        "demo-stream": ("/generate", {**demo_body, "stream": True}),
    }[route]
    assert wait_until(lambda: idle(server))
    before = server.llm.stats.generation_tokens
    send_then_leave(server, server.url + path, body, headers)
    assert wait_until(lambda: idle(server), timeout=2), f"{route}: still running 2 s after the client left"
    stopped = server.llm.stats.generation_tokens
    time.sleep(0.3)
    assert server.llm.stats.generation_tokens == stopped, f"{route}: the abandoned request kept decoding"
    assert stopped - before < LONG - 64, f"{route}: it ran (nearly) to its max_tokens"


# --------------------------------------------------------------------------------------------
# Requests nobody in the course wrote: vLLM 0.32's answers. Each expected status and param is
# vLLM's (vllm/sampling_params.py `_verify_args`, vllm/renderers/params.py `TokenizeParams`, the
# completion protocol's validators, `validate_json_request`); test_task10 sends the same requests
# to a real vLLM server beside ours.

NAN = '{"prompt": "Hi", "max_tokens": 4, "temperature": NaN}'
HOSTILE = [
    # (what, path, body (a dict, or raw JSON text), status, param)
    ("temperature NaN", "/v1/completions", NAN, 400, "temperature"),
    ("temperature Infinity", "/v1/completions", NAN.replace("NaN", "Infinity"), 400, "temperature"),
    ("temperature 1e300", "/v1/completions", {"prompt": "Hi", "temperature": 1e300}, 400, "temperature"),
    ("temperature 3", "/v1/completions", {"prompt": "Hi", "temperature": 3}, 400, "temperature"),
    ("top_p NaN", "/v1/completions", NAN.replace("temperature", "top_p"), 400, "top_p"),
    ("top_p 1.5", "/v1/completions", {"prompt": "Hi", "top_p": 1.5}, 400, "top_p"),
    ("seed 2**70", "/v1/completions", {"prompt": "Hi", "seed": 2**70}, 400, "seed"),
    ("seed 2**63", "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "seed": 2**63},
     400, "seed"),
    ("max_tokens past max_model_len", "/v1/completions", {"prompt": "Hi", "max_tokens": MAX_MODEL_LEN + 1},
     400, "max_tokens"),
    ("max_tokens 2**70", "/v1/completions", {"prompt": "Hi", "max_tokens": 2**70}, 400, "max_tokens"),
    ("chat max_completion_tokens past max_model_len", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": MAX_MODEL_LEN + 1},
     400, "max_completion_tokens"),
    ("n 2 greedy", "/v1/completions", {"prompt": "Hi", "n": 2, "temperature": 0}, 400, "n"),
    ("n past vLLM's 16384", "/v1/completions", {"prompt": "Hi", "n": 16385}, 400, "n"),
    ("empty prompt", "/v1/completions", {"prompt": ""}, 400, "prompt"),
    ("no token ids", "/v1/completions", {"prompt": []}, 400, "prompt"),
    ("prompt id past the vocabulary", "/v1/completions", {"prompt": [1, 10**8]}, 400, "prompt"),
    ("stop_token_ids past the vocabulary", "/v1/completions", {"prompt": "Hi", "stop_token_ids": [10**8]},
     400, "stop_token_ids"),
    ("stream_options without stream", "/v1/completions",
     {"prompt": "Hi", "stream_options": {"include_usage": True}}, 400, "stream_options"),
    ("top_logprobs without logprobs", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2}, 400, "top_logprobs"),
    ("lone surrogate in a prompt", "/v1/completions", '{"prompt": "a\\ud800b"}', 400, "prompt"),
    ("lone surrogate in a message", "/v1/chat/completions",
     '{"messages": [{"role": "user", "content": "a\\ud800b"}]}', 400, "messages.0.content"),
    ("lone surrogate in TGI's inputs", "/generate", '{"inputs": "a\\ud800b"}', 422, "inputs"),
    ("lone surrogate in a demo prompt", "/generate", '{"prompt": "a\\ud800b"}', 400, "prompt"),
    ("empty TGI inputs", "/generate", {"inputs": ""}, 422, "inputs"),
    # logit_bias and allowed_token_ids are honoured (task 8's tests); vLLM refuses their ids past the
    # vocabulary, a key that is not an id, and an empty allowed list, naming the field.
    ("logit_bias id past the vocabulary", "/v1/completions", {"prompt": "Hi", "logit_bias": {"100000000": 5}}, 400,
     "logit_bias"),
    ("logit_bias key not an id", "/v1/completions", {"prompt": "Hi", "logit_bias": {"cat": 5}}, 400, "logit_bias"),
    ("allowed_token_ids empty", "/v1/completions", {"prompt": "Hi", "allowed_token_ids": []}, 400,
     "allowed_token_ids"),
    ("allowed_token_ids past the vocabulary", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "Hi"}], "allowed_token_ids": [5, 10**8]}, 400, "allowed_token_ids"),
    # Only stop ids allowed, which min_tokens forbids: nothing could ever be sampled (refused before a
    # stream; vLLM 0.32 answers 200 and samples the stop id anyway, breaking min_tokens without a word).
    ("allowed_token_ids all stop ids under min_tokens", "/v1/completions",
     {"prompt": "Hi", "allowed_token_ids": [5], "stop_token_ids": [5], "min_tokens": 2, "stream": True}, 400,
     "allowed_token_ids"),
    # Fields vLLM honours and this engine cannot: refused, naming the field, never ignored.
    ("presence_penalty", "/v1/completions", {"prompt": "Hi", "presence_penalty": 1.0}, 400, "presence_penalty"),
    ("echo with logprobs (vLLM adds the prompt's)", "/v1/completions",
     {"prompt": "Hi", "echo": True, "logprobs": 1}, 400, "echo"),
    ("echo with stream", "/v1/completions", {"prompt": "Hi", "echo": True, "stream": True}, 400, "echo"),
    ("top_logprobs past vLLM's 20", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "Hi"}], "logprobs": True, "top_logprobs": 21}, 400, "top_logprobs"),
    ("response_format json_object", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_object"}}, 400,
     "response_format"),
    ("response_format json_schema", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "Hi"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
     400, "response_format"),
]


def post(server, path: str, body: dict | str, content_type: str = "application/json") -> httpx.Response:
    """POST a dict as JSON (with the served model's name for OpenAI routes), or raw JSON text as is
    (where Python's parser takes what strict JSON does not: NaN, lone surrogates)."""
    if isinstance(body, dict) and path.startswith("/v1/") and "model" not in body:
        body = {"model": model_name(server), **body}
    text = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(server.url + path, content=text.encode("utf-8", "surrogatepass"),
                      headers={"content-type": content_type}, timeout=60)


@pytest.mark.parametrize("what, path, body, status, param", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_requests_get_vllms_status_and_param(course_server, what, path, body, status, param):
    """Each request gets vLLM's status (TGI's dialect: its 422) and an error naming the field; the
    server stays healthy and idle."""
    response = post(course_server, path, body)
    assert response.status_code == status, (what, response.text)
    error = response.json()
    named = error["param"] if status == 422 else error["error"]["param"]
    assert named == param, (what, error)
    message = error["error"] if status == 422 else error["error"]["message"]
    assert message, what
    assert httpx.get(course_server.url + "/health").status_code == 200
    assert wait_until(lambda: idle(course_server))


def test_content_parts_roles_types_and_vllms_other_routes(course_server):
    """Chat content as a list of text parts equals the same text as a string; a ``tool`` message is
    answered (or refused with a 400 naming ``messages``, never a 500); a body that is not
    ``application/json`` is a 400 saying so; ``/version`` and ``/ping`` answer; ``/metrics`` has
    vLLM's preemption and prefix-cache counters; a chat choice carries ``"logprobs": null``."""
    require_chat_template()
    chat = {"max_tokens": 6, "temperature": 0}
    parts = post(course_server, "/v1/chat/completions", {**chat, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]}]})
    joined = post(course_server, "/v1/chat/completions", {**chat, "messages": [
        {"role": "user", "content": "Hi\nthere"}]})
    assert parts.status_code == joined.status_code == 200, parts.text
    assert parts.json()["choices"][0]["message"] == joined.json()["choices"][0]["message"]
    assert parts.json()["choices"][0]["logprobs"] is None
    tool = post(course_server, "/v1/chat/completions", {**chat, "messages": [
        {"role": "user", "content": "What is 6 times 7?"}, {"role": "tool", "content": "42", "tool_call_id": "a"}]})
    assert tool.status_code == 200 or (tool.status_code == 400 and tool.json()["error"]["param"] == "messages")
    image = post(course_server, "/v1/chat/completions", {**chat, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]})
    assert image.status_code == 400 and image.json()["error"]["param"].startswith("messages.0.content")
    plain = post(course_server, "/v1/completions", {"prompt": "Hi"}, content_type="text/plain")
    assert plain.status_code == 400 and "application/json" in plain.json()["error"]["message"]
    version = httpx.get(course_server.url + "/version")
    assert version.status_code == 200 and version.json()["version"]
    assert httpx.get(course_server.url + "/ping").status_code == 200
    assert httpx.post(course_server.url + "/ping").status_code == 200
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f.type for f in text_string_to_metric_families(httpx.get(course_server.url + "/metrics").text)}
    for name in ("vllm:num_preemptions", "vllm:prefix_cache_queries", "vllm:prefix_cache_hits"):
        assert families.get(name) == "counter", name


def test_chat_logprobs_are_the_models(course_server, model, tokenizer):
    """Chat ``logprobs`` with ``top_logprobs``: OpenAI's shape, each chosen token's logprob and
    the top ones equal to transformers' log-softmax over the rendered chat."""
    require_chat_template()
    import torch

    messages = [{"role": "user", "content": "Where does Ana live?"}]
    reply = post(course_server, "/v1/chat/completions", {"messages": messages, "max_tokens": 5, "temperature": 0,
                                                         "logprobs": True, "top_logprobs": 3})
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    ids = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
    _, generated = hf_greedy_text(model, tokenizer, ids, 5)
    with torch.no_grad():
        expected = torch.log_softmax(model(torch.tensor([ids + generated])).logits[0, len(ids) - 1:-1].float(), -1)
    content = choice["logprobs"]["content"]
    assert len(content) == len(generated)
    for step, (token, entry) in enumerate(zip(generated, content)):
        assert entry["token"] == tokenizer.decode([token]) and entry["bytes"] == list(entry["token"].encode())
        assert entry["logprob"] == pytest.approx(float(expected[step, token]), abs=1e-3)
        top = torch.topk(expected[step], 3)
        assert [e["logprob"] for e in entry["top_logprobs"]] == pytest.approx(top.values.tolist(), abs=1e-3)
