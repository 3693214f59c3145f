"""256-element super-block formats x Q8_K activations: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.

A super-block is unpacked into 4 vectors of 64 codes, run unsigned (Q3_K +4, Q6_K +32, IQ4_XS +128),
and per-lane sub-block scales; VNNI dots times the scales give exact integers (_ktok). What follows
is the float arithmetic of the kernel llama.cpp's CPU backend (AVX512 build) runs for the type and
shape, so that results are bit-identical:

* Q4_K / Q2_K with a multiple of 8 rows: repacked at load by llama.cpp, gemv / gemm (_mm_rep);
* 8 tokens and more (otherwise): the tiled kernel (_mm_tiled);
* else ggml_vec_dot_*_q8_K per token, 8 int32 lanes per super-block (_mm_vec).

The codes' offsets are removed exactly, with Q8_K's bsums (16-sums) where llama.cpp's integers are
per sub-block and with the activations' 4-sums where they are per lane.

Kernels: mm_*(w [N, row_bytes] u8, qs [M, K] i8, ad [M, K/256] f32, bs [M, K/16] i32, out [M, N] f32).
"""
import numpy as np
from numba import njit, prange
from numba.extending import overload

from ggraph.runtime.kernels.ggml_math import fma32

from ggraph.runtime.kernels.simd import (
    IQ4NL_VALUES, b8, band, bitsel, bones, bor, bshl, bshr, cat, dot, dot_acc, f16at, ffma, fhsum8_hi, fhsum8_lo,
    flane, fsplat2, fzero, iadd, iand, ibcast2, ibcast4, ifold2, ihsum, ihsum2, ilane, iload, iload_s8, iload_u8, imul, ipairs2,
    ipairs_hi, ishr, isplat, isplat2, fmul4, fsplat4, fzero4, ffma4, halves2, ihsum4f, lane, load16, load32, load64, lut_iq4, make_scale_decoder, nib32, nib64, prefetch,
    tofloat,
)

ACT_TILE_BYTES = 16384
ROWS_PER_TASK = 16
PREFETCH_BYTES = 8192   # row-pair kernels prefetch the rows at least this far ahead
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
# math (_ktok), then the format's offset / min terms and llama.cpp's float steps (below). Batches
# run 4 tokens per unpack.

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


# IQ4_XS: d, scales_h u16, scales_l[4], qs[128] (136 bytes); y = d*(ls-32)*kvalues[q]

@njit(cache=True, inline="always")
def _iq4_pair(w, o, p):
    return lut_iq4(cat(nib32(load16(w, o + 8 + 32 * p)), nib32(load16(w, o + 24 + 32 * p))))


@njit(cache=True, inline="always")
def _unpack_iq4xs(w, o):
    scv = _IQ4XS_SCALES(w, o)
    return (_iq4_pair(w, o, 0), _iq4_pair(w, o, 1), _iq4_pair(w, o, 2), _iq4_pair(w, o, 3),
            ibcast2(scv, 0, 1), ibcast2(scv, 2, 3), ibcast2(scv, 4, 5), ibcast2(scv, 6, 7), scv)


# ---- `fmt` picks the format at compile time ----------------------------------------------------
Q2K, Q3K, Q4K, Q5K, Q6K, IQ4XS = 0, 1, 2, 3, 4, 5


_BLOCK_BYTES = {Q2K: 84, Q3K: 110, Q4K: 144, Q5K: 176, Q6K: 210, IQ4XS: 136}


def _block_bytes(fmt):
    pass


def _unpack(w, o, fmt):
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


# ---- Q4_K / Q2_K with a multiple of 8 rows: llama.cpp repacks them (block_q4_Kx8 / block_q2_Kx8) and
# its gemv (one token, and the last M % 4 tokens of a batch) keeps, per output, exact integer
# super-block sums and two float chains:
#   acc  = fma(float(sum_sub scale * dot),  fl(d_w * d_a),    acc)
#   accm = fma(float(sum_sub min * bsums),  fl(dmin_w * d_a), accm)          out = acc - accm
# its gemm (the other tokens, by 4) does the same per 64 (Q4_K) / 128 (Q2_K) elements.

