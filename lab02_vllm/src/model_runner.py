# Student skeleton for lab02_vllm: fill in each TODO, then run `course test lab02_vllm`.
# (Generated from the reference solution by `course stubs`.)
"""Task 3: the model runner: a compact Llama whose attention reads and writes the paged KV cache.

The Llama forward itself is given (RMSNorm, rotary embeddings with the config's scaling, grouped-
query attention, SwiGLU), loaded straight from a Hugging Face folder's safetensors. Your part is
what makes it *paged*:

- ``prepare`` turns the scheduled sequences into one flat batch of new tokens, decode tokens and
  prefill chunks together (vLLM v1 has no prefill or decode step): their ids, their positions,
  the cache slot each one's key and value go to, the block tables and context lengths that
  attention reads through, and the rows whose logits are sampled (each decode's token and the
  last token of a prompt's final chunk);
- ``LlamaAttention.forward``'s last lines write the new keys/values into the cache and attend
  through it (task 2's functions).

Task 7 adds ``kv_cache_num_blocks``: how many blocks a KV-cache budget in bytes holds.

Readings: vLLM v1's ``vllm/v1/worker/gpu_model_runner.py`` (``_prepare_inputs``); nano-vllm's
``engine/model_runner.py`` and ``models/qwen3.py``; transformers' ``models/llama/modeling_llama.py``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .paged_attention import AttentionMetadata, paged_attention, write_kv_cache
from .sequence import Sequence

LLAMA_ARCHITECTURES = ("LlamaForCausalLM",)


# -------------------------------------------------------------------------------------------
# The model's shape, read from config.json (given)


@dataclass
class ModelConfig:
    """What the runner needs from a Llama ``config.json``."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float
    max_position_embeddings: int
    rope_theta: float
    rope_scaling: dict[str, Any] | None
    tie_word_embeddings: bool

    @classmethod
    def from_folder(cls, folder: str | Path, need_weights: bool = True) -> ModelConfig:
        """Read and check a Hugging Face model folder's ``config.json`` (and, with
        ``need_weights``, that it holds safetensors).

        Raises:
            ValueError: naming the folder and what is missing or unsupported (no config.json, not a
                Llama-architecture causal LM, attention or MLP biases, no safetensors weights).
        """
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ValueError(f"model folder {folder} has no config.json (is it a Hugging Face model folder?)")
        raw = json.loads((folder / "config.json").read_text())
        architectures = raw.get("architectures") or []
        if raw.get("model_type") != "llama" or not set(architectures) & set(LLAMA_ARCHITECTURES):
            raise ValueError(f"model folder {folder} is not a Llama-architecture causal LM "
                             f"(model_type={raw.get('model_type')!r}, architectures={architectures}); "
                             "this engine runs LlamaForCausalLM models only")
        for flag in ("attention_bias", "mlp_bias"):
            if raw.get(flag):
                raise ValueError(f"model folder {folder}: {flag}=true is not supported by this runner")
        if need_weights and not list(folder.glob("*.safetensors")):
            raise ValueError(f"model folder {folder} has no *.safetensors weights")
        rope = dict(raw.get("rope_parameters") or {})  # transformers 5 spelling
        scaling = raw.get("rope_scaling") or (rope if rope.get("rope_type", "default") != "default" else None)
        heads = raw["num_attention_heads"]
        return cls(
            hidden_size=raw["hidden_size"], intermediate_size=raw["intermediate_size"],
            num_hidden_layers=raw["num_hidden_layers"], num_attention_heads=heads,
            num_key_value_heads=raw.get("num_key_value_heads") or heads,
            head_dim=raw.get("head_dim") or raw["hidden_size"] // heads,
            vocab_size=raw["vocab_size"], rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
            max_position_embeddings=raw.get("max_position_embeddings", 2048),
            rope_theta=float(rope.get("rope_theta", raw.get("rope_theta", 10000.0))),
            rope_scaling=scaling, tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        )


# -------------------------------------------------------------------------------------------
# The plain Llama forward (given)


