"""lab03's own fixtures: tiny random-weights Llamas of shapes the course fixture does not have.

The fixture's head dimension is hidden / heads, it has no rope scaling and its tokenizer is GPT-2
style byte-level BPE, so code that assumes any of these passes on it. ``llama_shape(name)`` builds
(once per session, a second or less each: hidden 64, 2 layers) a Hugging Face folder of another
shape, with the course's tokenizer unless the shape is about the tokenizer:

- ``head_dim``: head_dim 32 where hidden / heads is 16, grouped-query attention (4 heads, 2 KV heads);
- ``llama3_rope``: Llama 3.1's rope scaling (``rope_type`` llama3, factor 8, original context 64);
- ``llama3_rope_head_dim``: the same with head_dim 32 where hidden / heads is 16;
- ``linear_rope``: linear rope scaling (positions divided by 4);
- ``padded_vocab``: vocab_size 520, 8 ids past the tokenizer's tokens;
- ``llama3_tokenizer``: a byte-level BPE trained with Llama 3's pre-tokenizer (``Split`` regex,
  ``ignore_merges``), which llama.cpp calls ``llama-bpe``;
- ``sentencepiece_bpe``: a SentencePiece-style BPE (byte fallback, a normalizer), as Llama 2's.

Each value is ``(folder, transformers model in eval mode, tokenizer)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: Llama 3's pre-tokenizer regex, as its tokenizer.json writes it.
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

#: Config changes per shape (on top of a 2-layer, hidden-64 Llama with 4 heads of 16).
SHAPES: dict[str, dict[str, Any]] = {
    "head_dim": {"head_dim": 32, "num_key_value_heads": 2},
    "llama3_rope": {"rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 64}},
    "llama3_rope_head_dim": {"head_dim": 32,  # rope_freqs holds head_dim / 2 factors, not hidden / heads / 2
                             "rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 64}},
    "linear_rope": {"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}},
    "padded_vocab": {"vocab_size": 520},  # 8 embedding rows past the tokenizer's 512 tokens
    "llama3_tokenizer": {},
    "sentencepiece_bpe": {},
}


def _train_tokenizer(kind: str, out: Path) -> Any:
    """A small BPE trained on the course corpus with Llama 3's or a SentencePiece-style convention."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from shared.models import BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN, PAD_TOKEN, SPECIAL_TOKENS, corpus_documents

    if kind == "llama3_tokenizer":
        tokenizer = Tokenizer(models.BPE(ignore_merges=True))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                                     normalizers.Replace(" ", "\u2581")])
        tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                               decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=[*SPECIAL_TOKENS, "<unk>"],
                                  initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(corpus_documents(), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", special_tokens=[(BOS_TOKEN, tokenizer.token_to_id(BOS_TOKEN))])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN,
                                      pad_token=PAD_TOKEN, additional_special_tokens=SPECIAL_TOKENS[3:])
    wrapped.chat_template = CHAT_TEMPLATE
    wrapped.save_pretrained(out)
    return wrapped


def build_llama(name: str, out: Path) -> tuple[Path, Any, Any]:
    """The shape ``name`` of :data:`SHAPES` as a Hugging Face folder in ``out``, with fixed weights."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from shared.models import tokenizer_path

    if name in ("llama3_tokenizer", "sentencepiece_bpe"):
        tokenizer = _train_tokenizer(name, out)
    else:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
        tokenizer.save_pretrained(out)
    settings = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 512,
                "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, **SHAPES[name]}
    torch.manual_seed(1234)
    model = LlamaForCausalLM(LlamaConfig(**settings)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim > 1:
                parameter.mul_(3.0)  # logits that differ clearly between tokens and positions
    model.save_pretrained(out)
    return out, model, tokenizer


@pytest.fixture(scope="session")
def llama_shape(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Any, Any]]:
    """``llama_shape(name)`` -> ``(folder, model, tokenizer)`` for a shape of :data:`SHAPES`, built
    on first use and shared by the whole session."""
    built: dict[str, tuple[Path, Any, Any]] = {}

    def get(name: str) -> tuple[Path, Any, Any]:
        if name not in built:
            built[name] = build_llama(name, tmp_path_factory.mktemp(f"llama_{name}"))
        return built[name]

    return get
