"""Task 3: the model runner: one flat batch of decodes and prefill chunks, and logits equal to
transformers' wherever a token is sampled."""

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


def check_against_transformers(runner, hf_model, prompts, decode_steps=6, atol=1e-4, chunks=None):
    """Run every prompt through mixed steps, then decode greedily; every sampled row must equal
    transformers' logits at the same position (one full forward of each final sequence).

    ``chunks[i]`` is how many prompt tokens sequence ``i`` computes per step (None: all at once),
    so that prefill chunks of some sequences share steps with the decodes of others. A sequence
    gets a row of logits only at the step its chunk reaches its last token."""
    chunks = chunks or [None] * len(prompts)
    seqs = [make_seq(ids) for ids in prompts]
    free = give_blocks(seqs, runner.block_size, runner.num_kv_blocks)
    seen = [[] for _ in seqs]  # (position, logits) per sequence
    while min(s.num_output_tokens for s in seqs) < decode_steps + 1:
        live = [i for i, s in enumerate(seqs) if s.num_output_tokens < decode_steps + 1]
        num_new = [min(len(seqs[i]) - seqs[i].num_computed_tokens, chunks[i] or len(seqs[i])) for i in live]
        logits = runner.run([seqs[i] for i in live], num_new)
        sampling = [i for i, n in zip(live, num_new, strict=True) if seqs[i].num_computed_tokens + n == len(seqs[i])]
        assert logits.shape == (len(sampling), runner.config.vocab_size) and logits.dtype == torch.float32, (
            f"one row per sequence whose chunk reaches its last token ({len(sampling)}), got {tuple(logits.shape)}")
        # leak-check: allowed, bookkeeping the test sets up itself
        for i, n in zip(live, num_new, strict=True):
            seqs[i].num_computed_tokens += n
        for row, i in zip(logits.cpu(), sampling, strict=True):
            seq = seqs[i]
            seen[i].append((len(seq) - 1, row))
            seq.append_token(int(row.argmax()))
            while len(seq.block_table) * runner.block_size < len(seq):
                seq.block_table.append(free.pop())
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
def test_prepare_lays_out_decodes_and_prefill_chunks_in_one_flat_batch(runner):
    """A decode, a middle chunk after a cached prefix and a prompt's last chunk in one batch:
    positions start at num_computed_tokens; token i goes to slot table[i // bs] * bs + i % bs; the
    context length is where the chunk ends; only the decode and the last chunk are sampled."""
    a = make_seq([3] * 8 + [42])  # decoding: 8 computed, its newest token 42 to compute
    b = make_seq(list(range(10, 30)))  # 20 tokens, 4 cached: a chunk of 6 (positions 4..9)
    c = make_seq(list(range(30, 37)))  # 7 tokens, 5 computed: its last chunk of 2
    a.block_table, b.block_table, c.block_table = [6, 1, 3], [7, 2, 9], [5, 11]
    a.num_computed_tokens, b.num_computed_tokens, c.num_computed_tokens = 8, 4, 5
    input_ids, positions, meta, logits_indices = runner.prepare([a, b, c], [1, 6, 2])
    assert input_ids.tolist() == [42, *range(14, 20), 35, 36]
    assert positions.tolist() == [8, 4, 5, 6, 7, 8, 9, 5, 6]
    assert meta.slot_mapping.tolist() == [12, 8, 9, 10, 11, 36, 37, 45, 46]
    assert meta.is_prefill and meta.query_start_loc.tolist() == [0, 1, 7, 9]
    assert meta.context_lens.tolist() == [9, 10, 7] and meta.max_context_len == 10
    assert meta.query_lens_list == [1, 6, 2] and meta.context_lens_list == [9, 10, 7]
    assert meta.block_tables.tolist() == [[6, 1, 3], [7, 2, 9], [5, 11, 0]]
    assert logits_indices.tolist() == [0, 8], "b is in the middle of its prompt: no row of it is sampled"
    d = make_seq([5, 6, 7, 8])  # preempted after 2 outputs: it recomputes prompt + outputs, 6 tokens
    d.append_token(9)
    d.append_token(10)
    d.block_table = [1, 2]
    assert runner.prepare([d], [4])[3].tolist() == [], (
        "recomputing after a preemption: a chunk that covers only the prompt samples nothing (len(seq) is 6)")
    d.num_computed_tokens = 4
    assert runner.prepare([d], [2])[3].tolist() == [1], "the chunk that reaches len(seq) samples its last row"


