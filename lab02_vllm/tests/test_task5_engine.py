"""Task 5: the engine: generate, step, sampling and stopping, against transformers."""

import asyncio
import json
import shutil
import time

import pytest
import torch

from .helpers import detokenized, engine, hf_greedy, mixed_prompts, sampling_params, sequence

pytestmark = pytest.mark.task(5)

MAX_TOKENS = 24


def hf_argmax_continuation(model, ids, steps):
    """transformers' argmax, step after step, never stopping (the oracle for ignore_eos)."""
    ids = list(ids)
    with torch.no_grad():
        # leak-check: allowed, a generic loop
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids], device=model.device)).logits[0, -1].argmax()))
    return ids[-steps:]


def greedy(**kwargs):
    return sampling_params.SamplingParams(temperature=0.0, max_tokens=kwargs.pop("max_tokens", MAX_TOKENS), **kwargs)


@pytest.fixture(scope="module")
def llm(model_dir, device):
    return engine.LLM(model_dir, block_size=16, num_kv_blocks=256, max_num_seqs=64, device=device, dtype="float32")


@pytest.fixture(scope="module")
def prompts32(tokenizer):
    return mixed_prompts(tokenizer, 32, seed=5, low=2, high=60)


@pytest.fixture(scope="module")
def hf_outputs(model, prompts32):
    return [hf_greedy(model, ids, MAX_TOKENS) for ids in prompts32]


@pytest.mark.points(1.5)
def test_greedy_32_mixed_prompts_decoded_together_equal_transformers(llm, prompts32, hf_outputs, tokenizer):
    """32 prompts of 2-60 tokens in one generate call: token for token transformers' greedy
    generate (eos included), finish reason "stop" after eos and "length" after max_tokens."""
    outs = llm.generate(prompts32, greedy())
    assert [o.prompt_token_ids for o in outs] == prompts32
    for out, expected, prompt in zip(outs, hf_outputs, prompts32, strict=True):
        completion = out.outputs[0]
        assert out.finished, "the request must be finished"
        assert completion.token_ids == expected, "batched greedy decoding must equal transformers' token ids"
        ended_on_eos = expected[-1] == tokenizer.eos_token_id
        assert completion.finish_reason == ("stop" if ended_on_eos else "length")
        assert completion.text == detokenized(tokenizer, prompt, expected)
    # The other shapes generate takes: one list of token ids is one prompt (not a list of prompts),
    # one string is one prompt; an empty list, or settings of another length, are refused.
    single = llm.generate(prompts32[0], greedy())
    assert len(single) == 1 and single[0].prompt_token_ids == prompts32[0], (
        f"one list of token ids is one prompt: expected 1 output for it, got {len(single)}")
    assert single[0].outputs[0].token_ids == hf_outputs[0]
    text_prompt = tokenizer.decode(prompts32[1], skip_special_tokens=True)
    assert len(llm.generate(text_prompt, greedy(max_tokens=2))) == 1, "one string is one prompt"
    empty = llm.generate("", greedy(max_tokens=2))
    assert len(empty) == 1 and empty[0].prompt_token_ids == tokenizer("").input_ids, (
        "the text '' is one prompt (its tokens are the tokenizer's, a bos here), not an empty list of prompts")
    with pytest.raises(ValueError, match="prompts"):
        llm.generate([], greedy())
    with pytest.raises(ValueError, match="sampling_params"):
        llm.generate(prompts32[:3], [greedy(), greedy()])
    assert not llm.engine.has_unfinished_requests(), "a refused call must leave nothing queued"
    # No settings: the model's generation-config defaults over SamplingParams' own (vLLM's
    # get_default_sampling_params): on the fixture, which sets none but max_new_tokens, that samples.
    free_runs = {tuple(o.outputs[0].token_ids) for o in llm.generate([prompts32[1]] * 12)}
    assert len(free_runs) > 1, "generate with no settings samples at temperature 1.0, as vLLM's does: not greedy"


@pytest.mark.points(1.5)
def test_a_pool_too_small_for_all_forces_preemption_and_changes_nothing(model_dir, device, prompts32, hf_outputs):
    """With a pool holding a fraction of the peak need and a 32-token budget (prompts chunked
    beside the decodes), sequences are preempted and recomputed, and every output is still
    transformers' token for token. A request whose ``max_tokens`` runs past ``max_model_len``
    stops with "length" when prompt + output reach ``max_model_len``."""
    small = engine.LLM(model_dir, block_size=4, num_kv_blocks=30, max_model_len=96, max_num_seqs=32,
                       max_num_batched_tokens=32, device=device, dtype="float32")
    outs = small.generate(prompts32, greedy())
    assert [o.outputs[0].token_ids for o in outs] == hf_outputs
    stats = small.engine.stats
    assert stats.num_preemptions > 0, "a 30-block pool cannot hold 32 sequences: some must be preempted"
    assert stats.kv_cache_usage == 0.0, "the KV cache must be empty once every request finished"
    assert stats.num_running == 0, "no request may stay running"
    assert stats.num_waiting == 0, "no request may stay waiting"
    long_prompt = (prompts32[0] * 96)[:90]
    capped = small.generate([long_prompt], greedy(max_tokens=24, ignore_eos=True))[0].outputs[0]
    assert len(capped.token_ids) == 96 - 90, (
        f"max_model_len=96 counts prompt + output: a 90-token prompt gets 6 tokens, got {len(capped.token_ids)}"
    )
    assert capped.finish_reason == "length", "a sequence that reaches max_model_len tokens stops with 'length'"
    # An 8-token budget: a preempted sequence's recomputation (prompt and outputs so far) takes
    # several chunks, and only the chunk that reaches its last token may sample.
    tiny = engine.LLM(model_dir, block_size=4, num_kv_blocks=12, max_model_len=48, max_num_seqs=8,
                      max_num_batched_tokens=8, device=device, dtype="float32")
    short = [i for i, p in enumerate(prompts32) if len(p) <= 16]
    outs = tiny.generate([prompts32[i] for i in short], greedy())
    assert tiny.engine.stats.num_preemptions > 0, f"a 12-block pool cannot hold {len(short)} growing sequences"
    for i, out in zip(short, outs, strict=True):
        assert out.outputs[0].token_ids == hf_outputs[i], (
            "recomputed in 8-token chunks after a preemption, a sequence must sample only once all its tokens "
            "(prompt and earlier outputs) are computed again: its tokens must still be transformers'")


