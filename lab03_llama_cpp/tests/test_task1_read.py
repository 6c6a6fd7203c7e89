"""Task 1: read GGUF by hand; agree with gguf.GGUFReader; refuse bad bytes naming the offset."""

from __future__ import annotations

import ctypes
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import gguf_read, llama_cpp_quantize, reader_metadata, reference_gguf, reference_source, same_value

gguf = pytest.importorskip("gguf", reason="needs the gguf package: pip install -e '.[llama]'")
pytestmark = pytest.mark.task(1)

VT = gguf.GGUFValueType
SCALARS = [  # (key, value, type): one of every scalar type, at its edges
    ("t.uint8", 255, VT.UINT8), ("t.int8", -128, VT.INT8), ("t.uint16", 65535, VT.UINT16),
    ("t.int16", -32768, VT.INT16), ("t.uint32", 2**32 - 1, VT.UINT32), ("t.int32", -(2**31), VT.INT32),
    ("t.float32", 0.1, VT.FLOAT32), ("t.bool", True, VT.BOOL), ("t.false", False, VT.BOOL),
    ("t.string", "héllo 🍕 wörld", VT.STRING), ("t.empty", "", VT.STRING),
    ("t.uint64", 2**64 - 1, VT.UINT64), ("t.int64", -(2**63), VT.INT64), ("t.float64", -1e300, VT.FLOAT64),
]
ARRAYS = [("a.int32", [1, -2, 3]), ("a.float32", [0.5, -1.25]), ("a.strings", ["a", "", "ü", "日本"]),
          ("a.bool", [True, False, True])]
NESTED = [[1, 2, 3], [4], [5, 6]]


