"""Task 3: backends behind one interface, checked against transformers, vLLM, llama.cpp and the openai client."""

import time

import pytest
import torch

from .helpers import backends, error_server, request, sse, streaming_server

pytestmark = pytest.mark.task(3)

PROMPTS = ["The cat", "Ana lives in Lima and works as a", '{"name": "', "A language model predicts the next"]


def drive(backend, requests, seconds: float = 60.0) -> dict[str, list]:
    """Add every request, step until each has finished (or failed); the events per request id."""
    for r in requests:
        backend.add(r)
    events = {r.id: [] for r in requests}
    open_ids = set(events)
    deadline = time.monotonic() + seconds
    while open_ids and time.monotonic() < deadline:
        for event in backend.step():
            events[event.request_id].append(event)
            if event.finished:
                open_ids.discard(event.request_id)
    assert not open_ids, f"requests {sorted(open_ids)} never finished"
    return events


def hf_greedy_forced(model, tokenizer, prompt: str, n: int) -> list[int]:
    """The oracle: argmax of transformers' own logits over the whole sequence, n times, going on
    through eos as ``ignore_eos`` does in vLLM (eos is generated, it just does not stop)."""
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        for _ in range(n):
            logits = model(ids.to(model.device)).logits[0, -1]
            ids = torch.cat([ids, logits.argmax().view(1, 1).cpu()], dim=1)
    return ids[0, -n:].tolist()


@pytest.mark.points(1)
def test_left_pad():
    ids, mask, positions = backends.left_pad([[5, 6, 7], [9], [1, 2]], pad_id=0)
    assert ids == [[5, 6, 7], [0, 0, 9], [0, 1, 2]]
    assert mask == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    assert positions == [[0, 1, 2], [0, 0, 0], [0, 0, 1]]
    prompts = [[3, 3]]
    assert backends.left_pad(prompts, pad_id=4) == ([[3, 3]], [[1, 1]], [[0, 1]])
    assert prompts == [[3, 3]]
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        backends.left_pad([[1], []], pad_id=0)
    with pytest.raises(ValueError, match="prompts"):
        backends.left_pad([], pad_id=0)


@pytest.mark.points(2)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_transformers_backend_matches_generate(model, tokenizer, model_dir, batch_size):
    """Each request's tokens equal transformers' greedy ``generate`` (forced to max_tokens), in
    static batches with left padding, with different lengths in one batch."""
    backend = backends.TransformersBackend(model_dir, batch_size=batch_size, model=model, tokenizer=tokenizer)
    requests = [request(f"r{i}", max_tokens=n, prompt=p) for i, (p, n) in enumerate(zip(PROMPTS, [6, 9, 4, 7]))]
    events = drive(backend, requests)
    for r in requests:
        got = [t for e in events[r.id] for t in e.token_ids]
        assert got == hf_greedy_forced(model, tokenizer, r.prompt, r.max_tokens), r.prompt
        assert sum(e.new_tokens for e in events[r.id]) == r.max_tokens
        assert [e.finished for e in events[r.id]] == [False] * (r.max_tokens - 1) + [True]


@pytest.mark.points(1)
def test_static_batches_wait_for_their_longest_row(model, tokenizer, model_dir):
    """Batch of 2: the third request starts only after *both* rows of the first batch are done,
    including the long one (the cost continuous batching removes)."""
    backend = backends.TransformersBackend(model_dir, batch_size=2, model=model, tokenizer=tokenizer)
    events = drive(backend, [request("short", 2), request("long", 8), request("third", 2)])
    assert events["third"][0].time_s > events["long"][-1].time_s
    assert events["short"][-1].time_s < events["long"][-1].time_s


@pytest.mark.points(3)
@pytest.mark.vllm
@pytest.mark.timeout(600)  # vLLM starts in 20-30 s on 2 idle cores, minutes on a busy machine
def test_vllm_backend_reports_each_new_token_once(vllm_backend, model, tokenizer):
    """Real vLLM through the engine interface: every request gets exactly max_tokens tokens, each
    reported once, equal to transformers' greedy tokens (vLLM's greedy output on the fixture is
    transformers', as doc 02 §6 says), several requests batched in the same steps."""
    requests = [request(f"v{i}", max_tokens=n, prompt=p) for i, (p, n) in enumerate(zip(PROMPTS, [5, 12, 3, 8]))]
    events = drive(vllm_backend, requests, seconds=120)
    for r in requests:
        got = [t for e in events[r.id] for t in e.token_ids]
        assert len(got) == r.max_tokens
        assert got == hf_greedy_forced(model, tokenizer, r.prompt, r.max_tokens)
        assert events[r.id][-1].finished, "the last event of a request must be finished"
        assert not any(e.finished for e in events[r.id][:-1]), "only the last event of a request is finished"
    times = {e.time_s for r in requests for e in events[r.id]}
    assert len(times) < sum(r.max_tokens for r in requests), "some steps should serve several requests"


