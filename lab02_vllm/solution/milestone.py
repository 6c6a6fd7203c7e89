"""Task 12: the chapter's milestone — "serve a 7B model with vLLM at more than 100 tokens/s on
appropriate hardware" — as one command (``course milestone``, or ``python -m
lab02_vllm.solution.milestone``).

It picks what this machine can serve (:func:`choose_backend`), starts that server, sends
concurrent streaming requests through the ``openai`` client (:func:`stream_load`), and reports
output tokens/s, TTFT and TPOT against the goal (:func:`summarize`), with vLLM's definitions
(``vllm bench serve``): TTFT = first token - request sent; TPOT = (last token - first token) /
(output tokens - 1), per request; throughput = all output tokens / wall-clock time.

- GPU and vLLM: real vLLM, on the weights in ``--model`` or, without one, vLLM's dummy (random)
  weights for a Llama-2-7B config (``load_format="dummy"``: no download, same speed);
- GPU, no vLLM: the course engine on the same 7B shape (random bf16 weights written once);
- CPU: vLLM-on-CPU when installed, else the course engine, on the fixture (a 7B model on two
  cores would take minutes per token: the goal is for a GPU; the CPU run shows the method).

Readings: vLLM's ``vllm/benchmarks/serve.py`` (``vllm bench serve``) and its metric
definitions; doc 01 §4's H100 table, the course's measurement (HF ``generate`` needs batch 8 to
pass 100 tokens/s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from shared.validation import check_at_least

#: The chapter's goal, output tokens per second.
GOAL_TOKENS_PER_S = 100.0


@dataclass
class Plan:
    """What to serve: ``backend`` "vllm" or "course"; ``model`` a folder, or "fixture", or
    "llama-2-7b" (a 7B-shaped config with random weights); ``load_format`` "dummy" for vLLM's
    random weights; ``device`` "cuda" or "cpu"; ``note`` says why, for the report."""

    backend: Literal["vllm", "course"]
    model: str
    device: Literal["cuda", "cpu"]
    load_format: Literal["auto", "dummy"] = "auto"
    note: str = ""


def choose_backend(has_cuda: bool, has_vllm: bool, model: str | None = None) -> Plan:
    """Pick the milestone's server for this machine.

    Args:
        has_cuda: an NVIDIA GPU is visible.
        has_vllm: ``vllm`` imports here.
        model: a model folder the user named, or None.

    Returns:
        GPU and vLLM: vllm on ``model``, or on "llama-2-7b" with ``load_format="dummy"`` when none
        is named. GPU, no vLLM: the course engine on ``model`` or "llama-2-7b". No GPU: vllm when
        installed, else the course engine, on ``model`` or "fixture". ``device`` follows the GPU.
        ``note`` names the choice in a sentence.
    """
    # BEGIN SOLUTION task 12: the milestone's server for this machine, as the docstring's table of cases says (README task 12).
    # HINT task 12 level 1: the milestone serves what this machine can and measures it the way vllm bench serve
    #   does. Reading: README task 12, docs/01 §4 (why batching reaches 100 tokens/s), vLLM's benchmark metric
    #   definitions (TTFT, TPOT). choose_backend is a decision table; stream_load an asynchronous client;
    #   summarize the arithmetic.
    # HINT task 12 level 2: four cases (GPU or not, vLLM or not). A model named by the user
    #   always wins; without one a GPU gets the 7B-shaped config (with vLLM's dummy weights when vLLM serves it)
    #   and a CPU the fixture. The note is a sentence a person reads in the report.
    device: Literal["cuda", "cpu"] = "cuda" if has_cuda else "cpu"
    if has_cuda:
        default = "llama-2-7b"
        if has_vllm:
            return Plan("vllm", model or default, device, "auto" if model else "dummy",
                        "real vLLM on the GPU" + ("" if model else ", dummy weights for a Llama-2-7B config"))
        return Plan("course", model or default, device, "auto",
                    "vLLM is not installed here: the course engine on the GPU, on a 7B-shaped model")
    if has_vllm:
        return Plan("vllm", model or "fixture", device, "auto", "no GPU: vLLM on the CPU, on a small model")
    return Plan("course", model or "fixture", device, "auto", "no GPU and no vLLM: the course engine on the CPU")
    # END SOLUTION


@dataclass
class RequestTiming:
    """One streamed request: when it was sent, when each chunk with text arrived
    (``time.perf_counter()``), and how many tokens the server says it generated."""

    sent: float
    chunk_times: list[float] = field(default_factory=list)
    output_tokens: int = 0
    error: str | None = None


async def stream_load(base_url: str, model: str, prompts: list[str] | list[list[int]], max_tokens: int | list[int],
                      concurrency: int, api_key: str = "none") -> list[RequestTiming]:
    """Send every prompt as a streaming completion, at most ``concurrency`` at once, through
    ``openai.AsyncOpenAI``, with ``ignore_eos`` (every request makes ``max_tokens`` tokens, as
    benchmarks do) and ``stream_options.include_usage`` (the token count comes from ``usage``).

    Args:
        prompts: texts, or token-id lists (the OpenAI completions API takes either).
        max_tokens: one output length for every request, or one per prompt.

    Returns:
        One :class:`RequestTiming` per prompt, in the prompts' order. A request that fails keeps
        its ``error`` (the exception's text) instead of raising.
    """
    # BEGIN SOLUTION task 12: send every prompt as a streaming completion, at most concurrency at once, and time each one's chunks; failures are kept, not raised (README task 12; the openai client's async streaming).
    # HINT task 12 level 2: the limit on requests in flight is what concurrency means in vllm bench
    #   serve (--max-concurrency): an asyncio semaphore around each request. sent is stamped when the request is
    #   sent (inside the limit), each chunk that carries text is stamped as it arrives, and the token count
    #   comes from the usage chunk (stream_options include_usage). ignore_eos is not an OpenAI parameter: it
    #   travels in the client's extra body. Results keep the prompts' order.
    # HINT task 12 level 3: check the arguments; one semaphore; one AsyncOpenAI client (no
    #   retries); an async function per prompt that, inside the semaphore, stamps sent, creates the streaming
    #   completion, iterates its chunks stamping text chunks and reading usage, and stores an exception's text
    #   as error; gather them all.
    import httpx
    import openai

    check_at_least("concurrency", concurrency, 1)
    lengths = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prompts)
    for length in lengths:
        check_at_least("max_tokens", length, 1)
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600,
                                  http_client=openai.DefaultAsyncHttpxClient(limits=limits)) as client:

        async def one(prompt: str | list[int], length: int) -> RequestTiming:
            async with gate:
                timing = RequestTiming(sent=time.perf_counter())
                try:
                    stream = await client.completions.create(
                        model=model, prompt=prompt, max_tokens=length, temperature=0, stream=True,
                        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
                    async for chunk in stream:
                        if chunk.choices and chunk.choices[0].text:
                            timing.chunk_times.append(time.perf_counter())
                        if chunk.usage is not None:
                            timing.output_tokens = chunk.usage.completion_tokens
                except Exception as error:  # a benchmark reports failures, it does not stop on them
                    timing.error = f"{type(error).__name__}: {error}"
                return timing

        return list(await asyncio.gather(*[one(p, n) for p, n in zip(prompts, lengths, strict=True)]))
    # END SOLUTION


class MilestoneReport(BaseModel):
    """The milestone's figures (seconds; vLLM's definitions)."""

    backend: str
    model: str
    device: str
    note: str = ""
    completed: int
    failed: int
    concurrency: int
    output_tokens: int
    duration_s: float
    output_tokens_per_s: float
    ttft_mean_s: float
    ttft_p99_s: float
    tpot_mean_s: float | None
    tpot_p99_s: float | None
    goal_tokens_per_s: float = GOAL_TOKENS_PER_S
    passed: bool


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile with linear interpolation (numpy's default, which vLLM uses)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(timings: list[RequestTiming], duration_s: float, plan: Plan, concurrency: int,
              goal_tokens_per_s: float = GOAL_TOKENS_PER_S) -> MilestoneReport:
    """The report for one run.

    Failed requests (``error`` set) count in ``failed`` only. Over the completed ones:
    ``output_tokens`` = sum of their ``output_tokens``; throughput = that / ``duration_s``; per
    request TTFT = first chunk - sent, and, when it made at least 2 tokens, TPOT = (last chunk -
    first chunk) / (output_tokens - 1); their means and 99th percentiles (:func:`percentile`);
    TPOT figures are None when no request made 2 tokens. ``passed``: throughput > the goal.

    Raises:
        ValueError: ``duration_s`` <= 0, or no request completed with a token.
    """
    # BEGIN SOLUTION task 12: the milestone report: throughput, TTFT and TPOT (mean, p99) over the completed requests, and whether it beat the goal (README task 12; the docstring).
    # HINT task 12 level 2: a request is completed when it has no error and at least one chunk. TPOT
    #   exists only for requests of 2+ tokens (None when there is none). The percentile is the given one
    #   (numpy's linear method). passed is strictly above the goal. No completed request is a ValueError that
    #   shows some of the errors.
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    done = [t for t in timings if t.error is None and t.chunk_times]
    if not done:
        errors = sorted({t.error for t in timings if t.error})
        raise ValueError(f"no request completed ({len(timings)} sent; errors: {errors[:3]})")
    tokens = sum(t.output_tokens for t in done)
    ttfts = [t.chunk_times[0] - t.sent for t in done]
    tpots = [(t.chunk_times[-1] - t.chunk_times[0]) / (t.output_tokens - 1) for t in done if t.output_tokens > 1]
    throughput = tokens / duration_s
    return MilestoneReport(
        backend=plan.backend, model=plan.model, device=plan.device, note=plan.note, completed=len(done),
        failed=len(timings) - len(done), concurrency=concurrency, output_tokens=tokens, duration_s=duration_s,
        output_tokens_per_s=throughput, ttft_mean_s=sum(ttfts) / len(ttfts), ttft_p99_s=percentile(ttfts, 99),
        tpot_mean_s=sum(tpots) / len(tpots) if tpots else None, tpot_p99_s=percentile(tpots, 99) if tpots else None,
        goal_tokens_per_s=goal_tokens_per_s, passed=throughput > goal_tokens_per_s,
    )
    # END SOLUTION


# --------------------------------------------------------------------------------------------
# Given: prompts, the 7B folder, starting and stopping a server, the command


def make_prompts(count: int, words: int = 48) -> list[str]:
    """``count`` distinct prompts of about ``words`` words (vLLM's random dataset, in words)."""
    text = ("the cat sat on a warm mat while Ana in Lima wrote records of names ages and cities "
            "a language model predicts the next token from the tokens before it")
    vocabulary = text.split(" ")
    return [" ".join(vocabulary[(i * 7 + j * 3) % len(vocabulary)] for j in range(words)) + f" {i}"
            for i in range(count)]


def seven_b_folder(device: str, with_weights: bool) -> Path:
    """A Llama-2-7B-shaped folder (``shared.models.write_7b_config``), with random bf16 weights
    written next to it when the course engine needs them (13.5 GB, once, cached)."""
    from shared.models import write_7b_config
    from shared.paths import cache_dir

    folder = cache_dir() / "llama-2-7b-shape"
    write_7b_config(folder)
    if with_weights and not list(folder.glob("*.safetensors")):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(folder)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        partial = Path(tempfile.mkdtemp(dir=folder.parent))
        model.save_pretrained(partial, safe_serialization=True)
        for item in partial.glob("*.safetensors*"):
            shutil.move(str(item), folder / item.name)
        shutil.rmtree(partial, ignore_errors=True)
        del model
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(plan: Plan, model_dir: Path, port: int, impl: str, max_model_len: int) -> tuple[list[str], dict]:
    """The command line (and environment) that serves ``plan`` on ``port``."""
    env = dict(os.environ)
    if plan.backend == "vllm":
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                   "--host", "127.0.0.1", "--port", str(port), "--max-model-len", str(max_model_len),
                   "--disable-log-stats"]
        if plan.load_format == "dummy":
            command += ["--load-format", "dummy"]
        if plan.device == "cpu":
            command += ["--dtype", "float32", "--enforce-eager"]
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        return command, env
    folder = {"solution": "solution", "student": "src"}[impl]
    command = [sys.executable, "-c", f"import sys; from lab02_vllm.{folder}.server import main; sys.exit(main(sys.argv[1:]))",
               "--model", str(model_dir), "--port", str(port), "--max-model-len", str(max_model_len),
               "--device", plan.device]
    return command, env


