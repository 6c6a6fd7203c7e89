"""One command for an NVIDIA GPU machine: the ``gpu`` tests, lab02's engine on a 7B shape, one file.

On a machine with an NVIDIA GPU, torch and transformers (and no package index), this runs, within
a time budget (7.5 minutes by default):

1. the environment: Python, torch, CUDA, the GPU (name, memory), which of the course's
   dependencies import and which are missing (with the wheels to carry for them);
2. ``pytest -m gpu --impl solution`` over the lab test files that hold ``gpu``-marked tests, in a
   child process with a time limit; each test's outcome comes from the course plugin's own
   ``--course-results`` records (pass / fail / error / skip, with the message);
3. lab02's engine (``lab02_vllm.solution.engine.LLM``) on a Llama-2-7B-shaped model with dummy
   (random) bf16 weights (``shared.models.write_7b_config``, the folder ``milestone.seven_b_folder``
   and ``bench.py`` use), at batch 1, 8, 32 and 64, prompt 128 and 128 output tokens each
   (``ignore_eos``), in a child process with a time limit: output tokens/s, the median decode step,
   and the decode step's memory-bandwidth roofline: (weight bytes + KV bytes read per step) /
   the GPU's bandwidth, with weight and KV bytes from lab02's ``deploy.py`` (task 11) and the
   bandwidth from a table of GPUs by name, a measured device-to-device copy as the fallback and
   as a cross-check;

and writes ONE JSON results file (``--out``; default ``$OUT/gpu_check.json`` when ``$OUT`` is set,
else ``build/gpu_check.json``), written again after each part, so a part that runs out of time
leaves what it measured. It prints a short table at the end. Its ``status``: ``ok`` (exit code
0), ``failures`` (a test failed, errored or did not import) or ``incomplete`` (a part did not
finish: out of time, no GPU, an error); exit code 1 for both.

On a GPU machine lent without a package index (one that gets a copy of this checkout plus the
ignored folders named to carry, and sends back what a command writes under ``$OUT``), with the
carry folder made first on a machine that has the course installed::

    python -m shared.gpu_check --prepare-carry build/gpu-check     # here, once: fixture + wheels
    # then the one command on the GPU machine (carry: build/gpu-check; time limit 480 s):
    PYTHONUNBUFFERED=1 python3 -m shared.gpu_check --carried build/gpu-check --out $OUT/gpu_check.json

(``course gpu-check ...`` is the same command where the course is installed.)

``build/`` is ignored by git, so the carry folder never lands in a commit. What it holds (8.3 MiB;
with the 4 MiB of the repository, well inside the 64 MiB a run may carry):

- ``cache/``: the fixture model the ``gpu`` tests load and its tokenizer (5.5 MiB), used as
  ``$COURSE_CACHE_DIR``; without it the tests' plugin trains the fixture there first (minutes);
- ``wheels/``: the course dependencies a bare torch + transformers image lacks, for CPython 3.12
  on x86-64 Linux: pydantic 2.14.4 (0.5 MB), pydantic-core 2.50.5 (2.3 MB), annotated-types 0.8.0
  (13 kB), typing-inspection 0.4.5 (15 kB) and typing-extensions 4.16.0 (pydantic needs >= 4.16;
  45 kB). pydantic is needed by lab01's ``gpu`` tests (``shared.metrics``) and by lab02's
  ``deploy.py``; the engine itself needs only torch, transformers, tokenizers and safetensors.
  ``--carried`` installs them with ``pip install --no-index --no-deps --target`` into a temporary
  folder put first on the path, only when pydantic does not import there. The image seen on the
  lent machines (2026-11) has every other course dependency (numpy, jinja2, peft, psutil, rich,
  pytest, pytest-timeout, hypothesis).

On a machine without a GPU, ``--cpu-smoke`` runs the same code paths on a tiny Llama shape in
float32 on the CPU in seconds (the ``gpu`` tests then all skip, saying why); ``shared/tests``
runs it so that the device run is not its first run.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = 1

#: The course's dependencies (pyproject.toml's ``dependencies``): (distribution, import name).
COURSE_DEPENDENCIES: tuple[tuple[str, str], ...] = (
    ("torch", "torch"), ("transformers", "transformers"), ("tokenizers", "tokenizers"),
    ("safetensors", "safetensors"), ("numpy", "numpy"), ("pydantic", "pydantic"), ("jinja2", "jinja2"),
    ("peft", "peft"), ("psutil", "psutil"), ("rich", "rich"), ("pytest", "pytest"),
    ("pytest-timeout", "pytest_timeout"), ("hypothesis", "hypothesis"),
)
#: What lab02's engine imports (at module level or when it loads a model): without one, no run.
ENGINE_NEEDS = ("torch", "transformers", "tokenizers", "safetensors")
#: Imported for real by the environment report (quick, or already imported); the rest are looked
#: up without importing them (``peft`` alone takes seconds).
IMPORT_FOR_REAL = ("torch", "transformers", "tokenizers", "safetensors", "pydantic", "pytest")

#: Wheels for what a bare torch + transformers image lacks (CPython 3.12, x86-64 Linux), with the
#: size pip downloads. ``--prepare-carry`` fetches them; ``--carried`` installs them.
CARRY_WHEELS: tuple[tuple[str, str], ...] = (
    ("pydantic==2.14.4", "0.5 MB"), ("pydantic-core==2.50.5", "2.3 MB"), ("annotated-types==0.8.0", "13 kB"),
    ("typing-inspection==0.4.5", "15 kB"), ("typing-extensions==4.16.0", "45 kB"),
)
PIP_DOWNLOAD = ("download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "
                "--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64")

#: Memory bandwidth by GPU name (vendors' data sheets), most specific pattern first: the roofline's
#: bytes/s. A GPU not listed falls back to the measured device-to-device copy.
GPU_BANDWIDTH: tuple[tuple[str, str, float], ...] = (
    (r"\bH100\b.*\bPCIE\b", "H100 PCIe", 2.0e12),
    (r"\bH100\b.*\bNVL\b", "H100 NVL", 3.9e12),
    (r"\bH100\b", "H100 SXM (HBM3)", 3.35e12),
    (r"\bH200\b", "H200", 4.8e12),
    (r"\bGH200\b", "GH200", 4.0e12),
    (r"\bB200\b", "B200", 8.0e12),
    (r"\bA100\b.*\b80\s?GB\b.*\bPCIE\b", "A100 80GB PCIe", 1.935e12),
    (r"\bA100\b.*\b80\s?GB\b", "A100 80GB SXM", 2.039e12),
    (r"\bA100\b", "A100 40GB", 1.555e12),
    (r"\bL40S\b", "L40S", 0.864e12),
    (r"\bL40\b", "L40", 0.864e12),
    (r"\bL4\b", "L4", 0.3e12),
    (r"\bA10G?\b", "A10 / A10G", 0.6e12),
    (r"\bT4\b", "T4", 0.32e12),
    (r"\bV100\b", "V100", 0.9e12),
    (r"\bRTX 4090\b", "RTX 4090", 1.008e12),
    (r"\bRTX 3090\b", "RTX 3090", 0.936e12),
)

#: The milestone's goal (lab02 task 12, ``milestone.GOAL_TOKENS_PER_S``), output tokens/s.
GOAL_TOKENS_PER_S = 100.0

#: A Llama shape small enough for a CPU in milliseconds (``--cpu-smoke``). Its vocabulary is
#: larger than the fixture tokenizer's 512, as the 7B config's 32,000 is: ids past the tokenizer's
#: come out of random weights in both runs.
TINY_LLAMA_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "vocab_size": 1024,
    "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float32",
}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, default=str))
    os.replace(partial, path)


# --------------------------------------------------------------------------------------------
# Carried files: the fixture cache and wheels, made here, used on the device


def prepare_carry(folder: Path, download: bool = True) -> int:
    """Fill ``folder`` with what the device lacks: ``cache/`` (the fixture model and its tokenizer,
    built here first if needed) and ``wheels/`` (:data:`CARRY_WHEELS`, through pip)."""
    from shared.models import FIXTURE, fixture_path, tokenizer_path

    cache = folder / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for source in (tokenizer_path(), fixture_path(FIXTURE)):
        target = cache / source.name
        if not target.exists():
            shutil.copytree(source, target)
        print(f"cache: {target.relative_to(folder)} ({_folder_bytes(target) / 2**20:.1f} MiB)")
    wheels = folder / "wheels"
    command = [sys.executable, "-m", "pip", *PIP_DOWNLOAD.split(), "-d", str(wheels),
               *(name for name, _ in CARRY_WHEELS)]
    if download:
        wheels.mkdir(exist_ok=True)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"pip download failed ({done.returncode}); run it by hand:\n  {' '.join(command)}\n"
                  f"{done.stderr[-2000:]}")
            return 1
    for wheel in sorted(wheels.glob("*.whl")):
        print(f"wheel: {wheel.name} ({wheel.stat().st_size / 1e6:.2f} MB)")
    print(f"carry folder {folder}: {_folder_bytes(folder) / 2**20:.1f} MiB. On the device (carry "
          f"[\"{_relative(folder)}\"]):\n  PYTHONUNBUFFERED=1 python3 -m shared.gpu_check --carried "
          f"{_relative(folder)} --out $OUT/gpu_check.json")
    return 0


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path)


def use_carried(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """Use a carry folder: its ``cache/`` as the course cache (unless ``$COURSE_CACHE_DIR`` is set)
    and, where pydantic does not import, its wheels installed into a temporary folder put first on
    this process's path and on the children's ``PYTHONPATH`` (in ``env``). Call it before anything
    imports the packages the wheels hold."""
    report: dict[str, Any] = {"folder": str(folder), "cache": None, "wheels_installed": []}
    if (folder / "cache").is_dir() and not env.get("COURSE_CACHE_DIR"):
        env["COURSE_CACHE_DIR"] = os.environ["COURSE_CACHE_DIR"] = str((folder / "cache").resolve())
        report["cache"] = env["COURSE_CACHE_DIR"]
    wheels = sorted((folder / "wheels").glob("*.whl"))
    if wheels and importlib.util.find_spec("pydantic") is None:
        target = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                               "--no-compile", "--no-cache-dir", "--target", str(target), *map(str, wheels)],
                              capture_output=True, text=True)
        atexit.register(shutil.rmtree, target, True)  # the children are done with it by then
        if done.returncode == 0:
            sys.path.insert(0, str(target))
            importlib.invalidate_caches()
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH", "")]))
            report["wheels_installed"] = [w.name for w in wheels]
            report["site"] = str(target)
        else:
            report["wheels_error"] = (done.stderr or done.stdout)[-1500:]
    return report


# --------------------------------------------------------------------------------------------
# Part 1: the environment


def environment() -> dict[str, Any]:
    """Python, torch, CUDA and the GPU, and the state of every course dependency."""
    report: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable,
                              "platform": platform.platform(), "cpus": os.cpu_count()}
    deps: dict[str, dict[str, Any]] = {}
    for dist, module in COURSE_DEPENDENCIES:
        entry: dict[str, Any] = {"version": None}
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            entry["version"] = importlib.metadata.version(dist)
        if importlib.util.find_spec(module) is None:
            entry["status"] = "missing"
        elif module in IMPORT_FOR_REAL:
            try:
                imported = importlib.import_module(module)
                entry["status"] = "imports"
                entry["version"] = entry["version"] or getattr(imported, "__version__", None)
            except Exception as error:  # a broken install is reported, not raised
                entry["status"] = "broken"
                entry["error"] = f"{type(error).__name__}: {error}"[:300]
        else:
            entry["status"] = "installed"
        deps[dist] = entry
    report["dependencies"] = deps
    report["missing"] = [d for d, e in deps.items() if e["status"] in ("missing", "broken")]
    report["engine_can_run"] = all(deps[d]["status"] == "imports" for d in ENGINE_NEEDS)
    report["carry_hint"] = carry_hint(report["missing"])
    if deps["torch"]["status"] == "imports":
        import torch

        report["torch"] = torch.__version__
        report["cuda_build"] = torch.version.cuda
        report["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            free, total = torch.cuda.mem_get_info(0)
            report["gpu"] = {"name": props.name, "count": torch.cuda.device_count(),
                             "capability": f"{props.major}.{props.minor}", "memory_bytes": total,
                             "free_bytes": free, "multiprocessors": props.multi_processor_count}
            with contextlib.suppress(Exception):
                report["driver"] = subprocess.run(
                    ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                    capture_output=True, text=True, timeout=20).stdout.strip()
    return report


def carry_hint(missing: list[str]) -> list[str]:
    """The ``pip download`` lines (run here, then carry the folder) for the missing distributions:
    :data:`CARRY_WHEELS` when pydantic is among them, the bare names for the rest."""
    pinned = {name.split("==")[0]: name for name, _ in CARRY_WHEELS}
    names = [name for name, _ in CARRY_WHEELS] if "pydantic" in missing else []
    names += [d for d in missing if d not in pinned]
    return [f"pip {PIP_DOWNLOAD} -d build/gpu-check/wheels {' '.join(names)}"] if names else []


# --------------------------------------------------------------------------------------------
# Part 2: the gpu-marked tests


def gpu_test_files(root: Path = ROOT) -> list[Path]:
    """The labs' test files whose text marks a test ``gpu`` (hidden tests included)."""
    marker = re.compile(r"\bmark\.gpu\b")
    return sorted(p for p in root.glob("lab*/tests/**/test_*.py") if marker.search(p.read_text(errors="replace")))


