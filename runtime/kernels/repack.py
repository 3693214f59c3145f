"""llama.cpp's repacked weights (ggml-cpu repack.cpp): the types its CPU backend re-lays out at load
time (its "extra buffer" type, when the row count is a multiple of 8: type_traits.Repack) and the
gemv / gemm arithmetic order that goes with them.

Q4_0 / IQ4_NL (block_q4_0x8 / block_iq4_nlx8, ggml_gemv/gemm_*_8x8_q8_0): per output one float chain
over the blocks,

    acc = fma(float(exact integer dot of the block), fl(d_w * d_a), acc)      (acc starts at 0)

for one token and for batches alike. repack_q4() mirrors that: 16 rows are interleaved per block
(their 16 fp16 scales, then for each 4 bytes of qs the 16 rows' copies), so one VNNI dot on a
broadcast 4-byte activation group advances the block sums of all 16 rows (one row per 32-bit lane).
Codes run unsigned (Q4_0 q, IQ4_NL kvalue + 128); the offset is removed per block with the
activation block sum. Batches share each weight unpack between 4 tokens.

Q2_K (block_q2_Kx8): only the arithmetic order is llama.cpp's; the kernel reads the plain blocks
(dot_k's super-block unpacking). Q4_K's repack is repack_k.py.

Kernels: mm_*_packed(P, qs [M, K] i8, a1, a2, out [M, N] f32); P is repack_q4's
[ceil(N/16), K/32, 288] u8 for Q4_0 / IQ4_NL, the plain [N, row_bytes] blocks for Q2_K.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.dot_k import ktok, unpack
from ggraph.runtime.kernels.ggml_common import Q2_K, Q4_0, block_bytes
from ggraph.runtime.kernels.ggml_math import fma32
from ggraph.runtime.kernels.simd.f32 import (
    ffma, ffma4, flane, fload_f16, fmul, fmul4, fsplat, fsplat4, fstore, fzero, fzero4, halves2, lane, tofloat,
)
from ggraph.runtime.kernels.simd.i32 import iadd, ihsum, ihsum4f, ilane, iload, imul, isplat
from ggraph.runtime.kernels.simd.scalar import f16at, prefetch
from ggraph.runtime.kernels.simd.u8 import band, bcast4, bshr, dot, dot_acc, load64, lut_iq4
from ggraph.runtime.kernels.tiling import PREFETCH_BYTES, ROWS_PER_TASK, token_tile

GROUPS_PER_TASK = 2     # 16-row groups per parallel task (Q4_0 / IQ4_NL)
PACKED_BLOCK = 16 * block_bytes(Q4_0)   # bytes of one block of a 16-row group


# ---- Q4_0 / IQ4_NL: 16 rows interleaved per block ------------------------------------------------

def repack_q4(raw, ne0, ne1):
    """[N, K/32 * 18] Q4_0 / IQ4_NL blocks -> [ceil(N/16), K/32, 288]: per 16-row group and block,
    the 16 fp16 scales, then for c = 0..3 the 16 rows' qs bytes 4c..4c+3 (zero rows pad the group)."""
    nb = ne0 // 32
    bb = block_bytes(Q4_0)   # = IQ4_NL's: d + 16 bytes of nibbles
    G = (ne1 + 15) // 16
    blocks = np.zeros((G * 16, nb, bb), np.uint8)
    blocks[:ne1] = raw.reshape(ne1, nb, bb)
    blocks = blocks.reshape(G, 16, nb, bb).transpose(0, 2, 1, 3)          # [G, nb, 16 rows, 18]
    out = np.empty((G, nb, PACKED_BLOCK), np.uint8)
    out[:, :, :32] = blocks[:, :, :, :2].reshape(G, nb, 32)
    qs = blocks[:, :, :, 2:].reshape(G, nb, 16, 4, 4).transpose(0, 1, 3, 2, 4)   # [G, nb, c, row, 4]
    out[:, :, 32:] = qs.reshape(G, nb, 256)
    return out


