# Student skeleton for lab03_llama_cpp: fill in each TODO, then run `course test lab03_llama_cpp`.
# (Generated from the reference solution by `course stubs`.)
"""Task 2: convert a Hugging Face Llama folder to GGUF (what llama.cpp's ``convert_hf_to_gguf.py`` does).

Three things must be right for llama.cpp to load the file and compute the same logits:

1. **metadata**: the architecture's hyperparameters under ``llama.*`` and the tokenizer under
   ``tokenizer.ggml.*`` (tokens, their types, BPE merges, special ids, the pre-tokenizer name and
   the chat template). llama.cpp reads nothing from ``config.json``: what is not in the file does
   not exist for it.
2. **tensor names**: ``model.layers.3.self_attn.q_proj.weight`` becomes ``blk.3.attn_q.weight``.
3. **the rotary permutation**: HF's Llama rotates the two *halves* of each head
   (``rotate_half``: pairs (i, i + d/2)); llama.cpp's ``LLAMA_ROPE_TYPE_NORM`` rotates *adjacent*
   pairs (2i, 2i + 1), as Meta's original checkpoints did. So the rows of the q and k projections
   are permuted, per head, from [first halves..., second halves...] to interleaved pairs.

Readings: llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel.permute``, ``set_gguf_parameters``,
``_set_vocab_gpt2``); ``gguf-py/gguf/constants.py`` (``Keys``, ``TokenType``, ``LlamaFileType``);
transformers' ``modeling_llama.py`` (``rotate_half``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gguf
import numpy as np

ARCH = "llama"
OUTTYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}

# token types (gguf.TokenType)
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5

#: HF tensor name inside a layer -> GGUF name inside ``blk.N``.
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                  "lm_head.weight": "output.weight"}


class ConvertError(ValueError):
    """The folder cannot be converted; the message names the folder and what is wrong."""


def load_config(model_dir: Path) -> dict[str, Any]:
    """``config.json`` of a Llama-architecture folder (given).

    Raises:
        ConvertError: no folder, no config.json, or not a Llama architecture (naming what it is).
    """
    if not model_dir.is_dir():
        raise ConvertError(f"model_dir={str(model_dir)!r}: no such folder")
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ConvertError(f"model_dir={str(model_dir)!r} is not a Hugging Face model folder: no config.json")
    config = json.loads(config_file.read_text())
    architectures = config.get("architectures") or []
    if config.get("model_type") != "llama" or "LlamaForCausalLM" not in architectures:
        raise ConvertError(f"model_dir={str(model_dir)!r} is not a Llama-architecture causal LM "
                           f"(model_type {config.get('model_type')!r}, architectures {architectures}); "
                           "this converter handles LlamaForCausalLM only")
    rope_type = rope_parameters(config).get("rope_type", "default")
    if rope_type not in ROPE_TYPES:
        raise ConvertError(f"model_dir={str(model_dir)!r}: rope_type {rope_type!r} is not supported "
                           f"(this converter writes {', '.join(ROPE_TYPES)}); llama.cpp's convert_hf_to_gguf.py "
                           "knows more of them")
    return config


#: The rope scalings this converter writes: none, linear (two metadata keys), llama3 (a tensor).
ROPE_TYPES = ("default", "linear", "llama3")


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """The rotary settings of ``config.json`` (given): transformers 5 writes ``rope_parameters``
    (``rope_type``, ``rope_theta``, ``factor``, ...); older configs ``rope_scaling`` (``type`` or
    ``rope_type``) beside a top-level ``rope_theta``."""
    parameters = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    if "rope_type" not in parameters and "type" in parameters:
        parameters["rope_type"] = parameters["type"]
    return parameters


def rope_theta(config: dict[str, Any]) -> float:
    """The rotary base: transformers 5 writes it inside ``rope_parameters`` (given)."""
    return float(rope_parameters(config).get("rope_theta", config.get("rope_theta", 10000.0)))


def rope_scaling(config: dict[str, Any], head_dim: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What llama.cpp needs to scale the rotary positions as transformers does (given).

    A port of llama.cpp's ``convert_hf_to_gguf.py`` (``TextModel.set_gguf_parameters`` and
    ``LlamaModel.generate_extra_tensors``), which is what llama.cpp's loader reads back:

    - no scaling (``rope_type`` absent or ``"default"``): nothing;
    - ``"linear"`` (every position divided by ``factor``): the keys ``llama.rope.scaling.type``
      = ``"linear"`` and ``llama.rope.scaling.factor``;
    - ``"llama3"`` (long wavelengths divided by ``factor``, short ones kept, a smooth ramp between):
      no keys, but a tensor ``rope_freqs.weight`` of ``head_dim // 2`` float32 factors by which
      llama.cpp divides each rotary frequency.

    Args:
        config: ``config.json`` as a dict.
        head_dim: the model's head dimension (``llama.rope.dimension_count``).
    Returns:
        ``(metadata keys, {GGUF tensor name: array})``.
    Raises:
        ConvertError: any other ``rope_type`` (yarn, dynamic, longrope, ...), naming it.
    """
    parameters = rope_parameters(config)
    rope_type = parameters.get("rope_type", "default")
    if rope_type == "default":
        return {}, {}
    if rope_type == "linear":
        return {f"{ARCH}.rope.scaling.type": "linear",
                f"{ARCH}.rope.scaling.factor": float(parameters["factor"])}, {}
    if rope_type != "llama3":
        raise ConvertError(f"rope_type {rope_type!r} is not supported (this converter writes {', '.join(ROPE_TYPES)})")
    # float32 throughout, as llama.cpp's converter computes it with torch
    base = np.float32(parameters.get("rope_theta", rope_theta(config)))
    freqs = np.float32(1.0) / base ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))
    factor = np.float32(parameters.get("factor", 8.0))
    low_freq_factor = np.float32(parameters.get("low_freq_factor", 1.0))
    high_freq_factor = np.float32(parameters.get("high_freq_factor", 4.0))
    old_context = np.float32(parameters.get("original_max_position_embeddings", 8192))
    wavelengths = np.float32(2 * np.pi) / freqs
    smooth = (old_context / wavelengths - low_freq_factor) / (high_freq_factor - low_freq_factor)
    ramp = np.float32(1.0) / ((np.float32(1.0) - smooth) / factor + smooth)
    factors = np.where(wavelengths < old_context / high_freq_factor, np.float32(1.0),
                       np.where(wavelengths > old_context / low_freq_factor, factor, ramp))
    return {}, {"rope_freqs.weight": factors.astype(np.float32)}


