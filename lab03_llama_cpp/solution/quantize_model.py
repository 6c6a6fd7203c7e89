"""Task 4: quantize a whole GGUF model with your block quantizers (task 3), as ``llama-quantize`` does.

``llama-quantize model-f32.gguf model-q4_0.gguf Q4_0`` copies the metadata, sets
``general.file_type``, and writes each tensor either quantized or, where quantizing would hurt
much and save little, in full precision. Which tensors stay? Compare your file with llama.cpp's
(the tests do): the 1-D tensors (the RMSNorm weights: a few KB, but every activation is
multiplied by them) stay F32, and llama.cpp gives the output projection more bits than the rest
in its 4-bit mixes (Q6_K) because its errors go straight into the logits.

Readings: llama.cpp's ``src/llama-quant.cpp`` (``llama_tensor_get_type``); ``gguf-py``'s
``GGUFReader`` and ``GGUFWriter``; the K-quants PR (#1684) for what Q4_K_M mixes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

from .quants import QUANTIZERS, check_type_name

#: type name -> llama.cpp's file type (``general.file_type``, ``gguf.LlamaFileType``)
FILE_TYPES = {"Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
              "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1, "Q5_0": gguf.LlamaFileType.MOSTLY_Q5_0}


def tensor_type(name: str, shape: tuple[int, ...], type_name: str) -> str:
    """The type tensor ``name`` gets in a ``type_name`` file: ``type_name``, or ``"F32"`` for a
    tensor that stays in full precision.

    Args:
        name: the GGUF tensor name (``blk.0.attn_norm.weight``, ``output.weight``, ...).
        shape: its NumPy shape (rows, row length) or (n,) for a vector.
        type_name: the file's quantization type (``Q8_0``, ``Q4_0``, ...).
    """
    # BEGIN SOLUTION task 4: the type a tensor gets in a quantized file: the file's type, or F32 for what llama-quantize keeps in full precision (README task 4; llama-quant.cpp, llama_tensor_get_type).
    # HINT task 4 level 1: quantize_file is llama-quantize with your quantizers: the tests compare tensors,
    #   types and bytes with llama.cpp's own quantizer on the same F32 file. Reading: README task 4, llama.cpp's
    #   src/llama-quant.cpp (llama_tensor_get_type), gguf-py's GGUFReader / GGUFWriter. Reading F32/F16 tensors
    #   and copying the metadata are given.
    # HINT task 4 level 2: 1-D tensors (the norms) stay F32; a row whose length is not whole blocks
    #   of 32 cannot be quantized. shape is in NumPy order, so a row is the last axis.
    if len(shape) < 2 or shape[-1] % 32:
        return "F32"
    return type_name
    # END SOLUTION


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter, skip: set[str]) -> None:
    """Copy every key/value of ``reader`` except ``skip`` and those GGUFWriter writes itself (given)."""
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in skip or name == "general.architecture":
            continue
        value_type = gguf.GGUFValueType(field.types[0])
        sub_type = gguf.GGUFValueType(field.types[-1]) if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), value_type, sub_type=sub_type)


def float_tensor(tensor: Any) -> np.ndarray:
    """A GGUFReader tensor (F32 or F16) as a float32 array in NumPy order (given)."""
    if tensor.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        raise ValueError(f"src: tensor {tensor.name!r} is {tensor.tensor_type.name}; quantize from an F32 or F16 file")
    return np.asarray(tensor.data, dtype=np.float32).reshape(tuple(int(d) for d in reversed(tensor.shape)))


def quantize_file(src: str | Path, dst: str | Path, type_name: str) -> dict[str, str]:
    """Write ``dst``: ``src`` (an F32 or F16 GGUF) with its tensors quantized to ``type_name``.

    Metadata is copied, except ``general.file_type``, which becomes ``FILE_TYPES[type_name]``.

    Returns:
        ``{tensor name: type name written}`` for every tensor, in file order.
    Raises:
        ValueError: an unknown ``type_name`` (naming it), or a ``src`` that is not a GGUF file.
        FileNotFoundError: ``src`` does not exist.
    """
    check_type_name(type_name)
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"src={str(src)!r}: no such GGUF file")
    with src.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ValueError(f"src={str(src)!r} is not a GGUF file (no GGUF magic at offset 0)")
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    # BEGIN SOLUTION task 4: the quantized GGUF: metadata copied with the new file type, every tensor quantized or kept as tensor_type says, byte for byte as llama-quantize writes it (README task 4; the docstring).
    # HINT task 4 level 2: general.file_type must say the new type (FILE_TYPES, a uint32);
    #   everything else is copied. A quantized tensor is written as raw bytes, so the writer must be told its
    #   ggml type (GGUFWriter.add_tensor takes a raw dtype); an F32 tensor is written as floats. Return what
    #   each tensor got, in file order.
    # HINT task 4 level 3: a GGUFWriter for the architecture; copy_metadata skipping
    #   general.file_type; add the file type; for each tensor: float_tensor, tensor_type, add it as floats or as
    #   the quantizer's bytes with its raw dtype, and record the choice; then write header, key/values, tensors;
    #   close.
    writer = gguf.GGUFWriter(dst, arch)
    copy_metadata(reader, writer, skip={"general.file_type"})
    writer.add_file_type(int(FILE_TYPES[type_name]))
    written = {}
    for tensor in reader.tensors:
        values = float_tensor(tensor)
        chosen = tensor_type(tensor.name, values.shape, type_name)
        if chosen == "F32":
            writer.add_tensor(tensor.name, values)
        else:
            writer.add_tensor(tensor.name, QUANTIZERS[chosen](values), raw_dtype=gguf.GGMLQuantizationType[chosen])
        written[tensor.name] = chosen
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return written
    # END SOLUTION
