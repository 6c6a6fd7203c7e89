"""Task 11: deploying vLLM — the config, its command line, and the KV-cache planner.

Oracles: transformers' own parameter counts (models built on the meta device: no memory, no
download), transformers' KV cache for the fixture, hand-worked numbers for Llama-2-7B and
Llama-3-8B on an 80 GB GPU (worked out in the comments), and — where vLLM is installed — vLLM's own
argument parser, its ``EngineArgs``, and the KV capacity it reports for the fixture.
"""

from __future__ import annotations

import json

import pytest

from shared.impl import lab_module
from shared.models import LLAMA2_7B_CONFIG

from .serving_fixtures import MAX_MODEL_LEN, VLLM_KV_GIB, vllm_server_fixture  # noqa: F401  (the fixture vllm_server)

deploy = lab_module("lab02_vllm", "deploy")

pytestmark = pytest.mark.task(11)

GIB = 1 << 30
GB = 10**9

#: Llama-3-8B's published config.json (grouped-query attention: 8 KV heads for 32 query heads).
LLAMA3_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
    "vocab_size": 128256, "rope_theta": 500000.0, "tie_word_embeddings": False,
}
#: Mistral-NeMo-12B's published config.json (head_dim 128 although hidden / heads = 5120 / 32 = 160).
MISTRAL_NEMO_CONFIG = {
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 5120,
    "intermediate_size": 14336, "num_hidden_layers": 40, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 1024000, "rms_norm_eps": 1e-5,
    "vocab_size": 131072, "rope_theta": 1000000.0, "tie_word_embeddings": False, "sliding_window": None,
}
#: Llama-2-70B's published config.json.
LLAMA2_70B_CONFIG = {
    **LLAMA2_7B_CONFIG, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
    "num_attention_heads": 64, "num_key_value_heads": 8,
}


def transformers_counts(config: dict) -> tuple[int, int]:
    """(all parameters, parameters in nn.Linear layers other than the output layer) of the model
    transformers builds from ``config``, on the meta device (no memory is allocated)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    hf_config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    linear = sum(m.weight.numel() for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and name != "lm_head")
    return model.num_parameters(), linear


def model_config(name: str, model_dir) -> dict:
    if name == "llama-2-7b":
        return LLAMA2_7B_CONFIG
    if name == "llama-3-8b":
        return LLAMA3_8B_CONFIG
    if name == "mistral-nemo-12b":
        return MISTRAL_NEMO_CONFIG
    return json.loads((model_dir / "config.json").read_text())


@pytest.mark.points(1)
@pytest.mark.parametrize("name", ["llama-2-7b", "llama-3-8b", "mistral-nemo-12b", "the test model"])
def test_parameter_counts_equal_transformers(name, model_dir):
    """All parameters and the linear layers' parameters, as transformers counts them."""
    config = model_config(name, model_dir)
    if config.get("model_type") not in {"llama", "mistral"}:
        pytest.skip(f"the planner counts Llama-style parameters; this model is a {config.get('model_type')!r}")
    shape = deploy.ModelShape.from_config(config)
    total, linear = transformers_counts(config)
    assert shape.linear_parameters() == linear
    assert shape.parameters() == total
    if name == "llama-2-7b":
        assert total == 6_738_415_616  # "7B"; Llama-3-8B has 8_030_261_248


@pytest.mark.points(1)
def test_kv_bytes_per_token_hand_worked_and_as_transformers_holds_it(model, tokenizer):
    """2 (K, V) x layers x KV heads x head_dim x bytes: 0.5 MiB a token for Llama-2-7B in fp16,
    a quarter of that for Llama-3-8B (8 KV heads, not 32); split over tensor-parallel GPUs."""
    llama2 = deploy.ModelShape.from_config(LLAMA2_7B_CONFIG)
    llama3 = deploy.ModelShape.from_config(LLAMA3_8B_CONFIG)
    assert deploy.kv_bytes_per_token(llama2, "float16") == 2 * 32 * 32 * 128 * 2 == 524_288
    assert deploy.kv_bytes_per_token(llama2, "float32") == 1_048_576
    assert deploy.kv_bytes_per_token(llama3, "bfloat16") == 2 * 32 * 8 * 128 * 2 == 131_072
    assert deploy.kv_bytes_per_token(llama3, "float16", tensor_parallel_size=2) == 65_536
    # 16 GPUs but 8 KV heads: each GPU keeps one (replicated) head, not half of one.
    assert deploy.kv_bytes_per_token(llama3, "float16", tensor_parallel_size=16) == 2 * 32 * 1 * 128 * 2
    with pytest.raises(ValueError, match="dtype"):
        deploy.kv_bytes_per_token(llama2, "int4")
    # The test model's KV cache, as transformers allocates it, takes kv_bytes_per_token per token.
    import torch

    ids = torch.tensor([tokenizer("The cat sat on the mat and looked at the").input_ids])
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    held = sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in cache.layers)
    shape = deploy.ModelShape.from_config(model.config.to_dict())
    assert deploy.kv_bytes_per_token(shape, "float32") * ids.shape[1] == held


