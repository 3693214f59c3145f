"""5-bit 32-blocks: Q5_0 (x Q8_0 activations) and Q5_1 (x Q8_1 activations).

Q5_0: d, qh u32, qs[16] (22 bytes), y = d*(q-16); Q5_1: d, m, qh, qs[16] (24 bytes), y = d*q + m.
q = nibble | bit << 4 where bit j of qh belongs to element j (low nibbles are elements 0-15).
Same 2-blocks-per-load scheme as matmul_q4.py; Q5_0's -16*sum(a) is 8 lanes x -2*sum(a).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.pairs import tok_q8_0, tok_q8_1
from ggraph.runtime.kernels.simd import (
    bits32, bor, bshl, cat, dot_acc, f16at, fadd, fadd4, ffma, fhsum, fsplat2, fzero, fzero4, isplat2, lane,
    load16, load32, make_bits64, make_halves4, make_load_parts, make_nibbles, nib32, tofloat, u32at,
)

ACT_TILE_BYTES = 16384
ROWS_PER_TASK = 16


@njit(cache=True, inline="always")
def _q5(w, o_qh, o_qs):
    return bor(nib32(load16(w, o_qs)), bshl(bits32(u32at(w, o_qh)), 4))


_HALF_NIBS = [0] * 16 + [1] * 16 + [0] * 16 + [1] * 16
# Q5_0 pair (44 bytes): d1@0 qh1@2 qs1@6 | d2@22 qh2@24 qs2@28 -> qs2 loaded to 32-47
_LOAD2_Q5_0 = make_load_parts([(0, 32), (28, 16)])
_NIBS_Q5_0 = make_nibbles(list(range(6, 22)) * 2 + list(range(32, 48)) * 2, _HALF_NIBS)
_HBITS_Q5_0 = make_bits64([2, 3, 4, 5, 24, 25, 26, 27], 16)   # the two qh words
_DD_Q5_0 = make_halves4([0, 0, 22, 22])
# Q5_1 pair (48 bytes): d1@0 m1@2 qh1@4 qs1@8 | d2@24 m2@26 qh2@28 qs2@32
_LOAD2_Q5_1 = make_load_parts([(0, 32), (32, 16)])
_NIBS_Q5_1 = make_nibbles(list(range(8, 24)) * 2 + list(range(32, 48)) * 2, _HALF_NIBS)
_HBITS_Q5_1 = make_bits64([4, 5, 6, 7, 28, 29, 30, 31], 16)
_DM_Q5_1 = make_halves4([0, 2, 24, 26])


@njit(cache=True, inline="always")
def _unpack_q5(w, o, has_min):
    if has_min:
        v = _LOAD2_Q5_1(w, o)
        return bor(_NIBS_Q5_1(v), _HBITS_Q5_1(v)), _DM_Q5_1(v)
    v = _LOAD2_Q5_0(w, o)
    return bor(_NIBS_Q5_0(v), _HBITS_Q5_0(v)), _DD_Q5_0(v)


@njit(cache=True, error_model="numpy", inline="always")
def _end_q5(w, wo, qs, ds, m, acc0, acc1, macc0, macc1, has_min):
    """Reduce one token's accumulators, plus the odd last block if any."""
    nb = ds.shape[1] // 2
    bb = 24 if has_min else 22
    acc = fadd(acc0, acc1)
    res = np.float32(0.0)
    if has_min:
        macc = fadd4(macc0, macc1)
        res = lane(macc, 1) + lane(macc, 3)
    if nb % 2:   # odd last block alone, second half zero-scaled
        b = nb - 1
        o1 = wo + bb * b
        q = _q5(w, o1 + bb - 20, o1 + bb - 16)
        s = load32(qs, m * qs.shape[1] + 32 * b)
        corr = 0 if has_min else -2 * np.int32(ds[m, 2 * b + 1])
        p = dot_acc(isplat2(corr, 0), cat(q, q), cat(s, s))
        acc = ffma(tofloat(p), fsplat2(f16at(w, o1) * ds[m, 2 * b], np.float32(0.0)), acc)
        if has_min:
            res += f16at(w, o1 + 2) * ds[m, 2 * b + 1]
    return fhsum(acc) + res


