"""Task 6 (the server): SGLang's native routes on a FastAPI app, and real SGLang programs run against them.

One uvicorn server per module, on a free loopback port, serving the trained fixture through
``add_sglang_routes``. The programs are SGLang's own (``import sglang as sgl``), unchanged but for
the backend line; each is compared with task 5's in-process frontend on the same model, greedy."""

import itertools
import json
import logging
import re
import socket
import threading
import time

import httpx
import jsonschema
import pytest
import torch

from shared.impl import lab_module

from .helpers import LAB, RECORD, fixture_dir, fixture_model, program, sglang_api

sglang_server = lab_module(LAB, "sglang_server")

pytestmark = pytest.mark.task(6)
__all__ = ["fixture_model"]

QUESTIONS = {"question_1": "What is the capital of Japan?", "question_2": "Give me a user record as JSON."}
CODE = r"[A-Z]{2}-\d{3}"


def chat_template_of(tokenizer, name: str):
    """SGLang's ChatTemplate for a Hugging Face tokenizer, read off its Jinja template around a sentinel.

    RuntimeEndpoint picks a template from ``model_path`` by name patterns; none matches the fixture's
    Zephyr-style ``<|user|>\\n...</s>\\n``, so the test registers this one and names it."""
    from sglang.lang.chat_template import ChatTemplate, register_chat_template

    sentinel, first = "\x00S\x00", {"role": "user", "content": "A"}
    alone = tokenizer.apply_chat_template([first], tokenize=False)
    roles = {}
    for role in ("system", "user", "assistant"):
        both = tokenizer.apply_chat_template([first, {"role": role, "content": sentinel}], tokenize=False)
        before, _, after = both.removeprefix(alone).partition(sentinel)
        roles[role] = (before, after)
    register_chat_template(ChatTemplate(name=name, default_system_prompt=None, role_prefix_and_suffix=roles))
    return name


@pytest.fixture(scope="module")
def server(fixture_model):
    """``(url, service)``: a bare FastAPI app with the SGLang routes, on a free port, for this module."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    model, tokenizer = fixture_model
    service = sglang_server.add_sglang_routes(app, model_dir=fixture_dir(),
                                              backend=program.LocalBackend(model, tokenizer))
    # In-process first: a missing task raises its own NotImplementedError here, not a 500 over HTTP.
    sglang_server.parse_generate({"text": "Hi"})
    sglang_api.generate_one(service.backend, "Hi", sglang_api.SamplingParams(max_new_tokens=1, temperature=0))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    # A 500's traceback, formatted in the server's thread, calls ast.parse (3.11's caret marks) while the
    # failing test's report calls it too: CPython 3.11 shares the AST constructor's depth counter between
    # threads ("SystemError: AST constructor recursion depth mismatch" crashed pytest). Logged as one line.
    errors = logging.getLogger("uvicorn.error")
    errors.addFilter(exception_in_one_line)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", service
    uv.should_exit = True
    thread.join(timeout=10)
    errors.removeFilter(exception_in_one_line)


def exception_in_one_line(record: logging.LogRecord) -> bool:
    """Log filter: a record's exception as its repr on the message's line, no traceback (kept: True)."""
    if record.exc_info:
        record.msg, record.args = f"{record.getMessage().strip()}: {record.exc_info[1]!r}", ()
        record.exc_info = None
    return True


@pytest.fixture(scope="module")
def endpoint(server, fixture_model):
    """The real client: ``sgl.RuntimeEndpoint`` on the course server, with the fixture's chat template."""
    import sglang as sgl

    url, _ = server
    return sgl.RuntimeEndpoint(url, chat_template_name=chat_template_of(fixture_model[1], "course-fixture"))


@pytest.fixture(scope="module")
def local(fixture_model):
    """Task 5's in-process backend on the same model (its own radix cache)."""
    model, tokenizer = fixture_model
    return program.LocalBackend(model, tokenizer)


def both_frontends(build):
    """``build(frontend)`` defines one program; return it written with SGLang's and with task 5's names."""
    import sglang as sgl

    return build(sgl), build(program)


