"""Q8_0 weights (d fp16, qs int8[32]; y = d*q) x Q8_0 activations.

VNNI multiplies unsigned by signed bytes, so weights are flipped to q+128 (one xor) and
128*sum(a) is removed exactly: 8 lanes x -16*sum(a) per block (see matmul_q4.py for the layout).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.pairs import tok_q8_0
from ggraph.runtime.kernels.simd import (
    bxor, cat, dot_acc, f16at, fadd, ffma, fhsum, fpair4, fsplat2, fzero, isplat2, load32, make_load_parts,
    tofloat,
)

ACT_TILE_BYTES = 16384
ROWS_PER_TASK = 16


_LOAD2_Q8_0 = make_load_parts([(2, 32), (36, 32)])   # the two blocks' qs (scales at 0 and 34)


@njit(cache=True, inline="always")
def _unpack_q8_0(w, o):
    return bxor(_LOAD2_Q8_0(w, o), 0x80), fpair4(f16at(w, o), f16at(w, o + 34))


@njit(cache=True, error_model="numpy", inline="always")
def _end_q8_0(w, wo, qs, ds, m, acc0, acc1):
    nb = ds.shape[1] // 2
    acc = fadd(acc0, acc1)
    if nb % 2:   # odd last block alone, second half zero-scaled
        b = nb - 1
        o1 = wo + 34 * b
        q = load32(w, o1 + 2)
        s = load32(qs, m * qs.shape[1] + 32 * b)
        p = dot_acc(isplat2(-16 * np.int32(ds[m, 2 * b + 1]), 0), bxor(cat(q, q), 0x80), cat(s, s))
        acc = ffma(tofloat(p), fsplat2(f16at(w, o1) * ds[m, 2 * b], np.float32(0.0)), acc)
    return fhsum(acc)


@njit(cache=True, error_model="numpy", inline="always")
def _row_q8_0(w, r, qs, ds, m, out):
    K = qs.shape[1]
    wo = r * w.shape[1]
    a0, a1 = fzero(), fzero()
    for b in range(0, K // 32 - 1, 2):
        u, dd = _unpack_q8_0(w, wo + 34 * b)
        a0 = tok_q8_0(u, dd, -16, qs, m * K + 32 * b, ds, 4 * m * ds.shape[1] + 8 * b, a0)
        a0, a1 = a1, a0
    out[m, r] = _end_q8_0(w, wo, qs, ds, m, a0, a1)


@njit(cache=True, error_model="numpy", inline="always")
def _row4_q8_0(w, r, qs, ds, m, out):
    """Tokens m..m+3 against row r, sharing each weight load; per-token math identical to _row_q8_0."""
    K = qs.shape[1]
    wo = r * w.shape[1]
    da = 4 * ds.shape[1]
    a0, a1, b0, b1, c0, c1, d0, d1 = fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero()
    for b in range(0, K // 32 - 1, 2):
        u, dd = _unpack_q8_0(w, wo + 34 * b)
        qo = m * K + 32 * b
        dso = m * da + 8 * b
        a0 = tok_q8_0(u, dd, -16, qs, qo, ds, dso, a0)
        b0 = tok_q8_0(u, dd, -16, qs, qo + K, ds, dso + da, b0)
        c0 = tok_q8_0(u, dd, -16, qs, qo + 2 * K, ds, dso + 2 * da, c0)
        d0 = tok_q8_0(u, dd, -16, qs, qo + 3 * K, ds, dso + 3 * da, d0)
        a0, a1, b0, b1, c0, c1, d0, d1 = a1, a0, b1, b0, c1, c0, d1, d0
    out[m, r] = _end_q8_0(w, wo, qs, ds, m, a0, a1)
    out[m + 1, r] = _end_q8_0(w, wo, qs, ds, m + 1, b0, b1)
    out[m + 2, r] = _end_q8_0(w, wo, qs, ds, m + 2, c0, c1)
    out[m + 3, r] = _end_q8_0(w, wo, qs, ds, m + 3, d0, d1)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q8_0(w, qs, a1, a2, out):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)   # tokens whose activations stay in L1
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _row4_q8_0(w, r, qs, a1, m, out)
                    m += 4
                while m < m1:
                    _row_q8_0(w, r, qs, a1, m, out)
                    m += 1


@njit(cache=True)
def deq_q8_0(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 34):
            o = 34 * b
            d = f16at(w[r], o)
            for j in range(32):
                out[i, 32 * b + j] = np.float32(np.int8(w[r, o + 2 + j])) * d