@pytest.mark.points(1)
@pytest.mark.vllm
@pytest.mark.timeout(600)
def test_vllm_backend_abort_stops_events(vllm_backend):
    events = []
    vllm_backend.add(request("gone", max_tokens=200))
    vllm_backend.add(request("kept", max_tokens=4))
    for _ in range(3):
        events += vllm_backend.step()
    vllm_backend.abort("gone")
    rest = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(e.request_id == "kept" and e.finished for e in events + rest):
        rest += vllm_backend.step()
    assert any(e.request_id == "kept" and e.finished for e in events + rest)
    for _ in range(5):
        rest += vllm_backend.step()
    assert not any(e.request_id == "gone" for e in rest[1:]), "an aborted request must report nothing more"


class CumulativeEngine:
    """A test double with vLLM's ``LLMEngine`` interface (``add_request`` / ``step`` / ``abort_request``):
    each step returns, per request, a ``RequestOutput``-shaped object whose ``outputs[0].token_ids``
    hold *all* tokens so far, from a script of ``(token_ids, finished)`` per step. The last output
    may add no token and only say ``finished``: a ``RequestOutput`` is finished when *all* its
    sequences are, so with ``n > 1`` the step that ends it may add nothing to ``outputs[0]``."""

    def __init__(self, scripts: dict[str, list[tuple[list[int], bool]]]) -> None:
        self.scripts = {rid: list(script) for rid, script in scripts.items()}
        self.requests: list[str] = []

    def add_request(self, request_id, prompt, params) -> None:
        self.requests.append(request_id)

    def abort_request(self, request_ids) -> None:
        for rid in request_ids:
            self.scripts.pop(rid, None)

    def step(self):
        from types import SimpleNamespace

        outputs = []
        for rid in list(self.requests):
            script = self.scripts.get(rid)
            if not script:
                continue
            token_ids, finished = script.pop(0)
            outputs.append(SimpleNamespace(request_id=rid, finished=finished,
                                           outputs=[SimpleNamespace(token_ids=list(token_ids))]))
        return outputs


@pytest.mark.points(0.5)
def test_engine_backend_reports_new_tokens_and_an_end_without_tokens():
    """Cumulative outputs become one event per new token run; an output that only says finished
    (no new token) still ends the request, or the runner would wait for it until its timeout."""
    engine = CumulativeEngine({
        "a": [([7], False), ([7, 8, 9], False), ([7, 8, 9], False), ([7, 8, 9], True)],
        "b": [([4], False), ([4, 5], True)],
    })
    backend = backends.EngineBackend("fake", engine, lambda max_tokens: {"max_tokens": max_tokens}, set())
    events = drive(backend, [request("a", 3), request("b", 2)], seconds=5)
    assert [(e.new_tokens, e.token_ids or [], e.finished) for e in events["a"]] == [
        (1, [7], False), (2, [8, 9], False), (0, [], True)]
    assert [(e.new_tokens, e.token_ids, e.finished) for e in events["b"]] == [(1, [4], False), (1, [5], True)]
    assert backend.step() == []


OPENAI_LINES = sse([
    {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "Hel", "finish_reason": None}]},
    {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "", "finish_reason": None}]},
    {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "lo", "finish_reason": "length"}]},
    {"id": "c", "object": "text_completion", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}},
    "[DONE]",
])


