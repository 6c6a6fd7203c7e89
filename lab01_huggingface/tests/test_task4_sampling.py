"""Task 4: temperature, top-k, top-p, min-p, repetition penalty, and seeded sampling.

The oracles are transformers' own logits processors, run on the same random logits."""

import pytest
import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .helpers import PROMPTS, hf_greedy, sampling

pytestmark = pytest.mark.task(4)

SEEDS = [0, 1, 2]


def random_logits(seed: int, batch: int = 4, vocab: int = 512, scale: float = 3.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, vocab, generator=generator) * scale


def assert_same_filtering(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs)), "a different set of tokens was filtered out"
    finite = ~torch.isinf(theirs)
    torch.testing.assert_close(ours[finite], theirs[finite])


def run_unchanged(function, logits: torch.Tensor, *args) -> torch.Tensor:
    """Call a filter and check it left its input alone."""
    before = logits.clone()
    result = function(logits, *args)
    assert torch.equal(logits, before), f"{function.__name__} changed its input tensor in place"
    return result


@pytest.mark.points(1)
@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_temperature_matches_transformers(temperature):
    logits = random_logits(0)
    ours = run_unchanged(sampling.apply_temperature, logits, temperature)
    torch.testing.assert_close(ours, TemperatureLogitsWarper(temperature)(None, logits.clone()))


@pytest.mark.points(2)
@pytest.mark.parametrize("k", [1, 5, 50, 10_000])
@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_matches_transformers(k, seed):
    logits = random_logits(seed)
    logits[0, :8] = logits[0].max()  # eight tokens tied for first: top-k keeps them all, as transformers does
    logits[1, :3] = logits[1].topk(5).values[-1]  # three more tokens tied with row 1's fifth largest
    ours = run_unchanged(sampling.top_k_filter, logits, k)
    assert_same_filtering(ours, TopKLogitsWarper(top_k=k)(None, logits.clone()))


@pytest.mark.points(2)
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_top_p_matches_transformers(p, seed):
    logits = random_logits(seed)
    ours = run_unchanged(sampling.top_p_filter, logits, p)
    assert_same_filtering(ours, TopPLogitsWarper(top_p=p)(None, logits.clone()))


