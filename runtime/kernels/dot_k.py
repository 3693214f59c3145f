"""256-element super-block formats x Q8_K activations: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.

A super-block is unpacked into 4 vectors of 64 codes, run unsigned (Q3_K +4, Q6_K +32, IQ4_XS +128),
and per-lane sub-block scales; VNNI dots times the scales give exact integers (ktok). What follows
is the float arithmetic of the kernel llama.cpp's CPU backend (AVX512 build) runs for the type and
shape, so that results are bit-identical:

* 8 tokens and more: the tiled kernel (_mm_tiled);
* else ggml_vec_dot_*_q8_K per token, 8 int32 lanes per super-block (_mm_vec);
* Q4_K / Q2_K with a multiple of 8 rows are repacked at load by llama.cpp and take its gemv / gemm
  order instead (repack.py, which shares this module's super-block unpacking).

The codes' offsets are removed exactly, with Q8_K's bsums (16-sums) where llama.cpp's integers are
per sub-block and with the activations' 4-sums where they are per lane.

Kernels: mm_*(w [N, row_bytes] u8, qs [M, K] i8, ad [M, K/256] f32, bs [M, K/16] i32, out [M, N] f32).
"""
import numpy as np
from numba import njit, prange
from numba.extending import overload

from ggraph.runtime.kernels.ggml_common import IQ4_XS, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, block_bytes
from ggraph.runtime.kernels.ggml_math import fma32
from ggraph.runtime.kernels.simd.f32 import ffma, fhsum8_hi, fhsum8_lo, flane, fsplat2, fzero, tofloat
from ggraph.runtime.kernels.simd.i32 import (
    iadd, iand, ibcast2, ibcast4, ifold2, ihsum, ihsum2, ilane, iload, iload_s8, iload_u8, imul, ipairs2, ipairs_hi,
    ishr, isplat, isplat2, make_scale_decoder,
)
from ggraph.runtime.kernels.simd.scalar import f16at, prefetch
from ggraph.runtime.kernels.simd.u8 import (
    band, bitsel, bones, bor, bshl, bshr, cat, dot, dot_acc, load16, load32, load64, lut_iq4, nib32, nib64,
)
from ggraph.runtime.kernels.tiling import PREFETCH_BYTES, ROWS_PER_TASK, token_tile


# Sub-block scales are unpacked as vectors (one load + a few lane ops per super-block) and broadcast
# to the dot lanes with constant shuffles (dequant.py decodes them one by one).

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


# ---- shared super-block steps ------------------------------------------------------------------
# A super-block is unpacked once into 4 vectors of 64 unsigned codes (u0-u3, in activation order)
# and their per-lane integer scales (s0-s3); each token then needs 4 VNNI dots and exact int32 lane
# math (ktok), then the format's offset / min terms and llama.cpp's float steps (below). Batches
# run 4 tokens per unpack.

@njit(cache=True, inline="always")
def ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, a):
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


# ---- `fmt` (a ggml type id) picks the format at compile time -------------------------------------

def unpack(w, o, fmt):
    """A super-block at byte o: (u0, u1, u2, u3 codes, s0..s3 their per-lane scales, the format's
    scale / min vector)."""