#: Llama 3's pre-tokenizer regex as its ``tokenizer.json`` writes it; llama.cpp calls it "llama-bpe".
LLAMA3_SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def bpe_pre_tokenizer(spec: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer of a byte-level BPE ``tokenizer.json`` (given).

    llama.cpp splits text with a regex it picks by the name in ``tokenizer.ggml.pre``, then runs
    the BPE merges on each piece. Two byte-level BPE conventions are recognised here, as their
    ``tokenizer.json`` spells them: GPT-2's (a ``ByteLevel`` pre-tokenizer with its own regex:
    ``"gpt-2"``) and Llama 3's (a ``Split`` on :data:`LLAMA3_SPLIT`, then ``ByteLevel`` without a
    regex, and ``ignore_merges``: ``"llama-bpe"``). llama.cpp's own converter recognises many more
    by hashing how the tokenizer splits a test text.

    Args:
        spec: the parsed ``tokenizer.json``.
    Returns:
        ``"gpt-2"`` or ``"llama-bpe"``.
    Raises:
        ConvertError: a model that is not BPE; a SentencePiece-style BPE (byte fallback, a
            normalizer, a Metaspace pre-tokenizer: llama.cpp reads those as its "llama" tokenizer
            with scores, which this converter does not write); or another pre-tokenizer, naming it.
    """
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise ConvertError(f"tokenizer type {model.get('type')!r} is not supported: this converter writes "
                           "byte-level BPE tokenizers only")
    if model.get("byte_fallback") or spec.get("normalizer") or "Metaspace" in json.dumps(spec.get("pre_tokenizer")):
        raise ConvertError("a SentencePiece-style BPE tokenizer (byte_fallback, a normalizer or Metaspace, as "
                           "Llama 2's) is not supported: this converter writes byte-level BPE tokenizers only")
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True) and not model.get("ignore_merges"):
        return "gpt-2"
    if (kinds == ["Split", "ByteLevel"] and steps[0].get("pattern", {}).get("Regex") == LLAMA3_SPLIT
            and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert")
            and not steps[1].get("use_regex", True) and model.get("ignore_merges")):
        return "llama-bpe"
    raise ConvertError(f"pre-tokenizer {json.dumps(pre)[:200]} (ignore_merges={model.get('ignore_merges')}) is not "
                       "supported: this converter knows GPT-2's and Llama 3's byte-level BPE")


def gguf_tensor_name(hf_name: str) -> str:
    """The GGUF name of a HF Llama tensor: ``model.layers.3.mlp.up_proj.weight`` -> ``blk.3.ffn_up.weight``.

    Raises:
        ConvertError: a name this converter does not know, naming it.
    """
    # TODO(lab03 task 2): the GGUF name of a HF Llama tensor, as gguf's own tensor map names it, or a ConvertError naming an unknown one (README task 2, 'Names').
    raise NotImplementedError("lab03 task 2: gguf_tensor_name is not written yet (see lab03_llama_cpp/README.md, task 2)")


def permute_for_rope(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of a q or k projection from HF's rotary layout to llama.cpp's.

    Args:
        weight: shape (n_head * head_dim, hidden): per head, HF's rows are [x_0 .. x_{d/2-1},
            y_0 .. y_{d/2-1}] where (x_i, y_i) is the pair rotated together.
        n_head: heads in this projection (``num_key_value_heads`` for k).
    Returns:
        a new array of the same shape where, per head, rows are [x_0, y_0, x_1, y_1, ...].
    """
    # TODO(lab03 task 2): a q or k projection's rows reordered from HF's rotary pairing to llama.cpp's (README task 2, 'The rotary permutation'; the docstring).
    raise NotImplementedError("lab03 task 2: permute_for_rope is not written yet (see lab03_llama_cpp/README.md, task 2)")


