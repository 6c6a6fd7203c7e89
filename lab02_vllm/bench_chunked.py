"""Chunked prefill, measured: 16 requests decode, then one long prompt arrives.

    python lab02_vllm/bench_chunked.py [--impl solution] [--prompt-tokens 1500] [--running 16]
                                       [--budgets 64 256 1024 0]

For each token budget (64, 256, 1,024, and 0 for chunking off: the whole prompt in one step), the
engine first runs ``--running`` requests alone for ``--steady`` steps, then the long prompt is
added. Printed per budget: the running requests' inter-token latency (p50, p99, max) from the
long prompt's arrival until its first token (and one step after), their steady p99 before it,
and the newcomer's time to first token. One run prints one table; the README quotes it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.impl import import_lab_module
from shared.models import resolve_model

BUDGETS = [64, 256, 1024, 0]  # 0: chunked prefill off


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between ranks."""
    return float(torch.quantile(torch.tensor(values, dtype=torch.float64), q / 100))


def measure(model: Path, budget: int | None, args: argparse.Namespace, device: str = "cpu",
            dtype: str = "float32", load_format: str = "auto") -> dict[str, float]:
    """One run: the running requests' gaps before and after the long prompt arrives, and its TTFT
    (milliseconds). ``args``: ``impl``, ``prompt_tokens``, ``running``, ``steady``; the GPU check
    calls it too, on a 7B-shaped folder with dummy weights (``load_format="dummy"``)."""
    engine_mod = import_lab_module("lab02_vllm", "engine", impl=args.impl)
    sampling = import_lab_module("lab02_vllm", "sampling_params", impl=args.impl)
    max_model_len = args.prompt_tokens + 64
    chunked = budget is not None
    engine = engine_mod.LLMEngine(
        model, block_size=16, max_num_seqs=args.running + 1, max_model_len=max_model_len,
        max_num_batched_tokens=budget if chunked else max_model_len, enable_chunked_prefill=chunked,
        num_kv_blocks=(args.running + 1) * (max_model_len // 16 + 1), device=device, dtype=dtype,
        load_format=load_format)
    generator = torch.Generator().manual_seed(0)
    params = sampling.SamplingParams(temperature=0, max_tokens=max_model_len - 64, ignore_eos=True)
    for i in range(args.running):
        engine.add_request(f"run-{i}", torch.randint(3, 500, (32,), generator=generator).tolist(), params)
    last: dict[str, float] = {}
    steady: list[float] = []
    during: list[float] = []
    arrival = first_token = None
    steps_after = 0
    for step in range(10_000):
        outputs = engine.step()
        now = time.perf_counter()
        for out in outputs:
            if out.request_id == "long":
                first_token = first_token or now
                continue
            if out.request_id in last:
                gap = (now - last[out.request_id]) * 1000
                if arrival is None and step >= 4:  # the first steps warm up
                    steady.append(gap)
                elif arrival is not None:
                    during.append(gap)
            last[out.request_id] = now
        if step == args.steady:
            arrival = time.perf_counter()
            long_prompt = torch.randint(3, 500, (args.prompt_tokens,), generator=generator).tolist()
            engine.add_request("long", long_prompt, sampling.SamplingParams(temperature=0, max_tokens=4))
        if first_token is not None:
            steps_after += 1
            if steps_after > 1:
                break
    assert arrival is not None and first_token is not None, "the long prompt never got its first token"
    for request_id in list(engine.requests):
        engine.abort(request_id)
    engine.shutdown()
    return {"p50": percentile(during, 50), "p99": percentile(during, 99), "max": max(during),
            "steady_p99": percentile(steady, 99), "ttft": (first_token - arrival) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default="student", choices=["student", "solution"])
    parser.add_argument("--model", default=None, help="a Llama folder (default: the fixture)")
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument("--running", type=int, default=16)
    parser.add_argument("--steady", type=int, default=20, help="steps before the long prompt arrives")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budgets", type=int, nargs="+", default=BUDGETS, help="token budgets; 0: chunking off")
    args = parser.parse_args()
    if any(0 < budget <= args.running for budget in args.budgets):
        parser.error(f"a budget must exceed --running ({args.running}): the engine needs max_num_batched_tokens "
                     "of at least max_num_seqs, and the prompt a token beside the decodes")
    torch.set_num_threads(args.threads)
    model = resolve_model(args.model, "main")
    print(f"{args.running} requests decoding, then one {args.prompt_tokens}-token prompt arrives "
          f"(fixture model, float32, {args.threads} torch thread(s)); milliseconds\n")
    print("| budget | running ITL p50 | p99 | max | steady p99 before | newcomer's TTFT |")
    print("|---|---|---|---|---|---|")
    for budget in args.budgets:
        r = measure(model, budget or None, args)
        name = f"{budget:,}" if budget else "chunking off"
        print(f"| {name} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['steady_p99']:.1f} | "
              f"{r['ttft']:.1f} |")


if __name__ == "__main__":
    main()
