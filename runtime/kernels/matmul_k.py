"""256-element super-block formats x Q8_K activations: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.

Per super-block everything up to the final scaling is exact integer math, as in ggml's vec_dot:
VNNI dots of 64 values, multiplied by the 4/6/8-bit sub-block scales as int32 lanes, one horizontal
sum per super-block, then `sumf += d_w*d_a * isum - dmin_w*d_a * sum(min * bsums)`. Weights with a
signed range run as unsigned plus an offset (Q3_K +4, Q6_K +32, IQ4_XS +128); the offset is removed
exactly with Q8_K's bsums (sums of 16 activations).

Kernels: mm_*(w [N, row_bytes] u8, qs [M, K] i8, ad [M, K/256] f32, bs [M, K/16] i32, out [M, N] f32).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.simd import (
    IQ4NL_VALUES, b8, band, bitsel, bor, bshl, bshr, cat, dot, f16at, iadd, ihsum, imul, isplat2, isplat4,
    izero, load16, load32, load64, lut_iq4, nib32, nib64, s8,
)

ROWS_PER_TASK = 16
_KV = np.array(IQ4NL_VALUES, dtype=np.float32)


@njit(cache=True, inline="always")
def _scale_min_k4(w, o, j):
    """6-bit scale and min of sub-block j from the 12 packed bytes at w[o] (Q4_K / Q5_K)."""
    if j < 4:
        return b8(w, o + j) & 63, b8(w, o + j + 4) & 63
    a, b, c = b8(w, o + j - 4), b8(w, o + j), b8(w, o + j + 4)
    return (c & 15) | ((a >> 6) << 4), (c >> 4) | ((b >> 6) << 4)


@njit(cache=True, inline="always")
def _scale_q3(w, o, g):
    """Signed 6-bit scale of 16-group g from the 12 packed bytes at w[o] (Q3_K)."""
    lo = (b8(w, o + g) & 15) if g < 8 else (b8(w, o + g - 8) >> 4)
    hi = (b8(w, o + 8 + g % 4) >> (2 * (g // 4))) & 3
    return (lo | (hi << 4)) - 32


# ---- Q4_K: d, dmin, scales[12], qs[128] (144 bytes) --------------------------------------------

@njit(cache=True, error_model="numpy", inline="always")
def _row_q4_k(w, r, qs, ad, bs, m, q5):
    bb = 176 if q5 else 144
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    sumf = np.float32(0.0)
    for b in range(ad.shape[1]):
        o = wo + bb * b
        acc = izero()
        summs = 0
        qh = load32(w, o + 16)  # Q5_K high bits (harmless bytes of qs for Q4_K)
        for c in range(4):
            s1, m1 = _scale_min_k4(w, o + 4, 2 * c)
            s2, m2 = _scale_min_k4(w, o + 4, 2 * c + 1)
            if q5:
                u = nib64(load32(w, o + 48 + 32 * c))
                u = bor(u, cat(bitsel(qh, 1 << (2 * c), 16, 0), bitsel(qh, 2 << (2 * c), 16, 0)))
            else:
                u = nib64(load32(w, o + 16 + 32 * c))
            p = dot(u, load64(qs, ao + 256 * b + 64 * c))
            acc = iadd(acc, imul(p, isplat2(s1, s2)))
            g = 16 * b + 4 * c
            summs += m1 * (bs[m, g] + bs[m, g + 1]) + m2 * (bs[m, g + 2] + bs[m, g + 3])
        da = ad[m, b]
        sumf += (f16at(w, o) * da) * np.float32(ihsum(acc)) - (f16at(w, o + 2) * da) * np.float32(summs)
    return sumf


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_k(w, qs, ad, bs, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q4_k(w, r, qs, ad, bs, m, False)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q5_k(w, qs, ad, bs, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q4_k(w, r, qs, ad, bs, m, True)


# ---- Q6_K: ql[128], qh[64], scales int8[16], d (210 bytes); q = 6 bits - 32 --------------------

@njit(cache=True, error_model="numpy", inline="always")
def _row_q6_k(w, r, qs, ad, bs, m):
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    sumf = np.float32(0.0)
    for b in range(ad.shape[1]):
        o = wo + 210 * b
        acc = izero()
        corr = 0
        for h in range(2):
            v = load64(w, o + 64 * h)
            qh = load32(w, o + 128 + 32 * h)
            ua = bor(band(v, 15), bshl(cat(band(qh, 3), band(bshr(qh, 2), 3)), 4))
            ub = bor(bshr(v, 4), bshl(cat(band(bshr(qh, 4), 3), bshr(qh, 6)), 4))
            so = o + 192 + 8 * h
            s0, s1, s2, s3 = s8(w, so), s8(w, so + 1), s8(w, so + 2), s8(w, so + 3)
            s4, s5, s6, s7 = s8(w, so + 4), s8(w, so + 5), s8(w, so + 6), s8(w, so + 7)
            pa = dot(ua, load64(qs, ao + 256 * b + 128 * h))
            pb = dot(ub, load64(qs, ao + 256 * b + 128 * h + 64))
            acc = iadd(acc, iadd(imul(pa, isplat4(s0, s1, s2, s3)), imul(pb, isplat4(s4, s5, s6, s7))))
            g = 16 * b + 8 * h
            corr += (s0 * bs[m, g] + s1 * bs[m, g + 1] + s2 * bs[m, g + 2] + s3 * bs[m, g + 3]
                     + s4 * bs[m, g + 4] + s5 * bs[m, g + 5] + s6 * bs[m, g + 6] + s7 * bs[m, g + 7])
        sumf += (f16at(w, o + 208) * ad[m, b]) * np.float32(ihsum(acc) - 32 * corr)
    return sumf


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q6_k(w, qs, ad, bs, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q6_k(w, r, qs, ad, bs, m)


# ---- Q2_K: scales[16], qs[64], d, dmin (84 bytes) and Q3_K: hmask[32], qs[64], scales[12], d ----
# Element order (both): half h uses qs[32h..32h+31]; shift 2j gives elements 128h+32j .. +31.

@njit(cache=True, error_model="numpy", inline="always")
def _row_q2_k(w, r, qs, ad, bs, m):
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    sumf = np.float32(0.0)
    for b in range(ad.shape[1]):
        o = wo + 84 * b
        acc = izero()
        summs = 0
        g0 = 16 * b
        for g in range(16):
            summs += (b8(w, o + g) >> 4) * bs[m, g0 + g]
        for h in range(2):
            qv = load32(w, o + 16 + 32 * h)
            ua = cat(band(qv, 3), band(bshr(qv, 2), 3))
            ub = cat(band(bshr(qv, 4), 3), bshr(qv, 6))
            so = o + 8 * h
            sa = isplat4(b8(w, so) & 15, b8(w, so + 1) & 15, b8(w, so + 2) & 15, b8(w, so + 3) & 15)
            sb = isplat4(b8(w, so + 4) & 15, b8(w, so + 5) & 15, b8(w, so + 6) & 15, b8(w, so + 7) & 15)
            pa = dot(ua, load64(qs, ao + 256 * b + 128 * h))
            pb = dot(ub, load64(qs, ao + 256 * b + 128 * h + 64))
            acc = iadd(acc, iadd(imul(pa, sa), imul(pb, sb)))
        da = ad[m, b]
        sumf += (da * f16at(w, o + 80)) * np.float32(ihsum(acc)) - (da * f16at(w, o + 82)) * np.float32(summs)
    return sumf


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q2_k(w, qs, ad, bs, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q2_k(w, r, qs, ad, bs, m)


@njit(cache=True, error_model="numpy", inline="always")
def _row_q3_k(w, r, qs, ad, bs, m):
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    sumf = np.float32(0.0)
    for b in range(ad.shape[1]):
        o = wo + 110 * b
        hm = load32(w, o)
        acc = izero()
        corr = 0
        g0 = 16 * b
        for h in range(2):
            qv = load32(w, o + 32 + 32 * h)
            k = 4 * h
            ua = bor(cat(band(qv, 3), band(bshr(qv, 2), 3)),
                     cat(bitsel(hm, 1 << k, 4, 0), bitsel(hm, 2 << k, 4, 0)))
            ub = bor(cat(band(bshr(qv, 4), 3), bshr(qv, 6)),
                     cat(bitsel(hm, 4 << k, 4, 0), bitsel(hm, 8 << k, 4, 0)))
            g = 8 * h
            s0, s1, s2, s3 = (_scale_q3(w, o + 96, g), _scale_q3(w, o + 96, g + 1),
                              _scale_q3(w, o + 96, g + 2), _scale_q3(w, o + 96, g + 3))
            s4, s5, s6, s7 = (_scale_q3(w, o + 96, g + 4), _scale_q3(w, o + 96, g + 5),
                              _scale_q3(w, o + 96, g + 6), _scale_q3(w, o + 96, g + 7))
            pa = dot(ua, load64(qs, ao + 256 * b + 128 * h))
            pb = dot(ub, load64(qs, ao + 256 * b + 128 * h + 64))
            acc = iadd(acc, iadd(imul(pa, isplat4(s0, s1, s2, s3)), imul(pb, isplat4(s4, s5, s6, s7))))
            corr += (s0 * bs[m, g0 + g] + s1 * bs[m, g0 + g + 1] + s2 * bs[m, g0 + g + 2]
                     + s3 * bs[m, g0 + g + 3] + s4 * bs[m, g0 + g + 4] + s5 * bs[m, g0 + g + 5]
                     + s6 * bs[m, g0 + g + 6] + s7 * bs[m, g0 + g + 7])
        sumf += (f16at(w, o + 108) * ad[m, b]) * np.float32(ihsum(acc) - 4 * corr)
    return sumf


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q3_k(w, qs, ad, bs, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_q3_k(w, r, qs, ad, bs, m)


# ---- IQ4_XS: d, scales_h u16, scales_l[4], qs[128] (136 bytes); y = d*(ls-32)*kvalues[q] --------

@njit(cache=True, error_model="numpy", inline="always")
def _row_iq4_xs(w, r, qs, ad, bs, m):
    wo = r * w.shape[1]
    ao = m * qs.shape[1]
    sumf = np.float32(0.0)
    for b in range(ad.shape[1]):
        o = wo + 136 * b
        sh = b8(w, o + 2) | (b8(w, o + 3) << 8)
        acc = izero()
        corr = 0
        g0 = 16 * b
        for p in range(4):
            sl = b8(w, o + 4 + p)
            s1 = ((sl & 15) | (((sh >> (4 * p)) & 3) << 4)) - 32
            s2 = ((sl >> 4) | (((sh >> (4 * p + 2)) & 3) << 4)) - 32
            u = lut_iq4(cat(nib32(load16(w, o + 8 + 32 * p)), nib32(load16(w, o + 24 + 32 * p))))
            pr = dot(u, load64(qs, ao + 256 * b + 64 * p))
            acc = iadd(acc, imul(pr, isplat2(s1, s2)))
            g = g0 + 4 * p
            corr += s1 * (bs[m, g] + bs[m, g + 1]) + s2 * (bs[m, g + 2] + bs[m, g + 3])
        sumf += (f16at(w, o) * ad[m, b]) * np.float32(ihsum(acc) - 128 * corr)
    return sumf


@njit(cache=True, parallel=True, error_model="numpy")
def mm_iq4_xs(w, qs, ad, bs, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
            for m in range(qs.shape[0]):
                out[m, r] = _row_iq4_xs(w, r, qs, ad, bs, m)


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
