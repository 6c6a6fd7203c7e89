"""Hidden tests for lab03: the same properties on inputs the visible tests never show (other files,
shapes, model shapes, byte orders, templates, quantization types)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..helpers import (
    HELDOUT,
    convert,
    gguf_read,
    hf_greedy_text,
    llama_cpp_quantize,
    llama_logits,
    load_llama,
    quantize_model,
    quants,
    reference_gguf,
    reference_source,
    require_llama_folder,
    run,
    serve,
)
from ..test_task1_read import compare_with_reader, write_file

gguf = pytest.importorskip("gguf", reason="needs the gguf package: pip install -e '.[llama]'")
QT = gguf.GGMLQuantizationType

# ---------------------------------------------------------------------------------- task 1


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_file(tmp_path_factory.mktemp("hidden_gguf") / "all_types.gguf", alignment=16)


@pytest.mark.task(1)
@pytest.mark.points(1)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0.0, 1.0, exclude_max=True), value=st.integers(0, 255), width=st.sampled_from([1, 8]))
def test_corrupted_bytes_never_escape_as_other_errors(written, position, value, width):
    """Overwriting bytes anywhere in the header, metadata or tensor infos either still parses or is a
    GGUFError: never an IndexError, struct.error, MemoryError, OverflowError or a hang."""
    good = bytearray(written.read_bytes())
    end = gguf_read.parse_gguf(bytes(good)).data_offset
    at = int(position * (end - width))
    good[at:at + width] = bytes([value]) * width
    try:
        gguf_read.parse_gguf(bytes(good))
    except gguf_read.GGUFError as error:
        assert 0 <= error.offset <= len(good)


@pytest.mark.task(1)
@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_gpt2_vocab_file_as_llama_cpp_reads_it():
    """llama.cpp's GPT-2 vocabulary file (50,257 byte-level BPE tokens and 50,000 merges), read by
    llama.cpp itself: the same tokens in the same order, and the same integer and string metadata."""
    import llama_cpp

    path = reference_source().source_dir() / "models" / "ggml-vocab-gpt-2.gguf"
    ours = gguf_read.read_gguf(path)
    llm = load_llama(path, vocab_only=True)
    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        count = llama_cpp.llama_vocab_n_tokens(vocab)
        expected = [llama_cpp.llama_vocab_get_text(vocab, i).decode("utf-8") for i in range(count)]
        assert ours.metadata["tokenizer.ggml.tokens"] == expected
        assert len(ours.metadata["tokenizer.ggml.merges"]) > 40_000
        for key, text in llm.metadata.items():
            value = ours.metadata[key]
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                assert str(value) == text, key
    finally:
        llm.close()


@pytest.mark.task(1)
@pytest.mark.points(1)
def test_version_2_big_endian_and_alignment_16(written, tmp_path):
    """A version 2 file (same layout as 3) and general.alignment = 16 read; a big-endian file written
    by GGUFWriter is refused with a GGUFError at offset 4 that says so."""
    compare_with_reader(written)
    assert gguf_read.read_gguf(written).alignment == 16
    data = bytearray(written.read_bytes())
    data[4:8] = struct.pack("<I", 2)
    assert gguf_read.parse_gguf(bytes(data)).version == 2
    big = write_file(tmp_path / "big.gguf", endian=gguf.GGUFEndian.BIG)
    with pytest.raises(gguf_read.GGUFError, match=r"(?i)big.endian") as error:
        gguf_read.read_gguf(big)
    assert error.value.offset == 4


# ---------------------------------------------------------------------------------- task 2


@pytest.fixture(scope="module")
def other_llama(model_dir, tmp_path_factory):
    """A random-weights Llama of another shape: 3 layers, one KV head for 4 query heads (MQA),
    head_dim 32, tied input and output embeddings, rope theta 500000, the fixture's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    require_llama_folder(model_dir)
    folder = tmp_path_factory.mktemp("other_llama")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=320, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=1, head_dim=32, rope_theta=500000.0,
                         max_position_embeddings=512, tie_word_embeddings=True, rms_norm_eps=1e-6,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(5)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(4.0)  # larger weights: logits that differ clearly between positions
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


@pytest.mark.task(2)
@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_other_llama_shape_logits(other_llama, tmp_path):
    """On a Llama with MQA, head_dim 32, tied embeddings and another rope base, llama.cpp's logits on
    your F32 file equal transformers' (within 1 % of the largest logit: these weights are large)."""
    folder, model, tokenizer = other_llama
    path = convert.convert(folder, tmp_path / "other.gguf", "f32")
    llm = load_llama(path, logits_all=True)
    try:
        ids = tokenizer('{"name": "Ana"} The cat sat on the mat and looked at the door').input_ids
        with torch.no_grad():
            expected = model(torch.tensor([ids])).logits[0].numpy()
        assert np.abs(llama_logits(llm, ids) - expected).max() <= 1e-2 * np.abs(expected).max()
    finally:
        llm.close()