def read_course_results(path: Path) -> dict[str, Any]:
    """Per-test outcomes from the course plugin's ``--course-results`` lines: each collected test
    with its result, or ``incomplete`` (started, never finished: the run was stopped) or ``not
    run``; files that failed to import; and the counts."""
    collected: dict[str, dict[str, Any]] = {}
    started: set[str] = set()
    collect_errors = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                event, nodeid = record.get("event"), record.get("nodeid", "")
                if event == "collected":
                    collected[nodeid] = {"nodeid": nodeid, "lab": record.get("lab"), "task": record.get("task"),
                                         "points": record.get("points"), "outcome": "not run", "message": ""}
                elif event == "start":
                    started.add(nodeid)
                elif event == "result":
                    entry = collected.setdefault(nodeid, {"nodeid": nodeid})
                    entry.update(outcome=record.get("outcome"), message=(record.get("message") or "")[:600],
                                 duration=record.get("duration"))
                elif event == "collect_error":
                    collect_errors.append({"nodeid": nodeid, "message": record.get("message", "")[:600]})
    for nodeid in started:
        if collected.get(nodeid, {}).get("outcome") == "not run":
            collected[nodeid]["outcome"] = "incomplete"
    results = list(collected.values())
    counts: dict[str, int] = {}
    for entry in results:
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    return {"results": results, "counts": counts, "collect_errors": collect_errors}


