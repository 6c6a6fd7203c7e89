"""Task 13: tensor parallelism: the model split over two worker processes (gloo on the CPU).

Oracles: the same engine on one process (TP=1), token for token, preemption included; transformers'
own forward on Llamas of other shapes (grouped-query attention with the KV heads split, and with
one KV head replicated on both ranks); vLLM's wording for a size that does not divide the heads.
Every worker process is stopped at the end of its fixture, a failed test included.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import multiprocessing
from pathlib import Path

import pytest
import torch

from shared.impl import lab_module

from .helpers import engine, load_hf, make_seq, mixed_prompts, model_runner, sampling_params, write_random_llama

parallel = lab_module("lab02_vllm", "parallel")

pytestmark = [pytest.mark.task(13), pytest.mark.timeout(300)]

#: Two shapes the fixture does not have: KV heads split over the ranks, and one KV head that both
#: ranks must hold (vLLM's replication).
SHAPES = {
    "8-heads-2-kv-split": dict(hidden_size=128, num_attention_heads=8, num_key_value_heads=2, head_dim=16,
                               intermediate_size=192, num_hidden_layers=2),
    "4-heads-1-kv-replicated": dict(hidden_size=96, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                                    intermediate_size=160, num_hidden_layers=3),
}


def greedy(max_tokens: int):
    return sampling_params.SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)


def alive(pids: list[int]) -> list[int]:
    """Which of these worker processes still run (a zombie counts as stopped)."""
    running = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "State:\tZ" not in status.read_text():
            running.append(pid)
    return running


def skip_unless_splits(folder: Path, n: int) -> None:
    """Skip, saying why, when ``--model`` names a Llama whose heads or MLP do not split ``n`` ways."""
    c = model_runner.ModelConfig.from_folder(folder)
    kv_ok = c.num_key_value_heads % n == 0 or n % c.num_key_value_heads == 0
    if c.num_attention_heads % n or c.intermediate_size % n or not kv_ok:
        pytest.skip(f"the model in {folder} does not split over {n} ranks "
                    f"({c.num_attention_heads} heads, {c.num_key_value_heads} KV heads)")


def start_llm(folder: Path, **kwargs):
    """An ``LLM`` over two workers, stopped by the fixture's finalizer whatever the test does."""
    return engine.LLM(folder, block_size=16, dtype="float32", device="cpu", tensor_parallel_size=2, **kwargs)


@pytest.fixture(scope="module")
def fixture_pair(model_dir, tokenizer):
    """The fixture on one process and on two, with a pool small enough that requests are preempted."""
    skip_unless_splits(model_dir, 2)
    prompts = mixed_prompts(tokenizer, 6, seed=13, low=4, high=40)
    args = dict(num_kv_blocks=14, max_model_len=128, max_num_seqs=6)
    tp2 = start_llm(model_dir, **args)
    try:
        tp1 = engine.LLM(model_dir, block_size=16, dtype="float32", device="cpu", **args)
        yield tp1, tp2, prompts
    finally:
        tp2.shutdown()


@pytest.fixture(scope="module", params=sorted(SHAPES))
def shape_pair(request, tmp_path_factory, model_dir):
    """A random-weight Llama of another shape: its folder, transformers' model, TP=1 and TP=2 engines."""
    folder = write_random_llama(tmp_path_factory.mktemp(request.param), Path(model_dir), seed=13,
                                **SHAPES[request.param])
    tp2 = start_llm(folder, num_kv_blocks=64, max_model_len=256)
    try:
        tp1 = engine.LLM(folder, block_size=16, dtype="float32", device="cpu", num_kv_blocks=64, max_model_len=256)
        yield folder, load_hf(folder), tp1, tp2
    finally:
        tp2.shutdown()


