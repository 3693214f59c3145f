"""Float weights: F32, F16 and BF16 rows dotted with float32 activations.

llama.cpp rounds the activations to the weight type first (F16 x F16, BF16 x BF16); the caller does
that (quantize_act.round_to_f16/bf16), so F16/BF16 products are exact and only the float32 summation
order differs from ggml (2 x 16-lane accumulators, then a fixed tree). Batches share each weight
load across 4 tokens.

Kernels: mm_*(w [N, row_bytes] u8, x [M, K] f32, out [M, N] f32). K need not be a multiple of 16.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.simd import bf16at, f16at, f32at, fadd, fhsum, ffma, fload, fload_bf16, fload_f16, fzero

ACT_TILE_BYTES = 16384
ROWS_PER_TASK = 8
F32, F16, BF16 = 0, 1, 2


@njit(cache=True, inline="always")
def _wload(w, o, j, kind):
    """16 weights from element j of the row at byte offset o, as float32."""
    if kind == F32:
        return fload(w, o + 4 * j)
    if kind == F16:
        return fload_f16(w, o + 2 * j)
    return fload_bf16(w, o + 2 * j)


@njit(cache=True, inline="always")
def _wscalar(w, o, j, kind):
    if kind == F32:
        return f32at(w, o + 4 * j)
    if kind == F16:
        return f16at(w, o + 2 * j)
    return bf16at(w, o + 2 * j)


@njit(cache=True, error_model="numpy", inline="always")
def _tail(w, wo, x, m, s, kind):
    for j in range(x.shape[1] // 16 * 16, x.shape[1]):
        s += _wscalar(w, wo, j, kind) * x[m, j]
    return s


@njit(cache=True, error_model="numpy", inline="always")
def _row(w, r, x, m, out, kind):
    K = x.shape[1]
    wo = r * w.shape[1]
    xo = 4 * m * K
    a0, a1 = fzero(), fzero()    # 2 FMA chains (1 is latency-bound)
    for j in range(0, K - 15, 16):
        a0 = ffma(_wload(w, wo, j, kind), fload(x, xo + 4 * j), a0)
        a0, a1 = a1, a0
    out[m, r] = _tail(w, wo, x, m, fhsum(fadd(a0, a1)), kind)


@njit(cache=True, error_model="numpy", inline="always")
def _row4(w, r, x, m, out, kind):
    """Tokens m..m+3 against row r, sharing each weight load/convert; per-token math as in _row."""
    K = x.shape[1]
    wo = r * w.shape[1]
    xo = 4 * m * K
    a0, a1, b0, b1, c0, c1, d0, d1 = fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero()
    for j in range(0, K - 15, 16):
        wv = _wload(w, wo, j, kind)
        a0 = ffma(wv, fload(x, xo + 4 * j), a0)
        b0 = ffma(wv, fload(x, xo + 4 * (K + j)), b0)
        c0 = ffma(wv, fload(x, xo + 4 * (2 * K + j)), c0)
        d0 = ffma(wv, fload(x, xo + 4 * (3 * K + j)), d0)
        a0, a1, b0, b1, c0, c1, d0, d1 = a1, a0, b1, b0, c1, c0, d1, d0
    out[m, r] = _tail(w, wo, x, m, fhsum(fadd(a0, a1)), kind)
    out[m + 1, r] = _tail(w, wo, x, m + 1, fhsum(fadd(b0, b1)), kind)
    out[m + 2, r] = _tail(w, wo, x, m + 2, fhsum(fadd(c0, c1)), kind)
    out[m + 3, r] = _tail(w, wo, x, m + 3, fhsum(fadd(d0, d1)), kind)


@njit(cache=True, error_model="numpy", inline="always")
def _mm(w, x, out, kind):
    N, M = w.shape[0], x.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // (4 * x.shape[1]) // 4 * 4)   # tokens whose activations stay in L1
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _row4(w, r, x, m, out, kind)
                    m += 4
                while m < m1:
                    _row(w, r, x, m, out, kind)
                    m += 1


# One kernel per type so `kind` is a compile-time constant inside the hot loop.
@njit(cache=True, parallel=True, error_model="numpy")
def mm_f32(w, x, a1, a2, out):
    _mm(w, x, out, F32)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_f16(w, x, a1, a2, out):
    _mm(w, x, out, F16)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_bf16(w, x, a1, a2, out):
    _mm(w, x, out, BF16)


def deq_f32(w, rows, out):
    out[:] = w[rows].view(np.float32)


def deq_f16(w, rows, out):
    out[:] = w[rows].view(np.float16)


def deq_bf16(w, rows, out):
    out[:] = (w[rows].view(np.uint16).astype(np.uint32) << 16).view(np.float32)
