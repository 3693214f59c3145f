"""Quantized matmul kernels vs gguf.quants and float64 emulations of llama.cpp's CPU dot products."""
from pathlib import Path

import gguf
import numba
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from ggraph.errors import GGraphError
from ggraph.runtime.kernels.matmul import dequantize_rows, get_rows, mul_mat, prepare_weight
from ggraph.runtime.kernels.quant_formats import FORMATS
from ggraph.runtime.kernels.quantize_act import quantize_q8_0, quantize_q8_1, quantize_q8_K

ALL = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K,
       T.Q6_K, T.IQ4_NL, T.IQ4_XS]
# byte offsets of the fp16 scale fields, forced to sane finite values in random blocks
F16_FIELDS = {T.Q4_0: (0,), T.Q4_1: (0, 2), T.Q5_0: (0,), T.Q5_1: (0, 2), T.Q8_0: (0,), T.Q2_K: (80, 82),
              T.Q3_K: (108,), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,), T.IQ4_NL: (0,), T.IQ4_XS: (0,)}
VEC_DOT = {T.Q4_0: "Q8_0", T.Q5_0: "Q8_0", T.Q8_0: "Q8_0", T.IQ4_NL: "Q8_0", T.Q4_1: "Q8_1", T.Q5_1: "Q8_1",
           T.F32: "F32", T.F16: "F16", T.BF16: "BF16"}


def block_size(t):
    return gguf.GGML_QUANT_SIZES[t][0]


def width_for(t):
    """An input width with an odd number of 32-blocks / a scalar tail for float types."""
    return {1: 200, 32: 480, 256: 512}[block_size(t)]