@pytest.mark.points(2)
@pytest.mark.parametrize("min_p", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_min_p_matches_transformers(min_p, seed):
    logits = random_logits(seed)
    ours = run_unchanged(sampling.min_p_filter, logits, min_p)
    if min_p == 0.0:  # transformers refuses 0 (no-op); the identity is the answer
        assert torch.equal(ours, logits)
        return
    assert_same_filtering(ours, MinPLogitsWarper(min_p=min_p)(None, logits.clone()))


@pytest.mark.points(2)
@pytest.mark.parametrize("penalty", [0.7, 1.3, 2.0])
def test_repetition_penalty_matches_transformers(penalty):
    """Seen tokens (some seen several times: penalised once) move down, whatever their sign."""
    logits = random_logits(3)
    previous = torch.randint(0, 512, (4, 20), generator=torch.Generator().manual_seed(4))
    previous[:, 10:] = previous[:, :10]  # repeats
    ours = run_unchanged(sampling.apply_repetition_penalty, logits, previous, penalty)
    theirs = RepetitionPenaltyLogitsProcessor(penalty)(previous, logits.clone())
    torch.testing.assert_close(ours, theirs)


@pytest.mark.points(1)
def test_top_p_never_samples_outside_the_nucleus():
    """2000 draws with top_p=0.6 all fall inside the nucleus transformers computes; all of it is reachable."""
    logits = random_logits(5, batch=1, vocab=64, scale=1.5)
    nucleus = set(torch.nonzero(~torch.isinf(TopPLogitsWarper(top_p=0.6)(None, logits.clone())))[:, 1].tolist())
    generator = torch.Generator().manual_seed(0)
    params = sampling.SamplingParams(temperature=1.0, top_p=0.6)
    draws = [int(sampling.sample_next_token(logits, params, generator)) for _ in range(2000)]
    assert set(draws) <= nucleus
    assert len(set(draws)) == len(nucleus), "some nucleus tokens were never drawn: the filter is too strict"


@pytest.mark.points(1)
def test_sampling_follows_the_softmax():
    """Plain sampling (temperature 1) draws each token about as often as its probability, from the
    generator it is given."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    generator = torch.Generator().manual_seed(1)
    params = sampling.SamplingParams()
    draws = torch.stack([sampling.sample_next_token(logits, params, generator) for _ in range(6000)])
    frequencies = torch.bincount(draws.flatten(), minlength=6).float() / draws.numel()
    torch.testing.assert_close(frequencies, torch.softmax(logits[0], -1), atol=0.02, rtol=0)
    again = torch.Generator().manual_seed(1)
    replay = torch.stack([sampling.sample_next_token(logits, params, again) for _ in range(200)])
    assert torch.equal(replay, draws[:200]), "the same seeded generator must give the same draws"


@pytest.mark.points(1)
def test_temperature_towards_zero_becomes_greedy():
    """temperature=0 is argmax (whatever the other filters say); a tiny temperature samples the
    argmax every time."""
    logits = random_logits(6)
    greedy = torch.argmax(logits, dim=-1)
    for params in (sampling.SamplingParams(temperature=0), sampling.SamplingParams(temperature=0, top_k=3, min_p=0.5)):
        assert torch.equal(sampling.sample_next_token(logits, params), greedy)
    generator = torch.Generator().manual_seed(0)
    cold = sampling.SamplingParams(temperature=1e-3)
    for _ in range(50):
        assert torch.equal(sampling.sample_next_token(logits, cold, generator), greedy)


class PluggedSampler(LogitsProcessor):
    """Runs *your* sampling inside transformers' greedy loop: it draws a token with your code
    (repetition penalty, then sample_next_token on torch's global generator) and leaves only that
    token, so generate(do_sample=False) takes it. No decode loop of your own is involved."""

    def __init__(self, params) -> None:
        self.params = params

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float()
        if self.params.repetition_penalty != 1.0:
            logits = sampling.apply_repetition_penalty(logits, input_ids, self.params.repetition_penalty)
        token = sampling.sample_next_token(logits, self.params)
        return torch.full_like(scores, float("-inf")).scatter(-1, token.view(-1, 1), 0.0)


def hf_sampled(model, ids: list[int], max_new_tokens: int, seed: int, **settings) -> list[int]:
    torch.manual_seed(seed)
    settings = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, **settings}
    return hf_greedy(model, ids, max_new_tokens, do_sample=True, **settings)


SETTINGS = [
    {"temperature": 0.7, "top_p": 0.8},
    {"temperature": 1.5, "top_k": 20},
    {"temperature": 0.6, "min_p": 0.1},
    {"temperature": 1.2, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.3},
]


@pytest.mark.points(2)
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_sampling_draws_what_transformers_draws(model, tokenizer, settings):
    """With the same seed, your sampling (plugged into transformers' loop) draws exactly the tokens
    model.generate(do_sample=True, ...) draws: the same filters, in the same order (temperature
    first), the same distribution, the same random numbers."""
    ids = tokenizer(PROMPTS[2]).input_ids
    params = sampling.SamplingParams(**settings)
    for seed in (3, 4):
        expected = hf_sampled(model, ids, 16, seed, min_new_tokens=16, **settings)
        torch.manual_seed(seed)
        ours = hf_greedy(model, ids, 16, logits_processor=LogitsProcessorList([PluggedSampler(params)]),
                         min_new_tokens=16)
        assert ours == expected, f"seed {seed}"


@pytest.mark.scaffold
def test_sample_generate_plugs_into_your_decode_loop(model, tokenizer):
    """sample_generate (given) runs your task-3 decode loop with your sampling: temperature 0 is
    greedy, a seed reproduces a text, and no seed draws what generate(do_sample=True) draws."""
    ids = tokenizer(PROMPTS[0]).input_ids
    assert sampling.sample_generate(model, ids, 12, sampling.SamplingParams(temperature=0)) == hf_greedy(model, ids, 12)
    params = sampling.SamplingParams(temperature=1.2, top_k=100, top_p=0.95, repetition_penalty=1.1)
    first = sampling.sample_generate(model, ids, 20, params, seed=7, eos_token_id=-1)
    assert sampling.sample_generate(model, ids, 20, params, seed=7, eos_token_id=-1) == first
    torch.manual_seed(5)
    ours = sampling.sample_generate(model, ids, 12, params)
    assert ours == hf_sampled(model, ids, 12, 5, temperature=1.2, top_k=100, top_p=0.95, repetition_penalty=1.1)


@pytest.mark.points(1)
def test_bad_settings_name_the_argument():
    """Out-of-range settings raise ValueError naming the argument, before anything is sampled, even
    when temperature 0 (greedy) would not use them."""
    logits = random_logits(0)
    bad = [({"temperature": -0.5}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_p": 0.0}, "top_p"),
           ({"top_p": 1.5}, "top_p"), ({"min_p": 2.0}, "min_p"), ({"min_p": -0.1}, "min_p"),
           ({"temperature": 0, "top_p": 0.0}, "top_p"), ({"temperature": 0, "top_k": 0}, "top_k"),
           ({"repetition_penalty": 0.0}, "repetition_penalty")]
    for fields, name in bad:
        with pytest.raises(ValueError, match=name):
            sampling.check_sampling_params(sampling.SamplingParams(**fields))
        if name != "repetition_penalty":
            with pytest.raises(ValueError, match=name):
                sampling.sample_next_token(logits, sampling.SamplingParams(**fields))
    for name, function, value in [("temperature", sampling.apply_temperature, 0.0),
                                  ("top_k", sampling.top_k_filter, 0), ("top_p", sampling.top_p_filter, 1.01),
                                  ("min_p", sampling.min_p_filter, 1.5)]:
        with pytest.raises(ValueError, match=name):
            function(logits, value)
    with pytest.raises(ValueError, match="repetition_penalty"):
        sampling.apply_repetition_penalty(logits, torch.zeros(4, 1, dtype=torch.long), -1.0)