@pytest.mark.points(1.5)
def test_parse_stream_lines():
    """OpenAI completions / chat chunks (text, empty text, usage, [DONE], errors) and TGI's
    ``/generate_stream`` events, as the servers document them."""
    pieces = [backends.parse_stream_line("completions", line) for line in OPENAI_LINES]
    assert [p.text for p in pieces] == ["Hel", "", "lo", "", ""]
    assert [p.tokens for p in pieces] == [1, 1, 1, 0, 0]  # a chunk with choices counts, as in vLLM's client
    assert pieces[3].usage_tokens == 3, "the usage chunk counts 3 completion tokens"
    assert pieces[4].done, "the [DONE] line ends the stream"
    assert not pieces[2].done, "a text chunk does not end the stream"
    chat = backends.parse_stream_line("chat", 'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}')
    assert (chat.text, chat.tokens) == ("Hi", 1)
    role = backends.parse_stream_line("chat", 'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}')
    assert (role.text, role.tokens) == ("", 1)
    assert backends.parse_stream_line("chat", 'data: {"choices": [], "usage": {"completion_tokens": 4}}').tokens == 0
    # vLLM's continuous_usage_stats: a chunk with text *and* usage counts both
    both = backends.parse_stream_line("completions",
                                      'data: {"choices": [{"text": "a"}], "usage": {"completion_tokens": 5}}')
    assert (both.text, both.tokens, both.usage_tokens) == ("a", 1, 5)
    plain = backends.parse_stream_line("completions", 'data: {"error": "overloaded"}')  # an error as a bare string
    assert plain.error == "overloaded"
    for line in ("", ": keep-alive", "event: message"):
        assert backends.parse_stream_line("completions", line) is None
    error = backends.parse_stream_line("completions", 'data: {"error": {"message": "bad things", "code": 500}}')
    assert error.error == "bad things"
    tgi = [backends.parse_stream_line("tgi", line) for line in sse([
        {"index": 1, "token": {"id": 5, "text": " a", "logprob": -0.1, "special": False},
         "generated_text": None, "details": None},
        {"index": 2, "token": {"id": 2, "text": "</s>", "logprob": -0.2, "special": True},
         "generated_text": " a", "details": {"finish_reason": "eos_token", "generated_tokens": 2}},
    ])]
    assert (tgi[0].text, tgi[0].tokens, tgi[0].done) == (" a", 1, False)
    assert (tgi[1].tokens, tgi[1].done, tgi[1].usage_tokens) == (0, True, 2)
    assert backends.parse_stream_line("tgi", 'data:{"error": "overloaded", "error_type": "overloaded"}').error
    # a reply of special tokens only: the last event's generated_text is "" (not null), and it ends the stream
    last = backends.parse_stream_line("tgi", 'data:{"index": 1, "token": {"id": 2, "text": "</s>", "special": true}, '
                                             '"generated_text": "", "details": null}')
    assert (last.tokens, last.done) == (0, True)
    with pytest.raises(ValueError, match="api"):
        backends.parse_stream_line("grpc", "data: {}")
    with pytest.raises(ValueError, match="JSON"):
        backends.parse_stream_line("completions", "data: {oops")


@pytest.mark.points(2)
@pytest.mark.llama_cpp
def test_http_backend_on_a_real_openai_server(llama_server):
    """Against ``llama_cpp.server``: concurrent streamed requests all finish; each one's text
    equals the non-streamed completion the ``openai`` client gets for the same request."""
    import openai

    backend = backends.HTTPBackend(llama_server, api="completions", timeout_s=60)
    requests = [request(f"h{i}", max_tokens=6, prompt=p) for i, p in enumerate(PROMPTS[:3])]
    try:
        events = drive(backend, requests, seconds=120)
    finally:
        backend.close()
    client = openai.OpenAI(base_url=f"{llama_server}/v1", api_key="none")
    for r in requests:
        assert all(e.error is None for e in events[r.id]), events[r.id]
        streamed = "".join(e.text for e in events[r.id])
        expected = client.completions.create(model="fixture", prompt=r.prompt, max_tokens=6, temperature=0.0)
        assert streamed == expected.choices[0].text
        assert 1 <= sum(e.new_tokens for e in events[r.id]) <= 7  # chunks, the last may carry no text
        assert events[r.id][-1].finished


#: A streamed completion of 7 tokens in 4 chunks (one carries 3 tokens, one none: a special token),
#: then the usage chunk (``stream_options.include_usage``) and ``[DONE]``, as vLLM's server sends it.
DELAYED_LINES = sse([
    *({"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": None}]}
      for text in (" Lima", " is a", "", " city")),
    {"id": "c", "object": "text_completion", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 7}},
    "[DONE]",
])
CHUNK_GAP_S = 0.15


