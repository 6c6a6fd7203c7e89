"""Task 2: convert a HF Llama folder to GGUF; llama.cpp loads it and agrees with transformers and
with llama.cpp's own converter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import GPT2Config, LlamaConfig

from .helpers import (
    HELDOUT,
    TOKENIZER_CORPUS,
    convert,
    llama_logits,
    load_llama,
    reader_metadata,
    reference_gguf,
    require_llama_folder,
)

gguf = pytest.importorskip("gguf", reason="needs the gguf package: pip install -e '.[llama]'")
pytestmark = pytest.mark.task(2)

#: Keys that record where a file came from, not what the model is: the converters may differ.
PROVENANCE = ("general.name", "general.basename", "general.finetune", "general.size_label", "general.type",
              "general.version", "general.organization", "general.license", "general.quantized_by",
              "tokenizer.ggml.add_sep_token")


@pytest.fixture(scope="module")
def converted(model_dir, tmp_path_factory):
    """The model converted by the code under test, in F32 and F16."""
    require_llama_folder(model_dir)
    folder = tmp_path_factory.mktemp("converted")
    return {outtype: convert.convert(model_dir, folder / f"model-{outtype}.gguf", outtype)
            for outtype in ("f32", "f16")}


@pytest.mark.points(1.5)
def test_tensor_names_match_gguf_tensor_map(model_dir):
    """gguf_tensor_name gives, for every tensor of the checkpoint, the name gguf's own tensor map
    (the table llama.cpp's converter uses) gives, also in blocks 10, 12 and 123 of a deeper model
    (layer numbers of several digits); an unknown name is a ConvertError naming it."""
    import re

    from safetensors import safe_open

    config = require_llama_folder(model_dir)
    deepest = max(config["num_hidden_layers"], 124)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, deepest)
    names = []
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, framework="pt") as handle:
            names += list(handle.keys())
    per_layer = {re.sub(r"^model\.layers\.\d+\.", "", name) for name in names if name.startswith("model.layers.")}
    names += [f"model.layers.{layer}.{suffix}" for layer in (10, 12, 123) for suffix in sorted(per_layer)]
    for name in names:
        expected = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        assert convert.gguf_tensor_name(name) == expected, name
    with pytest.raises(convert.ConvertError, match=r"model\.layers\.0\.mystery\.weight"):
        convert.gguf_tensor_name("model.layers.0.mystery.weight")


@pytest.mark.points(2)
@pytest.mark.parametrize(("n_head", "head_dim", "hidden"), [(4, 64, 256), (2, 8, 16), (3, 4, 5)])
def test_permute_pairs_the_rotary_halves(n_head, head_dim, hidden):
    """Per head, row 2i of the permuted weight is HF row i and row 2i + 1 is HF row i + head_dim/2:
    HF rotates (x_i, x_{i+d/2}) together, llama.cpp rotates (x_2i, x_2i+1). The input is not changed."""
    rng = np.random.default_rng(n_head)
    weight = rng.standard_normal((n_head * head_dim, hidden)).astype(np.float32)
    before = weight.copy()
    permuted = convert.permute_for_rope(weight, n_head)
    assert permuted.shape == weight.shape
    for head in range(n_head):
        base = head * head_dim
        for i in range(head_dim // 2):
            np.testing.assert_array_equal(permuted[base + 2 * i], weight[base + i])
            np.testing.assert_array_equal(permuted[base + 2 * i + 1], weight[base + i + head_dim // 2])
    np.testing.assert_array_equal(weight, before)


@pytest.mark.points(2)
def test_tokenizer_metadata_matches_the_hf_tokenizer(model_dir, tokenizer, converted):
    """The file's tokens are the HF tokenizer's tokens in id order, special tokens are CONTROL, the
    bos / eos / pad ids and the chat template are the tokenizer's, and the BPE merges are all there."""
    metadata = reader_metadata(converted["f32"])
    vocab_size = require_llama_folder(model_dir)["vocab_size"]
    tokens = metadata["tokenizer.ggml.tokens"]
    assert len(tokens) == vocab_size
    assert tokens[: len(tokenizer)] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    types = metadata["tokenizer.ggml.token_type"]
    for index in tokenizer.all_special_ids:
        assert types[index] == gguf.TokenType.CONTROL, tokens[index]
    assert metadata["tokenizer.ggml.model"] == "gpt2" and metadata["tokenizer.ggml.pre"] == "gpt-2"
    assert metadata["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id
    assert metadata["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None:
        assert metadata["tokenizer.ggml.padding_token_id"] == tokenizer.pad_token_id
    if tokenizer.chat_template:
        assert metadata["tokenizer.chat_template"] == tokenizer.chat_template
    merges = json.loads((model_dir / "tokenizer.json").read_text())["model"]["merges"]
    assert len(metadata["tokenizer.ggml.merges"]) == len(merges)


@pytest.mark.points(2)
def test_metadata_equals_llama_cpps_converter(model_dir, converted):
    """Every key llama.cpp's convert_hf_to_gguf.py writes for this folder (provenance keys such as
    general.name aside) is in your F32 and F16 files, with the same value type and value."""
    for outtype in ("f32", "f16"):
        reference = gguf.GGUFReader(reference_gguf(model_dir, outtype))
        ours = gguf.GGUFReader(converted[outtype])
        for key, field in reference.fields.items():
            if key.startswith("GGUF.") or key in PROVENANCE:
                continue
            assert key in ours.fields, f"{outtype}: key {key!r} is missing (llama.cpp writes {field.contents()!r:.80})"
            assert ours.fields[key].types == field.types, f"{outtype}: {key!r} has types {ours.fields[key].types}"
            assert ours.fields[key].contents() == field.contents(), f"{outtype}: {key!r} differs"


@pytest.mark.points(2)
def test_tensors_equal_llama_cpps_converter(model_dir, converted):
    """The F32 and F16 files hold the same tensors as llama.cpp's converter writes: names, shapes,
    types (F16 for matrices, F32 for norms) and bytes, q and k permuted included."""
    for outtype in ("f32", "f16"):
        reference = {t.name: t for t in gguf.GGUFReader(reference_gguf(model_dir, outtype)).tensors}
        ours = {t.name: t for t in gguf.GGUFReader(converted[outtype]).tensors}
        assert set(ours) == set(reference), f"{outtype}: tensor names differ: {set(ours) ^ set(reference)}"
        for name, theirs in reference.items():
            mine = ours[name]
            assert mine.tensor_type == theirs.tensor_type, f"{outtype} {name}: {mine.tensor_type.name}"
            assert list(mine.shape) == list(theirs.shape), f"{outtype} {name}: shape {list(mine.shape)}"
            assert np.array_equal(np.asarray(mine.data).view(np.uint8), np.asarray(theirs.data).view(np.uint8)), \
                f"{outtype} {name}: the bytes differ"


@pytest.mark.llama_cpp
@pytest.mark.points(3)
def test_llama_cpp_logits_equal_transformers(model, tokenizer, converted):
    """Fed the same token ids, llama.cpp's logits on your F32 file equal transformers' (max abs
    difference <= 1e-2, or 1/300 of the largest logit where logits are large) at every position, and
    the F16 file's stay within 5e-2 (or 1/60 of the largest logit); the top tokens agree. (llama.cpp's
    own converter is 1.45e-2 off on a random Llama whose largest logit is 6.3.)"""
    prompts = ["The cat sat on the mat", '{"name": "Ana", "age": 31, "city": "Lima"}', "Café 🍕 " * 5]
    for outtype, absolute in (("f32", 1e-2), ("f16", 5e-2)):
        llm = load_llama(converted[outtype], logits_all=True)
        try:
            for prompt in prompts:
                ids = tokenizer(prompt).input_ids
                with torch.no_grad():
                    expected = model(torch.tensor([ids], device=model.device)).logits[0].float().cpu().numpy()
                assert_logits_agree(llama_logits(llm, ids), expected, f"{outtype} {prompt!r}",
                                    relative=absolute / 3, absolute=absolute)
        finally:
            llm.close()


def assert_logits_agree(got: np.ndarray, expected: np.ndarray, what: str, relative: float = 1e-2,
                        absolute: float = 0.0) -> None:
    """llama.cpp's logits ``got`` agree with transformers' ``expected`` (both (positions, vocab)):
    within max(``absolute``, ``relative`` x the largest |logit|) everywhere (an absolute bound alone
    is too tight for large random weights: llama.cpp's own converter is 1e-2 to 3e-2 off on them),
    and the same top token at every position, save where transformers' own top two are within
    that tolerance."""
    tolerance = max(absolute, relative * float(np.abs(expected).max()))
    difference = float(np.abs(got - expected).max())
    assert difference <= tolerance, f"{what}: max |llama.cpp - transformers| = {difference:.4g} > {tolerance:.4g}"
    ours, theirs = got.argmax(-1), expected.argmax(-1)
    rows = np.arange(len(expected))
    real = (ours != theirs) & (expected[rows, theirs] - expected[rows, ours] > tolerance)
    assert not real.any(), f"{what}: llama.cpp's top token differs at positions {np.flatnonzero(real).tolist()[:10]}"


@pytest.mark.llama_cpp
@pytest.mark.points(3)
@pytest.mark.parametrize("shape", ["head_dim", "llama3_rope", "llama3_rope_head_dim", "linear_rope"])
def test_other_shapes_llama_cpp_logits_equal_transformers(llama_shape, shape, tmp_path):
    """llama.cpp loads your F32 file of a Llama whose head_dim (32) is not hidden / heads (16), of one
    with Llama 3.1's rope scaling (also with head_dim 32: rope_freqs then holds 16 factors) and of one
    with linear rope scaling, and its logits over 96 tokens
    agree with transformers' (the scaling matters from position 16 on)."""
    folder, model, tokenizer = llama_shape(shape)
    path = convert.convert(folder, tmp_path / f"{shape}.gguf", "f32")
    ids = tokenizer(HELDOUT).input_ids[:96]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    llm = load_llama(path, logits_all=True)
    try:
        assert_logits_agree(llama_logits(llm, ids), expected, shape)
    finally:
        llm.close()


@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_llama3_tokenizer_converts_and_sentencepiece_bpe_is_refused(llama_shape, tmp_path):
    """A byte-level BPE with Llama 3's pre-tokenizer converts so that llama.cpp tokenizes every test
    text as HF does; a SentencePiece-style BPE (byte fallback, as Llama 2's), which llama.cpp would
    read differently, is a ConvertError naming what is unsupported, and nothing is written."""
    folder, _, tokenizer = llama_shape("llama3_tokenizer")
    llm = load_llama(convert.convert(folder, tmp_path / "llama3.gguf", "f32"), vocab_only=True)
    try:
        for text in TOKENIZER_CORPUS:
            expected = tokenizer(text, add_special_tokens=False).input_ids
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == expected, repr(text)
    finally:
        llm.close()
    sentencepiece = llama_shape("sentencepiece_bpe")[0]
    with pytest.raises(convert.ConvertError, match="SentencePiece") as error:
        convert.convert(sentencepiece, tmp_path / "sentencepiece.gguf", "f32")
    assert str(sentencepiece) in str(error.value)
    assert not (tmp_path / "sentencepiece.gguf").exists()


@pytest.mark.scaffold
def test_require_llama_folder_skips_with_the_converters_reason(llama_shape):
    """The tests skip a folder the converter refuses, with its reason."""
    from .helpers import require_llama_folder

    with pytest.raises(pytest.skip.Exception, match="SentencePiece"):
        require_llama_folder(llama_shape("sentencepiece_bpe")[0])


@pytest.mark.llama_cpp
@pytest.mark.points(2)
def test_llama_cpp_tokenizes_like_hf(tokenizer, converted, model_dir, tmp_path):
    """llama.cpp tokenizes JSON, whitespace runs, tabs and newlines, accents, CJK and emoji to exactly
    the HF tokenizer's ids (the pre-tokenizer name decides this; special tokens written in the
    text are parsed as HF parses them), and adds bos as HF does: also for the same model with
    GPT-2's post-processor (ByteLevel, no bos) and no add_bos_token in its tokenizer_config.json,
    where HF adds no bos."""
    from transformers import AutoTokenizer

    llm = load_llama(converted["f32"], vocab_only=True)
    try:
        for text in TOKENIZER_CORPUS:
            expected = tokenizer(text, add_special_tokens=False).input_ids
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == expected, repr(text)
        assert llm.tokenize(b"Hello", add_bos=True) == tokenizer("Hello").input_ids
    finally:
        llm.close()
    folder = without_bos_post_processor(model_dir, tmp_path / "no_bos")
    expected = AutoTokenizer.from_pretrained(folder)("Hello").input_ids
    assert expected == tokenizer("Hello", add_special_tokens=False).input_ids  # the oracle itself adds no bos
    llm = load_llama(convert.convert(folder, tmp_path / "no_bos.gguf", "f32"), vocab_only=True)
    try:
        assert llm.tokenize(b"Hello", add_bos=True) == expected, "llama.cpp adds bos where HF does not"
    finally:
        llm.close()


def without_bos_post_processor(model_dir, out):
    """``model_dir`` copied to ``out`` (weights linked) with GPT-2's ByteLevel post-processor in its
    tokenizer.json (which adds no bos) and no add_bos_token in its tokenizer_config.json."""
    out.mkdir()
    for item in model_dir.iterdir():
        if item.name not in ("tokenizer.json", "tokenizer_config.json"):
            (out / item.name).symlink_to(item.resolve())
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                              "use_regex": False}
    (out / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    settings = {}
    if (model_dir / "tokenizer_config.json").exists():
        settings = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    settings.pop("add_bos_token", None)
    (out / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return out


@pytest.mark.points(1)
def test_bad_input_is_a_clear_error(converted, tmp_path):
    """While a good folder converts, a missing folder, a folder without config.json, a model that is
    not a Llama (GPT-2), an unknown outtype and a rope scaling the converter does not write (yarn)
    are ConvertErrors (ValueErrors) naming the folder, the argument or the rope type."""
    assert converted["f32"].stat().st_size > 0
    with pytest.raises(ValueError, match="nowhere"):
        convert.convert(tmp_path / "nowhere", tmp_path / "out.gguf")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(convert.ConvertError, match=r"config\.json"):
        convert.convert(empty, tmp_path / "out.gguf")
    gpt2 = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64).save_pretrained(gpt2)
    with pytest.raises(convert.ConvertError, match="gpt2") as error:
        convert.convert(gpt2, tmp_path / "out.gguf")
    assert "Llama" in str(error.value)
    with pytest.raises(convert.ConvertError, match="outtype"):
        convert.convert(gpt2, tmp_path / "out.gguf", outtype="q3")
    yarn = tmp_path / "yarn"
    LlamaConfig(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2, vocab_size=64,
                rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                 "original_max_position_embeddings": 512}).save_pretrained(yarn)
    with pytest.raises(convert.ConvertError, match="yarn"):
        convert.convert(yarn, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def added_name(vocab) -> str:
    """The text of the variant's non-special added token: ``foo``, or ``<foo>`` where the BPE
    vocabulary has ``foo`` already (GPT-2's)."""
    return next(name for name in ("foo", "<foo>", "<foo-added>") if name not in vocab)


def tokenizer_variant(model_dir, out):
    """``model_dir`` copied to ``out`` (weights linked) with a tokenizer shaped unlike the fixture's: an added
    token 'foo' that is not special and an eos '<|endoftext|>' only in added_tokens (in place of the BPE
    vocabulary's last two tokens and their merges), bos_token written as an AddedToken dict in tokenizer_config.json
    (no add_bos_token there), and a post-processor that appends eos and puts nothing first. Returns
    ``(folder, foo's id, foo's text)``."""
    out.mkdir()
    for item in model_dir.iterdir():
        if item.name not in ("tokenizer.json", "tokenizer_config.json"):
            (out / item.name).symlink_to(item.resolve())
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab, merges = spec["model"]["vocab"], spec["model"]["merges"]
    pairs = [m.split(" ") if isinstance(m, str) else m for m in merges]
    freed = sorted(vocab, key=vocab.get)[-2:]  # the last two ids (HF numbers added tokens after the vocabulary)
    spec["model"]["merges"] = [m for m, pair in zip(merges, pairs, strict=True)
                               if "".join(pair) not in freed and not set(pair) & set(freed)]
    foo_id, eos_id = (vocab.pop(token) for token in freed)
    if "<|endoftext|>" in vocab or not ({"<s>"} & ({*vocab} | {t["content"] for t in spec["added_tokens"]})):
        pytest.skip(f"{model_dir}: this tokenizer variant needs a '<s>' token (its bos) and no '<|endoftext|>' "
                    "below the vocabulary's last two ids (GPT-2's tokenizer has no '<s>')")
    for content, index, special in ((added_name(vocab), foo_id, False), ("<|endoftext|>", eos_id, True)):
        spec["added_tokens"].append({"id": index, "content": content, "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": special})
    spec["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"Sequence": {"id": "A", "type_id": 0}},
                                         {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
                              "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                                       {"SpecialToken": {"id": "<|endoftext|>", "type_id": 1}}],
                              "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [eos_id],
                                                                   "tokens": ["<|endoftext|>"]}}}
    (out / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    settings = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    settings.pop("add_bos_token", None)
    settings["eos_token"] = "<|endoftext|>"
    settings["bos_token"] = {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                             "rstrip": False, "single_word": False, "special": True}
    (out / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return out, foo_id, added_name(vocab)


@pytest.mark.llama_cpp
@pytest.mark.points(0.5)
def test_another_tokenizer_shape_equals_llama_cpps_converter(model_dir, llama_shape, tmp_path):
    """For a tokenizer unlike the fixture's (a non-special added token, eos only in added_tokens, bos_token as
    an AddedToken dict, a post-processor that appends eos and puts no bos first) your file's tokenizer keys
    equal what llama.cpp's convert_hf_to_gguf.py writes (the added token USER_DEFINED, eos's id present),
    and llama.cpp puts bos first exactly when the HF tokenizer does (here: never); a config whose vocab_size
    passes the tokenizer's tokens gets the same padding tokens and types as llama.cpp's converter writes."""
    from transformers import AutoTokenizer

    require_llama_folder(model_dir)
    folder, foo_id, foo = tokenizer_variant(model_dir, tmp_path / "variant")
    hf = AutoTokenizer.from_pretrained(folder)
    assert hf.convert_tokens_to_ids(foo) == foo_id and hf.eos_token == "<|endoftext|>" and hf.bos_token == "<s>"
    hf_ids = hf("Hello").input_ids
    ours = gguf.GGUFReader(convert.convert(folder, tmp_path / "variant.gguf", "f32"))
    reference = gguf.GGUFReader(reference_gguf(folder, "f32"))
    for key, field in reference.fields.items():
        if key.startswith("tokenizer.") and key not in PROVENANCE and key != "tokenizer.ggml.add_eos_token":
            assert key in ours.fields, f"key {key!r} is missing (llama.cpp writes {field.contents()!r:.80})"
            assert ours.fields[key].contents() == field.contents(), f"{key!r} differs"
    assert ours.fields["tokenizer.ggml.token_type"].contents()[foo_id] == int(gguf.TokenType.USER_DEFINED)
    llm = load_llama(tmp_path / "variant.gguf", vocab_only=True)
    try:
        adds_bos = llm.tokenize(b"Hello", add_bos=True)[:1] == [hf.bos_token_id]
    finally:
        llm.close()
    assert adds_bos == (hf_ids[:1] == [hf.bos_token_id]) == False  # noqa: E712 (the HF oracle itself puts no bos)
    folder = llama_shape("padded_vocab")[0]  # ids past the tokenizer's tokens: llama.cpp writes [PAD<id>], UNUSED
    ours = gguf.GGUFReader(convert.convert(folder, tmp_path / "padded.gguf", "f32"))
    reference = gguf.GGUFReader(reference_gguf(folder, "f32"))
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
        assert ours.fields[key].contents() == reference.fields[key].contents(), f"padded vocabulary: {key!r} differs"