@pytest.mark.points(1)
def test_stop_conditions_eos_max_tokens_stop_ids_stop_strings_min_tokens(llm, model, tokenizer, model_dir, device,
                                                                        tmp_path):
    """eos ends with "stop" (unless ignore_eos), stop_reason None even when stop_token_ids lists it
    (vLLM checks its eos_token_id first); a stop token id ends right after it; a stop
    string cuts the text before it; min_tokens suppresses eos like transformers' min_new_tokens."""
    ids = tokenizer("The cat").input_ids
    free = hf_greedy(model, ids, 60)
    eos = tokenizer.eos_token_id
    if free[-1] != eos or len(free) <= 6:
        pytest.skip("needs the trained fixture (it ends this sentence with eos after a few words)")
    out = llm.generate([ids], greedy(max_tokens=60))[0].outputs[0]
    assert out.token_ids == free and out.finish_reason == "stop" and out.stop_reason is None
    listed = llm.generate([ids], greedy(max_tokens=60, stop_token_ids=[eos]))[0].outputs[0]
    assert listed.token_ids == free and (listed.finish_reason, listed.stop_reason) == ("stop", None), (
        "vLLM's check_stop tests the tokenizer's eos before stop_token_ids: stop_reason None even when listed, "
        f"got {listed.stop_reason}")
    listed = llm.generate([ids], greedy(max_tokens=60, stop_token_ids=[eos], ignore_eos=True))[0].outputs[0]
    assert listed.token_ids == free and (listed.finish_reason, listed.stop_reason) == ("stop", eos), (
        "under ignore_eos vLLM has no eos_token_id: eos listed in stop_token_ids stops as a stop token, its id kept")
    forced = llm.generate([ids], greedy(max_tokens=len(free) + 5, ignore_eos=True))[0].outputs[0]
    assert forced.finish_reason == "length" and len(forced.token_ids) == len(free) + 5
    assert forced.token_ids[:len(free)] == free, "ignore_eos keeps going after eos (eos stays in the output)"
    assert forced.token_ids[len(free):] == hf_argmax_continuation(model, ids + free, 5)
    capped = llm.generate([ids], greedy(max_tokens=3))[0].outputs[0]
    assert capped.token_ids == free[:3] and capped.finish_reason == "length"
    stop_id = free[4]
    first = free.index(stop_id)
    by_id = llm.generate([ids], greedy(max_tokens=60, stop_token_ids=[stop_id]))[0].outputs[0]
    assert by_id.token_ids == free[:first + 1] and by_id.finish_reason == "stop" and by_id.stop_reason == stop_id
    last = llm.generate([ids], greedy(max_tokens=first + 1, stop_token_ids=[stop_id]))[0].outputs[0]
    assert (last.finish_reason, last.stop_reason) == ("stop", stop_id), (
        f"a stop token that is also the last allowed one ends with 'stop' (vLLM checks max_tokens after), got "
        f"{(last.finish_reason, last.stop_reason)}")
    text = detokenized(tokenizer, ids, free)
    stop = text[len(text) // 2:len(text) // 2 + 3]
    by_text = llm.generate([ids], greedy(max_tokens=60, stop=[stop, "\x00never"]))[0].outputs[0]
    assert by_text.finish_reason == "stop" and by_text.stop_reason == stop
    assert by_text.text == text[:text.index(stop)]
    early = text[:3]  # found at once, but not before min_tokens outputs
    late_stop = llm.generate([ids], greedy(max_tokens=60, stop=early, min_tokens=len(free) - 2))[0].outputs[0]
    assert len(late_stop.token_ids) >= len(free) - 2, (
        f"min_tokens must hold back the stop string: at least {len(free) - 2} tokens, got {len(late_stop.token_ids)}"
    )
    assert late_stop.token_ids == free[:len(late_stop.token_ids)], (
        "the tokens before the stop must equal the unstopped greedy run"
    )
    assert late_stop.text.startswith(early), "only the text added since the last step is searched (as vLLM)"
    minimum = len(free) + 3
    late = llm.generate([ids], greedy(max_tokens=minimum + 10, min_tokens=minimum))[0].outputs[0]
    expected = hf_greedy(model, ids, minimum + 10, min_new_tokens=minimum)
    assert late.token_ids == expected, (
        "min_tokens must suppress EOS: the tokens must equal transformers' min_new_tokens run"
    )
    assert len(late.token_ids) > minimum, f"min_tokens: more than {minimum} tokens expected, got {len(late.token_ids)}"
    # A model whose generation config lists a second eos id (as Llama 3's end of turn): transformers'
    # generate stops there too; vLLM moves it into stop_token_ids, so its stop_reason is that id. And
    # generate given no settings takes the model's defaults (vLLM's get_default_sampling_params).
    second = next(t for k, t in enumerate(free) if k >= 3 and t not in free[:k] and t != eos)
    folder = tmp_path / "two-eos"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(eos_token_id=[eos, second], max_new_tokens=3, top_k=1)
    (folder / "generation_config.json").write_text(json.dumps(config))
    two = engine.LLM(folder, block_size=16, num_kv_blocks=8, max_model_len=128, device=device, dtype="float32")
    out = two.generate([ids], greedy(max_tokens=60))[0].outputs[0]
    assert out.token_ids == hf_greedy(model, ids, 60, eos_token_id=[eos, second]), (
        "a second eos id in the generation config must stop the output, as transformers' generate stops")
    assert (out.finish_reason, out.stop_reason) == ("stop", second), (
        "vLLM reports a generation config's other eos id as the stop_reason, got "
        f"{(out.finish_reason, out.stop_reason)}")
    banned = two.generate([ids], greedy(max_tokens=12, min_tokens=10))[0].outputs[0]
    assert banned.token_ids == hf_greedy(model, ids, 12, eos_token_id=[eos, second], min_new_tokens=10), (
        "under min_tokens every eos id of the model is banned, the generation config's second one too (transformers' "
        "min_new_tokens bans them all; vLLM's all_stop_token_ids holds them)")
    default = two.generate([ids])[0].outputs[0]
    assert (default.token_ids, default.finish_reason) == (free[:3], "length"), (
        "generate with no settings takes the model's generation config (max_new_tokens 3, top_k 1 here), as vLLM's "
        f"LLM.generate does: expected {free[:3]} and 'length', got {default.token_ids} and {default.finish_reason!r}")


@pytest.mark.points(1)
def test_seeded_sampling_is_reproducible_whatever_else_is_in_the_batch(llm, tokenizer, prompts32):
    """The same seed gives the same tokens alone and inside a batch of other requests (seeded or
    not); different seeds give different tokens; top_k=1 is greedy."""
    ids = tokenizer("Ana lives in").input_ids
    params = sampling_params.SamplingParams(temperature=1.0, max_tokens=20, seed=1234, ignore_eos=True)
    alone = llm.generate([ids], params)[0].outputs[0].token_ids
    others = [sampling_params.SamplingParams(temperature=0.9, max_tokens=n, seed=n if n % 2 else None)
              for n in range(3, 12)]
    mixed = llm.generate([*prompts32[:9], ids], [*others, params])[-1].outputs[0].token_ids
    assert mixed == alone, "a seeded request's tokens must not depend on the requests before it in the batch"
    first = llm.generate([ids, *prompts32[:9]], [params, *others])[0].outputs[0].token_ids
    assert first == alone, ("a seeded request's tokens must not depend on the requests after it in the batch: its "
                            "generator draws for its own row only")
    other_seed = llm.generate([ids], params.clone(seed=99))[0].outputs[0].token_ids
    assert other_seed != alone
    top1 = llm.generate([ids], params.clone(top_k=1))[0].outputs[0].token_ids
    assert top1 == llm.generate([ids], greedy(max_tokens=20, ignore_eos=True))[0].outputs[0].token_ids
    # Requests without a seed draw from the engine's generator: LLM(seed=...) makes them repeatable,
    # whatever torch's global generator has done meanwhile.
    unseeded = sampling_params.SamplingParams(temperature=1.0, max_tokens=20, ignore_eos=True)
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        fresh = engine.LLM(llm.engine.model_dir, block_size=16, num_kv_blocks=8, max_model_len=64, seed=7,
                           device=llm.engine.device, dtype="float32")
        runs.append(fresh.generate([ids], unseeded)[0].outputs[0].token_ids)
    assert runs[0] == runs[1], (
        "two engines made with seed=7 must give an unseeded request the same tokens: sample_tokens must draw "
        "from the engine's generator, not torch's global one")


@pytest.mark.points(1)
def test_sampled_tokens_follow_temperature_top_k_and_top_p(llm, model, tokenizer):
    """400 one-token samples of one prompt: their frequencies match softmax(logits / T) restricted
    to the top-k / top-p set computed from transformers' logits (within sampling noise)."""
    ids = tokenizer("The cat").input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=model.device)).logits[0, -1].float().cpu()
    cases = [dict(temperature=0.7), dict(temperature=1.3, top_k=5), dict(temperature=1.0, top_p=0.6)]
    for case in cases:
        params = [sampling_params.SamplingParams(max_tokens=1, seed=s, ignore_eos=True, **case) for s in range(400)]
        tokens = [o.outputs[0].token_ids[0] for o in llm.generate([ids] * 400, params)]
        scores = logits / case["temperature"]
        probs = scores.softmax(-1)
        keep = torch.ones_like(probs, dtype=torch.bool)
        if "top_k" in case:
            keep &= scores >= scores.topk(case["top_k"]).values[-1]
        if "top_p" in case:
            order = probs.argsort(descending=True)
            before = probs[order].cumsum(0) - probs[order]
            keep[order[before > case["top_p"]]] = False
        target = torch.where(keep, probs, 0.0)
        target /= target.sum()
        seen = torch.bincount(torch.tensor(tokens), minlength=probs.numel()).float() / len(tokens)
        assert all(keep[t] for t in tokens), f"{case}: a token outside the allowed set was sampled"
        assert (seen - target).abs().max() < 0.09, f"{case}: frequencies {seen.topk(4)} vs {target.topk(4)}"


