# Student skeleton for lab03_llama_cpp: fill in each TODO, then run `course test lab03_llama_cpp`.
# (Generated from the reference solution by `course stubs`.)
"""Task 3: llama.cpp's block quantization, in NumPy.

A row of weights is cut into blocks of 32 values; each block is stored as one float16 scale ``d``
(and for Q4_1 a float16 minimum ``m``) followed by small integers ``q``, and read back as
``d * q`` (or ``d * q + m``)::

    Q8_0  34 bytes / 32 values  [d f16][q int8 x 32]                 x = d * q,        d = absmax / 127
    Q4_0  18 bytes / 32 values  [d f16][16 bytes: 32 nibbles]        x = d * (q - 8),  d = max / -8
    Q4_1  20 bytes / 32 values  [d f16][m f16][16 bytes: nibbles]    x = d * q + m,    d = (max - min) / 15
    Q5_0  22 bytes / 32 values  [d f16][qh u32: 5th bits][16 bytes]  x = d * (q - 16), d = max / -16

In Q4_0 ``max`` is the value with the largest magnitude, *sign kept*, so that it maps exactly to
q = 0 (-8 after the shift) and the other end of the range gets the extra level. Nibbles are packed
"low half first": byte j holds value j in its low 4 bits and value j + 16 in its high 4 bits.

Your output must equal ``gguf.quants.quantize`` byte for byte, so follow ggml's reference C code
(``ggml-quants.c``, ``quantize_row_q8_0_ref`` and friends) to the rounding: Q8_0 rounds half away
from zero (C's ``roundf``); the 4- and 5-bit types add 8.5 (16.5, 0.5) and truncate; the scale is
computed in float32 and only then stored as float16; a block of zeros has d = 0 and inverse 0.

Readings: ggml's ``ggml-quants.c``; ``gguf-py/gguf/quants.py``; the llama.cpp PR that added
K-quants (#1684) for why 256-value super-blocks do better at the same size.
"""

from __future__ import annotations

import numpy as np

BLOCK_SIZE = 32

#: type name -> (values per block, bytes per block); the types this file writes.
BLOCK_TYPES: dict[str, tuple[int, int]] = {
    "Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22),
}


def _blocks(values: np.ndarray) -> np.ndarray:
    """``values`` as float32 blocks of 32, shape (n_blocks, 32) (given).

    Raises:
        ValueError: the last dimension is not a multiple of 32 (llama.cpp quantizes whole rows).
    """
    values = np.asarray(values)
    if values.ndim == 0 or values.shape[-1] % BLOCK_SIZE:
        raise ValueError(f"values: the last dimension must be a multiple of {BLOCK_SIZE}, got shape {values.shape}")
    return values.astype(np.float32).reshape(-1, BLOCK_SIZE)


