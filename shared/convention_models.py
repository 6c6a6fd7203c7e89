"""Model folders with the tokenizer conventions of real model families, built here with no network.

The course fixture's tokenizer has every convenience: a pad token, a chat template, a byte-level
BPE whose every prefix decodes to a prefix of the text. Real models do not: GPT-2 and Llama 3 have
no pad token, base models have no chat template, and Llama 2's SentencePiece tokenizer falls back
to bytes (``<0xF0>``) and marks spaces with ``▁``, so decoding a prefix of the ids need not give a
prefix of the text, and ``decode(encode(" "))`` is ``""``. Code that says it works for *any*
model folder is checked here against such folders.

Each folder is a tiny Llama (or, for ``mixtral``, a tiny Mixtral) with random weights and one of
these tokenizers, cached under :func:`shared.paths.cache_dir` like the fixtures:

- ``spm-byte-fallback``: a SentencePiece-style BPE trained here with the ``tokenizers`` library
  (``byte_fallback=True``, a ``Metaspace`` pre-tokenizer, ``<s>`` / ``</s>`` / ``<unk>``, no pad
  token, no chat template), saved as a transformers fast tokenizer. Its alphabet is printable
  ASCII, so every other character is spelled in byte tokens. Always available.
- ``no-pad``: the fixture's byte-level BPE with its pad token and chat template removed (GPT-2's
  convention: there is no pad id to pass, and no template). Always available.
- ``llama-spm``, ``gpt-2``, ``llama-bpe``: the tokenizers of Llama 2, GPT-2 and Llama 3, read by
  transformers (``gguf_file=``) from the vocabulary-only GGUF files llama.cpp ships in
  ``models/ggml-vocab-*.gguf`` (files nobody in this course wrote). They need llama.cpp's source
  package (``lab03_llama_cpp.llama_cpp_source``; ``shared/install.sh`` keeps one in the cache);
  without it :func:`available_conventions` leaves them out. The ``llama-bpe`` folder stops at a
  *list* of eos ids (end of text and end of turn), as Llama 3's generation config does.
- ``mixtral``: the fixture tokenizer on a Mixtral (a router and experts in every layer): the shape
  where peft's ``"all-linear"`` also adapts the router and the experts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .models import FIXTURE, _cached_build, corpus_documents, recipe_hash, tokenizer_path

FORMAT_VERSION = 3  # bump when the way a folder is built changes

#: A tiny Llama: every folder builds in about a second and generates in milliseconds per token.
TINY_LLAMA: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 512,
    "initializer_range": 0.2, "tie_word_embeddings": True,
}
TINY_MIXTRAL: dict[str, Any] = {
    "model_type": "mixtral", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 512,
    "num_local_experts": 4, "num_experts_per_tok": 2, "initializer_range": 0.2, "tie_word_embeddings": False,
}

#: GGUF vocabulary files of llama.cpp, by convention name.
GGUF_VOCABS = {"llama-spm": "ggml-vocab-llama-spm.gguf", "gpt-2": "ggml-vocab-gpt-2.gguf",
               "llama-bpe": "ggml-vocab-llama-bpe.gguf"}
LOCAL_CONVENTIONS = ("spm-byte-fallback", "no-pad", "mixtral")
CONVENTIONS = (*LOCAL_CONVENTIONS, *GGUF_VOCABS)


class ConventionUnavailable(RuntimeError):
    """A convention's source (llama.cpp's vocabulary files) is not on this machine."""


def _gguf_vocab(name: str) -> Path:
    try:
        from lab03_llama_cpp import llama_cpp_source
    except ImportError as error:  # a student edition without lab03
        raise ConventionUnavailable(f"{name}: lab03_llama_cpp.llama_cpp_source is not importable ({error})") from error
    try:
        return llama_cpp_source.source_dir() / "models" / GGUF_VOCABS[name]
    except llama_cpp_source.SourceMissing as error:
        raise ConventionUnavailable(f"{name}: {error}") from error


def _spm_byte_fallback_tokenizer() -> Any:
    """A Llama-2-style SentencePiece BPE trained on the course corpus: spaces become ``▁``, a
    character the vocabulary lacks becomes its UTF-8 bytes ``<0x..>``; no pad, no template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    # An alphabet of printable ASCII and the space marker only: every other character (é, 🍕, 東)
    # is spelled in bytes.
    ascii_alphabet = [chr(code) for code in range(32, 127)] + ["▁"]
    trainer = trainers.BpeTrainer(vocab_size=600, min_frequency=2, special_tokens=specials + byte_tokens,
                                  initial_alphabet=ascii_alphabet, limit_alphabet=len(ascii_alphabet),
                                  show_progress=False)
    learner = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    learner.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    learner.train_from_iterator(corpus_documents(), trainer=trainer)
    # The byte tokens were given as special tokens only to reserve their ids; in Llama 2 they are
    # ordinary vocabulary entries (decode must not skip them), so they leave the added tokens.
    state = json.loads(learner.to_str())
    state["added_tokens"] = [token for token in state["added_tokens"] if token["content"] in specials]
    tokenizer = Tokenizer.from_str(json.dumps(state))
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    from tokenizers import processors

    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=TINY_LLAMA["max_position_embeddings"])


