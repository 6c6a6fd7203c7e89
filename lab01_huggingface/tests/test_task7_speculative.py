"""Task 7: speculative decoding, greedy and sampled."""

import pytest
import torch

from .helpers import PROMPTS, hf_greedy, speculative

pytestmark = pytest.mark.task(7)


@pytest.fixture(scope="module")
def draft_model(draft_model, model):
    """The session draft, when it shares the model's vocabulary (a draft must: it proposes token ids)."""
    if draft_model.config.vocab_size != model.config.vocab_size:
        pytest.skip(f"the draft's vocabulary ({draft_model.config.vocab_size}) differs from the model's "
                    f"({model.config.vocab_size}): pass a matching draft with $COURSE_DRAFT_MODEL")
    return draft_model


@pytest.mark.points(5)
@pytest.mark.parametrize("k", [1, 3, 6])
def test_output_is_the_targets_greedy_output(model, draft_model, tokenizer, k):
    """For every prompt and k, exactly the target's own greedy tokens; the bookkeeping adds up."""
    for index, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt).input_ids
        result = speculative.speculative_generate(model, draft_model, ids, 30, k=k)
        assert result.tokens == hf_greedy(model, ids, 30), f"prompt {prompt!r}, k={k}"
        assert 0 <= result.accepted <= result.proposed
        assert result.draft_forward_passes == result.proposed, "one draft pass per proposed token"
        # each target pass keeps the accepted guesses plus one token of its own (eos may cut the last)
        assert len(result.tokens) <= result.accepted + result.target_forward_passes
        assert result.target_forward_passes <= len(result.tokens)
        if index >= 2 or k == 1:  # the checks below do not depend on k: two values suffice
            continue
        endless = speculative.speculative_generate(model, draft_model, ids, 30, k=k, eos_token_id=-1)
        assert len(endless.tokens) == 30 == endless.accepted + endless.target_forward_passes
        assert endless.proposed == endless.draft_forward_passes
        stops = [endless.tokens[7], 0]  # a list of eos ids, one of them 0
        cut = speculative.speculative_generate(model, draft_model, ids, 30, k=k, eos_token_id=stops)
        assert cut.tokens == hf_greedy(model, ids, 30, eos_token_id=stops), f"eos_token_id={stops}"
        zero = speculative.speculative_generate(model, draft_model, ids, 30, k=k, eos_token_id=0)
        assert zero.tokens == hf_greedy(model, ids, 30, eos_token_id=0), "eos_token_id=0 is an id"


@pytest.mark.points(2)
def test_a_perfect_draft_is_always_accepted(model, tokenizer):
    """With the target as its own draft every guess is accepted, so each pass yields k + 1 tokens;
    near max_new_tokens a round proposes only what can still be kept."""
    ids = tokenizer(PROMPTS[2]).input_ids
    result = speculative.speculative_generate(model, model, ids, 22, k=3, eos_token_id=-1)
    assert result.tokens == hf_greedy(model, ids, 22, eos_token_id=None, min_new_tokens=22)
    assert result.acceptance_rate == 1.0
    # rounds at 0, 4, 8, 12, 16 keep 3 guesses + 1 token; the round at 20 proposes 1 and keeps 2
    assert (result.target_forward_passes, result.proposed, result.accepted) == (6, 16, 16)
    assert result.draft_forward_passes == 16


@pytest.mark.points(2)
def test_agrees_with_transformers_assisted_generation(model, draft_model, tokenizer):
    """The tokens equal transformers' own assisted generation (assistant_model=draft)."""
    for prompt in PROMPTS[:3]:
        ids = tokenizer(prompt).input_ids
        inputs = torch.tensor([ids], device=model.device)
        with torch.no_grad():
            assisted = model.generate(inputs, attention_mask=torch.ones_like(inputs), assistant_model=draft_model,
                                      do_sample=False, max_new_tokens=20, pad_token_id=tokenizer.pad_token_id)
        result = speculative.speculative_generate(model, draft_model, ids, 20, k=4)
        assert result.tokens == assisted[0, len(ids):].tolist()


