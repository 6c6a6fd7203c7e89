"""Hidden: workloads and the transformers backend on model folders with real tokenizer conventions
(``shared.convention_models``: random-weight models with the tokenizers of GPT-2, Llama 2 and
Llama 3 from llama.cpp's own vocab files, a SentencePiece byte-fallback BPE, no pad token, and a
Mixtral): lengths counted by each folder's own tokenizer, and static batches padded with whatever
the tokenizer has (its eos where it has no pad token)."""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.convention_models import CONVENTIONS, ConventionUnavailable, convention_model

from ..helpers import backends, request, workloads
from ..test_task3_backends import drive, hf_greedy_forced

PROMPTS = ["x", "The cat sat on the mat", "Grüße 👋🏽 naïve"]


@functools.cache
def _load(convention: str):
    try:
        folder = convention_model(convention)
    except ConventionUnavailable as error:
        return f"this model folder cannot be built here: {error}"
    return folder, AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(), \
        AutoTokenizer.from_pretrained(folder)


def loaded(convention: str):
    value = _load(convention)
    if isinstance(value, str):
        pytest.skip(value)
    return value


@pytest.mark.task(1)
@pytest.mark.points(0.5)
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.timeout(600)  # the first run builds the folders (Llama 3's tokenizer: ~25 s idle)
def test_fixed_workload_lengths_with_any_tokenizer(convention):
    """fixed_workload's prompts have the asked length in the folder's own tokens (byte fallback,
    Llama 3's 128k vocabulary, no pad token alike), and prompt_len counts what the model is fed."""
    _, _, tokenizer = loaded(convention)
    w = workloads.fixed_workload(tokenizer, 4, 24, 5, seed=1)
    for r in w.requests:
        assert 22 <= len(tokenizer(r.prompt, add_special_tokens=False).input_ids) <= 24, (convention, r.prompt)
        assert r.prompt_len == len(tokenizer(r.prompt).input_ids), convention


@pytest.mark.task(3)
@pytest.mark.points(0.5)
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.timeout(600)
def test_transformers_backend_with_any_tokenizer(convention):
    """Static batches of three prompts of different lengths give each request transformers' own
    greedy tokens, with a tokenizer that has no pad token too (pad with eos, masked out)."""
    folder, model, tokenizer = loaded(convention)
    backend = backends.TransformersBackend(folder, batch_size=3, model=model, tokenizer=tokenizer)
    events = drive(backend, [request(f"c{i}", 4, p) for i, p in enumerate(PROMPTS)])
    for i, prompt in enumerate(PROMPTS):
        got = [t for e in events[f"c{i}"] for t in e.token_ids]
        assert got == hf_greedy_forced(model, tokenizer, prompt, 4), (convention, prompt)
