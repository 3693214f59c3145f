"""256-element super-block formats x Q8_K activations: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.

Per super-block everything up to the final scaling is exact integer math, as in ggml's vec_dot:
VNNI dots of 64 values, multiplied by the 4/6/8-bit sub-block scales as int32 lanes; the lanes are
then scaled by d_w*d_a (and the min terms `min * bsums` by dmin_w*d_a) into float accumulators, like
ggml's AVX2 kernels. Weights with a signed range run as unsigned plus an offset (Q3_K +4, Q6_K +32,
IQ4_XS +128); the offset is removed exactly with Q8_K's bsums (sums of 16 activations).

Kernels: mm_*(w [N, row_bytes] u8, qs [M, K] i8, ad [M, K/256] f32, bs [M, K/16] i32, out [M, N] f32).
"""
import numpy as np
from numba import njit, prange
from numba.extending import overload

from ggraph.runtime.kernels.simd import (
    IQ4NL_VALUES, b8, band, bitsel, bor, bshl, bshr, cat, dot, f16at, ffma, fhsum, fsplat, fzero, iadd, iand,
    ibcast2, ibcast4, iload, iload_s8, iload_u8, imul, ipairs_hi, ishr, isplat2, load16, load32, load64,
    lut_iq4, make_scale_decoder, nib32, nib64, tofloat,
)

ACT_TILE_BYTES = 16384
ROWS_PER_TASK = 16
_KV = np.array(IQ4NL_VALUES, dtype=np.float32)


# Sub-block scales are unpacked as vectors (one load + a few lane ops per super-block) and broadcast
# to the dot lanes with constant shuffles; the scalar decoders below serve dequantization.

# Q4_K/Q5_K: lanes 0-7 = 6-bit scales, lanes 8-15 = 6-bit mins, from the 12 bytes of `scales`
_K4_SCALES = make_scale_decoder(
    a_idx=[0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11], a_shift=[0] * 12 + [4] * 4,
    a_mask=[63] * 4 + [15] * 4 + [63] * 4 + [15] * 4,
    b_idx=[0] * 4 + [0, 1, 2, 3] + [0] * 4 + [4, 5, 6, 7], b_shift=[6] * 16,
    b_mask=[0] * 4 + [3] * 4 + [0] * 4 + [3] * 4, bias=0)
