"""Quantized matmul kernels vs gguf.quants and float64 emulations of llama.cpp's CPU dot products."""
from pathlib import Path

import gguf
import numba
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from ggraph.errors import GGraphError
from ggraph.runtime.kernels.matmul import dequantize_rows, get_rows, mul_mat
from ggraph.runtime.kernels.quantize_act import quantize_q8_0, quantize_q8_1, quantize_q8_K
from ggraph.runtime.kernels.type_traits import FORMATS
from ggraph.runtime.weights import prepare_weight

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


# llama.cpp's one-token and batch kernels differ for these (and so do ours): IQ4_NL rows not
# repacked (vec_dot's two accumulators vs tinyBLAS's one)
VEC_NE_BATCH = {T.IQ4_NL}


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
        if t not in VEC_NE_BATCH:
            assert np.array_equal(one[0], batch[m])
    prev = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = np.empty((M, n), np.float32)
        mul_mat(w, x, single)
    finally:
        numba.set_num_threads(prev)
    assert np.array_equal(single, batch)


@pytest.mark.parametrize("t", [T.F16, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q6_K], ids=lambda t: t.name)
def test_large_batch_spans_token_tiles(t):
    """M large enough that kernels walk several L1-sized token tiles: still equal to row-by-row (for
    F16 / Q4_K / Q6_K, whose llama.cpp batch kernels differ from one-token ones: to batches of 8)."""
    rng = np.random.default_rng(8)
    k, n, M = 1024, 24, 40
    w, raw = make(t, n, k, rng)
    x = rng.standard_normal((M, k)).astype(np.float32)
    batch = np.empty((M, n), np.float32)
    mul_mat(w, x, batch)
    if t in (T.F16, T.Q4_K, T.Q6_K):
        part = np.empty((8, n), np.float32)
        for m0 in (0, 16, 32):
            mul_mat(w, x[m0:m0 + 8], part)
            assert np.array_equal(part, batch[m0:m0 + 8])
    else:
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


# ---- bit-exact emulation of llama.cpp's float operation order (numpy, float64 + round-to-odd) ------

def fma32(a, b, c):
    """float32 fma(a, b, c) with one rounding: the product is exact in float64, the sum is rounded to
    odd (TwoSum error + sticky last bit), which makes the final rounding to float32 correct."""
    a, b, c = (np.asarray(v, np.float32).astype(np.float64) for v in (a, b, c))
    p = a * b
    s = p + c
    bv = s - p
    e = (p - (s - bv)) + (c - bv)
    even = (s.view(np.int64) & 1) == 0
    s = np.where((e != 0) & even, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def hsum8(acc):
    """hsum_float_8 over the last axis (8 lanes): (a_i + a_{i+4}), then (r0 + r2) + (r1 + r3)."""
    r = acc[..., :4] + acc[..., 4:]
    return (r[..., 0] + r[..., 2]) + (r[..., 1] + r[..., 3])


KV_IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113])


