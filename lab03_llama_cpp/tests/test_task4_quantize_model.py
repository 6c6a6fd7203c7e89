"""Task 4: quantize a whole GGUF with your quantizers; compare with llama.cpp's own quantizer."""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import llama_cpp_quantize, llama_logits, load_llama, quantize_model, reference_gguf, require_llama_folder

gguf = pytest.importorskip("gguf", reason="needs the gguf package: pip install -e '.[llama]'")
pytestmark = pytest.mark.task(4)


@pytest.fixture(scope="module")
def f32_file(model_dir):
    """The model in F32, written by llama.cpp's own converter (so this task does not need task 2)."""
    require_llama_folder(model_dir)
    return reference_gguf(model_dir, "f32")


@pytest.fixture(scope="module")
def files(f32_file, tmp_path_factory):
    """{type: (our file, the types we wrote)} for Q8_0 and Q4_0."""
    folder = tmp_path_factory.mktemp("quantized")
    return {t: (folder / f"ours-{t}.gguf", quantize_model.quantize_file(f32_file, folder / f"ours-{t}.gguf", t))
            for t in ("Q8_0", "Q4_0")}


@pytest.fixture(scope="module")
def llama_cpp_files(f32_file, tmp_path_factory):
    """The same F32 file quantized by llama.cpp (llama_model_quantize)."""
    folder = tmp_path_factory.mktemp("llama_cpp_quantized")
    return {t: llama_cpp_quantize(f32_file, folder / f"llama-cpp-{t}.gguf", t) for t in ("Q8_0", "Q4_0", "Q4_K_M")}


def tensors(path) -> dict:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


@pytest.mark.points(2)
def test_tensor_type_keeps_vectors_in_full_precision():
    """tensor_type keeps every 1-D tensor F32 whatever its name (llama.cpp's quantizer quantizes only
    tensors of 2 or more dimensions: norms, biases, rope_freqs) and quantizes a matrix exactly when
    the gguf package's quantizer can, which is when its rows (the last NumPy axis, ggml's ne0)
    are whole blocks, whatever the number of rows and of dimensions (3-D expert tensors included)."""
    assert quantize_model.tensor_type("blk.0.attn_norm.weight", (256,), "Q4_0") == "F32"
    assert quantize_model.tensor_type("output_norm.weight", (4096,), "Q8_0") == "F32"
    for name in ("rope_freqs.weight", "blk.0.attn_q.bias", "blk.1.ffn_down.bias"):
        for length in (32, 64, 256):
            assert quantize_model.tensor_type(name, (length,), "Q8_0") == "F32", (name, length)
    assert quantize_model.tensor_type("blk.3.ffn_up.weight", (512, 256), "Q4_0") == "Q4_0"
    assert quantize_model.tensor_type("token_embd.weight", (512, 256), "Q8_0") == "Q8_0"
    assert quantize_model.tensor_type("blk.0.attn_q.weight", (8, 48), "Q8_0") == "F32"  # 48 is not whole blocks
    for shape in ((48, 64), (64, 48), (16, 64), (64, 16), (3, 96), (96, 40), (4, 64, 64), (2, 64, 48)):
        for type_name in ("Q8_0", "Q4_0"):
            try:
                gguf.quantize(np.zeros(shape, dtype=np.float32), gguf.GGMLQuantizationType[type_name])
                expected = type_name
            except gguf.QuantError:
                expected = "F32"
            got = quantize_model.tensor_type("blk.0.attn_k.weight", shape, type_name)
            assert got == expected, f"NumPy shape {shape} in {type_name}: {got}, gguf's quantizer says {expected}"


@pytest.mark.llama_cpp
@pytest.mark.points(4)
def test_q8_0_file_equals_llama_cpps(files, llama_cpp_files):
    """Your Q8_0 file holds the same tensors, with the same types and the same bytes, as llama.cpp's
    quantizer writes for the same F32 file, and general.file_type says MOSTLY_Q8_0."""
    path, written = files["Q8_0"]
    ours, theirs = tensors(path), tensors(llama_cpp_files["Q8_0"])
    assert set(ours) == set(theirs)
    assert written == {name: t.tensor_type.name for name, t in ours.items()}
    for name, tensor in theirs.items():
        assert ours[name].tensor_type == tensor.tensor_type, f"{name}: {ours[name].tensor_type.name}"
        assert np.array_equal(np.asarray(ours[name].data).view(np.uint8), np.asarray(tensor.data).view(np.uint8)), name
    # leak-check: allowed, the gguf package's reader as the oracle
    fields = gguf.GGUFReader(path).fields
    assert fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    assert fields["general.file_type"].types == [gguf.GGUFValueType.UINT32]