def hf_logprobs(model, ids: list[int]) -> list[float]:
    """``log p(ids[i] | ids[:i])`` for i >= 1, from transformers."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()


@pytest.mark.points(1.5)
def test_model_info_flush_cache_and_bad_requests(server):
    """/get_model_info names the model; /flush_cache empties the radix tree; bad bodies are 400s naming the field."""
    url, service = server
    with httpx.Client(base_url=url, timeout=120) as client:
        assert client.get("/get_model_info").json()["model_path"] == str(fixture_dir())
        body = {"text": "The capital of Japan is", "sampling_params": {"max_new_tokens": 2, "temperature": 0}}
        client.post("/generate", json=body).raise_for_status()
        assert client.post("/generate", json=body).json()["meta_info"]["cached_tokens"] > 0
        assert client.post("/flush_cache").status_code == 200
        assert service.backend.engine.radix.total_size() == 0
        assert client.post("/generate", json=body).json()["meta_info"]["cached_tokens"] == 0
        bad = [({"text": "x", "sampling_params": {"temprature": 0}}, "temprature"),
               ({"text": "x", "sampling_params": {"regex": "a", "json_schema": "{}"}}, "json_schema"),
               ({"text": "x", "sampling_params": {"top_p": 0.5}}, "top_p"),
               ({"text": "x", "sampling_params": {"regex": "(ab"}}, "sampling_params.regex"),
               ({"text": "x", "sampling_params": {"json_schema": '{"type": "intger"}'}},
                "sampling_params.json_schema"),
               ({"text": ["a", "b"], "sampling_params": [{}, {}, {}]}, "sampling_params"),
               ({"text": ["a", "b"], "stream": True}, "stream"),
               ({"text": ""}, "text"),
               ({"sampling_params": {}}, "text and input_ids")]
        size = service.backend.engine.radix.total_size()
        for payload, named in bad:
            response = client.post("/generate", json=payload)
            assert response.status_code == 400, (payload, response.text)
            assert named in response.text, (payload, response.text)
        assert client.post("/generate", content=b"{not json").status_code == 400
        assert service.backend.engine.radix.total_size() == size, "a bad request must be refused before any work"
    from fastapi import FastAPI

    taken = FastAPI()
    taken.post("/generate")(lambda: None)  # as lab02's server, which owns /generate already
    with pytest.raises(ValueError, match="generate"):
        sglang_server.add_sglang_routes(taken, model_dir=fixture_dir(), backend=service.backend)


@pytest.mark.points(1)
def test_chat_to_generate_batches_and_stream_chunks(local, fixture_model):
    """In-process: a structured chat's prompt is the tokenizer's own chat template with the generation prompt
    (tokenized once: one <s>); OpenAI's temperature 0 is greedy and 1 its default; max_completion_tokens (OpenAI's
    current name, which wins when both are sent) or max_tokens limits the answer. Every prompt of a /generate
    batch has its sampling params checked. A stream's chunks hold the text so far and only the last one a
    finish_reason (SGLang's stream)."""
    _, tokenizer = fixture_model
    messages = [{"role": "user", "content": "Give me a user record as JSON."}]
    structured = {"messages": messages, "response_format": {"type": "json_schema",
                                                            "json_schema": {"name": "record", "schema": RECORD}}}
    expected_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=False)
    ids, params = sglang_server.chat_to_generate(tokenizer, {**structured, "temperature": 0,
                                                             "max_completion_tokens": 5, "max_tokens": 9})
    assert ids == expected_ids, "the prompt must be the chat template's token ids"
    assert params.temperature == 0, "temperature from the request (0)"
    assert params.max_new_tokens == 5, ("max_completion_tokens becomes max_new_tokens (5): sent with the "
                                        "deprecated max_tokens (9), it replaces it (OpenAI; lab02's server too)")
    assert json.loads(params.json_schema) == RECORD
    _, params = sglang_server.chat_to_generate(tokenizer, {**structured, "max_tokens": 7, "stop": ["\n"], "n": 1})
    assert params.temperature == 1.0, "temperature defaults to 1.0 like SGLang"
    assert params.max_new_tokens == 7, "max_tokens becomes max_new_tokens (7)"
    assert params.stop == ["\n"], "OpenAI's stop becomes SGLang's stop"
    for change, param in [({"messages": []}, "messages"), ({"messages": None}, "messages"), ({"n": 2}, "n"),
                          ({"response_format": {"type": "json_schema", "json_schema": {"name": "r"}}},
                           "response_format.json_schema.schema"), ({"temperature": -1}, "temperature")]:
        with pytest.raises(sglang_server.BadRequest) as error:
            sglang_server.chat_to_generate(tokenizer, {**structured, **change})
        assert error.value.param == param, (change, error.value.param)
    for body, param in [({"text": "x", "sampling_params": {"temprature": 0}}, "sampling_params.temprature"),
                        ({"text": ["a", "b"], "sampling_params": [{}, {}, {}]}, "sampling_params"),
                        ({"text": "x", "sampling_params": {"json_schema": '{"type": "intger"}'}},
                         "sampling_params.json_schema"),
                        ({"text": ["a", "b"], "stream": True}, "stream"), ({"input_ids": []}, "input_ids")]:
        with pytest.raises(sglang_server.BadRequest) as error:
            sglang_server.parse_generate(body)
        assert error.value.param == param, (body, error.value.param)
    with pytest.raises(sglang_server.BadRequest):
        sglang_server.parse_generate(["not", "an", "object"])
    with pytest.raises(sglang_server.BadRequest, match=re.escape("sampling_params.regex")):
        sglang_server.parse_generate({"text": ["a", "b"], "sampling_params": [{}, {"regex": "(ab"}]})
    for off in (-1, 0):  # SGLang's top_k off: -1, and 0 too
        sglang_server.parse_generate({"text": "a", "sampling_params": {"top_k": off}})
    with pytest.raises(sglang_server.BadRequest, match="top_k"):
        sglang_server.parse_generate({"text": "a", "sampling_params": {"top_k": 5}})
    answer = sglang_api.generate_one(local, "<|user|>\nWhat is the capital of Japan?</s>\n<|assistant|>\n",
                                     sglang_api.SamplingParams(max_new_tokens=12, temperature=0))
    chunks = list(sglang_server.stream_chunks(tokenizer, answer))
    assert len(chunks) > 1 and chunks[-1]["text"] == answer.text
    assert all(answer.text.startswith(c["text"]) for c in chunks)
    assert [c["meta_info"]["completion_tokens"] for c in chunks] == [len(c["output_ids"]) for c in chunks], (
        "each chunk's completion_tokens counts the tokens so far (its output_ids), not the final answer's")
    assert [c["meta_info"]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + [
        answer.meta_info.finish_reason]
    # multi-byte characters split over tokens, and a stop string that cut the text: no chunk shows a broken
    # character or anything past the cut; each chunk's logprobs cover its own tokens
    ids = [*tokenizer("Tokyo 🍕 東京. Done", add_special_tokens=False).input_ids, tokenizer.eos_token_id]
    full = tokenizer.decode(ids, skip_special_tokens=True)
    cut = full[:full.index(".")]
    meta = sglang_api.MetaInfo(id="x", prompt_tokens=1, completion_tokens=len(ids), cached_tokens=0,
                               finish_reason={"type": "stop", "matched": "."},
                               output_token_logprobs=[(-1.0, i, None) for i in ids])
    made = sglang_api.GenerateResponse(text=cut, output_ids=ids, meta_info=meta)
    chunks = list(sglang_server.stream_chunks(tokenizer, made))
    texts = [c["text"] for c in chunks]
    assert texts[-1] == cut and all(cut.startswith(t) and "\ufffd" not in t for t in texts), texts
    assert all(len(a) < len(b) for a, b in itertools.pairwise(texts[:-1])), "a chunk only when the text grew"
    assert {"Tokyo", "Tokyo 🍕", "Tokyo 🍕 東京"} <= set(texts), texts
    assert all(len(c["meta_info"]["output_token_logprobs"]) == len(c["output_ids"]) for c in chunks)


@pytest.mark.sglang
@pytest.mark.points(2)
def test_multi_turn_qa_runs_unchanged(endpoint, local):
    """The chapter's multi_turn_qa, as SGLang's docs write it, gives task 5's text and answers (greedy)."""

    def build(sgl):
        @sgl.function
        def multi_turn_qa(s, question_1, question_2):
            s += sgl.system("You answer in one short sentence.")
            s += sgl.user(question_1)
            s += sgl.assistant(sgl.gen("answer_1", max_tokens=48))
            s += sgl.user(question_2)
            s += sgl.assistant(sgl.gen("answer_2", max_tokens=48))

        return multi_turn_qa

    real, ours = both_frontends(build)
    state = real.run(**QUESTIONS, temperature=0, backend=endpoint)
    expected = ours.run(**QUESTIONS, temperature=0, backend=local)
    assert state["answer_1"] == expected["answer_1"] and state["answer_2"] == expected["answer_2"]
    assert state.text() == expected.text(), "the program's text must equal the reference run's text"
    assert state.messages() == expected.messages(), "the program's messages must equal the reference run's messages"
    assert state.get_meta_info("answer_2")["cached_tokens"] > 0, "turn 2 should reuse turn 1's KV on the server"


@pytest.mark.sglang
@pytest.mark.points(2)
def test_regex_and_json_schema_programs(endpoint, local):
    """gen(regex=) fully matches, gen(json_schema=) validates (jsonschema); greedy equals task 5; sampled is valid."""

    def build(sgl):
        @sgl.function
        def record(s):
            s += sgl.user("Give me a user record as JSON.")
            s += sgl.assistant(sgl.gen("record", json_schema=json.dumps(RECORD), max_tokens=60))
            s += "Code: " + sgl.gen("code", regex=CODE, max_tokens=10)

        return record

    real, ours = both_frontends(build)
    greedy = real.run(temperature=0, backend=endpoint)
    assert greedy["record"] == ours.run(temperature=0, backend=local)["record"]
    for state in (greedy, real.run(temperature=1.0, backend=endpoint)):
        jsonschema.validate(json.loads(state["record"]), RECORD)
        assert re.fullmatch(CODE, state["code"], re.ASCII), state["code"]


@pytest.mark.sglang
@pytest.mark.points(2)
def test_select_and_fork(endpoint, local, fixture_model):
    """select: the prompt logprobs the server sends are transformers'; the choice is SGLang's rule on them.
    fork: branches answer as task 5's fork does."""
    import sglang as sgl

    model, tokenizer = fixture_model
    prefix, choices = "The capital of Japan is ", ["Lima", "Seoul", "Tokyo", "the city of Lima in Peru"]

    @sgl.function
    def pick(s):
        s += prefix
        s += sgl.select("city", choices=choices)

    state = pick.run(backend=endpoint)
    meta = state.get_meta_info("city")
    start = max(len(tokenizer(prefix).input_ids) - 2, 0)  # RuntimeEndpoint's token healing window
    means = []
    for choice, got in zip(choices, meta["input_token_logprobs"], strict=True):
        ids = tokenizer(prefix + choice).input_ids
        reference = hf_logprobs(model, ids)
        tail = [(reference[i - 1], ids[i]) for i in range(start, len(ids)) if i >= 1]
        assert [t for _, t, _ in got] == [t for _, t in tail][-len(got):]
        assert [lp for lp, _, _ in got] == pytest.approx([lp for lp, _ in tail][-len(got):], abs=1e-3)
        means.append(sum(lp for lp, _ in tail[-len(got):]) / len(got))
    assert state["city"] == choices[max(range(len(choices)), key=means.__getitem__)]

    def build(frontend):
        @frontend.function
        def tips(s):
            s += frontend.user("Give me a user record as JSON.")
            s += frontend.assistant(frontend.gen("first", max_tokens=40))
            forks = s.fork(2)
            for i, f in enumerate(forks):
                f += frontend.user(f"Question {i}: what is the capital of Japan?")
                f += frontend.assistant(frontend.gen("answer", max_tokens=12))
            s += "Answers: " + forks[0]["answer"] + " | " + forks[1]["answer"]

        return tips

    real, ours = both_frontends(build)
    got, expected = real.run(temperature=0, backend=endpoint), ours.run(temperature=0, backend=local)
    assert got["first"] == expected["first"] and got.text() == expected.text()


@pytest.mark.sglang
@pytest.mark.points(1.5)
def test_streaming_and_openai_response_format(server, endpoint, local, fixture_model):
    """stream=True: SGLang's data: lines, ending [DONE], joined by the real client into task 5's answer;
    OpenAI's response_format json_schema through the openai client validates."""
    import openai
    import sglang as sgl

    @sgl.function
    def ask(s):
        s += sgl.user("What is the capital of Japan?")
        s += sgl.assistant(sgl.gen("answer", max_tokens=30))

    state = ask.run(temperature=0, backend=endpoint, stream=True)
    pieces = list(state.text_iter("answer"))
    assert len(pieces) > 1 and "".join(pieces) == state["answer"]

    @program.function
    def ask_local(s):
        s += program.user("What is the capital of Japan?")
        s += program.assistant(program.gen("answer", max_tokens=30))

    assert state["answer"] == ask_local.run(temperature=0, backend=local)["answer"]
    url, _ = server
    body = {"text": "Code: ", "sampling_params": {"max_new_tokens": 10, "temperature": 0, "regex": CODE},
            "stream": True}
    with httpx.Client(base_url=url, timeout=120) as client, client.stream("POST", "/generate", json=body) as response:
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    texts = [c["text"] for c in chunks]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts)), texts
    assert re.fullmatch(CODE, texts[-1]) and chunks[-1]["meta_info"]["finish_reason"] is not None

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    completion = client.chat.completions.create(
        model="fixture", messages=[{"role": "user", "content": "Give me a user record as JSON."}], temperature=0,
        max_tokens=60, response_format={"type": "json_schema", "json_schema": {"name": "record", "schema": RECORD}})
    jsonschema.validate(json.loads(completion.choices[0].message.content), RECORD)
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client.chat.completions.create(model="fixture", messages=[{"role": "user", "content": "Hi"}],
                                       response_format={"type": "json_object"})