@pytest.mark.points(1)
def test_prepare_of_decodes_only_is_not_a_prefill(runner):
    """One token per sequence: the newest one, at position len - 1, in the table's last used block;
    every row sampled; is_prefill False (attention takes the batched decode path)."""
    a, b = make_seq([3] * 8 + [42]), make_seq([4] * 5)
    a.block_table, b.block_table = [6, 1, 3], [8, 2]
    a.num_computed_tokens, b.num_computed_tokens = 8, 4
    input_ids, positions, meta, logits_indices = runner.prepare([a, b], [1, 1])
    assert input_ids.tolist() == [42, 4] and positions.tolist() == [8, 4]
    assert meta.slot_mapping.tolist() == [12, 8] and not meta.is_prefill
    assert meta.context_lens.tolist() == [9, 5] and meta.query_start_loc.tolist() == [0, 1, 2]
    assert logits_indices.tolist() == [0, 1]


@pytest.mark.points(1.5)
def test_fixture_logits_equal_transformers_in_mixed_batches(runner, model, tokenizer):
    """Several prompts, some computed whole, some in chunks of 3 or 5 while the others already
    decode, then all decoding together: every sampled row equals transformers' full forward
    within 1e-4 (float32)."""
    prompts = [tokenizer(p).input_ids for p in PROMPTS]
    check_against_transformers(runner, model, prompts, decode_steps=4, chunks=[None, 3, None, 5, 1, 4])


@pytest.mark.points(1)
def test_a_prompt_in_chunks_after_a_cached_prefix_gives_the_same_logits(runner, model, tokenizer):
    """8 tokens cached (as a prefix-cache hit leaves them), then the rest in chunks of 1, 5 and
    what is left: no logits before the last chunk; then the logits equal transformers' over the
    whole prompt."""
    ids = tokenizer(PROMPTS[3]).input_ids
    first = make_seq(ids[:8])
    give_blocks([first], runner.block_size, runner.num_kv_blocks, seed=3)
    runner.run([first], [8])
    whole = make_seq(ids)
    whole.block_table = list(first.block_table)
    whole.num_computed_tokens = 8
    spare = [b for b in range(runner.num_kv_blocks - 1, -1, -1) if b not in first.block_table]
    while len(whole.block_table) * runner.block_size < len(whole):
        whole.block_table.append(spare.pop())
    for chunk in (1, 5):
        logits = runner.run([whole], [chunk])
        assert logits.shape == (0, runner.config.vocab_size), "a chunk that does not end the prompt samples nothing"
        # leak-check: allowed, bookkeeping the test sets up itself
        whole.num_computed_tokens += chunk
    logits = runner.run([whole], [len(whole) - whole.num_computed_tokens])
    torch.testing.assert_close(logits[0].cpu(), hf_last_logits(model, ids), atol=1e-4, rtol=1e-4)


@pytest.mark.points(1)
def test_another_llama_folder_with_llama3_rope_scaling(tmp_path_factory, model_dir):
    """A Llama of another size (3 layers, 6 heads over 2 KV heads, head_dim 24 != hidden 96 / 6
    heads, llama3 rope scaling) with random weights, two prompts in chunks of 9 and 7: logits
    equal transformers' within 1e-4."""
    folder = write_random_llama(
        tmp_path_factory.mktemp("llama3"), model_dir, seed=1, head_dim=24,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 32}, rope_theta=500000.0)
    hf_model = load_hf(folder)
    runner = model_runner.ModelRunner(folder, block_size=8, num_kv_blocks=64, device="cpu", dtype=torch.float32)
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(3, 512, (n,), generator=g).tolist() for n in (5, 40, 19)]
    check_against_transformers(runner, hf_model, prompts, decode_steps=4, chunks=[None, 9, 7])


@pytest.mark.gpu
@pytest.mark.points(1)
def test_runs_on_cuda_in_bfloat16(model_dir, model, tokenizer):
    """The same runner on a CUDA GPU in bf16: logits close to transformers' float32 ones
    (bf16 rounding), and the same argmax for most steps."""
    runner = model_runner.ModelRunner(model_dir, block_size=16, num_kv_blocks=64, device="cuda", dtype=torch.bfloat16)
    seqs = [make_seq(tokenizer(p).input_ids) for p in PROMPTS]
    give_blocks(seqs, 16, 64)
    logits = runner.run(seqs, [len(s) for s in seqs]).cpu()
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