@pytest.mark.points(1)
def test_http_backend_stamps_each_chunk_as_it_arrives():
    """A server that sends its 4 chunks 150 ms apart: the backend's chunk stamps are spread over
    the stream as the server wrote them (TTFT ~150 ms, last chunk ~600 ms: a client that reads
    the whole body before parsing it gives every chunk the end time, TTFT = E2EL); the final event
    carries the server's own token count from the usage chunk that comes *before* ``[DONE]``."""
    with streaming_server(DELAYED_LINES, CHUNK_GAP_S) as url:
        backend = backends.HTTPBackend(url, api="completions", model="m", timeout_s=30)
        sent = time.perf_counter()
        try:
            events = drive(backend, [request("d1", max_tokens=7)], seconds=30)["d1"]
        finally:
            backend.close()
    assert all(e.error is None for e in events), events
    chunks = [e for e in events if e.new_tokens]
    assert [e.text for e in chunks] == [" Lima", " is a", "", " city"]
    ttft, e2el = chunks[0].time_s - sent, chunks[-1].time_s - sent
    assert ttft >= CHUNK_GAP_S * 0.9  # the server sleeps before its first chunk
    # 3 gaps of 150 ms between the first and the last chunk (a margin for a busy machine's scheduler)
    assert e2el - ttft >= 1.5 * CHUNK_GAP_S, f"chunks stamped at {[round(e.time_s - sent, 3) for e in chunks]} s"
    assert events[-1].finished, "the last event must be finished"
    assert events[-1].total_tokens == 7, f"the last event must count all 7 tokens, got {events[-1].total_tokens}"


@pytest.mark.points(1)
def test_http_backend_counts_server_errors_and_unreachable_urls():
    """A server answering 500, and a port where nothing listens: every request ends in an error
    event that says what happened; nothing is raised."""
    with error_server(500) as url:
        backend = backends.HTTPBackend(url, api="completions", model="m", timeout_s=10)
        events = drive(backend, [request("e1"), request("e2")], seconds=30)
        backend.close()
    for rid in ("e1", "e2"):
        assert events[rid][-1].error and "500" in events[rid][-1].error and "injected failure" in events[rid][-1].error
    from .helpers import free_port

    backend = backends.HTTPBackend(f"http://127.0.0.1:{free_port()}", api="chat", timeout_s=5)
    events = drive(backend, [request("u1")], seconds=30)
    backend.close()
    assert events["u1"][-1].finished and "cannot reach" in events["u1"][-1].error


@pytest.mark.points(0.5)
def test_http_backend_fails_a_stream_that_errors_or_stalls():
    """An error event after a text chunk fails the request with the server's message (it did not
    finish well); a stream that stalls longer than ``timeout_s`` fails as a timeout, not as an
    unreachable server (httpx's timeouts are HTTP errors too)."""
    text_chunk = {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "Hi"}]}
    broken = sse([text_chunk, {"error": {"message": "boom", "code": 500}}])
    with streaming_server(broken, 0.0) as url:
        backend = backends.HTTPBackend(url, api="completions", model="m", timeout_s=10)
        try:
            events = drive(backend, [request("s1", max_tokens=4)], seconds=30)["s1"]
        finally:
            backend.close()
    assert events[-1].finished and events[-1].error and "boom" in events[-1].error, events
    with streaming_server(DELAYED_LINES, 1.0) as url:  # the first chunk comes after 1 s
        backend = backends.HTTPBackend(url, api="completions", model="m", timeout_s=0.2)
        try:
            events = drive(backend, [request("s2", max_tokens=7)], seconds=30)["s2"]
        finally:
            backend.close()
    assert events[-1].finished and events[-1].error, events
    # httpx's own message for a ReadTimeout is "timed out" too: the backend's must be its own
    assert events[-1].error.startswith("timed out after"), (
        f"a stalled stream is a timeout ('timed out after ...'), not an unreachable server: {events[-1].error!r}"
    )