@njit(cache=True, inline="always")
def _unpack16(P, o, nl):
    """The 8 code vectors (chunks c = 0..3 low nibbles = elements 4c.., high = 16+4c..) of one
    16-row block at byte o, as unsigned bytes, and the 16 fp16 scales as float32."""
    v0, v1, v2, v3 = load64(P, o + 32), load64(P, o + 96), load64(P, o + 160), load64(P, o + 224)
    l0, l1, l2, l3 = band(v0, 15), band(v1, 15), band(v2, 15), band(v3, 15)
    h0, h1, h2, h3 = bshr(v0, 4), bshr(v1, 4), bshr(v2, 4), bshr(v3, 4)
    if nl:
        l0, l1, l2, l3 = lut_iq4(l0), lut_iq4(l1), lut_iq4(l2), lut_iq4(l3)
        h0, h1, h2, h3 = lut_iq4(h0), lut_iq4(h1), lut_iq4(h2), lut_iq4(h3)
    return l0, l1, l2, l3, h0, h1, h2, h3, fload_f16(P, o)


@njit(cache=True, error_model="numpy", inline="always")
def _tok16(l0, l1, l2, l3, h0, h1, h2, h3, dw, qs, a1, m, b, K, acc, nl):
    """acc (one output row per lane) = fma(float(block dot), d_w * d_a, acc) for token m, block b."""
    a = m * K + 32 * b
    c = isplat((-128 if nl else -8) * np.int32(a1[m, 2 * b + 1]))   # the unsigned codes' offset
    lo = dot_acc(c, l0, bcast4(qs, a))
    hi = dot_acc(isplat(0), h0, bcast4(qs, a + 16))
    lo = dot_acc(lo, l1, bcast4(qs, a + 4))
    hi = dot_acc(hi, h1, bcast4(qs, a + 20))
    lo = dot_acc(lo, l2, bcast4(qs, a + 8))
    hi = dot_acc(hi, h2, bcast4(qs, a + 24))
    lo = dot_acc(lo, l3, bcast4(qs, a + 12))
    hi = dot_acc(hi, h3, bcast4(qs, a + 28))
    return ffma(tofloat(iadd(lo, hi)), fmul(dw, fsplat(a1[m, 2 * b])), acc)


@njit(cache=True, error_model="numpy", inline="always")
def _put(out, m, g, acc):
    r0 = 16 * g
    if r0 + 16 <= out.shape[1]:
        fstore(out, 4 * (m * out.shape[1] + r0), acc)
    else:
        for i in range(out.shape[1] - r0):
            out[m, r0 + i] = flane(acc, i)


@njit(cache=True, error_model="numpy")
def _group1(P, g, qs, a1, m, out, nl):
    K = qs.shape[1]
    nb = K // 32
    acc = fzero()
    for b in range(nb):
        l0, l1, l2, l3, h0, h1, h2, h3, dw = _unpack16(P, PACKED_BLOCK * (g * nb + b), nl)
        acc = _tok16(l0, l1, l2, l3, h0, h1, h2, h3, dw, qs, a1, m, b, K, acc, nl)
    _put(out, m, g, acc)


@njit(cache=True, error_model="numpy", inline="always")
def _group4(P, g, qs, a1, m, out, nl):
    K = qs.shape[1]
    nb = K // 32
    acc0, acc1, acc2, acc3 = fzero(), fzero(), fzero(), fzero()
    for b in range(nb):
        l0, l1, l2, l3, h0, h1, h2, h3, dw = _unpack16(P, PACKED_BLOCK * (g * nb + b), nl)
        acc0 = _tok16(l0, l1, l2, l3, h0, h1, h2, h3, dw, qs, a1, m, b, K, acc0, nl)
        acc1 = _tok16(l0, l1, l2, l3, h0, h1, h2, h3, dw, qs, a1, m + 1, b, K, acc1, nl)
        acc2 = _tok16(l0, l1, l2, l3, h0, h1, h2, h3, dw, qs, a1, m + 2, b, K, acc2, nl)
        acc3 = _tok16(l0, l1, l2, l3, h0, h1, h2, h3, dw, qs, a1, m + 3, b, K, acc3, nl)
    _put(out, m, g, acc0)
    _put(out, m + 1, g, acc1)
    _put(out, m + 2, g, acc2)
    _put(out, m + 3, g, acc3)