def _tokenizer_for(convention: str, out: Path) -> Any:
    from transformers import AutoTokenizer

    if convention == "spm-byte-fallback":
        return _spm_byte_fallback_tokenizer()
    if convention in ("no-pad", "mixtral"):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
        if convention == "no-pad":
            tokenizer.pad_token = None
            tokenizer.chat_template = None
        return tokenizer
    vocab = _gguf_vocab(convention)
    return AutoTokenizer.from_pretrained(vocab.parent, gguf_file=vocab.name)


#: A Llama where the model, not the Python around it, dominates an engine step on a CPU (about
#: 150 M parameters, 0.6 GB in float32), with Llama 2's 32,000-token vocabulary (``llama-spm``):
#: what lab 02's ``bench.py --larger`` measures the engine and vLLM on. Default initializer range.
LARGER_LLAMA: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8,
    "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 64, "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}


def _build(convention: str, out: Path, seed: int, shape: dict[str, Any] | None = None) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    tokenizer = _tokenizer_for(convention, out)
    spec = dict(shape or (TINY_MIXTRAL if convention == "mixtral" else TINY_LLAMA))
    eos: int | list[int] | None = tokenizer.eos_token_id
    if convention == "llama-bpe":  # Llama 3 stops at end of text and at end of turn
        eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
        eos = [tokenizer.eos_token_id, eot] if isinstance(eot, int) and eot != tokenizer.unk_token_id else eos
    config = AutoConfig.for_model(spec.pop("model_type"), vocab_size=len(tokenizer),
                                  bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                                  pad_token_id=tokenizer.pad_token_id, **spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "recipe.json").write_text(json.dumps({"convention": convention, "seed": seed}, indent=2))


def convention_model(convention: str, *, seed: int = 0) -> Path:
    """The cached folder of a tiny random-weight model with ``convention``'s tokenizer.

    Args:
        convention: one of :data:`CONVENTIONS`.
        seed: the seed of the random weights.

    Raises:
        ValueError: an unknown convention, naming the known ones.
        ConventionUnavailable: a GGUF convention where llama.cpp's source is not here.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    source = str(_gguf_vocab(convention).stat().st_size) if convention in GGUF_VOCABS else "local"
    recipe = {"convention": convention, "seed": seed, "source": source, "llama": TINY_LLAMA,
              "mixtral": TINY_MIXTRAL, "format": FORMAT_VERSION, "fixture_tokenizer": recipe_hash(FIXTURE.tokenizer)}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return _cached_build(f"convention-{convention}-{key}", lambda folder: _build(convention, folder, seed))


def larger_llama(*, seed: int = 0) -> Path:
    """The cached folder of :data:`LARGER_LLAMA` with random weights and Llama 2's tokenizer (built
    once, about 0.6 GB; needs llama.cpp's source, as ``llama-spm`` does).

    Raises:
        ConventionUnavailable: llama.cpp's source is not here.
    """
    recipe = {"shape": LARGER_LLAMA, "seed": seed, "source": str(_gguf_vocab("llama-spm").stat().st_size),
              "format": FORMAT_VERSION}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return _cached_build(f"larger-llama-{key}", lambda folder: _build("llama-spm", folder, seed, LARGER_LLAMA))


def available_conventions() -> list[str]:
    """The conventions that can be built here: the local ones always, the GGUF ones with llama.cpp's source."""
    names = list(LOCAL_CONVENTIONS)
    for name in GGUF_VOCABS:
        try:
            if _gguf_vocab(name).exists():
                names.append(name)
        except ConventionUnavailable:
            pass
    return names