@pytest.mark.points(1)
@pytest.mark.llama_cpp
def test_llama_cpp_backend_matches_transformers(gguf_path, model, tokenizer):
    """llama.cpp on the F32 GGUF: exactly max_tokens tokens, one per step, equal to transformers'
    greedy tokens for the first 6 (F32 logits agree to about 1e-3)."""
    backend = backends.LlamaCppBackend(gguf_path, name="llama.cpp:F32", n_threads=2)
    for prompt in PROMPTS[:2]:  # llama.cpp tokenizes the text itself: the same ids, or nothing to compare
        if backend.llm.tokenize(prompt.encode()) != tokenizer(prompt).input_ids:
            backend.close()
            pytest.skip(f"llama.cpp tokenizes {prompt!r} otherwise than transformers on this folder (as for "
                        "a Llama-2 SentencePiece tokenizer whose HF config puts no bos first): greedy tokens "
                        "after other prompt ids cannot be compared")
    backend.llm = slow = SlowLlama(backend.llm)
    try:
        events = drive(backend, [request("l0", 6, PROMPTS[0]), request("l1", 6, PROMPTS[1])])
    finally:
        backend.close()
    for rid, prompt in (("l0", PROMPTS[0]), ("l1", PROMPTS[1])):
        got = [t for e in events[rid] for t in e.token_ids]
        assert got == hf_greedy_forced(model, tokenizer, prompt, 6)
    assert slow.prompts == [tokenizer(p).input_ids for p in PROMPTS[:2]], (
        "llama.cpp must be given the prompt as the model sees it, bos first (as transformers tokenizes it)"
    )
    assert events["l1"][0].time_s > events["l0"][-1].time_s, "one request at a time"
    # a token's event is stamped once llama.cpp has produced it, not when the step began
    stamps = [e.time_s for rid in ("l0", "l1") for e in events[rid]]
    assert len(slow.produced_at) >= 12
    assert all(stamp >= made for stamp, made in zip(stamps, slow.produced_at)), "stamped before the token existed"


class SlowLlama:
    """llama-cpp-python's ``Llama`` whose ``generate`` takes 30 ms longer per token (a slower
    machine) and notes when it hands each token over; everything else is the real ``Llama``."""

    def __init__(self, llm):
        self._llm, self.produced_at, self.prompts = llm, [], []

    def generate(self, tokens, *args, **kwargs):
        self.prompts.append(list(tokens))
        for token in self._llm.generate(tokens, *args, **kwargs):
            time.sleep(0.03)
            self.produced_at.append(time.perf_counter())
            yield token

    def __getattr__(self, name: str):
        return getattr(self._llm, name)


@pytest.mark.scaffold
def test_backend_names_are_checked(model_dir):
    with pytest.raises(ValueError, match=r"unknown backend 'tensorrt'.*transformers"):
        backends.make_backend("tensorrt", model_dir)
    with pytest.raises(ValueError, match="batch"):
        backends.make_backend("transformers:many", model_dir)
    with pytest.raises(ValueError, match="url"):
        backends.HTTPBackend("localhost:8000")


@pytest.mark.scaffold
def test_the_radix_backend_streams_lab04s_generator_token_by_token(model_dir):
    """Given code: ``radix`` drives lab 04's ``PrefixCachingGenerator`` one token per step; its tokens equal
    greedy argmax over transformers' logits (eos not special: benchmarks force every token), the second
    request reuses the first one's prefix, and ``radix:no-cache`` gives the same tokens without a tree."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        cached = backends.make_backend("radix", model_dir)
    except backends.BackendUnavailable as error:
        pytest.skip(f"needs lab04 task 4 (the radix cache): {error}")
    plain = backends.make_backend("radix:no-cache", model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    shared = "A long shared system prompt about cats, dogs and the weather in Lima. "
    requests = [request(f"r{i}", 6, shared + question) for i, question in enumerate(["Who?", "Where is it?"])]
    for backend in (cached, plain):
        got = {}
        for r in requests:
            backend.add(r)
            events = []
            while not (events and events[-1].finished):
                events += backend.step()
            assert [e.new_tokens for e in events] == [1] * 6
            got[r.id] = [t for e in events for t in e.token_ids]
        for r in requests:
            ids = tokenizer(r.prompt).input_ids
            with torch.no_grad():
                for _ in range(6):
                    ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
            assert got[r.id] == ids[-6:], (backend.name, r.id)
        backend.close()
    assert cached.generator.radix.total_size() > 0, "with caching the radix tree must keep the prompts"
    assert plain.generator.radix.total_size() == 0, "without caching the radix tree must stay empty"
    assert "radix" in backends.BACKEND_HELP
