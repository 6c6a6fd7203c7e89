"""Task 3: the model runner: paged inputs, and logits equal to transformers'."""

import json

import pytest
import torch

from .helpers import PROMPTS, load_hf, make_seq, model_runner, write_random_llama

pytestmark = pytest.mark.task(3)


def give_blocks(seqs, block_size, num_blocks, seed=0):
    """Hand each sequence enough blocks for its tokens, from a shuffled pool (no block manager)."""
    free = torch.randperm(num_blocks, generator=torch.Generator().manual_seed(seed)).tolist()
    for seq in seqs:
        while len(seq.block_table) * block_size < len(seq):
            seq.block_table.append(free.pop())
    return free


def hf_last_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids], device=model.device)).logits[0, -1].float().cpu()


def check_against_transformers(runner, hf_model, prompts, decode_steps=6, atol=1e-4):
    """Prefill every prompt in one step, then decode greedily; every step's logits must equal
    transformers' at the same position (one full forward of each final sequence)."""
    seqs = [make_seq(ids) for ids in prompts]
    free = give_blocks(seqs, runner.block_size, runner.num_kv_blocks)
    logits = runner.run(seqs, is_prefill=True)
    assert logits.shape == (len(seqs), runner.config.vocab_size) and logits.dtype == torch.float32
    seen = [[] for _ in seqs]  # (position, logits) per sequence
    for step in range(decode_steps + 1):
        for row, seq, record in zip(logits.cpu(), seqs, seen, strict=True):
            record.append((len(seq) - 1, row))
        if step == decode_steps:
            break
        # leak-check: allowed, a generic pairing loop in the test's driver
        for row, seq in zip(logits, seqs, strict=True):
            # leak-check: allowed, bookkeeping the test sets up itself
            seq.num_computed_tokens = len(seq)
            seq.append_token(int(row.argmax()))
            while len(seq.block_table) * runner.block_size < len(seq):
                seq.block_table.append(free.pop())
        logits = runner.run(seqs, is_prefill=False)
    for seq, record in zip(seqs, seen, strict=True):
        with torch.no_grad():
            expected = hf_model(torch.tensor([seq.token_ids], device=hf_model.device)).logits[0].float().cpu()
        for position, row in record:
            where = f"position {position} of a {len(seq)}-token sequence"
            torch.testing.assert_close(row, expected[position], atol=atol, rtol=atol,
                                       msg=lambda m, w=where: f"{w}: {m}")


@pytest.fixture(scope="module")
def runner(model_dir, device):
    return model_runner.ModelRunner(model_dir, block_size=4, num_kv_blocks=128, device=device, dtype=torch.float32)


@pytest.mark.points(1.5)
def test_prepare_prefill_skips_the_cached_prefix_and_maps_slots(runner):
    """Positions start at num_computed_tokens; token i goes to slot table[i // bs] * bs + i % bs."""
    a, b = make_seq(list(range(10, 20))), make_seq(list(range(30, 37)))
    a.block_table, b.block_table = [7, 2, 9], [5, 11]
    b.num_computed_tokens = 4  # its first block is cached
    input_ids, positions, meta = runner.prepare_prefill([a, b])
    assert input_ids.tolist() == list(range(10, 20)) + list(range(34, 37))
    assert positions.tolist() == [*list(range(10)), 4, 5, 6]
    assert meta.slot_mapping.tolist() == [28, 29, 30, 31, 8, 9, 10, 11, 36, 37, 44, 45, 46]
    assert meta.is_prefill and meta.query_start_loc.tolist() == [0, 10, 13]
    assert meta.context_lens.tolist() == [10, 7] and meta.max_context_len == 10
    assert meta.query_lens_list == [10, 3] and meta.context_lens_list == [10, 7]
    assert meta.block_tables.tolist() == [[7, 2, 9], [5, 11, 0]]


