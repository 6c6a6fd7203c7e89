"""What several lab03 test files share: the modules under test, and GGUF files written by real
tools (the ``gguf`` package's writer, llama.cpp's converter and quantizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.impl import lab_module

LAB = "lab03_llama_cpp"
#: Text the fixture never saw in training, in the style of its corpus (sentences and JSON records).
HELDOUT = (Path(__file__).parents[1] / "data" / "heldout.txt").read_text(encoding="utf-8")
gguf_read = lab_module(LAB, "gguf_read")
quants = lab_module(LAB, "quants")
convert = lab_module(LAB, "convert")
quantize_model = lab_module(LAB, "quantize_model")
run = lab_module(LAB, "run")
serve = lab_module(LAB, "serve")

#: Texts whose tokenization llama.cpp must reproduce: JSON, whitespace runs, accents, CJK, emoji.
TOKENIZER_CORPUS = [
    "Hello world", '{"name": "Ana", "age": 31, "city": "Lima"}', "  two  spaces", "\ttab\tand\nnewline\n\n",
    "Café crème brûlée", "naïve façade", "日本語のテキスト", "中文 测试", "emoji 🍕🚀 end", "   ",
    "x" * 40, "The cat sat on the mat.", "it's we'll they've", "123 4567 89.5", "<s> parsed as special",
    "ünïcödé ÀÉÎÕÜ", "mixed\r\nline endings", "a\u00a0b", "tabs\t\t\tmany", "{\"a\": [1, 2, {\"b\": null}]}",
]


def require_llama_folder(model_dir: Path) -> dict[str, Any]:
    """``config.json`` of ``model_dir``, or a skip naming what the folder lacks for this lab: a
    ``LlamaForCausalLM`` with a rope scaling and a byte-level BPE ``tokenizer.json`` the converter
    writes (the reason is the given ``convert.bpe_pre_tokenizer``'s refusal)."""
    import json

    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "llama" or "LlamaForCausalLM" not in (config.get("architectures") or []):
        pytest.skip(f"{model_dir} is a {config.get('model_type')!r} model; this lab converts LlamaForCausalLM only")
    rope_type = convert.rope_parameters(config).get("rope_type", "default")
    if rope_type not in convert.ROPE_TYPES:
        pytest.skip(f"{model_dir} has rope_type {rope_type!r}; this lab converts {', '.join(convert.ROPE_TYPES)}")
    # leak-check: allowed, a path, as any reader of a model folder writes it
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        pytest.skip(f"{model_dir} has no tokenizer.json; this lab converts byte-level BPE tokenizers only")
    try:
        convert.bpe_pre_tokenizer(json.loads(tokenizer_file.read_text(encoding="utf-8")))
    except convert.ConvertError as error:
        pytest.skip(f"{model_dir}: {error}")
    return config


def reference_source() -> Any:
    """The ``llama_cpp_source`` helper module, or a skip when llama.cpp's source is not here."""
    from lab03_llama_cpp import llama_cpp_source

    try:
        llama_cpp_source.source_dir()
    except llama_cpp_source.SourceMissing as error:
        pytest.skip(str(error))
    return llama_cpp_source


def reference_gguf(model_dir: Path, outtype: str = "f32") -> Path:
    """``model_dir`` converted by llama.cpp's own converter (cached), or a skip where it is missing."""
    return reference_source().reference_convert(model_dir, outtype)


def llama_cpp_quantize(src: Path, out: Path, ftype_name: str) -> Path:
    """Quantize ``src`` with llama.cpp's own quantizer (``llama_model_quantize``)."""
    import llama_cpp

    ftypes = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
              "Q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1, "Q5_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_0,
              "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[ftype_name]
    params.nthread = 2
    status = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), params)
    assert status == 0, f"llama_model_quantize failed ({status})"
    return out


def reader_metadata(path: Path | Any) -> dict[str, Any]:
    """Every key/value of a GGUF file (a path or a ``gguf.GGUFReader``) as ``gguf.GGUFReader``
    reads it (the oracle for task 1)."""
    import gguf

    reader = path if isinstance(path, gguf.GGUFReader) else gguf.GGUFReader(path)
    values = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):  # the reader's pseudo-fields for the header
            continue
        values[name] = field.contents()
    return values


def same_value(ours: Any, theirs: Any) -> bool:
    """Metadata equality that treats float32 values read two ways as equal."""
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(ours) == len(theirs) and all(map(same_value, ours, theirs))
    if isinstance(theirs, float):
        with np.errstate(over="ignore"):
            return isinstance(ours, float) and (ours == theirs or np.float32(ours) == np.float32(theirs))
    return type(ours) is type(theirs) and ours == theirs


def load_llama(path: Path, **kwargs: Any) -> Any:
    """llama.cpp's ``Llama`` on ``path``, quiet, small context, one thread (tests run beside other
    work: spinning threads waiting for a busy core cost more than they gain on a tiny model)."""
    from llama_cpp import Llama

    kwargs = {"n_ctx": 256, "n_threads": 1, "verbose": False, "seed": 0, **kwargs}
    return Llama(model_path=str(path), **kwargs)


def hf_greedy_text(model: Any, tokenizer: Any, ids: list[int], max_new_tokens: int) -> str:
    """The oracle for greedy completions: transformers' generate, new tokens decoded without specials,
    and without U+FFFD: bytes that are not UTF-8 (a random model's stray byte tokens) are U+FFFD in
    transformers' text and dropped from llama-cpp-python's (``errors="ignore"``); compare with
    :func:`llama_text`."""
    import torch

    inputs = torch.tensor([ids], device=model.device)
    with torch.no_grad():
        out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    return llama_text(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))


def llama_text(text: str) -> str:
    """``text`` without U+FFFD, as :func:`hf_greedy_text` writes it (llama-cpp-python drops bytes
    that are not UTF-8; transformers writes U+FFFD for them)."""
    return text.replace("\ufffd", "")


def llama_logits(llm: Any, ids: list[int]) -> np.ndarray:
    """llama.cpp's logits for every position of ``ids``, shape (len(ids), vocab)."""
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)
