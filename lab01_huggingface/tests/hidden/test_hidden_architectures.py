"""Instructor-only: every task's key function on models of other architectures with random
weights (absolute positions, eos id 0, a list of eos ids, fused projections, tied embeddings)."""

import copy

import pytest
import torch

from ..helpers import assert_lora_targets, batching, finetune, generation, hf_greedy, loading, pad_token_id, speculative
from .architectures import ARCHITECTURES, CONVENTIONS_TRIED, random_model

PROMPT_TEXTS = ["x", "The cat sat", '{"id": 7, "tags": ["a", "b"], "text": "Grüße 👋🏽"}']


def prompts(tokenizer) -> list[list[int]]:
    return [tokenizer(text).input_ids for text in PROMPT_TEXTS]


@pytest.mark.task(1)
@pytest.mark.points(1)
@pytest.mark.parametrize("architecture", ARCHITECTURES + CONVENTIONS_TRIED)
@pytest.mark.timeout(600)  # the first run builds the folders (Llama 3's tokenizer: ~25 s idle)
def test_load_any_architecture(architecture):
    """Tied embeddings counted once, buffers counted, eval mode, bf16 honoured, on every architecture."""
    folder, reference, _ = random_model(architecture)
    loaded = loading.load_model(folder, device="cpu", dtype="bfloat16")
    assert not loaded.model.training, "load_model must return the model in eval mode"
    assert loaded.dtype == torch.bfloat16, f'dtype="bfloat16" must load torch.bfloat16, got {loaded.dtype}'
    assert loaded.num_parameters == reference.num_parameters()
    assert loaded.weight_bytes == loaded.model.get_memory_footprint()


@pytest.mark.task(3)
@pytest.mark.points(1)
@pytest.mark.parametrize("architecture", [*ARCHITECTURES, "llama-bpe"])
@pytest.mark.timeout(600)  # the first run builds the folders (Llama 3's tokenizer: ~25 s idle)
def test_decode_on_any_architecture_and_eos_convention(architecture):
    """Greedy equals generate() with the model's own eos convention (0, a list), and stops at an
    eos list built from the model's own output, cached or not."""
    _, model, tokenizer = random_model(architecture)
    for ids in prompts(tokenizer):
        for use_cache in (True, False):
            assert generation.greedy_generate(model, ids, 10, use_cache=use_cache) == hf_greedy(model, ids, 10)
        free = generation.greedy_generate(model, ids, 12, eos_token_id=-1)
        clone = copy.copy(model)
        clone.generation_config = copy.deepcopy(model.generation_config)
        clone.generation_config.eos_token_id = [free[5], 0]
        stopped = generation.decode(clone, ids, 12, generation.pick_greedy)
        assert stopped == free[: free.index(free[5]) + 1]
        assert stopped == hf_greedy(clone, ids, 12)


@pytest.mark.task(3)
@pytest.mark.points(1)
def test_greedy_on_random_token_prompts(model):
    """Random token-id prompts of lengths 1 to 40 (including special ids) still match generate()."""
    generator = torch.Generator().manual_seed(2024)
    vocab = model.config.vocab_size
    for length in (1, 2, 7, 40):
        ids = torch.randint(0, vocab, (length,), generator=generator).tolist()
        for use_cache in (True, False):
            assert generation.greedy_generate(model, ids, 12, use_cache=use_cache) == hf_greedy(model, ids, 12)


