"""Instructor-only tests (left out of the student edition): the same properties on inputs the
visible tests never show, so that code fitted to the visible cases does not pass."""

import pytest
import torch
from transformers import TopKLogitsWarper, TopPLogitsWarper

from ..helpers import generation, hf_greedy, sampling


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


@pytest.mark.task(4)
@pytest.mark.points(1)
def test_filters_on_other_shapes_and_dtypes():
    """top-k and top-p agree with transformers on one row and on a large vocabulary; top-k in bfloat16."""
    generator = torch.Generator().manual_seed(11)
    for shape, dtype in [((1, 7), torch.float32), ((2, 32000), torch.float32), ((3, 300), torch.bfloat16)]:
        logits = (torch.randn(*shape, generator=generator) * 4).to(dtype)
        for k in (1, 3, 10):
            ours, theirs = sampling.top_k_filter(logits, k), TopKLogitsWarper(top_k=k)(None, logits.clone())
            assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
        if dtype != torch.float32:
            continue  # bf16 rounds many logits to equal values; which tie top-p keeps is arbitrary
        for p in (0.3, 0.8):
            ours, theirs = sampling.top_p_filter(logits, p), TopPLogitsWarper(top_p=p)(None, logits.clone())
            assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
