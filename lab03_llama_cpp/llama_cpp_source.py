"""llama.cpp's own source, as references for this lab (given; not a task).

The ``llama-cpp-python`` source package (the ``.tar.gz`` pip downloads to build llama.cpp) carries
llama.cpp's whole source tree under ``vendor/llama.cpp``. Two parts of it serve as oracles here:

- ``convert_hf_to_gguf.py`` (with its ``conversion/`` package and ``gguf-py``): llama.cpp's own
  Hugging Face -> GGUF converter, the chapter's ``convert.py``;
- ``models/ggml-vocab-*.gguf``: vocabulary-only GGUF files that converter wrote for real model
  families (GPT-2, Llama 3, Qwen2, Phi-3, ...), files nobody in this course wrote.

:func:`source_dir` finds the source package (``$LLAMA_CPP_SDIST``, the course cache where
``shared/install.sh`` keeps it, pip's cache) and unpacks just those parts into
``shared.paths.cache_dir()/llama.cpp-<version>``.
Where there is none, get one with::

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d ~/.cache/llm-inference-course
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from shared.paths import cache_dir

VERSION = "0.3.36"
SDIST_NAME = f"llama_cpp_python-{VERSION}.tar.gz"
HOW_TO_GET = (f"pip download --no-deps --no-binary :all: llama-cpp-python=={VERSION} -d {cache_dir()} "
              "(or set $LLAMA_CPP_SDIST to the .tar.gz)")
_WANTED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "models/ggml-vocab-")

#: The pre-tokenizer the fixture's byte-level BPE needs (see shared/models.py). llama.cpp's
#: converter recognises a pre-tokenizer by hashing how it splits a test text; it does not know the
#: fixture's hash, so we tell it, as one would by adding the hash to its get_vocab_base_pre().
_CONVERTER_WRAPPER = """
import sys, runpy
sys.argv = sys.argv[1:]
sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0])
from conversion import base
original = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return original(self, tokenizer)
    except NotImplementedError:
        return "gpt-2"
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class SourceMissing(RuntimeError):
    """llama.cpp's source is not on this machine."""


def find_sdist() -> Path | None:
    """The llama-cpp-python source package, wherever it is here, or None."""
    candidates = [os.environ.get("LLAMA_CPP_SDIST", "")]
    candidates += [str(cache_dir() / SDIST_NAME)]
    candidates += glob.glob(str(Path.home() / ".cache" / "pip" / "**" / SDIST_NAME), recursive=True)
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def source_dir() -> Path:
    """The unpacked parts of llama.cpp's source (``convert_hf_to_gguf.py``, ``models/``, ...).

    Raises:
        SourceMissing: no source package here; the message says how to get one.
    """
    target = cache_dir() / f"llama.cpp-{VERSION}"
    if (target / "convert_hf_to_gguf.py").exists():
        return target
    sdist = find_sdist()
    if sdist is None:
        raise SourceMissing(f"llama.cpp's source (llama-cpp-python {VERSION} sdist) is not here; "
                            f"to get it: {HOW_TO_GET}")
    prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
    staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".llama.cpp-"))
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            relative = member.name.removeprefix(prefix)
            if member.isfile() and member.name.startswith(prefix) and relative.startswith(_WANTED):
                member.name = relative
                try:
                    archive.extract(member, staging, filter="data")
                except TypeError:  # Python < 3.10.12 / 3.11.4: no extraction filters (names checked above)
                    archive.extract(member, staging)
    try:
        staging.rename(target)
    except OSError:  # another process unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def vocab_files() -> list[Path]:
    """llama.cpp's ``models/ggml-vocab-*.gguf`` files, smallest first."""
    return sorted((source_dir() / "models").glob("ggml-vocab-*.gguf"), key=lambda p: p.stat().st_size)


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def reference_convert(model_dir: str | Path, outtype: str = "f32") -> Path:
    """``model_dir`` converted by llama.cpp's own ``convert_hf_to_gguf.py``, cached by content.

    Args:
        model_dir: a Hugging Face model folder.
        outtype: ``f32``, ``f16``, ``bf16`` or ``q8_0`` (the converter's ``--outtype``).
    Returns:
        the path of the GGUF file (in the course cache; do not modify it).
    Raises:
        SourceMissing: no llama.cpp source here.
        RuntimeError: the converter failed; the message ends with its output.
    """
    model_dir = Path(model_dir)
    out = cache_dir() / "lab03-reference-gguf" / f"{_folder_hash(model_dir)}-{outtype}.gguf"
    if out.exists():
        return out
    source = source_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(f".{os.getpid()}.partial")
    command = [sys.executable, "-c", _CONVERTER_WRAPPER, str(source / "convert_hf_to_gguf.py"),
               str(model_dir), "--outfile", str(partial), "--outtype", outtype]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not partial.exists():
        raise RuntimeError(f"llama.cpp's convert_hf_to_gguf.py failed on {model_dir}:\n"
                           f"{(result.stdout + result.stderr)[-3000:]}")
    partial.rename(out)
    return out