def _packed_shape(shape: tuple[int, ...], type_name: str) -> tuple[int, ...]:
    """The uint8 shape of a quantized array: each row of n values becomes n/32 blocks (given)."""
    block_size, type_size = BLOCK_TYPES[type_name]
    return (*shape[:-1], shape[-1] // block_size * type_size)


def _unpacked_blocks(data: np.ndarray, type_name: str) -> np.ndarray:
    """``data`` (uint8, shape (..., k * type_size)) as (n_blocks, type_size) blocks (given)."""
    data = np.asarray(data)
    type_size = BLOCK_TYPES[type_name][1]
    if data.dtype != np.uint8 or data.ndim == 0 or data.shape[-1] % type_size:
        raise ValueError(f"data: expected uint8 rows of whole {type_name} blocks ({type_size} bytes each), "
                         f"got {data.dtype} of shape {data.shape}")
    return data.reshape(-1, type_size)


def _unpacked_shape(data: np.ndarray, type_name: str) -> tuple[int, ...]:
    """The float shape (..., k * block_size) that ``data`` (..., k * type_size) decodes to (given)."""
    block_size, type_size = BLOCK_TYPES[type_name]
    return (*np.shape(data)[:-1], np.shape(data)[-1] // type_size * block_size)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """C's ``roundf``: round to nearest, halves away from zero (``np.round`` rounds halves to even).

    Example: ``round_half_away([0.5, 1.5, 2.5, -2.5]) -> [1, 2, 3, -3]``.
    """
    # TODO(lab03 task 3): C's roundf on arrays: nearest integer, halves away from zero, exact for every float32 (README task 3; the docstring).
    raise NotImplementedError("lab03 task 3: round_half_away is not written yet (see lab03_llama_cpp/README.md, task 3)")


def _inverse(d: np.ndarray) -> np.ndarray:
    """1 / d, with 0 where d == 0 (a block of zeros) (given)."""
    with np.errstate(divide="ignore"):
        return np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """(n_blocks, 32) values 0..15 -> (n_blocks, 16) bytes, uint8: byte j holds value j in its
    low four bits and value j + 16 in its high four bits."""
    # TODO(lab03 task 3): two 4-bit values per byte in ggml's Q4 layout (README task 3; the docstring).
    raise NotImplementedError("lab03 task 3: _pack_nibbles is not written yet (see lab03_llama_cpp/README.md, task 3)")


def _unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """(n_blocks, 16) bytes -> (n_blocks, 32) values 0..15 (the inverse of :func:`_pack_nibbles`)."""
    # TODO(lab03 task 3): the 32 values of each block back from its 16 packed bytes, the inverse of _pack_nibbles (README task 3).
    raise NotImplementedError("lab03 task 3: _unpack_nibbles is not written yet (see lab03_llama_cpp/README.md, task 3)")


def _signed_absmax(blocks: np.ndarray) -> np.ndarray:
    """Each block's value of largest magnitude, sign kept (the first one on a tie), shape (n_blocks, 1)."""
    # TODO(lab03 task 3): each block's value of largest magnitude with its sign, the first on a tie (README task 3; ggml-quants.c, quantize_row_q4_0_ref).
    raise NotImplementedError("lab03 task 3: _signed_absmax is not written yet (see lab03_llama_cpp/README.md, task 3)")


def quantize_q8_0(values: np.ndarray) -> np.ndarray:
    """Q8_0: per block ``d = absmax / 127`` (float32, stored float16), ``q = roundf(x / d)``.

    Args:
        values: float array whose last dimension is a multiple of 32, shape (..., n).
    Returns:
        uint8 array of shape (..., n / 32 * 34): per block 2 bytes of d then 32 int8 q.
    """
    blocks = _blocks(values)
    # TODO(lab03 task 3): Q8_0 blocks byte for byte as ggml writes them: a float16 scale then 32 int8 values per block (README task 3; ggml-quants.c, quantize_row_q8_0_ref).
    raise NotImplementedError("lab03 task 3: quantize_q8_0 is not written yet (see lab03_llama_cpp/README.md, task 3)")


def dequantize_q8_0(data: np.ndarray) -> np.ndarray:
    """Q8_0 bytes (..., k * 34) -> float32 values (..., k * 32): ``d * q``."""
    blocks = _unpacked_blocks(data, "Q8_0")
    # TODO(lab03 task 3): float32 values back from Q8_0 bytes (README task 3; the docstring).
    raise NotImplementedError("lab03 task 3: dequantize_q8_0 is not written yet (see lab03_llama_cpp/README.md, task 3)")


def quantize_q4_0(values: np.ndarray) -> np.ndarray:
    """Q4_0: ``d = max / -8`` (max: the signed value of largest magnitude), ``q = trunc(x / d + 8.5)``
    clipped to 0..15, packed two per byte.

    Returns:
        uint8 array of shape (..., n / 32 * 18): per block 2 bytes of d then 16 bytes of nibbles.
    """
    blocks = _blocks(values)
    # TODO(lab03 task 3): Q4_0 blocks byte for byte as ggml writes them: a float16 scale then 16 bytes of packed 4-bit values (README task 3; ggml-quants.c, quantize_row_q4_0_ref).
    raise NotImplementedError("lab03 task 3: quantize_q4_0 is not written yet (see lab03_llama_cpp/README.md, task 3)")


def dequantize_q4_0(data: np.ndarray) -> np.ndarray:
    """Q4_0 bytes (..., k * 18) -> float32 values (..., k * 32): ``d * (q - 8)``."""
    blocks = _unpacked_blocks(data, "Q4_0")
    # TODO(lab03 task 3): float32 values back from Q4_0 bytes (README task 3; the docstring).
    raise NotImplementedError("lab03 task 3: dequantize_q4_0 is not written yet (see lab03_llama_cpp/README.md, task 3)")


def quantize_q4_1(values: np.ndarray) -> np.ndarray:
    """Q4_1 (stretch): ``d = (max - min) / 15``, ``m = min``, ``q = trunc((x - min) / d + 0.5)`` clipped
    to 0..15. Returns uint8 (..., n / 32 * 20): [d f16][m f16][16 bytes of nibbles]."""
    blocks = _blocks(values)
    # TODO(lab03 task 3): Q4_1 blocks (stretch) byte for byte as ggml writes them: scale, minimum, then packed 4-bit values (README task 3; ggml-quants.c, quantize_row_q4_1_ref).
    raise NotImplementedError("lab03 task 3: quantize_q4_1 is not written yet (see lab03_llama_cpp/README.md, task 3)")


def dequantize_q4_1(data: np.ndarray) -> np.ndarray:
    """Q4_1 bytes -> float32: ``d * q + m``."""
    blocks = _unpacked_blocks(data, "Q4_1")
    # TODO(lab03 task 3): float32 values back from Q4_1 bytes (README task 3).
    raise NotImplementedError("lab03 task 3: dequantize_q4_1 is not written yet (see lab03_llama_cpp/README.md, task 3)")


def quantize_q5_0(values: np.ndarray) -> np.ndarray:
    """Q5_0 (stretch): ``d = max / -16``, ``q = trunc(x / d + 16.5)`` clipped to 0..31. The low 4 bits
    are packed like Q4_0; the 32 fifth bits go into a little-endian u32 ``qh`` (bit j = value j).
    Returns uint8 (..., n / 32 * 22): [d f16][qh 4 bytes][16 bytes of low nibbles]."""
    blocks = _blocks(values)
    # TODO(lab03 task 3): Q5_0 blocks (stretch) byte for byte as ggml writes them: scale, the 32 fifth bits as a little-endian u32, then the low nibbles (README task 3; ggml-quants.c, quantize_row_q5_0_ref).
    raise NotImplementedError("lab03 task 3: quantize_q5_0 is not written yet (see lab03_llama_cpp/README.md, task 3)")


def dequantize_q5_0(data: np.ndarray) -> np.ndarray:
    """Q5_0 bytes -> float32: ``d * (q - 16)``."""
    blocks = _unpacked_blocks(data, "Q5_0")
    # TODO(lab03 task 3): float32 values back from Q5_0 bytes (README task 3).
    raise NotImplementedError("lab03 task 3: dequantize_q5_0 is not written yet (see lab03_llama_cpp/README.md, task 3)")


QUANTIZERS = {"Q8_0": quantize_q8_0, "Q4_0": quantize_q4_0, "Q4_1": quantize_q4_1, "Q5_0": quantize_q5_0}
DEQUANTIZERS = {"Q8_0": dequantize_q8_0, "Q4_0": dequantize_q4_0, "Q4_1": dequantize_q4_1,
                "Q5_0": dequantize_q5_0}


def check_type_name(type_name: str) -> None:
    """Raise ValueError naming ``type_name`` unless this file can write it (given)."""
    if type_name not in QUANTIZERS:
        raise ValueError(f"type_name must be one of {', '.join(QUANTIZERS)}, got {type_name!r}")


def bits_per_weight(type_name: str) -> float:
    """Bits of storage per weight: bytes per block * 8 / values per block (Q8_0: 8.5, Q4_0: 4.5)."""
    check_type_name(type_name)
    # TODO(lab03 task 3): the storage bits per weight of a type, scale included (README task 3, 'Think about').
    raise NotImplementedError("lab03 task 3: bits_per_weight is not written yet (see lab03_llama_cpp/README.md, task 3)")


def error_stats(values: np.ndarray, type_name: str) -> dict[str, float]:
    """Round-trip ``values`` through ``type_name`` and measure the damage.

    Returns:
        ``{"rmse": ..., "max_abs": ..., "relative_rmse": rmse / rms(values)}`` (relative 0 when all
        values are 0).
    """
    check_type_name(type_name)
    # TODO(lab03 task 3): the round-trip error of a type on some values: RMSE, largest absolute error, and RMSE relative to the values' RMS (README task 3; the docstring).
    raise NotImplementedError("lab03 task 3: error_stats is not written yet (see lab03_llama_cpp/README.md, task 3)")
