"""4-bit 32-blocks: Q4_0 and IQ4_NL (x Q8_0 activations), Q4_1 (x Q8_1 activations).

Blocks are read in place from the GGUF bytes. Two blocks are dotted per 64-byte vector with VNNI lanes
0-7 / 8-15 (see simd.py), scaled per lane by d_w*d_a and accumulated in float; one horizontal sum per
row. Signed weights run as unsigned (q+8 for Q4_0, kvalue+128 for IQ4_NL) and the offset is removed
exactly with the activation block sums, spread as 8 equal per-lane integer corrections (pairs.py).
Batches run 4 tokens per weight unpack (_row4_*), with the same per-token arithmetic as _row_*.

Kernels: mm_*(w [N, row_bytes] u8, qs [M, K] i8, a1, a2, out [M, N] f32), see quantize_act.py for a1/a2.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.pairs import tok_q8_0, tok_q8_1
from ggraph.runtime.kernels.simd import (
    IQ4NL_VALUES, cat, dot, dot_acc, f16at, fadd, fadd4, ffma, fhsum, fsplat2, fzero, fzero4, isplat2, lane,
    load16, load32, lut_iq4, make_halves4, make_load_parts, make_nibbles, nib32, tofloat,
)

ACT_TILE_BYTES = 16384
ROWS_PER_TASK = 16
_KV = np.array(IQ4NL_VALUES, dtype=np.float32)


# ---- Q4_1: d, m (fp16), qs[16]; y = d*q + m; dot = sum_b d_w*d_a*sum(q*a) + m_w*s_a ----------
# Two loads bring 2 blocks with their scales: a permute lays the nibbles out in activation order,
# the 4 halves [d1 m1 d2 m2] meet the interleaved activation [d1 s1 d2 s2] in one multiply (Q8_1
# activations are stored as ds [M, 2*nb]). Batches run 4 tokens per weight unpack (_row4).

# bytes 0-31 of the pair, then bytes 24-39 (qs of block 2) at 32-47
_LOAD2_Q4_1 = make_load_parts([(0, 32), (24, 16)])
_NIBS_Q4_1 = make_nibbles(list(range(4, 20)) * 2 + list(range(32, 48)) * 2, [0] * 16 + [1] * 16 + [0] * 16 + [1] * 16)
_DM_Q4_1 = make_halves4([0, 2, 20, 22])


@njit(cache=True, error_model="numpy", inline="always")
def _end_q4_1(w, wo, qs, ds, m, acc0, acc1, macc0, macc1):
    """Reduce one token's accumulators, plus the odd last block if any."""
    nb = ds.shape[1] // 2
    macc = fadd4(macc0, macc1)
    res = fhsum(fadd(acc0, acc1)) + (lane(macc, 1) + lane(macc, 3))
    if nb % 2:
        b = nb - 1
        o1 = wo + 20 * b
        q = nib32(load16(w, o1 + 4))
        s = load32(qs, m * qs.shape[1] + 32 * b)
        sc = fsplat2(f16at(w, o1) * ds[m, 2 * b], np.float32(0.0))
        res += fhsum(ffma(tofloat(dot(cat(q, q), cat(s, s))), sc, fzero())) + f16at(w, o1 + 2) * ds[m, 2 * b + 1]
    return res