@njit(cache=True, inline="always")
def _rep_mins(bv, bs, bo, fmt):
    if fmt == Q4K:
        return imul(bv, ipairs_hi(iload(bs, bo)))
    return imul(bv, iload(bs, bo))


@njit(cache=True, error_model="numpy", inline="always")
def _rrow2(w, r0, r1, qs, ad, bs, m, out, fmt):
    """Rows r0, r1 (r1 == r0: one row) x token m, gemv order; the two rows' four float chains
    [acc0, accm0, acc1, accm1] advance together in one F32x4 (lane-wise the same fmas)."""
    bb = _block_bytes(fmt)
    K = qs.shape[1]
    w0, w1 = r0 * w.shape[1], r1 * w.shape[1]
    ds = 0 if fmt == Q4K else 80        # byte offset of (d, dmin) in the block
    ahead = w0 + max(2 * w.shape[1], PREFETCH_BYTES)
    nl = (2 * bb + 63) // 64
    acc = fzero4()
    for b in range(K // 256):
        for i in range(nl):
            prefetch(w, ahead + 64 * (nl * b + i))
        o0, o1 = w0 + bb * b, w1 + bb * b
        t = m * K + 256 * b
        bo = 4 * (m * bs.shape[1] + 16 * b)
        u0, u1, u2, u3, s0, s1, s2, s3, bv = _unpack(w, o0, fmt)
        p0, c0 = _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t), _rep_mins(bv, bs, bo, fmt)
        u0, u1, u2, u3, s0, s1, s2, s3, bv = _unpack(w, o1, fmt)
        p1, c1 = _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t), _rep_mins(bv, bs, bo, fmt)
        sc = fmul4(halves2(w, o0 + ds, o1 + ds), fsplat4(ad[m, b]))   # [d0, dmin0, d1, dmin1] * d_a
        acc = ffma4(ihsum4f(p0, c0, p1, c1), sc, acc)
    out[m, r0] = lane(acc, 0) - lane(acc, 1)
    if r1 != r0:
        out[m, r1] = lane(acc, 2) - lane(acc, 3)


@njit(cache=True, error_model="numpy", inline="always")
def _gemm_step(w, o, u0, u1, u2, u3, s0, s1, s2, s3, bv, qs, t, bs, bo, da, a, am, fmt):
    """One super-block of one token in llama.cpp's repacked gemm (groups of 4 tokens): the float
    chains advance per 64 elements (Q4_K) / 128 elements (Q2_K) instead of per super-block."""
    if fmt == Q4K:
        mins = imul(bv, ipairs_hi(iload(bs, bo)))   # lanes 8 + j: min_j x (sum of sub-block j)
        dd, dm = f16at(w, o) * da, f16at(w, o + 2) * da
        a = fma32(np.float32(ihsum(imul(dot(u0, load64(qs, t)), s0))), dd, a)
        am = fma32(np.float32(ilane(mins, 8) + ilane(mins, 9)), dm, am)
        a = fma32(np.float32(ihsum(imul(dot(u1, load64(qs, t + 64)), s1))), dd, a)
        am = fma32(np.float32(ilane(mins, 10) + ilane(mins, 11)), dm, am)
        a = fma32(np.float32(ihsum(imul(dot(u2, load64(qs, t + 128)), s2))), dd, a)
        am = fma32(np.float32(ilane(mins, 12) + ilane(mins, 13)), dm, am)
        a = fma32(np.float32(ihsum(imul(dot(u3, load64(qs, t + 192)), s3))), dd, a)
        am = fma32(np.float32(ilane(mins, 14) + ilane(mins, 15)), dm, am)
        return a, am
    mins = imul(bv, iload(bs, bo))                  # lane g: min_g x (sum of 16-group g)
    dd, dm = f16at(w, o + 80) * da, f16at(w, o + 82) * da
    h0 = iadd(imul(dot(u0, load64(qs, t)), s0), imul(dot(u1, load64(qs, t + 64)), s1))
    h1 = iadd(imul(dot(u2, load64(qs, t + 128)), s2), imul(dot(u3, load64(qs, t + 192)), s3))
    lo = 0
    hi = 0
    for g in range(8):
        lo += ilane(mins, g)
        hi += ilane(mins, 8 + g)
    a = fma32(np.float32(ihsum(h0)), dd, a)
    am = fma32(np.float32(lo), dm, am)
    a = fma32(np.float32(ihsum(h1)), dd, a)
    am = fma32(np.float32(hi), dm, am)
    return a, am


