"""Task 3: block quantization byte for byte equal to the gguf package's reference quantizers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .helpers import quants

gguf = pytest.importorskip("gguf", reason="needs the gguf package: pip install -e '.[llama]'")
pytestmark = pytest.mark.task(3)

QT = gguf.GGMLQuantizationType
CORE = ["Q8_0", "Q4_0"]
STRETCH = ["Q4_1", "Q5_0"]


def largest_matrix(model_dir) -> np.ndarray:
    """The model's largest 2-D weight whose rows are whole blocks, as float32."""
    from safetensors import safe_open

    best = None
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                shape = handle.get_slice(name).get_shape()
                if len(shape) == 2 and shape[-1] % 32 == 0 and (best is None or np.prod(shape) > np.prod(best[2])):
                    best = (file, name, shape)
    if best is None:
        pytest.skip(f"{model_dir} has no 2-D weight with rows of whole 32-value blocks")
    with safe_open(best[0], framework="pt") as handle:
        return handle.get_tensor(best[1]).float().numpy()


def ours(type_name: str):
    return getattr(quants, f"quantize_{type_name.lower()}"), getattr(quants, f"dequantize_{type_name.lower()}")


def assert_same_bytes(type_name: str, values: np.ndarray, case: str) -> None:
    """Our quantization of ``values`` equals gguf.quantize's, byte for byte, and our dequantization
    of those bytes equals gguf.dequantize's; a failure names ``case`` (which input), how many bytes
    differ and where the first one is."""
    quantize, dequantize = ours(type_name)
    with np.errstate(all="ignore"):  # huge values overflow float16 scales in both implementations
        expected = gguf.quantize(values, QT[type_name])
        got = quantize(values)
        assert got.dtype == np.uint8 and got.shape == expected.shape, \
            f"{type_name}, {case}: got {got.dtype} {got.shape}, expected uint8 {expected.shape}"
        differ = got.reshape(-1, expected.shape[-1]) != expected.reshape(-1, expected.shape[-1])
        if differ.any():
            row, byte = np.argwhere(differ)[0].tolist()
            block_bytes = gguf.GGML_QUANT_SIZES[QT[type_name]][1]
            raise AssertionError(f"{type_name}, {case}: {int(differ.sum())} of {differ.size} bytes differ; the first "
                                 f"at row {row}, byte {byte} (block {byte // block_bytes}, byte {byte % block_bytes} "
                                 f"of it): got {got.reshape(differ.shape)[row, byte]}, "
                                 f"expected {expected.reshape(differ.shape)[row, byte]}")
        np.testing.assert_array_equal(dequantize(expected), gguf.dequantize(expected, QT[type_name]),
                                      err_msg=f"{type_name}, {case}: dequantized values differ from gguf's")


@pytest.mark.scaffold
def test_a_byte_mismatch_is_counted_and_named(monkeypatch):
    """The byte comparison's message counts differing bytes (not coordinates) and names the case."""
    def one_byte_off(values):
        data = gguf.quantize(values, QT.Q8_0).copy()
        data.reshape(-1)[3] ^= 1
        return data

    def dequantize(data):
        return gguf.dequantize(data, QT.Q8_0)

    monkeypatch.setattr(f"{__name__}.ours", lambda type_name: (one_byte_off, dequantize))
    values = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    expected = r"^Q8_0, my case: 1 of 68 bytes differ; the first at row 0, byte 3 \(block 0, byte 3 of it\)"
    with pytest.raises(AssertionError, match=expected):
        assert_same_bytes("Q8_0", values, "my case")


@pytest.mark.points(1)
def test_round_half_away_from_zero():
    """round_half_away is C's roundf: halves go away from zero, unlike np.round's half to even,
    and 0.49999997 (the float32 just below 0.5) rounds to 0."""
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.49999997, 126.5, 3.2, -3.7, 0.0], dtype=np.float32)
    expected = np.sign(x) * np.floor(np.abs(x.astype(np.float64)) + 0.5)  # exact in float64
    np.testing.assert_array_equal(quants.round_half_away(x), expected)