@pytest.mark.points(1)
def test_bad_arguments_name_the_argument(model, draft_model, tokenizer):
    ids = tokenizer("The cat").input_ids
    for kwargs, name in [({"k": 0}, r"\bk\b"), ({"max_new_tokens": 0}, "max_new_tokens"),
                         ({"temperature": -0.5}, "temperature")]:
        arguments = {"prompt_ids": ids, "max_new_tokens": 5, "k": 2, **kwargs}
        with pytest.raises(ValueError, match=name):
            speculative.speculative_generate(model, draft_model, **arguments)
    with pytest.raises(ValueError, match="prompt_ids"):
        speculative.speculative_generate(model, draft_model, [], 5)


# ---------------------------------------------------------------------------------------------
# Speculative sampling: the rejection rule must keep the target's distribution

#: Three positions of a 4-token vocabulary: the target's distributions p and the draft's q (two
#: guesses, then the bonus position). Far apart on purpose, so that a wrong rule moves the
#: output's distribution by far more than sampling noise.
P = torch.tensor([[0.50, 0.30, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25], [0.05, 0.15, 0.30, 0.50]])
Q = torch.tensor([[0.10, 0.20, 0.30, 0.40], [0.70, 0.10, 0.10, 0.10]])
ROUNDS = 4000