#: Rows that share a batch with the measured ones in the test below, each with settings of its own
#: ("mixed": every filter somewhere, a top_k larger than the vocabulary, a temperature so small it
#: is greedy; "plain": no filter, so that the measured rows' own top_k or top_p is the only one in
#: the batch).
OTHER_SETTINGS = {
    "mixed": [dict(temperature=0.0), dict(temperature=0.3, top_k=2), dict(temperature=1.9, top_p=0.95),
              dict(temperature=1.0, top_k=6, top_p=0.5), dict(temperature=0.0, top_k=1, top_p=0.1),
              dict(temperature=0.8, top_k=1000), dict(temperature=1e-6)],  # below vLLM's 1e-5: greedy
    "plain": [dict(temperature=0.0), dict(temperature=1.0), dict(temperature=0.6)],
}

#: Four tokens of probability exactly 1/4: top_p = 0.5 is reached by two of them, and keeps two.
TIED = [0.0, float("-inf"), 0.0, float("-inf"), 0.0, float("-inf"), 0.0, float("-inf")]


@pytest.mark.points(1)
@pytest.mark.parametrize("temperature,top_k,top_p,others,tied,shift", [
    (2.0, 0, 0.6, "mixed", False, 0.0), (0.5, 0, 0.9, "mixed", False, 0.0), (1.5, 3, 0.7, "mixed", False, 0.0),
    (0.7, 4, 1.0, "mixed", False, 0.0), (1.0, 0, 0.5, "mixed", True, 0.0),
    (1.5, 3, 1.0, "plain", False, 0.0), (1.0, 0, 0.6, "plain", False, 0.0), (0.5, 0, 1.0, "plain", False, 45.0)])
