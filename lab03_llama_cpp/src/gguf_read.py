# Student skeleton for lab03_llama_cpp: fill in each TODO, then run `course test lab03_llama_cpp`.
# (Generated from the reference solution by `course stubs`.)
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
        # TODO(lab03 task 1): the next n bytes, or a GGUFError saying where, what and how much when fewer are left (README task 1, the rule in bold).
        raise NotImplementedError("lab03 task 1: take is not written yet (see lab03_llama_cpp/README.md, task 1)")

    def scalar(self, fmt: str, what: str) -> Any:
        """One value of struct format ``fmt`` (``"<I"``, ``"<Q"``, ...) (given)."""
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]


def read_string(reader: ByteReader, what: str) -> str:
    """A GGUF string: a u64 byte length, then that many UTF-8 bytes.

    Raises:
        GGUFError: the length runs past the end of the file (checked before anything is
            allocated; the error names the offset of the length), or the bytes are not UTF-8.
    """
    # TODO(lab03 task 1): one GGUF string; a length past the end refused before anything is allocated, invalid UTF-8 refused too (README task 1; docs/gguf.md 'gguf_string_t').
    raise NotImplementedError("lab03 task 1: read_string is not written yet (see lab03_llama_cpp/README.md, task 1)")


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
    # TODO(lab03 task 1): one metadata value of any GGUF value type, arrays of arrays included, with counts and nesting checked before anything is read (README task 1; the docstring).
    raise NotImplementedError("lab03 task 1: read_value is not written yet (see lab03_llama_cpp/README.md, task 1)")


def tensor_nbytes(shape: tuple[int, ...], ggml_type: int) -> int:
    """Bytes a tensor of ``shape`` (ggml order) and type ``ggml_type`` takes in the data section.

    Raises:
        ValueError: an unknown type, or a first dimension that is not a whole number of blocks.
    """
    # TODO(lab03 task 1): the bytes a tensor of this shape and ggml type takes in the data section (README task 1; docs/gguf.md, ggml's block types).
    raise NotImplementedError("lab03 task 1: tensor_nbytes is not written yet (see lab03_llama_cpp/README.md, task 1)")


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
    # TODO(lab03 task 1): a whole GGUF file parsed, or a GGUFError naming the offset and what is wrong wherever llama.cpp's loader would refuse it (README task 1; the docstring's list).
    raise NotImplementedError("lab03 task 1: parse_gguf is not written yet (see lab03_llama_cpp/README.md, task 1)")


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