# Resolved at typing time from the literal `fmt`, so each kernel compiles only its own format
# (if-chains on fmt made numba type and inline all six formats: ~10 s per kernel).
@overload(unpack, inline="always", prefer_literal=True)
def _ov_unpack(w, o, fmt):
    f = fmt.literal_value
    if f in (Q4_K, Q5_K):
        q5 = f == Q5_K
        return lambda w, o, fmt: _unpack_q45(w, o, q5)
    impl = {Q2_K: _unpack_q2, Q3_K: _unpack_q3, Q6_K: _unpack_q6, IQ4_XS: _unpack_iq4xs}[f]
    return lambda w, o, fmt: impl(w, o)


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
    if fmt == Q2_K:
        return ihsum(acc), ihsum(imul(bv, iload(bs, bo))), f16at(w, o + 80), f16at(w, o + 82)
    if fmt == Q3_K:
        return ihsum(iadd(acc, imul(imul(bv, iload(bs, bo)), isplat2(-4, -4)))), 0, f16at(w, o + 108), z
    if fmt == Q4_K or fmt == Q5_K:
        return ihsum(acc), ihsum(imul(bv, ipairs_hi(iload(bs, bo)))), f16at(w, o), f16at(w, o + 2)
    if fmt == Q6_K:
        return ihsum(iadd(acc, imul(imul(bv, iload(bs, bo)), isplat2(-32, -32)))), 0, f16at(w, o + 208), z
    return ihsum(iadd(acc, imul(imul(bv, ipairs_hi(iload(bs, bo))), isplat2(-128, -128)))), 0, f16at(w, o), z


@njit(cache=True, error_model="numpy", inline="always")
def _tiled_step(w, o, acc, bv, bs, bo, da, y, fmt):
    s1, s2, dw, dmin = _kint(w, o, acc, bv, bs, bo, fmt)
    r = np.float32(s1) * dw
    if fmt == Q2_K or fmt == Q4_K or fmt == Q5_K:
        r = fma32(-dmin, np.float32(s2), r)
    return fma32(r, da, y)


@njit(cache=True, error_model="numpy", inline="always")
def _trow4(w, r, qs, ad, bs, m, out, fmt):
    bb = block_bytes(fmt)
    K = qs.shape[1]
    wo = r * w.shape[1]
    z = np.float32(0.0)
    y0, y1, y2, y3 = z, z, z, z
    nbs = 4 * bs.shape[1]
    for b in range(K // 256):
        o = wo + bb * b
        u0, u1, u2, u3, s0, s1, s2, s3, bv = unpack(w, o, fmt)
        t = m * K + 256 * b
        bo = 4 * (m * bs.shape[1] + 16 * b)
        y0 = _tiled_step(w, o, ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t), bv, bs, bo, ad[m, b], y0, fmt)
        y1 = _tiled_step(w, o, ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t + K), bv, bs, bo + nbs,
                         ad[m + 1, b], y1, fmt)
        y2 = _tiled_step(w, o, ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t + 2 * K), bv, bs, bo + 2 * nbs,
                         ad[m + 2, b], y2, fmt)
        y3 = _tiled_step(w, o, ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t + 3 * K), bv, bs, bo + 3 * nbs,
                         ad[m + 3, b], y3, fmt)
    out[m, r] = y0
    out[m + 1, r] = y1
    out[m + 2, r] = y2
    out[m + 3, r] = y3


@njit(cache=True, error_model="numpy")
def _trow(w, r, qs, ad, bs, m, out, fmt):
    bb = block_bytes(fmt)
    K = qs.shape[1]
    wo = r * w.shape[1]
    y = np.float32(0.0)
    for b in range(K // 256):
        o = wo + bb * b
        u0, u1, u2, u3, s0, s1, s2, s3, bv = unpack(w, o, fmt)
        acc = ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, m * K + 256 * b)
        y = _tiled_step(w, o, acc, bv, bs, 4 * (m * bs.shape[1] + 16 * b), ad[m, b], y, fmt)
    out[m, r] = y


@njit(cache=True, error_model="numpy", inline="always")
def _mm_tiled(w, qs, ad, bs, out, fmt):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = token_tile(qs.shape[1])
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
    u0, u1, u2, u3, s0, s1, s2, s3, bv = unpack(w, o, fmt)
    if fmt == Q3_K or fmt == IQ4_XS:
        p = iadd(iadd(imul(dot_acc(g0, u0, load64(qs, t)), s0), imul(dot_acc(g1, u1, load64(qs, t + 64)), s1)),
                 iadd(imul(dot_acc(g2, u2, load64(qs, t + 128)), s2), imul(dot_acc(g3, u3, load64(qs, t + 192)), s3)))
        return p, p
    p = ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t)
    if fmt == Q4_K or fmt == Q5_K:
        return p, imul(bv, ipairs_hi(iload(bs, bo)))    # lanes 8 + j: min_j x 32-sum_j
    return p, imul(bv, iload(bs, bo))                   # lane g: scale_g (Q6_K) / min_g (Q2_K) x 16-sum_g