def test_sample_tokens_warps_as_transformers_temperature_then_top_k_then_top_p(temperature, top_k, top_p, others,
                                                                              tied, shift):
    """sample_tokens on fixed logits, 1500 rows, each between two rows of other settings (greedy
    ones among them; with filters of their own, or none) and other logits: the measured rows'
    tokens follow the distribution transformers' TemperatureLogitsWarper, TopKLogitsWarper and
    TopPLogitsWarper make, in that order (transformers' and vLLM's: the nucleus is cut on the
    *scaled* distribution), each row under its own settings; the greedy rows among them give
    their own row's argmax. With tied probabilities the nucleus is the smallest set that reaches
    top_p, as transformers' and vLLM's (which of the tied tokens it keeps is the sort's choice).
    Logits shifted by 45 at temperature 0.5 (scores near 94, past what exp holds in float32) give
    the same distribution: a softmax does not care where the logits sit."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.tensor(TIED if tied else [2.0, 1.0, 0.0, -0.4, -1.0, 0.5, -2.0, 1.5]) + shift
    warpers = [TemperatureLogitsWarper(temperature)]
    warpers += [TopKLogitsWarper(top_k)] if top_k else []
    warpers += [TopPLogitsWarper(top_p)] if top_p < 1.0 else []
    target = LogitsProcessorList(warpers)(None, logits[None].clone())[0].softmax(-1)
    rows = 1500
    params = sampling_params.SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, max_tokens=1)
    seqs, batch, measured = [], [], []
    generator = torch.Generator().manual_seed(0)
    for i in range(3 * rows):
        if i % 3 == 1:
            measured.append(len(seqs))
            seqs.append(sequence.Sequence("r", [1], params))
            batch.append(logits)
        else:  # another request's row: other settings, its logits in another order
            other = OTHER_SETTINGS[others][i % len(OTHER_SETTINGS[others])]
            seqs.append(sequence.Sequence("o", [1], sampling_params.SamplingParams(max_tokens=1, **other)))
            batch.append(logits[torch.randperm(logits.numel(), generator=generator)])
    batch = torch.stack(batch)
    before = batch.clone()
    tokens = engine.sample_tokens(batch, seqs, {3}, torch.Generator().manual_seed(0))
    assert torch.equal(batch, before), "sample_tokens must not modify the logits"
    for index, seq in enumerate(seqs):
        if seq.params.greedy:
            assert tokens[index] == int(batch[index].argmax()), (
                f"row {index} is greedy: its argmax, whatever the others do")
    tokens = [tokens[row] for row in measured]
    seen = torch.bincount(torch.tensor(tokens), minlength=logits.numel()).float() / rows
    if tied:
        kept = int((target > 0).sum())
        assert len(set(tokens)) == kept, (f"{len(set(tokens))} tokens drawn ({seen.tolist()}): transformers' top-p "
                                          f"keeps {kept} of the four tied ones (the smallest set that reaches top_p)")
        assert (seen.sort().values - target.sort().values).abs().max() < 0.05, f"frequencies {seen.tolist()}"
        return
    outside = [t for t in set(tokens) if target[t] == 0]
    kept = target.nonzero().flatten().tolist()
    assert not outside, (f"tokens {outside} drawn, outside transformers' kept set {kept} for these rows' own "
                         "settings (each row keeps its own temperature, top_k and top_p)")
    assert (seen - target).abs().max() < 0.05, f"frequencies {seen.tolist()} vs transformers' {target.tolist()}"


@pytest.mark.points(0.5)
def test_step_streams_incremental_outputs_and_abort_frees_blocks_at_once(llm, tokenizer):
    """add_request / step(): each step returns the requests that got a token, with the text so
    far; a finished request appears once; abort frees its blocks at once. generate() with a bad
    prompt among good ones queues nothing."""
    eng = llm.engine
    eng.add_request("a", "The cat", greedy(max_tokens=6, ignore_eos=True))
    eng.add_request("b", '{"name": "', greedy(max_tokens=30, ignore_eos=True))
    outputs_a, first_arrived = [], None
    for _ in range(100):
        outputs_a += [o for o in eng.step() if o.request_id == "a"]
        if outputs_a and first_arrived is None:
            first_arrived = time.monotonic()
        if outputs_a and outputs_a[-1].finished:
            break
    assert [len(o.outputs[0].token_ids) for o in outputs_a] == [1, 2, 3, 4, 5, 6]
    assert [o.finished for o in outputs_a] == [False] * 5 + [True]
    first_times = {o.metrics.first_token_time for o in outputs_a}
    assert len(first_times) == 1 and min(first_times) <= first_arrived, (
        f"first_token_time is the time of the first token, set once: got {sorted(first_times)}")
    for o in outputs_a:
        assert o.outputs[0].text == detokenized(tokenizer, o.prompt_token_ids, o.outputs[0].token_ids)
    assert eng.has_unfinished_requests(), "the request is still running"
    assert eng.kv_cache_usage > 0, "a running request holds KV cache blocks"
    final = eng.abort("b")
    assert final.finished and final.outputs[0].finish_reason == "abort"
    assert eng.kv_cache_usage == 0.0, "abort must free the request's blocks at once"
    assert not eng.has_unfinished_requests(), "an aborted request is no longer unfinished"
    assert eng.step() == [], "step() with nothing to do returns []"
    with pytest.raises(ValueError, match="prompt"):
        llm.generate(["The cat", "x" * 10_000], greedy())
    assert not eng.has_unfinished_requests(), "nothing is left unfinished"
    assert eng.kv_cache_usage == 0.0, "the KV cache is empty"
    # A 20-token prompt through an 8-token budget: two steps that only compute prompt chunks (no
    # output), then its first token; vLLM's counters (stats) count what ran, not idle calls.
    chunky = engine.LLMEngine(eng.model_dir, block_size=4, num_kv_blocks=16, max_model_len=32, max_num_seqs=2,
                              max_num_batched_tokens=8, device=eng.device, dtype="float32")
    assert chunky.step() == [] and chunky.stats.num_steps == 0, "an idle step() runs nothing and counts nothing"
    prompt = (tokenizer("The cat sat on the mat").input_ids * 20)[:20]
    chunky.add_request("c", prompt, greedy(max_tokens=3, ignore_eos=True))
    assert [chunky.step(), chunky.step()] == [[], []], "a step that only computed prompt chunks reports nothing"
    third = chunky.step()
    assert [(o.request_id, len(o.outputs[0].token_ids)) for o in third] == [("c", 1)]
    counts = (chunky.stats.num_steps, chunky.stats.prefill_tokens_computed, chunky.stats.generation_tokens)
    assert counts == (3, 20, 1), (
        "after three steps (8 + 8 + 4 prompt tokens, then the first token): steps, prefill tokens computed and "
        f"generation tokens must be (3, 20, 1), got {counts}")
    while not third[-1].finished:
        third = chunky.step()
    metrics = third[-1].metrics
    assert metrics.finished_time is not None and metrics.finished_time >= metrics.first_token_time, (
        f"a finished request's metrics carry its finished_time, got {metrics.finished_time}")
    assert chunky.stats.num_requests_finished == 1, "a finished request is counted (vLLM's request_success)"


@pytest.mark.points(0.5)
def test_async_engine_streams_two_requests_at_once(llm, tokenizer):
    """AsyncLLMEngine: two concurrent streams; texts grow; each ends finished with generate's text."""
    expected = [o.outputs[0].text for o in llm.generate(["The cat", "Once"], greedy(max_tokens=12, ignore_eos=True))]

    async def collect(aengine, prompt, request_id):
        texts = []
        async for out in aengine.generate(prompt, greedy(max_tokens=12, ignore_eos=True), request_id):
            texts.append(out.outputs[0].text)
            last = out
        assert last.finished
        return texts

    async def main():
        aengine = engine.AsyncLLMEngine.from_engine(llm.engine)
        try:
            return await asyncio.gather(collect(aengine, "The cat", "s1"), collect(aengine, "Once", "s2"))
        finally:
            await aengine.shutdown()

    results = asyncio.run(main())
    for texts, text in zip(results, expected, strict=True):
        assert texts[-1] == text, "the streamed text must join to the full completion"
        assert len(texts) == 12, f"expected 12 streamed outputs, got {len(texts)}"
        assert all(texts[i + 1].startswith(texts[i]) for i in range(len(texts) - 1)), "a stream's text only grows"