@pytest.mark.task(2)
@pytest.mark.points(0.5)
@pytest.mark.parametrize("shape", ["other", "head_dim", "llama3_rope", "linear_rope"])
def test_other_llama_shape_equals_llama_cpps_converter(other_llama, llama_shape, shape, tmp_path):
    """On other shapes, your file's metadata and tensors equal those llama.cpp's converter writes:
    the other Llama in F16 (rms epsilon 1e-6, rope base 500,000, one KV head...); in F32 (the files
    tasks 5 and 6 convert too), head_dim 32 where hidden / heads is 16 (key_length, value_length),
    Llama 3.1's rope scaling (the rope_freqs tensor), linear rope scaling (rope.scaling.type and
    factor)."""
    from ..test_task2_convert import PROVENANCE

    folder, outtype = (other_llama[0], "f16") if shape == "other" else (llama_shape(shape)[0], "f32")
    ours_reader = gguf.GGUFReader(convert.convert(folder, tmp_path / "other.gguf", outtype))
    theirs_reader = gguf.GGUFReader(reference_gguf(folder, outtype))
    for key, field in theirs_reader.fields.items():
        if not key.startswith("GGUF.") and key not in PROVENANCE:
            assert key in ours_reader.fields, key
            assert ours_reader.fields[key].contents() == field.contents(), key
    ours = {t.name: t for t in ours_reader.tensors}
    theirs = {t.name: t for t in theirs_reader.tensors}
    assert set(ours) == set(theirs)
    for name, tensor in theirs.items():
        assert ours[name].tensor_type == tensor.tensor_type, name
        assert np.array_equal(np.asarray(ours[name].data).view(np.uint8), np.asarray(tensor.data).view(np.uint8)), name


# ---------------------------------------------------------------------------------- task 3


def assert_same(type_name: str, values: np.ndarray) -> None:
    ours = getattr(quants, f"quantize_{type_name.lower()}")(values)
    expected = gguf.quantize(np.asarray(values, dtype=np.float32), QT[type_name])
    assert ours.shape == expected.shape and np.array_equal(ours, expected), type_name


#: Each test's point is shared by the core types and the stretch types, so that core-only code
#: earns the core half.
TYPE_GROUPS = pytest.mark.parametrize("types", [("Q8_0", "Q4_0"), ("Q4_1", "Q5_0")], ids=["core", "stretch"])


@pytest.mark.task(3)
@pytest.mark.points(1)
@TYPE_GROUPS
def test_other_dtypes_layouts_and_shapes(types):
    """float16 and float64 inputs, a transposed (non-contiguous) view, a single block and a 4-D
    array quantize as gguf does, for all four types."""
    rng = np.random.default_rng(99)
    cases = [rng.standard_normal((3, 64)).astype(np.float16), rng.standard_normal((2, 96)),
             np.ascontiguousarray(rng.standard_normal((64, 5)).astype(np.float32)).T,
             rng.standard_normal(32).astype(np.float32), rng.standard_normal((2, 2, 2, 32)).astype(np.float32)]
    for values in cases:
        for type_name in types:
            assert_same(type_name, values)


@pytest.mark.task(3)
@pytest.mark.points(1)
@TYPE_GROUPS
def test_every_weight_of_the_model(types, model_dir):
    """Every matrix of the model whose rows are whole blocks, in every type, byte for byte."""
    from safetensors import safe_open

    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118
                tensor = handle.get_tensor(name).float().numpy()
                if tensor.ndim == 2 and tensor.shape[-1] % 32 == 0:
                    for type_name in types:
                        assert_same(type_name, tensor)


@pytest.mark.task(3)
@pytest.mark.points(1)
@TYPE_GROUPS
def test_ties_signs_and_no_writes(types):
    """Blocks where +m and -m tie for the largest magnitude (the first wins), all-negative blocks,
    values exactly on rounding boundaries; the input array is never written to."""
    block = np.linspace(-1, 1, 32, dtype=np.float32)  # -1 first, +1 last: a tie
    negative = -np.abs(np.random.default_rng(1).standard_normal(32)).astype(np.float32)
    halves = (np.arange(32, dtype=np.float32) - 16) / 2 * (3.0 / 127)  # x / d lands on .5
    values = np.stack([block, block[::-1].copy(), negative, halves])
    before = values.copy()
    for type_name in types:
        assert_same(type_name, values)
    np.testing.assert_array_equal(values, before)


# ---------------------------------------------------------------------------------- task 4