@pytest.mark.points(3)
@pytest.mark.parametrize("shape", [(32,), (4, 64), (2, 3, 256)])
def test_q8_0_matches_gguf(shape):
    """Q8_0 of normal, scaled and shifted values equals gguf.quantize byte for byte, for 1-D to 3-D
    arrays, and so do values exactly halfway between two levels (x / d = k + 0.5), where only the
    reference's own float32 arithmetic (x times the float32 inverse of d) gives the same bytes."""
    rng = np.random.default_rng(sum(shape))
    values = (rng.standard_normal(shape) * 0.05).astype(np.float32)
    assert_same_bytes("Q8_0", values, "normal values")
    assert_same_bytes("Q8_0", values * 1000 + 3, "values * 1000 + 3")
    blocks = values.reshape(-1, 32)
    absmax = np.abs(blocks).max(axis=1, keepdims=True)
    levels = rng.integers(-126, 126, size=blocks.shape).astype(np.float32)
    halfway = ((levels + np.float32(0.5)) * (absmax / np.float32(127))).astype(np.float32)
    halfway[:, 0] = absmax[:, 0]  # keep each block's scale
    assert_same_bytes("Q8_0", halfway.reshape(shape), "values halfway between two levels")


@pytest.mark.points(3)
@pytest.mark.parametrize("shape", [(32,), (4, 64), (2, 3, 256)])
def test_q4_0_matches_gguf(shape):
    """Q4_0 equals gguf.quantize byte for byte, including blocks whose largest magnitude is negative."""
    rng = np.random.default_rng(sum(shape) + 1)
    values = (rng.standard_normal(shape) * 0.05).astype(np.float32)
    values.reshape(-1, 32)[::2, 5] = -1.0  # every other block: the signed max is negative
    assert_same_bytes("Q4_0", values, "normal values, every other block's signed max negative")


@pytest.mark.points(2)
def test_dequantize_and_round_trip():
    """The round trip error of a block is at most about half a step (d / 2, plus the float16
    rounding of d) for Q8_0 and one step for Q4_0; the input array is left unchanged."""
    rng = np.random.default_rng(7)
    values = rng.standard_normal((8, 128)).astype(np.float32)
    before = values.copy()
    for type_name, steps in (("Q8_0", 127), ("Q4_0", 8)):
        quantize, dequantize = ours(type_name)
        restored = dequantize(quantize(values))
        assert restored.dtype == np.float32, f"{type_name}: dequantize must return float32, got {restored.dtype}"
        assert restored.shape == values.shape, (
            f"{type_name}: dequantize must give back the original shape {values.shape}, got {restored.shape}"
        )
        step = np.abs(values.reshape(-1, 32)).max(axis=1, keepdims=True) / steps
        limit = step * (0.57 if type_name == "Q8_0" else 1.01)  # d is stored as float16: 127 * d * 2**-11
        assert np.all(np.abs(restored - values).reshape(-1, 32) <= limit), type_name
    np.testing.assert_array_equal(values, before)


BLOCK_VALUES = st.one_of(
    st.just(0.0), st.floats(-1e-30, 1e-30), st.floats(-1.0, 1.0), st.floats(-6e4, 6e4), st.floats(-1e30, 1e30),
)


@pytest.mark.points(2)
@pytest.mark.parametrize("type_name", CORE)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_hypothesis_shapes_and_magnitudes(type_name, data):
    """Hypothesis: any shape (..., 32k) of zeros, constants, tiny, ordinary, huge or mixed float32
    values quantizes exactly as gguf does."""
    rows = data.draw(st.integers(1, 4))
    blocks = data.draw(st.integers(1, 3))
    kind = data.draw(st.sampled_from(["any", "constant", "zeros"]))
    if kind == "zeros":
        values = np.zeros((rows, 32 * blocks), dtype=np.float32)
    elif kind == "constant":
        values = np.full((rows, 32 * blocks), data.draw(BLOCK_VALUES), dtype=np.float32)
    else:
        magnitude = float(np.float32(data.draw(st.sampled_from([1e-30, 1.0, 1e30]))))
        elements = st.floats(-magnitude, magnitude, width=32)
        values = data.draw(hnp.arrays(np.float32, (rows, 32 * blocks), elements=elements))
    assert_same_bytes(type_name, values, f"{kind} values of shape {values.shape}")


