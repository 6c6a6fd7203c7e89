"""lab01's own fixtures: the *trained* fixture model, whatever ``--model`` names.

Most tests hold for any causal LM, so they use the session ``model`` (``--model PATH`` or the
fixture). A few need trained behaviour (a model that ends a sentence with eos, answers
instructions after 60 steps): those take ``trained_model`` / ``trained_dir`` / ``trained_tokenizer``,
always the course fixture, so that ``--model`` with random weights never fails them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def trained_dir() -> Path:
    """The course's trained fixture folder (built if needed), ignoring ``--model``."""
    from shared.models import FIXTURE, fixture_path

    return fixture_path(FIXTURE)


@pytest.fixture(scope="session")
def trained_tokenizer(trained_dir: Path, model_dir: Path, tokenizer: Any) -> Any:
    if Path(model_dir).resolve() == trained_dir.resolve():
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(trained_dir)


@pytest.fixture(scope="session")
def trained_model(trained_dir: Path, model_dir: Path, device: str, request: pytest.FixtureRequest) -> Any:
    """The trained fixture in float32, eval mode (the session ``model`` itself when it is the fixture)."""
    if Path(model_dir).resolve() == trained_dir.resolve():
        return request.getfixturevalue("model")
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(trained_dir, dtype=torch.float32).to(device).eval()


@pytest.fixture(scope="session")
def byte_fallback_tokenizer() -> Any:
    """A SentencePiece-style tokenizer with byte fallback (Llama 2's convention: ``▁`` for spaces,
    ``<0xF0>`` byte tokens for characters it lacks, no pad token, no chat template), trained here
    (``shared.convention_models``), whatever ``--model`` says: the fixture's byte-level BPE never
    turns decoded text back into U+FFFD, this one does."""
    from transformers import AutoTokenizer

    from shared.convention_models import convention_model

    return AutoTokenizer.from_pretrained(convention_model("spm-byte-fallback"))
