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
    # BEGIN SOLUTION task 3: C's roundf on arrays: nearest integer, halves away from zero, exact for every float32 (README task 3; the docstring).
    # HINT task 3 level 1: the tests demand gguf.quantize's bytes exactly, so every detail of ggml's reference
    #   quantizers matters: the rounding rule, float32 arithmetic, multiplying by an inverse scale computed in
    #   float32, the float16 storage of the scale and the byte layout. Reading: README task 3, ggml's
    #   ggml-quants.c (quantize_row_q8_0_ref, quantize_row_q4_0_ref, ...) and gguf-py's quants.py. Given
    #   helpers: _blocks, _inverse, _packed_shape, _unpacked_blocks, _unpacked_shape.
    # HINT task 3 level 2: np.round rounds halves to even (2.5 -> 2); roundf gives 3. The
    #   obvious 'add one half and floor the magnitude' is wrong in float32 for the largest float below 0.5
    #   (0.49999997), where the addition itself rounds up to 1.0: split the magnitude into its integer part and
    #   its fraction instead, and decide from the fraction alone. Keep the sign; -0.0 and 0 must stay 0.
    a = np.abs(x)
    floored = np.floor(a)
    return np.sign(x) * (floored + np.floor(2 * (a - floored)))
    # END SOLUTION


def _inverse(d: np.ndarray) -> np.ndarray:
    """1 / d, with 0 where d == 0 (a block of zeros) (given)."""
    with np.errstate(divide="ignore"):
        return np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """(n_blocks, 32) values 0..15 -> (n_blocks, 16) bytes, uint8: byte j holds value j in its
    low four bits and value j + 16 in its high four bits."""
    # BEGIN SOLUTION task 3: two 4-bit values per byte in ggml's Q4 layout (README task 3; the docstring).
    # HINT task 3 level 2: _pack_nibbles / _unpack_nibbles: value j and value j + 16 share byte j (not
    #   neighbours 2j and 2j + 1). Work in uint8 so shifts cannot overflow into another type.
    q = q.astype(np.uint8)
    return q[:, :16] | (q[:, 16:] << np.uint8(4))
    # END SOLUTION


def _unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """(n_blocks, 16) bytes -> (n_blocks, 32) values 0..15 (the inverse of :func:`_pack_nibbles`)."""
    # BEGIN SOLUTION task 3: the 32 values of each block back from its 16 packed bytes, the inverse of _pack_nibbles (README task 3).
    return np.concatenate([packed & np.uint8(0x0F), packed >> np.uint8(4)], axis=1)
    # END SOLUTION


def _signed_absmax(blocks: np.ndarray) -> np.ndarray:
    """Each block's value of largest magnitude, sign kept (the first one on a tie), shape (n_blocks, 1)."""
    # BEGIN SOLUTION task 3: each block's value of largest magnitude with its sign, the first on a tie (README task 3; ggml-quants.c, quantize_row_q4_0_ref).
    # HINT task 3 level 2: the index of the largest magnitude picks the element; returning the
    #   magnitude itself would lose the sign that Q4_0 and Q5_0 need (one end of their range gets one level
    #   more). Shape (n_blocks, 1), so that it broadcasts over the block.
    index = np.abs(blocks).argmax(axis=1)[:, None]
    return np.take_along_axis(blocks, index, axis=1)
    # END SOLUTION


def quantize_q8_0(values: np.ndarray) -> np.ndarray:
    """Q8_0: per block ``d = absmax / 127`` (float32, stored float16), ``q = roundf(x / d)``.

    Args:
        values: float array whose last dimension is a multiple of 32, shape (..., n).
    Returns:
        uint8 array of shape (..., n / 32 * 34): per block 2 bytes of d then 32 int8 q.
    """
    blocks = _blocks(values)
    # BEGIN SOLUTION task 3: Q8_0 blocks byte for byte as ggml writes them: a float16 scale then 32 int8 values per block (README task 3; ggml-quants.c, quantize_row_q8_0_ref).
    # HINT task 3 level 2: the scale comes from the block's largest magnitude; values are
    #   multiplied by the inverse scale (computed in float32, 0 for a block of zeros: _inverse), not divided by
    #   the scale, and rounded with roundf. The scale is stored as float16 but the values were computed with the
    #   float32 scale. The result keeps the leading dimensions (_packed_shape).
    # HINT task 3 level 3: d per block (shape (n, 1)); q = your rounding of blocks x _inverse(d),
    #   as int8; concatenate d's float16 bytes and q's bytes per block; reshape to the packed shape.
    d = np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)
    q = round_half_away(blocks * _inverse(d)).astype(np.int8)
    packed = np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1)
    return packed.reshape(_packed_shape(np.shape(values), "Q8_0"))
    # END SOLUTION