@pytest.mark.scaffold
def test_openai_chat_route_streams_and_checks_like_vllm(server):
    """Given code: the OpenAI chat route streams (OpenAI's chunks, joined into the unstreamed
    answer, then ``[DONE]``), checks ``max_tokens`` and the context as vLLM does (400 naming the
    field) and the schema (a 400 when task 1 cannot compile it), names a misspelt sampling field by
    its dotted name, and refuses a lone surrogate."""
    import openai

    url, _ = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    schema = {"type": "json_schema", "json_schema": {"name": "record", "schema": RECORD}}
    ask = dict(model="fixture", messages=[{"role": "user", "content": "Give me a user record as JSON."}],
               temperature=0, max_tokens=40, response_format=schema)
    whole = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [], "the usage chunk has no choices"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens, (
        "the usage chunk must count the same completion tokens as the whole reply"
    )
    context = json.loads((fixture_dir() / "config.json").read_text())["max_position_embeddings"]
    long = "word " * context
    with httpx.Client(base_url=url, timeout=120) as http:
        cases = [({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": 0}, "max_completion_tokens"),
                 ({"max_tokens": context + 1}, "max_tokens"),
                 ({"messages": [{"role": "user", "content": long}]}, "input_tokens"),
                 # a schema task 1 cannot compile is refused before any work (a 400, not a 500 from the worker)
                 ({"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {
                     "type": "string", "pattern": "a+"}}}}, "response_format.json_schema.schema")]
        for change, param in cases:
            body = {"messages": ask["messages"], "response_format": schema, **change}
            response = http.post("/v1/chat/completions", json=body)
            assert response.status_code == 400 and response.json()["error"]["param"] == param, (change, response.text)
        typo = http.post("/generate", json={"text": "x", "sampling_params": {"temprature": 0}})
        assert typo.status_code == 400 and typo.json()["error"]["param"] == "sampling_params.temprature"
        surrogate = http.post("/generate", content=b'{"text": "a\\ud800b"}',
                              headers={"content-type": "application/json"})
        assert surrogate.status_code == 400 and surrogate.json()["error"]["param"] == "text"


