"""Float weights: F32, F16 and BF16 rows dotted with float32 activations, in llama.cpp's order.

llama.cpp rounds the activations to the weight type first (F16 x F16, BF16 x BF16); the caller does
that (quantize_act.round_to_f16/bf16), so F16 products are exact in float32 and fma == mul + add.
Which kernel llama.cpp's CPU backend (AVX512 + AVX512_BF16 build) runs decides the float order:

* llamafile tinyBLAS (>= 2 tokens, K % KN == 0 and N % 4 == 0): one 16-lane accumulator per output;
  F32 / F16: lane j += w[l+j] * x[l+j] (fma) for l = 0, 16, 32, ... (KN = 16); BF16: vdpbf16ps over
  32 elements per step (KN = 32); then _mm512_reduce_add_ps.
* ggml_vec_dot_f32 / _f16 (otherwise): 4 accumulators of 16 over steps of 64, (a0 + a2) + (a1 + a3),
  reduce_add; the K % 64 leftovers in float (F32: GCC's vectorized in-order loop, products rounded
  for groups of 8, then fmas) or in double (F16).
* ggml_vec_dot_bf16: vdpbf16ps into 2 accumulators over steps of 64, each reduced to float and added
  in double with the leftover products, rounded to float at the end.

Kernels: mm_*(w [N, row_bytes] u8, x [M, K] f32, a1, a2, out [M, N] f32).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.ggml_common import BF16, F16, F32
from ggraph.runtime.kernels.ggml_math import fma32
from ggraph.runtime.kernels.simd.f32 import fadd, fdpbf16, ffma, fhsum_gcc, fload, fload_f16, fzero
from ggraph.runtime.kernels.simd.scalar import bf16at, f16at, f32at

ROWS_PER_TASK = 8


@njit(cache=True, inline="always")
def _wload(w, o, j, kind):
    """16 weights from element j of the row at byte offset o, as float32 (F32 / F16)."""
    if kind == F32:
        return fload(w, o + 4 * j)
    return fload_f16(w, o + 2 * j)


@njit(cache=True, inline="always")
def _wscalar(w, o, j, kind):
    if kind == F32:
        return f32at(w, o + 4 * j)
    if kind == F16:
        return f16at(w, o + 2 * j)
    return bf16at(w, o + 2 * j)


def uses_tinyblas(kind, N, M, K):
    """Whether llamafile_sgemm takes the matmul (tinyBLAS<16 or 32>: K % KN, N % 4, >= 2 tokens)."""
    return M >= 2 and N % 4 == 0 and K % (32 if kind == BF16 else 16) == 0


# ---- tinyBLAS ----------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy", inline="always")
def _tb_step(w, wo, xb, xo, l, c, kind):
    if kind == BF16:
        return fdpbf16(c, w, wo + 2 * l, xb, xo + 2 * l)
    return ffma(_wload(w, wo, l, kind), fload(xb, xo + 4 * l), c)


@njit(cache=True, error_model="numpy", inline="always")
def _tb4(w, r, xb, m, out, kind):
    """Row r x tokens m..m+3 (each its own accumulator; the weight loads are shared)."""
    K = xb.shape[1]
    kn = 32 if kind == BF16 else 16
    wo = r * w.shape[1]
    rs = K * (2 if kind == BF16 else 4)     # bytes per activation row (bf16-packed or float32)
    xo = m * rs
    c0, c1, c2, c3 = fzero(), fzero(), fzero(), fzero()
    for l in range(0, K, kn):
        c0 = _tb_step(w, wo, xb, xo, l, c0, kind)
        c1 = _tb_step(w, wo, xb, xo + rs, l, c1, kind)
        c2 = _tb_step(w, wo, xb, xo + 2 * rs, l, c2, kind)
        c3 = _tb_step(w, wo, xb, xo + 3 * rs, l, c3, kind)
    out[m, r] = fhsum_gcc(c0)
    out[m + 1, r] = fhsum_gcc(c1)
    out[m + 2, r] = fhsum_gcc(c2)
    out[m + 3, r] = fhsum_gcc(c3)


@njit(cache=True, error_model="numpy", inline="always")
def _tb1(w, r, xb, m, out, kind):
    K = xb.shape[1]
    kn = 32 if kind == BF16 else 16
    wo = r * w.shape[1]
    es = 2 if kind == BF16 else 4
    xo = m * K * es
    c0 = fzero()
    for l in range(0, K, kn):
        c0 = _tb_step(w, wo, xb, xo, l, c0, kind)
    out[m, r] = fhsum_gcc(c0)


@njit(cache=True, error_model="numpy", inline="always")
def _mm_tb(w, xb, out, kind):
    N, M = w.shape[0], xb.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            m = 0
            while m + 4 <= M:
                _tb4(w, r, xb, m, out, kind)
                m += 4
            while m < M:
                _tb1(w, r, xb, m, out, kind)
                m += 1


# ---- vec_dot -----------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy", inline="always")
def _vd(w, r, x, m, out, kind):
    """ggml_vec_dot_f32 / _f16 of row r and token m (x float32, F16-rounded for F16)."""
    K = x.shape[1]
    wo = r * w.shape[1]
    xo = 4 * m * K
    kp = K - K % 64
    c0, c1, c2, c3 = fzero(), fzero(), fzero(), fzero()
    for l in range(0, kp, 64):
        c0 = ffma(_wload(w, wo, l, kind), fload(x, xo + 4 * l), c0)
        c1 = ffma(_wload(w, wo, l + 16, kind), fload(x, xo + 4 * (l + 16)), c1)
        c2 = ffma(_wload(w, wo, l + 32, kind), fload(x, xo + 4 * (l + 32)), c2)
        c3 = ffma(_wload(w, wo, l + 48, kind), fload(x, xo + 4 * (l + 48)), c3)
    t = fhsum_gcc(fadd(fadd(c0, c2), fadd(c1, c3)))
    if kind == F16:
        s = np.float64(t)
        for l in range(kp, K):
            s += np.float64(_wscalar(w, wo, l, kind) * x[m, l])
        out[m, r] = np.float32(s)
    else:
        kv = kp + (K - kp) // 8 * 8
        for l in range(kp, kv):
            t = t + _wscalar(w, wo, l, kind) * x[m, l]
        for l in range(kv, K):
            t = fma32(_wscalar(w, wo, l, kind), x[m, l], t)
        out[m, r] = t


@njit(cache=True, error_model="numpy", inline="always")
def _vd_bf16(w, r, xb, m, out):
    """ggml_vec_dot_bf16 (AVX512_BF16) of row r and token m; xb: the bf16 activations as uint16."""
    K = xb.shape[1]
    wo = r * w.shape[1]
    xo = 2 * m * K
    kp = K - K % 64
    c1, c2 = fzero(), fzero()
    for l in range(0, kp, 64):
        c1 = fdpbf16(c1, w, wo + 2 * l, xb, xo + 2 * l)
        c2 = fdpbf16(c2, w, wo + 2 * (l + 32), xb, xo + 2 * (l + 32))
    s = np.float64(fhsum_gcc(c1))
    s = np.float64(fhsum_gcc(c2)) + s
    for l in range(kp, K):
        s += np.float64(bf16at(w, wo + 2 * l) * bf16at(xb, xo + 2 * l))
    out[m, r] = np.float32(s)


@njit(cache=True, error_model="numpy", inline="always")
def _mm_vd(w, x, out, kind):
    N, M = w.shape[0], x.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for m in range(M):
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                if kind == BF16:
                    _vd_bf16(w, r, x, m, out)
                else:
                    _vd(w, r, x, m, out, kind)


def _kernel(tinyblas, kind):
    """One parallel kernel per type and path, so `kind` is a compile-time constant in the hot loops
    (and the other path is pruned at compile time)."""
    @njit(cache=True, parallel=True, error_model="numpy")
    def mm(w, x, out):
        if tinyblas:
            _mm_tb(w, x, out, kind)
        else:
            _mm_vd(w, x, out, kind)
    return mm


_f32_tb, _f32_vd = _kernel(True, F32), _kernel(False, F32)
_f16_tb, _f16_vd = _kernel(True, F16), _kernel(False, F16)
_bf16_tb, _bf16_vd = _kernel(True, BF16), _kernel(False, BF16)


def mm_f32(w, x, a1, a2, out):
    (_f32_tb if uses_tinyblas(F32, w.shape[0], x.shape[0], x.shape[1]) else _f32_vd)(w, x, out)


def mm_f16(w, x, a1, a2, out):
    (_f16_tb if uses_tinyblas(F16, w.shape[0], x.shape[0], x.shape[1]) else _f16_vd)(w, x, out)


def mm_bf16(w, x, a1, a2, out):
    """x: float32 activations already rounded to bf16 (their high halves are the bf16 values)."""
    xb = np.ascontiguousarray(x.view(np.uint32) >> 16).astype(np.uint16)
    (_bf16_tb if uses_tinyblas(BF16, w.shape[0], x.shape[0], x.shape[1]) else _bf16_vd)(w, xb, out)