def block_codes(t, raw, k):
    """Signed integer weight codes [n, k/32, 32] (element order), d [n, k/32] float32 and (Q4_1 / Q5_1)
    m [n, k/32] float32, parsed independently from the block bytes."""
    bb = {T.Q4_0: 18, T.IQ4_NL: 18, T.Q4_1: 20, T.Q5_0: 22, T.Q5_1: 24, T.Q8_0: 34}[t]
    n = raw.shape[0]
    b = raw.reshape(-1, bb)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)[:, 0].reshape(n, -1)
    m = b[:, 2:4].copy().view(np.float16).astype(np.float32)[:, 0].reshape(n, -1)
    if t == T.Q8_0:
        q = b[:, 2:].view(np.int8).astype(np.int64)
    else:
        qs = b[:, bb - 16:]
        q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int64)
        if t in (T.Q5_0, T.Q5_1):
            qh = b[:, bb - 20:bb - 16].copy().view(np.uint32)[:, 0].astype(np.int64)
            q |= ((qh[:, None] >> np.arange(32)) & 1) << 4
        if t == T.IQ4_NL:
            q = KV_IQ4NL[q]
        elif t in (T.Q4_0, T.Q5_0):
            q = q - (8 if t == T.Q4_0 else 16)
    return q.reshape(n, k // 32, 32), d, m


def emulate_exact(t, raw, k, x, kernel):
    """llama.cpp's result for weight rows `raw` x activations x, bit for bit, for kernel:
    "lanes8" (vec_dot / tinyBLAS), "iq4nl_vec" (ggml_vec_dot_iq4_nl_q8_0) or "repacked" (gemv/gemm
    of the repacked Q4_0 / IQ4_NL layouts)."""
    q, dw, mw = block_codes(t, raw, k)
    qa, da, sa = np_q8(x, t in (T.Q4_1, T.Q5_1))
    M, nb = x.shape[0], k // 32
    qa = qa.reshape(M, nb, 32).astype(np.int64)
    sc = dw[None] * da[:, None]                              # [M, n, nb] float32 products
    if kernel == "repacked":
        isum = np.einsum("nbj,mbj->mnb", q, qa).astype(np.float32)
        acc = np.zeros(sc.shape[:2], np.float32)
        for b in range(nb):
            acc = fma32(isum[..., b], sc[..., b], acc)
        return acc
    lanes = np.einsum("nbil,mbil->mnbi", q.reshape(-1, nb, 8, 4), qa.reshape(M, nb, 8, 4)).astype(np.float32)
    if kernel == "iq4nl_vec":
        acc = np.zeros(sc.shape[:2] + (2, 8), np.float32)
        for b in range(nb - nb % 2):
            acc[..., b % 2, :] = fma32(sc[..., b, None], lanes[..., b, :], acc[..., b % 2, :])
        out = hsum8(acc[..., 0, :] + acc[..., 1, :])
        if nb % 2:
            out = out + lanes[..., nb - 1, :].sum(-1) * sc[..., nb - 1]    # exact int sum, then fl(*), fl(+)
        return out
    acc = np.zeros(sc.shape[:2] + (8,), np.float32)
    summs = np.zeros(sc.shape[:2], np.float32)
    for b in range(nb):
        acc = fma32(sc[..., b, None], lanes[..., b, :], acc)
        if t in (T.Q4_1, T.Q5_1):
            summs = fma32(mw[None, :, b], sa[:, None, b], summs)
    return hsum8(acc) + summs


LEGACY = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.IQ4_NL]


@pytest.mark.parametrize("t", LEGACY, ids=lambda t: t.name)
@pytest.mark.parametrize("n", [37, 48], ids=["rows37", "rows48"])
def test_legacy_blocks_bit_exact_with_llamacpp_order(t, n):
    """32-blocks: the exact float32 result of the kernel llama.cpp's CPU backend picks (vec_dot for one
    token, tinyBLAS for batches, the repacked gemv/gemm for Q4_0 / IQ4_NL with a multiple of 8 rows),
    with an odd block count and realistic (gguf-quantized) blocks."""
    rng = np.random.default_rng(11)
    k = 480
    if t == T.IQ4_NL:
        raw = random_weights(t, n, k, rng)
    else:
        raw = gguf.quants.quantize(rng.standard_normal((n, k)).astype(np.float32), t)
    w, _ = make(t, n, k, rng, raw)
    x = (rng.standard_normal((9, k)) * np.exp(rng.uniform(-3, 3, (9, 1)))).astype(np.float32)
    repacked = t in (T.Q4_0, T.IQ4_NL) and n % 8 == 0
    assert (w.rows16 is not None) == (t in (T.Q8_0, T.Q5_0, T.Q4_1) and n % 16 == 0)   # rows48: the 16-row gemv
    batch = np.empty((9, n), np.float32)
    mul_mat(w, x, batch)
    assert np.array_equal(batch, emulate_exact(t, raw, k, x, "repacked" if repacked else "lanes8"))
    one = np.empty((1, n), np.float32)
    mul_mat(w, x[4:5], one)
    vec = "repacked" if repacked else "iq4nl_vec" if t == T.IQ4_NL else "lanes8"
    assert np.array_equal(one, emulate_exact(t, raw, k, x[4:5], vec))