@pytest.mark.scaffold
def test_bad_input_is_refused_before_any_work(model_dir, tmp_path):
    """Given code: a pool too small for one sequence, a prompt as long as max_model_len, an unknown
    or bad SamplingParams field, a folder that is not a model, a token budget below max_num_seqs
    (or, with chunked prefill off, below max_model_len; with it on a longer prompt is chunked):
    ValueError naming the argument, in vLLM's words."""
    with pytest.raises(ValueError, match="num_kv_blocks"):
        engine.LLM(model_dir, block_size=16, num_kv_blocks=3, max_model_len=128, device="cpu")
    with pytest.raises(ValueError, match="max_tokens"):
        sampling_params.SamplingParams(max_tokens=0)
    with pytest.raises(ValueError, match="max_token"):
        sampling_params.SamplingParams(max_token=5)
    with pytest.raises(ValueError, match="model"):
        engine.LLM(tmp_path / "missing", device="cpu")
    with pytest.raises(ValueError, match=r"max_num_batched_tokens \(8\) must be greater than or equal to max_num_seqs"):
        engine.LLM(model_dir, max_num_batched_tokens=8, max_num_seqs=16, device="cpu")
    with pytest.raises(ValueError, match=r"max_num_batched_tokens \(64\) is smaller than max_model_len \(128\)"):
        engine.LLM(model_dir, max_num_batched_tokens=64, max_num_seqs=4, max_model_len=128,
                   enable_chunked_prefill=False, device="cpu")
    # Requests that could never be sampled are refused when added, never a crash in a step.
    small = engine.LLMEngine(model_dir, block_size=16, num_kv_blocks=8, max_model_len=64, device="cpu")
    eos = small.tokenizer.eos_token_id
    with pytest.raises(ValueError, match="Requested sample logprobs of 100000, which is greater than max allowed"):
        small.add_request("a", [1, 5], sampling_params.SamplingParams(logprobs=100_000))
    with pytest.raises(ValueError, match="allowed_token_ids"):
        small.add_request("b", [1, 5], sampling_params.SamplingParams(allowed_token_ids=[eos], min_tokens=1))
    small.add_request("c", [1, 5], sampling_params.SamplingParams(allowed_token_ids=[eos, 7], min_tokens=1))
    assert list(small.requests) == ["c"], "only the request that can be sampled is added"