@pytest.mark.points(0.5)
def test_kv_bytes_per_token_when_head_dim_is_not_hidden_over_heads():
    """Models whose head_dim is not hidden / heads (Mistral-NeMo: 128, not 5120 / 32 = 160): the
    KV cache transformers allocates for a small random one of that kind, and Mistral-NeMo's
    2 x 40 x 8 x 128 x 2 bytes a token in fp16."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = dict(hidden_size=96, intermediate_size=64, num_hidden_layers=2, num_attention_heads=6,
                  num_key_value_heads=2, head_dim=24, vocab_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**config)).eval()
    with torch.no_grad():
        cache = model(torch.arange(5)[None], use_cache=True).past_key_values
    held = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    shape = deploy.ModelShape.from_config({"model_type": "llama", **config})
    assert deploy.kv_bytes_per_token(shape, "float32") * 5 == held
    nemo = deploy.ModelShape.from_config(MISTRAL_NEMO_CONFIG)
    assert deploy.kv_bytes_per_token(nemo, "float16") == 2 * 40 * 8 * 128 * 2 == 163_840


@pytest.mark.points(0.5)
def test_plans_on_an_80gb_gpu_hand_worked():
    """Hand-worked: an 80 GiB GPU at 0.9 gives 77,309,411,328 bytes; minus fp16 weights and a 2 GiB
    activation reserve, the rest is KV blocks of 16 tokens.

    Llama-2-7B: 77,309,411,328 - 13,476,831,232 - 2,147,483,648 = 61,685,096,448 bytes of KV;
    a block is 16 x 524,288 = 8,388,608 bytes, so 7,353 blocks (117,648 tokens); a 4,096-token
    sequence needs 256 blocks, so 28 run at once.
    Llama-3-8B: 77,309,411,328 - 16,060,522,496 - 2,147,483,648 = 59,101,405,184 bytes; blocks of
    2,097,152 bytes: 28,181 blocks (450,896 tokens); an 8,192-token sequence needs 512: 55 at once.
    GQA buys Llama-3-8B about four times the tokens of the smaller Llama-2-7B.
    """
    llama2 = deploy.plan_kv_cache(deploy.ModelShape.from_config(LLAMA2_7B_CONFIG), 80 * GIB, 0.9,
                                  activation_reserve_bytes=2 * GIB)
    assert llama2.weight_bytes == 13_476_831_232
    assert llama2.kv_cache_bytes == 61_685_096_448
    assert llama2.bytes_per_block == 8_388_608
    assert llama2.num_blocks == 7_353, f"Llama-2-7B on an 80 GB GPU: expected 7,353 KV blocks, got {llama2.num_blocks}"
    assert llama2.max_tokens == 117_648, "Llama-2-7B: max_tokens is num_blocks * block_size = 117,648"
    assert llama2.max_concurrent_sequences(4096) == 28
    assert llama2.max_concurrent_sequences(4097) == 7_353 // 257  # a 257th block for one more token
    assert llama2.max_concurrent_sequences(1) == 7_353

    llama3 = deploy.plan_kv_cache(deploy.ModelShape.from_config(LLAMA3_8B_CONFIG), 80 * GIB, 0.9,
                                  activation_reserve_bytes=2 * GIB)
    assert llama3.kv_cache_bytes == 59_101_405_184
    assert llama3.num_blocks == 28_181, (
        f"Llama-3-8B (GQA, 8 KV heads) on an 80 GB GPU: expected 28,181 KV blocks, got {llama3.num_blocks}"
    )
    assert llama3.max_tokens == 450_896, "Llama-3-8B: max_tokens is num_blocks * block_size = 450,896"
    assert llama3.max_concurrent_sequences(8192) == 55


@pytest.mark.points(1)
def test_tensor_parallel_quantized_and_impossible_plans():
    """Two GPUs hold half the weights and half the KV heads each; AWQ shrinks only the linear
    layers; a plan that leaves nothing for the KV cache is refused."""
    shape = deploy.ModelShape.from_config(LLAMA3_8B_CONFIG)
    tp2 = deploy.plan_kv_cache(shape, 24 * GIB, 0.9, tensor_parallel_size=2, activation_reserve_bytes=GIB)
    # int(24 GiB x 0.9) - 16,060,522,496 / 2 - 1 GiB = 13,166,919,270 bytes; blocks of 16 x 65,536.
    assert tp2.weight_bytes == 8_030_261_248
    assert tp2.kv_cache_bytes == int(24 * GIB * 0.9) - 8_030_261_248 - GIB
    assert tp2.num_blocks == tp2.kv_cache_bytes // (16 * 65_536)
    awq = deploy.weight_bytes(shape, "float16", "awq")
    linear = 32 * (4096 * 128 * (2 * 32 + 2 * 8) + 3 * 4096 * 14336)
    assert awq == int(linear * (4 + 20 / 128) / 8) + (8_030_261_248 - linear) * 2
    # ... and what cannot fit is refused, naming the setting to change.
    seventy = deploy.ModelShape.from_config(LLAMA2_70B_CONFIG)
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        deploy.plan_kv_cache(seventy, 80 * GIB, 0.9)  # 138 GB of weights on one 80 GB GPU
    assert deploy.plan_kv_cache(seventy, 80 * GIB, 0.9, tensor_parallel_size=2).num_blocks > 0
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="gpu_memory_utilization"):
            deploy.plan_kv_cache(shape, 80 * GIB, bad)
    with pytest.raises(ValueError, match="seq_len"):
        deploy.plan_kv_cache(shape, 80 * GIB, 0.9).max_concurrent_sequences(0)


@pytest.mark.points(1)
def test_weights_agree_with_the_hardware_table():
    """The chapter's table: 7B in fp16 ≈ 16 GB to serve, 70B in fp16 ≈ 140 GB, 4-bit ≈ 0.7 GB per billion."""
    seven = deploy.ModelShape.from_config(LLAMA2_7B_CONFIG)
    seventy = deploy.ModelShape.from_config(LLAMA2_70B_CONFIG)
    fp16_7b = deploy.weight_bytes(seven, "float16")
    assert 13 * GB < fp16_7b < 14 * GB
    # ... plus one full 4,096-token context of KV cache: about 16 GB to serve one user.
    assert fp16_7b + deploy.kv_bytes_per_token(seven) * 4096 == pytest.approx(16 * GB, rel=0.05)
    assert deploy.weight_bytes(seventy, "float16") == pytest.approx(140 * GB, rel=0.03)
    for shape in (seven, seventy):
        per_billion = deploy.weight_bytes(shape, "float16", "gptq") / (shape.parameters() / 1e9)
        assert 0.5 * GB < per_billion <= 0.7 * GB
    assert deploy.weight_bytes(seven, "float32") == 2 * fp16_7b