def model_metadata(config: dict[str, Any], outtype: str) -> dict[str, Any]:
    """The ``general.*`` and ``llama.*`` keys llama.cpp needs, from ``config.json``.

    Returns:
        ``{key: value}`` with ints for counts and lengths, floats for ``rope.freq_base`` and
        ``attention.layer_norm_rms_epsilon`` (:func:`write_metadata` picks the GGUF types).
        Keys: general.architecture, general.file_type (``OUTTYPES``), general.quantization_version
        (2), llama.block_count, context_length, embedding_length, feed_forward_length,
        attention.head_count, attention.head_count_kv, rope.freq_base,
        attention.layer_norm_rms_epsilon, vocab_size, and rope.dimension_count,
        attention.key_length and attention.value_length (all three the head dimension: the
        config's ``head_dim``, which need not be hidden_size / num_attention_heads; that ratio only
        where the config has no head_dim), and the rope-scaling keys :func:`rope_scaling` gives.
    """
    # TODO(lab03 task 2): the general.* and llama.* keys llama.cpp needs, from config.json, with the docstring's value types (README task 2, 'Metadata' and 'Other shapes').
    raise NotImplementedError("lab03 task 2: model_metadata is not written yet (see lab03_llama_cpp/README.md, task 2)")


def tokenizer_metadata(model_dir: Path, vocab_size: int) -> dict[str, Any]:
    """The ``tokenizer.ggml.*`` keys for a byte-level BPE tokenizer (``tokenizer.json``).

    Returns keys: ``model`` ("gpt2"), ``pre`` (:func:`bpe_pre_tokenizer`'s name), ``tokens``
    (every id below ``vocab_size`` in order, ``[PAD<id>]`` for holes), ``token_type`` (NORMAL;
    CONTROL for special added tokens, USER_DEFINED for other added tokens, UNUSED for holes), ``merges`` (``"a b"`` strings),
    ``bos_token_id`` / ``eos_token_id`` / ``padding_token_id`` (from ``tokenizer_config.json``'s
    tokens), ``add_bos_token`` (a bool: does the HF tokenizer put bos first? its config's
    ``add_bos_token``, else its ``post_processor`` template), ``add_space_prefix`` (a bool, only
    where tokenizer_config.json sets ``add_prefix_space``, as llama.cpp's converter writes it for a
    Llama), and ``chat_template`` (from tokenizer_config.json or chat_template.jinja) when there is one; each prefixed
    ``tokenizer.ggml.`` except ``tokenizer.chat_template``.

    Raises:
        ConvertError: no ``tokenizer.json``, or one :func:`bpe_pre_tokenizer` refuses.
    """
    # TODO(lab03 task 2): the tokenizer.ggml.* keys that make llama.cpp tokenize exactly as HF does (README task 2, 'Metadata'; the docstring's keys).
    raise NotImplementedError("lab03 task 2: tokenizer_metadata is not written yet (see lab03_llama_cpp/README.md, task 2)")