@pytest.mark.points(1)
def test_prepare_decode_feeds_each_newest_token_at_its_slot(runner):
    """One token per sequence: the last one, at position len - 1, in the table's last used block."""
    a, b = make_seq([3] * 8 + [42]), make_seq([4] * 5)
    a.block_table, b.block_table = [6, 1, 3], [8, 2]
    input_ids, positions, meta = runner.prepare_decode([a, b])
    assert input_ids.tolist() == [42, 4] and positions.tolist() == [8, 4]
    assert meta.slot_mapping.tolist() == [12, 8] and not meta.is_prefill
    assert meta.context_lens.tolist() == [9, 5] and meta.query_start_loc.tolist() == [0, 1, 2]


@pytest.mark.points(1.5)
def test_fixture_logits_equal_transformers_through_prefill_and_decode(runner, model, tokenizer):
    """Several prompts prefilled in one flat batch, then decoded together: every step's logits
    equal transformers' full forward within 1e-4 (float32)."""
    prompts = [tokenizer(p).input_ids for p in PROMPTS]
    check_against_transformers(runner, model, prompts)


@pytest.mark.points(1)
def test_a_prefill_after_a_cached_prefix_gives_the_same_logits(runner, model, tokenizer):
    """Prefill 8 tokens, then prefill the rest with num_computed_tokens = 8 (as a prefix-cache hit
    would): the logits equal transformers' over the whole prompt."""
    ids = tokenizer(PROMPTS[3]).input_ids
    first = make_seq(ids[:8])
    give_blocks([first], runner.block_size, runner.num_kv_blocks, seed=3)
    runner.run([first], is_prefill=True)
    whole = make_seq(ids)
    whole.block_table = list(first.block_table)
    whole.num_computed_tokens = 8
    spare = [b for b in range(runner.num_kv_blocks - 1, -1, -1) if b not in first.block_table]
    while len(whole.block_table) * runner.block_size < len(whole):
        whole.block_table.append(spare.pop())
    logits = runner.run([whole], is_prefill=True)
    torch.testing.assert_close(logits[0].cpu(), hf_last_logits(model, ids), atol=1e-4, rtol=1e-4)


@pytest.mark.points(1)
def test_another_llama_folder_with_llama3_rope_scaling(tmp_path_factory, model_dir):
    """A Llama of another size (3 layers, 6 heads over 2 KV heads, head_dim 24 != hidden 96 / 6
    heads, llama3 rope scaling) with random weights: logits equal transformers' within 1e-4."""
    folder = write_random_llama(
        tmp_path_factory.mktemp("llama3"), model_dir, seed=1, head_dim=24,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 32}, rope_theta=500000.0)
    hf_model = load_hf(folder)
    runner = model_runner.ModelRunner(folder, block_size=8, num_kv_blocks=64, device="cpu", dtype=torch.float32)
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(3, 512, (n,), generator=g).tolist() for n in (5, 40, 19)]
    check_against_transformers(runner, hf_model, prompts, decode_steps=4)


@pytest.mark.gpu
@pytest.mark.points(1)
def test_runs_on_cuda_in_bfloat16(model_dir, model, tokenizer):
    """The same runner on a CUDA GPU in bf16: logits close to transformers' float32 ones
    (bf16 rounding), and the same argmax for most steps."""
    runner = model_runner.ModelRunner(model_dir, block_size=16, num_kv_blocks=64, device="cuda", dtype=torch.bfloat16)
    seqs = [make_seq(tokenizer(p).input_ids) for p in PROMPTS]
    give_blocks(seqs, 16, 64)
    logits = runner.run(seqs, is_prefill=True).cpu()
    expected = torch.stack([hf_last_logits(model, s.token_ids) for s in seqs])
    assert (logits - expected).abs().max() < 0.15 * expected.abs().max()
    assert (logits.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.8


@pytest.mark.scaffold
def test_a_folder_that_is_not_a_llama_is_refused_naming_it(tmp_path):
    """Given code: a GPT-2 config, or no config.json, is a ValueError naming the folder."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match="not a Llama") as error:
        model_runner.ModelConfig.from_folder(tmp_path)
    assert str(tmp_path) in str(error.value)
    with pytest.raises(ValueError, match=r"config\.json"):
        model_runner.ModelConfig.from_folder(tmp_path / "nothing")
