"""Task 11: deploying real vLLM — a validated config, its command line, and a KV-cache planner.

Serving a model well is mostly arithmetic done before the server starts. How many GPUs? Does
the model split evenly across them? How much memory is left for the KV cache once the weights
are loaded, and how many sequences of a given length then run at once? vLLM answers the last
question itself at start-up (it profiles a forward pass, then fills ``gpu_memory_utilization`` of
the GPU with KV blocks and logs "GPU KV cache size: N tokens"); here you do the same sum by hand,
so that you can size a deployment before renting the GPU.

- :class:`ModelShape`: the numbers of a model's ``config.json`` that decide its memory.
- :class:`DeployConfig`: what you would pass to ``vllm serve``, validated against the model
  (tensor-parallel size divides the heads, memory fraction in (0, 1], context within the
  model's, quantization method known), turned into the command line and into ``vllm.LLM(...)``
  keyword arguments.
- :func:`plan_kv_cache`: bytes per token = 2 (K and V) x layers x KV heads x head dim x dtype
  bytes; the blocks that fit after weights and an activation reserve; how many sequences fit.

Readings: vLLM's "Engine arguments" page and ``vllm serve --help``; the vLLM paper (arXiv
2309.06180) section 4; vLLM's ``FullAttentionSpec.page_size_bytes``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.validation import check_at_least, check_in_range

GIB = 1 << 30

#: Bytes of one value of each dtype vLLM serves in.
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2}

#: Quantization methods this planner knows (each is one of vLLM's ``QUANTIZATION_METHODS``) and the
#: bits each quantized weight takes in memory: 4-bit AWQ / GPTQ with one fp16 scale and one 4-bit
#: zero per group of 128 (4 + 20 / 128 bits), fp8 with one scale per tensor. Embeddings, the output layer and norms stay unquantized.
QUANTIZATION_BITS: dict[str, float] = {
    "awq": 4 + 20 / 128, "awq_marlin": 4 + 20 / 128, "gptq": 4 + 20 / 128, "gptq_marlin": 4 + 20 / 128,
    "fp8": 8.0,
}

#: What vLLM's own profiling typically leaves for activations on a 7B model: a rule of thumb.
DEFAULT_ACTIVATION_RESERVE = 2 * GIB


class ModelShape(BaseModel):
    """The sizes in a decoder-only model's ``config.json`` that decide its memory (Llama names)."""

    model_config = ConfigDict(frozen=True)

    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    model_type: str = "llama"

    @classmethod
    def from_config(cls, config: dict[str, Any] | str | os.PathLike[str]) -> ModelShape:
        """Read a ``config.json`` (a dict, the file, or the model folder). Llama names, with GPT-2's
        (``n_layer``, ``n_embd``, ``n_head``, ``n_positions``) as fallbacks."""
        if not isinstance(config, dict):
            path = Path(config)
            path = path / "config.json" if path.is_dir() else path
            if not path.exists():
                raise ValueError(f"model: no config.json at {path}")
            config = json.loads(path.read_text())
        config = {**config.get("text_config", {}), **config}

        def first(*names: str, default: Any = None) -> Any:
            for name in names:
                if config.get(name) is not None:
                    return config[name]
            if default is None:
                raise ValueError(f"model config has none of {', '.join(names)}")
            return default

        hidden = first("hidden_size", "n_embd")
        heads = first("num_attention_heads", "n_head")
        return cls(
            num_layers=first("num_hidden_layers", "n_layer"), hidden_size=hidden, num_heads=heads,
            num_kv_heads=first("num_key_value_heads", default=heads),
            head_dim=first("head_dim", default=hidden // heads),
            intermediate_size=first("intermediate_size", "n_inner", default=4 * hidden),
            vocab_size=first("vocab_size"),
            max_position_embeddings=first("max_position_embeddings", "n_positions"),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            model_type=str(config.get("model_type", "llama")),
        )

    def linear_parameters(self) -> int:
        """Parameters in the attention and MLP matrices of all layers (what quantization shrinks):
        q and o are ``hidden x heads*head_dim``, k and v ``hidden x kv_heads*head_dim``, and the
        SwiGLU MLP has three ``hidden x intermediate`` matrices (Llama: no biases)."""
        # BEGIN SOLUTION task 11: the parameters of all attention and MLP matrices, what quantization shrinks (README task 11; transformers' LlamaConfig).
        # HINT task 11 level 1: task 11 is arithmetic on a model's config, done the way vLLM does it at
        #   start-up, so that a deployment is checked before a GPU is rented. Reading: README task 11, vLLM's
        #   'Engine arguments' page, docs/01 §2 (the KV cache's size) and docs/02 §3. The tests compare your
        #   counts with transformers' models built on the meta device and the plans with numbers worked by hand
        #   in the README.
        # HINT task 11 level 2: ModelShape: with grouped-query attention, q and o are hidden x (heads x
        #   head_dim) while k and v are hidden x (kv_heads x head_dim); head_dim need not be hidden / heads.
        #   Llama's linear layers have no biases. Norm weights are one vector of hidden per norm; a tied output
        #   layer is the embedding matrix itself.
        attention = self.hidden_size * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = 3 * self.hidden_size * self.intermediate_size
        return self.num_layers * (attention + mlp)
        # END SOLUTION

    def parameters(self) -> int:
        """All parameters: the linear layers, two RMSNorm weights per layer plus the final norm,
        the embedding and the output layer (one matrix when ``tie_word_embeddings``)."""
        # BEGIN SOLUTION task 11: all the model's parameters: linear layers, norms, embedding and output layer (README task 11; the docstring).
        # HINT task 11 level 3: linear_parameters(), plus (2 x layers + 1) norm vectors of hidden,
        #   plus vocab x hidden once or twice depending on tie_word_embeddings.
        norms = (2 * self.num_layers + 1) * self.hidden_size
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return self.linear_parameters() + norms + embeddings
        # END SOLUTION


def kv_bytes_per_token(shape: ModelShape, dtype: str = "float16", tensor_parallel_size: int = 1) -> int:
    """Bytes of KV cache one token takes on one GPU.

    Args:
        shape: the model.
        dtype: the cache's dtype, a key of :data:`DTYPE_BYTES`.
        tensor_parallel_size: GPUs the model is split over; each holds ``kv_heads / tp`` KV heads
            (at least one: when there are more GPUs than KV heads, vLLM replicates them).

    Returns:
        ``2 (K and V) x layers x KV heads per GPU x head_dim x bytes per value``.
    """
    # BEGIN SOLUTION task 11: the KV-cache bytes one token takes on one GPU, tensor parallelism included (README task 11; docs/01 §2).
    # HINT task 11 level 2: tensor parallelism splits the KV heads across GPUs, but a GPU
    #   always holds at least one (vLLM replicates them when there are more GPUs than KV heads). An unknown
    #   dtype or a tp below 1 is a ValueError naming it.
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
    check_at_least("tensor_parallel_size", tensor_parallel_size, 1)
    kv_heads = max(1, shape.num_kv_heads // tensor_parallel_size)
    return 2 * shape.num_layers * kv_heads * shape.head_dim * DTYPE_BYTES[dtype]
    # END SOLUTION


def weight_bytes(shape: ModelShape, dtype: str = "float16", quantization: str | None = None) -> int:
    """Bytes the weights take: every parameter in ``dtype``, except that with a ``quantization``
    method the linear layers take :data:`QUANTIZATION_BITS` bits each (embeddings, output layer
    and norms stay in ``dtype``). Rounded down to whole bytes."""
    # BEGIN SOLUTION task 11: the bytes of the weights in a dtype, with quantization shrinking only the linear layers (README task 11; the docstring).
    # HINT task 11 level 2: QUANTIZATION_BITS gives bits per linear parameter; embeddings, output
    #   layer and norms stay in dtype. Round down to whole bytes once, at the end of the linear part. Unknown
    #   dtype or method: a ValueError naming the choices.
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
    if quantization is None:
        return shape.parameters() * DTYPE_BYTES[dtype]
    if quantization not in QUANTIZATION_BITS:
        raise ValueError(f"quantization must be one of {sorted(QUANTIZATION_BITS)}, got {quantization!r}")
    linear = shape.linear_parameters()
    rest = shape.parameters() - linear
    return int(linear * QUANTIZATION_BITS[quantization] / 8) + rest * DTYPE_BYTES[dtype]
    # END SOLUTION


class KVCachePlan(BaseModel):
    """How a GPU's memory splits between weights, activations and KV blocks (per GPU)."""

    gpu_memory_bytes: int
    gpu_memory_utilization: float
    weight_bytes: int
    activation_reserve_bytes: int
    kv_cache_bytes: int
    bytes_per_token: int
    block_size: int
    num_blocks: int

    @property
    def bytes_per_block(self) -> int:
        return self.bytes_per_token * self.block_size

    @property
    def max_tokens(self) -> int:
        """Tokens the cache holds in all (vLLM logs this as "GPU KV cache size")."""
        return self.num_blocks * self.block_size

    def max_concurrent_sequences(self, seq_len: int) -> int:
        """How many sequences of ``seq_len`` tokens (prompt + output) fit at once: each needs
        ``ceil(seq_len / block_size)`` whole blocks (vLLM logs this as "Maximum concurrency")."""
        # BEGIN SOLUTION task 11: how many sequences of seq_len tokens fit in the plan's blocks at once (README task 11; vLLM's 'Maximum concurrency' log line).
        # HINT task 11 level 2: each sequence needs whole blocks, so a 17-token
        #   sequence with blocks of 16 takes 2; sequences fit in whole numbers too.
        check_at_least("seq_len", seq_len, 1)
        return self.num_blocks // math.ceil(seq_len / self.block_size)
        # END SOLUTION


def blocks_for_cache(shape: ModelShape, kv_cache_bytes: int, block_size: int = 16, dtype: str = "float16",
                     tensor_parallel_size: int = 1) -> int:
    """Whole KV blocks of ``block_size`` tokens that ``kv_cache_bytes`` hold (what vLLM reports as
    ``num_gpu_blocks`` for a cache of that size, e.g. ``VLLM_CPU_KVCACHE_SPACE`` GiB on a CPU)."""
    # BEGIN SOLUTION task 11: whole KV blocks that a cache of kv_cache_bytes holds, as vLLM reports num_gpu_blocks (README task 11).
    # HINT task 11 level 3: check the arguments; divide the bytes, rounding down, by
    #   block_size x the bytes per token for this dtype and tp.
    check_at_least("kv_cache_bytes", kv_cache_bytes, 0)
    check_at_least("block_size", block_size, 1)
    return kv_cache_bytes // (block_size * kv_bytes_per_token(shape, dtype, tensor_parallel_size))
    # END SOLUTION


def plan_kv_cache(shape: ModelShape, gpu_memory_bytes: int, gpu_memory_utilization: float = 0.9, *,
                  dtype: str = "float16", quantization: str | None = None, block_size: int = 16,
                  tensor_parallel_size: int = 1,
                  activation_reserve_bytes: int = DEFAULT_ACTIVATION_RESERVE) -> KVCachePlan:
    """Plan one GPU's memory the way vLLM does at start-up.

    Args:
        shape: the model.
        gpu_memory_bytes: the memory of one GPU (80 GiB for an H100 80GB).
        gpu_memory_utilization: the share of it vLLM may use, in (0, 1].
        dtype, quantization: of the weights (the KV cache is in ``dtype``).
        block_size: tokens per KV block.
        tensor_parallel_size: GPUs the model is split over: each holds ``1/tp`` of the weights
            and of the KV heads.
        activation_reserve_bytes: left for activations (vLLM measures its peak by profiling).

    Returns:
        A :class:`KVCachePlan` whose ``kv_cache_bytes`` = utilization x memory - weights per GPU -
        reserve, and ``num_blocks`` the whole blocks that fit in it.

    Raises:
        ValueError: a bad argument (named), or when nothing is left for the KV cache (the message
            says how much the weights and reserve need against what the utilization allows).
    """
    # BEGIN SOLUTION task 11: one GPU's memory plan as vLLM makes it at start-up: what the weights and activations leave to the KV cache, in whole blocks (README task 11; docs/02 §3).
    # HINT task 11 level 2: the budget is the utilization's share of the GPU; each GPU holds 1/tp
    #   of the weights; the activation reserve comes off too. Nothing left (<= 0) is a ValueError that gives the
    #   numbers, so a user can tell which to change. Check README's worked numbers (Llama-2-7B on 80 GiB at 0.9
    #   with 2 GiB reserve: 7,353 blocks) by hand first.
    # HINT task 11 level 3: validate the arguments; budget = int(memory x utilization); weights =
    #   weight_bytes(...) // tp; kv = budget - weights - reserve; refuse kv <= 0; return a KVCachePlan whose
    #   bytes per token and blocks come from your two functions above.
    check_at_least("gpu_memory_bytes", gpu_memory_bytes, 1)
    check_in_range("gpu_memory_utilization", gpu_memory_utilization, 0, 1, low_inclusive=False)
    check_at_least("activation_reserve_bytes", activation_reserve_bytes, 0)
    check_at_least("tensor_parallel_size", tensor_parallel_size, 1)
    budget = int(gpu_memory_bytes * gpu_memory_utilization)
    weights = weight_bytes(shape, dtype, quantization) // tensor_parallel_size
    kv_cache = budget - weights - activation_reserve_bytes
    if kv_cache <= 0:
        raise ValueError(
            f"gpu_memory_utilization {gpu_memory_utilization} of {gpu_memory_bytes / GIB:.1f} GiB is "
            f"{budget / GIB:.1f} GiB, but the weights ({weights / GIB:.1f} GiB per GPU) and the activation "
            f"reserve ({activation_reserve_bytes / GIB:.1f} GiB) leave nothing for the KV cache")
    return KVCachePlan(
        gpu_memory_bytes=gpu_memory_bytes, gpu_memory_utilization=gpu_memory_utilization,
        weight_bytes=weights, activation_reserve_bytes=activation_reserve_bytes, kv_cache_bytes=kv_cache,
        bytes_per_token=kv_bytes_per_token(shape, dtype, tensor_parallel_size), block_size=block_size,
        num_blocks=blocks_for_cache(shape, kv_cache, block_size, dtype, tensor_parallel_size),
    )
    # END SOLUTION


class DeployConfig(BaseModel):
    """A vLLM deployment: the arguments of ``vllm serve`` / ``vllm.LLM``, checked before launch.

    Build it with :meth:`for_model` so that it is validated against the model's ``config.json``
    (``shape``); built directly without a shape, only the model-independent checks run.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="a model folder (or a hub name where vLLM may download)")
    shape: ModelShape | None = Field(None, exclude=True, description="the model's sizes, when known")
    served_model_name: str | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    quantization: str | None = None
    max_num_seqs: int = 256
    block_size: int = 16
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    load_format: Literal["auto", "safetensors", "dummy"] = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None

    @classmethod
    def for_model(cls, model: str | os.PathLike[str], **fields: Any) -> DeployConfig:
        """A config for the model folder ``model``, validated against its ``config.json``."""
        return cls(model=str(model), shape=ModelShape.from_config(model), **fields)

    @model_validator(mode="after")
    def _check(self) -> DeployConfig:
        """Each check raises ValueError naming the field: tensor_parallel_size >= 1 and, with a
        shape, dividing the attention heads (and the KV heads dividing it or it dividing them);
        gpu_memory_utilization in (0, 1]; max_model_len >= 1 and, with a shape, at most the
        model's ``max_position_embeddings``; quantization a key of :data:`QUANTIZATION_BITS`;
        max_num_seqs >= 1; block_size >= 1; port in [1, 65535]."""
        # BEGIN SOLUTION task 11: refuse, before launch, a deployment vLLM would refuse, each ValueError naming the field and the numbers involved (README task 11; vllm serve --help).
        # HINT task 11 level 2: the model-independent checks always run; the ones against
        #   the model's shape only when shape is set. 'KV heads divide tp or tp divides the KV heads' accepts 8
        #   KV heads on 2 or on 16 GPUs, not on 3. A pydantic model validator returns self.
        check_at_least("tensor_parallel_size", self.tensor_parallel_size, 1)
        check_in_range("gpu_memory_utilization", self.gpu_memory_utilization, 0, 1, low_inclusive=False)
        check_at_least("max_num_seqs", self.max_num_seqs, 1)
        check_at_least("block_size", self.block_size, 1)
        check_in_range("port", self.port, 1, 65535)
        if self.max_model_len is not None:
            check_at_least("max_model_len", self.max_model_len, 1)
        if self.quantization is not None and self.quantization not in QUANTIZATION_BITS:
            raise ValueError(f"quantization must be one of {sorted(QUANTIZATION_BITS)}, got {self.quantization!r}")
        shape, tp = self.shape, self.tensor_parallel_size
        if shape is not None:
            if shape.num_heads % tp:
                raise ValueError(f"tensor_parallel_size ({tp}) must divide the model's {shape.num_heads} "
                                 "attention heads")
            if shape.num_kv_heads % tp and tp % shape.num_kv_heads:
                raise ValueError(f"tensor_parallel_size ({tp}) and the model's {shape.num_kv_heads} KV heads: "
                                 "one must divide the other")
            if self.max_model_len is not None and self.max_model_len > shape.max_position_embeddings:
                raise ValueError(f"max_model_len ({self.max_model_len}) exceeds the model's context "
                                 f"(max_position_embeddings = {shape.max_position_embeddings})")
        return self
        # END SOLUTION

    def llm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``vllm.LLM(**kwargs)``: every field that is an engine argument
        (not ``shape``, ``host``, ``port``, ``api_key``), leaving out those that are None."""
        # BEGIN SOLUTION task 11: the keyword arguments of vllm.LLM for this deployment, engine arguments only (README task 11; vllm.EngineArgs).
        # HINT task 11 level 2: shape is already excluded from model_dump by its Field; host, port
        #   and api_key belong to the server, not the engine; a None is vLLM's default and must be left out.
        server_only = {"host", "port", "api_key"}
        return {key: value for key, value in self.model_dump().items()
                if key not in server_only and value is not None}
        # END SOLUTION

    def cli_args(self, launcher: Literal["vllm serve", "module"] = "vllm serve") -> list[str]:
        """The command that starts this deployment.

        ``"vllm serve"`` gives ``["vllm", "serve", MODEL, "--flag", "value", ...]``; ``"module"`` gives
        ``[python, "-m", "vllm.entrypoints.openai.api_server", "--model", MODEL, ...]`` (the same
        server; the form that works where the ``vllm`` script cannot find its package metadata).
        Each field becomes ``--field-name value`` (underscores to dashes), None fields are left out,
        a True boolean is ``--flag`` and a False one ``--no-flag``.
        """
        # BEGIN SOLUTION task 11: the command line that starts this deployment, in either launcher's form, which vLLM's own parser accepts (README task 11; vllm serve --help).
        # HINT task 11 level 2: the model is positional for vllm serve and --model for the module
        #   form; every other field that is not None becomes a flag with dashes; booleans are --flag /
        #   --no-flag; values are strings. An unknown launcher is a ValueError.
        # HINT task 11 level 3: start from the launcher's head (sys.executable for the module form);
        #   then for each dumped field but model, skipping None: the flag name from the field name; a bool adds
        #   one flag, anything else the flag and str(value).
        if launcher == "vllm serve":
            command = ["vllm", "serve", self.model]
        elif launcher == "module":
            command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model]
        else:
            raise ValueError(f"launcher must be 'vllm serve' or 'module', got {launcher!r}")
        for key, value in self.model_dump().items():
            if key == "model" or value is None:
                continue
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                command.append(flag if value else "--no-" + flag[2:])
            else:
                command += [flag, str(value)]
        return command
        # END SOLUTION