def send_then_leave(url: str, path: str, body: dict, started) -> None:
    """POST ``body`` on a raw connection, wait until ``started()``, then close the connection, as a
    client that gives up does."""
    target = httpx.URL(url)
    payload = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {target.host}:{target.port}", "Content-Type: application/json",
            f"Content-Length: {len(payload)}"]
    with socket.create_connection((target.host, target.port), timeout=30) as connection:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        deadline = time.monotonic() + 30
        while not started():
            assert time.monotonic() < deadline, "the request never started"
            time.sleep(0.01)


@pytest.mark.scaffold
@pytest.mark.parametrize("route", ["generate", "generate-stream", "chat"])
def test_an_abandoned_request_stops_and_frees_the_queue(server, route):
    """Given code: a client that leaves stops its request before the next token, streamed or not, on
    /generate and the structured chat route: the model's forward passes stop within a moment, long
    before ``max_new_tokens``, and a request queued behind it is answered."""
    url, service = server
    context = json.loads((fixture_dir() / "config.json").read_text())["max_position_embeddings"]
    long = context - 32
    path, body = {
        "generate": ("/generate", {"text": "The cat", "sampling_params": {
            "max_new_tokens": long, "temperature": 0, "ignore_eos": True}}),
        "generate-stream": ("/generate", {"text": "The cat", "stream": True, "sampling_params": {
            "max_new_tokens": long, "temperature": 0, "ignore_eos": True}}),
        # a schema with no end (a string without maxLength): only an abort stops it early
        "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": long,
                                          "temperature": 0, "response_format": {"type": "json_schema", "json_schema": {
                                              "name": "s", "schema": {"type": "string"}}}}),
    }[route]
    passes = []
    hook = service.backend.model.register_forward_hook(lambda *_: passes.append(None))
    try:
        send_then_leave(url, path, body, lambda: len(passes) >= 8)
        assert service.lock.acquire(timeout=5), f"{route}: still generating 5 s after the client left"
        service.lock.release()
        stopped = len(passes)
        time.sleep(0.3)
        assert len(passes) == stopped, f"{route}: the abandoned request kept running the model"
        assert stopped < long - 64, f"{route}: it ran (nearly) to its max_new_tokens ({stopped} forward passes)"
    finally:
        hook.remove()
    with httpx.Client(base_url=url, timeout=60) as http:
        after = http.post("/generate", json={"text": "Hi", "sampling_params": {"max_new_tokens": 2, "temperature": 0}})
    assert after.status_code == 200, after.text