@njit(cache=True, inline="always")
def _offsets(qs, t, fmt):
    """Per-lane corrections of the unsigned codes (Q3_K q + 4, IQ4_XS kvalue + 128): -offset x the
    4-sums of the super-block's activations (zeros for the other formats, unused)."""
    if fmt == Q3_K or fmt == IQ4_XS:
        k = isplat(-4 if fmt == Q3_K else -128)
        one = bones()
        return (imul(dot(one, load64(qs, t)), k), imul(dot(one, load64(qs, t + 64)), k),
                imul(dot(one, load64(qs, t + 128)), k), imul(dot(one, load64(qs, t + 192)), k))
    z = isplat(0)
    return z, z, z, z


@njit(cache=True, error_model="numpy", inline="always")
def _fsum4(v, base):
    return (flane(v, base) + flane(v, base + 2)) + (flane(v, base + 1) + flane(v, base + 3))


@njit(cache=True, error_model="numpy")
def _vec_pair(w, r0, r1, qs, ad, bs, m, out, fmt):
    K = qs.shape[1]
    bb = block_bytes(fmt)
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
        if fmt == Q6_K:
            lanes = iadd(lanes, imul(ipairs2(c0, c1), isplat2(-32, -32)))
            dd = fsplat2(da * f16at(w, o0 + 208), da * f16at(w, o1 + 208))
        elif fmt == Q3_K:
            dd = fsplat2(da * f16at(w, o0 + 108), da * f16at(w, o1 + 108))
        elif fmt == IQ4_XS:
            dd = fsplat2(f16at(w, o0) * da, f16at(w, o1) * da)
        elif fmt == Q2_K:
            acc = ffma(fsplat2(-da * f16at(w, o0 + 82), -da * f16at(w, o1 + 82)), tofloat(ipairs2(c0, c1)), acc)
            dd = fsplat2(da * f16at(w, o0 + 80), da * f16at(w, o1 + 80))
        else:
            dd = fsplat2(da * f16at(w, o0), da * f16at(w, o1))
            dm0, dm1 = -da * f16at(w, o0 + 2), -da * f16at(w, o1 + 2)
            if fmt == Q4_K:   # lanes 4-7 / 12-15: the 4 min pairs of each row (other lanes 0)
                acc_m = ffma(fsplat2(dm0, dm1), tofloat(ipairs2(c0, c1)), acc_m)
            else:
                v = ihsum2(c0, c1)
                sm0 = fma32(np.float32(ilane(v, 0)), dm0, sm0)
                sm1 = fma32(np.float32(ilane(v, 8)), dm1, sm1)
        acc = ffma(dd, tofloat(lanes), acc)
    if fmt == Q4_K:
        sm0, sm1 = _fsum4(acc_m, 4), _fsum4(acc_m, 12)
    if fmt == Q4_K or fmt == Q5_K:
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


def _kernel(fmt):
    """The parallel kernel of one format (fmt a compile-time constant in it)."""
    @njit(cache=True, parallel=True, error_model="numpy")
    def mm(w, qs, ad, bs, out):
        if qs.shape[0] >= 8:   # llama.cpp's tiled kernel
            _mm_tiled(w, qs, ad, bs, out, fmt)
        else:                  # its vec_dot per token
            _mm_vec(w, qs, ad, bs, out, fmt)
    return mm


mm_q2_k = _kernel(Q2_K)
mm_q3_k = _kernel(Q3_K)
mm_q4_k = _kernel(Q4_K)
mm_q5_k = _kernel(Q5_K)
mm_q6_k = _kernel(Q6_K)
mm_iq4_xs = _kernel(IQ4_XS)