@pytest.mark.points(0.5)
def test_min_tokens_bans_the_stop_token_ids_as_well_as_eos():
    """Before ``min_tokens`` outputs neither eos nor a ``stop_token_ids`` entry can be picked (vLLM
    bans ``SamplingParams.all_stop_token_ids``: the stop ids plus eos, eos even under
    ``ignore_eos``), greedy and sampled rows alike; the oracle is transformers'
    ``MinNewTokensLengthLogitsProcessor`` given all of them."""
    from transformers import MinNewTokensLengthLogitsProcessor

    eos, stop_id = 3, 5
    logits = torch.tensor([0.0, 1.0, 0.5, 4.0, -1.0, 9.0, 2.0, -0.5])  # stop id, then eos, most likely
    oracle = MinNewTokensLengthLogitsProcessor(0, 2, eos_token_id=[eos, stop_id])
    allowed = oracle(torch.zeros(1, 0, dtype=torch.long), logits[None].clone())[0]
    expected = int(allowed.argmax())
    rows = [sampling_params.SamplingParams(temperature=0.0, min_tokens=2, stop_token_ids=[stop_id]),
            sampling_params.SamplingParams(temperature=1.0, min_tokens=2, stop_token_ids=[stop_id], seed=0),
            sampling_params.SamplingParams(temperature=0.0, min_tokens=2, ignore_eos=True),
            sampling_params.SamplingParams(temperature=1.0, min_tokens=2, ignore_eos=True, seed=0)]
    seqs = [sequence.Sequence("r", [1], params) for params in rows * 200]
    tokens = engine.sample_tokens(logits.expand(len(seqs), -1).clone(), seqs, {eos},
                                  torch.Generator().manual_seed(0))
    assert tokens[0] == expected, f"greedy with min_tokens picked {tokens[0]}, transformers {expected}"
    assert tokens[2] == stop_id, f"greedy under ignore_eos picked {tokens[2]}: only eos is banned there, not id 5"
    drawn = set(tokens[0::4]) | set(tokens[1::4])
    assert not drawn & {eos, stop_id}, f"drew {sorted(drawn & {eos, stop_id})} before min_tokens outputs"
    assert eos not in set(tokens[2::4]) | set(tokens[3::4]), (
        "drew eos before min_tokens outputs under ignore_eos: vLLM bans it there too (its all_stop_token_ids "
        "holds eos whatever ignore_eos says)")
    # Once a sequence has min_tokens outputs the ban is lifted: eos, now the most likely, is drawn,
    # also beside rows of the same batch still under their min_tokens (whose ban is their own).
    peaked = torch.tensor([0.0, 1.0, 0.5, 9.0, -1.0, 4.0, 2.0, -0.5])
    done = [sequence.Sequence("r", [1], sampling_params.SamplingParams(temperature=1.0, min_tokens=2, seed=s))
            for s in range(50)]
    for seq in done:
        seq.append_token(6), seq.append_token(6)
    fresh = [sequence.Sequence("f", [1], sampling_params.SamplingParams(temperature=t, min_tokens=2, seed=s))
             for s, t in enumerate([0.0, 1.0] * 25)]
    batch = [seq for pair in zip(done, fresh, strict=True) for seq in pair]
    tokens = engine.sample_tokens(peaked.expand(len(batch), -1).clone(), batch, {eos},
                                  torch.Generator().manual_seed(0))
    assert tokens[0::2].count(eos) > 40, (
        f"eos drawn {tokens[0::2].count(eos)} times in 50 rows that already have min_tokens (2) outputs: the "
        "ban holds only while a sequence has fewer than min_tokens outputs, each row by its own count")
    assert eos not in tokens[1::2], "rows under their min_tokens must not draw eos, whatever the rows beside them"