@contextlib.contextmanager
def running_server(command: list[str], env: dict, url: str, timeout_s: float = 900):
    """Start a server process, wait until ``/health`` answers, stop it (Ctrl-C, then kill) after."""
    import httpx

    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                               cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /health within {timeout_s:.0f} s")
            time.sleep(1)
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        os.unlink(log.name)


def run(plan: Plan, *, impl: str = "solution", num_requests: int = 64, concurrency: int = 16,
        max_tokens: int = 128, prompt_words: int = 48) -> MilestoneReport:
    """Serve ``plan``, load it, and report (given)."""
    from shared.models import resolve_model

    if plan.model == "llama-2-7b" and plan.device != "cuda":
        raise ValueError("plan: a 7B model is served on a GPU (13.5 GB of weights, minutes per token on a CPU); "
                         "on a CPU the milestone serves the fixture")
    if plan.model == "llama-2-7b":
        model_dir = seven_b_folder(plan.device, with_weights=plan.backend == "course")
    else:
        model_dir = resolve_model(None if plan.model == "fixture" else plan.model)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = json.loads((model_dir / "config.json").read_text())  # a model's own limit, where it is shorter
    max_model_len = min(1024, config.get("max_position_embeddings") or 1024)
    command, env = server_command(plan, model_dir, port, impl, max_model_len=max_model_len)
    prompts = make_prompts(num_requests, prompt_words)
    with running_server(command, env, url):
        asyncio.run(stream_load(url + "/v1", str(model_dir), prompts[:2], 4, 2))  # warm up
        started = time.perf_counter()
        timings = asyncio.run(stream_load(url + "/v1", str(model_dir), prompts, max_tokens, concurrency))
        duration = time.perf_counter() - started
    return summarize(timings, duration, plan, concurrency)