@pytest.mark.points(1)
def test_config_validation_names_the_field():
    """tp must divide the heads; memory fraction in (0, 1]; context within the model's; known quantization."""
    def config(**fields):
        return deploy.DeployConfig(model="meta-llama/Meta-Llama-3-8B",
                                   shape=deploy.ModelShape.from_config(LLAMA3_8B_CONFIG), **fields)

    for tp in (1, 2, 4, 8, 16, 32):
        assert config(tensor_parallel_size=tp).tensor_parallel_size == tp
    cases = [
        ({"tensor_parallel_size": 3}, "tensor_parallel_size"),  # 32 heads do not split in 3
        ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
        ({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": 1.01}, "gpu_memory_utilization"),
        ({"max_model_len": 8193}, "max_model_len"),  # the model's context is 8192
        ({"max_model_len": 0}, "max_model_len"),
        ({"quantization": "int3"}, "quantization"),
        ({"max_num_seqs": 0}, "max_num_seqs"),
        ({"port": 70000}, "port"),
    ]
    for fields, name in cases:
        with pytest.raises(ValueError, match=name):
            config(**fields)
    assert config(gpu_memory_utilization=1.0, max_model_len=8192, quantization="awq").max_model_len == 8192
    # Without a shape only the model-independent checks apply.
    assert deploy.DeployConfig(model="m", tensor_parallel_size=3).tensor_parallel_size == 3


def context(model_dir, wanted: int = 1024) -> int:
    """``wanted``, or the model's whole context where it is shorter (a max_model_len past it is refused)."""
    return min(wanted, json.loads((model_dir / "config.json").read_text()).get("max_position_embeddings", wanted))


@pytest.mark.points(1)
def test_command_line_and_llm_kwargs(model_dir):
    length = context(model_dir)
    config = deploy.DeployConfig.for_model(model_dir, tensor_parallel_size=2, gpu_memory_utilization=0.5,
                                           max_model_len=length, enable_prefix_caching=False, api_key="k")
    args = config.cli_args()
    assert args[:3] == ["vllm", "serve", str(model_dir)]
    pairs = {args[i]: args[i + 1] for i in range(3, len(args) - 1) if args[i].startswith("--")
             and not args[i + 1].startswith("--")}
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--gpu-memory-utilization"] == "0.5"
    assert pairs["--max-model-len"] == str(length) and pairs["--api-key"] == "k"
    assert "--no-enable-prefix-caching" in args and "--enable-prefix-caching" not in args
    assert "--quantization" not in args and "--shape" not in args
    module = config.cli_args("module")
    assert module[1:5] == ["-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    assert module[5:] == args[3:]
    kwargs = config.llm_kwargs()
    assert kwargs["model"] == str(model_dir) and kwargs["tensor_parallel_size"] == 2
    assert kwargs["enable_prefix_caching"] is False and kwargs["max_model_len"] == length
    assert not {"api_key", "host", "port", "shape", "quantization"} & set(kwargs)


@pytest.mark.vllm
@pytest.mark.points(1)
def test_vllms_own_parser_reads_the_command_line(model_dir):
    """vLLM's server parses ``cli_args()`` back into the same engine arguments that ``llm_kwargs()``
    gives ``vllm.EngineArgs`` (the class ``vllm.LLM`` builds from its keyword arguments)."""
    from vllm.engine.arg_utils import AsyncEngineArgs, EngineArgs
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    assert set(deploy.QUANTIZATION_BITS) <= set(QUANTIZATION_METHODS)
    for fields in ({}, {"tensor_parallel_size": 2, "gpu_memory_utilization": 0.5, "max_model_len": context(model_dir),
                        "enable_prefix_caching": False, "enforce_eager": True, "dtype": "bfloat16",
                        "quantization": "awq", "load_format": "dummy", "api_key": "k", "port": 9000}):
        config = deploy.DeployConfig.for_model(model_dir, **fields)
        command = config.cli_args("module")
        namespace = make_arg_parser(FlexibleArgumentParser()).parse_args(command[3:])
        parsed = AsyncEngineArgs.from_cli_args(namespace)
        kwargs = config.llm_kwargs()
        direct = EngineArgs(**kwargs)
        for key in kwargs:
            assert getattr(parsed, key) == getattr(direct, key) == kwargs[key], key
        assert (namespace.host, namespace.port) == (config.host, config.port)
        assert (namespace.api_key or [None])[0] == config.api_key


@pytest.mark.vllm
@pytest.mark.points(1)
@pytest.mark.timeout(900)
def test_kv_capacity_equals_what_vllm_reports(vllm_server, model_dir):
    """vLLM on the CPU gets ``VLLM_CPU_KVCACHE_SPACE`` GiB of KV cache: for that many bytes and its
    block size, the planner's block count is the ``num_gpu_blocks`` vLLM reports in
    ``vllm:cache_config_info``, and its concurrency for full-length sequences vLLM's
    ``kv_cache_max_concurrency``."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(httpx.get(vllm_server.url + "/metrics").text)
    info = next(s.labels for f in families for s in f.samples if f.name == "vllm:cache_config_info")
    kv_bytes, block_size = int(info["kv_cache_memory_bytes"]), int(info["block_size"])
    assert kv_bytes == VLLM_KV_GIB * GIB
    shape = deploy.ModelShape.from_config(model_dir)
    blocks = deploy.blocks_for_cache(shape, kv_bytes, block_size, "float32")
    assert blocks == int(info["num_gpu_blocks"]), info
    plan = deploy.KVCachePlan(gpu_memory_bytes=kv_bytes, gpu_memory_utilization=1.0, weight_bytes=0,
                              activation_reserve_bytes=0, kv_cache_bytes=kv_bytes,
                              bytes_per_token=deploy.kv_bytes_per_token(shape, "float32"), block_size=block_size,
                              num_blocks=blocks)
    assert plan.max_concurrent_sequences(MAX_MODEL_LEN) == float(info["kv_cache_max_concurrency"])