@pytest.mark.vllm
@pytest.mark.points(0.5)
def test_stop_strings_under_min_tokens_as_real_vllm(vllm_worker, llm, tokenizer):
    """Stop strings against real vLLM's offline ``LLM.generate``, greedy, with min_tokens 0 to 3:
    the same tokens, text, finish reason and stop reason. vLLM searches for a stop string only in
    the text that comes after the first ``min_tokens`` tokens (a stop string completed by one of
    those is not a stop)."""
    prompts = [tokenizer(p).input_ids for p in ("The cat", "Once upon a time", "A language model")]
    for min_tokens in range(4):
        for stop in ([" "], ["e", "a"]):
            theirs = vllm_worker.generate(prompts, max_tokens=12, stop=stop, min_tokens=min_tokens)
            ours = llm.generate(prompts, greedy(max_tokens=12, stop=stop, min_tokens=min_tokens))
            for index, out in enumerate(o.outputs[0] for o in ours):
                case = f"prompt {index}, stop={stop}, min_tokens={min_tokens}"
                assert out.token_ids == theirs["token_ids"][index], f"{case}: vLLM's tokens differ"
                assert out.text == theirs["texts"][index], f"{case}: vLLM's text differs"
                assert out.finish_reason == theirs["finish_reasons"][index], f"{case}: vLLM's finish reason differs"
                assert out.stop_reason == theirs["stop_reasons"][index], f"{case}: vLLM's stop reason differs"
    # The fixture ends "The cat ..." with eos: under ignore_eos and a min_tokens past it, vLLM bans eos there.
    ids = prompts[0]
    theirs = vllm_worker.generate([ids], max_tokens=40, ignore_eos=True, min_tokens=39)
    ours = llm.generate([ids], greedy(max_tokens=40, ignore_eos=True, min_tokens=39))[0].outputs[0]
    assert ours.token_ids == theirs["token_ids"][0], (
        "ignore_eos with min_tokens: vLLM still bans eos before min_tokens outputs (its all_stop_token_ids holds "
        "eos whatever ignore_eos says), so its tokens differ from an ignore_eos run where eos came out")