def random_weights(t, n, k, rng):
    """[n, row_bytes] uint8 of valid blocks: random bytes with finite fp16 scales."""
    if t == T.F32:
        return rng.standard_normal((n, k)).astype(np.float32).view(np.uint8)
    if t == T.F16:
        return rng.standard_normal((n, k)).astype(np.float16).view(np.uint8)
    if t == T.BF16:
        return gguf.quants.quantize(rng.standard_normal((n, k)).astype(np.float32), t)
    bs, bb = gguf.GGML_QUANT_SIZES[t]
    blocks = rng.integers(0, 256, size=(n * k // bs, bb), dtype=np.uint8)
    small = bs == 256
    for off in F16_FIELDS[t]:
        mag = rng.uniform(0.5e-3, 2e-3, blocks.shape[0]) if small else rng.uniform(0.01, 0.05, blocks.shape[0])
        sign = np.where(rng.random(blocks.shape[0]) < 0.2, -1.0, 1.0)
        blocks[:, off:off + 2] = (mag * sign).astype(np.float16).view(np.uint8).reshape(-1, 2)
    return blocks.reshape(n, -1)


def make(t, n, k, rng, raw=None):
    raw = random_weights(t, n, k, rng) if raw is None else raw
    return prepare_weight(f"blk.0.test.{t.name}", int(t), raw, k, n), raw


def deq_ref(t, raw, k):
    return gguf.quants.dequantize(raw, t).reshape(raw.shape[0], k)


# ---- numpy emulation of llama.cpp's activation quantizers (independent of the numba code) --------

def np_q8(x, with_s):
    xb = x.reshape(x.shape[0], -1, 32)
    amax = np.abs(xb).max(-1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.rint(xb * inv[..., None]).astype(np.int32)
    d16 = d.astype(np.float16).astype(np.float32)
    s = (d * q.sum(-1).astype(np.float32)).astype(np.float16).astype(np.float32)
    return q.reshape(x.shape), d16, (s if with_s else q.sum(-1))


def np_q8k(x):
    xb = x.reshape(x.shape[0], -1, 256)
    idx = np.abs(xb).argmax(-1)
    vmax = np.take_along_axis(xb, idx[..., None], -1)[..., 0]
    with np.errstate(divide="ignore"):
        iscale = np.where(vmax != 0, np.float32(-127) / vmax, np.float32(0)).astype(np.float32)
    q = np.minimum(127, np.rint(xb * iscale[..., None])).astype(np.int32)
    with np.errstate(divide="ignore"):
        d = np.where(vmax != 0, np.float32(1) / iscale, np.float32(0)).astype(np.float32)
    return q.reshape(x.shape), d, q.reshape(x.shape[0], -1, 16).sum(-1)


def q_1_parts(t, raw, k):
    """Integer q, d and m of Q4_1 / Q5_1 blocks, parsed independently from the bytes."""
    bb = 20 if t == T.Q4_1 else 24
    b = raw.reshape(-1, bb)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float64)[:, 0]
    m = b[:, 2:4].copy().view(np.float16).astype(np.float64)[:, 0]
    qs = b[:, bb - 16:]
    q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int64)
    if t == T.Q5_1:
        qh = b[:, 4:8].copy().view(np.uint32)[:, 0].astype(np.int64)
        q |= ((qh[:, None] >> np.arange(32)) & 1) << 4
    n = raw.shape[0]
    return q.reshape(n, k // 32, 32), d.reshape(n, -1), m.reshape(n, -1)


def emulate(t, raw, k, x):
    """float64 value of llama.cpp's dot: exact integer block sums, llama's activation rounding."""
    W = deq_ref(t, raw, k).astype(np.float64)
    vd = VEC_DOT.get(t, "Q8_K")
    if vd in ("F32", "F16", "BF16"):
        xr = {"F32": x, "F16": x.astype(np.float16).astype(np.float32),
              "BF16": gguf.quants.dequantize(gguf.quants.quantize(x, T.BF16), T.BF16).reshape(x.shape)}[vd]
        return xr.astype(np.float64) @ W.T, np.abs(xr.astype(np.float64)) @ np.abs(W).T
    if vd == "Q8_1":
        q, d, m = q_1_parts(t, raw, k)
        qa, da, sa = np_q8(x, True)
        qa = qa.reshape(x.shape[0], -1, 32).astype(np.int64)
        isum = np.einsum("nbj,mbj->mnb", q, qa)
        val = (d[None] * da[:, None].astype(np.float64) * isum + m[None] * sa[:, None]).sum(-1)
        mag = (np.abs(d[None] * da[:, None] * np.einsum("nbj,mbj->mnb", q, np.abs(qa)))
               + np.abs(m[None] * sa[:, None])).sum(-1)
        return val, mag
    qa, da, _ = np_q8(x, False) if vd == "Q8_0" else np_q8k(x)
    bs = k // da.shape[1]
    xq = (qa.reshape(x.shape[0], -1, bs) * da[..., None].astype(np.float64)).reshape(x.shape)
    return xq @ W.T, np.abs(xq) @ np.abs(W).T


# ---- tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", ALL, ids=lambda t: t.name)
def test_dequantize_matches_gguf(t):
    rng = np.random.default_rng(1)
    k = width_for(t)
    w, raw = make(t, 7, k, rng)
    got = dequantize_rows(w, 0, 7)
    assert np.array_equal(got, deq_ref(t, raw, k))
    assert np.array_equal(dequantize_rows(w, 3, 5), got[3:5])


@pytest.mark.parametrize("t", [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0], ids=lambda t: t.name)
def test_gguf_quantized_blocks(t):
    """Blocks made by gguf's reference quantizer (realistic scales) through the whole path."""
    rng = np.random.default_rng(2)
    k, n = 576, 40
    raw = gguf.quants.quantize(rng.standard_normal((n, k)).astype(np.float32), t)
    w, _ = make(t, n, k, rng, raw)
    x = rng.standard_normal((3, k)).astype(np.float32)
    out = np.empty((3, n), np.float32)
    mul_mat(w, x, out)
    val, mag = emulate(t, raw, k, x)
    assert np.max(np.abs(out - val) / mag) < 1e-5
    assert np.array_equal(dequantize_rows(w, 0, n), deq_ref(t, raw, k))


def test_activation_quantizers_match_emulation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 512)).astype(np.float32) * 3
    x[1, :256] = 0                      # an all-zero block / super-block
    x[2, :32] = np.arange(32) * 0.5     # ties at .5 after scaling: round half to even
    x[2, 300] = -50                     # negative extreme picks the Q8_K sign
    qs, ds, _ = quantize_q8_0(x)    # (d, sum) interleaved per block
    q, d, isum = np_q8(x, False)
    assert np.array_equal(qs, q) and np.array_equal(ds[:, 0::2], d) and np.array_equal(ds[:, 1::2], isum)
    qs, ds, _ = quantize_q8_1(x)   # (d, s) interleaved per block
    q, d, s = np_q8(x, True)
    assert np.array_equal(qs, q) and np.array_equal(ds[:, 0::2], d) and np.array_equal(ds[:, 1::2], s)
    qs, d, bs = quantize_q8_K(x)
    q, dr, bsr = np_q8k(x)
    assert np.array_equal(qs, q) and np.array_equal(d, dr) and np.array_equal(bs, bsr)
    # M == 1 uses the serial path: same bits
    assert np.array_equal(quantize_q8_K(x[2:3])[0], qs[2:3])


@pytest.mark.parametrize("t", ALL, ids=lambda t: t.name)
def test_dot_vs_float64_and_emulation(t):
    rng = np.random.default_rng(4)
    k, n = width_for(t), 37   # n not a multiple of the row chunk
    w, raw = make(t, n, k, rng)
    x = (0.1 + 2 * np.cos(np.arange(3 * k) + rng.uniform(0, 10)).reshape(3, k)).astype(np.float32)
    out = np.empty((3, n), np.float32)
    mul_mat(w, x, out)
    W = deq_ref(t, raw, k).astype(np.float64)
    ref = x.astype(np.float64) @ W.T
    # llama.cpp test-quantize-fns: |dot error| / n_elements < 0.02 (weights here are exact, so only
    # activation rounding counts; much tighter for the 8/16/32-bit paths)
    tol = {"F32": 1e-6, "F16": 1e-4, "BF16": 1e-3}.get(VEC_DOT.get(t), 0.02 if t != T.Q8_0 else 0.005)
    scale = np.abs(W).mean() * 2   # weights here are not unit scale
    assert np.max(np.abs(out - ref)) / k / scale < tol
    val, mag = emulate(t, raw, k, x)
    assert np.max(np.abs(out - val) / mag) < 1e-5


