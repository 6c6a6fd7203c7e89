"""Instructor-only tests (left out of the student edition): the same properties on inputs the
visible tests never show, so that code fitted to the visible cases does not pass."""

import psutil
import pytest
import torch
from transformers import TopKLogitsWarper, TopPLogitsWarper

from ..helpers import measure, sampling, streaming


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


@pytest.mark.task(6)
@pytest.mark.points(1)
def test_streaming_a_real_replacement_character_and_special_tokens(tokenizer):
    """A U+FFFD that is part of the text is not a broken character: the text after it still flows
    before the end (up to the last space, as any word does). With skip_special_tokens=False the
    special tokens stream too."""
    text = "ok \ufffd then 🍕 done"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    detokenizer = streaming.IncrementalDetokenizer(tokenizer)
    deltas = [detokenizer.push(token) for token in ids]
    assert "".join(deltas) + detokenizer.flush() == text
    assert "".join(deltas) == "ok \ufffd then 🍕 ", "text after a real U+FFFD must not wait for flush"
    with_special = [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
    detokenizer = streaming.IncrementalDetokenizer(tokenizer, skip_special_tokens=False)
    deltas = [detokenizer.push(token) for token in with_special]
    assert "".join(deltas) + detokenizer.flush() == tokenizer.decode(with_special, skip_special_tokens=False)


@pytest.mark.task(9)
@pytest.mark.points(1)
def test_peak_memory_remembers_a_freed_allocation():
    """The peak is a peak: 256 MiB touched and freed still count, though the process no longer holds them."""
    before = psutil.Process().memory_info().rss
    block = torch.ones(64 * 2**20)  # 256 MiB of float32, every page written
    del block
    assert measure.peak_memory_bytes("cpu") >= before + 250 * 2**20
