"""Q8_0 weights (d fp16, qs int8[32]; y = d*q) x Q8_0 activations.

VNNI multiplies unsigned by signed bytes, so weights are flipped to q+128 (one xor) and
128*sum(a) is removed exactly: 8 lanes x -16*sum(a) per block (see matmul_q4.py for the layout).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.simd import (
    bxor, cat, dot_acc, f16at, fhsum, ffma, fsplat2, fzero, isplat2, load32, tofloat,
)

ROWS_PER_TASK = 16


@njit(cache=True, error_model="numpy", inline="always")
def _row_q8_0(w, r, qs, ad, asum, m):
    nb = ad.shape[1]
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    acc = fzero()
    b = 0
    while b + 1 < nb:
        o1 = wo + 34 * b
        o2 = o1 + 34
        u = bxor(cat(load32(w, o1 + 2), load32(w, o2 + 2)), 0x80)
        s = cat(load32(qs, ao + 32 * b), load32(qs, ao + 32 * b + 32))
        p = dot_acc(isplat2(-16 * asum[m, b], -16 * asum[m, b + 1]), u, s)
        sc = fsplat2(f16at(w, o1) * ad[m, b], f16at(w, o2) * ad[m, b + 1])
        acc = ffma(tofloat(p), sc, acc)
        b += 2
    if b < nb:
        o1 = wo + 34 * b
        q = load32(w, o1 + 2)
        s = load32(qs, ao + 32 * b)
        p = dot_acc(isplat2(-16 * asum[m, b], 0), bxor(cat(q, q), 0x80), cat(s, s))
        sc = fsplat2(f16at(w, o1) * ad[m, b], np.float32(0.0))
        acc = ffma(tofloat(p), sc, acc)
    return fhsum(acc)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q8_0(w, qs, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q8_0(w, r, qs, a1, a2, m)


@njit(cache=True)
def deq_q8_0(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 34):
            o = 34 * b
            d = f16at(w[r], o)
            for j in range(32):
                out[i, 32 * b + j] = np.float32(np.int8(w[r, o + 2 + j])) * d
