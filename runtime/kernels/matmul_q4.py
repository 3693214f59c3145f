"""4-bit 32-blocks: Q4_0 and IQ4_NL (x Q8_0 activations), Q4_1 (x Q8_1 activations).

Blocks are read in place from the GGUF bytes. Two blocks are dotted per 64-byte vector with VNNI lanes
0-7 / 8-15 (see simd.py), scaled per lane by d_w*d_a and accumulated in float; one horizontal sum per
row. Signed weights run as unsigned (q+8 for Q4_0, kvalue+128 for IQ4_NL) and the offset is removed
exactly with the activation block sums, spread as 8 equal per-lane integer corrections.

Kernels: mm_*(w [N, row_bytes] u8, qs [M, K] i8, a1, a2, out [M, N] f32), see quantize_act.py for a1/a2.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.simd import (
    IQ4NL_VALUES, cat, dot, dot_acc, f16at, fadd, fadd4, fhsum, ffma, fload4, fmul4, fsplat2, fzero, fzero4, isplat2,
    lane, lanes02, load16, load32, load64, lut_iq4, make_halves4, make_load_prefix, make_nibbles, nib32, tofloat,
)

ROWS_PER_TASK = 16
_KV = np.array(IQ4NL_VALUES, dtype=np.float32)


# ---- Q4_1: d, m (fp16), qs[16]; y = d*q + m; dot = sum_b d_w*d_a*sum(q*a) + m_w*s_a ----------
# One masked 40-byte load brings 2 blocks with their scales: a vpermb lays the nibbles out in
# activation order, the 4 halves [d1 m1 d2 m2] meet the interleaved activation [d1 s1 d2 s2] in one
# multiply (Q8_1 activations are stored as ds [M, 2*nb]).

_LOAD2_Q4_1 = make_load_prefix(40)
_NIBS_Q4_1 = make_nibbles(list(range(4, 20)) * 2 + list(range(24, 40)) * 2, [0] * 16 + [1] * 16 + [0] * 16 + [1] * 16)
_DM_Q4_1 = make_halves4([0, 2, 20, 22])


@njit(cache=True, error_model="numpy", inline="always")
def _row_q4_1(w, r, qs, ds, m):
    nb = ds.shape[1] // 2
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    dso = 4 * m * ds.shape[1]
    acc0, acc1 = fzero(), fzero()     # two chains: one FMA/add chain alone is latency-bound
    macc0, macc1 = fzero4(), fzero4()
    b = 0
    while b + 3 < nb:
        v0 = _LOAD2_Q4_1(w, wo + 20 * b)
        v1 = _LOAD2_Q4_1(w, wo + 20 * b + 40)
        sc0 = fmul4(_DM_Q4_1(v0), fload4(ds, dso + 8 * b))    # [d1*da1, m1*s1, d2*da2, m2*s2]
        sc1 = fmul4(_DM_Q4_1(v1), fload4(ds, dso + 8 * b + 16))
        acc0 = ffma(tofloat(dot(_NIBS_Q4_1(v0), load64(qs, ao + 32 * b))), lanes02(sc0), acc0)
        acc1 = ffma(tofloat(dot(_NIBS_Q4_1(v1), load64(qs, ao + 32 * b + 64))), lanes02(sc1), acc1)
        macc0 = fadd4(macc0, sc0)
        macc1 = fadd4(macc1, sc1)
        b += 4
    if b + 1 < nb:
        v0 = _LOAD2_Q4_1(w, wo + 20 * b)
        sc0 = fmul4(_DM_Q4_1(v0), fload4(ds, dso + 8 * b))
        acc0 = ffma(tofloat(dot(_NIBS_Q4_1(v0), load64(qs, ao + 32 * b))), lanes02(sc0), acc0)
        macc0 = fadd4(macc0, sc0)
        b += 2
    macc = fadd4(macc0, macc1)
    res = fhsum(fadd(acc0, acc1)) + (lane(macc, 1) + lane(macc, 3))
    if b < nb:  # odd block count: last block alone, second half zero-scaled
        o1 = wo + 20 * b
        q = nib32(load16(w, o1 + 4))
        s = load32(qs, ao + 32 * b)
        sc = fsplat2(f16at(w, o1) * ds[m, 2 * b], np.float32(0.0))
        res += fhsum(ffma(tofloat(dot(cat(q, q), cat(s, s))), sc, fzero())) + f16at(w, o1 + 2) * ds[m, 2 * b + 1]
    return res


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_1(w, qs, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q4_1(w, r, qs, a1, m)


# ---- Q4_0 (d, qs[16]; y = d*(q-8)) and IQ4_NL (d, qs[16]; y = d*kvalues[q]) ----------------------
# Same 18-byte layout; `nl` picks the value map. Per lane correction: -8*sum(a) = 8 lanes x -sum(a),
# -128*sum(a) = 8 lanes x -16*sum(a).

@njit(cache=True, error_model="numpy", inline="always")
def _row_q4_0(w, r, qs, ad, asum, m, nl):
    nb = ad.shape[1]
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    k = 16 if nl else 1
    acc = fzero()
    b = 0
    while b + 1 < nb:
        o1 = wo + 18 * b
        o2 = o1 + 18
        u = cat(nib32(load16(w, o1 + 2)), nib32(load16(w, o2 + 2)))
        if nl:
            u = lut_iq4(u)
        s = cat(load32(qs, ao + 32 * b), load32(qs, ao + 32 * b + 32))
        p = dot_acc(isplat2(-k * asum[m, b], -k * asum[m, b + 1]), u, s)
        sc = fsplat2(f16at(w, o1) * ad[m, b], f16at(w, o2) * ad[m, b + 1])
        acc = ffma(tofloat(p), sc, acc)
        b += 2
    if b < nb:
        o1 = wo + 18 * b
        q = nib32(load16(w, o1 + 2))
        u = cat(q, q)
        if nl:
            u = lut_iq4(u)
        s = load32(qs, ao + 32 * b)
        p = dot_acc(isplat2(-k * asum[m, b], 0), u, cat(s, s))
        sc = fsplat2(f16at(w, o1) * ad[m, b], np.float32(0.0))
        acc = ffma(tofloat(p), sc, acc)
    return fhsum(acc)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_0(w, qs, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q4_0(w, r, qs, a1, a2, m, False)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_iq4_nl(w, qs, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q4_0(w, r, qs, a1, a2, m, True)


# ---- dequantization (same float32 operation order as gguf.quants / ggml) ------------------------

@njit(cache=True)
def deq_q4_0(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 18):
            o = 18 * b
            d = f16at(w[r], o)
            for j in range(16):
                q = w[r, o + 2 + j]
                out[i, 32 * b + j] = d * np.float32(np.int32(q & 15) - 8)
                out[i, 32 * b + j + 16] = d * np.float32(np.int32(q >> 4) - 8)


@njit(cache=True)
def deq_iq4_nl(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 18):
            o = 18 * b
            d = f16at(w[r], o)
            for j in range(16):
                q = w[r, o + 2 + j]
                out[i, 32 * b + j] = d * _KV[q & 15]
                out[i, 32 * b + j + 16] = d * _KV[q >> 4]


@njit(cache=True)
def deq_q4_1(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 20):
            o = 20 * b
            d = f16at(w[r], o)
            mn = f16at(w[r], o + 2)
            for j in range(16):
                q = w[r, o + 4 + j]
                out[i, 32 * b + j] = d * np.float32(q & 15) + mn
                out[i, 32 * b + j + 16] = d * np.float32(q >> 4) + mn