def chi_square_p_value(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square test that ``counts`` (per token) were drawn from ``probs``: the
    probability of a deviation at least this large. Tokens expected fewer than 5 times are pooled."""
    counts, expected = counts.double(), probs.double() * counts.sum()
    small = expected < 5
    observed = torch.cat([counts[~small], counts[small].sum().view(1)])
    wanted = torch.cat([expected[~small], expected[small].sum().view(1)])
    if wanted[-1] < 5:  # too little left to stand alone: join it to the least likely kept token
        smallest = int(wanted[:-1].argmin())
        observed[smallest] += observed[-1]
        wanted[smallest] += wanted[-1]
        observed, wanted = observed[:-1], wanted[:-1]
    statistic = float(((observed - wanted) ** 2 / wanted).sum())
    degrees = len(wanted) - 1
    return float(torch.special.gammaincc(torch.tensor(degrees / 2, dtype=torch.float64),
                                         torch.tensor(statistic / 2, dtype=torch.float64)))


def assert_follows(counts: torch.Tensor, probs: torch.Tensor, what: str) -> None:
    """``counts`` are a sample of ``probs``: no impossible token, and a chi-square p-value above
    1e-6 (a correct rule fails it about once in a million seeds; the seeds here are fixed)."""
    assert counts.sum() > 0, f"{what}: no sample at all"
    impossible = (probs == 0) & (counts > 0)
    assert not impossible.any(), f"{what}: tokens the target never gives: {impossible.nonzero().flatten().tolist()}"
    p_value = chi_square_p_value(counts, probs)
    assert p_value > 1e-6, (f"{what}: counts {counts.tolist()} are not a sample of {probs.tolist()} "
                            f"(chi-square p-value {p_value:.1e})")


def check_rule(rule, seed: int = 0) -> None:
    """Run ``rule`` (accept_or_resample's signature) on draft guesses drawn from Q, ROUNDS times, and
    check every position of what it keeps against the target's P, and how often each guess is
    accepted against the rule's probability sum_x min(p(x), q(x))."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.zeros_like(P)
    reached = [0, 0, 0]
    for _ in range(ROUNDS):
        guesses = [int(torch.multinomial(row, 1, generator=generator)) for row in Q]
        kept = rule(P.clone(), Q.clone(), guesses, generator)
        assert 1 <= len(kept) <= len(guesses) + 1, f"kept {kept} for guesses {guesses}"
        assert kept[:-1] == guesses[: len(kept) - 1], f"kept {kept} is not accepted guesses + one token"
        for position, token in enumerate(kept):
            counts[position, token] += 1
            reached[position] += 1
    for position in range(3):
        assert_follows(counts[position], P[position], f"position {position}")
    for position in range(2):  # each guess is accepted with probability sum_x min(p(x), q(x))
        accept = float(torch.minimum(P[position], Q[position]).sum())
        trials = reached[position]
        z = (reached[position + 1] - trials * accept) / (trials * accept * (1 - accept)) ** 0.5
        assert abs(z) < 5, (f"guess {position} accepted {reached[position + 1]} times in {trials}, expected "
                            f"about {trials * accept:.0f}: accept with probability min(1, p/q)")


@pytest.mark.points(2)
def test_the_rule_keeps_the_targets_distribution():
    """accept_or_resample keeps each position distributed as the target's own sample (chi-square
    against p at the first guess, the second, and the bonus position), accepts each guess with
    probability sum min(p, q), accepts every guess when p == q, never keeps a token p rules out, and
    repeats itself for the same generator seed."""
    check_rule(speculative.accept_or_resample)
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):  # a draft that is the target is always right
        guesses = [int(torch.multinomial(row, 1, generator=generator)) for row in P[:2]]
        kept = speculative.accept_or_resample(P.clone(), P[:2].clone(), guesses, generator)
        assert kept[:2] == guesses, "a draft equal to the target is always right: every guess must be kept"
        assert len(kept) == 3, f"all guesses kept means one bonus token from the target: 3 tokens, got {len(kept)}"
    runs = []
    for _ in range(2):  # guesses p makes unlikely, so that the random numbers decide
        seeded = torch.Generator().manual_seed(3)
        runs.append([speculative.accept_or_resample(P.clone(), Q.clone(), [3, 0], seeded) for _ in range(100)])
    assert runs[0] == runs[1], "the same seed must keep the same tokens: draw every random number from generator"
    no_guesses = [speculative.accept_or_resample(P[:1].clone(), Q[:0].clone(), [], generator) for _ in range(400)]
    assert all(len(kept) == 1 for kept in no_guesses), "with no guesses, one token from p"
    assert_follows(torch.bincount(torch.tensor([kept[0] for kept in no_guesses]), minlength=4), P[0],
                   "no guesses")


@pytest.mark.points(1)
def test_sampled_speculation_follows_the_targets_distribution(model, draft_model, tokenizer):
    """speculative_generate(temperature=...) draws its first token from the target's
    softmax(logits / temperature) (chi-square over 100 runs, whatever the draft proposed), and the
    same generator seed gives the same tokens."""
    ids = tokenizer("The cat").input_ids
    temperature = 1.5
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids], device=model.device)).logits[0, -1].float().cpu()
                              / temperature, dim=-1)
    generator = torch.Generator(device=model.device).manual_seed(0)
    firsts = []
    for _ in range(100):
        result = speculative.speculative_generate(model, draft_model, ids, 2, k=1, eos_token_id=-1,
                                                  temperature=temperature, generator=generator)
        assert len(result.tokens) == 2, f"2 new tokens asked for, got {len(result.tokens)}"
        assert result.proposed == 1, f"with k=1 the draft proposes 1 token per round, got {result.proposed}"
        firsts.append(result.tokens[0])
    assert_follows(torch.bincount(torch.tensor(firsts), minlength=probs.numel())[: probs.numel()], probs,
                   "the first token")
    runs = [speculative.speculative_generate(model, draft_model, ids, 12, k=3, eos_token_id=-1, temperature=0.8,
                                             generator=torch.Generator(device=model.device).manual_seed(7)).tokens
            for _ in range(2)]
    assert runs[0] == runs[1], "the same seed must give the same tokens: draw every random number from generator"


@pytest.mark.scaffold
def test_the_bench_refuses_a_draft_of_another_vocabulary(trained_model, trained_tokenizer, byte_fallback_tokenizer):
    """bench.py (given) checks the draft before speculating: another number of token ids, or the same
    number mapped to other tokens, is named in one line instead of an IndexError deep in a forward."""
    from transformers import AutoModelForCausalLM

    from lab01_huggingface.bench import draft_mismatch
    from shared.convention_models import convention_model

    other = AutoModelForCausalLM.from_pretrained(convention_model("spm-byte-fallback"))
    message = draft_mismatch(trained_model, other, trained_tokenizer, byte_fallback_tokenizer)
    assert message is not None and "\n" not in message
    assert f"{other.config.vocab_size} token ids" in message and f"{trained_model.config.vocab_size}" in message
    assert "other ids" in draft_mismatch(trained_model, trained_model, trained_tokenizer, byte_fallback_tokenizer)
    assert draft_mismatch(trained_model, trained_model, trained_tokenizer, trained_tokenizer) is None
    assert draft_mismatch(trained_model, trained_model, trained_tokenizer, None) is None
