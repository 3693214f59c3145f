"""Non-matmul op kernels (norms, activations, soft_max, rope, attention matmuls).

1. Each kernel against a float64 numpy reference on random data (normalized mean squared error,
   like llama.cpp's test-backend-ops).
2. The pieces that emulate ggml's AVX512 arithmetic (fma, _mm512_reduce_add_ps, ggml_v_expf, the
   llamafile-sgemm and vec_dot summation orders) against independent references.
3. Marked `llamacpp`: every kernel bit for bit against llama.cpp's own CPU backend, driven through
   ctypes on single-op ggml graphs (skipped without llama-cpp-python or an AVX512 build, whose
   code paths these kernels mirror).
"""
from __future__ import annotations

import ctypes
import math
import os
from fractions import Fraction

import numpy as np
import pytest

from ggraph.runtime.kernels import batched_matmul, elementwise, ggml_math, norm, rope, softmax
from ggraph.runtime.kernels.quantize_act import round_to_f16

F32 = np.float32


def nmse(out, ref) -> float:
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    return float(((out - ref) ** 2).sum() / max((ref ** 2).sum(), 1e-300))


def rows(rng, r, n, scale=1.0):
    """Random rows with per-row magnitudes spread over two decades and a few outliers."""
    x = rng.standard_normal((r, n)) * rng.uniform(0.1, 10.0, (r, 1)) * scale
    x[0, :2] = [40.0, -35.0][: min(2, n)]
    return x.astype(np.float32)


WIDTHS = [5, 16, 37, 64, 576, 1000]


# ---------------------------------------------------------------------------------------------
# 1. kernels vs float64 references
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", WIDTHS)
def test_rms_norm(n):
    x = rows(np.random.default_rng(n), 7, n)
    out = np.empty_like(x)
    norm.rms_norm_f32(x, out, 1e-6)
    xd = x.astype(np.float64)
    ref = xd / np.sqrt((xd ** 2).mean(1, keepdims=True) + 1e-6)
    assert nmse(out, ref) < 1e-12


@pytest.mark.parametrize("n", WIDTHS)
def test_rms_norm_mul(n):
    rng = np.random.default_rng(n + 1)
    x, w = rows(rng, 5, n), rng.standard_normal(n).astype(F32)
    out, sep = np.empty_like(x), np.empty_like(x)
    norm.rms_norm_mul_f32(x, w, out, 1e-5)
    norm.rms_norm_f32(x, sep, 1e-5)
    np.testing.assert_array_equal(out, sep * w)       # ggml's fused path: (x*scale)*w


@pytest.mark.parametrize("n", WIDTHS)
def test_norm(n):
    x = rows(np.random.default_rng(n + 2), 7, n) + F32(3.0)
    out = np.empty_like(x)
    norm.norm_f32(x, out, 1e-5)
    xd = x.astype(np.float64)
    d = xd - xd.mean(1, keepdims=True)
    ref = d / np.sqrt((d ** 2).mean(1, keepdims=True) + 1e-5)
    assert nmse(out, ref) < 1e-11


def _silu64(x):
    x = x.astype(np.float64)
    return x / (1.0 + np.exp(-x))


def _gelu64(x):
    x = x.astype(np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * x * (1.0 + 0.044715 * x * x)))


@pytest.mark.parametrize("n", WIDTHS)
def test_silu_swiglu(n):
    rng = np.random.default_rng(n + 3)
    x, u = rows(rng, 6, n), rows(rng, 6, n)
    out = np.empty_like(x)
    elementwise.silu_f32(x, out)
    assert nmse(out, _silu64(x)) < 1e-13
    elementwise.swiglu_f32(x, u, out)
    assert nmse(out, _silu64(x) * u) < 1e-13


@pytest.mark.parametrize("n", WIDTHS)
def test_gelu_geglu(n):
    """ggml evaluates gelu through an F16 table: the input and the result are F16-rounded."""
    rng = np.random.default_rng(n + 4)
    x, u = rows(rng, 6, n, 0.5), rows(rng, 6, n)
    x[1, :4] = [-10.0, -12.0, 10.0, 11.5][: min(4, n)]     # the table's cut-offs
    out = np.empty_like(x)
    elementwise.gelu_f32(x, out)
    assert nmse(out, _gelu64(x)) < 1e-6
    elementwise.geglu_f32(x, u, out)
    assert nmse(out, _gelu64(x) * u) < 1e-6
    if n >= 4:
        assert out[1, 0] == 0.0 and out[1, 1] == 0.0


def test_gelu_saturation():
    x = np.array([[-30.0, -10.0, 10.0, 25.0, 0.0, -9.99]], F32)
    out = np.empty_like(x)
    elementwise.gelu_f32(x, out)
    assert out[0, 0] == 0.0 and out[0, 1] == 0.0
    assert out[0, 2] == 10.0 and out[0, 3] == 25.0 and out[0, 4] == 0.0
    assert abs(out[0, 5]) < 1e-3


@pytest.mark.parametrize("shape", [(4, 10, 256), (3, 1, 37), (2, 7, 16), (2, 5, 200), (1, 3, 5)])
@pytest.mark.parametrize("masked", [False, True])
def test_soft_max(shape, masked):
    rng = np.random.default_rng(sum(shape))
    B, M, N = shape
    x = (rng.standard_normal(shape) * 6).astype(F32)
    scale = F32(0.125)
    mask = np.zeros((M + 2, N), F32)            # padded rows, like llama.cpp's KQ mask
    if masked:
        for m in range(M):
            mask[m, rng.integers(1, N + 1):] = -np.inf
        mask[:, 0] = 0.0
        mask[M - 1, 1:] = rng.uniform(-3, 0, N - 1)   # finite (ALiBi-like) biases too
    out = np.empty_like(x)
    softmax.soft_max_f32(x, mask, out, scale, masked)
    z = x.astype(np.float64) * float(scale) + (mask[:M].astype(np.float64) if masked else 0.0)
    e = np.exp(z - z.max(-1, keepdims=True))
    ref = e / e.sum(-1, keepdims=True)
    assert nmse(out, ref) < 1e-13
    if masked:
        assert np.all(out[np.broadcast_to(np.isinf(mask[:M]), out.shape)] == 0.0)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def test_soft_max_fully_masked_row_is_zero():
    x = np.ones((2, 3, 20), F32)
    mask = np.zeros((3, 20), F32)
    mask[1] = -np.inf
    out = np.empty_like(x)
    softmax.soft_max_f32(x, mask, out, F32(1.0), True)
    assert np.all(out[:, 1] == 0.0)
    np.testing.assert_allclose(out[:, [0, 2]], 1.0 / 20, rtol=1e-6)