def dequantize_q8_0(data: np.ndarray) -> np.ndarray:
    """Q8_0 bytes (..., k * 34) -> float32 values (..., k * 32): ``d * q``."""
    blocks = _unpacked_blocks(data, "Q8_0")
    # BEGIN SOLUTION task 3: float32 values back from Q8_0 bytes (README task 3; the docstring).
    # HINT task 3 level 2: reinterpret bytes rather than convert them: 2 bytes are one float16,
    #   the other 32 are int8. A view needs contiguous memory (copy the slice first).
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    values = d * blocks[:, 2:].view(np.int8).astype(np.float32)
    return values.reshape(_unpacked_shape(data, "Q8_0"))
    # END SOLUTION


def quantize_q4_0(values: np.ndarray) -> np.ndarray:
    """Q4_0: ``d = max / -8`` (max: the signed value of largest magnitude), ``q = trunc(x / d + 8.5)``
    clipped to 0..15, packed two per byte.

    Returns:
        uint8 array of shape (..., n / 32 * 18): per block 2 bytes of d then 16 bytes of nibbles.
    """
    blocks = _blocks(values)
    # BEGIN SOLUTION task 3: Q4_0 blocks byte for byte as ggml writes them: a float16 scale then 16 bytes of packed 4-bit values (README task 3; ggml-quants.c, quantize_row_q4_0_ref).
    # HINT task 3 level 2: the scale is the signed extreme divided by -8, so that extreme maps to
    #   level 0 and the other side gets levels up to 15. ggml truncates after adding 8.5 (not roundf), then
    #   clips to 0..15; do the arithmetic in float32, as ggml does.
    # HINT task 3 level 3: d = the signed absmax / -8 (float32); q = truncation of blocks x
    #   _inverse(d) + 8.5, as uint8, clipped; per block the float16 bytes of d and the packed nibbles; reshape.
    d = _signed_absmax(blocks) / np.float32(-8)
    q = np.trunc(blocks * _inverse(d) + np.float32(8.5)).astype(np.uint8).clip(0, 15)
    packed = np.concatenate([d.astype(np.float16).view(np.uint8), _pack_nibbles(q)], axis=1)
    return packed.reshape(_packed_shape(np.shape(values), "Q4_0"))
    # END SOLUTION


def dequantize_q4_0(data: np.ndarray) -> np.ndarray:
    """Q4_0 bytes (..., k * 18) -> float32 values (..., k * 32): ``d * (q - 8)``."""
    blocks = _unpacked_blocks(data, "Q4_0")
    # BEGIN SOLUTION task 3: float32 values back from Q4_0 bytes (README task 3; the docstring).
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    values = d * (_unpack_nibbles(blocks[:, 2:]).astype(np.float32) - 8)
    return values.reshape(_unpacked_shape(data, "Q4_0"))
    # END SOLUTION


def quantize_q4_1(values: np.ndarray) -> np.ndarray:
    """Q4_1 (stretch): ``d = (max - min) / 15``, ``m = min``, ``q = trunc((x - min) / d + 0.5)`` clipped
    to 0..15. Returns uint8 (..., n / 32 * 20): [d f16][m f16][16 bytes of nibbles]."""
    blocks = _blocks(values)
    # BEGIN SOLUTION task 3: Q4_1 blocks (stretch) byte for byte as ggml writes them: scale, minimum, then packed 4-bit values (README task 3; ggml-quants.c, quantize_row_q4_1_ref).
    # HINT task 3 level 2: quantize_q4_1 (stretch): an affine code: the block's minimum is stored and levels
    #   count up from it, so the scale spreads 16 levels over max - min.
    low = blocks.min(axis=1, keepdims=True)
    d = (blocks.max(axis=1, keepdims=True) - low) / np.float32(15)
    q = np.trunc((blocks - low) * _inverse(d) + np.float32(0.5)).astype(np.uint8).clip(0, 15)
    packed = np.concatenate([d.astype(np.float16).view(np.uint8), low.astype(np.float16).view(np.uint8),
                             _pack_nibbles(q)], axis=1)
    return packed.reshape(_packed_shape(np.shape(values), "Q4_1"))
    # END SOLUTION