def print_report(report: MilestoneReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"milestone: {report.backend} on {report.device} — {report.note}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    ms = lambda s: "-" if s is None else f"{s * 1000:.1f} ms"  # noqa: E731
    rows = [("model", report.model), ("requests (completed / failed)", f"{report.completed} / {report.failed}"),
            ("concurrency", str(report.concurrency)), ("output tokens", str(report.output_tokens)),
            ("duration", f"{report.duration_s:.1f} s"),
            ("output tokens/s", f"{report.output_tokens_per_s:,.0f}"),
            ("TTFT mean / p99", f"{ms(report.ttft_mean_s)} / {ms(report.ttft_p99_s)}"),
            ("TPOT mean / p99", f"{ms(report.tpot_mean_s)} / {ms(report.tpot_p99_s)}"),
            ("goal", f"> {report.goal_tokens_per_s:.0f} tokens/s: {'PASSED' if report.passed else 'not met'}")]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    """``course milestone``: choose, serve, load, report. Exit 0 when the run completed."""
    from shared import hardware

    parser = argparse.ArgumentParser(prog="course milestone", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["auto", "vllm", "course"], default="auto")
    parser.add_argument("--model", default=None, help="a model folder (default: 7B dummy on a GPU, fixture on a CPU)")
    own = "solution" if Path(__file__).parent.name == "solution" else "student"
    parser.add_argument("--impl", choices=["student", "solution"], default=own,
                        help=f"with the course backend: serve your src/ or the reference solution/ (default: {own}, "
                             "this file's)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    has_cuda = hardware.detect().has_cuda
    has_vllm = hardware.is_installed("vllm") and hardware.import_error("vllm") is None
    plan = choose_backend(has_cuda, has_vllm, args.model)
    if args.backend != "auto" and args.backend != plan.backend:
        if args.backend == "vllm" and not has_vllm:
            print("course milestone: --backend vllm, but vLLM does not import here")
            return 2
        plan = Plan(args.backend, plan.model, plan.device,
                    "dummy" if args.backend == "vllm" and plan.model == "llama-2-7b" else "auto", f"{args.backend} (asked for)")
    report = run(plan, impl=args.impl, num_requests=args.requests, concurrency=args.concurrency,
                 max_tokens=args.max_tokens)
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.model_dump(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