@njit(cache=True, error_model="numpy", inline="always")
def _mm_packed(P, qs, a1, out, nl):
    G, M = P.shape[0], qs.shape[0]
    for c in prange((G + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK):
        mt = token_tile(qs.shape[1])
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for g in range(c * GROUPS_PER_TASK, min(G, (c + 1) * GROUPS_PER_TASK)):
                m = m0
                while m + 4 <= m1:
                    _group4(P, g, qs, a1, m, out, nl)
                    m += 4
                while m < m1:
                    _group1(P, g, qs, a1, m, out, nl)
                    m += 1


def _q4_kernel(nl):
    @njit(cache=True, parallel=True, error_model="numpy")
    def mm(P, qs, a1, a2, out):
        _mm_packed(P, qs, a1, out, nl)
    return mm


mm_q4_0_packed = _q4_kernel(False)    # ggml_gemv/gemm_q4_0_8x8_q8_0
mm_iq4_nl_packed = _q4_kernel(True)   # ggml_gemv/gemm_iq4_nl_8x8_q8_0


# ---- Q2_K (Q4_K: repack_k.py): llama.cpp's gemv (one token, and the last M % 4 tokens of a batch)
# keeps, per output, exact integer super-block sums and two float chains:
#   acc  = fma(float(sum_sub scale * dot),  fl(d_w * d_a),    acc)
#   accm = fma(float(sum_sub min * bsums),  fl(dmin_w * d_a), accm)          out = acc - accm
# its gemm (the other tokens, by 4) does the same per 128 elements.

@njit(cache=True, error_model="numpy")
def _rrow2(w, r0, r1, qs, ad, bs, m, out, fmt):
    """Rows r0, r1 (r1 == r0: one row) x token m, gemv order; the two rows' four float chains
    [acc0, accm0, acc1, accm1] advance together in one F32x4 (lane-wise the same fmas)."""
    bb = block_bytes(fmt)
    K = qs.shape[1]
    w0, w1 = r0 * w.shape[1], r1 * w.shape[1]
    ds = 80                              # byte offset of (d, dmin) in the block
    ahead = w0 + max(2 * w.shape[1], PREFETCH_BYTES)
    nl = (2 * bb + 63) // 64
    acc = fzero4()
    for b in range(K // 256):
        for i in range(nl):
            prefetch(w, ahead + 64 * (nl * b + i))
        o0, o1 = w0 + bb * b, w1 + bb * b
        t = m * K + 256 * b
        bo = 4 * (m * bs.shape[1] + 16 * b)
        u0, u1, u2, u3, s0, s1, s2, s3, bv = unpack(w, o0, fmt)
        p0, c0 = ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t), imul(bv, iload(bs, bo))
        u0, u1, u2, u3, s0, s1, s2, s3, bv = unpack(w, o1, fmt)
        p1, c1 = ktok(u0, u1, u2, u3, s0, s1, s2, s3, qs, t), imul(bv, iload(bs, bo))
        sc = fmul4(halves2(w, o0 + ds, o1 + ds), fsplat4(ad[m, b]))   # [d0, dmin0, d1, dmin1] * d_a
        acc = ffma4(ihsum4f(p0, c0, p1, c1), sc, acc)
    out[m, r0] = lane(acc, 0) - lane(acc, 1)
    if r1 != r0:
        out[m, r1] = lane(acc, 2) - lane(acc, 3)


@njit(cache=True, error_model="numpy", inline="always")
def _gemm_step(w, o, u0, u1, u2, u3, s0, s1, s2, s3, bv, qs, t, bs, bo, da, a, am, fmt):
    """One super-block of one token in llama.cpp's repacked Q2_K gemm (groups of 4 tokens): the
    float chains advance per 128 elements instead of per super-block."""
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
    bb = block_bytes(fmt)
    K = qs.shape[1]
    wo = r * w.shape[1]
    z = np.float32(0.0)
    a0, m0, a1, m1, a2, m2, a3, m3 = z, z, z, z, z, z, z, z
    nbs = 4 * bs.shape[1]
    for b in range(K // 256):
        o = wo + bb * b
        u0, u1, u2, u3, s0, s1, s2, s3, bv = unpack(w, o, fmt)
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
        mt = token_tile(qs.shape[1])
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


def _k_kernel(fmt):
    @njit(cache=True, parallel=True, error_model="numpy")
    def mm(w, qs, ad, bs, out):
        _mm_rep(w, qs, ad, bs, out, fmt)
    return mm


mm_q2_k_packed = _k_kernel(Q2_K)   # ggml_gemv/gemm_q2_K_8x8_q8_K (AVX512)