@njit(cache=True, error_model="numpy", inline="always")
def _row_q4_1(w, r, qs, ds, m, out):
    K = qs.shape[1]
    wo = r * w.shape[1]
    a0, a1, ma0, ma1 = fzero(), fzero(), fzero4(), fzero4()   # 2 chains: 1 is latency-bound
    for b in range(0, K // 32 - 1, 2):
        v = _LOAD2_Q4_1(w, wo + 20 * b)
        u, dm = _NIBS_Q4_1(v), _DM_Q4_1(v)
        a0, ma0 = tok_q8_1(u, dm, qs, m * K + 32 * b, ds, 4 * m * ds.shape[1] + 8 * b, a0, ma0)
        a0, a1, ma0, ma1 = a1, a0, ma1, ma0
    out[m, r] = _end_q4_1(w, wo, qs, ds, m, a0, a1, ma0, ma1)


@njit(cache=True, error_model="numpy", inline="always")
def _row4_q4_1(w, r, qs, ds, m, out):
    """Tokens m..m+3 against row r: the weight unpack is shared, per-token math identical to _row."""
    K = qs.shape[1]
    wo = r * w.shape[1]
    da = 4 * ds.shape[1]
    a0, a1, ma0, ma1 = fzero(), fzero(), fzero4(), fzero4()
    b0, b1, mb0, mb1 = fzero(), fzero(), fzero4(), fzero4()
    c0, c1, mc0, mc1 = fzero(), fzero(), fzero4(), fzero4()
    d0, d1, md0, md1 = fzero(), fzero(), fzero4(), fzero4()
    for b in range(0, K // 32 - 1, 2):
        v = _LOAD2_Q4_1(w, wo + 20 * b)
        u, dm = _NIBS_Q4_1(v), _DM_Q4_1(v)
        qo = m * K + 32 * b
        dso = m * da + 8 * b
        a0, ma0 = tok_q8_1(u, dm, qs, qo, ds, dso, a0, ma0)
        b0, mb0 = tok_q8_1(u, dm, qs, qo + K, ds, dso + da, b0, mb0)
        c0, mc0 = tok_q8_1(u, dm, qs, qo + 2 * K, ds, dso + 2 * da, c0, mc0)
        d0, md0 = tok_q8_1(u, dm, qs, qo + 3 * K, ds, dso + 3 * da, d0, md0)
        a0, a1, ma0, ma1 = a1, a0, ma1, ma0
        b0, b1, mb0, mb1 = b1, b0, mb1, mb0
        c0, c1, mc0, mc1 = c1, c0, mc1, mc0
        d0, d1, md0, md1 = d1, d0, md1, md0
    out[m, r] = _end_q4_1(w, wo, qs, ds, m, a0, a1, ma0, ma1)
    out[m + 1, r] = _end_q4_1(w, wo, qs, ds, m + 1, b0, b1, mb0, mb1)
    out[m + 2, r] = _end_q4_1(w, wo, qs, ds, m + 2, c0, c1, mc0, mc1)
    out[m + 3, r] = _end_q4_1(w, wo, qs, ds, m + 3, d0, d1, md0, md1)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_1(w, qs, a1, a2, out):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)   # tokens whose activations stay in L1
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _row4_q4_1(w, r, qs, a1, m, out)
                    m += 4
                while m < m1:
                    _row_q4_1(w, r, qs, a1, m, out)
                    m += 1


# ---- Q4_0 (d, qs[16]; y = d*(q-8)) and IQ4_NL (d, qs[16]; y = d*kvalues[q]) ----------------------
# Same 18-byte layout; `nl` picks the value map. Activations are Q8_0 with (d, sum) interleaved; the
# offset of the unsigned codes is removed per lane: -8*sum = 8 lanes x -sum, -128*sum = 8 x -16*sum.

_LOAD2_Q4_0 = make_load_parts([(0, 32), (20, 16)])       # block 2's qs (bytes 20-35) at 32-47
_NIBS_Q4_0 = make_nibbles(list(range(2, 18)) * 2 + list(range(32, 48)) * 2, [0] * 16 + [1] * 16 + [0] * 16 + [1] * 16)
_DD_Q4_0 = make_halves4([0, 0, 18, 18])


@njit(cache=True, error_model="numpy", inline="always")
def _end_q4_0(w, wo, qs, ds, m, acc0, acc1, nl):
    nb = ds.shape[1] // 2
    acc = fadd(acc0, acc1)
    if nb % 2:   # odd last block alone, second half zero-scaled
        b = nb - 1
        o1 = wo + 18 * b
        q = nib32(load16(w, o1 + 2))
        u = cat(q, q)
        if nl:
            u = lut_iq4(u)
        s = load32(qs, m * qs.shape[1] + 32 * b)
        p = dot_acc(isplat2((-16 if nl else -1) * np.int32(ds[m, 2 * b + 1]), 0), u, cat(s, s))
        acc = ffma(tofloat(p), fsplat2(f16at(w, o1) * ds[m, 2 * b], np.float32(0.0)), acc)
    return fhsum(acc)


@njit(cache=True, inline="always")
def _unpack_q4_0(w, o, nl):
    v = _LOAD2_Q4_0(w, o)
    u = lut_iq4(_NIBS_Q4_0(v)) if nl else _NIBS_Q4_0(v)
    return u, _DD_Q4_0(v)


@njit(cache=True, error_model="numpy", inline="always")
def _row_q4_0(w, r, qs, ds, m, out, nl):
    K = qs.shape[1]
    k = -16 if nl else -1
    wo = r * w.shape[1]
    a0, a1 = fzero(), fzero()
    for b in range(0, K // 32 - 1, 2):
        u, dd = _unpack_q4_0(w, wo + 18 * b, nl)
        a0 = tok_q8_0(u, dd, k, qs, m * K + 32 * b, ds, 4 * m * ds.shape[1] + 8 * b, a0)
        a0, a1 = a1, a0
    out[m, r] = _end_q4_0(w, wo, qs, ds, m, a0, a1, nl)


@njit(cache=True, error_model="numpy", inline="always")
def _row4_q4_0(w, r, qs, ds, m, out, nl):
    K = qs.shape[1]
    k = -16 if nl else -1
    wo = r * w.shape[1]
    da = 4 * ds.shape[1]
    a0, a1, b0, b1, c0, c1, d0, d1 = fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero()
    for b in range(0, K // 32 - 1, 2):
        u, dd = _unpack_q4_0(w, wo + 18 * b, nl)
        qo = m * K + 32 * b
        dso = m * da + 8 * b
        a0 = tok_q8_0(u, dd, k, qs, qo, ds, dso, a0)
        b0 = tok_q8_0(u, dd, k, qs, qo + K, ds, dso + da, b0)
        c0 = tok_q8_0(u, dd, k, qs, qo + 2 * K, ds, dso + 2 * da, c0)
        d0 = tok_q8_0(u, dd, k, qs, qo + 3 * K, ds, dso + 3 * da, d0)
        a0, a1, b0, b1, c0, c1, d0, d1 = a1, a0, b1, b0, c1, c0, d1, d0
    out[m, r] = _end_q4_0(w, wo, qs, ds, m, a0, a1, nl)
    out[m + 1, r] = _end_q4_0(w, wo, qs, ds, m + 1, b0, b1, nl)
    out[m + 2, r] = _end_q4_0(w, wo, qs, ds, m + 2, c0, c1, nl)
    out[m + 3, r] = _end_q4_0(w, wo, qs, ds, m + 3, d0, d1, nl)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_0(w, qs, a1, a2, out):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _row4_q4_0(w, r, qs, a1, m, out, False)
                    m += 4
                while m < m1:
                    _row_q4_0(w, r, qs, a1, m, out, False)
                    m += 1


@njit(cache=True, parallel=True, error_model="numpy")
def mm_iq4_nl(w, qs, a1, a2, out):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _row4_q4_0(w, r, qs, a1, m, out, True)
                    m += 4
                while m < m1:
                    _row_q4_0(w, r, qs, a1, m, out, True)
                    m += 1


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