@pytest.mark.llama_cpp
@pytest.mark.points(2.5)
def test_q4_0_file_against_llama_cpps(files, llama_cpp_files, f32_file):
    """In Q4_0, llama.cpp keeps the same tensors in F32 as you do; every tensor it writes as Q4_0 has
    your bytes; it gives the output projection more bits (Q6_K) than you, so your file is a little
    smaller. Your tensors take under 0.2x the F32 tensors' bytes, and the metadata is copied."""
    path, _ = files["Q4_0"]
    ours, theirs = tensors(path), tensors(llama_cpp_files["Q4_0"])
    assert {n for n, t in ours.items() if t.tensor_type.name == "F32"} == \
        {n for n, t in theirs.items() if t.tensor_type.name == "F32"}
    same_type = [n for n, t in theirs.items() if t.tensor_type.name == "Q4_0"]
    other = {n for n, t in theirs.items() if t.tensor_type.name not in ("F32", "Q4_0")}
    # the output projection: output.weight, or token_embd.weight where the model ties the two
    projection = "output.weight" if "output.weight" in theirs else "token_embd.weight"
    assert other <= {projection}, f"llama.cpp wrote these in other types: {other}"
    for name in same_type:
        assert ours[name].tensor_type.name == "Q4_0", name
        assert np.array_equal(np.asarray(ours[name].data).view(np.uint8),
                              np.asarray(theirs[name].data).view(np.uint8)), name
    assert path.stat().st_size <= llama_cpp_files["Q4_0"].stat().st_size
    # the tensors' bytes: the vocabulary in the metadata stays as it is (GPT-2's is 1.5 MB)
    assert sum(int(t.n_bytes) for t in ours.values()) <= 0.2 * sum(int(t.n_bytes) for t in tensors(f32_file).values())
    source = gguf.GGUFReader(f32_file).fields
    copied = gguf.GGUFReader(path).fields
    for key in ("tokenizer.ggml.tokens", "tokenizer.chat_template", "llama.rope.freq_base"):
        if key in source:
            assert copied[key].contents() == source[key].contents(), key
    assert copied["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q4_0


@pytest.mark.llama_cpp
@pytest.mark.points(2)
def test_quantized_files_run_in_llama_cpp(files, llama_cpp_files, f32_file, tokenizer):
    """llama.cpp loads your Q8_0 and Q4_0 files; Q8_0's logits stay close to F32's (the greedy next
    token agrees almost everywhere) and Q4_0's further off but correlated: the greedy token agrees at
    half the positions and the logits correlate above 0.9, or, where llama.cpp's own Q4_0 file does
    not reach that either (random weights: flat logits, and a tied output projection that yours
    keeps in Q4_0 where llama.cpp's gets Q6_K), within 0.25 and 0.06 of what llama.cpp's does."""
    ids = tokenizer('{"name": "Ana", "age": 31, "city": "Lima"} The cat sat on the mat.').input_ids

    def logits_of(path):
        llm = load_llama(path, logits_all=True)
        try:
            return llama_logits(llm, ids)
        finally:
            llm.close()

    def agreement_and_correlation(logits):
        return (float(np.mean(logits.argmax(axis=1) == reference.argmax(axis=1))),
                float(np.corrcoef(logits.ravel(), reference.ravel())[0, 1]))

    reference = logits_of(f32_file)
    theirs = agreement_and_correlation(logits_of(llama_cpp_files["Q4_0"]))
    bounds = {"Q8_0": (0.9, 0.9), "Q4_0": (min(0.5, theirs[0] - 0.25), min(0.9, theirs[1] - 0.06))}
    for type_name, (agreement, least_correlation) in bounds.items():
        same, correlation = agreement_and_correlation(logits_of(files[type_name][0]))
        assert same >= agreement, f"{type_name}: the greedy token agrees with F32 at {same:.0%} of positions"
        assert correlation > least_correlation, f"{type_name}: logits correlate with F32's at {correlation:.3f}"


@pytest.mark.points(1)
def test_bad_input_is_a_clear_error(files, f32_file, tmp_path):
    """An unknown type name (Q4_K_M: K-quants are llama.cpp's, not yours), a missing file and a file
    that is not GGUF are clear errors naming the argument."""
    assert files["Q8_0"][0].stat().st_size > 0
    with pytest.raises(ValueError, match="Q4_K_M"):
        quantize_model.quantize_file(f32_file, tmp_path / "k.gguf", "Q4_K_M")
    with pytest.raises(FileNotFoundError, match="missing"):
        quantize_model.quantize_file(tmp_path / "missing.gguf", tmp_path / "out.gguf", "Q8_0")
    text = tmp_path / "text.gguf"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="GGUF"):
        quantize_model.quantize_file(text, tmp_path / "out.gguf", "Q8_0")


@pytest.mark.points(0.5)
def test_tensors_of_other_shapes_are_quantized_by_their_numpy_shape(tmp_path):
    """A file whose matrices are not square nor whole blocks both ways (NumPy shapes (33, 64), (64, 48) and a
    3-D (2, 32, 64)): each tensor is written as the gguf package's quantizer can write it (its rows, the last
    NumPy axis, whole blocks) with gguf.quantize's bytes, F32 otherwise, and the returned types say so."""
    rng = np.random.default_rng(4)
    shapes = {"blk.0.ffn_up.weight": (33, 64), "blk.0.ffn_down.weight": (64, 48),
              "blk.0.ffn_gate_exps.weight": (2, 32, 64)}
    values = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    src = tmp_path / "shapes.gguf"
    writer = gguf.GGUFWriter(src, arch="llama")
    for name, array in values.items():
        writer.add_tensor(name, array)
    # leak-check: allowed, gguf.GGUFWriter's own protocol, used to write the test's source file
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    written = quantize_model.quantize_file(src, tmp_path / "q8.gguf", "Q8_0")
    ours = {t.name: t for t in gguf.GGUFReader(tmp_path / "q8.gguf").tensors}
    for name, array in values.items():
        try:
            expected_bytes, expected = gguf.quantize(array, gguf.GGMLQuantizationType.Q8_0), "Q8_0"
        except gguf.QuantError:
            expected_bytes, expected = array, "F32"
        assert written[name] == expected and ours[name].tensor_type.name == expected, (name, written[name])
        assert np.array_equal(np.asarray(ours[name].data).view(np.uint8).reshape(-1),
                              expected_bytes.view(np.uint8).reshape(-1)), name