@pytest.mark.task(5)
@pytest.mark.points(1)
@pytest.mark.parametrize("architecture", [*ARCHITECTURES, "no-pad", "gpt-2", "llama-spm"])
@pytest.mark.timeout(600)  # the first run builds the folders (Llama 3's tokenizer: ~25 s idle)
def test_batching_on_any_architecture(architecture):
    """Left padding on models with absolute positions (gpt2, opt) only works when the position ids
    count real tokens; rows stop at the model's own eos list. A tokenizer without a pad token pads
    with its eos token."""
    _, model, tokenizer = random_model(architecture)
    batch = prompts(tokenizer)
    pad = pad_token_id(tokenizer)
    rows = batching.batch_greedy_generate(model, batch, 10, pad)
    assert rows == [hf_greedy(model, ids, 10) for ids in batch]
    stops = [rows[2][3], rows[0][1]]
    rows = batching.batch_greedy_generate(model, batch, 10, pad, eos_token_id=stops)
    assert rows == [hf_greedy(model, ids, 10, eos_token_id=stops) for ids in batch]


def simulated_bookkeeping(target, draft, ids: list[int], n: int, k: int) -> tuple[int, int, int]:
    """(proposed, accepted, target passes) of greedy speculation, from each model's own generate()."""
    truth = hf_greedy(target, ids, n, eos_token_id=None, min_new_tokens=n)
    position = proposed = accepted = passes = 0
    while position < n:
        wanted = min(k, n - position - 1)
        guesses = hf_greedy(draft, ids + truth[:position], wanted, eos_token_id=None,
                            min_new_tokens=wanted) if wanted else []
        agreed = 0
        while agreed < wanted and guesses[agreed] == truth[position + agreed]:
            agreed += 1
        proposed, accepted, passes = proposed + wanted, accepted + agreed, passes + 1
        position += agreed + 1
    return proposed, accepted, passes


def noisy_copy(model, scale: float, seed: int):
    """The same model with every weight nudged: a draft that agrees with it often, not always."""
    draft = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in draft.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return draft


@pytest.mark.task(7)
@pytest.mark.points(1)
@pytest.mark.parametrize("k", [2, 5])
def test_speculative_bookkeeping_is_exact(model, draft_model, tokenizer, k):
    """proposed, accepted and target passes equal a simulation from both models' own greedy
    outputs: for the fixture pair, and for a qwen2 target with a nudged copy as its draft (partly
    right, so a draft cache that keeps rejected guesses proposes differently); eos as a list."""
    if draft_model.config.vocab_size == model.config.vocab_size:  # else --model's vocabulary is another
        ids = tokenizer("Ana lives in").input_ids
        result = speculative.speculative_generate(model, draft_model, ids, 19, k=k, eos_token_id=-1)
        assert (result.proposed, result.accepted, result.target_forward_passes) == \
            simulated_bookkeeping(model, draft_model, ids, 19, k)
    _, target, qwen_tokenizer = random_model("qwen2")
    draft = noisy_copy(target, 0.02, seed=k)
    ids = qwen_tokenizer("The cat sat").input_ids
    result = speculative.speculative_generate(target, draft, ids, 15, k=k, eos_token_id=-1)
    assert result.tokens == hf_greedy(target, ids, 15, eos_token_id=None, min_new_tokens=15)
    assert (result.proposed, result.accepted, result.target_forward_passes) == \
        simulated_bookkeeping(target, draft, ids, 15, k)
    stops = [result.tokens[6], 0]
    assert speculative.speculative_generate(target, draft, ids, 15, k=k, eos_token_id=stops).tokens == \
        hf_greedy(target, ids, 15, eos_token_id=stops)


@pytest.mark.task(8)
@pytest.mark.points(1)
@pytest.mark.parametrize("architecture", ["gpt2", "gpt_neox", "opt", "mixtral"])
def test_lora_on_other_layer_names(architecture):
    """LoRA's default targets are the model's own linear layers (GPT-2's Conv1D c_attn, GPT-NeoX's
    query_key_value ...), not a Llama's names; r and alpha land where they belong. On Mixtral,
    peft's "all-linear" also adapts the router and the fused experts: allowed, not required."""
    folder, _, _ = random_model(architecture)
    from transformers import AutoModelForCausalLM

    def fresh():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)

    assert_lora_targets(finetune.add_lora(fresh(), r=2, alpha=6), fresh, r=2, alpha=6)
