"""Task 1: read a GGUF file from its bytes, with no help from the ``gguf`` package.

A GGUF file is four parts, back to back (all integers little-endian)::

    header        "GGUF" | version u32 | tensor_count u64 | metadata_kv_count u64
    metadata      metadata_kv_count x ( key: string | value_type u32 | value )
    tensor infos  tensor_count x ( name: string | n_dims u32 | dims u64 x n_dims | ggml_type u32 | offset u64 )
    (padding to general.alignment, 32 by default)
    tensor data   each tensor at data_start + offset, every offset a multiple of the alignment

A string is ``length u64 | UTF-8 bytes``; an array is ``element_type u32 | count u64 | elements``
(elements may themselves be arrays). Dimensions are listed fastest-varying first (ggml's ``ne``),
the reverse of NumPy's shape.

Readings: ggml's ``docs/gguf.md`` (the spec); ``gguf-py/gguf/gguf_reader.py`` for how the
reference reads it (memory-mapped NumPy views).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # version 1 (2023) used 32-bit counts; llama.cpp no longer reads it
DEFAULT_ALIGNMENT = 32

# Metadata value types: id -> (name, struct format of one element, or None when not fixed-size).
VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("UINT8", "<B"), 1: ("INT8", "<b"), 2: ("UINT16", "<H"), 3: ("INT16", "<h"),
    4: ("UINT32", "<I"), 5: ("INT32", "<i"), 6: ("FLOAT32", "<f"), 7: ("BOOL", "<?"),
    8: ("STRING", None), 9: ("ARRAY", None), 10: ("UINT64", "<Q"), 11: ("INT64", "<q"),
    12: ("FLOAT64", "<d"),
}
STRING, ARRAY = 8, 9

# ggml tensor types: id -> (name, values per block, bytes per block). A tensor row of n values
# takes n / block_size * type_size bytes (rows are whole blocks).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}
GGML_TYPE_IDS = {name: type_id for type_id, (name, _, _) in GGML_TYPES.items()}

MIN_KV_BYTES = 8 + 4 + 1  # an empty key, a value type, the smallest value
MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # an empty name, n_dims, a type, an offset
MAX_DIMS = 4  # GGML_MAX_DIMS
#: The deepest an array may nest (an array of arrays is depth 2). The spec sets no limit and
#: llama.cpp refuses any array of arrays; gguf-py reads them. A file from outside could nest 1,000
#: deep, which a recursive reader must refuse before Python's own recursion limit does.
MAX_ARRAY_DEPTH = 16


class GGUFError(ValueError):
    """The bytes are not a valid GGUF file. ``offset`` is where reading went wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"at byte offset {offset}: {message}")
        self.offset = offset


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: fastest-varying dimension first (ne0, ne1, ...)
    ggml_type: int  # a key of GGML_TYPES
    offset: int  # from the start of the data section
    n_bytes: int

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.ggml_type][0]


@dataclass
class GGUFFile:
    version: int
    metadata: dict[str, Any]  # key -> int | float | bool | str | list (arrays, possibly nested)
    value_types: dict[str, int]  # key -> its value type id (a key of VALUE_TYPES)
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int  # absolute byte offset where the tensor data section starts
    data: bytes | memoryview = field(repr=False, default=b"")

    def tensor(self, name: str) -> TensorInfo:
        """The tensor info called ``name`` (given)."""
        for info in self.tensors:
            if info.name == name:
                return info
        raise KeyError(f"no tensor named {name!r} in this GGUF file")

    def tensor_bytes(self, name: str) -> np.ndarray:
        """The raw bytes of tensor ``name`` as a uint8 array (given)."""
        info = self.tensor(name)
        start = self.data_offset + info.offset
        return np.frombuffer(self.data, dtype=np.uint8, count=info.n_bytes, offset=start)

    def tensor_array(self, name: str) -> np.ndarray:
        """An F32, F16 or BF16 tensor as float32, in NumPy order (the shape reversed) (given)."""
        info = self.tensor(name)
        raw = self.tensor_bytes(name)
        if info.type_name == "F32":
            values = raw.view(np.float32)
        elif info.type_name == "F16":
            values = raw.view(np.float16).astype(np.float32)
        elif info.type_name == "BF16":
            values = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"tensor {name!r} is {info.type_name}: dequantize it (task 3) instead")
        return values.reshape(tuple(reversed(info.shape)))


