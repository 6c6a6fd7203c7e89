"""Given: a GGUF file of a Hugging Face Llama folder, so that llama.cpp can be benchmarked on the
same model as the other backends.

    gguf_for(model_dir, "Q4_0")  ->  Path of model-Q4_0.gguf (written once, cached)

F32 comes from llama.cpp's own converter (``convert_hf_to_gguf.py``; lab 03 has you write one,
and lab 05 must not need yours); the quantized types from llama.cpp's own quantizer
(``llama_model_quantize``). Only Llama-architecture folders are supported: anything else raises
``ValueError`` saying so.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import shutil
from pathlib import Path

#: GGUF types this helper writes, with llama.cpp's file-type numbers (``LLAMA_FTYPE_MOSTLY_*``).
GGUF_TYPES = {"F32": 0, "Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15}


def write_f32_gguf(model_dir: str | Path, out: str | Path) -> Path:
    """Write the model in ``model_dir`` as an F32 GGUF file at ``out``, with llama.cpp's own
    converter (``convert_hf_to_gguf.py``, from the llama.cpp source the install keeps; see
    ``lab03_llama_cpp/llama_cpp_source.py``). Lab 03 has you write this converter; lab 05 must not
    need yours.

    Raises:
        ValueError: ``model_dir`` is not a Llama-architecture folder (what llama.cpp's converter
            and this lab's backends are checked on).
        ImportError: llama.cpp's source is not on this machine (the backend is then skipped).
    """
    from lab03_llama_cpp.llama_cpp_source import SourceMissing, reference_convert

    model_dir, out = Path(model_dir), Path(out)
    config_file = model_dir / "config.json"
    # leak-check: allowed, a generic check of a model folder
    if not config_file.exists():
        raise ValueError(f"{model_dir}: no config.json, so not a Hugging Face model folder")
    if json.loads(config_file.read_text()).get("model_type") != "llama":
        raise ValueError(f"{model_dir}: the llama.cpp backend here converts Llama-architecture folders only")
    try:
        converted = reference_convert(model_dir, "f32")
    except SourceMissing as error:
        raise ImportError(str(error)) from None
    shutil.copyfile(converted, out)
    return out


def quantize(f32_path: str | Path, out: str | Path, gguf_type: str) -> Path:
    """Quantize an F32 GGUF with llama.cpp's own quantizer."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = GGUF_TYPES[gguf_type]
    code = llama_cpp.llama_model_quantize(str(f32_path).encode(), str(out).encode(), ctypes.byref(params))
    if code != 0:
        raise RuntimeError(f"llama.cpp could not quantize {f32_path} to {gguf_type} (code {code})")
    return Path(out)


def _model_key(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(model_dir.iterdir()):
        if item.is_file():
            digest.update(f"{item.name}:{item.stat().st_size}:{item.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def gguf_for(model_dir: str | Path, gguf_type: str = "F32", cache: str | Path | None = None) -> Path:
    """The GGUF file of ``model_dir`` in ``gguf_type``, written on first use into ``cache`` (the
    course cache by default) and re-used after."""
    from shared.paths import cache_dir

    if gguf_type not in GGUF_TYPES:
        raise ValueError(f"gguf_type must be one of {', '.join(GGUF_TYPES)}, got {gguf_type!r}")
    model_dir = Path(model_dir)
    folder = Path(cache) if cache else cache_dir() / "lab05-gguf" / f"{model_dir.name}-{_model_key(model_dir)}"
    folder.mkdir(parents=True, exist_ok=True)
    f32 = folder / "model-F32.gguf"
    if not f32.exists():
        write_f32_gguf(model_dir, f32.with_suffix(".tmp"))
        f32.with_suffix(".tmp").rename(f32)
    if gguf_type == "F32":
        return f32
    target = folder / f"model-{gguf_type}.gguf"
    if not target.exists():
        quantize(f32, target.with_suffix(".tmp"), gguf_type)
        target.with_suffix(".tmp").rename(target)
    return target