def q4k_parts(raw, k):
    """Q4_K blocks: codes [n, nb, 8, 32] (0..15), 6-bit scales and mins [n, nb, 8], d, dmin [n, nb]."""
    n = raw.shape[0]
    b = raw.reshape(-1, 144)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)[:, 0]
    dmin = b[:, 2:4].copy().view(np.float16).astype(np.float32)[:, 0]
    sc = b[:, 4:16].astype(np.int64)
    j = np.arange(4)
    scale = np.concatenate([sc[:, j] & 63, (sc[:, j + 8] & 15) | ((sc[:, j] >> 6) << 4)], axis=1)
    mins = np.concatenate([sc[:, j + 4] & 63, (sc[:, j + 8] >> 4) | ((sc[:, j + 4] >> 6) << 4)], axis=1)
    qs = b[:, 16:].reshape(-1, 4, 32).astype(np.int64)
    q = np.stack([qs & 15, qs >> 4], axis=2).reshape(-1, 8, 32)
    nb = k // 256
    return (q.reshape(n, nb, 8, 32), scale.reshape(n, nb, 8), mins.reshape(n, nb, 8), d.reshape(n, nb),
            dmin.reshape(n, nb))


def q6k_parts(raw, k):
    """Q6_K blocks: unsigned codes [n, nb, 256] (0..63), int8 scales [n, nb, 16], d [n, nb]."""
    n = raw.shape[0]
    b = raw.reshape(-1, 210)
    e = np.arange(256)
    h, r = e // 128, e % 128
    j, l = r // 32, r % 32
    low = (b[:, 64 * h + l + 32 * (j % 2)].astype(np.int64) >> np.where(j >= 2, 4, 0)) & 15
    hi = (b[:, 128 + 32 * h + l].astype(np.int64) >> (2 * j)) & 3
    q = low | (hi << 4)
    scales = b[:, 192:208].view(np.int8).astype(np.int64)
    d = b[:, 208:210].copy().view(np.float16).astype(np.float32)[:, 0]
    nb = k // 256
    return q.reshape(n, nb, 256), scales.reshape(n, nb, 16), d.reshape(n, nb)


def emulate_kquant(t, raw, k, x, kernel):
    """llama.cpp's K-quant result bit for bit: "gemv" / "gemm" (repacked Q4_K), "vec" (Q6_K vec_dot),
    "tiled" (>= 8 tokens, matrices not repacked)."""
    qa, da, bs16 = np_q8k(x)
    M, nb = x.shape[0], k // 256
    qa = qa.reshape(M, nb, 256).astype(np.int64)
    if t == T.Q6_K:
        q, sc, d = q6k_parts(raw, k)
        dd = da[:, None] * d[None]                                    # fl(d_a * d_w)  [M, n, nb]
        if kernel == "vec":
            prod = (q[None] * qa[:, None]).reshape(M, -1, nb, 8, 8, 4).sum(-1)   # [.., run, lane]
            grp = 2 * np.arange(8)[:, None] + (np.arange(8)[None] >= 4)      # scale of (run, lane)
            lanes = ((prod * sc[:, :, grp]).sum(-2)
                     - 32 * (bs16.reshape(M, 1, nb, 16) * sc[None]).reshape(M, -1, nb, 8, 2).sum(-1))
            acc = np.zeros((M, raw.shape[0], 8), np.float32)
            for b in range(nb):
                acc = fma32(dd[..., b, None], lanes[..., b, :].astype(np.float32), acc)
            return hsum8(acc)
        s1 = (sc[None] * ((q - 32)[None] * qa[:, None]).reshape(M, -1, nb, 16, 16).sum(-1)).sum(-1)
        y = np.zeros((M, raw.shape[0]), np.float32)
        for b in range(nb):
            y = fma32(s1[..., b].astype(np.float32) * d[None, :, b], da[:, None, b], y)
        return y
    q, sc, mn, d, dmin = q4k_parts(raw, k)
    dots = (q[None] * qa.reshape(M, 1, nb, 8, 32)).sum(-1)           # [M, n, nb, 8]
    isum = dots * sc[None]
    imin = mn[None] * bs16.reshape(M, 1, nb, 8, 2).sum(-1)
    if kernel == "tiled":
        y = np.zeros((M, raw.shape[0]), np.float32)
        for b in range(nb):
            r = isum[..., b, :].sum(-1).astype(np.float32) * d[None, :, b]
            r = fma32(-dmin[None, :, b], imin[..., b, :].sum(-1).astype(np.float32), r)
            y = fma32(r, da[:, None, b], y)
        return y
    step = 8 if kernel == "gemv" else 2
    acc = np.zeros((M, raw.shape[0]), np.float32)
    accm = np.zeros_like(acc)
    for b in range(nb):
        for j in range(0, 8, step):
            acc = fma32(isum[..., b, j:j + step].sum(-1).astype(np.float32), da[:, None, b] * d[None, :, b], acc)
            accm = fma32(imin[..., b, j:j + step].sum(-1).astype(np.float32), da[:, None, b] * dmin[None, :, b], accm)
    return acc - accm