class ByteReader:
    """Reads little-endian values from ``data``, never past its end."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, n: int, what: str) -> memoryview:
        """The next ``n`` bytes; ``what`` names what they are, for the error message.

        Raises:
            GGUFError: ``n`` is negative or fewer than ``n`` bytes are left; the message says at
                which offset, what was being read, and how many bytes were needed and left.
        """
        # BEGIN SOLUTION task 1: the next n bytes, or a GGUFError saying where, what and how much when fewer are left (README task 1, the rule in bold).
        # HINT task 1 level 1: a reader of untrusted files: every count and length is compared with the bytes
        #   left before anything is read or allocated, so a truncated or lying file is a GGUFError at or before
        #   the cut, never an IndexError, a MemoryError or a hang. Reading: README task 1, ggml's docs/gguf.md
        #   (the layout), gguf-py's gguf_reader.py (the reference reader) and llama.cpp's gguf_init_from_file in
        #   ggml/src/gguf.cpp (what it refuses). No gguf import here: struct and the ByteReader cursor.
        # HINT task 1 level 2: a memoryview slice does not raise when it runs past the end, it just comes
        #   back short: check first. A negative n is as wrong as one too large. The error carries the offset
        #   where the read started.
        # HINT task 1 level 3: refuse n < 0 or n > remaining() with GGUFError(message naming what, n and
        #   the bytes left, self.offset); otherwise slice n bytes from the offset and move the offset past them.
        if n < 0 or n > self.remaining():
            raise GGUFError(f"file ends while reading {what}: needed {n} bytes, "
                            f"{self.remaining()} left", self.offset)
        chunk = self.data[self.offset:self.offset + n]
        self.offset += n
        return chunk
        # END SOLUTION

    def scalar(self, fmt: str, what: str) -> Any:
        """One value of struct format ``fmt`` (``"<I"``, ``"<Q"``, ...) (given)."""
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]


def read_string(reader: ByteReader, what: str) -> str:
    """A GGUF string: a u64 byte length, then that many UTF-8 bytes.

    Raises:
        GGUFError: the length runs past the end of the file (checked before anything is
            allocated; the error names the offset of the length), or the bytes are not UTF-8.
    """
    # BEGIN SOLUTION task 1: one GGUF string; a length past the end refused before anything is allocated, invalid UTF-8 refused too (README task 1; docs/gguf.md 'gguf_string_t').
    # HINT task 1 level 2: the error for a bad length names the offset of the length itself
    #   (remember it before reading). A UnicodeDecodeError must become a GGUFError.
    start = reader.offset
    length = reader.scalar("<Q", f"the length of {what}")
    if length > reader.remaining():
        raise GGUFError(f"{what} claims {length} bytes, but only {reader.remaining()} are left", start)
    raw = reader.take(length, what)
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError as error:
        raise GGUFError(f"{what} is not valid UTF-8: {error}", start) from error
    # END SOLUTION


def read_value(reader: ByteReader, value_type: int, what: str, depth: int = 1) -> Any:
    """One metadata value of type ``value_type`` (a key of ``VALUE_TYPES``).

    Numbers and bools come back as Python scalars, strings as ``str``, arrays as lists (an array
    of arrays as a list of lists). ``depth``: how many arrays this value sits in, plus one (1 for
    a metadata value itself; an element of a top-level array is read with depth 2).

    Raises:
        GGUFError: an unknown value or element type, an array count larger than the bytes left
            could hold (checked before reading or allocating its elements; the error names the
            offset of the count), or arrays nested deeper than ``MAX_ARRAY_DEPTH`` (naming it).
    """
    # BEGIN SOLUTION task 1: one metadata value of any GGUF value type, arrays of arrays included, with counts and nesting checked before anything is read (README task 1; the docstring).
    # HINT task 1 level 2: VALUE_TYPES gives each type's struct format (None for string and array).
    #   An array is an element type (u32), a count (u64), then the elements; each element needs at least its own
    #   size (a string or array at least its 8-byte length), so count x that minimum must fit in the bytes left,
    #   or the file lies. Depth grows by one per array level; past MAX_ARRAY_DEPTH refuse before reading further
    #   (a recursive reader must stop before Python's recursion limit). Reading fixed-size elements one struct
    #   call at a time is slow for a 50,000-entry vocabulary: numpy can read them in one go.
    # HINT task 1 level 3: unknown type -> error; string -> read_string; fixed-size ->
    #   reader.scalar; array: check depth, read and check the element type, read the count (remember its offset)
    #   and check it against the bytes left; fixed-size elements in one bulk read as a list, others one
    #   read_value each at depth + 1.
    if value_type not in VALUE_TYPES:
        raise GGUFError(f"unknown value type {value_type} for {what} (expected one of "
                        f"{sorted(VALUE_TYPES)})", reader.offset - 4)
    if value_type == STRING:
        return read_string(reader, what)
    if value_type != ARRAY:
        return reader.scalar(VALUE_TYPES[value_type][1], what)
    type_offset = reader.offset
    if depth > MAX_ARRAY_DEPTH:
        raise GGUFError(f"{what} nests arrays more than {MAX_ARRAY_DEPTH} deep (MAX_ARRAY_DEPTH)", type_offset)
    element_type = reader.scalar("<I", f"the element type of {what}")
    if element_type not in VALUE_TYPES:
        raise GGUFError(f"unknown array element type {element_type} for {what}", type_offset)
    count_offset = reader.offset
    count = reader.scalar("<Q", f"the element count of {what}")
    fmt = VALUE_TYPES[element_type][1]
    smallest = struct.calcsize(fmt) if fmt else 8  # a string or array needs at least its u64
    if count * smallest > reader.remaining():
        raise GGUFError(f"array {what} claims {count} elements, but only {reader.remaining()} bytes "
                        "are left", count_offset)
    if fmt is not None:  # fixed-size elements: one bulk read instead of `count` small ones
        dtype = np.dtype(fmt.replace("?", "b1"))
        return np.frombuffer(reader.take(count * dtype.itemsize, what), dtype=dtype).tolist()
    return [read_value(reader, element_type, f"{what}[{i}]", depth + 1) for i in range(count)]
    # END SOLUTION


def tensor_nbytes(shape: tuple[int, ...], ggml_type: int) -> int:
    """Bytes a tensor of ``shape`` (ggml order) and type ``ggml_type`` takes in the data section.

    Raises:
        ValueError: an unknown type, or a first dimension that is not a whole number of blocks.
    """
    # BEGIN SOLUTION task 1: the bytes a tensor of this shape and ggml type takes in the data section (README task 1; docs/gguf.md, ggml's block types).
    # HINT task 1 level 2: GGML_TYPES gives (name, values per block, bytes per block). A
    #   quantized row is made of whole blocks, so the first (fastest, ggml-order) dimension must be a multiple
    #   of the block size.
    if ggml_type not in GGML_TYPES:
        raise ValueError(f"unknown ggml_type {ggml_type}")
    name, block_size, type_size = GGML_TYPES[ggml_type]
    if shape and shape[0] % block_size:
        raise ValueError(f"a {name} row holds whole blocks of {block_size} values; got rows of {shape[0]}")
    return math.prod(shape) // block_size * type_size
    # END SOLUTION


def parse_gguf(data: bytes | memoryview) -> GGUFFile:
    """Parse a whole GGUF file held in ``data``.

    Returns:
        a :class:`GGUFFile` (its ``data`` is ``data``, so tensor bytes can be read from it).

    Raises:
        GGUFError: wrong magic, unsupported version (1, or a byte-swapped big-endian file), counts
            that cannot fit in the file, a duplicate metadata key, a duplicate tensor name, an
            unknown tensor type, a tensor with more than 4 dimensions, a misaligned tensor offset,
            tensor data running past the end of the file, or tensor data not laid out back to back
            in the order of the infos, each padded to the alignment (overlapping regions, gaps, a
            type or dimension that no longer fits): llama.cpp's gguf loader refuses each of these.
            The message names the offset and what was wrong (the key, the tensor).
    """
    # BEGIN SOLUTION task 1: a whole GGUF file parsed, or a GGUFError naming the offset and what is wrong wherever llama.cpp's loader would refuse it (README task 1; the docstring's list).
    # HINT task 1 level 2: header = magic, version (a byte-swapped version means a big-endian file:
    #   say so), tensor count, key/value count; check both counts against the bytes left using the smallest size
    #   an entry can take. Duplicate keys and duplicate tensor names are errors. The data section starts at the
    #   end of the infos rounded up to general.alignment (a power of two). Tensor offsets are relative to the
    #   data section; the tensors must lie inside the file and follow each other back to back in info order,
    #   each starting at the previous end rounded up to the alignment, the first at 0.
    # HINT task 1 level 3: read and check the header; read kv_count entries (key string, value type,
    #   read_value); read tensor_count infos (name, n_dims <= MAX_DIMS, dims, type, offset; compute n_bytes with
    #   tensor_nbytes); check the alignment; data_offset = the reader's offset rounded up; then walk the tensors
    #   checking bounds and the expected offset (previous end, aligned); return the GGUFFile.
    reader = ByteReader(data)
    magic = bytes(reader.take(4, "the magic"))
    if magic != GGUF_MAGIC:
        raise GGUFError(f"not a GGUF file: expected magic {GGUF_MAGIC!r}, found {magic!r}", 0)
    version = reader.scalar("<I", "the version")
    if version not in SUPPORTED_VERSIONS:
        hint = " (a big-endian file?)" if version.to_bytes(4, "big")[0] in SUPPORTED_VERSIONS else ""
        raise GGUFError(f"unsupported GGUF version {version}{hint}; expected one of {SUPPORTED_VERSIONS}", 4)
    tensor_count = reader.scalar("<Q", "the tensor count")
    kv_count = reader.scalar("<Q", "the metadata key/value count")
    if kv_count * MIN_KV_BYTES > reader.remaining():
        raise GGUFError(f"{kv_count} metadata entries cannot fit in the {reader.remaining()} bytes left", 16)
    if tensor_count * MIN_TENSOR_INFO_BYTES > reader.remaining():
        raise GGUFError(f"{tensor_count} tensor infos cannot fit in the {reader.remaining()} bytes left", 8)

    metadata: dict[str, Any] = {}
    value_types: dict[str, int] = {}
    for index in range(kv_count):
        key_offset = reader.offset
        key = read_string(reader, f"metadata key #{index}")
        if key in metadata:
            raise GGUFError(f"duplicate metadata key {key!r} (key #{index})", key_offset)
        value_types[key] = reader.scalar("<I", f"the value type of {key!r}")
        metadata[key] = read_value(reader, value_types[key], repr(key))

    tensors, info_offsets, names = [], [], {}
    for index in range(tensor_count):
        start = reader.offset
        info_offsets.append(start)
        name = read_string(reader, f"the name of tensor #{index}")
        if name in names:
            raise GGUFError(f"duplicate tensor name {name!r} (tensors #{names[name]} and #{index})", start)
        names[name] = index
        n_dims = reader.scalar("<I", f"the dimension count of {name!r}")
        if n_dims > MAX_DIMS:
            raise GGUFError(f"tensor {name!r} has {n_dims} dimensions; at most {MAX_DIMS} expected", start)
        shape = tuple(reader.scalar("<Q", f"dimension {d} of {name!r}") for d in range(n_dims))
        type_offset = reader.offset
        ggml_type = reader.scalar("<I", f"the type of {name!r}")
        if ggml_type not in GGML_TYPES:
            raise GGUFError(f"tensor {name!r} has unknown ggml type {ggml_type}", type_offset)
        offset = reader.scalar("<Q", f"the data offset of {name!r}")
        try:
            n_bytes = tensor_nbytes(shape, ggml_type)
        except ValueError as error:
            raise GGUFError(f"tensor {name!r}: {error}", start) from error
        tensors.append(TensorInfo(name, shape, ggml_type, offset, n_bytes))

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"general.alignment must be a power of two, got {alignment!r}", 0)
    data_offset = -(-reader.offset // alignment) * alignment
    for info, info_offset in zip(tensors, info_offsets):  # errors name the tensor info's offset
        if info.offset % alignment:
            raise GGUFError(f"tensor {info.name!r} starts at data offset {info.offset}, "
                            f"not a multiple of the alignment {alignment}", info_offset)
        end = data_offset + info.offset + info.n_bytes
        if end > len(data):
            raise GGUFError(f"tensor {info.name!r} needs bytes up to {end}, but the file is only "
                            f"{len(data)} bytes long (truncated?)", info_offset)
    # llama.cpp's layout: the tensors back to back in the order of their infos, each padded to the
    # alignment. A type or dimension changed after writing (overlapping the next tensor, or
    # leaving a gap) no longer fits, and llama.cpp refuses the file.
    expected, previous = 0, None
    for info, info_offset in zip(tensors, info_offsets):
        if info.offset != expected:
            where = "the data section starts" if previous is None else (
                f"tensor {previous.name!r} ({previous.type_name}, shape {previous.shape}, {previous.n_bytes} bytes) "
                f"ends, padded to {alignment}")
            raise GGUFError(f"tensor {info.name!r} starts at data offset {info.offset}, expected {expected}, where "
                            f"{where}: tensor data regions overlap or leave a gap", info_offset)
        expected += -(-info.n_bytes // alignment) * alignment
        previous = info
    return GGUFFile(version, metadata, value_types, tensors, alignment, data_offset, data)
    # END SOLUTION


def read_gguf(path: str | Path) -> GGUFFile:
    """Read the GGUF file at ``path`` (memory-mapped, so a large file costs no RAM) (given).

    Raises:
        FileNotFoundError: no such file.
        GGUFError: the file is not valid GGUF (see :func:`parse_gguf`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r}: no such GGUF file")
    if path.stat().st_size == 0:
        raise GGUFError(f"{path} is empty, not a GGUF file", 0)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    return parse_gguf(memoryview(data))
