"""5-bit 32-blocks: Q5_0 (x Q8_0 activations) and Q5_1 (x Q8_1 activations).

Q5_0: d, qh u32, qs[16] (22 bytes), y = d*(q-16); Q5_1: d, m, qh, qs[16] (24 bytes), y = d*q + m.
q = nibble | bit << 4 where bit j of qh belongs to element j (low nibbles are elements 0-15).
Same 2-blocks-per-vector scheme as matmul_q4.py; Q5_0's -16*sum(a) is 8 lanes x -2*sum(a).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.simd import (
    bits32, bor, bshl, cat, dot, dot_acc, f16at, fhsum, ffma, fsplat2, fzero, isplat2, load16, load32,
    nib32, tofloat, u32at,
)

ROWS_PER_TASK = 16


@njit(cache=True, inline="always")
def _q5(w, o_qh, o_qs):
    return bor(nib32(load16(w, o_qs)), bshl(bits32(u32at(w, o_qh)), 4))


@njit(cache=True, error_model="numpy", inline="always")
def _row_q5_0(w, r, qs, ad, asum, m):
    nb = ad.shape[1]
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    acc = fzero()
    b = 0
    while b + 1 < nb:
        o1 = wo + 22 * b
        o2 = o1 + 22
        u = cat(_q5(w, o1 + 2, o1 + 6), _q5(w, o2 + 2, o2 + 6))
        s = cat(load32(qs, ao + 32 * b), load32(qs, ao + 32 * b + 32))
        p = dot_acc(isplat2(-2 * asum[m, b], -2 * asum[m, b + 1]), u, s)
        sc = fsplat2(f16at(w, o1) * ad[m, b], f16at(w, o2) * ad[m, b + 1])
        acc = ffma(tofloat(p), sc, acc)
        b += 2
    if b < nb:
        o1 = wo + 22 * b
        q = _q5(w, o1 + 2, o1 + 6)
        s = load32(qs, ao + 32 * b)
        p = dot_acc(isplat2(-2 * asum[m, b], 0), cat(q, q), cat(s, s))
        sc = fsplat2(f16at(w, o1) * ad[m, b], np.float32(0.0))
        acc = ffma(tofloat(p), sc, acc)
    return fhsum(acc)


@njit(cache=True, error_model="numpy", inline="always")
def _row_q5_1(w, r, qs, ds, m):
    nb = ds.shape[1] // 2
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    acc = fzero()
    macc = np.float32(0.0)
    b = 0
    while b + 1 < nb:
        o1 = wo + 24 * b
        o2 = o1 + 24
        u = cat(_q5(w, o1 + 4, o1 + 8), _q5(w, o2 + 4, o2 + 8))
        s = cat(load32(qs, ao + 32 * b), load32(qs, ao + 32 * b + 32))
        sc = fsplat2(f16at(w, o1) * ds[m, 2 * b], f16at(w, o2) * ds[m, 2 * b + 2])
        acc = ffma(tofloat(dot(u, s)), sc, acc)
        macc += f16at(w, o1 + 2) * ds[m, 2 * b + 1] + f16at(w, o2 + 2) * ds[m, 2 * b + 3]
        b += 2
    if b < nb:
        o1 = wo + 24 * b
        q = _q5(w, o1 + 4, o1 + 8)
        s = load32(qs, ao + 32 * b)
        sc = fsplat2(f16at(w, o1) * ds[m, 2 * b], np.float32(0.0))
        acc = ffma(tofloat(dot(cat(q, q), cat(s, s))), sc, acc)
        macc += f16at(w, o1 + 2) * ds[m, 2 * b + 1]
    return fhsum(acc) + macc


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q5_0(w, qs, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q5_0(w, r, qs, a1, a2, m)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q5_1(w, qs, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q5_1(w, r, qs, a1, m)


@njit(cache=True)
def deq_q5(w, rows, out, has_min):
    bb = 24 if has_min else 22
    hb = 4 if has_min else 2
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // bb):
            o = bb * b
            d = f16at(w[r], o)
            mn = f16at(w[r], o + 2) if has_min else np.float32(0.0)
            qh = u32at(w[r], o + hb)
            for e in range(32):
                byte = np.int32(w[r, o + hb + 4 + e % 16])
                q = ((byte >> 4) if e >= 16 else (byte & 15)) | (np.int32((qh >> e) & 1) << 4)
                if has_min:
                    out[i, 32 * b + e] = d * np.float32(q) + mn
                else:
                    out[i, 32 * b + e] = d * np.float32(q - 16)