@pytest.mark.task(4)
@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_q4_1_and_q5_0_files_equal_llama_cpps(model_dir, tmp_path):
    """Q4_1 and Q5_0 files (your stretch quantizers) agree with llama.cpp's quantizer on every tensor
    it writes in that type, and keep the same tensors in F32."""
    require_llama_folder(model_dir)
    f32 = reference_gguf(model_dir, "f32")
    for type_name in ("Q4_1", "Q5_0"):
        quantize_model.quantize_file(f32, tmp_path / f"ours-{type_name}.gguf", type_name)
        ours = {t.name: t for t in gguf.GGUFReader(tmp_path / f"ours-{type_name}.gguf").tensors}
        theirs = {t.name: t for t in gguf.GGUFReader(
            llama_cpp_quantize(f32, tmp_path / f"lc-{type_name}.gguf", type_name)).tensors}
        assert {n for n, t in ours.items() if t.tensor_type == QT.F32} == \
            {n for n, t in theirs.items() if t.tensor_type == QT.F32}
        for name, tensor in theirs.items():
            if tensor.tensor_type == QT[type_name]:
                assert np.array_equal(np.asarray(ours[name].data).view(np.uint8),
                                      np.asarray(tensor.data).view(np.uint8)), f"{type_name} {name}"


@pytest.mark.task(4)
@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_q8_0_from_an_f16_file(model_dir, tmp_path):
    """Quantizing from an F16 file (not F32) gives llama.cpp's Q8_0 bytes too."""
    require_llama_folder(model_dir)
    f16 = reference_gguf(model_dir, "f16")
    quantize_model.quantize_file(f16, tmp_path / "ours.gguf", "Q8_0")
    ours = {t.name: t for t in gguf.GGUFReader(tmp_path / "ours.gguf").tensors}
    theirs = {t.name: t for t in gguf.GGUFReader(llama_cpp_quantize(f16, tmp_path / "lc.gguf", "Q8_0")).tensors}
    for name, tensor in theirs.items():
        assert ours[name].tensor_type == tensor.tensor_type, name
        assert np.array_equal(np.asarray(ours[name].data).view(np.uint8), np.asarray(tensor.data).view(np.uint8)), name


# ---------------------------------------------------------------------------------- task 5


@pytest.mark.task(5)
@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_perplexity_grows_with_coarser_types(model_dir, tokenizer, tmp_path):
    """On held-out text, perplexity from Q8_0 stays within 2 % of F32's and Q4_K_M's within 10 %
    (files from llama.cpp's quantizer; fixture trained)."""
    require_llama_folder(model_dir)
    f32 = reference_gguf(model_dir, "f32")
    ids = tokenizer(HELDOUT).input_ids[:256]
    values = {}
    for name in ("F32", "Q8_0", "Q4_K_M"):
        path = f32 if name == "F32" else llama_cpp_quantize(f32, tmp_path / f"{name}.gguf", name)
        llm = run.load(path, n_ctx=256, logits_all=True, n_threads=1)
        try:
            values[name] = run.perplexity(llm, ids)
        finally:
            llm.close()
    assert values["Q8_0"] == pytest.approx(values["F32"], rel=0.02)
    assert values["Q4_K_M"] == pytest.approx(values["F32"], rel=0.10)
    assert values["Q4_K_M"] != values["Q8_0"]


@pytest.mark.task(5)
@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_chat_with_a_system_message_and_history(model_dir, model, tokenizer, other_llama):
    """A conversation with a system message and an earlier assistant answer continues as in
    transformers, on the fixture and on a random-weights Llama (where every prompt token changes
    the answer, so nothing of the conversation may be dropped)."""
    require_llama_folder(model_dir)
    if not tokenizer.chat_template:
        pytest.skip("the model has no chat template")
    messages = [{"role": "system", "content": "You answer in one short sentence."},
                {"role": "user", "content": "What is the capital of Japan?"},
                {"role": "assistant", "content": "The capital of Japan is Tokyo."},
                {"role": "user", "content": "Give me a user record as JSON."}]
    folder, other_model, _ = other_llama
    for path, hf_model in ((reference_gguf(model_dir, "f32"), model), (reference_gguf(folder, "f32"), other_model)):
        llm = run.load(path, n_ctx=256, n_threads=1)
        try:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=False)
            expected = hf_greedy_text(hf_model, tokenizer, list(ids), 24)
            # random weights emit stray UTF-8 pieces: HF shows them as U+FFFD, llama.cpp drops them
            assert run.chat(llm, messages, max_tokens=24).replace("\ufffd", "") == expected.replace("\ufffd", "")
        finally:
            llm.close()


# ---------------------------------------------------------------------------------- task 6

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
          "+ '<|im_end|>' + '\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA2 = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
          "message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}"
          "{% endfor %}")


@pytest.mark.task(6)
@pytest.mark.points(1)
def test_go_template_for_chatml_and_a_refusal():
    """ChatML becomes a Go template with no prefix and '<|im_start|>assistant' last; a template that
    formats user and assistant turns differently (Llama 2's) is a ValueError naming chat_template."""
    template = serve.go_template(CHATML, "<s>", "</s>")
    assert template == ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
                        "<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="chat_template"):
        serve.go_template(LLAMA2, "<s>", "</s>")