def write_file(path, *, alignment: int | None = None, tensors: bool = True, endian=gguf.GGUFEndian.LITTLE):
    """A GGUF file written by the gguf package: every value type, arrays, nested arrays, and
    tensors of several types and shapes (quantized ones quantized by the gguf package)."""
    writer = gguf.GGUFWriter(path, arch="llama", endianess=endian)
    if alignment:
        writer.add_custom_alignment(alignment)
    for key, value, vtype in SCALARS:
        writer.add_key_value(key, value, vtype)
    for key, value in ARRAYS:
        writer.add_array(key, value)
    writer.add_array("a.nested", NESTED)
    rng = np.random.default_rng(0)
    if tensors:
        writer.add_tensor("vector", rng.standard_normal(7).astype(np.float32))
        writer.add_tensor("matrix.f16", rng.standard_normal((3, 5)).astype(np.float16))
        cube = rng.standard_normal((2, 3, 64)).astype(np.float32)
        writer.add_tensor("cube.q8_0", gguf.quantize(cube, gguf.GGMLQuantizationType.Q8_0),
                          raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        rows = rng.standard_normal((4, 256)).astype(np.float32)
        writer.add_tensor("rows.q4_0", gguf.quantize(rows, gguf.GGMLQuantizationType.Q4_0),
                          raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        k_quant = rng.integers(0, 256, size=(2, 210), dtype=np.uint8)  # 2 rows of one Q6_K block
        writer.add_tensor("rows.q6_k", k_quant, raw_dtype=gguf.GGMLQuantizationType.Q6_K)
    # leak-check: allowed, gguf.GGUFWriter's own protocol, used to write the reader's test files
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_file(tmp_path_factory.mktemp("gguf") / "all_types.gguf")


def compare_with_reader(path) -> None:
    """Our metadata and tensor table equal gguf.GGUFReader's, bytes of every tensor included."""
    ours = gguf_read.read_gguf(path)
    reader = gguf.GGUFReader(path)
    expected = reader_metadata(reader)
    nested = {k for k, v in ours.value_types.items() if v == VT.ARRAY and ours.metadata[k]
              and isinstance(ours.metadata[k][0], list)}
    assert set(ours.metadata) == set(expected)
    for key, value in expected.items():
        if key not in nested:  # GGUFReader.contents() flattens nested arrays
            assert same_value(ours.metadata[key], value), f"metadata {key!r}: {ours.metadata[key]!r} != {value!r}"
    assert ours.value_types == {name: int(field.types[0]) for name, field in reader.fields.items()
                                if not name.startswith("GGUF.")}
    assert [t.name for t in ours.tensors] == [t.name for t in reader.tensors]
    for info, theirs in zip(ours.tensors, reader.tensors, strict=True):
        assert info.shape == tuple(int(d) for d in theirs.shape), info.name
        assert info.ggml_type == int(theirs.tensor_type), info.name
        assert info.n_bytes == theirs.n_bytes, info.name
        assert ours.data_offset + info.offset == theirs.data_offset, info.name
        assert np.array_equal(ours.tensor_bytes(info.name), np.asarray(theirs.data).reshape(-1).view(np.uint8))


@pytest.mark.points(1)
def test_take_stops_at_the_end():
    """ByteReader.take returns the next bytes and advances; reading past the end is a GGUFError
    (a ValueError) naming the offset, never a short read."""
    reader = gguf_read.ByteReader(b"abcdef")
    assert bytes(reader.take(2, "x")) == b"ab" and reader.offset == 2
    assert bytes(reader.take(4, "x")) == b"cdef" and reader.offset == 6
    assert bytes(reader.take(0, "x")) == b""
    with pytest.raises(gguf_read.GGUFError, match="offset 6") as error:
        reader.take(1, "the next thing")
    assert error.value.offset == 6 and isinstance(error.value, ValueError)
    assert "the next thing" in str(error.value)
    at_start = gguf_read.ByteReader(b"abcd")
    with pytest.raises(gguf_read.GGUFError):  # a length gone negative through a corrupt count
        at_start.take(-1, "a negative length")
    assert at_start.offset == 0, "a refused read must not move the cursor"


@pytest.mark.points(2)
def test_every_scalar_type_matches_gguf_reader(written):
    """Every scalar value type (ints of 8 to 64 bits at their limits, floats, bools, strings with
    non-ASCII text) reads as gguf.GGUFReader reads it, with the same value type ids."""
    ours = gguf_read.read_gguf(written)
    assert ours.version == 3
    for key, value, vtype in SCALARS:
        assert ours.value_types[key] == int(vtype), key
        if vtype == VT.FLOAT32:
            assert ours.metadata[key] == float(np.float32(value)), key
        else:
            assert ours.metadata[key] == value and type(ours.metadata[key]) is type(value), key
    compare_with_reader(written)


@pytest.mark.points(1.5)
def test_arrays_and_nested_arrays(written):
    """Arrays of ints, floats, strings and bools come back as lists; an array of arrays as a list of lists."""
    ours = gguf_read.read_gguf(written)
    for key, value in ARRAYS:
        assert ours.value_types[key] == int(VT.ARRAY)
        assert same_value(ours.metadata[key], [float(np.float32(v)) if isinstance(v, float) else v for v in value])
    assert ours.metadata["a.nested"] == NESTED


@pytest.mark.points(2)
def test_tensor_table_matches_gguf_reader(written):
    """Tensor names, shapes (ggml order), types, byte sizes and absolute data offsets equal
    gguf.GGUFReader's for F32, F16, Q8_0, Q4_0 and Q6_K tensors of 1 to 3 dimensions; the data
    section starts at the next multiple of 32 after the tensor infos."""
    compare_with_reader(written)
    ours = gguf_read.read_gguf(written)
    assert ours.alignment == 32, f"without general.alignment the alignment is 32, got {ours.alignment}"
    assert ours.data_offset % 32 == 0, f"the data section must start at a multiple of 32, got offset {ours.data_offset}"
    assert [t.type_name for t in ours.tensors] == ["F32", "F16", "Q8_0", "Q4_0", "Q6_K"]
    assert ours.tensor("cube.q8_0").shape == (64, 3, 2)
    for type_id, (name, block, size) in gguf_read.GGML_TYPES.items():
        assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(type_id)] == (block, size), name
        shape = (block * 3, 5)
        expected = gguf.quant_shape_to_byte_shape(shape[::-1], gguf.GGMLQuantizationType(type_id))
        assert gguf_read.tensor_nbytes(shape, type_id) == int(np.prod(expected)), name


@pytest.mark.points(1)
def test_custom_alignment(tmp_path):
    """general.alignment = 64 moves the data section and every tensor to multiples of 64."""
    path = write_file(tmp_path / "aligned.gguf", alignment=64)
    ours = gguf_read.read_gguf(path)
    assert ours.alignment == 64, f"general.alignment = 64 must be read, got {ours.alignment}"
    assert ours.data_offset % 64 == 0, f"the data section must start at a multiple of 64, got offset {ours.data_offset}"
    assert all(t.offset % 64 == 0 for t in ours.tensors)
    compare_with_reader(path)


@pytest.mark.points(2)
def test_llama_cpp_vocab_files():
    """llama.cpp's own vocabulary file for BERT (written by its converter) reads exactly as
    gguf.GGUFReader reads it: 30,000 tokens with scores and token types."""
    models = reference_source().source_dir() / "models"
    for path in (models / "ggml-vocab-bert-bge.gguf",):
        compare_with_reader(path)
        ours = gguf_read.read_gguf(path)
        assert len(ours.metadata["tokenizer.ggml.tokens"]) > 1000, path.name


@pytest.mark.llama_cpp
@pytest.mark.points(1)
def test_file_from_llama_cpps_quantizer(tmp_path):
    """A Q4_K_M file written by llama.cpp's own quantizer (mixed Q4_K, Q6_K, F32 tensors) from the
    course's fixture Llama reads as gguf.GGUFReader reads it."""
    from shared.models import fixture_path

    path = llama_cpp_quantize(reference_gguf(fixture_path()), tmp_path / "q4_k_m.gguf", "Q4_K_M")
    compare_with_reader(path)
    assert {"Q4_K", "F32"} <= {t.type_name for t in gguf_read.read_gguf(path).tensors}


@pytest.mark.points(1)
def test_bad_headers_name_the_offset(written, tmp_path):
    """A wrong magic (offset 0), an unknown version or version 1 (offset 4), an absurd tensor count, an unknown
    value type, a string length past the end and an array count that cannot fit (at the offset of
    the length or count) are GGUFErrors naming the offset; a missing file is a FileNotFoundError
    naming the path."""
    good = written.read_bytes()
    cases = {
        "magic": (b"GGML" + good[4:], 0),
        "version": (good[:4] + struct.pack("<I", 99) + good[8:], 4),
        "version 1 (32-bit counts, no longer read by llama.cpp)": (good[:4] + struct.pack("<I", 1) + good[8:], 4),
        "tensor count": (good[:8] + struct.pack("<Q", 2**62) + good[16:], None),
    }
    for what, (data, offset) in cases.items():
        with pytest.raises(gguf_read.GGUFError, match="offset") as error:
            gguf_read.parse_gguf(data)
        if offset is not None:
            assert error.value.offset == offset, what
    # the first key/value starts at 24: key length u64, key bytes, then the value type u32
    key_length = struct.unpack_from("<Q", good, 24)[0]
    type_at = 24 + 8 + key_length
    with pytest.raises(gguf_read.GGUFError, match="value type"):
        gguf_read.parse_gguf(good[:type_at] + struct.pack("<I", 77) + good[type_at + 4:])
    with pytest.raises(gguf_read.GGUFError, match="offset 24"):
        gguf_read.parse_gguf(good[:24] + struct.pack("<Q", 2**60) + good[32:])
    # an array whose count cannot fit: refused at the count's own offset, before reading elements
    key = b"a.int32"
    count_at = good.index(struct.pack("<Q", len(key)) + key) + 8 + len(key) + 4 + 4
    with pytest.raises(gguf_read.GGUFError, match=r"a\.int32") as error:
        gguf_read.parse_gguf(good[:count_at] + struct.pack("<Q", 2**61) + good[count_at + 8:])
    assert error.value.offset == count_at
    with pytest.raises(FileNotFoundError, match=r"nope\.gguf"):
        gguf_read.read_gguf(tmp_path / "nope.gguf")


@pytest.mark.points(1)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_truncated_files_fail_at_or_before_the_cut(written, fraction):
    """Any truncation of a valid file, in the header, metadata, tensor infos or tensor data, is a
    GGUFError whose offset is at or before the cut (Hypothesis picks the cut)."""
    good = written.read_bytes()
    reader = gguf.GGUFReader(written)
    end = max(t.data_offset + t.n_bytes for t in reader.tensors)
    cut = int(fraction * end)
    with pytest.raises(gguf_read.GGUFError) as error:
        gguf_read.parse_gguf(good[:cut])
    assert 0 <= error.value.offset <= cut


def two_tensor_file(path: Path, tensors=(("aa", 8), ("bb", 8))) -> bytes:
    """A small GGUF file (two string keys, F32 tensors of the given lengths) written by the gguf package."""
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_string("k.one", "x")
    writer.add_string("k.two", "y")
    for name, length in tensors:
        writer.add_tensor(name, np.arange(length, dtype=np.float32))
    # leak-check: allowed, gguf.GGUFWriter's own protocol, used to write the reader's test files
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def tensor_info_at(data: bytes, name: bytes) -> tuple[int, int]:
    """(offset of the tensor info's dims, offset of its type) for the tensor called ``name`` (1 dimension)."""
    dims = data.index(struct.pack("<Q", len(name)) + name) + 8 + len(name) + 4
    return dims, dims + 8


def patched(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def outside_files(tmp_path: Path) -> dict[str, tuple[bytes, str | None]]:
    """Files from outside: what llama.cpp's gguf loader refuses (with what our error must name) or accepts (None)."""
    good = two_tensor_file(tmp_path / "good.gguf")
    aa_dims, aa_type = tensor_info_at(good, b"aa")
    bb_dims, bb_type = tensor_info_at(good, b"bb")
    return {
        "duplicate key": (good.replace(b"k.two", b"k.one"), "duplicate metadata key 'k.one'"),
        "duplicate tensor name": (good.replace(b"bb", b"aa"), "duplicate tensor name 'aa'"),
        "a dimension of 0 before another tensor": (patched(good, aa_dims, "<Q", 0), "'bb'"),
        "a type whose size no longer fits (F32 -> F64)": (patched(good, aa_type, "<I", 28), "'bb'"),
        "overlapping regions": (patched(good, bb_type + 4, "<Q", 0), "'bb'"),
        "a gap": (patched(good, bb_type + 4, "<Q", 64) + bytes(64), "'bb'"),
        "regions out of order": (patched(patched(good, bb_type + 4, "<Q", 0), aa_type + 4, "<Q", 32), "'aa'"),
        "valid: a dimension of 0 in the last tensor": (patched(good, bb_dims, "<Q", 0), None),
        "valid: an empty tensor written by gguf": (two_tensor_file(tmp_path / "empty.gguf", (("aa", 8), ("zz", 0),
                                                                                           ("bb", 8))), None),
        "valid: as written": (good, None),
    }


@pytest.mark.points(1)
def test_refuses_what_llama_cpp_refuses(tmp_path):
    """A duplicate metadata key, a duplicate tensor name, and tensor data not laid out back to back (a
    dimension of 0 or a type that no longer fits, overlapping regions, a gap, another order) are GGUFErrors
    naming the key or tensor; arrays nested 1,000 deep are a GGUFError naming the limit, not a RecursionError."""
    for what, (data, named) in outside_files(tmp_path).items():
        try:
            gguf_read.parse_gguf(data)
            refused = None
        except gguf_read.GGUFError as error:
            refused = str(error)
        assert (refused is None) if named is None else (refused is not None and named in refused), (what, refused)
    for levels, refused in ((gguf_read.MAX_ARRAY_DEPTH, False), (1000, True)):
        header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 4) + b"deep" + struct.pack("<I", 9)
        nested = header + struct.pack("<IQ", 9, 1) * (levels - 1) + struct.pack("<IQB", 0, 1, 7)
        if refused:
            with pytest.raises(gguf_read.GGUFError, match="MAX_ARRAY_DEPTH"):
                gguf_read.parse_gguf(nested)
        else:
            value = gguf_read.parse_gguf(nested).metadata["deep"]
            for _ in range(levels):
                assert isinstance(value, list) and len(value) == 1
                value = value[0]
            assert value == 7


@pytest.mark.llama_cpp
@pytest.mark.points(0.5)
def test_llama_cpps_loader_agrees(tmp_path):
    """The same files through llama.cpp's own loader (gguf_init_from_file, in the ggml library that
    llama-cpp-python ships): it refuses exactly the files the reader refuses."""
    lib_dir = Path(importlib.util.find_spec("llama_cpp").origin).parent / "lib"
    ggml = ctypes.CDLL(str(next(lib_dir.glob("*ggml-base.*"))))

    class InitParams(ctypes.Structure):  # struct gguf_init_params
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

    ggml.gguf_init_from_file.restype = ctypes.c_void_p
    ggml.gguf_init_from_file.argtypes = [ctypes.c_char_p, InitParams]
    ggml.gguf_free.argtypes = [ctypes.c_void_p]
    for what, (data, _) in outside_files(tmp_path).items():
        path = tmp_path / "case.gguf"
        path.write_bytes(data)
        context = ggml.gguf_init_from_file(str(path).encode(), InitParams(True, None))
        if context:
            ggml.gguf_free(context)
        try:
            gguf_read.parse_gguf(data)
            ours = True
        except gguf_read.GGUFError:
            ours = False
        assert ours == bool(context), what


@pytest.mark.points(0.5)
def test_no_padding_when_the_infos_end_on_the_boundary(tmp_path):
    """The data section starts at the end of the tensor infos rounded up to the alignment: no padding at all
    when they already end on a multiple of it (a file gguf.GGUFReader reads with no padding)."""
    for length in range(32):
        path = tmp_path / f"pad{length}.gguf"
        writer = gguf.GGUFWriter(path, arch="llama")
        writer.add_string("pad", "x" * length)
        writer.add_tensor("t", np.arange(8, dtype=np.float32))
        # leak-check: allowed, gguf.GGUFWriter's own protocol, used to write the reader's test files
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        reader = gguf.GGUFReader(path)
        field = reader.tensors[-1].field
        infos_end = field.offset + sum(part.nbytes for part in field.parts)
        if infos_end % 32 == 0:
            break
    assert infos_end % 32 == 0, "test setup: no file found whose tensor infos end on a 32-byte boundary"
    assert reader.data_offset == infos_end, (
        "test setup: gguf.GGUFReader must put the data section right after the infos"
    )
    assert gguf_read.read_gguf(path).data_offset == infos_end
    compare_with_reader(path)


def one_value_file(key: bytes, value_type: int, payload: bytes) -> bytes:
    """A hand-made GGUF v3 file: no tensors, one metadata value of ``value_type`` whose bytes are ``payload``."""
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", value_type) \
        + payload


@pytest.mark.points(0.5)
def test_values_and_shapes_at_their_edges(tmp_path):
    """A string that is not UTF-8 (Python's strict decoder refuses it), an array whose UINT64 count
    fits the bytes left but its elements do not (refused at the count), an unknown element type are
    GGUFErrors; a Q8_0 row that is not whole blocks is a ValueError (as gguf.quant_shape_to_byte_shape);
    a 4-dimensional tensor (GGML_MAX_DIMS) reads as gguf.GGUFReader reads it."""
    with pytest.raises(UnicodeDecodeError):
        str(b"\xff", "utf-8")
    with pytest.raises(gguf_read.GGUFError, match="UTF-8"):
        gguf_read.parse_gguf(one_value_file(b"s", int(VT.STRING), struct.pack("<Q", 1) + b"\xff"))
    header = one_value_file(b"a", int(VT.ARRAY), b"")
    count_at = len(header) + 4
    with pytest.raises(gguf_read.GGUFError) as error:  # 8 UINT64 elements need 64 bytes, 10 are left
        gguf_read.parse_gguf(header + struct.pack("<IQ", int(VT.UINT64), 8) + bytes(10))
    assert error.value.offset == count_at
    unknown = max(int(t) for t in VT) + 1
    with pytest.raises(gguf_read.GGUFError, match="element type"):
        gguf_read.parse_gguf(header + struct.pack("<IQ", unknown, 1) + bytes(8))
    q8_0 = gguf.GGMLQuantizationType.Q8_0
    with pytest.raises(ValueError):
        gguf.quant_shape_to_byte_shape((16,), q8_0)
    with pytest.raises(ValueError):
        gguf_read.tensor_nbytes((16,), int(q8_0))
    path = tmp_path / "four_dims.gguf"
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_tensor("t", np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8))
    # leak-check: allowed, gguf.GGUFWriter's own protocol, used to write the reader's test files
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_read.read_gguf(path).tensor("t").shape == (8, 1, 1, 1)
    compare_with_reader(path)
