"""Given: a GGUF file of a Hugging Face Llama folder, so that llama.cpp can be benchmarked on the
same model as the other backends (lab 03 has you write this converter yourself; here it is given,
so that lab 05 does not need lab 03).

    gguf_for(model_dir, "Q4_0")  ->  Path of model-Q4_0.gguf (written once, cached)

F32 is written with the ``gguf`` package (tensor names and the q / k permutation as llama.cpp's
``convert_hf_to_gguf.py``); the quantized types are made from it by llama.cpp's own quantizer
(``llama_model_quantize``). Only Llama-architecture folders with a byte-level BPE
``tokenizer.json`` are supported: anything else raises ``ValueError`` saying what is missing.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from pathlib import Path
from typing import Any

#: GGUF types this helper writes, with llama.cpp's file-type numbers (``LLAMA_FTYPE_MOSTLY_*``).
GGUF_TYPES = {"F32": 0, "Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15}


def _permute(weights: Any, heads: int) -> Any:
    """HF's rotary layout (halves) to llama.cpp's (interleaved pairs), per head."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def write_f32_gguf(model_dir: str | Path, out: str | Path) -> Path:
    """Write the model in ``model_dir`` as an F32 GGUF file at ``out``."""
    import gguf
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, out = Path(model_dir), Path(out)
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise ValueError(f"{model_dir}: only Llama-architecture models can be written to GGUF here "
                         f"(model_type is {config.get('model_type')!r})")
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.exists():
        raise ValueError(f"{model_dir}: no tokenizer.json (a byte-level BPE tokenizer is needed for GGUF)")
    spec = json.loads(tokenizer_file.read_text())
    if spec["model"]["type"] != "BPE":
        raise ValueError(f"{model_dir}: tokenizer is {spec['model']['type']}, only BPE is supported here")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    state = {name: tensor.detach().numpy().astype(np.float32) for name, tensor in model.state_dict().items()}

    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    rope = config.get("rope_parameters") or {}
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(model_dir.name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_file_type(0)

    vocab = spec["model"]["vocab"]
    size = max(config["vocab_size"], len(tokenizer))
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for token, index in vocab.items():
        tokens[index], types[index] = token, gguf.TokenType.NORMAL
    for added in spec.get("added_tokens", []):
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # the ByteLevel regex pre-tokenizer (see FIELD_NOTES: GGUF)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    if tokenizer.eos_token_id is not None:
        writer.add_eos_token_id(tokenizer.eos_token_id)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    adds_bos = tokenizer.bos_token_id is not None and tokenizer("a").input_ids[:1] == [tokenizer.bos_token_id]
    writer.add_add_bos_token(adds_bos)
    writer.add_add_eos_token(False)

    names = {"embed_tokens": "token_embd", "norm": "output_norm", "lm_head": "output"}
    parts = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for name, data in state.items():
        if "rotary_emb" in name:
            continue
        bare = name.removeprefix("model.").removesuffix(".weight")
        if bare.startswith("layers."):
            _, layer, rest = bare.split(".", 2)
            if rest == "self_attn.q_proj":
                data = _permute(data, heads)
            elif rest == "self_attn.k_proj":
                data = _permute(data, kv_heads)
            target = f"blk.{layer}.{parts[rest]}.weight"
        elif bare in names:
            target = f"{names[bare]}.weight"
        else:
            raise ValueError(f"{model_dir}: tensor {name} has no GGUF name here")
        if target == "output.weight" and config.get("tie_word_embeddings"):
            continue
        writer.add_tensor(target, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
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


def perplexity(gguf_path: str | Path, texts: list[str], n_ctx: int = 512) -> float:
    """llama.cpp's own perplexity of ``gguf_path`` on ``texts``: exp of the mean negative
    log-likelihood of every token after the first, each text evaluated on its own."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf_path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=1)
    total, count = 0.0, 0
    for text in texts:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True)[:n_ctx]
        if len(ids) < 2:
            continue
        llm.reset()
        llm.eval(ids)
        logits = np.asarray(llm.scores[: len(ids) - 1], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        total -= float(log_probs[np.arange(len(ids) - 1), ids[1:]].sum())
        count += len(ids) - 1
    del llm
    return float(np.exp(total / max(count, 1)))