def run_gpu_tests(impl: str, timeout_s: float, env: dict[str, str], files: list[Path] | None = None) -> dict[str, Any]:
    """``pytest -m gpu --impl IMPL`` over :func:`gpu_test_files`, stopped after ``timeout_s``."""
    files = gpu_test_files() if files is None else files
    part: dict[str, Any] = {"files": [_relative(f) for f in files], "timeout_s": round(timeout_s)}
    if not files:
        return {**part, "status": "skipped", "reason": "no lab test file marks a test gpu"}
    with tempfile.TemporaryDirectory(prefix="gpu-check-tests-") as scratch:
        records, log = Path(scratch) / "results.jsonl", Path(scratch) / "pytest.log"
        command = [sys.executable, "-m", "pytest", *map(str, files), "-m", "gpu", "--impl", impl, "-rA",
                   "-p", "no:cacheprovider", "--continue-on-collection-errors", "--course-results", str(records)]
        part["command"] = " ".join(["pytest", *part["files"], *command[3 + len(files):-1], "RESULTS"])
        print(f"[gpu-check] tests: pytest -m gpu --impl {impl} over {len(files)} files (limit {timeout_s:.0f} s)",
              flush=True)
        returncode, seconds = run_limited(command, env, timeout_s, log)
        part.update(read_course_results(records))
        part["returncode"], part["elapsed_s"] = returncode, round(seconds, 1)
        part["output_tail"] = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    part["status"] = "timeout" if returncode is None else "done"
    return part