@pytest.mark.parametrize("t", ALL, ids=lambda t: t.name)
def test_matvec_equals_matmat_and_threads(t):
    rng = np.random.default_rng(5)
    k, n, M = width_for(t), 50, 6
    w, raw = make(t, n, k, rng)
    x = rng.standard_normal((M, k)).astype(np.float32)
    batch = np.empty((M, n), np.float32)
    mul_mat(w, x, batch)
    one = np.empty((1, n), np.float32)
    for m in range(M):
        mul_mat(w, x[m:m + 1], one)
        assert np.array_equal(one[0], batch[m])
    prev = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = np.empty((M, n), np.float32)
        mul_mat(w, x, single)
    finally:
        numba.set_num_threads(prev)
    assert np.array_equal(single, batch)


@pytest.mark.parametrize("t", [T.F16, T.Q4_1, T.Q8_0, T.Q4_K, T.Q6_K], ids=lambda t: t.name)
def test_large_batch_spans_token_tiles(t):
    """M large enough that kernels walk several L1-sized token tiles: still equal to row-by-row."""
    rng = np.random.default_rng(8)
    k, n, M = 1024, 24, 40
    w, raw = make(t, n, k, rng)
    x = rng.standard_normal((M, k)).astype(np.float32)
    batch = np.empty((M, n), np.float32)
    mul_mat(w, x, batch)
    one = np.empty((1, n), np.float32)
    for m in (0, 15, 16, 17, 39):
        mul_mat(w, x[m:m + 1], one)
        assert np.array_equal(one[0], batch[m])
    val, mag = emulate(t, raw, k, x)
    assert np.max(np.abs(batch - val) / mag) < 1e-5


@pytest.mark.parametrize("t", ALL, ids=lambda t: t.name)
def test_get_rows(t):
    rng = np.random.default_rng(6)
    k, n = width_for(t), 20
    w, raw = make(t, n, k, rng)
    ids = np.array([3, 0, 19, 3], np.int32)
    out = np.empty((4, k), np.float32)
    get_rows(w, ids, out)
    assert np.array_equal(out, deq_ref(t, raw, k)[ids])


FIXTURE_MODELS = sorted(Path(__file__).parent.glob("fixtures/models/*.gguf"))


@pytest.mark.parametrize("path", FIXTURE_MODELS, ids=lambda p: p.stem)
def test_llamacpp_quantized_fixture_blocks(path):
    """Blocks written by llama.cpp's own quantizer (realistic scale patterns), when fixtures exist."""
    reader = gguf.GGUFReader(path)
    tensors = [t for t in reader.tensors if len(t.shape) == 2 and int(t.tensor_type) in FORMATS][:3]
    rng = np.random.default_rng(9)
    for t in tensors:
        k, n = int(t.shape[0]), int(t.shape[1])
        raw = np.ascontiguousarray(t.data).view(np.uint8).reshape(n, -1)
        w = prepare_weight(t.name, int(t.tensor_type), raw, k, n)
        assert np.array_equal(dequantize_rows(w, 0, n), deq_ref(t.tensor_type, raw, k)), t.name
        x = rng.standard_normal((5, k)).astype(np.float32)
        out = np.empty((5, n), np.float32)
        mul_mat(w, x, out)
        val, mag = emulate(t.tensor_type, raw, k, x)
        assert np.max(np.abs(out - val) / mag) < 1e-5, t.name


def test_unsupported_type_names_tensor_and_formats():
    with pytest.raises(GGraphError) as e:
        prepare_weight("blk.3.ffn_up.weight", int(T.IQ2_XXS), np.zeros((2, 66), np.uint8), 256, 2)
    msg = str(e.value)
    assert "blk.3.ffn_up.weight" in msg and "IQ2_XXS" in msg and "Q4_K" in msg and "Q8_0" in msg


def test_bad_shapes_are_reported():
    rng = np.random.default_rng(7)
    with pytest.raises(GGraphError, match="multiple of the block size"):
        prepare_weight("w", int(T.Q4_K), np.zeros((2, 144), np.uint8), 100, 2)
    with pytest.raises(GGraphError, match="bytes"):
        prepare_weight("w", int(T.Q8_0), np.zeros((2, 30), np.uint8), 32, 2)
    w, _ = make(T.Q8_0, 4, 64, rng)
    with pytest.raises(GGraphError):
        mul_mat(w, np.zeros((1, 32), np.float32), np.zeros((1, 4), np.float32))
    with pytest.raises(GGraphError, match="out of range"):
        get_rows(w, np.array([4], np.int32), np.zeros((1, 64), np.float32))


def test_table_geometry_matches_gguf():
    for t, fmt in FORMATS.items():
        assert (fmt.block_size, fmt.block_bytes) == tuple(gguf.GGML_QUANT_SIZES[T(t)]), fmt.name