def rope_inv_freq(config: ModelConfig) -> torch.Tensor:
    """Rotary inverse frequencies ``(head_dim // 2,)`` in float32, with the config's scaling
    (none, ``linear`` or ``llama3``; transformers' ``_compute_*_parameters``)."""
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    scaling = config.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_len = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        return torch.where(medium, smoothed, scaled)
    raise ValueError(f"rope scaling type {kind!r} is not supported by this runner "
                     "(supported: default, linear, llama3)")


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply rotary embeddings (transformers' rotate-half layout).

    Args:
        x: ``(num_tokens, heads, head_dim)``.
        cos, sin: ``(num_tokens, 1, head_dim)``.
    """
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm computed in float32, as transformers' ``LlamaRMSNorm``."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


class LlamaAttention(nn.Module):
    """Grouped-query self-attention over the paged KV cache (q, k, v projections fused)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        self.q_size, self.kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, self.q_size + 2 * self.kv_size, bias=False)
        self.o_proj = nn.Linear(self.q_size, config.hidden_size, bias=False)
        self.scale = self.head_dim ** -0.5

    def forward(self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Args:
            hidden: ``(num_tokens, hidden_size)``, the step's new tokens.
            cos, sin: ``(num_tokens, 1, head_dim)`` rotary tables at the tokens' positions.
            k_cache, v_cache: this layer's ``(num_blocks, block_size, num_kv_heads, head_dim)``.

        Returns:
            ``(num_tokens, hidden_size)``.
        """
        num_tokens = hidden.shape[0]
        q, k, v = self.qkv_proj(hidden).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = rotate(q.view(num_tokens, self.num_heads, self.head_dim), cos, sin)
        k = rotate(k.view(num_tokens, self.num_kv_heads, self.head_dim), cos, sin)
        v = v.view(num_tokens, self.num_kv_heads, self.head_dim)
        # TODO(lab02 task 3): the layer's attention through the paged cache: this step's keys and values stored, then attended over, then projected out (README task 3).
        raise NotImplementedError("lab02 task 3: forward is not written yet (see lab02_vllm/README.md, task 3)")


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        self.input_layernorm = nn.Parameter(torch.ones(config.hidden_size))
        self.post_attention_layernorm = nn.Parameter(torch.ones(config.hidden_size))
        self.self_attn = LlamaAttention(config)
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        hidden = hidden + self.self_attn(rms_norm(hidden, self.input_layernorm, self.eps),
                                         cos, sin, k_cache, v_cache, meta)
        gate, up = self.gate_up_proj(rms_norm(hidden, self.post_attention_layernorm, self.eps)).chunk(2, dim=-1)
        return hidden + self.down_proj(F.silu(gate) * up)


class LlamaForCausalLM(nn.Module):
    """A Llama forward over a flat batch of new tokens and a paged KV cache."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.Parameter(torch.ones(config.hidden_size))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(config), persistent=False)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, kv_cache: torch.Tensor,
                meta: AttentionMetadata) -> torch.Tensor:
        """Args:
            input_ids, positions: ``(num_tokens,)`` int64.
            kv_cache: ``(num_layers, 2, num_blocks, block_size, num_kv_heads, head_dim)``.

        Returns:
            ``(num_tokens, hidden_size)`` final hidden states (after the last norm).
        """
        hidden = self.embed_tokens(input_ids)
        angles = positions[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat((angles, angles), dim=-1)[:, None, :]
        cos, sin = emb.cos().to(hidden.dtype), emb.sin().to(hidden.dtype)
        for layer, layer_cache in zip(self.layers, kv_cache, strict=True):
            hidden = layer(hidden, cos, sin, layer_cache[0], layer_cache[1], meta)
        return rms_norm(hidden, self.norm, self.config.rms_norm_eps)

    def load_hf_weights(self, folder: Path) -> None:
        """Copy a Hugging Face Llama's safetensors into this module (q/k/v and gate/up fused)."""
        from safetensors.torch import load_file

        weights: dict[str, torch.Tensor] = {}
        for file in sorted(folder.glob("*.safetensors")):
            weights.update(load_file(file))
        weights = {name.removeprefix("model."): tensor for name, tensor in weights.items()}

        def take(name: str) -> torch.Tensor:
            if name not in weights:
                raise ValueError(f"model folder {folder}: weight {name!r} is missing from its safetensors")
            return weights[name]

        with torch.no_grad():
            self.embed_tokens.weight.copy_(take("embed_tokens.weight"))
            self.norm.copy_(take("norm.weight"))
            head = weights.get("lm_head.weight")
            if head is None and not self.config.tie_word_embeddings:
                take("lm_head.weight")
            self.lm_head.weight.copy_(head if head is not None else take("embed_tokens.weight"))
            for i, layer in enumerate(self.layers):
                p = f"layers.{i}."
                layer.input_layernorm.copy_(take(p + "input_layernorm.weight"))
                layer.post_attention_layernorm.copy_(take(p + "post_attention_layernorm.weight"))
                layer.self_attn.qkv_proj.weight.copy_(torch.cat(
                    [take(p + f"self_attn.{x}_proj.weight") for x in "qkv"], dim=0))
                layer.self_attn.o_proj.weight.copy_(take(p + "self_attn.o_proj.weight"))
                layer.gate_up_proj.weight.copy_(torch.cat(
                    [take(p + f"mlp.{x}_proj.weight") for x in ("gate", "up")], dim=0))
                layer.down_proj.weight.copy_(take(p + "mlp.down_proj.weight"))


def random_model(config: ModelConfig, device: torch.device, dtype: torch.dtype) -> LlamaForCausalLM:
    """A model with random weights made directly on ``device`` in ``dtype`` (no copy in host memory)."""
    with torch.device("meta"):  # shapes only: nothing is allocated until to_empty
        model = LlamaForCausalLM(config).to(dtype=dtype)
    model = model.to_empty(device=device).eval()
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for _name, param in model.named_parameters():
            if param.dim() == 1:
                param.fill_(1.0)  # norm weights
            else:
                param.normal_(0.0, 0.02, generator=generator)
    return model


# -------------------------------------------------------------------------------------------
# KV-cache size (task 7)


def kv_cache_bytes_per_block(config: ModelConfig, block_size: int, dtype: torch.dtype) -> int:
    """Bytes one block takes across all layers: keys and values, ``block_size`` tokens each.

    Args:
        config: the model's shape (``num_hidden_layers``, ``num_key_value_heads``, ``head_dim``).
        block_size: token slots per block.
        dtype: the cache's element type (``torch.float32`` takes 4 bytes per element).
    """
    # TODO(lab02 task 7): the bytes one KV block takes over all layers, keys and values, as vLLM sizes its pool (README task 7; vLLM docs 'CPU installation').
    raise NotImplementedError("lab02 task 7: kv_cache_bytes_per_block is not written yet (see lab02_vllm/README.md, task 7)")


def kv_cache_num_blocks(config: ModelConfig, kv_cache_bytes: int, block_size: int, dtype: torch.dtype) -> int:
    """How many whole blocks fit in ``kv_cache_bytes`` (what vLLM reports as ``num_gpu_blocks``
    for ``VLLM_CPU_KVCACHE_SPACE`` on a CPU, or for its memory budget on a GPU)."""
    # TODO(lab02 task 7): how many whole blocks fit in the KV budget, the number vLLM reports (README task 7).
    raise NotImplementedError("lab02 task 7: kv_cache_num_blocks is not written yet (see lab02_vllm/README.md, task 7)")


# -------------------------------------------------------------------------------------------
# The runner


class ModelRunner:
    """Holds the model and the KV cache; runs one scheduled step.

    Args:
        model_dir: a Hugging Face Llama folder (config.json + safetensors).
        block_size: token slots per KV block.
        num_kv_blocks: blocks in the pool.
        device: ``"cpu"``, ``"cuda"``, ... (already resolved).
        dtype: the weights' and cache's dtype.
        load_format: ``"auto"`` reads the safetensors; ``"dummy"`` makes random weights on the
            device (vLLM's option: a 7B-shaped config folder with no weights, for GPU demos).
    """

    def __init__(self, model_dir: str | Path, *, block_size: int, num_kv_blocks: int,
                 device: str = "cpu", dtype: torch.dtype = torch.float32, load_format: str = "auto") -> None:
        if load_format not in ("auto", "dummy"):
            raise ValueError(f"load_format must be 'auto' or 'dummy', got {load_format!r}")
        self.model_dir = Path(model_dir)
        self.config = ModelConfig.from_folder(self.model_dir, need_weights=load_format == "auto")
        self.block_size, self.num_kv_blocks = block_size, num_kv_blocks
        self.device, self.dtype = torch.device(device), dtype
        if load_format == "dummy":
            self.model = random_model(self.config, self.device, dtype)
        else:
            model = LlamaForCausalLM(self.config)
            model.load_hf_weights(self.model_dir)
            self.model = model.to(device=self.device, dtype=dtype).eval()
        self.model.inv_freq = rope_inv_freq(self.config).to(self.device)  # stays float32
        c = self.config
        self.kv_cache = torch.zeros(c.num_hidden_layers, 2, num_kv_blocks, block_size,
                                    c.num_key_value_heads, c.head_dim, device=self.device, dtype=dtype)

    def _tensor(self, values: list[int] | list[list[int]], dtype: torch.dtype = torch.int64) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=self.device)

    def _block_tables(self, seqs: list[Sequence]) -> torch.Tensor:
        """``(num_seqs, max_blocks)`` block tables, padded with 0 (given)."""
        width = max(len(s.block_table) for s in seqs)
        return self._tensor([s.block_table + [0] * (width - len(s.block_table)) for s in seqs], torch.int32)

    def prepare(self, seqs: list[Sequence],
                num_new_tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor, AttentionMetadata, torch.Tensor]:
        """One step's flat batch: each sequence's next ``num_new_tokens`` tokens, decodes and prefill
        chunks alike (vLLM v1's ``_prepare_inputs``).

        Sequence ``s`` with ``c = s.num_computed_tokens`` feeds ``token_ids[c:c + n]`` at positions
        ``c .. c + n - 1`` (a decode: ``n = 1``, its newest token; a prefill chunk: the next ``n``
        prompt tokens, after a cached prefix or the chunks before); token ``i`` goes to slot
        ``block_table[i // block_size] * block_size + i % block_size``; after the step the cache holds
        its first ``c + n`` tokens (its context length). Only a sequence whose chunk reaches its
        last token (``c + n == len(s)``) samples: its logits are those of the chunk's last row.

        Args:
            seqs: the step's sequences, in the scheduler's order.
            num_new_tokens: how many tokens each computes this step (at least 1).

        Returns:
            ``input_ids`` ``(num_tokens,)``, ``positions`` ``(num_tokens,)``, the metadata
            (``is_prefill`` when any sequence has more than one new token), and ``logits_indices``:
            the flat-batch rows of the sampling sequences' last tokens, in the sequences' order.
        """
        # TODO(lab02 task 3): one flat batch of decode tokens and prefill chunks together: their ids, positions and slots, the metadata attention reads, and the rows that are sampled (README task 3; the docstring).
        raise NotImplementedError("lab02 task 3: prepare is not written yet (see lab02_vllm/README.md, task 3)")

    @torch.inference_mode()
    def run(self, seqs: list[Sequence], num_new_tokens: list[int]) -> torch.Tensor:
        """One forward step over ``seqs``, each computing its next ``num_new_tokens`` tokens (given).

        Returns:
            ``(num_sampled, vocab_size)`` float32 logits, one row per sequence whose chunk reaches
            its last token (``num_computed_tokens + n == len(seq)``), in the sequences' order; the
            sequences in the middle of their prompt get none (the lm head runs only where a token
            is sampled).
        """
        input_ids, positions, meta, logits_indices = self.prepare(seqs, num_new_tokens)
        hidden = self.model(input_ids, positions, self.kv_cache, meta)
        return self.model.lm_head(hidden[logits_indices]).float()

    @torch.inference_mode()
    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """Copy-on-write: copy the KV of block ``src`` into block ``dst`` in every layer (given)."""
        for src, dst in pairs:
            self.kv_cache[:, :, dst].copy_(self.kv_cache[:, :, src])