@pytest.mark.points(0.5)
def test_sizes_that_do_not_divide_the_model_are_refused_with_vllms_wording(model_dir):
    """A size that does not divide the attention heads (TP=3 on the fixture's 4) is refused before
    any worker starts, in vLLM's words; the KV heads must divide the size or be divisible by it;
    4 heads / 2 KV heads on 4 ranks (one KV head per two ranks) is accepted."""
    config = model_runner.ModelConfig.from_folder(model_dir)
    heads = config.num_attention_heads
    tp = 3 if heads % 3 else heads + 1
    expected = f"Total number of attention heads ({heads}) must be divisible by tensor parallel size ({tp})."
    spec = importlib.util.find_spec("vllm")
    if spec is not None and spec.submodule_search_locations:  # the wording, as vLLM 0.32 writes it
        source = (Path(next(iter(spec.submodule_search_locations))) / "config" / "model.py").read_text()
        assert '"Total number of attention heads ({total_num_attention_heads})"' in source
        assert '" must be divisible by tensor parallel size "' in source
    before = set(multiprocessing.active_children())
    with pytest.raises(ValueError) as refused:
        engine.LLM(model_dir, block_size=16, dtype="float32", device="cpu", tensor_parallel_size=tp)
    assert str(refused.value) == expected
    assert set(multiprocessing.active_children()) == before  # refused before any worker started

    config = dataclasses.replace(config, num_attention_heads=4, num_key_value_heads=2, intermediate_size=512)
    parallel.check_tensor_parallel_size(config, 4)  # 2 KV heads, each on two ranks
    parallel.check_tensor_parallel_size(config, 1)
    odd_kv = dataclasses.replace(config, num_attention_heads=12, num_key_value_heads=4)
    with pytest.raises(ValueError,
                       match=r"key-value heads \(4\) must divide or be divisible by tensor parallel size \(6\)"):
        parallel.check_tensor_parallel_size(odd_kv, 6)
    with pytest.raises(ValueError, match=r"Intermediate size \(510\) must be divisible by tensor parallel size \(4\)"):
        parallel.check_tensor_parallel_size(dataclasses.replace(config, intermediate_size=510), 4)
    with pytest.raises(ValueError, match="tensor_parallel_size must be at least 1, got 0"):
        parallel.check_tensor_parallel_size(config, 0)


@pytest.mark.points(0.5)
def test_fixture_two_ranks_equal_one_token_for_token_with_preemption(fixture_pair):
    """Greedy, six prompts, a pool that forces preemption: TP=2 gives TP=1's tokens exactly, and
    both engines preempted (the scheduler lives once, in the driver)."""
    tp1, tp2, prompts = fixture_pair
    ours = tp2.generate(prompts, greedy(40))
    reference = tp1.generate(prompts, greedy(40))
    assert [o.outputs[0].token_ids for o in ours] == [o.outputs[0].token_ids for o in reference]
    assert tp1.engine.stats.num_preemptions > 0
    assert tp2.engine.stats.num_preemptions == tp1.engine.stats.num_preemptions


@pytest.mark.points(0.5)
def test_two_all_reduces_per_layer_of_hidden_size_per_token(fixture_pair, model_dir):
    """One prefill of 5 tokens and 3 decode steps: each rank calls ``dist.all_reduce`` twice per layer
    per step, each time on ``tokens x hidden`` floats; rank 0's logits equal TP=1's."""
    tp1, tp2, _ = fixture_pair
    config = model_runner.ModelConfig.from_folder(model_dir)
    runner = tp2.engine.runner
    before = runner.stats()
    seq, ref = make_seq([1, 42, 7, 9, 30]), make_seq([1, 42, 7, 9, 30])
    seq.block_table, ref.block_table = [0], [0]  # the engines are idle: their blocks are free
    fed = 0
    for _ in range(4):
        logits = runner.run([seq], [len(seq) - seq.num_computed_tokens])
        expected = tp1.engine.runner.run([ref], [len(ref) - ref.num_computed_tokens])
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
        fed += len(seq) - seq.num_computed_tokens
        for s in (seq, ref):
            s.num_computed_tokens = len(s)
            s.append_token(int(expected.argmax()))
    after = runner.stats()
    layers, hidden = config.num_hidden_layers, config.hidden_size
    for rank, (b, a) in enumerate(zip(before, after, strict=True)):
        assert a["all_reduce"] - b["all_reduce"] == 2 * layers * 4, f"rank {rank}"
        assert a["bytes"] - b["bytes"] == 2 * layers * fed * hidden * 4, f"rank {rank}"


