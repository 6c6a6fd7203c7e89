# Student skeleton for lab02_vllm: fill in each TODO, then run `course test lab02_vllm`.
# (Generated from the reference solution by `course stubs`.)
"""Task 13: tensor parallelism: one Llama split over N worker processes (Megatron-LM's scheme, as
vLLM and nano-vllm run it).

Each of the N ranks holds ``1/N`` of every layer's attention heads and MLP columns, so each holds
``1/N`` of the weights and of the KV cache, and computes ``1/N`` of every matrix product:

- **column-parallel** (``qkv_proj``, ``gate_up_proj``): rank ``r`` keeps a slice of the weight's
  *rows* (its output features: its own query heads, KV heads and MLP columns); its output is a slice
  of the full output, and nothing is exchanged;
- **row-parallel** (``o_proj``, ``down_proj``): rank ``r`` keeps the matching slice of the weight's
  *columns* (the input features it computed); its output is a *partial sum* of the full output, and
  one all-reduce (a sum over the ranks) makes every rank hold the full result. Two all-reduces per
  layer, one after attention and one after the MLP; everything else (embeddings, norms, the
  residual stream, the LM head) is replicated.

Grouped-query attention: with ``N`` up to the number of KV heads, each rank keeps
``num_kv_heads / N`` of them; with more ranks than KV heads, vLLM replicates them: each rank keeps
one KV head, the one its query heads read (``N / num_kv_heads`` ranks share it).

What you write: which sizes are refused (``check_tensor_parallel_size``, vLLM's wording), each
rank's shape (``local_config``), which slice of which weight it keeps (``shard_llama_weights``),
where the all-reduce goes (``RowParallelLinear.forward``, and which layers are row-parallel in
``parallelize``). Given: the workers (``torch.multiprocessing`` spawn, ``init_process_group``
over a free localhost port, gloo on a CPU, nccl on CUDA), feeding them each step, and gathering
rank 0's logits (``TensorParallelRunner``, with the model runner's ``run`` / ``copy_blocks``).

Readings: nano-vllm's ``layers/linear.py`` (``ColumnParallelLinear``, ``RowParallelLinear``,
``QKVParallelLinear``) and ``engine/model_runner.py`` (rank 0 drives the other ranks); vLLM's
``model_executor/layers/linear.py`` (``num_kv_head_replicas``); Shoeybi et al., "Megatron-LM"
(arXiv 1909.08053), section 3.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import socket
import traceback
import weakref
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .model_runner import LlamaForCausalLM, ModelConfig, ModelRunner, rope_inv_freq
from .paged_attention import AttentionMetadata
from .sequence import Sequence

#: Seconds the driver waits for a worker's answer (start-up includes importing torch) before it
#: stops them all and raises: a worker that died or hangs never hangs the engine.
WORKER_START_TIMEOUT_S = 120.0
WORKER_STEP_TIMEOUT_S = 60.0


# -------------------------------------------------------------------------------------------
# Which sizes work, and each rank's shape (task 13)


def check_tensor_parallel_size(config: ModelConfig, tensor_parallel_size: int) -> None:
    """Refuse a tensor-parallel size the model cannot be split by, before any worker starts.

    Args:
        config: the whole model's shape.
        tensor_parallel_size: the number of ranks ``N``.

    Raises:
        ValueError: ``N`` < 1 ("tensor_parallel_size must be at least 1, got N"); the attention
            heads not divisible by ``N`` (vLLM's wording: "Total number of attention heads (H) must
            be divisible by tensor parallel size (N)."); the KV heads neither dividing ``N`` nor
            divisible by it ("Total number of key-value heads (K) must divide or be divisible by
            tensor parallel size (N)."; vLLM asserts it in its QKV layer); the MLP's intermediate
            size not divisible by ``N`` ("Intermediate size (I) must be divisible by tensor
            parallel size (N).").
    """
    # TODO(lab02 task 13): refuse the sizes a Llama cannot be split by, in vLLM's words (README task 13).
    raise NotImplementedError("lab02 task 13: check_tensor_parallel_size is not written yet (see lab02_vllm/README.md, task 13)")


def local_config(config: ModelConfig, tensor_parallel_size: int) -> ModelConfig:
    """The shape one rank's model has: its share of the query heads, KV heads and MLP columns.

    Args:
        config: the whole model's shape (already checked by ``check_tensor_parallel_size``).
        tensor_parallel_size: the number of ranks ``N``.

    Returns:
        A copy of ``config`` with ``num_attention_heads`` ``H / N``, ``num_key_value_heads``
        ``K / N`` (at least 1: with more ranks than KV heads each rank keeps one) and
        ``intermediate_size`` ``I / N``; ``hidden_size``, ``head_dim`` and the rest unchanged.
    """
    # TODO(lab02 task 13): each rank's shape: its share of query heads, KV heads (at least one) and MLP columns (README task 13).
    raise NotImplementedError("lab02 task 13: local_config is not written yet (see lab02_vllm/README.md, task 13)")


def shard_llama_weights(weights: dict[str, torch.Tensor], config: ModelConfig, rank: int,
                        tensor_parallel_size: int) -> dict[str, torch.Tensor]:
    """The part of a Hugging Face Llama's weights that rank ``rank`` of ``N`` keeps.

    Args:
        weights: the whole model's weights by Hugging Face name without the ``model.`` prefix
            (``layers.{i}.self_attn.q_proj.weight`` ``(H * head_dim, hidden)``, ``k_proj`` /
            ``v_proj`` ``(K * head_dim, hidden)``, ``o_proj`` ``(hidden, H * head_dim)``,
            ``layers.{i}.mlp.gate_proj`` / ``up_proj`` ``(I, hidden)``, ``down_proj``
            ``(hidden, I)``, plus embeddings, norms and ``lm_head.weight``). A ``torch.nn.Linear``
            weight is ``(out_features, in_features)``.
        config: the whole model's shape.
        rank: this rank, ``0 <= rank < N``.
        tensor_parallel_size: ``N``.

    Returns:
        The same names, each weight cut to this rank's part: column-parallel weights (``q_proj``,
        ``k_proj``, ``v_proj``, ``gate_proj``, ``up_proj``) keep the rows of this rank's heads /
        columns, row-parallel ones (``o_proj``, ``down_proj``) the matching columns; rank ``r``
        keeps query heads ``r * H/N .. (r+1) * H/N - 1`` and the KV heads they read (with more ranks
        than KV heads, KV head ``r // (N / K)``, replicated on ``N / K`` ranks); everything else
        whole. Slices may be views.
    """
    # TODO(lab02 task 13): which slice of which weight rank r keeps: rows of the column-parallel weights, columns of the row-parallel ones, KV heads replicated past K ranks (README task 13).
    raise NotImplementedError("lab02 task 13: shard_llama_weights is not written yet (see lab02_vllm/README.md, task 13)")


# -------------------------------------------------------------------------------------------
# The parallel layers (task 13)


class ColumnParallelLinear(nn.Linear):
    """A linear layer whose output features are split over the ranks: this rank's weight is
    ``(out_features / N, in_features)`` and its output the matching slice of the full output; no
    communication. (A plain ``nn.Linear`` of the local shape: the split is in the weights.)"""


class RowParallelLinear(nn.Linear):
    """A linear layer whose input features are split over the ranks: this rank's weight is
    ``(out_features, in_features / N)``, its input the matching slice (the heads or MLP columns this
    rank computed), so its product is one of N partial sums of the full output.

    Args:
        in_features: this rank's share of the input features.
        out_features: the full output size (the hidden size).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args:
            x: ``(num_tokens, in_features)``, this rank's slice of the input.

        Returns:
            ``(num_tokens, out_features)``: the full output, the same on every rank.
        """
        # TODO(lab02 task 13): the partial product, then one sum over the ranks (README task 13).
        raise NotImplementedError("lab02 task 13: forward is not written yet (see lab02_vllm/README.md, task 13)")


def parallelize(model: LlamaForCausalLM, config: ModelConfig, tensor_parallel_size: int) -> LlamaForCausalLM:
    """Turn a model built with ``local_config``'s shape into this rank's part of the whole:
    the column-parallel projections become ``ColumnParallelLinear``, the row-parallel ones
    ``RowParallelLinear`` (the layers whose output must be summed over the ranks).

    Args:
        model: a ``LlamaForCausalLM`` of ``local_config(config, N)``'s shape.
        config: the whole model's shape.
        tensor_parallel_size: ``N``.

    Returns:
        ``model``, its layers replaced in place (weights are loaded afterwards).
    """
    local = local_config(config, tensor_parallel_size)
    q_size = local.num_attention_heads * local.head_dim
    qkv = q_size + 2 * local.num_key_value_heads * local.head_dim
    for layer in model.layers:
        layer.self_attn.qkv_proj = ColumnParallelLinear(config.hidden_size, qkv, bias=False)
        layer.gate_up_proj = ColumnParallelLinear(config.hidden_size, 2 * local.intermediate_size, bias=False)
        # TODO(lab02 task 13): the two row-parallel projections of each layer: attention's output and the MLP's down projection (README task 13).
        raise NotImplementedError("lab02 task 13: parallelize is not written yet (see lab02_vllm/README.md, task 13)")
    return model


# -------------------------------------------------------------------------------------------
# One rank's model (given)


def read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """A Hugging Face folder's safetensors, by name without the ``model.`` prefix (given)."""
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        weights.update(load_file(file))
    return {name.removeprefix("model."): tensor for name, tensor in weights.items()}


def build_rank_model(folder: Path, config: ModelConfig, rank: int, tensor_parallel_size: int,
                     device: torch.device, dtype: torch.dtype) -> LlamaForCausalLM:
    """Rank ``rank``'s part of the model in ``folder``: ``local_config``'s shape, ``parallelize``d,
    loaded with ``shard_llama_weights``' slices (q/k/v and gate/up fused as the runner has them)."""
    model = parallelize(LlamaForCausalLM(local_config(config, tensor_parallel_size)), config, tensor_parallel_size)
    weights = shard_llama_weights(read_hf_weights(folder), config, rank, tensor_parallel_size)

    def take(name: str) -> torch.Tensor:
        if name not in weights:
            raise ValueError(f"model folder {folder}: weight {name!r} is missing from its safetensors")
        return weights[name]

    with torch.no_grad():
        model.embed_tokens.weight.copy_(take("embed_tokens.weight"))
        model.norm.copy_(take("norm.weight"))
        model.lm_head.weight.copy_(weights.get("lm_head.weight", take("embed_tokens.weight")))
        for i, layer in enumerate(model.layers):
            p = f"layers.{i}."
            layer.input_layernorm.copy_(take(p + "input_layernorm.weight"))
            layer.post_attention_layernorm.copy_(take(p + "post_attention_layernorm.weight"))
            layer.self_attn.qkv_proj.weight.copy_(torch.cat([take(p + f"self_attn.{x}_proj.weight") for x in "qkv"]))
            layer.self_attn.o_proj.weight.copy_(take(p + "self_attn.o_proj.weight"))
            layer.gate_up_proj.weight.copy_(torch.cat([take(p + f"mlp.{x}_proj.weight") for x in ("gate", "up")]))
            layer.down_proj.weight.copy_(take(p + "mlp.down_proj.weight"))
    model = model.to(device=device, dtype=dtype).eval()
    model.inv_freq = rope_inv_freq(config).to(device)  # stays float32
    return model


# -------------------------------------------------------------------------------------------
# The workers and their driver (given)


def free_port() -> int:
    """A TCP port on localhost nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _to_device(meta: AttentionMetadata, device: torch.device) -> AttentionMetadata:
    changes = {f.name: getattr(meta, f.name).to(device) for f in dataclasses.fields(meta)
               if isinstance(getattr(meta, f.name), torch.Tensor)}
    return dataclasses.replace(meta, **changes)


def _worker(rank: int, world: int, port: int, folder: str, block_size: int, num_kv_blocks: int,
            device_type: str, dtype: torch.dtype, threads: int, conn: Any) -> None:
    """One rank: join the process group, build its part of the model and KV cache, then serve the
    driver's messages (``("run", input_ids, positions, meta, last)``, ``("copy", pairs)``,
    ``("stats",)``, ``("stop",)``) until told to stop. Rank 0 answers a run with the logits."""
    torch.set_num_threads(threads)
    calls = {"all_reduce": 0, "bytes": 0}
    real_all_reduce = dist.all_reduce

    def counting_all_reduce(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        calls["all_reduce"] += 1
        calls["bytes"] += tensor.numel() * tensor.element_size()
        return real_all_reduce(tensor, *args, **kwargs)

    dist.all_reduce = counting_all_reduce  # observable: how many all-reduces a step makes
    try:
        device = torch.device(f"cuda:{rank}" if device_type == "cuda" else device_type)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=WORKER_START_TIMEOUT_S))
        config = ModelConfig.from_folder(folder)
        model = build_rank_model(Path(folder), config, rank, world, device, dtype)
        local = local_config(config, world)
        kv_cache = torch.zeros(config.num_hidden_layers, 2, num_kv_blocks, block_size,
                               local.num_key_value_heads, config.head_dim, device=device, dtype=dtype)
        conn.send(("ready",))
        while True:
            message = conn.recv()
            if message[0] == "stop":
                break
            if message[0] == "run":
                _, input_ids, positions, meta, last = message
                with torch.inference_mode():
                    hidden = model(input_ids.to(device), positions.to(device), kv_cache, _to_device(meta, device))
                    logits = model.lm_head(hidden[last.to(device)]).float().cpu() if rank == 0 else None
                conn.send(("logits", logits))
            elif message[0] == "copy":
                for src, dst in message[1]:
                    kv_cache[:, :, dst].copy_(kv_cache[:, :, src])
                conn.send(("ok",))
            elif message[0] == "stats":
                conn.send(("stats", dict(calls)))
    except BaseException as error:  # any failure goes back to the driver, then the worker exits
        with contextlib.suppress(Exception):  # the driver may be gone
            conn.send(("error", error, traceback.format_exc()))
    finally:
        dist.all_reduce = real_all_reduce
        if dist.is_initialized():
            dist.destroy_process_group()


def _stop_workers(processes: list[Any], conns: list[Any]) -> None:
    """Ask every worker to stop, then terminate (and kill) any that did not within a few seconds."""
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):  # a worker that already exited
            conn.send(("stop",))
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    for conn in conns:
        conn.close()


def _worker_context() -> Any:
    """How workers start: a fork server where the OS has one (it imports torch and this module
    once, then forks each worker from that clean process: a runner starts in a fraction of a second
    after the first), else spawn (a fresh interpreter per worker). Never a plain fork of this
    process: it may hold threads, CUDA or open files the workers must not inherit."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", __name__])
        return context
    return multiprocessing.get_context("spawn")