# Q3_K: 16 signed 6-bit scales (low 4 bits in bytes 0-7, high 2 bits in bytes 8-11)
_Q3_SCALES = make_scale_decoder(
    a_idx=list(range(8)) * 2, a_shift=[0] * 8 + [4] * 8, a_mask=[15] * 16,
    b_idx=[8 + g % 4 for g in range(16)], b_shift=[2 * (g // 4) for g in range(16)], b_mask=[3] * 16, bias=32)
# IQ4_XS: 8 signed 6-bit scales from scales_l (bytes 4-7) and scales_h (bytes 2-3), repeated in 8-15
_IQ4XS_SCALES = make_scale_decoder(
    a_idx=[4 + (i % 8) // 2 for i in range(16)], a_shift=[4 * (i % 2) for i in range(16)], a_mask=[15] * 16,
    b_idx=[2 + (i % 8) // 4 for i in range(16)], b_shift=[2 * (i % 4) for i in range(16)], b_mask=[3] * 16,
    bias=32)


@njit(cache=True, inline="always")
def _scale_min_k4(w, o, j):
    """6-bit scale and min of sub-block j from the 12 packed bytes at byte o (Q4_K / Q5_K)."""
    if j < 4:
        return b8(w, o + j) & 63, b8(w, o + j + 4) & 63
    a, b, c = b8(w, o + j - 4), b8(w, o + j), b8(w, o + j + 4)
    return (c & 15) | ((a >> 6) << 4), (c >> 4) | ((b >> 6) << 4)


@njit(cache=True, inline="always")
def _scale_q3(w, o, g):
    """Signed 6-bit scale of 16-group g from the 12 packed bytes at byte o (Q3_K)."""
    lo = (b8(w, o + g) & 15) if g < 8 else (b8(w, o + g - 8) >> 4)
    hi = (b8(w, o + 8 + g % 4) >> (2 * (g // 4))) & 3
    return (lo | (hi << 4)) - 32


# ---- shared super-block steps ------------------------------------------------------------------
# A super-block is unpacked once into 4 vectors of 64 unsigned codes (u0-u3, in activation order)
# and their per-lane integer scales (s0-s3); each token then needs 4 VNNI dots and exact int32 lane
# math (_ktok), and a format-specific epilogue that scales the lanes by d_w*d_a into float
# accumulators (as ggml's AVX2 code does), one horizontal sum per row. Batches run 4 tokens per unpack.

@njit(cache=True, inline="always")
def _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, a):
    acc = iadd(imul(dot(u0, load64(qs, a)), s0), imul(dot(u1, load64(qs, a + 64)), s1))
    return iadd(acc, iadd(imul(dot(u2, load64(qs, a + 128)), s2), imul(dot(u3, load64(qs, a + 192)), s3)))


# Q4_K: d, dmin, scales[12], qs[128] (144 bytes); Q5_K adds qh[32] before qs (176 bytes).
# chunk c: 32 bytes of qs -> low nibbles = sub-block 2c, high = 2c+1 (Q5_K: qh bits 2c, 2c+1 add 16)

@njit(cache=True, inline="always")
def _q45_chunk(w, o, c, q5):
    if q5:
        qh = load32(w, o + 16)
        hb = cat(bitsel(qh, 1 << (2 * c), 16, 0), bitsel(qh, 2 << (2 * c), 16, 0))
        return bor(nib64(load32(w, o + 48 + 32 * c)), hb)
    return nib64(load32(w, o + 16 + 32 * c))


@njit(cache=True, inline="always")
def _unpack_q45(w, o, q5):
    scv = _K4_SCALES(w, o + 4)
    return (_q45_chunk(w, o, 0, q5), _q45_chunk(w, o, 1, q5), _q45_chunk(w, o, 2, q5), _q45_chunk(w, o, 3, q5),
            ibcast2(scv, 0, 1), ibcast2(scv, 2, 3), ibcast2(scv, 4, 5), ibcast2(scv, 6, 7), scv)


@njit(cache=True, inline="always")
def _end_q45(w, o, acc, scv, bs, bo, da, facc, macc):
    mins = imul(scv, ipairs_hi(iload(bs, bo)))   # mins (lanes 8-15) x sums of 32 activations
    return (ffma(tofloat(acc), fsplat(f16at(w, o) * da), facc),
            ffma(tofloat(mins), fsplat(f16at(w, o + 2) * da), macc))


# Q6_K: ql[128], qh[64], scales int8[16], d (210 bytes); q = 6 bits - 32. Half h: ql[64h..] low
# nibbles -> elements 0-63, high -> 64-127; qh[32h..] bit pairs -> the four 32-runs.

@njit(cache=True, inline="always")
def _q6_pair(w, o, h):
    v = load64(w, o + 64 * h)
    qh = load32(w, o + 128 + 32 * h)
    ua = bor(band(v, 15), bshl(cat(band(qh, 3), band(bshr(qh, 2), 3)), 4))
    ub = bor(bshr(v, 4), bshl(cat(band(bshr(qh, 4), 3), bshr(qh, 6)), 4))
    return ua, ub


@njit(cache=True, inline="always")
def _unpack_q6(w, o):
    scv = iload_s8(w, o + 192)
    ua, ub = _q6_pair(w, o, 0)
    uc, ud = _q6_pair(w, o, 1)
    return ua, ub, uc, ud, ibcast4(scv, 0), ibcast4(scv, 1), ibcast4(scv, 2), ibcast4(scv, 3), scv


@njit(cache=True, inline="always")
def _end_q6(w, o, acc, scv, bs, bo, da, facc, macc):
    acc = iadd(acc, imul(imul(scv, iload(bs, bo)), isplat2(-32, -32)))   # the +32 offset of the codes
    return ffma(tofloat(acc), fsplat(f16at(w, o + 208) * da), facc), macc


# Q2_K: scales[16], qs[64], d, dmin (84 bytes); Q3_K: hmask[32], qs[64], scales[12], d (110 bytes).
# Element order (both): half h uses qs[32h..32h+31]; shift 2j gives elements 128h+32j .. +31.

@njit(cache=True, inline="always")
def _q2_pair(w, o, h):
    qv = load32(w, o + 32 * h)
    return cat(band(qv, 3), band(bshr(qv, 2), 3)), cat(band(bshr(qv, 4), 3), bshr(qv, 6))


@njit(cache=True, inline="always")
def _unpack_q2(w, o):
    raw = iload_u8(w, o)
    scv = iand(raw, 15)
    ua, ub = _q2_pair(w, o + 16, 0)
    uc, ud = _q2_pair(w, o + 16, 1)
    return ua, ub, uc, ud, ibcast4(scv, 0), ibcast4(scv, 1), ibcast4(scv, 2), ibcast4(scv, 3), ishr(raw, 4)


@njit(cache=True, inline="always")
def _end_q2(w, o, acc, mins, bs, bo, da, facc, macc):
    return (ffma(tofloat(acc), fsplat(da * f16at(w, o + 80)), facc),
            ffma(tofloat(imul(mins, iload(bs, bo))), fsplat(da * f16at(w, o + 82)), macc))


@njit(cache=True, inline="always")
def _q3_pair(w, o, hm, h):
    ua, ub = _q2_pair(w, o, h)
    k = 4 * h   # hmask bit 4h+j is the 3rd bit of run j of half h (q = low2 + 4*bit - 4)
    ua = bor(ua, cat(bitsel(hm, 1 << k, 4, 0), bitsel(hm, 2 << k, 4, 0)))
    ub = bor(ub, cat(bitsel(hm, 4 << k, 4, 0), bitsel(hm, 8 << k, 4, 0)))
    return ua, ub


@njit(cache=True, inline="always")
def _unpack_q3(w, o):
    hm = load32(w, o)
    scv = _Q3_SCALES(w, o + 96)
    ua, ub = _q3_pair(w, o + 32, hm, 0)
    uc, ud = _q3_pair(w, o + 32, hm, 1)
    return ua, ub, uc, ud, ibcast4(scv, 0), ibcast4(scv, 1), ibcast4(scv, 2), ibcast4(scv, 3), scv


@njit(cache=True, inline="always")
def _end_q3(w, o, acc, scv, bs, bo, da, facc, macc):
    acc = iadd(acc, imul(imul(scv, iload(bs, bo)), isplat2(-4, -4)))   # the +4 offset of the codes
    return ffma(tofloat(acc), fsplat(f16at(w, o + 108) * da), facc), macc


# IQ4_XS: d, scales_h u16, scales_l[4], qs[128] (136 bytes); y = d*(ls-32)*kvalues[q]

@njit(cache=True, inline="always")
def _iq4_pair(w, o, p):
    return lut_iq4(cat(nib32(load16(w, o + 8 + 32 * p)), nib32(load16(w, o + 24 + 32 * p))))


@njit(cache=True, inline="always")
def _unpack_iq4xs(w, o):
    scv = _IQ4XS_SCALES(w, o)
    return (_iq4_pair(w, o, 0), _iq4_pair(w, o, 1), _iq4_pair(w, o, 2), _iq4_pair(w, o, 3),
            ibcast2(scv, 0, 1), ibcast2(scv, 2, 3), ibcast2(scv, 4, 5), ibcast2(scv, 6, 7), scv)


@njit(cache=True, inline="always")
def _end_iq4xs(w, o, acc, scv, bs, bo, da, facc, macc):
    acc = iadd(acc, imul(imul(scv, ipairs_hi(iload(bs, bo))), isplat2(-128, -128)))   # +128 offset of values
    return ffma(tofloat(acc), fsplat(f16at(w, o) * da), facc), macc


# ---- row kernels: `fmt` picks the format at compile time -----------------------------------------
Q2K, Q3K, Q4K, Q5K, Q6K, IQ4XS = 0, 1, 2, 3, 4, 5


_BLOCK_BYTES = {Q2K: 84, Q3K: 110, Q4K: 144, Q5K: 176, Q6K: 210, IQ4XS: 136}


def _block_bytes(fmt):
    pass


def _unpack(w, o, fmt):
    pass


def _end(w, o, acc, bv, bs, bo, da, facc, macc, fmt):
    pass


# Resolved at typing time from the literal `fmt`, so each kernel compiles only its own format
# (if-chains on fmt made numba type and inline all six formats: ~10 s per kernel).
@overload(_block_bytes, inline="always", prefer_literal=True)
def _ov_block_bytes(fmt):
    nbytes = _BLOCK_BYTES[fmt.literal_value]
    return lambda fmt: nbytes


@overload(_unpack, inline="always", prefer_literal=True)
def _ov_unpack(w, o, fmt):
    f = fmt.literal_value
    if f in (Q4K, Q5K):
        q5 = f == Q5K
        return lambda w, o, fmt: _unpack_q45(w, o, q5)
    impl = {Q2K: _unpack_q2, Q3K: _unpack_q3, Q6K: _unpack_q6, IQ4XS: _unpack_iq4xs}[f]
    return lambda w, o, fmt: impl(w, o)


@overload(_end, inline="always", prefer_literal=True)
def _ov_end(w, o, acc, bv, bs, bo, da, facc, macc, fmt):
    impl = {Q2K: _end_q2, Q3K: _end_q3, Q4K: _end_q45, Q5K: _end_q45, Q6K: _end_q6,
            IQ4XS: _end_iq4xs}[fmt.literal_value]
    return lambda w, o, acc, bv, bs, bo, da, facc, macc, fmt: impl(w, o, acc, bv, bs, bo, da, facc, macc)


@njit(cache=True, error_model="numpy", inline="always")
def _row(w, r, qs, ad, bs, m, out, fmt):
    bb = _block_bytes(fmt)
    K = qs.shape[1]
    wo = r * w.shape[1]
    facc, macc = fzero(), fzero()   # d-scaled and dmin-scaled lanes, summed once per row
    for b in range(K // 256):
        o = wo + bb * b
        u0, u1, u2, u3, s0, s1, s2, s3, bv = _unpack(w, o, fmt)
        acc = _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, m * K + 256 * b)
        facc, macc = _end(w, o, acc, bv, bs, 4 * (m * bs.shape[1] + 16 * b), ad[m, b], facc, macc, fmt)
    out[m, r] = fhsum(facc) - fhsum(macc)


@njit(cache=True, error_model="numpy", inline="always")
def _row4(w, r, qs, ad, bs, m, out, fmt):
    """Tokens m..m+3 against row r, sharing each super-block unpack; per-token math as in _row."""
    bb = _block_bytes(fmt)
    K = qs.shape[1]
    wo = r * w.shape[1]
    fa, ma, fb, mb, fc, mc, fd, md = fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero()
    nbs = 4 * bs.shape[1]
    for b in range(K // 256):
        o = wo + bb * b
        u0, u1, u2, u3, s0, s1, s2, s3, bv = _unpack(w, o, fmt)
        a = m * K + 256 * b
        bo = 4 * (m * bs.shape[1] + 16 * b)
        fa, ma = _end(w, o, _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, a), bv, bs, bo, ad[m, b], fa, ma, fmt)
        fb, mb = _end(w, o, _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, a + K), bv, bs, bo + nbs,
                      ad[m + 1, b], fb, mb, fmt)
        fc, mc = _end(w, o, _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, a + 2 * K), bv, bs, bo + 2 * nbs,
                      ad[m + 2, b], fc, mc, fmt)
        fd, md = _end(w, o, _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, a + 3 * K), bv, bs, bo + 3 * nbs,
                      ad[m + 3, b], fd, md, fmt)
    out[m, r] = fhsum(fa) - fhsum(ma)
    out[m + 1, r] = fhsum(fb) - fhsum(mb)
    out[m + 2, r] = fhsum(fc) - fhsum(mc)
    out[m + 3, r] = fhsum(fd) - fhsum(md)


@njit(cache=True, error_model="numpy", inline="always")
def _mm(w, qs, ad, bs, out, fmt):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)   # tokens whose activations stay in L1
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _row4(w, r, qs, ad, bs, m, out, fmt)
                    m += 4
                while m < m1:
                    _row(w, r, qs, ad, bs, m, out, fmt)
                    m += 1


# One parallel kernel per format so `fmt` is a compile-time constant.
@njit(cache=True, parallel=True, error_model="numpy")
def mm_q2_k(w, qs, ad, bs, out):
    _mm(w, qs, ad, bs, out, Q2K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q3_k(w, qs, ad, bs, out):
    _mm(w, qs, ad, bs, out, Q3K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_k(w, qs, ad, bs, out):
    _mm(w, qs, ad, bs, out, Q4K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q5_k(w, qs, ad, bs, out):
    _mm(w, qs, ad, bs, out, Q5K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q6_k(w, qs, ad, bs, out):
    _mm(w, qs, ad, bs, out, Q6K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_iq4_xs(w, qs, ad, bs, out):
    _mm(w, qs, ad, bs, out, IQ4XS)


# ---- dequantization (float32 operation order of gguf.quants / ggml's dequantize_row_*) -----------

@njit(cache=True)
def deq_q2_k(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 84):
            o = 84 * b
            d = f16at(w[r], o + 80)
            dmin = f16at(w[r], o + 82)
            for e in range(256):
                h, rem = e // 128, e % 128
                j, l = rem // 32, rem % 32
                q = (np.int32(w[r, o + 16 + 32 * h + l]) >> (2 * j)) & 3
                sc = np.int32(w[r, o + e // 16])
                out[i, 256 * b + e] = (d * np.float32(sc & 15)) * np.float32(q) - dmin * np.float32(sc >> 4)


@njit(cache=True)
def deq_q3_k(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 110):
            o = 110 * b
            d = f16at(w[r], o + 108)
            for e in range(256):
                h, rem = e // 128, e % 128
                j, l = rem // 32, rem % 32
                q = (np.int32(w[r, o + 32 + 32 * h + l]) >> (2 * j)) & 3
                if not (np.int32(w[r, o + l]) >> (4 * h + j)) & 1:
                    q -= 4
                sc = _scale_q3(w[r], o + 96, e // 16)
                out[i, 256 * b + e] = (d * np.float32(sc)) * np.float32(q)


@njit(cache=True)
def deq_q4_k(w, rows, out, q5):
    bb = 176 if q5 else 144
    qo = 48 if q5 else 16
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // bb):
            o = bb * b
            d = f16at(w[r], o)
            dmin = f16at(w[r], o + 2)
            for e in range(256):
                sub, l = e // 32, e % 32
                byte = np.int32(w[r, o + qo + 32 * (sub // 2) + l])
                q = (byte >> 4) if sub % 2 else (byte & 15)
                if q5 and (np.int32(w[r, o + 16 + l]) >> sub) & 1:
                    q += 16
                sc, mn = _scale_min_k4(w[r], o + 4, sub)
                out[i, 256 * b + e] = (d * np.float32(sc)) * np.float32(q) - dmin * np.float32(mn)


@njit(cache=True)
def deq_q6_k(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 210):
            o = 210 * b
            d = f16at(w[r], o + 208)
            for e in range(256):
                h, rem = e // 128, e % 128
                j, l = rem // 32, rem % 32          # j: which of the four 32-runs in the half
                lbyte = np.int32(w[r, o + 64 * h + l + 32 * (j % 2)])
                low = (lbyte >> 4) if j >= 2 else (lbyte & 15)
                hi = (np.int32(w[r, o + 128 + 32 * h + l]) >> (2 * j)) & 3
                q = (low | (hi << 4)) - 32
                sc = np.int8(w[r, o + 192 + 8 * h + l // 16 + 2 * j])
                out[i, 256 * b + e] = (d * np.float32(sc)) * np.float32(q)


@njit(cache=True)
def deq_iq4_xs(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 136):
            o = 136 * b
            d = f16at(w[r], o)
            sh = np.int32(w[r, o + 2]) | (np.int32(w[r, o + 3]) << 8)
            for ib in range(8):
                ls = ((np.int32(w[r, o + 4 + ib // 2]) >> (4 * (ib % 2))) & 15) | (((sh >> (2 * ib)) & 3) << 4)
                dl = d * np.float32(ls - 32)
                for j in range(16):
                    q = w[r, o + 8 + 16 * ib + j]
                    out[i, 256 * b + 32 * ib + j] = dl * _KV[q & 15]
                    out[i, 256 * b + 32 * ib + j + 16] = dl * _KV[q >> 4]