def _theta_f32(pos, n_dims, freq_base):
    """ggml's angles: theta_scale = powf(base, -2/n_dims), theta_i = p * theta_scale^i as a float32
    running product (this rounding is part of ggml's definition of rope)."""
    ts = np.float32(np.float64(freq_base) ** (-2.0 / n_dims))
    th = np.empty((len(pos), n_dims // 2), F32)
    for t, p in enumerate(pos):
        v = F32(p)
        for i in range(n_dims // 2):
            th[t, i] = v
            v = F32(v * ts)
    return th.astype(np.float64)


def _rope64(x, pos, n_dims, neox, freq_base, freq_scale, ff=None, ext_factor=0.0, attn_factor=1.0,
            corr=(0.0, 0.0), theta=None):
    T, H, D = x.shape
    th = _theta_f32(pos, n_dims, freq_base) if theta is None else theta
    if ff is not None:
        th = th / ff[: n_dims // 2].astype(np.float64)
    th_interp = freq_scale * th
    mscale = attn_factor
    if ext_factor:
        i0 = np.arange(0, n_dims, 2)
        y = (i0 // 2 - corr[0]) / max(0.001, corr[1] - corr[0])
        mix = (1 - np.clip(y, 0, 1)) * ext_factor
        th_interp = th_interp * (1 - mix) + th * mix
        mscale *= 1.0 + 0.1 * math.log(1.0 / freq_scale)
    c, s = np.cos(th_interp)[:, None, :] * mscale, np.sin(th_interp)[:, None, :] * mscale
    xd = x.astype(np.float64)
    out = xd.copy()
    if neox:
        a, b = np.arange(n_dims // 2), np.arange(n_dims // 2) + n_dims // 2
    else:
        a, b = np.arange(0, n_dims, 2), np.arange(1, n_dims, 2)
    out[:, :, a] = xd[:, :, a] * c - xd[:, :, b] * s
    out[:, :, b] = xd[:, :, a] * s + xd[:, :, b] * c
    return out


def _run_rope(x, pos, n_dims, neox, freq_base=10000.0, freq_scale=1.0, ff=None, ext_factor=0.0,
              attn_factor=1.0, n_ctx_orig=4096, beta_fast=32.0, beta_slow=1.0):
    c0, c1 = rope.yarn_corr_dims(n_dims, n_ctx_orig, freq_base, beta_fast, beta_slow)
    out = np.empty_like(x)
    ffa = ff if ff is not None else np.ones(1, F32)
    rope.rope_f32(x, pos, out, ffa, ff is not None, n_dims, neox, freq_base, freq_scale, ext_factor,
                  attn_factor, c0, c1)
    return out, (c0, c1)


@pytest.mark.parametrize("neox", [False, True], ids=["norm", "neox"])
@pytest.mark.parametrize("n_dims", [64, 32, 48])
@pytest.mark.parametrize("variant", ["plain", "freq_scale", "freq_factors", "yarn"])
def test_rope(neox, n_dims, variant):
    rng = np.random.default_rng(n_dims + 7 * neox)
    T, H, D = 12, 3, 64
    x = (rng.standard_normal((T, H, D)) * 4).astype(F32)
    pos = np.concatenate([[0, 1, 2], rng.integers(3, 4000, T - 3)]).astype(np.int32)
    kw = {"freq_base": 100000.0 if variant == "plain" else 10000.0}
    if variant in ("freq_scale", "yarn"):
        kw["freq_scale"] = 0.25
    if variant == "freq_factors":
        kw["ff"] = rng.uniform(1.0, 8.0, n_dims // 2).astype(F32)
    if variant == "yarn":
        kw.update(ext_factor=1.0, attn_factor=0.9, n_ctx_orig=2048)
    out, corr = _run_rope(x, pos, n_dims, neox, **kw)
    ref = _rope64(x, pos, n_dims, neox, kw["freq_base"], kw.get("freq_scale", 1.0), kw.get("ff"),
                  kw.get("ext_factor", 0.0), kw.get("attn_factor", 1.0), corr)
    # the float32 roundings of theta/ff and of the YaRN mix stay (angles of up to ~4000 rad)
    assert nmse(out, ref) < 1e-9
    np.testing.assert_array_equal(out[:, :, n_dims:], x[:, :, n_dims:])   # pass-through dims


def test_rope_small_positions_exact_angles():
    """For small positions the float32 running product is close to the exact angle."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 2, 64)).astype(F32)
    pos = np.arange(4, dtype=np.int32)
    out, _ = _run_rope(x, pos, 64, True)
    theta = pos[:, None].astype(np.float64) * 10000.0 ** (-np.arange(0, 64, 2) / 64.0)
    assert nmse(out, _rope64(x, pos, 64, True, 10000.0, 1.0, theta=theta)) < 1e-13


def test_yarn_corr_dims():
    # ggml_rope_yarn_corr_dims for n_dims 128, n_ctx_orig 4096, base 10000, beta 32 / 1
    def dim(beta):
        return 128 * math.log(4096 / (beta * 2 * math.pi)) / (2 * math.log(10000.0))
    assert rope.yarn_corr_dims(128, 4096, 10000.0, 32.0, 1.0) == (math.floor(dim(32.0)), math.ceil(dim(1.0)))
    assert rope.yarn_corr_dims(64, 10, 10000.0, 32.0, 1.0)[0] == 0.0     # clamped


BMM_SHAPES = [  # (B0, B1, N, M, K): K x Q (N = n_kv, K = head_dim) and V x softmax (N = head_dim)
    (3, 9, 256, 10, 64),     # prompt batch, GQA 3 -> sgemm order
    (3, 9, 256, 1, 64),      # one-token decode -> vec_dot order
    (3, 9, 64, 10, 256),
    (3, 9, 64, 1, 256),
    (2, 4, 13, 6, 64),       # N % 4 != 0: ggml falls back to vec_dot
    (1, 2, 20, 5, 40),       # K % 16 != 0: fallback, with K % 64 leftovers
    (2, 2, 12, 1, 100),
]


@pytest.mark.parametrize("shape", BMM_SHAPES)
@pytest.mark.parametrize("f16", [True, False], ids=["f16", "f32"])
def test_bmm(shape, f16):
    B0, B1, N, M, K = shape
    rng = np.random.default_rng(N * M + K)
    a = (rng.standard_normal((B0, N, K)) * 2).astype(F32)
    x = (rng.standard_normal((B1, M, K)) * 2).astype(F32)
    if f16:
        a, x = round_to_f16(a), round_to_f16(x)
    out = np.empty((B1, M, N), F32)
    batched_matmul.bmm_f32(a, x, out, f16)
    ref = np.einsum("bnk,bmk->bmn", a.astype(np.float64)[np.arange(B1) // (B1 // B0)], x.astype(np.float64))
    assert nmse(out, ref) < 1e-12


# ---------------------------------------------------------------------------------------------
# 2. emulation pieces vs independent references
# ---------------------------------------------------------------------------------------------

def test_fma32_single_rounding():
    from numba import njit

    @njit(cache=False)
    def run(a, b, c, out):
        for i in range(a.size):
            out[i] = ggml_math.fma32(a[i], b[i], c[i])

    rng = np.random.default_rng(0)
    n = 3000
    a = rng.standard_normal(n).astype(F32)
    b = rng.standard_normal(n).astype(F32)
    c = (-(a.astype(np.float64) * b) * (1 + rng.standard_normal(n) * 1e-6)).astype(F32)  # cancellation
    out = np.empty(n, F32)
    run(a, b, c, out)
    for i in range(n):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        # float32 of the exact value: round the Fraction through float64 is not enough in general,
        # so compare against both neighbours of the result instead
        r = out[i]
        lo, hi = np.nextafter(r, F32(-np.inf)), np.nextafter(r, F32(np.inf))
        err = abs(Fraction(float(r)) - exact)
        assert err <= abs(Fraction(float(lo)) - exact) and err <= abs(Fraction(float(hi)) - exact), i


def test_reduce16_is_gcc_tree():
    from numba import njit

    @njit(cache=False)
    def red(v):
        return ggml_math.reduce16(v, 0)

    rng = np.random.default_rng(1)
    differs_from_sequential = 0
    for _ in range(500):
        v = (rng.standard_normal(16) * 10.0 ** rng.integers(-3, 4, 16)).astype(F32)
        # GCC's __MM512_REDUCE_OP: 256-bit halves, 128-bit halves, shuffle {2,3,0,1}, lane 0 + 1
        t3 = v[8:] + v[:8]
        t6 = t3[4:] + t3[:4]
        t8 = t6 + t6[[2, 3, 0, 1]]
        want = F32(t8[0] + t8[1])
        assert red(v) == want
        seq = F32(0)
        for e in v:
            seq = F32(seq + e)
        differs_from_sequential += seq != want
    assert differs_from_sequential > 0


def _ulp_diff(a, b):
    ai = a.view(np.int32).astype(np.int64)
    bi = b.view(np.int32).astype(np.int64)
    ai = np.where(ai < 0, -(ai & 0x7FFFFFFF), ai)
    bi = np.where(bi < 0, -(bi & 0x7FFFFFFF), bi)
    return np.abs(ai - bi)


def _lanes(fn):
    from numba import njit

    @njit(cache=False)
    def run(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])
    return run


def test_v_expf_within_2_ulp():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-87.0, 88.5, 200000), rng.standard_normal(50000),
                        np.linspace(-1, 1, 20001)]).astype(F32)
    out = np.empty_like(x)
    _lanes(ggml_math.v_expf)(x, out)
    ref = np.exp(x.astype(np.float64)).astype(F32)
    assert _ulp_diff(out, ref).max() <= 2


def test_v_expf_special_values():
    x = np.array([0.0, -0.0, -np.inf, np.inf, np.nan, 89.0, 100.0, -104.0, -200.0, -1e30, 1e30], F32)
    out = np.empty_like(x)
    _lanes(ggml_math.v_expf)(x, out)
    assert out[0] == 1.0 and out[1] == 1.0
    assert out[2] == 0.0 and out[3] == np.inf and np.isnan(out[4])
    assert out[5] == np.inf and out[6] == np.inf
    assert out[7] < 1e-44 and out[8] == 0.0 and out[9] == 0.0 and out[10] == np.inf
    # subnormal results are rounded once, like _mm512_scalef_ps
    y = np.array([-95.0, -100.0, -103.0], F32)
    o = np.empty_like(y)
    _lanes(ggml_math.v_expf)(y, o)
    assert np.all(np.abs(o.astype(np.float64) - np.exp(y.astype(np.float64))) <= 2 * 2.0 ** -149)


def test_v_silu_close_to_float64():
    x = np.random.default_rng(3).uniform(-80, 80, 100000).astype(F32)
    out = np.empty_like(x)
    _lanes(ggml_math.v_silu)(x, out)
    ref = _silu64(x).astype(F32)
    assert _ulp_diff(out, ref).max() <= 4


def test_gelu_table_entries():
    """Entry i is fp16(gelu_f32(F16 value i)): within half an F16 ulp of float64 gelu, plus the
    float32 formula's own error (1 + tanh cancels for x << 0: steps of 2^-24 times 0.5*|x|)."""
    vals = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    ok = np.isfinite(vals) & (np.abs(vals) < 10)
    ref = _gelu64(vals[ok])
    got = elementwise.gelu_table()[ok].astype(np.float64)
    f16_ulp = np.maximum(np.spacing(np.abs(ref).astype(np.float16)).astype(np.float64), 2.0 ** -24)
    f32_err = 0.5 * np.abs(vals[ok]) * 2.0 ** -23 + 1e-6 * np.abs(ref)
    assert np.all(np.abs(got - ref) <= 0.501 * f16_ulp + f32_err)


def _sgemm_order_ref(a, x):
    """llamafile tinyBLAS: 16 lanes, lane k sums a*x over k, k+16, ... in order, then GCC's tree."""
    K = a.shape[-1]
    p = (a[:, None, :] * x[None, :, :]).astype(F32).reshape(a.shape[0], x.shape[0], K // 16, 16)
    acc = np.zeros(p.shape[:2] + (16,), F32)
    for l in range(K // 16):
        acc = (acc + p[:, :, l]).astype(F32)        # products of F16 values are exact: fma == add
    t3 = acc[..., 8:] + acc[..., :8]
    t6 = t3[..., 4:] + t3[..., :4]
    return ((t6[..., 0] + t6[..., 2]) + (t6[..., 1] + t6[..., 3])).T      # [M, N]


def _vec_dot_order_ref(a, x):
    """ggml_vec_dot_f16: 4 x 16 lanes over steps of 64, acc0+acc2, acc1+acc3, sum, tree, double
    leftovers."""
    K = a.shape[-1]
    kp = K - K % 64
    p = (a[:, None, :] * x[None, :, :]).astype(F32)
    acc = np.zeros(p.shape[:2] + (64,), F32)
    for l in range(0, kp, 64):
        acc = (acc + p[:, :, l:l + 64]).astype(F32)
    s0 = (acc[..., 0:16] + acc[..., 32:48]) + (acc[..., 16:32] + acc[..., 48:64])
    t3 = s0[..., 8:] + s0[..., :8]
    t6 = t3[..., 4:] + t3[..., :4]
    tot = ((t6[..., 0] + t6[..., 2]) + (t6[..., 1] + t6[..., 3])).astype(np.float64)
    for l in range(kp, K):
        tot = tot + p[:, :, l].astype(np.float64)
    return tot.astype(F32).T


@pytest.mark.parametrize("shape", BMM_SHAPES)
def test_bmm_summation_order(shape):
    B0, B1, N, M, K = shape
    rng = np.random.default_rng(K + 3 * N)
    a = round_to_f16((rng.standard_normal((B0, N, K)) * 3).astype(F32))
    x = round_to_f16((rng.standard_normal((B1, M, K)) * 3).astype(F32))
    out = np.empty((B1, M, N), F32)
    batched_matmul.bmm_f32(a, x, out)
    sgemm = batched_matmul.uses_sgemm(N, M, K)
    assert sgemm == (M >= 2 and K % 16 == 0 and N % 4 == 0)
    for b in range(B1):
        ab = b // (B1 // B0)
        want = _sgemm_order_ref(a[ab], x[b]) if sgemm else _vec_dot_order_ref(a[ab], x[b])
        np.testing.assert_array_equal(out[b], want)


# ---------------------------------------------------------------------------------------------
# 3. bit for bit against llama.cpp's CPU backend (ctypes, single-op ggml graphs)
# ---------------------------------------------------------------------------------------------

class _GGML:
    """Just enough of ggml's C API to build and run one-op graphs on the CPU backend."""

    class Tensor(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                    ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                    ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                    ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                    ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]

    class InitParams(ctypes.Structure):
        _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]

    F32, F16, I32 = 0, 1, 26

    def __init__(self, libdir):
        P, F, I, I64 = ctypes.c_void_p, ctypes.c_float, ctypes.c_int, ctypes.c_int64
        self.base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
        self.cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
        sigs = {
            "ggml_init": (P, [self.InitParams]), "ggml_free": (None, [P]),
            "ggml_new_tensor_4d": (P, [P, I, I64, I64, I64, I64]),
            "ggml_rms_norm": (P, [P, P, F]), "ggml_norm": (P, [P, P, F]),
            "ggml_silu": (P, [P, P]), "ggml_gelu": (P, [P, P]),
            "ggml_swiglu_split": (P, [P, P, P]), "ggml_geglu_split": (P, [P, P, P]),
            "ggml_reglu_split": (P, [P, P, P]), "ggml_swiglu": (P, [P, P]), "ggml_geglu": (P, [P, P]),
            "ggml_relu": (P, [P, P]), "ggml_sqr": (P, [P, P]), "ggml_tanh": (P, [P, P]),
            "ggml_argsort": (P, [P, P, I]), "ggml_gelu_erf": (P, [P, P]),
            "ggml_concat": (P, [P, P, P, I]), "ggml_repeat": (P, [P, P, P]),
            "ggml_soft_max_ext": (P, [P, P, P, F, F]),
            "ggml_rope_ext": (P, [P, P, P, P, I, I, I, F, F, F, F, F, F]),
            "ggml_mul_mat": (P, [P, P, P]), "ggml_permute": (P, [P, P, I, I, I, I]),
            "ggml_new_graph": (P, [P]), "ggml_build_forward_expand": (None, [P, P]),
        }
        for name, (res, args) in sigs.items():
            f = getattr(self.base, name)
            f.restype, f.argtypes = res, args
            setattr(self, name[5:], f)
        self.compute = self.cpu.ggml_graph_compute_with_ctx
        self.compute.restype, self.compute.argtypes = I, [P, P, I]
        self.cpu.ggml_cpu_init.restype = None
        self.cpu.ggml_cpu_init()
        self.cpu.ggml_cpu_has_avx512.restype = I

    def run(self, build):
        """build(ctx, tensor) -> output tensor; tensor(arr, type) makes an input."""
        ctx = self.init(self.InitParams(1 << 27, None, False))
        try:
            def tensor(arr, typ=self.F32):
                shape = list(reversed(arr.shape)) + [1] * (4 - arr.ndim)
                t = self.new_tensor_4d(ctx, typ, *shape)
                tt = ctypes.cast(t, ctypes.POINTER(self.Tensor)).contents
                src = np.ascontiguousarray(arr, {self.F32: np.float32, self.F16: np.float16, self.I32: np.int32}[typ])
                ctypes.memmove(tt.data, src.ctypes.data, src.nbytes)
                return t
            out = build(ctx, tensor)
            gf = self.new_graph(ctx)
            self.build_forward_expand(gf, out)
            assert self.compute(ctx, gf, 2) == 0
            tt = ctypes.cast(out, ctypes.POINTER(self.Tensor)).contents
            shape = tuple(reversed([int(v) for v in tt.ne]))
            strides = tuple(reversed([int(v) for v in tt.nb]))
            n = sum((d - 1) * s for d, s in zip(shape, strides)) + 4
            buf = np.frombuffer((ctypes.c_char * n).from_address(tt.data), np.float32)
            return np.array(np.lib.stride_tricks.as_strided(buf, shape, strides))
        finally:
            self.free(ctx)


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@pytest.fixture(scope="module")
def ggml():
    lc = pytest.importorskip("llama_cpp")
    libdir = os.path.join(os.path.dirname(lc.__file__), "lib")
    if not os.path.exists(os.path.join(libdir, "libggml-cpu.so")):
        pytest.skip("llama-cpp-python without separate ggml libraries")
    if not {"avx512f", "avx512dq", "fma"} <= _cpu_flags():
        pytest.skip("the kernels mirror ggml's AVX512 code paths")
    g = _GGML(libdir)
    if not g.cpu.ggml_cpu_has_avx512():
        pytest.skip("llama.cpp built without AVX512")
    return g


def assert_bits_equal(out, ref):
    out, ref = np.asarray(out, F32), np.asarray(ref, F32).reshape(out.shape)
    bad = (out.view(np.int32) != ref.view(np.int32)) & ~(np.isnan(out) & np.isnan(ref))
    assert not bad.any(), f"{bad.sum()} of {bad.size} differ, max |diff| {np.abs(out - ref)[bad].max()}"


@pytest.mark.llamacpp
@pytest.mark.parametrize("n", WIDTHS + [2048])
def test_llamacpp_norms_and_activations(ggml, n):
    rng = np.random.default_rng(100 + n)
    x, u = rows(rng, 5, n), rows(rng, 5, n)
    cases = [
        (lambda o: norm.rms_norm_f32(x, o, 1e-5), lambda c, t: ggml.rms_norm(c, t(x), 1e-5)),
        (lambda o: norm.norm_f32(x, o, 1e-5), lambda c, t: ggml.norm(c, t(x), 1e-5)),
        (lambda o: elementwise.silu_f32(x, o), lambda c, t: ggml.silu(c, t(x))),
        (lambda o: elementwise.gelu_f32(x, o), lambda c, t: ggml.gelu(c, t(x))),
        (lambda o: elementwise.swiglu_f32(x, u, o), lambda c, t: ggml.swiglu_split(c, t(x), t(u))),
        (lambda o: elementwise.geglu_f32(x, u, o), lambda c, t: ggml.geglu_split(c, t(x), t(u))),
        (lambda o: elementwise.reglu_f32(x, u, o), lambda c, t: ggml.reglu_split(c, t(x), t(u))),
        (lambda o: elementwise.relu_f32(x, o), lambda c, t: ggml.relu(c, t(x))),
        (lambda o: elementwise.sqr_f32(x, o), lambda c, t: ggml.sqr(c, t(x))),
        (lambda o: elementwise.tanh_f32(x / F32(7.0), o), lambda c, t: ggml.tanh(c, t(x / F32(7.0)))),
        (lambda o: elementwise.gelu_erf_f32(x, o), lambda c, t: ggml.gelu_erf(c, t(x))),
    ]
    for ours, theirs in cases:
        out = np.empty_like(x)
        ours(out)
        assert_bits_equal(out, ggml.run(theirs))


@pytest.mark.llamacpp
def test_llamacpp_gelu_table(ggml):
    table = np.ctypeslib.as_array((ctypes.c_uint16 * 65536).in_dll(ggml.cpu, "ggml_table_gelu_f16"))
    vals = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    used = np.isfinite(vals) & (np.abs(vals) < 10)
    theirs = table.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(elementwise.gelu_table()[used], theirs[used])


@pytest.mark.llamacpp
@pytest.mark.parametrize("shape", [(9, 10, 256), (9, 1, 256), (4, 7, 37), (2, 3, 512), (2, 2, 15)])
def test_llamacpp_soft_max(ggml, shape):
    rng = np.random.default_rng(sum(shape))
    B, M, N = shape
    x = (rng.standard_normal(shape) * 8).astype(F32)
    mask = np.zeros((M, N), F32)
    for m in range(M):
        mask[m, rng.integers(1, N + 1):] = -np.inf
    for scale, msk in ((0.125, mask), (1.0, None)):
        out = np.empty_like(x)
        softmax.soft_max_f32(x, mask, out, F32(scale), msk is not None)
        ref = ggml.run(lambda c, t: ggml.soft_max_ext(c, t(x), t(msk) if msk is not None else None, scale, 0.0))
        assert_bits_equal(out, ref)



def _alibi_case(B=9, M=5, N=40, seed=11):
    """Logits and an ALiBi mask as llama.cpp builds it (-|p_i - p_j| where visible, -inf elsewhere)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((B, M, N)) * 4).astype(F32)
    pos_q, pos_k = np.arange(N - M, N)[:, None], np.arange(N)[None, :]
    mask = np.where(pos_k <= pos_q, -np.abs(pos_q - pos_k).astype(F32), -np.inf).astype(F32)
    return x, mask


def test_soft_max_alibi_matches_float64():
    """ALiBi (max_bias 8, 9 heads: both of ggml's slope series) against float64 softmax with the
    slopes of the ALiBi paper's recipe."""
    x, mask = _alibi_case()
    B = x.shape[0]
    slopes = softmax.alibi_slopes(B, F32(8.0))
    n = 8                                          # 2 ** floor(log2(9))
    ref_slopes = [2.0 ** (-8.0 * (h + 1) / n) if h < n else 2.0 ** (-4.0 * (2 * (h - n) + 1) / n) for h in range(B)]
    np.testing.assert_allclose(slopes, ref_slopes, rtol=1e-6)
    out = np.empty_like(x)
    softmax.soft_max_alibi_f32(x, mask, out, F32(0.5), True, slopes)
    z = x.astype(np.float64) * 0.5 + np.array(ref_slopes)[:, None, None] * mask.astype(np.float64)
    ref = np.exp(z - z.max(-1, keepdims=True))
    assert nmse(out, ref / ref.sum(-1, keepdims=True)) < 1e-12


@pytest.mark.llamacpp
def test_llamacpp_soft_max_alibi(ggml):
    x, mask = _alibi_case()
    out = np.empty_like(x)
    softmax.soft_max_alibi_f32(x, mask, out, F32(0.5), True, softmax.alibi_slopes(x.shape[0], F32(8.0)))
    assert_bits_equal(out, ggml.run(lambda c, t: ggml.soft_max_ext(c, t(x), t(mask), 0.5, 8.0)))


@pytest.mark.llamacpp
def test_llamacpp_soft_max_wide_range(ggml):
    """Logit gaps past -126 and -192 (F32 subnormal and zero exps), as long contexts give."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((4, 3, 400)) * 60).astype(F32)
    out = np.empty_like(x)
    softmax.soft_max_f32(x, np.zeros((1, 1), F32), out, F32(1.0), False)
    assert_bits_equal(out, ggml.run(lambda c, t: ggml.soft_max_ext(c, t(x), None, 1.0, 0.0)))

@pytest.mark.llamacpp
@pytest.mark.parametrize("mode", [0, 2], ids=["norm", "neox"])
@pytest.mark.parametrize("n_dims", [64, 32])
@pytest.mark.parametrize("variant", ["plain", "freq_scale", "freq_factors", "yarn"])
def test_llamacpp_rope(ggml, mode, n_dims, variant):
    rng = np.random.default_rng(n_dims + mode)
    T, H, D = 24, 3, 64
    x = (rng.standard_normal((T, H, D)) * 5).astype(F32)
    pos = rng.integers(0, 6000, T).astype(np.int32)
    fb, fs, ef, af, nco = 100000.0, 1.0, 0.0, 1.0, 4096
    ff = None
    if variant == "freq_scale":
        fs = 0.25
    elif variant == "freq_factors":
        ff = rng.uniform(1, 8, D // 2).astype(F32)
    elif variant == "yarn":
        fb, fs, ef, af, nco = 10000.0, 0.125, 1.0, 0.8, 2048
    out, _ = _run_rope(x, pos, n_dims, mode == 2, fb, fs, ff, ef, af, nco, 32.0, 1.0)
    ref = ggml.run(lambda c, t: ggml.rope_ext(c, t(x), t(pos, ggml.I32), t(ff) if ff is not None else None,
                                              n_dims, mode, nco, fb, fs, ef, af, 32.0, 1.0))
    assert_bits_equal(out, ref)


@pytest.mark.llamacpp
@pytest.mark.parametrize("shape", BMM_SHAPES + [(1, 1, 8, 3, 72), (3, 9, 64, 1, 272)])
@pytest.mark.parametrize("f16", [True, False], ids=["f16", "f32"])
def test_llamacpp_bmm(ggml, shape, f16):
    B0, B1, N, M, K = shape
    rng = np.random.default_rng(N + M + K)
    a = (rng.standard_normal((B0, N, K)) * 3).astype(F32)
    if f16:
        a = round_to_f16(a)
    x = (rng.standard_normal((B1, M, K)) * 3).astype(F32)
    for permuted in (True, False):     # q is a permuted view; kq_soft_max is contiguous
        out = np.empty((B1, M, N), F32)
        batched_matmul.bmm_f32(a, round_to_f16(x) if f16 else x, out, f16, not permuted)

        def build(c, t):
            ta = t(a.astype(np.float16), ggml.F16) if f16 else t(a)
            if permuted:
                tx = ggml.permute(c, t(np.ascontiguousarray(x.transpose(1, 0, 2))), 0, 2, 1, 3)
            else:
                tx = t(x)
            return ggml.mul_mat(c, ta, tx)
        assert_bits_equal(out, ggml.run(build))


def test_tanh_op_through_the_executor():
    """ops.tanh (final-logit softcapping) bound by the executor, against float64 numpy."""
    from ggraph import ops
    from ggraph.graph import F32, Graph
    from ggraph.runtime.executor import Plan
    g = Graph()
    x = g.input("x", F32, (37, 3))
    y = ops.scale(ops.tanh(ops.scale(x, 1 / 30.0)), 30.0)
    g.set_output(y, "y")
    plan = Plan(g, {}, {})
    xv = np.random.default_rng(0).standard_normal((3, 37)).astype(np.float32) * 50
    plan.inputs["x"][...] = xv
    plan.run()
    ref = 30.0 * np.tanh(xv.astype(np.float64) / 30.0)
    np.testing.assert_allclose(plan.outputs["y"].reshape(3, 37), ref, rtol=1e-6, atol=1e-5)


def _run_graph(build, xv):
    """One-input graph through the executor: build(x tensor) -> output tensor."""
    from ggraph.graph import F32 as T_F32, Graph
    from ggraph.runtime.executor import Plan
    g = Graph()
    x = g.input("x", T_F32, tuple(reversed(xv.shape)))
    g.set_output(build(x), "y")
    plan = Plan(g, {}, {})
    plan.inputs["x"][...] = xv
    plan.run()
    return plan.outputs["y"]


@pytest.mark.parametrize("n", [5, 16, 37, 576])
def test_relu_sqr_reglu_tanh(n):
    rng = np.random.default_rng(7 + n)
    x, u = rows(rng, 4, n), rows(rng, 4, n)
    x[1, :3] = [0.0, -0.0, np.nan] if n >= 3 else x[1, :3]
    x64, u64 = x.astype(np.float64), u.astype(np.float64)
    relu64 = np.where(x64 > 0, x64, 0.0)        # ggml: x > 0 ? x : 0 (NaN and -0 give +0)
    for kernel, args, ref in ((elementwise.relu_f32, (x,), relu64), (elementwise.sqr_f32, (x,), x64 * x64),
                              (elementwise.reglu_f32, (x, u), relu64 * u64),
                              (elementwise.tanh_f32, (x / F32(7.0),), np.tanh(x64 / 7.0))):
        out = np.empty_like(x)
        kernel(*args, out)
        ok = np.isfinite(ref)
        assert nmse(out[ok], ref[ok]) < 1e-13, kernel
    out = np.empty_like(x)
    elementwise.relu_f32(x, out)
    assert not np.signbit(out).any() and not np.isnan(out).any()


@pytest.mark.parametrize("op", ["swiglu", "geglu", "reglu"])
def test_fused_glu_splits_rows_into_gate_and_up(op):
    """ops.swiglu(x) on [gate; up] rows (phi3's fused ffn_up) through the executor = the split op on the
    two halves, bit for bit, and close to float64."""
    from ggraph import ops
    xv = rows(np.random.default_rng(3), 6, 2 * 40)
    fused = _run_graph(getattr(ops, op), xv).reshape(6, 40)
    split = np.empty((6, 40), F32)
    {"swiglu": elementwise.swiglu_f32, "geglu": elementwise.geglu_f32,
     "reglu": elementwise.reglu_f32}[op](np.ascontiguousarray(xv[:, :40]), np.ascontiguousarray(xv[:, 40:]), split)
    assert_bits_equal(fused, split)
    g, u = xv[:, :40].astype(np.float64), xv[:, 40:].astype(np.float64)
    with np.errstate(over="ignore"):       # exp(-g) of large negative g: inf, act -> 0 as it should
        act = {"swiglu": g / (1 + np.exp(-g)), "geglu": g / (1 + np.exp(-1.5957691216 * (g + 0.044715 * g ** 3))),
               "reglu": np.where(g > 0, g, 0.0)}[op]
    assert nmse(fused, act * u) < (1e-6 if op == "geglu" else 1e-12)


@pytest.mark.llamacpp
@pytest.mark.parametrize("op", ["swiglu", "geglu"])
def test_llamacpp_fused_glu(ggml, op):
    from ggraph import ops
    xv = rows(np.random.default_rng(4), 5, 2 * 576)
    ours = _run_graph(getattr(ops, op), xv).reshape(5, 576)
    assert_bits_equal(ours, ggml.run(lambda c, t: getattr(ggml, op)(c, t(xv))))


@pytest.mark.parametrize("shape", BMM_SHAPES + [(3, 9, 1000, 7, 64), (1, 4, 64, 5, 1024)])
def test_bmm_reads_f16_cache_views_in_place(shape):
    """src0 as the KV cache holds it (F16 bits in uint16, a strided view of a bigger cache) gives
    the same bits as the float32 contiguous operand, and the float64-checked orders above."""
    B0, B1, N, M, K = shape
    rng = np.random.default_rng(7 * K + N)
    cells = N + 5                                    # the cache is longer than the rows read
    cache = (rng.standard_normal((cells, B0, K)) * 3).astype(np.float16)   # [cell, head, dim]
    view = cache.view(np.uint16)[:N].transpose(1, 0, 2)                    # [head, n, k] in place
    a = view.view(np.float16).astype(F32)
    x = round_to_f16((rng.standard_normal((B1, M, K)) * 3).astype(F32))
    got, want = np.empty((B1, M, N), F32), np.empty((B1, M, N), F32)
    batched_matmul.bmm_f32(view, x, got)
    batched_matmul.bmm_f32(np.ascontiguousarray(a), x, want)
    np.testing.assert_array_equal(got, want)
    sgemm = batched_matmul.uses_sgemm(N, M, K)
    for b in range(B1):
        ref = _sgemm_order_ref(a[b // (B1 // B0)], x[b]) if sgemm else _vec_dot_order_ref(a[b // (B1 // B0)], x[b])
        np.testing.assert_array_equal(got[b], ref)


def test_round_to_f16_matches_numpy_bits():
    """The compiled fp32 -> fp16 rounding (vcvtps2ph) against numpy's float16 cast, an independent
    round-to-nearest-even: random bit patterns (every exponent, F16 subnormals and overflow included)."""
    rng = np.random.default_rng(11)
    x = rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32).view(F32)
    x = np.concatenate([x, (rng.random(4096) * 1e-4).astype(F32),
                        F32([0.0, -0.0, np.inf, -np.inf, 65504, 65520, 65519.99, 2.9802322e-08, 1e-45])])
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(F32)
    got = round_to_f16(x[:-9].reshape(16, -1)).reshape(-1)
    got = np.concatenate([got, round_to_f16(x[-9:])])
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all()



def test_vector_expf_is_the_scalar_lane():
    """simd fexp (softmax's 16-lane ggml_v_expf) gives the bits of the scalar lane emulation
    (checked above against a float64 exp and special values) on every range, NaN and inf included."""
    from numba import njit
    from ggraph.runtime.kernels.simd.f32 import fexp, fload, fstore

    @njit
    def run(x, out):
        for i in range(0, x.size, 16):
            fstore(out, 4 * i, fexp(fload(x, 4 * i)))
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.uniform(-250, 100, 160000), rng.standard_normal(16000),
                        [0.0, -0.0, -np.inf, np.inf, np.nan, 89.0, -104.0, -150.0, -192.5, -1e30, 1e30,
                         -87.4, -95.0, -100.0, -103.0, 88.7]]).astype(F32)
    got, want = np.empty_like(x), np.empty_like(x)
    run(x, got)
    _lanes(ggml_math.v_expf)(x, want)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all()


def test_set_rows_f16_matches_numpy_half_rounding():
    """The KV-cache write: numpy's IEEE fp16 conversion (RNE) is the reference, over subnormal,
    overflowing, signed-zero and infinite values, into a strided view of a wider cache."""
    from ggraph.runtime.kernels.set_rows import set_rows_f16
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((9, 64)) * np.exp(rng.uniform(-20, 12, (9, 64)))).astype(np.float32)
    x[0, :6] = [np.inf, -np.inf, 0.0, -0.0, 6e-8, 65520.0]
    cache = np.zeros((24, 80), np.uint16)
    view = cache[:, 8:72]
    ids = np.array([3, 1, 23, 0, 5, 6, 2, 10, 11], np.int32)
    set_rows_f16(view, x, ids)
    want = np.zeros_like(cache)
    with np.errstate(over="ignore"):
        want[ids, 8:72] = x.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(cache, want)
    with pytest.raises(IndexError):
        set_rows_f16(view, x[:1], np.array([24], np.int32))


@pytest.mark.parametrize("n", [8, 16, 17, 64, 300])
def test_argsort_is_a_sort_and_stable_without_ties(n):
    """std::sort's port (routing.argsort_rows): a permutation, values in order; with distinct values
    the one order there is."""
    from ggraph.runtime.kernels import routing
    rng = np.random.default_rng(n)
    for x in (rng.standard_normal((6, n)).astype(F32), rng.integers(0, 4, (6, n)).astype(F32)):
        for desc in (True, False):
            out = np.empty(x.shape, np.int32)
            routing.argsort_rows(x, out, desc)
            assert (np.sort(out, axis=1) == np.arange(n)).all()
            v = np.take_along_axis(x, out, 1)
            assert ((np.diff(v, axis=1) <= 0) if desc else (np.diff(v, axis=1) >= 0)).all()
    x = rng.standard_normal((6, n)).astype(F32)
    routing.argsort_rows(x, out, True)
    assert np.array_equal(out, np.argsort(-x, axis=1, kind="stable"))


@pytest.mark.llamacpp
@pytest.mark.parametrize("n", [16, 17, 40, 64, 128, 1000])
def test_llamacpp_argsort_ties(ggml, n):
    """Rows with many exact ties (router probabilities of 64 or 128 experts can tie): the index order
    is libstdc++'s introsort's, element for element."""
    from ggraph.runtime.kernels import routing
    rng = np.random.default_rng(1000 + n)
    x = np.concatenate([rng.integers(0, 5, (8, n)), np.zeros((1, n)), np.arange(n)[None] % 3]).astype(F32)
    x[-1, : n // 2] = np.nan if n > 100 else x[-1, : n // 2]
    for order in (0, 1):      # GGML_SORT_ORDER_ASC, DESC
        out = np.empty(x.shape, np.int32)
        routing.argsort_rows(x, out, order == 1)
        theirs = ggml.run(lambda c, t: ggml.argsort(c, t(x), order)).view(np.int32).reshape(out.shape)
        assert np.array_equal(out, theirs), f"order {order}"


def test_gelu_erf_matches_float64():
    x = rows(np.random.default_rng(21), 4, 300)
    out = np.empty_like(x)
    elementwise.gelu_erf_f32(x, out)
    x64 = x.astype(np.float64)
    ref = 0.5 * x64 * (1 + np.vectorize(math.erf)(x64 / math.sqrt(2)))
    assert nmse(out, ref) < 1e-13


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_concat_and_repeat_through_the_executor(dim):
    """ops.concat / ops.repeat against numpy (pure data movement: exact)."""
    from ggraph import ops
    from ggraph.graph import F32 as T_F32, Graph
    from ggraph.runtime.executor import Plan
    rng = np.random.default_rng(dim)
    a = rng.standard_normal((2, 3, 4)).astype(F32)
    shape_b = list(a.shape)
    shape_b[2 - dim] = 5
    b = rng.standard_normal(shape_b).astype(F32)
    g = Graph()
    ta, tb = g.input("a", T_F32, a.shape[::-1]), g.input("b", T_F32, b.shape[::-1])
    g.set_output(ops.concat(ta, tb, dim), "c")
    big = g.input("big", T_F32, (8, 6, 4))
    g.set_output(ops.repeat(ta, big), "r")
    plan = Plan(g, {}, {})
    plan.inputs["a"][...], plan.inputs["b"][...] = a.reshape(plan.inputs["a"].shape), b.reshape(plan.inputs["b"].shape)
    plan.run()
    assert np.array_equal(plan.outputs["c"].reshape(np.concatenate((a, b), axis=2 - dim).shape),
                          np.concatenate((a, b), axis=2 - dim))
    assert np.array_equal(plan.outputs["r"].reshape(4, 6, 8), np.tile(a, (2, 2, 2)))


@pytest.mark.llamacpp
def test_llamacpp_concat_repeat(ggml):
    from ggraph import ops
    from ggraph.graph import F32 as T_F32, Graph
    from ggraph.runtime.executor import Plan
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((3, 4, 6)).astype(F32), rng.standard_normal((3, 4, 2)).astype(F32)
    big = np.zeros((6, 8, 12), F32)
    g = Graph()
    ta, tb, tbig = (g.input(n, T_F32, v.shape[::-1]) for n, v in (("a", a), ("b", b), ("big", big)))
    g.set_output(ops.concat(ta, tb, 0), "c")
    g.set_output(ops.repeat(ta, tbig), "r")
    plan = Plan(g, {}, {})
    for n, v in (("a", a), ("b", b), ("big", big)):
        plan.inputs[n][...] = v.reshape(plan.inputs[n].shape)
    plan.run()
    assert_bits_equal(plan.outputs["c"].reshape(3, 4, 8), ggml.run(lambda c, t: ggml.concat(c, t(a), t(b), 0)))
    assert_bits_equal(plan.outputs["r"].reshape(6, 8, 12), ggml.run(lambda c, t: ggml.repeat(c, t(a), t(big))))
