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
    return config


def rope_theta(config: dict[str, Any]) -> float:
    """The rotary base: transformers 5 writes it inside ``rope_parameters`` (given)."""
    return float((config.get("rope_parameters") or {}).get("rope_theta", config.get("rope_theta", 10000.0)))


def gguf_tensor_name(hf_name: str) -> str:
    """The GGUF name of a HF Llama tensor: ``model.layers.3.mlp.up_proj.weight`` -> ``blk.3.ffn_up.weight``.

    Raises:
        ConvertError: a name this converter does not know, naming it.
    """
    # BEGIN SOLUTION task 2: GLOBAL_TENSORS for the three outside the layers; "model.layers.N.<rest>" -> "blk.N." + LAYER_TENSORS[rest].
    if hf_name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[hf_name]
    match = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf_name)
    if match and match.group(2) in LAYER_TENSORS:
        return f"blk.{match.group(1)}.{LAYER_TENSORS[match.group(2)]}"
    raise ConvertError(f"unknown tensor name {hf_name!r}: not part of a Llama checkpoint")
    # END SOLUTION


def permute_for_rope(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of a q or k projection from HF's rotary layout to llama.cpp's.

    Args:
        weight: shape (n_head * head_dim, hidden): per head, HF's rows are [x_0 .. x_{d/2-1},
            y_0 .. y_{d/2-1}] where (x_i, y_i) is the pair rotated together.
        n_head: heads in this projection (``num_key_value_heads`` for k).
    Returns:
        a new array of the same shape where, per head, rows are [x_0, y_0, x_1, y_1, ...].
    """
    # BEGIN SOLUTION task 2: reshape to (n_head, 2, head_dim // 2, hidden), swap axes 1 and 2, reshape back.
    head_dim = weight.shape[0] // n_head
    return weight.reshape(n_head, 2, head_dim // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    # END SOLUTION


def model_metadata(config: dict[str, Any], outtype: str) -> dict[str, Any]:
    """The ``general.*`` and ``llama.*`` keys llama.cpp needs, from ``config.json``.

    Returns:
        ``{key: value}`` with ints for counts and lengths, floats for ``rope.freq_base`` and
        ``attention.layer_norm_rms_epsilon`` (:func:`write_metadata` picks the GGUF types).
        Keys: general.architecture, general.file_type (``OUTTYPES``), general.quantization_version
        (2), llama.block_count, context_length, embedding_length, feed_forward_length,
        attention.head_count, attention.head_count_kv, rope.freq_base,
        attention.layer_norm_rms_epsilon, vocab_size, and rope.dimension_count,
        attention.key_length and attention.value_length (all three the head dimension).
    """
    # BEGIN SOLUTION task 2: map each config.json field to its llama.* key; the head dimension is head_dim or hidden / heads.
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    return {
        "general.architecture": ARCH,
        "general.file_type": int(OUTTYPES[outtype]),
        "general.quantization_version": gguf.GGML_QUANT_VERSION,
        f"{ARCH}.block_count": config["num_hidden_layers"],
        f"{ARCH}.context_length": config["max_position_embeddings"],
        f"{ARCH}.embedding_length": config["hidden_size"],
        f"{ARCH}.feed_forward_length": config["intermediate_size"],
        f"{ARCH}.attention.head_count": config["num_attention_heads"],
        f"{ARCH}.attention.head_count_kv": config.get("num_key_value_heads", config["num_attention_heads"]),
        f"{ARCH}.rope.freq_base": rope_theta(config),
        f"{ARCH}.attention.layer_norm_rms_epsilon": float(config["rms_norm_eps"]),
        f"{ARCH}.vocab_size": config["vocab_size"],
        f"{ARCH}.rope.dimension_count": head_dim,
        f"{ARCH}.attention.key_length": head_dim,
        f"{ARCH}.attention.value_length": head_dim,
    }
    # END SOLUTION


def tokenizer_metadata(model_dir: Path, vocab_size: int) -> dict[str, Any]:
    """The ``tokenizer.ggml.*`` keys for a byte-level BPE tokenizer (``tokenizer.json``).

    Returns keys: ``model`` ("gpt2"), ``pre`` ("gpt-2": the GPT-2 byte-level regex), ``tokens``
    (every id below ``vocab_size`` in order, ``[PAD<id>]`` for holes), ``token_type`` (NORMAL, or
    CONTROL for special added tokens, UNUSED for holes), ``merges`` (``"a b"`` strings),
    ``bos_token_id`` / ``eos_token_id`` / ``padding_token_id`` (from ``tokenizer_config.json``'s
    tokens), ``add_bos_token`` (a bool: does the HF tokenizer put bos first? its config's
    ``add_bos_token``, else its ``post_processor`` template), and ``chat_template`` (from
    tokenizer_config.json or chat_template.jinja) when there is one; each prefixed
    ``tokenizer.ggml.`` except ``tokenizer.chat_template``.

    Raises:
        ConvertError: no ``tokenizer.json``, or a tokenizer that is not BPE.
    """
    # BEGIN SOLUTION task 2: read tokenizer.json's model.vocab / merges and added_tokens; ids of bos/eos/pad come from the token strings in tokenizer_config.json.
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ConvertError(f"model_dir={str(model_dir)!r} has no tokenizer.json (only byte-level BPE is handled)")
    spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    if spec["model"].get("type") != "BPE":
        raise ConvertError(f"model_dir={str(model_dir)!r}: tokenizer type {spec['model'].get('type')!r} is not BPE")
    by_id = {index: text for text, index in spec["model"]["vocab"].items()}
    special = {}
    for added in spec.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        special[added["id"]] = added.get("special", False)
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(UNUSED)
        else:
            tokens.append(by_id[index])
            types.append(CONTROL if special.get(index) else (USER_DEFINED if index in special else NORMAL))
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    metadata: dict[str, Any] = {
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
        "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges,
    }
    config_file = model_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    ids = {text: index for index, text in by_id.items()}
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id")):
        token = config.get(f"{role}_token")
        token = token.get("content") if isinstance(token, dict) else token
        if token in ids:
            metadata[f"tokenizer.ggml.{key}"] = ids[token]
    add_bos = config.get("add_bos_token")
    if add_bos is None:  # a TemplateProcessing post-processor that starts with a special token adds bos
        post = spec.get("post_processor") or {}
        add_bos = any(p.get("type") == "TemplateProcessing" and p.get("single") and "SpecialToken" in p["single"][0]
                      for p in post.get("processors", [post]))
    metadata["tokenizer.ggml.add_bos_token"] = bool(add_bos)
    template = config.get("chat_template")
    if template is None and (model_dir / "chat_template.jinja").is_file():
        template = (model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    if template:
        metadata["tokenizer.chat_template"] = template
    return metadata
    # END SOLUTION


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
    Returns:
        ``out_path`` as a Path.
    Raises:
        ConvertError: the folder is missing, not a Llama model, or has no BPE tokenizer; or
            ``outtype`` is unknown (naming ``outtype``).
    """
    if outtype not in OUTTYPES:
        raise ConvertError(f"outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    model_dir, out_path = Path(model_dir), Path(out_path)
    config = load_config(model_dir)
    # BEGIN SOLUTION task 2: metadata (model + tokenizer) through write_metadata; then each tensor renamed, q/k permuted (k with the kv head count), cast to float16 when outtype is f16 and the tensor is 2-D; then header, kv data, tensors.
    writer = gguf.GGUFWriter(out_path, ARCH)
    write_metadata(writer, model_metadata(config, outtype))
    write_metadata(writer, tokenizer_metadata(model_dir, config["vocab_size"]))
    n_head = config["num_attention_heads"]
    n_kv_head = config.get("num_key_value_heads", n_head)
    tensors = load_tensors(model_dir)
    if "lm_head.weight" not in tensors:  # tied embeddings: llama.cpp falls back to token_embd
        tensors.pop("lm_head.weight", None)
    for hf_name, data in tensors.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        if hf_name.endswith("q_proj.weight"):
            data = permute_for_rope(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = permute_for_rope(data, n_kv_head)
        if outtype == "f16" and data.ndim > 1:
            data = data.astype(np.float16)
        writer.add_tensor(gguf_tensor_name(hf_name), np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # END SOLUTION
    return out_path