def run_limited(command: list[str], env: dict[str, str], timeout_s: float,
                log: Path | None = None) -> tuple[int | None, float]:
    """Run ``command`` in its own process group from the course root; after ``timeout_s`` stop
    the whole group (SIGTERM, then SIGKILL). Returns (exit code, or None when stopped; seconds)."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(open(log, "w")) if log else None
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT if output
                                   else None, start_new_session=True)
        try:
            returncode: int | None = process.wait(timeout=max(timeout_s, 1))
        except subprocess.TimeoutExpired:
            returncode = None
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
    return returncode, time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# Part 3: the engine on a 7B shape, and the bandwidth roofline


def spec_bandwidth(gpu_name: str) -> tuple[str, float] | None:
    """(the table's name, bytes/s) of a GPU by its name as torch reports it, or None."""
    upper = gpu_name.upper()
    for pattern, name, bandwidth in GPU_BANDWIDTH:
        if re.search(pattern, upper):
            return name, bandwidth
    return None


def measure_copy_bandwidth(device: str, size_bytes: int, repeats: int = 10) -> float:
    """Bytes/s of a device-to-device copy, counting bytes read and written (as doc 01 §4 and the
    lent machines' notes count them): the best of ``repeats`` copies after two warm-ups."""
    import torch

    source = torch.empty(size_bytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    target = torch.empty_like(source)
    best = math.inf
    for index in range(repeats + 2):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        target.copy_(source)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if index >= 2:
            best = min(best, time.perf_counter() - started)
    del source, target
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return 2 * size_bytes / best


def model_bytes(config: dict[str, Any], dtype: str) -> dict[str, Any]:
    """Weight bytes and KV bytes per token of a Llama config: lab02's ``deploy.py`` (task 11:
    ``ModelShape``, ``weight_bytes``, ``kv_bytes_per_token``) where it imports (it needs pydantic),
    else the same sums from ``shared.hardware.estimate_memory``."""
    try:
        deploy = importlib.import_module("lab02_vllm.solution.deploy")
        shape = deploy.ModelShape.from_config(config)
        return {"weight_bytes": deploy.weight_bytes(shape, dtype), "kv_bytes_per_token":
                deploy.kv_bytes_per_token(shape, dtype), "parameters": shape.parameters(),
                "source": "lab02_vllm/solution/deploy.py"}
    except ImportError as error:
        note = f"shared.hardware.estimate_memory (deploy.py does not import: {error})"
    from shared.hardware import estimate_memory

    size = {"float32": 4, "float16": 2, "bfloat16": 2}[dtype]
    estimate = estimate_memory(config, context_tokens=1, bytes_per_param=size, kv_bytes_per_value=size)
    return {"weight_bytes": estimate.weights_bytes, "kv_bytes_per_token": estimate.kv_bytes_per_token,
            "parameters": estimate.weights_bytes // size, "source": note}


def roofline(batch: int, prompt_len: int, output_len: int, weight_bytes: int, kv_bytes_per_token: int,
             bandwidth: float) -> dict[str, float]:
    """The decode step's memory-bandwidth bound: each step reads every weight once and every
    sequence's cached keys and values (on average ``prompt_len + (output_len - 1) / 2`` tokens over
    the decode steps), so ``tokens/s <= batch x bandwidth / bytes per step``. Also the weights-only
    bound that ``lab02_vllm/bench.py`` prints (``batch x bandwidth / weight bytes``)."""
    kv_read = batch * (prompt_len + (output_len - 1) / 2) * kv_bytes_per_token
    step_bytes = weight_bytes + kv_read
    return {"kv_bytes_read_per_step": kv_read, "bytes_per_step": step_bytes,
            "step_ms": step_bytes / bandwidth * 1000, "tokens_per_s": batch * bandwidth / step_bytes,
            "weights_only_tokens_per_s": batch * bandwidth / weight_bytes}


def write_model_folder(out: Path, config: dict[str, Any]) -> Path:
    """A weightless model folder (``config`` + the fixture tokenizer), as ``write_7b_config`` writes
    the 7B one: the engine loads it with ``load_format="dummy"``."""
    from shared.models import tokenizer_path

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for item in tokenizer_path().iterdir():
        if item.name != "recipe.json":
            shutil.copy2(item, out / item.name)
    return out


def engine_part(opts: argparse.Namespace, save: Callable[[dict[str, Any]], None], deadline: float) -> dict[str, Any]:
    """Bandwidth, then the engine at each batch size; ``save`` is called with the part so far
    after each step of the way, so a stop from outside loses at most the batch in flight.

    With ``--cpu-smoke``, one torch thread while it runs (then restored): on a CPU shared with
    other work, OpenMP threads of tiny matrix products wait for each other (lab02's tests do the same)."""
    import torch

    threads = torch.get_num_threads()
    if opts.cpu_smoke:
        torch.set_num_threads(1)
    try:
        return _engine_part(opts, save, deadline)
    finally:
        torch.set_num_threads(threads)


def _engine_part(opts: argparse.Namespace, save: Callable[[dict[str, Any]], None], deadline: float) -> dict[str, Any]:
    import torch

    from shared.models import LLAMA2_7B_CONFIG

    smoke = opts.cpu_smoke
    device = "cpu" if smoke else "cuda"
    dtype = "float32" if smoke else "bfloat16"
    config = TINY_LLAMA_CONFIG if smoke else LLAMA2_7B_CONFIG
    prompt_len, output_len, block_size = opts.prompt_len, opts.output_len, 16
    part: dict[str, Any] = {"status": "running", "device": device, "dtype": dtype, "impl": opts.impl,
                            "model": "tiny Llama (--cpu-smoke)" if smoke else "Llama-2-7B shape, dummy weights",
                            "config": config, "prompt_len": prompt_len, "output_len": output_len,
                            "block_size": block_size, "batches": []}
    part.update(model_bytes(config, dtype))
    if device == "cuda" and not torch.cuda.is_available():
        return {**part, "status": "error", "error": "no CUDA GPU is visible to torch (use --cpu-smoke on a CPU)"}

    # Bandwidth: the data sheet's by name, and a measured copy (the fallback, and a cross-check).
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    measured = measure_copy_bandwidth(device, (1 << 30) if device == "cuda" else (32 << 20))
    spec = spec_bandwidth(name) if device == "cuda" else None
    part["bandwidth"] = {"device_name": name, "spec_name": spec[0] if spec else None,
                         "spec_bytes_per_s": spec[1] if spec else None, "measured_copy_bytes_per_s": measured,
                         "used_bytes_per_s": spec[1] if spec else measured,
                         "used": "data sheet" if spec else "measured copy (the GPU is not in the table)"}
    if spec:
        part["bandwidth"]["measured_share_of_spec"] = measured / spec[1]
    bandwidth = part["bandwidth"]["used_bytes_per_s"]
    save(part)

    # How many sequences fit next to the weights (a small GPU runs the smaller batches only).
    batches = sorted(opts.batches)
    blocks_per_seq = -(-(prompt_len + output_len) // block_size)
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info(0)
        room = free - part["weight_bytes"] - 4 * 2**30  # activations, logits, allocator slack
        fits = max(0, room // (blocks_per_seq * block_size * part["kv_bytes_per_token"]))
        part["memory"] = {"free_before_bytes": free, "max_batch_that_fits": int(fits)}
        for batch in [b for b in batches if b > fits]:
            part["batches"].append({"batch": batch, "status": "skipped: does not fit in GPU memory"})
        batches = [b for b in batches if b <= fits]
    if not batches:
        return {**part, "status": "error", "error": "not even batch 1 fits in GPU memory"}

    engine_module = importlib.import_module(f"lab02_vllm.{'solution' if opts.impl == 'solution' else 'src'}.engine")
    sampling = importlib.import_module(f"lab02_vllm.{'solution' if opts.impl == 'solution' else 'src'}"
                                       ".sampling_params")
    folder = write_model_folder(Path(tempfile.mkdtemp(prefix="gpu-check-model-")), config)
    started = time.perf_counter()
    llm = engine_module.LLM(folder, load_format="dummy", device=device, dtype=dtype, block_size=block_size,
                            max_model_len=prompt_len + output_len, max_num_seqs=max(batches),
                            num_kv_blocks=max(batches) * blocks_per_seq + 1, seed=0)
    if device == "cuda":
        torch.cuda.synchronize()
    part["load_s"] = round(time.perf_counter() - started, 2)
    params = sampling.SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True)
    generator = torch.Generator().manual_seed(0)
    vocab = min(config["vocab_size"], 32000)
    llm.generate([torch.randint(3, vocab, (prompt_len,), generator=generator).tolist()],
                 sampling.SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True))  # warm-up
    save(part)

    # Time every engine step generate takes (an instance attribute: generate calls self.engine.step).
    steps: list[tuple[float, int, int]] = []  # (seconds, outputs, first tokens in this step)
    original_step = llm.engine.step

    def timed_step() -> list[Any]:
        began = time.perf_counter()
        outputs = original_step()
        firsts = sum(1 for o in outputs if o.outputs and len(o.outputs[0].token_ids) == 1)
        steps.append((time.perf_counter() - began, len(outputs), firsts))
        return outputs

    llm.engine.step = timed_step
    last_seconds, last_batch = 0.0, 1
    for batch in batches:
        # A decode step reads the weights whatever the batch: its time grows far slower than the
        # batch. Guess the next run from the last one; one that would not end in time is skipped.
        left = deadline - time.time()
        if left < 1.5 * last_seconds * (batch / last_batch) ** 0.5:
            part["batches"].append({"batch": batch, "status": f"skipped: out of time ({left:.0f} s left)"})
            continue
        prompts = [torch.randint(3, vocab, (prompt_len,), generator=generator).tolist() for _ in range(batch)]
        llm.generate(prompts[:1], sampling.SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True))
        steps.clear()
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        outputs = llm.generate(prompts, params)
        seconds = time.perf_counter() - began
        last_seconds, last_batch = seconds, batch
        produced = sum(len(o.outputs[0].token_ids) for o in outputs)
        row: dict[str, Any] = {"batch": batch, "status": "done", "seconds": seconds,
                               "output_tokens": produced, "output_tokens_per_s": produced / seconds,
                               "steps": len(steps)}
        # Prefill ends with the step that gives the last request its first token; decode steps
        # after it run the full batch until the last one.
        firsts_done = 0
        for index, (_, _, firsts) in enumerate(steps):
            firsts_done += firsts
            if firsts_done >= batch:
                row["prefill_s"] = round(sum(s for s, _, _ in steps[:index + 1]), 4)
                decode = [s for s, count, _ in steps[index + 1:] if count == batch]
                break
        else:
            decode = []
        bound = roofline(batch, prompt_len, output_len, part["weight_bytes"], part["kv_bytes_per_token"], bandwidth)
        row["roofline_tokens_per_s"] = bound["tokens_per_s"]
        row["roofline_step_ms"] = bound["step_ms"]
        row["bytes_per_step"] = bound["bytes_per_step"]
        row["weights_only_roofline_tokens_per_s"] = bound["weights_only_tokens_per_s"]
        if decode:
            step = statistics.median(decode)
            row["decode_steps"] = len(decode)
            row["decode_step_ms_median"] = step * 1000
            row["decode_tokens_per_s"] = batch / step
            row["roofline_share"] = batch / step / bound["tokens_per_s"]
            row["measured_bandwidth_bytes_per_s"] = bound["bytes_per_step"] / step  # what the step moved per second
        row["goal_passed"] = row["output_tokens_per_s"] > GOAL_TOKENS_PER_S
        part["batches"].append(row)
        print(f"[gpu-check] engine batch {batch}: {row['output_tokens_per_s']:,.0f} output tokens/s, decode step "
              f"{row.get('decode_step_ms_median', float('nan')):.2f} ms (roofline {bound['step_ms']:.2f} ms)",
              flush=True)
        save(part)
    llm.engine.step = original_step
    if device == "cuda":
        part["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
    with contextlib.suppress(Exception):
        llm.shutdown()
    original_step = None  # the bound step (a closure's cell) keeps the engine and its KV cache alive
    del llm
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    chunked_prefill_part(opts, part, folder, device, dtype, deadline, save)
    shutil.rmtree(folder, ignore_errors=True)
    part["batches"].sort(key=lambda row: row["batch"])
    part["status"] = "done"
    return part


def chunked_prefill_part(opts: argparse.Namespace, part: dict[str, Any], folder: Path, device: str, dtype: str,
                         deadline: float, save: Callable[[dict[str, Any]], None]) -> None:
    """Lab 02's chunked-prefill measure (``bench_chunked.measure``) on the same model: 16 requests
    decoding, then one long prompt (1,500 tokens; 180 with ``--cpu-smoke``) arrives, with a
    256-token budget (64 with ``--cpu-smoke``) and with chunking off. The issue's target: the
    running requests' p99 inter-token latency at most twice their steady p99 with a 256 budget,
    which a CPU cannot meet (lab02's README, task 4) and a GPU should."""
    from lab02_vllm import bench_chunked

    smoke = opts.cpu_smoke
    args = argparse.Namespace(impl=opts.impl, prompt_tokens=180 if smoke else 1500, running=16, steady=20)
    rows: list[dict[str, Any]] = []
    part["chunked_prefill"] = {"prompt_tokens": args.prompt_tokens, "running": args.running, "rows": rows}
    for budget in (64 if smoke else 256, None):
        name = "chunking off" if budget is None else budget
        if deadline - time.time() < 30:
            rows.append({"budget": name, "status": "skipped: out of time"})
            continue
        try:
            result = bench_chunked.measure(folder, budget, args, device=device, dtype=dtype, load_format="dummy")
        except Exception as error:  # memory, most likely: the rest of the results stand
            rows.append({"budget": name, "status": "error", "error": f"{type(error).__name__}: {error}"[:500]})
        else:
            rows.append({"budget": name, "status": "done", **result,
                         "p99_over_steady_p99": result["p99"] / result["steady_p99"]})
            print(f"[gpu-check] chunked prefill, budget {name}: running p99 {result['p99']:.1f} ms "
                  f"(steady p99 {result['steady_p99']:.1f}), newcomer's TTFT {result['ttft']:.1f} ms", flush=True)
        if device == "cuda":
            import torch

            torch.cuda.empty_cache()
        save(part)


def run_engine_part(opts: argparse.Namespace, timeout_s: float, env: dict[str, str]) -> dict[str, Any]:
    """The engine part in a child process (``--part engine``), stopped after ``timeout_s``; what it
    saved by then is kept."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-engine-") as scratch:
        partial = Path(scratch) / "engine.json"
        command = [sys.executable, "-m", "shared.gpu_check", "--part", "engine", "--out", str(partial),
                   "--impl", opts.impl, "--prompt-len", str(opts.prompt_len), "--output-len", str(opts.output_len),
                   "--batches", *map(str, opts.batches), "--deadline", str(time.time() + timeout_s - 5)]
        if opts.cpu_smoke:
            command.append("--cpu-smoke")
        print(f"[gpu-check] engine: batches {opts.batches} (limit {timeout_s:.0f} s)", flush=True)
        returncode, seconds = run_limited(command, env, timeout_s)
        part = json.loads(partial.read_text()) if partial.exists() else {"batches": []}
    part["returncode"], part["elapsed_s"] = returncode, round(seconds, 1)
    if returncode is None:
        part["status"] = "timeout"
        reached = {row["batch"] for row in part["batches"]}
        part["batches"] += [{"batch": b, "status": "not run: out of time"} for b in opts.batches if b not in reached]
        part["batches"].sort(key=lambda row: row["batch"])
    elif part.get("status") == "running":
        part["status"] = "error"
        part.setdefault("error", f"the engine's process exited with {returncode} (its output is above)")
    return part


def engine_child(opts: argparse.Namespace) -> int:
    """``--part engine``: run :func:`engine_part` here, saving to ``--out`` as it goes."""
    out = Path(opts.out)
    saved: dict[str, Any] = {}

    def save(part: dict[str, Any]) -> None:
        saved.clear()
        saved.update(part)
        write_json(out, part)

    try:
        part = engine_part(opts, save, opts.deadline or time.time() + 3600)
    except Exception as error:
        import traceback

        traceback.print_exc()
        part = {**saved, "status": "error", "error": f"{type(error).__name__}: {error}"[:2000]}
    write_json(out, part)
    return 0 if part.get("status") == "done" else 1


# --------------------------------------------------------------------------------------------
# The whole run


def print_summary(results: dict[str, Any]) -> None:
    env = results.get("environment", {})
    gpu = env.get("gpu") or {}
    print("\n==== gpu-check summary ====")
    print(f"torch {env.get('torch')} (CUDA {env.get('cuda_build')}), GPU: "
          f"{gpu.get('name', 'none')} {gpu.get('memory_bytes', 0) / 2**30:.0f} GiB; missing: "
          f"{', '.join(env.get('missing', [])) or 'nothing'}")
    if env.get("fixture_in_cache") is False:
        print("  the fixture model was not in the course cache: the tests' plugin trains it first (carry "
              "build/gpu-check from --prepare-carry)")
    for line in env.get("carry_hint", []):
        print(f"  to carry them: {line}  (then --carried build/gpu-check)")
    tests = results.get("tests", {})
    if tests:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(tests.get("counts", {}).items())) or "none"
        print(f"tests ({tests.get('status')}, {tests.get('elapsed_s', 0)} s): {counts}; "
              f"{len(tests.get('collect_errors', []))} files failed to import")
        for entry in tests.get("results", []):
            print(f"  {entry['outcome']:<10} {entry['nodeid']}"
                  + (f"  -- {entry['message'][:150]}" if entry['outcome'] != "passed" and entry.get("message") else ""))
        for entry in tests.get("collect_errors", []):
            print(f"  IMPORT    {entry['nodeid']}  -- {entry['message'][:150]}")
    engine = results.get("engine", {})
    if engine and "model" not in engine:
        print(f"engine ({engine.get('status')}): {engine.get('reason') or engine.get('error')}")
    elif engine:
        bw = engine.get("bandwidth", {})
        print(f"engine ({engine.get('status')}, {engine.get('elapsed_s', 0)} s): {engine.get('model')}, "
              f"{engine.get('dtype')}, prompt {engine.get('prompt_len')} + {engine.get('output_len')} tokens; weights "
              f"{engine.get('weight_bytes', 0) / 1e9:.2f} GB, KV {engine.get('kv_bytes_per_token', 0) / 2**10:.0f} "
              f"KiB/token ({engine.get('source', '')})")
        if bw:
            spec = (f"{bw['spec_bytes_per_s'] / 1e12:.2f} TB/s ({bw['spec_name']})"
                    if bw.get("spec_bytes_per_s") else "-")
            print(f"bandwidth: data sheet {spec}; measured copy {bw['measured_copy_bytes_per_s'] / 1e12:.3f} TB/s; "
                  f"roofline uses {bw['used']}")
        print(f"{'batch':>5} {'out tok/s':>10} {'step ms':>8} {'roof ms':>8} {'roof tok/s':>11} {'share':>6}  status")
        for row in engine.get("batches", []):
            if row.get("status") != "done":
                print(f"{row['batch']:>5} {'':>10} {'':>8} {'':>8} {'':>11} {'':>6}  {row['status']}")
                continue
            step, share = row.get("decode_step_ms_median"), row.get("roofline_share")
            print(f"{row['batch']:>5} {row['output_tokens_per_s']:>10,.0f} "
                  f"{'-' if step is None else f'{step:.2f}':>8} {row['roofline_step_ms']:>8.2f} "
                  f"{row['roofline_tokens_per_s']:>11,.0f} {'-' if share is None else f'{share:.0%}':>6}  done")
        chunked = engine.get("chunked_prefill")
        if chunked:
            print(f"chunked prefill: {chunked['running']} requests decoding, a {chunked['prompt_tokens']}-token "
                  "prompt arrives (ms; the target: p99 at most 2x the steady p99 with a 256 budget)")
            for row in chunked["rows"]:
                if row.get("status") == "done":
                    print(f"  budget {row['budget']}: running p50 {row['p50']:.1f}, p99 {row['p99']:.1f} "
                          f"({row['p99_over_steady_p99']:.1f}x the steady {row['steady_p99']:.1f}); "
                          f"newcomer's TTFT {row['ttft']:.1f}")
                else:
                    print(f"  budget {row['budget']}: {row.get('status')} {row.get('error', '')[:200]}")
        if engine.get("error"):
            print(f"engine error: {engine['error'][:500]}")
    if results.get("note"):
        print(f"note: {results['note']}")
    print(f"results: {results.get('out')} ({results.get('elapsed_s')} s in all, status {results.get('status')})")


def default_out() -> Path:
    return Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else ROOT / "build" / "gpu_check.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="the results file (default: $OUT/gpu_check.json, "
                        "else build/gpu_check.json)")
    parser.add_argument("--budget", type=float, default=450.0, metavar="S",
                        help="seconds for the whole run (default 450: the device's 8 minutes, less a margin)")
    parser.add_argument("--tests-timeout", type=float, default=180.0, metavar="S",
                        help="at most this long for the gpu tests (default 180)")
    # The student edition has no solution/: there it runs the student's src/.
    own = "solution" if (ROOT / "lab02_vllm" / "solution").is_dir() else "student"
    parser.add_argument("--impl", choices=["solution", "student"], default=own,
                        help=f"the code the tests and the engine run: the reference solution/ or your src/ "
                             f"(default here: {own})")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--prompt-len", type=int, default=None, help="prompt tokens (default 128; 16 with --cpu-smoke)")
    parser.add_argument("--output-len", type=int, default=None,
                        help="output tokens per request (default 128; 8 with --cpu-smoke)")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="no GPU: the same paths on a tiny Llama in float32 on the CPU, in seconds")
    parser.add_argument("--skip-tests", action="store_true", help="leave out the gpu tests")
    parser.add_argument("--skip-engine", action="store_true", help="leave out the engine run")
    parser.add_argument("--in-process", action="store_true",
                        help="run the engine part in this process, with no time limit of its own (a quick check)")
    parser.add_argument("--carried", type=Path, default=None, metavar="DIR",
                        help="use a carry folder made by --prepare-carry: its fixture cache, and its wheels "
                             "where pydantic is missing")
    parser.add_argument("--prepare-carry", type=Path, default=None, metavar="DIR",
                        help="here, before a device run: fill DIR (build/gpu-check: git ignores build/) with the "
                             "fixture cache and the wheels, then stop")
    parser.add_argument("--no-download", action="store_true", help="with --prepare-carry: copy the cache only")
    parser.add_argument("--part", choices=["engine"], help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    for flag, full, smoke in (("prompt_len", 128, 16), ("output_len", 128, 8)):
        if getattr(opts, flag) is None:
            setattr(opts, flag, smoke if opts.cpu_smoke else full)
    if min(opts.batches) < 1 or opts.prompt_len < 1 or opts.output_len < 2:
        build_parser().error("--batches and --prompt-len must be at least 1, --output-len at least 2")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if opts.prepare_carry:
        return prepare_carry(opts.prepare_carry, download=not opts.no_download)
    if opts.part == "engine":
        return engine_child(opts)

    began = time.time()
    deadline = began + opts.budget
    out = (opts.out or default_out()).resolve()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                        ("PYTHONUNBUFFERED", "1")):
        env.setdefault(name, value)
    typed = argv if argv is not None else sys.argv[1:]
    results: dict[str, Any] = {"schema": SCHEMA, "started": _now(), "command": ["python -m shared.gpu_check", *typed],
                               "mode": "cpu-smoke" if opts.cpu_smoke else "gpu", "budget_s": opts.budget,
                               "out": str(out), "status": "running", "parts_out_of_time": []}
    if opts.carried:
        results["carried"] = use_carried(opts.carried, env)
    print(f"[gpu-check] environment (results: {out})", flush=True)
    results["environment"] = environment()
    env_report = results["environment"]
    if not opts.cpu_smoke and not env_report.get("cuda_available"):
        results["note"] = ("no CUDA GPU is visible to torch: the gpu tests skip, the engine part cannot run "
                           "(--cpu-smoke runs it on a tiny shape)")
    with contextlib.suppress(Exception):
        from shared.models import FIXTURE, is_built

        env_report["fixture_in_cache"] = is_built(FIXTURE)
    write_json(out, results)

    if not opts.skip_tests:
        engine_reserve = 0 if opts.skip_engine else min(240.0, 0.5 * opts.budget)
        limit = min(opts.tests_timeout, deadline - time.time() - engine_reserve)
        if limit < 20:
            results["tests"] = {"status": "skipped", "reason": "out of time"}
            results["parts_out_of_time"].append("tests")
        else:
            results["tests"] = run_gpu_tests(opts.impl, limit, env)
            if results["tests"]["status"] == "timeout":
                results["parts_out_of_time"].append("tests")
        write_json(out, results)

    if not opts.skip_engine:
        if not env_report.get("engine_can_run"):
            missing = [d for d in ENGINE_NEEDS if env_report["dependencies"][d]["status"] != "imports"]
            results["engine"] = {"status": "error", "error": f"the engine needs {', '.join(missing)}: carry the "
                                 f"wheels (pip {PIP_DOWNLOAD} -d build/gpu-check/wheels {' '.join(missing)})"}
        elif not opts.cpu_smoke and not env_report.get("cuda_available"):
            results["engine"] = {"status": "skipped", "reason": "no CUDA GPU here; --cpu-smoke runs a tiny shape"}
        elif opts.in_process:
            began_engine = time.perf_counter()
            try:
                results["engine"] = engine_part(opts, lambda part: None, deadline)
            except Exception as error:
                results["engine"] = {"status": "error", "error": f"{type(error).__name__}: {error}"[:2000]}
            results["engine"]["elapsed_s"] = round(time.perf_counter() - began_engine, 2)
        else:
            limit = deadline - time.time() - 10  # room to stop it and write the file inside the budget
            if limit < 30:
                results["engine"] = {"status": "skipped", "reason": "out of time"}
            else:
                results["engine"] = run_engine_part(opts, limit, env)
        if results["engine"].get("status") == "timeout" or results["engine"].get("reason") == "out of time" or any(
                str(row.get("status", "")).startswith("skipped: out of time")
                for row in results["engine"].get("batches", [])):
            results["parts_out_of_time"].append("engine")

    tests, engine = results.get("tests", {}), results.get("engine", {})
    failed = sum(tests.get("counts", {}).get(k, 0) for k in ("failed", "error", "incomplete"))
    failed += len(tests.get("collect_errors", []))
    complete = ((opts.skip_tests or tests.get("status") == "done")
                and (opts.skip_engine or engine.get("status") == "done"))
    if not complete or results["parts_out_of_time"]:
        results["status"] = "incomplete"
    else:
        results["status"] = "failures" if failed else "ok"
    results["finished"], results["elapsed_s"] = _now(), round(time.time() - began, 1)
    write_json(out, results)
    print_summary(results)
    return 0 if results["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