@pytest.mark.parametrize("t", [T.Q4_K, T.Q6_K], ids=lambda t: t.name)
def test_kquants_bit_exact_with_llamacpp_order(t):
    """Q4_K (repacked by llama.cpp when rows % 8 == 0: gemv for one token and the last M % 4 tokens,
    gemm per 4 tokens; tiled for >= 8 tokens otherwise) and Q6_K (vec_dot below 8 tokens, tiled from
    8), on blocks from llama.cpp's quantizer where available."""
    rng = np.random.default_rng(13)
    k = 768
    fixture = Path(__file__).parent / "fixtures" / "models" / f"wide-{t.name}.gguf"
    x = (rng.standard_normal((11, k)) * np.exp(rng.uniform(-2, 2, (11, 1)))).astype(np.float32)
    for n in (40, 37):
        raw = random_weights(t, n, k, rng)
        if fixture.exists():   # realistic scales: tile a fixture tensor's blocks
            tt = [tt for tt in gguf.GGUFReader(fixture).tensors if int(tt.tensor_type) == int(t)][0]
            blocks = np.ascontiguousarray(tt.data).view(np.uint8).reshape(-1, raw.shape[1] // 3)
            raw = np.ascontiguousarray(np.tile(blocks, (1, 3))[:n])
        w, _ = make(t, n, k, rng, raw)
        for M in (1, 6, 11):
            out = np.empty((M, n), np.float32)
            mul_mat(w, x[:M], out)
            if t == T.Q6_K:
                ref = emulate_kquant(t, raw, k, x[:M], "vec" if M < 8 else "tiled")
            elif n % 8 == 0:
                g = M - M % 4 if M > 3 else 0
                parts = ([emulate_kquant(t, raw, k, x[:g], "gemm")] if g else []) + \
                    ([emulate_kquant(t, raw, k, x[g:M], "gemv")] if g < M else [])
                ref = np.concatenate(parts)
            elif M >= 8:
                ref = emulate_kquant(t, raw, k, x[:M], "tiled")
            else:
                continue   # Q4_K vec_dot: not reproduced yet
            assert np.array_equal(out, ref), (n, M)


def reduce_add_ps(v):
    """_mm512_reduce_add_ps over the last axis (16 lanes), in GCC 12's order."""
    t = v[..., 8:] + v[..., :8]
    u = t[..., 4:] + t[..., :4]
    return (u[..., 0] + u[..., 2]) + (u[..., 1] + u[..., 3])


def emulate_float(t, raw, k, x, kernel):
    """llama.cpp's F32 / F16 / BF16 dot, bit for bit: "tinyblas" or "vec" (ggml_vec_dot_*)."""
    W = deq_ref(t, raw, k).astype(np.float32)
    if t == T.F16:
        x = x.astype(np.float16).astype(np.float32)
    elif t == T.BF16:
        x = gguf.quants.dequantize(gguf.quants.quantize(x, T.BF16), T.BF16).reshape(x.shape).astype(np.float32)
    W, x = W[None], x[:, None]                                   # [1, n, k], [M, 1, k]
    shape = (x.shape[0], W.shape[1], 16)
    if t == T.BF16:        # vdpbf16ps: lane j += odd product, then += even product (products exact)
        def dp(acc, l):
            wv, xv = W[..., l:l + 32], x[..., l:l + 32]
            acc = acc + wv[..., 1::2] * xv[..., 1::2]
            return acc + wv[..., 0::2] * xv[..., 0::2]
        if kernel == "tinyblas":
            acc = np.zeros(shape, np.float32)
            for l in range(0, k, 32):
                acc = dp(acc, l)
            return reduce_add_ps(acc)
        kp = k - k % 64
        c1, c2 = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
        for l in range(0, kp, 64):
            c1, c2 = dp(c1, l), dp(c2, l + 32)
        s = reduce_add_ps(c1).astype(np.float64) + reduce_add_ps(c2).astype(np.float64)
        for l in range(kp, k):
            s = s + (W[..., l] * x[..., l]).astype(np.float64)
        return s.astype(np.float32)
    if kernel == "tinyblas":
        acc = np.zeros(shape, np.float32)
        for l in range(0, k, 16):
            acc = fma32(W[..., l:l + 16], x[..., l:l + 16], acc)
        return reduce_add_ps(acc)
    kp = k - k % 64
    acc = np.zeros((4,) + shape, np.float32)
    for l in range(0, kp, 64):
        for a in range(4):
            acc[a] = fma32(W[..., l + 16 * a:l + 16 * a + 16], x[..., l + 16 * a:l + 16 * a + 16], acc[a])
    s = reduce_add_ps((acc[0] + acc[2]) + (acc[1] + acc[3]))
    if t == T.F16:         # leftovers in double
        s = s.astype(np.float64)
        for l in range(kp, k):
            s = s + (W[..., l] * x[..., l]).astype(np.float64)
        return s.astype(np.float32)
    kv = kp + (k - kp) // 8 * 8   # F32: GCC's in-order vectorized loop, then scalar fmas
    for l in range(kp, kv):
        s = s + W[..., l] * x[..., l]
    for l in range(kv, k):
        s = fma32(W[..., l], x[..., l], s)
    return s


@pytest.mark.parametrize("t", [T.F32, T.F16, T.BF16], ids=lambda t: t.name)
@pytest.mark.parametrize("k", [512, 200])
def test_float_weights_bit_exact_with_llamacpp_order(t, k):
    """tinyBLAS for >= 2 tokens when K % 16 (BF16: 32) == 0 and rows % 4 == 0, else vec_dot."""
    rng = np.random.default_rng(14)
    x = (rng.standard_normal((6, k)) * np.exp(rng.uniform(-3, 3, (6, 1)))).astype(np.float32)
    for n in (40, 37):
        w, raw = make(t, n, k, rng)
        for M in (1, 6):
            out = np.empty((M, n), np.float32)
            mul_mat(w, x[:M], out)
            tb = M >= 2 and n % 4 == 0 and k % (32 if t == T.BF16 else 16) == 0
            assert np.array_equal(out, emulate_float(t, raw, k, x[:M], "tinyblas" if tb else "vec")), (n, M)


def test_fma32_emulation():
    """The test's fma32 is a correctly rounded fused multiply-add (vs exact rational arithmetic)."""
    from fractions import Fraction
    rng = np.random.default_rng(12)
    a, b, c = (rng.standard_normal(400).astype(np.float32) * np.float32(2.0) ** rng.integers(-30, 30, 400)
               for _ in range(3))
    c[:100] = -(a[:100].astype(np.float64) * b[:100]).astype(np.float32)   # heavy cancellation
    got = fma32(a, b, c)
    for i in range(400):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        # the float32 nearest to `exact` (ties to even): compare with both neighbours of got
        g = got[i]
        lo, hi = np.nextafter(g, np.float32(-np.inf)), np.nextafter(g, np.float32(np.inf))
        dg = abs(Fraction(float(g)) - exact)
        assert dg <= abs(Fraction(float(lo)) - exact) and dg <= abs(Fraction(float(hi)) - exact), i


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
