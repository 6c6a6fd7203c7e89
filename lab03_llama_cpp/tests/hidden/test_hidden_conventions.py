"""Hidden: the converter on model folders with real tokenizer conventions (``shared.convention_models``:
random-weight Llamas with the tokenizers of GPT-2, Llama 2 and Llama 3 from llama.cpp's own vocab
files, a SentencePiece byte-fallback BPE, no pad token, and a Mixtral). Each folder is either
converted into a file that llama.cpp tokenizes and runs as transformers does, or refused with a
``ConvertError`` that names what is unsupported, writing nothing: never another error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shared.convention_models import CONVENTIONS, ConventionUnavailable, convention_model

from ..helpers import convert, llama_logits, load_llama

pytestmark = [pytest.mark.task(2), pytest.mark.llama_cpp]

TEXTS = ["Hello world", "  two  spaces\tand a tab\n", "Grüße 👋🏽 naïve", '{"id": 7, "tags": ["a"]}']
#: What the converter supports, by convention, and the words its refusal must use otherwise.
REFUSED = {"spm-byte-fallback": "SentencePiece", "llama-spm": "SentencePiece", "llama-bpe": "ignore_merges"}


@pytest.mark.points(0.5)
@pytest.mark.parametrize("convention", [name for name in CONVENTIONS if name != "mixtral"])
@pytest.mark.timeout(600)  # the first run builds the folders (Llama 3's tokenizer: ~25 s idle)
def test_convention_folder_converts_or_is_refused(convention, tmp_path):
    """Byte-level BPE folders (no pad, GPT-2's vocabulary) convert: llama.cpp's token ids equal the
    HF tokenizer's and its logits transformers' (within 1/300 of the largest logit); SentencePiece
    (Llama 2's), a Llama 3 tokenizer without ``ignore_merges`` (as transformers reads it from a GGUF
    vocab) and a Mixtral are refused with a ConvertError naming why, and no file is written."""
    try:
        folder = convention_model(convention)
    except ConventionUnavailable as error:
        pytest.skip(f"this model folder cannot be built here: {error}")
    out = tmp_path / "model.gguf"
    if convention in REFUSED:
        with pytest.raises(convert.ConvertError, match=REFUSED[convention]):
            convert.convert(folder, out, "f32")
        assert not out.exists(), "a refused folder must leave no file behind"
        return
    convert.convert(folder, out, "f32")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    llm = load_llama(out, logits_all=True)
    try:
        for text in TEXTS:
            ids = tokenizer(text).input_ids
            got = llm.tokenize(text.encode(), add_bos=tokenizer.bos_token_id in ids[:1], special=False)
            assert got == ids, f"{convention} {text!r}: llama.cpp tokenizes as {got}, transformers as {ids}"
        for text in TEXTS[2:]:
            ids = tokenizer(text).input_ids
            with torch.no_grad():
                expected = model(torch.tensor([ids])).logits[0].numpy()
            difference = float(np.abs(llama_logits(llm, ids) - expected).max())
            assert difference <= max(1e-2, float(np.abs(expected).max()) / 300), \
                f"{convention} {text!r}: llama.cpp's logits are {difference:.3g} off transformers'"
    finally:
        llm.close()
    if convention == "no-pad":  # a Mixtral is refused too (the given load_config's check: after the above)
        with pytest.raises(convert.ConvertError, match="mixtral"):
            convert.convert(convention_model("mixtral"), tmp_path / "mixtral.gguf", "f32")
        assert not (tmp_path / "mixtral.gguf").exists()
