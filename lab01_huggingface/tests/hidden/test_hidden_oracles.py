"""Instructor-only: the oracles of lab01's tests have teeth (kept out of the student edition,
since a wrong rule written out is most of a right one)."""

import pytest
import torch

from ..test_task7_speculative import check_rule


def _accept_always(target_probs, draft_probs, guesses, generator):
    last = torch.multinomial(target_probs[-1], num_samples=1, generator=generator).item()
    return [*guesses, last]


def _resample_from_p(target_probs, draft_probs, guesses, generator):
    kept = []
    for row, token in enumerate(guesses):
        ratio = target_probs[row, token] / draft_probs[row, token]
        if torch.rand(1, generator=generator).item() >= ratio:
            return [*kept, torch.multinomial(target_probs[row], num_samples=1, generator=generator).item()]
        kept.append(token)
    return [*kept, torch.multinomial(target_probs[-1], num_samples=1, generator=generator).item()]


@pytest.mark.task(7)
@pytest.mark.scaffold
@pytest.mark.parametrize("wrong_rule", [_accept_always, _resample_from_p])
def test_the_distribution_check_catches_a_wrong_rule(wrong_rule):
    """The speculative-sampling oracle has teeth: accepting every guess (the output follows the
    draft), or resampling a rejected guess from p instead of max(0, p - q) (too much mass on what the
    draft likes), fails check_rule."""
    with pytest.raises(AssertionError, match="not a sample of"):
        check_rule(wrong_rule)
