"""``course bench``: measure backends on one workload and write JSON, Markdown and plots.

    course bench                                  the default comparison on the fixture (about 2 min)
    course bench --backends vllm,llama.cpp:Q4_0 --workload shared_prefix --concurrency 1,4,16
    course bench --backends http:http://127.0.0.1:8000 --rate 4 --requests 64
    course bench compare A.json B.json            each figure of B as a ratio of A's

(also ``python lab05_benchmark/bench.py ...``). It runs *your* lab05 code (``src/``) by default;
``--impl solution`` runs the reference. The lab02 engine backend follows the same ``--impl``.
Every backend that cannot run here is reported as skipped with the reason; a request that fails
is counted, never fatal; Ctrl-C writes what was measured so far (exit code 130).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_BACKENDS = "transformers,transformers:8,engine,vllm,llama.cpp:F32,llama.cpp:Q4_0"
WORKLOAD_KINDS = ("fixed", "chat", "shared_prefix", "multi_turn")


class UsageError(Exception):
    """A mistake on the command line: one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=DEFAULT_BACKENDS,
                        help=f"comma-separated (default {DEFAULT_BACKENDS}); names: transformers, "
                             "transformers:BATCH, engine, vllm, engine:no-prefix-cache, vllm:no-prefix-cache, "
                             "llama.cpp[:F32|Q8_0|Q4_0|Q4_K_M], radix, radix:no-cache (lab 04), http:URL, "
                             "http+chat:URL, tgi:URL")
    parser.add_argument("--workload", default="chat",
                        help=f"one of {', '.join(WORKLOAD_KINDS)}, or a .jsonl file written by --save-workload")
    parser.add_argument("--requests", type=int, default=32, help="requests in a generated workload (default 32)")
    parser.add_argument("--output-len", type=int, default=24, help="output tokens (median for chat; default 24)")
    parser.add_argument("--input-len", type=int, default=32, help="prompt tokens (median for chat; default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", default="1,8",
                        help="comma-separated requests in flight, one run each (default 1,8)")
    parser.add_argument("--rate", type=float, default=None, help="Poisson arrivals per second instead of concurrency")
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2, help="warm-up requests before measuring (default 2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds")
    parser.add_argument("--goodput", default=None, metavar="ttft:MS,tpot:MS,e2el:MS",
                        help="latency targets in ms for goodput")
    parser.add_argument("--model", default=None, help="a local HF model folder (default: the fixture)")
    parser.add_argument("--impl", choices=["student", "solution"], default=os.environ.get("COURSE_IMPL", "student"))
    parser.add_argument("--out", default="bench_results", help="output folder (default ./bench_results)")
    parser.add_argument("--save-workload", default=None, metavar="PATH", help="also write the workload as JSONL")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and llama.cpp (default: theirs; 1 is steadier on a busy machine)")
    parser.add_argument("--perplexity", action="store_true",
                        help="also measure llama.cpp's perplexity of each llama.cpp backend on the corpus")
    parser.add_argument("--same-process", action="store_true",
                        help="measure every backend in this process (default: one process per backend, "
                             "so that memory figures are each backend's own)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _parse_ints(name: str, text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UsageError(f"--{name} values must be at least 1, got {text!r}")
    return values


def _parse_goodput(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    targets = {}
    for part in text.split(","):
        key, _, value = part.partition(":")
        # leak-check: allowed, the command line's own check of --goodput, before task 2's metrics see it
        if key not in ("ttft", "tpot", "e2el"):
            raise UsageError(f"--goodput: unknown target {key!r} (use ttft, tpot, e2el)")
        try:
            targets[key] = float(value)
        except ValueError:
            raise UsageError(f"--goodput: {key} needs a number of ms, got {value!r}") from None
    return targets


def _check_backend_names(specs: list[str]) -> None:
    known = ("transformers", "engine", "vllm", "llama.cpp", "radix", "http", "http+chat", "tgi")
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind not in known:
            raise UsageError(f"unknown backend {spec!r}: choose from transformers, transformers:BATCH, engine, "
                             "vllm, llama.cpp[:TYPE], radix[:no-cache], http:URL, http+chat:URL, tgi:URL")
        if kind in ("http", "http+chat", "tgi") and not arg.startswith(("http://", "https://")):
            raise UsageError(f"backend {spec!r}: give the server's URL, such as {kind}:http://127.0.0.1:8000")


def _make(backends, spec: str, model_dir: Path, impl: str, timeout: float):
    """A backend by name, with the prefix-cache switch for the two engines."""
    if spec in ("vllm:no-prefix-cache", "engine:no-prefix-cache"):
        kind = spec.split(":")[0]
        backend = (backends.make_vllm_backend(model_dir, prefix_caching=False) if kind == "vllm"
                   else backends.make_engine_backend(model_dir, impl=impl, prefix_caching=False))
        backend.name = spec
        return backend
    return backends.make_backend(spec, model_dir, impl=impl, timeout_s=timeout)


def _perplexity(gguf_path: Path, impl: str) -> float:
    """llama.cpp's perplexity on 40 corpus sentences (the same ones for every GGUF type), through
    lab 03 task 5's ``perplexity`` (``--impl`` picks whose); each sentence is its own window."""
    from llama_cpp import Llama

    from shared.impl import import_lab_module
    from shared.models import corpus_documents

    run = import_lab_module("lab03_llama_cpp", "run", impl)
    sentences = [d for d in corpus_documents() if "<|" not in d and not d.startswith("{")][:40]
    llm = Llama(model_path=str(gguf_path), n_ctx=512, logits_all=True, verbose=False, n_threads=1)
    ids = [llm.tokenize(text.encode("utf-8"), add_bos=True)[:512] for text in sentences]
    # One window per sentence: the mean over sentences of their token log-likelihoods, weighted by length.
    nll = sum((len(t) - 1) * math.log(run.perplexity(llm, t, window=len(t))) for t in ids if len(t) > 1)
    return math.exp(nll / sum(len(t) - 1 for t in ids if len(t) > 1))


def _run_in_child(args: argparse.Namespace, spec: str, workload_path: Path, out: Path, report_mod, runner,
                  console) -> tuple[list, bool]:
    """Measure one backend in its own process (``bench.py --same-process``), so that its memory
    is its own and what an earlier backend left in this process does not count against it.
    Returns its runs and whether it was interrupted (Ctrl-C reaches the child too: it writes
    what it measured, and so does this process)."""
    import subprocess

    child_out = out / "backends" / "".join(c if c.isalnum() or c in "._-" else "_" for c in spec)
    command = [sys.executable, str(Path(__file__).resolve()), "--backends", spec, "--workload", str(workload_path),
               "--repetitions", str(args.repetitions), "--warmup", str(args.warmup), "--timeout", str(args.timeout),
               "--impl", args.impl, "--out", str(child_out), "--no-plots", "--same-process"]
    command += ["--rate", str(args.rate)] if args.rate is not None else ["--concurrency", args.concurrency]
    for flag, value in (("--threads", args.threads), ("--goodput", args.goodput), ("--model", args.model)):
        if value is not None:
            # leak-check: allowed, building a child's command line
            command += [flag, str(value)]
    command += [flag for flag, on in (("--perplexity", args.perplexity), ("--no-progress", args.no_progress)) if on]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    # leak-check: allowed, the bench's own Ctrl-C bookkeeping around task 4's runner, which keeps its own
    interrupted = False
    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:  # the child got it too; wait for it to write its results
            # leak-check: allowed, the bench's own Ctrl-C bookkeeping around task 4's runner
            interrupted = True
    result = child_out / "result.json"
    if not result.exists():
        reason = f"its process ended with code {code} before writing a result"
        console.print(f"[red]{spec}: failed[/red]: {reason}")
        return [runner.BackendRun(backend=spec, status="failed", reason=reason)], interrupted or code == 130
    child_report = report_mod.load_report(result)
    return child_report.runs, interrupted or child_report.interrupted


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from shared.impl import import_lab_module
    from shared.models import resolve_model

    console = Console(stderr=True)
    specs = [s.strip() for s in args.backends.split(",") if s.strip()]
    if not specs:
        raise UsageError("--backends must name at least one backend")
    _check_backend_names(specs)
    loads = [None] if args.rate is not None else _parse_ints("concurrency", args.concurrency)
    goodput = _parse_goodput(args.goodput)
    for name in ("requests", "output_len", "input_len", "repetitions"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.rate is not None and not args.rate > 0:
        raise UsageError(f"--rate must be positive, got {args.rate}")
    try:
        model_dir = resolve_model(args.model)
    except ValueError as error:
        raise UsageError(str(error)) from None

    os.environ["COURSE_IMPL"] = args.impl
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
        os.environ["COURSE_BENCH_THREADS"] = str(args.threads)
    workloads = import_lab_module("lab05_benchmark", "workloads", args.impl)
    backends = import_lab_module("lab05_benchmark", "backends", args.impl)
    runner = import_lab_module("lab05_benchmark", "runner", args.impl)
    report_mod = import_lab_module("lab05_benchmark", "report", args.impl)
    choose = import_lab_module("lab05_benchmark", "choose", args.impl)
    metrics = import_lab_module("lab05_benchmark", "metrics", args.impl)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    n, out_len, in_len = args.requests, args.output_len, args.input_len
    if args.workload.endswith(".jsonl") or Path(args.workload).is_file():
        try:
            workload = workloads.load_jsonl(args.workload)
        except ValueError as error:
            raise UsageError(str(error)) from None
    elif args.workload == "fixed":
        workload = workloads.fixed_workload(tokenizer, n, in_len, out_len, args.seed)
    elif args.workload == "chat":
        workload = workloads.chat_workload(tokenizer, n, args.seed, input_median=in_len, output_median=out_len)
    elif args.workload == "shared_prefix":
        workload = workloads.shared_prefix_workload(tokenizer, n, 4 * in_len, max(4, in_len // 4), out_len, args.seed)
    elif args.workload == "multi_turn":
        workload = workloads.multi_turn_workload(tokenizer, max(1, n // 4), 4, in_len, out_len, args.seed)
    else:
        raise UsageError(f"--workload must be one of {', '.join(WORKLOAD_KINDS)} or a .jsonl file, "
                         f"got {args.workload!r}")
    if args.save_workload:
        workloads.save_jsonl(workload, args.save_workload)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs, interrupted = [], False
    config = {"backends": specs, "concurrency": loads, "rate": args.rate, "repetitions": args.repetitions,
              "warmup": args.warmup, "timeout_s": args.timeout, "goodput_ms": goodput, "model": str(model_dir),
              "impl": args.impl, "argv": sys.argv[1:]}
    console.print(f"[bold]course bench[/bold]: {len(specs)} backends × {len(loads)} loads, "
                  f"workload {workload.name} ({len(workload.requests)} requests), model {model_dir.name}")
    isolate = len(specs) > 1 and not args.same_process
    try:
        for spec in specs:
            if isolate:
                child_runs, child_interrupted = _run_in_child(args, spec, workloads.save_jsonl(
                    workload, out / "workload.jsonl"), out, report_mod, runner, console)
                runs += child_runs
                if child_interrupted:
                    raise KeyboardInterrupt
                continue
            started = time.perf_counter()
            sampler = metrics.MemorySampler()
            before = sampler.sample()
            try:
                with sampler:
                    backend = _make(backends, spec, model_dir, args.impl, args.timeout)
            except backends.BackendUnavailable as error:
                console.print(f"[yellow]{spec}: skipped[/yellow]: {error}")
                runs.append(runner.BackendRun(backend=spec, status="skipped", reason=str(error)))
                continue
            except KeyboardInterrupt:
                raise
            except Exception as error:  # one backend failing to start must not end the run
                first = str(error).splitlines()[0] if str(error) else ""
                console.print(f"[red]{spec}: could not start[/red]: {type(error).__name__}: {first}")
                runs.append(runner.BackendRun(backend=spec, status="failed", reason=f"{type(error).__name__}: {first}"))
                continue
            start_s = time.perf_counter() - started
            console.print(f"{spec}: ready in {start_s:.1f} s, measuring")
            extra = {}
            if args.perplexity and spec.startswith("llama.cpp"):
                try:
                    extra["perplexity"] = round(_perplexity(backend.path, args.impl), 3)
                    console.print(f"{spec}: perplexity {extra['perplexity']}")
                except (NotImplementedError, ImportError) as error:  # lab 03 task 5 not written (yet)
                    console.print(f"[yellow]{spec}: no perplexity[/yellow]: {str(error).splitlines()[0]}")
            try:
                for load in loads:
                    shaped = (workloads.with_arrivals(workload, rate=args.rate) if args.rate is not None
                              else workloads.with_arrivals(workload, concurrency=load))
                    run = runner.run_benchmark(backend, shaped, warmup=args.warmup, repetitions=args.repetitions,
                                               timeout_s=args.timeout, goodput_ms=goodput,
                                               progress=not args.no_progress)
                    run.start_s = start_s
                    run.peak_rss_bytes = max(run.peak_rss_bytes or 0, sampler.peak_rss_bytes)
                    run.config["rss_before_mib"] = round(before / 2**20, 1)
                    run.config.update(extra)
                    runs.append(run)
                    if run.status == "interrupted":
                        raise KeyboardInterrupt
            finally:
                backend.close()
                del backend
                gc.collect()
    except KeyboardInterrupt:
        # leak-check: allowed, the bench's own Ctrl-C bookkeeping around task 4's runner
        interrupted = True
        console.print("[yellow]interrupted: writing what was measured so far[/yellow]")

    report = report_mod.new_report(workload, runs, config, interrupted=interrupted)
    json_path = report_mod.save_report(report, out / "result.json")
    plots = [] if args.no_plots else report_mod.write_plots(report, out)
    try:
        choice = choose.write_choice(report)
    except NotImplementedError as error:
        choice = f"(no written comparison: {error})"
    markdown = report_mod.report_markdown(report, plots, choice)
    (out / "report.md").write_text(markdown, encoding="utf-8")
    print(report_mod.markdown_table(report))
    print(choice)
    console.print(f"wrote {json_path}, {out / 'report.md'}" + (f" and {len(plots)} plots" if plots else ""))
    return 130 if interrupted else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from shared.impl import import_lab_module

    report_mod = import_lab_module("lab05_benchmark", "report", args.impl)
    try:
        before, after = report_mod.load_report(args.before), report_mod.load_report(args.after)
    except ValueError as error:
        raise UsageError(str(error)) from None
    changes = report_mod.compare(before, after)
    if not changes:
        print("no run appears in both results (runs are matched by backend and load)")
        return 0
    print(report_mod.compare_markdown(changes))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``course bench [options]`` or ``course bench compare A.json B.json``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if argv[:1] == ["compare"]:
            parser = argparse.ArgumentParser(prog="course bench compare",
                                             description="each figure of AFTER as a ratio of BEFORE's")
            parser.add_argument("before")
            parser.add_argument("after")
            parser.add_argument("--impl", choices=["student", "solution"],
                                default=os.environ.get("COURSE_IMPL", "student"))
            return cmd_compare(parser.parse_args(argv[1:]))
        return cmd_run(_parser().parse_args(argv))
    except UsageError as error:
        print(f"course bench: {error}", file=sys.stderr)
        return 2
    except NotImplementedError as error:
        print(f"course bench: {error}", file=sys.stderr)
        return 1
    except ImportError as error:  # a student's module that does not import (shared.impl.StudentCodeError)
        print(f"course bench: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("course bench: interrupted before anything was measured", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