@njit(cache=True, error_model="numpy", inline="always")
def _rrow4(w, r, qs, ad, bs, m, out, fmt):
    bb = _block_bytes(fmt)
    K = qs.shape[1]
    wo = r * w.shape[1]
    z = np.float32(0.0)
    a0, m0, a1, m1, a2, m2, a3, m3 = z, z, z, z, z, z, z, z
    nbs = 4 * bs.shape[1]
    for b in range(K // 256):
        o = wo + bb * b
        u0, u1, u2, u3, s0, s1, s2, s3, bv = _unpack(w, o, fmt)
        t = m * K + 256 * b
        bo = 4 * (m * bs.shape[1] + 16 * b)
        a0, m0 = _gemm_step(w, o, u0, u1, u2, u3, s0, s1, s2, s3, bv, qs, t, bs, bo, ad[m, b], a0, m0, fmt)
        a1, m1 = _gemm_step(w, o, u0, u1, u2, u3, s0, s1, s2, s3, bv, qs, t + K, bs, bo + nbs, ad[m + 1, b],
                            a1, m1, fmt)
        a2, m2 = _gemm_step(w, o, u0, u1, u2, u3, s0, s1, s2, s3, bv, qs, t + 2 * K, bs, bo + 2 * nbs,
                            ad[m + 2, b], a2, m2, fmt)
        a3, m3 = _gemm_step(w, o, u0, u1, u2, u3, s0, s1, s2, s3, bv, qs, t + 3 * K, bs, bo + 3 * nbs,
                            ad[m + 3, b], a3, m3, fmt)
    out[m, r] = a0 - m0
    out[m + 1, r] = a1 - m1
    out[m + 2, r] = a2 - m2
    out[m + 3, r] = a3 - m3


@njit(cache=True, error_model="numpy", inline="always")
def _mm_rep(w, qs, ad, bs, out, fmt):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)   # tokens whose activations stay in L1
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            r_end = min(N, (c + 1) * ROWS_PER_TASK)
            for r in range(c * ROWS_PER_TASK, r_end):
                m = m0
                while m + 4 <= m1:
                    _rrow4(w, r, qs, ad, bs, m, out, fmt)
                    m += 4
            m = m0 + (m1 - m0) // 4 * 4
            while m < m1:   # gemv tokens: two rows at a time
                for r in range(c * ROWS_PER_TASK, r_end, 2):
                    _rrow2(w, r, min(r + 1, r_end - 1), qs, ad, bs, m, out, fmt)
                m += 1


# ---- llama.cpp's tiled K-quant kernel (tiled/, >= 8 tokens, matrices not repacked): per output and
# super-block the exact integers S1 = sum_sub scale * (signed codes . activations) and (formats with
# mins) S2 = sum_sub min * bsums, then
#   r = fl(float(S1) * d_w);  r = fma(-dmin_w, float(S2), r);  out = fma(r, d_a, out)
# (GCC contracts the accumulation into the output tile; the tile starts at 0).

@njit(cache=True, inline="always")
def _kint(w, o, acc, bv, bs, bo, fmt):
    """(S1, S2, d_w, dmin_w) of one super-block from _ktok's lanes (codes run unsigned: the offset
    is removed here with the activation bsums, exactly)."""
    z = np.float32(0.0)
    if fmt == Q2K:
        return ihsum(acc), ihsum(imul(bv, iload(bs, bo))), f16at(w, o + 80), f16at(w, o + 82)
    if fmt == Q3K:
        return ihsum(iadd(acc, imul(imul(bv, iload(bs, bo)), isplat2(-4, -4)))), 0, f16at(w, o + 108), z
    if fmt == Q4K or fmt == Q5K:
        return ihsum(acc), ihsum(imul(bv, ipairs_hi(iload(bs, bo)))), f16at(w, o), f16at(w, o + 2)
    if fmt == Q6K:
        return ihsum(iadd(acc, imul(imul(bv, iload(bs, bo)), isplat2(-32, -32)))), 0, f16at(w, o + 208), z
    return ihsum(iadd(acc, imul(imul(bv, ipairs_hi(iload(bs, bo))), isplat2(-128, -128)))), 0, f16at(w, o), z