class TensorParallelRunner(ModelRunner):
    """The model runner's interface (``run``, ``copy_blocks``) over ``tensor_parallel_size``
    worker processes; the driver (this process) prepares each step's batch, every rank runs its
    part, and rank 0's logits come back (given).

    Args:
        model_dir, block_size, num_kv_blocks, device, dtype: as ``ModelRunner``'s (each rank holds
            ``num_kv_blocks`` blocks of its own KV heads; on CUDA rank ``r`` uses ``cuda:r``).
        tensor_parallel_size: the number of ranks, checked by ``check_tensor_parallel_size``.
        threads: torch threads per worker.

    Raises:
        ValueError: a size the model cannot be split by (before any process starts); a
            ``load_format`` other than "auto".
        RuntimeError: a worker that failed (its traceback in the message) or did not answer in
            time; all workers are stopped first.
    """

    def __init__(self, model_dir: str | Path, *, block_size: int, num_kv_blocks: int, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, load_format: str = "auto", tensor_parallel_size: int = 2,
                 threads: int = 1) -> None:
        if load_format != "auto":
            raise ValueError(f"load_format={load_format!r} is not supported with tensor_parallel_size > 1 "
                             "(each rank reads its slices of the folder's safetensors)")
        self.model_dir = Path(model_dir)
        self.config = ModelConfig.from_folder(self.model_dir)
        check_tensor_parallel_size(self.config, tensor_parallel_size)
        self.block_size, self.num_kv_blocks = block_size, num_kv_blocks
        self.tensor_parallel_size = tensor_parallel_size
        self.worker_device = torch.device(device)
        self.device = torch.device("cpu")  # the driver prepares batches on the CPU and sends them
        self.dtype = dtype
        context = _worker_context()
        port = free_port()
        self._processes: list[Any] = []
        self._conns: list[Any] = []
        self._finalizer = weakref.finalize(self, _stop_workers, self._processes, self._conns)
        try:
            for rank in range(tensor_parallel_size):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_worker, daemon=True, name=f"tp-worker-{rank}",
                    args=(rank, tensor_parallel_size, port, str(self.model_dir), block_size, num_kv_blocks,
                          self.worker_device.type, dtype, threads, theirs))
                process.start()
                theirs.close()
                self._processes.append(process)
                self._conns.append(ours)
            self._gather(WORKER_START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def _gather(self, timeout_s: float) -> list[tuple[Any, ...]]:
        """Every worker's answer, in rank order; a failure or a silence stops them all and raises."""
        answers = []
        for rank, conn in enumerate(self._conns):
            if not conn.poll(timeout_s):
                alive = self._processes[rank].is_alive()
                self.close()
                raise RuntimeError(f"tensor-parallel worker {rank} did not answer within {timeout_s:g} s "
                                   f"({'still running' if alive else 'it exited'}); all workers stopped")
            try:
                answer = conn.recv()
            except EOFError:
                self.close()
                raise RuntimeError(f"tensor-parallel worker {rank} exited; all workers stopped") from None
            if answer[0] == "error":
                self.close()
                error, where = answer[1], answer[2]
                if isinstance(error, (NotImplementedError, ValueError)):
                    raise error
                raise RuntimeError(f"tensor-parallel worker {rank} failed:\n{where}") from error
            answers.append(answer)
        return answers

    def _send(self, message: tuple[Any, ...]) -> None:
        if not self._conns:
            raise RuntimeError("the tensor-parallel workers are stopped")
        for conn in self._conns:
            conn.send(message)

    @torch.inference_mode()
    def run(self, seqs: list[Sequence], num_new_tokens: list[int]) -> torch.Tensor:
        """One step on every rank. Returns rank 0's ``(num_sampled, vocab_size)`` float32 logits
        (the rows ``ModelRunner.run`` returns), on the engine's device."""
        input_ids, positions, meta, last = self.prepare(seqs, num_new_tokens)
        self._send(("run", input_ids, positions, meta, last))
        logits = self._gather(WORKER_STEP_TIMEOUT_S)[0][1]
        return logits.to(self.worker_device)

    @torch.inference_mode()
    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """Copy-on-write on every rank (each holds its own KV heads of every block)."""
        self._send(("copy", list(pairs)))
        self._gather(WORKER_STEP_TIMEOUT_S)

    def stats(self) -> list[dict[str, int]]:
        """Per rank: ``all_reduce`` (calls of ``dist.all_reduce`` so far) and ``bytes`` (the
        tensors' sizes they summed)."""
        self._send(("stats",))
        return [answer[1] for answer in self._gather(WORKER_STEP_TIMEOUT_S)]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def close(self) -> None:
        """Stop every worker (terminating any that does not stop); safe to call twice."""
        _stop_workers(self._processes, self._conns)
        self._processes.clear()
        self._conns.clear()


def greedy_generate(runner: ModelRunner, prompts: list[list[int]], max_tokens: int) -> list[list[int]]:
    """Greedy continuations of ``prompts`` through any runner with the model runner's interface
    (``ModelRunner`` or ``TensorParallelRunner``), without an engine: one prefill of all prompts,
    then decode steps, each sequence in its own run of blocks (given; for tests and benches).

    Args:
        runner: holds at least ``sum(ceil((len(p) + max_tokens) / block_size))`` blocks.
        prompts: token-id lists.
        max_tokens: tokens generated per prompt (no stop tokens).

    Returns:
        The generated token ids of each prompt.
    """
    from .sampling_params import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=max_tokens)
    seqs, next_block = [], 0
    for i, prompt in enumerate(prompts):
        seq = Sequence(f"greedy-{i}", list(prompt), params)
        blocks = -(-(len(prompt) + max_tokens) // runner.block_size)
        seq.block_table = list(range(next_block, next_block + blocks))
        next_block += blocks
        seqs.append(seq)
    if next_block > runner.num_kv_blocks:
        raise ValueError(f"greedy_generate needs {next_block} KV blocks, the runner has {runner.num_kv_blocks}")
    outputs: list[list[int]] = [[] for _ in prompts]
    for _ in range(max_tokens):
        tokens = runner.run(seqs, [len(s) - s.num_computed_tokens for s in seqs]).argmax(dim=-1).tolist()
        for seq, token, out in zip(seqs, tokens, outputs, strict=True):
            seq.num_computed_tokens = len(seq)
            seq.append_token(token)
            out.append(token)
    return outputs
