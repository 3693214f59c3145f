"""Float weights: F32, F16 and BF16 rows dotted with float32 activations.

llama.cpp rounds the activations to the weight type first (F16 x F16, BF16 x BF16); the caller does
that (quantize_act.round_to_f16/bf16), so products here are exact and only the float32 summation
order differs from ggml (4 x 16-lane accumulators, then a fixed tree).

Kernels: mm_*(w [N, row_bytes] u8, x [M, K] f32, out [M, N] f32). K need not be a multiple of 64.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.simd import bf16at, f16at, f32at, fadd, fhsum, ffma, fload, fload_bf16, fload_f16, fzero

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
def _row(w, r, x, m, kind):
    K = x.shape[1]
    wo = r * w.shape[1]
    xo = m * K * 4
    a0, a1, a2, a3 = fzero(), fzero(), fzero(), fzero()
    j = 0
    while j + 64 <= K:
        a0 = ffma(_wload(w, wo, j, kind), fload(x, xo + 4 * j), a0)
        a1 = ffma(_wload(w, wo, j + 16, kind), fload(x, xo + 4 * j + 64), a1)
        a2 = ffma(_wload(w, wo, j + 32, kind), fload(x, xo + 4 * j + 128), a2)
        a3 = ffma(_wload(w, wo, j + 48, kind), fload(x, xo + 4 * j + 192), a3)
        j += 64
    while j + 16 <= K:
        a0 = ffma(_wload(w, wo, j, kind), fload(x, xo + 4 * j), a0)
        j += 16
    s = fhsum(fadd(fadd(a0, a1), fadd(a2, a3)))
    while j < K:
        s += _wscalar(w, wo, j, kind) * x[m, j]
        j += 1
    return s


# One kernel per type so `kind` is a compile-time constant inside the hot loop.
@njit(cache=True, parallel=True, error_model="numpy")
def mm_f32(w, x, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(x.shape[0]):
                out[m, r] = _row(w, r, x, m, F32)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_f16(w, x, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(x.shape[0]):
                out[m, r] = _row(w, r, x, m, F16)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_bf16(w, x, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(x.shape[0]):
                out[m, r] = _row(w, r, x, m, BF16)


def deq_f32(w, rows, out):
    out[:] = w[rows].view(np.float32)


def deq_f16(w, rows, out):
    out[:] = w[rows].view(np.float16)


def deq_bf16(w, rows, out):
    out[:] = (w[rows].view(np.uint16).astype(np.uint32) << 16).view(np.float32)