@pytest.mark.points(0.5)
def test_a_stop_string_that_straddles_two_tokens_stops_the_output(llm, model, tokenizer):
    """A stop string whose first character came with one token and its last with the next is
    found when the second arrives (vLLM searches the new text plus ``len(stop) - 1`` characters
    before it): the output ends there, its text cut before the stop string."""
    ids = tokenizer("Once upon a time").input_ids
    free = hf_greedy(model, ids, 30)
    texts = [detokenized(tokenizer, ids, free[:n]) for n in range(len(free) + 1)]
    text = texts[-1]
    cuts = [len(texts[n]) for n in range(1, len(free)) if 0 < len(texts[n]) < len(text) - 1
            and texts[n + 1].startswith(texts[n])]
    stops = [text[cut - 1:cut + 1] for cut in cuts if text.index(text[cut - 1:cut + 1]) == cut - 1]  # first there
    if not stops:
        pytest.skip("needs the trained fixture (a greedy text with a two-character stop across a token boundary)")
    stop = stops[len(stops) // 2]
    out = llm.generate([ids], greedy(max_tokens=30, ignore_eos=True, stop=[stop]))[0].outputs[0]
    assert out.finish_reason == "stop" and out.stop_reason == stop
    assert out.text == text[:text.index(stop)]


@pytest.mark.points(0.5)
def test_sampling_honours_logit_bias_and_allowed_token_ids_and_reports_raw_logprobs():
    """``logit_bias`` and ``allowed_token_ids`` change what is sampled (the given
    ``apply_logits_processors`` hands ``sample_tokens`` the changed rows, as vLLM's logits
    processors run before its sampler), while the logprobs recorded stay the model's: vLLM's
    default ``logprobs_mode`` is ``raw_logprobs``, taken before any processing."""
    logits = torch.tensor([0.0, 1.0, 0.5, 4.0, -1.0, 9.0, 2.0, -0.5])
    raw = torch.log_softmax(logits, dim=-1)
    SP = sampling_params.SamplingParams
    rows = [SP(temperature=0.0, logit_bias={"4": 100}, logprobs=1),  # forced to the least likely but one
            SP(temperature=0.0, allowed_token_ids=[0, 2], logprobs=0),
            SP(temperature=1.0, allowed_token_ids=[1, 6, 7], seed=0),
            SP(temperature=0.0)]
    seqs = [sequence.Sequence("r", [1], params) for params in rows * 100]
    batch = logits.expand(len(seqs), -1).clone()
    tokens = engine.sample_tokens(batch, seqs, {3}, torch.Generator().manual_seed(0))
    assert torch.equal(batch, logits.expand(len(seqs), -1)), "sample_tokens must not modify the logits"
    assert tokens[0] == 4, f"a +100 logit_bias on token 4 must win greedy, got {tokens[0]}"
    assert tokens[1] == 2, f"greedy among allowed_token_ids [0, 2] is 2, got {tokens[1]}"
    assert tokens[3] == 5, "a request without bias or allowed ids must be untouched by another's"
    drawn = set(tokens[2::4])
    assert drawn <= {1, 6, 7}, f"drew {sorted(drawn - {1, 6, 7})} outside allowed_token_ids"
    assert len(drawn) > 1, "sampling among allowed_token_ids must still sample"
    first, second = seqs[0].logprobs[0], seqs[1].logprobs[0]
    assert first[4] == pytest.approx(float(raw[4])), "the chosen token's logprob is the raw one, not the biased"
    assert first[5] == pytest.approx(float(raw[5])), "the top-1 entry is the model's most likely token"
    assert second == {2: pytest.approx(float(raw[2]))}
    # The same in a batch where every row is greedy (no sampled row to force the per-row path).
    for with_logprobs in (False, True):
        greedy_rows = [SP(temperature=0.0, logit_bias={"4": 100}), SP(temperature=0.0, allowed_token_ids=[0, 2]),
                       SP(temperature=0.0, logprobs=2 if with_logprobs else None), SP(temperature=0.0)]
        seqs = [sequence.Sequence("g", [1], params) for params in greedy_rows]
        tokens = engine.sample_tokens(logits.expand(4, -1).clone(), seqs, {3}, torch.Generator().manual_seed(0))
        assert tokens == [4, 2, 5, 5], (
            f"an all-greedy batch must still take the argmax of the processed rows (logit_bias, allowed_token_ids): "
            f"expected [4, 2, 5, 5], got {tokens}")
    assert seqs[2].logprobs == [{5: pytest.approx(float(raw[5])), 3: pytest.approx(float(raw[3]))}], (
        f"a greedy request with logprobs=2 records its token and the top 2 even when no row samples, got "
        f"{seqs[2].logprobs}")
    # Rows of their own logits, some asking for logprobs (different counts, greedy and sampled), some
    # not: each asking row records its own token and its own row's top ids with its own raw values.
    generator = torch.Generator().manual_seed(1)
    mixed_logits = torch.randn(12, 8, generator=generator) * 2
    asks = [None, 3, 0, None, 1, 5, None, 2, 3, None, 0, 4]
    seqs = [sequence.Sequence("l", [1], SP(temperature=0.0 if i % 3 == 0 else 1.0, logprobs=n, seed=i))
            for i, n in enumerate(asks)]
    tokens = engine.sample_tokens(mixed_logits.clone(), seqs, {3}, torch.Generator().manual_seed(0))
    for row, (seq, n) in enumerate(zip(seqs, asks, strict=True)):
        own = torch.log_softmax(mixed_logits[row], dim=-1)
        if n is None:
            assert seq.logprobs == [], f"row {row} asked for no logprobs, got {seq.logprobs}"
            continue
        expected = {tokens[row]: float(own[tokens[row]]), **{t: float(own[t]) for t in own.topk(n).indices.tolist()}}
        assert seq.logprobs == [pytest.approx(expected)], (
            f"row {row} (logprobs={n}) must record its token and its own top {n} from its own raw row: expected "
            f"{expected}, got {seq.logprobs}")
    # Tokens tied with the k-th largest logit stay (vLLM's and transformers' threshold keeps them).
    from transformers import TopKLogitsWarper

    tied = torch.tensor([1.0, 1.0, 0.0, 0.0, -1.0, 1.0, -2.0, 0.5])
    kept = TopKLogitsWarper(2)(None, tied[None].clone())[0].isfinite().nonzero().flatten().tolist()
    rows = [sequence.Sequence("t", [1], SP(temperature=1.0, top_k=2, seed=s)) for s in range(200)]
    drawn = set(engine.sample_tokens(tied.expand(200, -1).clone(), rows, {3}, torch.Generator().manual_seed(0)))
    assert drawn == set(kept), f"top_k=2 with three tokens tied at the top keeps all three {kept}, drew {sorted(drawn)}"
    # top_k above the vocabulary keeps every token (vLLM treats it as off), it does not fail.
    wide = [sequence.Sequence("k", [1], SP(temperature=1.0, top_k=1000, seed=s)) for s in range(100)]
    drawn = set(engine.sample_tokens(logits.expand(100, -1).clone(), wide, {3}, torch.Generator().manual_seed(0)))
    assert len(drawn) > 1, f"top_k=1000 over 8 tokens keeps them all: sampling must still vary, drew {drawn}"