def write_metadata(writer: gguf.GGUFWriter, metadata: dict[str, Any]) -> None:
    """Add each key with the GGUF type llama.cpp expects (given): ints UINT32, floats FLOAT32,
    lists of ints INT32 arrays, lists of strings STRING arrays. ``general.architecture`` is
    written by the GGUFWriter itself."""
    for key, value in metadata.items():
        if key == "general.architecture":
            continue
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, list):
            writer.add_array(key, value)
        else:
            raise TypeError(f"metadata {key!r}: cannot write a {type(value).__name__}")


def load_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    """Every tensor of the folder's safetensors files, as float32 NumPy arrays (given)."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConvertError(f"model_dir={str(model_dir)!r} has no *.safetensors weights")
    tensors = {}
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                tensors[name] = handle.get_tensor(name).float().numpy()
    return tensors


def convert(model_dir: str | Path, out_path: str | Path, outtype: str = "f32") -> Path:
    """Write ``model_dir`` (a HF ``LlamaForCausalLM`` folder) to ``out_path`` as GGUF.

    Args:
        model_dir: folder with config.json, *.safetensors, tokenizer.json, tokenizer_config.json.
        out_path: the .gguf file to write.
        outtype: ``"f32"``, or ``"f16"`` (2-D weights in float16, 1-D norms stay float32, as
            llama.cpp's converter does).
    The file holds every checkpoint tensor (renamed; q and k permuted) and the extra tensors of
    :func:`rope_scaling` (llama3's ``rope_freqs.weight``).
    Returns:
        ``out_path`` as a Path.
    Raises:
        ConvertError: the folder is missing, not a Llama model, has a rope scaling or a tokenizer
            this converter does not write (naming it); or ``outtype`` is unknown (naming ``outtype``).
    """
    if outtype not in OUTTYPES:
        raise ConvertError(f"outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    model_dir, out_path = Path(model_dir), Path(out_path)
    config = load_config(model_dir)
    # TODO(lab03 task 2): the whole GGUF file, with the same metadata and tensor bytes llama.cpp's converter writes for the folder; nothing written when the folder is refused (README task 2; the docstring).
    raise NotImplementedError("lab03 task 2: convert is not written yet (see lab03_llama_cpp/README.md, task 2)")
    return out_path