@pytest.mark.points(1)
@pytest.mark.parametrize("type_name", STRETCH)
def test_stretch_q4_1_and_q5_0(type_name, model_dir):
    """Stretch: Q4_1 (scale and minimum) and Q5_0 (a fifth bit per value in qh) equal gguf's bytes;
    bits_per_weight gives their block cost; and on the model's largest matrix Q5_0's error lies
    between Q8_0's and Q4_0's (error_stats, against gguf's own round trip)."""
    rng = np.random.default_rng(3)
    values = rng.standard_normal((6, 96)).astype(np.float32)
    values[0] = 0.0
    values[1] = 2.5
    values[2, :32] += 4.0  # a block far from zero: Q4_1's minimum matters
    assert_same_bytes(type_name, values, "normal, zero, constant and shifted rows")
    block, size = gguf.GGML_QUANT_SIZES[QT[type_name]]
    assert quants.bits_per_weight(type_name) == pytest.approx(size * 8 / block)
    if type_name == "Q5_0":
        weight = largest_matrix(model_dir)
        rmse = {name: quants.error_stats(weight, name)["rmse"] for name in ("Q8_0", "Q5_0", "Q4_0")}
        restored = gguf.dequantize(gguf.quantize(weight, QT.Q5_0), QT.Q5_0).astype(np.float64)
        assert rmse["Q5_0"] == pytest.approx(np.sqrt(np.mean((restored - weight.astype(np.float64)) ** 2)), rel=1e-6)
        assert rmse["Q8_0"] < rmse["Q5_0"] < rmse["Q4_0"]


@pytest.mark.points(2)
def test_bits_per_weight_and_error_stats_on_model_weights(model_dir):
    """bits_per_weight matches gguf's block sizes (Q8_0 8.5, Q4_0 4.5); error_stats on the model's
    real weights (its largest matrix) equals the error of gguf's own round trip, and Q8_0 < Q4_0.
    (Core types only: the stretch test checks Q4_1 and Q5_0.)"""
    for type_name in CORE:
        block, size = gguf.GGML_QUANT_SIZES[QT[type_name]]
        assert quants.bits_per_weight(type_name) == pytest.approx(size * 8 / block)
    weight = largest_matrix(model_dir)
    rmse = {}
    for type_name in CORE:
        stats = quants.error_stats(weight, type_name)
        restored = gguf.dequantize(gguf.quantize(weight, QT[type_name]), QT[type_name]).astype(np.float64)
        error = restored - weight.astype(np.float64)
        assert stats["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-6)
        assert stats["max_abs"] == pytest.approx(np.abs(error).max(), rel=1e-6)
        assert stats["relative_rmse"] == pytest.approx(stats["rmse"] / np.sqrt(np.mean(weight.astype(np.float64) ** 2)))
        rmse[type_name] = stats["rmse"]
    assert rmse["Q8_0"] < rmse["Q4_0"]


@pytest.mark.points(1)
def test_bad_input_names_the_argument():
    """A row that is not whole blocks, bytes that are not whole blocks, and an unknown type name are
    ValueErrors naming the argument."""
    assert quants.quantize_q8_0(np.zeros(64, dtype=np.float32)).shape == (68,)  # valid input works
    assert quants.bits_per_weight("Q4_0") == 4.5
    with pytest.raises(ValueError, match="values"):
        quants.quantize_q8_0(np.zeros((2, 33), dtype=np.float32))
    with pytest.raises(ValueError, match="values"):
        quants.quantize_q4_0(np.zeros(31, dtype=np.float32))
    with pytest.raises(ValueError, match="data"):
        quants.dequantize_q8_0(np.zeros(35, dtype=np.uint8))
    with pytest.raises(ValueError, match="type_name"):
        quants.bits_per_weight("Q3_X")
    with pytest.raises(ValueError, match="type_name"):
        quants.error_stats(np.zeros(32, dtype=np.float32), "q8")
