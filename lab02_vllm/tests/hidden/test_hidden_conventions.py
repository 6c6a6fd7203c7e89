"""Hidden: the engine on model folders with real tokenizer conventions (``shared.convention_models``:
random-weight Llamas with the tokenizers of GPT-2, Llama 2 and Llama 3 from llama.cpp's own vocab
files, a SentencePiece byte-fallback BPE, no pad token; and a Mixtral, which this engine refuses)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from shared.convention_models import CONVENTIONS, ConventionUnavailable, convention_model

from ..helpers import detokenized, engine, hf_greedy, load_hf, sampling_params

PROMPTS = ["x", "The cat sat on the mat", "Grüße 👋🏽 naïve"]


@pytest.mark.task(5)
@pytest.mark.points(0.5)
@pytest.mark.parametrize("convention", [name for name in CONVENTIONS if name != "mixtral"])
@pytest.mark.timeout(600)  # the first run builds the folders (Llama 3's tokenizer: ~25 s idle)
def test_generate_on_any_tokenizer_convention(convention):
    """Text prompts, batched: token ids equal transformers' greedy generate (a list of eos ids, a
    128k vocabulary, byte-fallback tokens alike) and the text is what vLLM's detokenizer sends for them; a
    Mixtral is refused with a ValueError that says this engine runs Llama models."""
    try:
        folder = convention_model(convention)
    except ConventionUnavailable as error:
        pytest.skip(f"this model folder cannot be built here: {error}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = load_hf(folder)
    llm = engine.LLM(folder, block_size=16, num_kv_blocks=32, max_model_len=128, device="cpu", dtype="float32")
    outs = llm.generate(PROMPTS, sampling_params.SamplingParams(temperature=0, max_tokens=8))
    for out, prompt in zip(outs, PROMPTS, strict=True):
        completion = out.outputs[0]
        assert completion.token_ids == hf_greedy(hf, tokenizer(prompt).input_ids, 8), (convention, prompt)
        assert completion.text == detokenized(tokenizer, out.prompt_token_ids, completion.token_ids), (convention,
                                                                                                   prompt)
    if convention == "no-pad":  # and a Mixtral (router and experts) is refused, saying what runs
        with pytest.raises(ValueError, match="Llama"):
            engine.LLM(convention_model("mixtral"), block_size=16, num_kv_blocks=16, max_model_len=64, device="cpu",
                       dtype="float32")