def dequantize_q4_1(data: np.ndarray) -> np.ndarray:
    """Q4_1 bytes -> float32: ``d * q + m``."""
    blocks = _unpacked_blocks(data, "Q4_1")
    # BEGIN SOLUTION task 3: float32 values back from Q4_1 bytes (README task 3).
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    values = d * _unpack_nibbles(blocks[:, 4:]).astype(np.float32) + m
    return values.reshape(_unpacked_shape(data, "Q4_1"))
    # END SOLUTION


def quantize_q5_0(values: np.ndarray) -> np.ndarray:
    """Q5_0 (stretch): ``d = max / -16``, ``q = trunc(x / d + 16.5)`` clipped to 0..31. The low 4 bits
    are packed like Q4_0; the 32 fifth bits go into a little-endian u32 ``qh`` (bit j = value j).
    Returns uint8 (..., n / 32 * 22): [d f16][qh 4 bytes][16 bytes of low nibbles]."""
    blocks = _blocks(values)
    # BEGIN SOLUTION task 3: Q5_0 blocks (stretch) byte for byte as ggml writes them: scale, the 32 fifth bits as a little-endian u32, then the low nibbles (README task 3; ggml-quants.c, quantize_row_q5_0_ref).
    # HINT task 3 level 2: quantize_q5_0 (stretch): as Q4_0 with 32 levels (divide by -16, add 16.5, clip to
    #   0..31). Bit j of qh is the fifth bit of value j, little-endian: numpy can pack bits in that order.
    d = _signed_absmax(blocks) / np.float32(-16)
    q = np.trunc(blocks * _inverse(d) + np.float32(16.5)).astype(np.uint8).clip(0, 31)
    qh = np.packbits(q >> np.uint8(4), axis=1, bitorder="little")
    packed = np.concatenate([d.astype(np.float16).view(np.uint8), qh, _pack_nibbles(q & np.uint8(0x0F))], axis=1)
    return packed.reshape(_packed_shape(np.shape(values), "Q5_0"))
    # END SOLUTION


def dequantize_q5_0(data: np.ndarray) -> np.ndarray:
    """Q5_0 bytes -> float32: ``d * (q - 16)``."""
    blocks = _unpacked_blocks(data, "Q5_0")
    # BEGIN SOLUTION task 3: float32 values back from Q5_0 bytes (README task 3).
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    high = np.unpackbits(blocks[:, 2:6], axis=1, bitorder="little")
    q = _unpack_nibbles(blocks[:, 6:]) | (high << np.uint8(4))
    values = d * (q.astype(np.float32) - 16)
    return values.reshape(_unpacked_shape(data, "Q5_0"))
    # END SOLUTION


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
    # BEGIN SOLUTION task 3: the storage bits per weight of a type, scale included (README task 3, 'Think about').
    # HINT task 3 level 2: BLOCK_TYPES gives values and bytes per block; Q4_0 is 4.5, not 4.
    block_size, type_size = BLOCK_TYPES[type_name]
    return type_size * 8 / block_size
    # END SOLUTION


def error_stats(values: np.ndarray, type_name: str) -> dict[str, float]:
    """Round-trip ``values`` through ``type_name`` and measure the damage.

    Returns:
        ``{"rmse": ..., "max_abs": ..., "relative_rmse": rmse / rms(values)}`` (relative 0 when all
        values are 0).
    """
    check_type_name(type_name)
    # BEGIN SOLUTION task 3: the round-trip error of a type on some values: RMSE, largest absolute error, and RMSE relative to the values' RMS (README task 3; the docstring).
    # HINT task 3 level 2: compare with the values as float32 (what was quantized), and compute the
    #   statistics in float64. All-zero values have relative error 0, not a division by zero.
    restored = DEQUANTIZERS[type_name](QUANTIZERS[type_name](values)).astype(np.float64)
    original = np.asarray(values, dtype=np.float32).astype(np.float64)
    error = restored - original
    rmse = float(np.sqrt(np.mean(error**2)))
    rms = float(np.sqrt(np.mean(original**2)))
    return {"rmse": rmse, "max_abs": float(np.abs(error).max()), "relative_rmse": rmse / rms if rms else 0.0}
    # END SOLUTION