@pytest.mark.points(1)
def test_other_shapes_equal_transformers_logits(shape_pair):
    """A random-weight Llama of another shape (KV heads split, or one KV head replicated): the
    last-token logits over two ranks equal transformers' forward."""
    _folder, hf, _tp1, tp2 = shape_pair
    runner = tp2.engine.runner
    prompts = [[1, 5, 99, 300, 17, 8, 250], [1, 64], [1, *range(100, 140)]]
    seqs = [make_seq(p) for p in prompts]
    for i, seq in enumerate(seqs):
        seq.block_table = [4 * i + j for j in range(4)]
    logits = runner.run(seqs, [len(s) for s in seqs])
    with torch.no_grad():
        expected = torch.stack([hf(torch.tensor([p])).logits[0, -1] for p in prompts])
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.points(0.5)
def test_other_shapes_two_ranks_equal_one_token_for_token(shape_pair, tokenizer):
    """The same shapes through the engine: TP=2 generates TP=1's greedy tokens exactly."""
    _folder, hf, tp1, tp2 = shape_pair
    vocab = hf.config.vocab_size  # the shape's own (random) vocabulary, whatever --model's tokenizer has
    prompts = [[token % vocab for token in p] for p in mixed_prompts(tokenizer, 5, seed=7, low=3, high=50)]
    ours = tp2.generate(prompts, greedy(24))
    reference = tp1.generate(prompts, greedy(24))
    assert [o.outputs[0].token_ids for o in ours] == [o.outputs[0].token_ids for o in reference]


@pytest.mark.points(0.5)
def test_four_ranks_share_each_kv_head(model_dir):
    """The fixture's 2 KV heads on 4 ranks: ranks 0-1 hold KV head 0 and ranks 2-3 KV head 1 (the
    heads their queries read); greedy tokens equal the one-process runner's."""
    skip_unless_splits(model_dir, 4)
    prompts = [[1, 42, 7, 9, 30], [1, 300, 5]]
    one = model_runner.ModelRunner(model_dir, block_size=16, num_kv_blocks=8)
    reference = parallel.greedy_generate(one, prompts, 12)
    four = parallel.TensorParallelRunner(model_dir, block_size=16, num_kv_blocks=8, tensor_parallel_size=4)
    try:
        assert parallel.greedy_generate(four, prompts, 12) == reference
    finally:
        four.close()


@pytest.mark.points(0.5)
def test_workers_stop_on_shutdown_and_when_one_fails(tmp_path, model_dir):
    """``shutdown`` leaves no worker running; a worker that fails (a weight missing from the folder)
    surfaces as an error naming the weight, and no worker is left behind."""
    from safetensors.torch import load_file, save_file

    folder = write_random_llama(tmp_path / "ok", Path(model_dir), seed=3, **SHAPES["8-heads-2-kv-split"])
    llm = start_llm(folder, num_kv_blocks=32, max_model_len=256)
    try:
        pids = llm.engine.runner.pids
        assert len(pids) == 2, "tensor parallelism 2 must start 2 worker processes"
        assert alive(pids) == pids, "both workers must be alive before shutdown"
        assert len(llm.generate([[1, 2, 3]], greedy(4))[0].outputs[0].token_ids) == 4
    finally:
        llm.shutdown()
    assert alive(pids) == []

    broken = tmp_path / "broken"
    broken.mkdir()
    for item in folder.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights = load_file(broken / "model.safetensors")
    del weights["model.layers.1.mlp.down_proj.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    before = set(multiprocessing.active_children())
    with pytest.raises((ValueError, RuntimeError), match=r"layers\.1\.mlp\.down_proj\.weight"):
        start_llm(broken, num_kv_blocks=32, max_model_len=256)
    assert set(multiprocessing.active_children()) <= before