@pytest.mark.scaffold
def test_course_serve_sglang_checks_chats_as_its_own_routes(server):
    """Given code: ``course serve --sglang`` (lab02's app with this service) checks a structured chat
    as it checks any chat (an unknown model is a 404, a prompt past its ``--max-model-len`` a 400
    naming ``input_tokens``, ``max_tokens`` 0 a 400), and answers ``response_format: json_object``
    with a JSON object."""
    import asyncio

    from shared.impl import lab_module as module_of

    _, service = server
    lab02_server = module_of("lab02_vllm", "server")
    engine = lab02_server.load_engine(str(fixture_dir()), max_model_len=128)
    app = lab02_server.build_app(engine)
    app.state.sglang = service  # what `course serve --sglang` does through add_sglang_routes
    name = app.state.course.model_name
    schema = {"type": "json_schema", "json_schema": {"name": "record", "schema": RECORD}}
    ask = {"model": name, "messages": [{"role": "user", "content": "Give me a user record as JSON."}],
           "temperature": 0, "max_tokens": 40, "response_format": schema}

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://course", timeout=120) as client:
            bodies = [ask, {**ask, "model": "nope"}, {**ask, "max_tokens": 0},
                      {**ask, "messages": [{"role": "user", "content": "word " * 200}]},
                      {**ask, "response_format": {"type": "json_object"}}]
            return [await client.post("/v1/chat/completions", json=body) for body in bodies]

    good, unknown, zero, long, any_object = asyncio.run(run())
    assert good.status_code == 200, good.text
    jsonschema.validate(json.loads(good.json()["choices"][0]["message"]["content"]), RECORD)
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"
    assert zero.status_code == 400 and zero.json()["error"]["param"] == "max_tokens"
    assert long.status_code == 400 and long.json()["error"]["param"] == "input_tokens", long.text
    assert any_object.status_code == 200, any_object.text
    content = any_object.json()["choices"][0]["message"]["content"]
    if any_object.json()["choices"][0]["finish_reason"] == "stop":
        assert isinstance(json.loads(content), dict)
    else:  # cut by max_tokens: still the start of an object
        assert content.lstrip().startswith("{")