@njit(cache=True, error_model="numpy", inline="always")
def _tiled_step(w, o, acc, bv, bs, bo, da, y, fmt):
    s1, s2, dw, dmin = _kint(w, o, acc, bv, bs, bo, fmt)
    r = np.float32(s1) * dw
    if fmt == Q2K or fmt == Q4K or fmt == Q5K:
        r = fma32(-dmin, np.float32(s2), r)
    return fma32(r, da, y)


@njit(cache=True, error_model="numpy", inline="always")
def _trow4(w, r, qs, ad, bs, m, out, fmt):
    bb = _block_bytes(fmt)
    K = qs.shape[1]
    wo = r * w.shape[1]
    z = np.float32(0.0)
    y0, y1, y2, y3 = z, z, z, z
    nbs = 4 * bs.shape[1]
    for b in range(K // 256):
        o = wo + bb * b
        u0, u1, u2, u3, s0, s1, s2, s3, bv = _unpack(w, o, fmt)
        t = m * K + 256 * b
        bo = 4 * (m * bs.shape[1] + 16 * b)
        y0 = _tiled_step(w, o, _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t), bv, bs, bo, ad[m, b], y0, fmt)
        y1 = _tiled_step(w, o, _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t + K), bv, bs, bo + nbs,
                         ad[m + 1, b], y1, fmt)
        y2 = _tiled_step(w, o, _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t + 2 * K), bv, bs, bo + 2 * nbs,
                         ad[m + 2, b], y2, fmt)
        y3 = _tiled_step(w, o, _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t + 3 * K), bv, bs, bo + 3 * nbs,
                         ad[m + 3, b], y3, fmt)
    out[m, r] = y0
    out[m + 1, r] = y1
    out[m + 2, r] = y2
    out[m + 3, r] = y3


@njit(cache=True, error_model="numpy", inline="always")
def _trow(w, r, qs, ad, bs, m, out, fmt):
    bb = _block_bytes(fmt)
    K = qs.shape[1]
    wo = r * w.shape[1]
    y = np.float32(0.0)
    for b in range(K // 256):
        o = wo + bb * b
        u0, u1, u2, u3, s0, s1, s2, s3, bv = _unpack(w, o, fmt)
        acc = _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, m * K + 256 * b)
        y = _tiled_step(w, o, acc, bv, bs, 4 * (m * bs.shape[1] + 16 * b), ad[m, b], y, fmt)
    out[m, r] = y