@njit(cache=True, inline="always")
def _tok_q5(u, dd, qs, qo, ds, dso, acc, macc, has_min):
    if has_min:
        return tok_q8_1(u, dd, qs, qo, ds, dso, acc, macc)
    return tok_q8_0(u, dd, -2, qs, qo, ds, dso, acc), macc


@njit(cache=True, error_model="numpy", inline="always")
def _row_q5(w, r, qs, ds, m, out, has_min):
    K = qs.shape[1]
    bb = 24 if has_min else 22
    wo = r * w.shape[1]
    a0, a1, ma0, ma1 = fzero(), fzero(), fzero4(), fzero4()
    for b in range(0, K // 32 - 1, 2):
        u, dd = _unpack_q5(w, wo + bb * b, has_min)
        a0, ma0 = _tok_q5(u, dd, qs, m * K + 32 * b, ds, 4 * m * ds.shape[1] + 8 * b, a0, ma0, has_min)
        a0, a1, ma0, ma1 = a1, a0, ma1, ma0
    out[m, r] = _end_q5(w, wo, qs, ds, m, a0, a1, ma0, ma1, has_min)


@njit(cache=True, error_model="numpy", inline="always")
def _row4_q5(w, r, qs, ds, m, out, has_min):
    """Tokens m..m+3 against row r, sharing each weight unpack; per-token math identical to _row_q5."""
    K = qs.shape[1]
    bb = 24 if has_min else 22
    wo = r * w.shape[1]
    da = 4 * ds.shape[1]
    a0, a1, ma0, ma1 = fzero(), fzero(), fzero4(), fzero4()
    b0, b1, mb0, mb1 = fzero(), fzero(), fzero4(), fzero4()
    c0, c1, mc0, mc1 = fzero(), fzero(), fzero4(), fzero4()
    d0, d1, md0, md1 = fzero(), fzero(), fzero4(), fzero4()
    for b in range(0, K // 32 - 1, 2):
        u, dd = _unpack_q5(w, wo + bb * b, has_min)
        qo = m * K + 32 * b
        dso = m * da + 8 * b
        a0, ma0 = _tok_q5(u, dd, qs, qo, ds, dso, a0, ma0, has_min)
        b0, mb0 = _tok_q5(u, dd, qs, qo + K, ds, dso + da, b0, mb0, has_min)
        c0, mc0 = _tok_q5(u, dd, qs, qo + 2 * K, ds, dso + 2 * da, c0, mc0, has_min)
        d0, md0 = _tok_q5(u, dd, qs, qo + 3 * K, ds, dso + 3 * da, d0, md0, has_min)
        a0, a1, ma0, ma1 = a1, a0, ma1, ma0
        b0, b1, mb0, mb1 = b1, b0, mb1, mb0
        c0, c1, mc0, mc1 = c1, c0, mc1, mc0
        d0, d1, md0, md1 = d1, d0, md1, md0
    out[m, r] = _end_q5(w, wo, qs, ds, m, a0, a1, ma0, ma1, has_min)
    out[m + 1, r] = _end_q5(w, wo, qs, ds, m + 1, b0, b1, mb0, mb1, has_min)
    out[m + 2, r] = _end_q5(w, wo, qs, ds, m + 2, c0, c1, mc0, mc1, has_min)
    out[m + 3, r] = _end_q5(w, wo, qs, ds, m + 3, d0, d1, md0, md1, has_min)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q5_0(w, qs, a1, a2, out):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)   # tokens whose activations stay in L1
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _row4_q5(w, r, qs, a1, m, out, False)
                    m += 4
                while m < m1:
                    _row_q5(w, r, qs, a1, m, out, False)
                    m += 1


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q5_1(w, qs, a1, a2, out):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _row4_q5(w, r, qs, a1, m, out, True)
                    m += 4
                while m < m1:
                    _row_q5(w, r, qs, a1, m, out, True)
                    m += 1


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