@njit(cache=True, error_model="numpy", inline="always")
def _mm_tiled(w, qs, ad, bs, out, fmt):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)   # tokens whose activations stay in L1
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for r in range(c * ROWS_PER_TASK, min(N, (c + 1) * ROWS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _trow4(w, r, qs, ad, bs, m, out, fmt)
                    m += 4
                while m < m1:
                    _trow(w, r, qs, ad, bs, m, out, fmt)
                    m += 1


# ---- ggml_vec_dot_{q2,q4,q5,q6}_K_q8_K (AVX2 code of the AVX512 build): 8 int32 lanes per
# super-block, lane i = sum over the 8 runs of 32 elements of scale x (codes . activations at
# 4i..4i+3), then per format:
#   Q6_K  lane i -= 32 x (bsums[2i] x sc[2i] + bsums[2i+1] x sc[2i+1])          (codes unsigned 0..63)
#   Q2_K  acc = fma(-fl(d_a * dmin_w), float(min . bsums pairs), acc) first    (8 lanes)
#   all   acc_i = fma(fl(d_a * d_w), float(lane i), acc_i)
#   Q4_K  acc_m (4 lanes) = fma(-fl(d_a * dmin_w), float(mins . 32-sums pairs), acc_m)
#   Q5_K  summs = fma(float(sum of mins . 32-sums), -fl(d_a * dmin_w), summs)
#   out = hsum_float_8(acc) [+ (m0 + m2) + (m1 + m3) | + summs]
# Two rows per 16-lane vector (lanes 0-7 row r, 8-15 row r+1); the 16 lanes of _ktok fold into
# llama.cpp's 8 (lane i + lane i+8: the two 32-runs of a 64-element chunk).

@njit(cache=True, inline="always")
def _vec_lanes(w, o, qs, t, bs, bo, g0, g1, g2, g3, fmt):
    """(16 lanes of scaled 4-sums, a per-format mins / correction vector) of one super-block.
    Q3_K / IQ4_XS: the codes' offset is removed per lane with g0..g3 (offset x 4-sums of the
    activations), as llama.cpp's lanes hold signed products."""
    u0, u1, u2, u3, s0, s1, s2, s3, bv = _unpack(w, o, fmt)
    if fmt == Q3K or fmt == IQ4XS:
        p = iadd(iadd(imul(dot_acc(g0, u0, load64(qs, t)), s0), imul(dot_acc(g1, u1, load64(qs, t + 64)), s1)),
                 iadd(imul(dot_acc(g2, u2, load64(qs, t + 128)), s2), imul(dot_acc(g3, u3, load64(qs, t + 192)), s3)))
        return p, p
    p = _ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t)
    if fmt == Q4K or fmt == Q5K:
        return p, imul(bv, ipairs_hi(iload(bs, bo)))    # lanes 8 + j: min_j x 32-sum_j
    return p, imul(bv, iload(bs, bo))                   # lane g: scale_g (Q6_K) / min_g (Q2_K) x 16-sum_g


@njit(cache=True, inline="always")
def _offsets(qs, t, fmt):
    """Per-lane corrections of the unsigned codes (Q3_K q + 4, IQ4_XS kvalue + 128): -offset x the
    4-sums of the super-block's activations (zeros for the other formats, unused)."""
    if fmt == Q3K or fmt == IQ4XS:
        k = isplat(-4 if fmt == Q3K else -128)
        one = bones()
        return (imul(dot(one, load64(qs, t)), k), imul(dot(one, load64(qs, t + 64)), k),
                imul(dot(one, load64(qs, t + 128)), k), imul(dot(one, load64(qs, t + 192)), k))
    z = isplat(0)
    return z, z, z, z


@njit(cache=True, error_model="numpy", inline="always")
def _fsum4(v, base):
    return (flane(v, base) + flane(v, base + 2)) + (flane(v, base + 1) + flane(v, base + 3))


@njit(cache=True, error_model="numpy", inline="always")
def _vec_pair(w, r0, r1, qs, ad, bs, m, out, fmt):
    K = qs.shape[1]
    bb = _block_bytes(fmt)
    w0, w1 = r0 * w.shape[1], r1 * w.shape[1]
    ahead = w0 + max(2 * w.shape[1], PREFETCH_BYTES)
    nl = (2 * bb + 63) // 64
    acc, acc_m = fzero(), fzero()
    sm0, sm1 = np.float32(0.0), np.float32(0.0)
    for b in range(K // 256):
        for i in range(nl):   # the rows ahead, as many lines per super-block as the two rows use
            prefetch(w, ahead + 64 * (nl * b + i))
        o0, o1 = w0 + bb * b, w1 + bb * b
        t = m * K + 256 * b
        bo = 4 * (m * bs.shape[1] + 16 * b)
        g0, g1, g2, g3 = _offsets(qs, t, fmt)
        p0, c0 = _vec_lanes(w, o0, qs, t, bs, bo, g0, g1, g2, g3, fmt)
        p1, c1 = _vec_lanes(w, o1, qs, t, bs, bo, g0, g1, g2, g3, fmt)
        lanes = ifold2(p0, p1)
        da = ad[m, b]
        if fmt == Q6K:
            lanes = iadd(lanes, imul(ipairs2(c0, c1), isplat2(-32, -32)))
            dd = fsplat2(da * f16at(w, o0 + 208), da * f16at(w, o1 + 208))
        elif fmt == Q3K:
            dd = fsplat2(da * f16at(w, o0 + 108), da * f16at(w, o1 + 108))
        elif fmt == IQ4XS:
            dd = fsplat2(f16at(w, o0) * da, f16at(w, o1) * da)
        elif fmt == Q2K:
            acc = ffma(fsplat2(-da * f16at(w, o0 + 82), -da * f16at(w, o1 + 82)), tofloat(ipairs2(c0, c1)), acc)
            dd = fsplat2(da * f16at(w, o0 + 80), da * f16at(w, o1 + 80))
        else:
            dd = fsplat2(da * f16at(w, o0), da * f16at(w, o1))
            dm0, dm1 = -da * f16at(w, o0 + 2), -da * f16at(w, o1 + 2)
            if fmt == Q4K:   # lanes 4-7 / 12-15: the 4 min pairs of each row (other lanes 0)
                acc_m = ffma(fsplat2(dm0, dm1), tofloat(ipairs2(c0, c1)), acc_m)
            else:
                v = ihsum2(c0, c1)
                sm0 = fma32(np.float32(ilane(v, 0)), dm0, sm0)
                sm1 = fma32(np.float32(ilane(v, 8)), dm1, sm1)
        acc = ffma(dd, tofloat(lanes), acc)
    if fmt == Q4K:
        sm0, sm1 = _fsum4(acc_m, 4), _fsum4(acc_m, 12)
    if fmt == Q4K or fmt == Q5K:
        out[m, r0] = fhsum8_lo(acc) + sm0
        if r1 != r0:
            out[m, r1] = fhsum8_hi(acc) + sm1
    else:
        out[m, r0] = fhsum8_lo(acc)
        if r1 != r0:
            out[m, r1] = fhsum8_hi(acc)


@njit(cache=True, error_model="numpy", inline="always")
def _mm_vec(w, qs, ad, bs, out, fmt):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        r_end = min(N, (c + 1) * ROWS_PER_TASK)
        for m in range(M):
            for r in range(c * ROWS_PER_TASK, r_end, 2):
                _vec_pair(w, r, min(r + 1, r_end - 1), qs, ad, bs, m, out, fmt)


# One parallel kernel per format so `fmt` is a compile-time constant.
@njit(cache=True, parallel=True, error_model="numpy")
def mm_q2_k(w, qs, ad, bs, out):
    if w.shape[0] % 8 == 0:   # repacked by llama.cpp (AVX512)
        _mm_rep(w, qs, ad, bs, out, Q2K)
    elif qs.shape[0] >= 8:   # llama.cpp's tiled kernel
        _mm_tiled(w, qs, ad, bs, out, Q2K)
    else:                    # its vec_dot per token
        _mm_vec(w, qs, ad, bs, out, Q2K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q3_k(w, qs, ad, bs, out):
    if qs.shape[0] >= 8:   # llama.cpp's tiled kernel
        _mm_tiled(w, qs, ad, bs, out, Q3K)
    else:                  # its vec_dot per token
        _mm_vec(w, qs, ad, bs, out, Q3K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_k(w, qs, ad, bs, out):
    if w.shape[0] % 8 == 0:   # repacked by llama.cpp (AVX2 and up)
        _mm_rep(w, qs, ad, bs, out, Q4K)
    elif qs.shape[0] >= 8:   # llama.cpp's tiled kernel
        _mm_tiled(w, qs, ad, bs, out, Q4K)
    else:                    # its vec_dot per token
        _mm_vec(w, qs, ad, bs, out, Q4K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q5_k(w, qs, ad, bs, out):
    if qs.shape[0] >= 8:   # llama.cpp's tiled kernel
        _mm_tiled(w, qs, ad, bs, out, Q5K)
    else:                  # its vec_dot per token
        _mm_vec(w, qs, ad, bs, out, Q5K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q6_k(w, qs, ad, bs, out):
    if qs.shape[0] < 8:   # llama.cpp: vec_dot per token (>= 8 tokens: its tiled kernel)
        _mm_vec(w, qs, ad, bs, out, Q6K)
    else:
        _mm_tiled(w, qs, ad, bs, out, Q6K)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_iq4_xs(w, qs, ad, bs, out):
    if qs.shape[0] >= 8:   # llama.cpp's tiled kernel
        _mm_tiled(w, qs, ad, bs, out, IQ4XS)
    else:                  # its vec_dot per token
        _mm_vec(w, qs, ad, bs, out, IQ4XS)


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
