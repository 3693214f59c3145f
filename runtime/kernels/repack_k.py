"""Q4_K repacked as llama.cpp's CPU backend does at load time (block_q4_Kx8), 16 rows per group here.

llama.cpp's gemv (one token, and the last M % 4 tokens of a batch) keeps per output exact integer
super-block sums and two float chains,

    acc  = fma(float(sum_j scale_j * dot_j),   fl(d_w * d_a),    acc)        j = 8 sub-blocks of 32
    accm = fma(float(sum_j min_j * bsum_j),    fl(dmin_w * d_a), accm)       out = acc - accm

and its gemm (the other tokens, 4 at a time) the same per 64 elements (sub-blocks 2c, 2c+1) instead
of per super-block. Reading plain blocks, every one of those sums is a horizontal add; here 16 rows
are interleaved so that one output row sits in each 32-bit lane and the sums come out of the VNNI
dots directly (as repack.py does for Q4_0).

Packed super-block of a 16-row group (repack_q4_k; zero rows pad the last group), 2368 bytes:
  0   d[16] fp16          32  dmin[16] fp16
  64  scales[8][16] u8    192 mins[8][16] u8            (6-bit values, decoded at load)
  320 codes: for chunk c = 0..3, for i = 0..7: the 16 rows' qs bytes 32c+4i..32c+4i+3 (64 bytes);
      low nibbles = sub-block 2c elements 4i..4i+3, high nibbles = sub-block 2c+1 elements 4i..4i+3

Kernel: mm_q4_k_packed(P [G, K/256, 2368] u8, qs [M, K] i8, ad [M, K/256] f32, bs [M, K/16] i32, out).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.ggml_common import Q4_K, block_bytes
from ggraph.runtime.kernels.repack import _put
from ggraph.runtime.kernels.simd.f32 import ffma, fload_f16, fmul, fsplat, fsub, fzero, tofloat
from ggraph.runtime.kernels.simd.i32 import iadd, iload_u8, imul, isplat
from ggraph.runtime.kernels.simd.u8 import band, bcast4, bshr, dot_acc, load64
from ggraph.runtime.kernels.tiling import token_tile

GROUP = 16
PACKED = 320 + 2048          # bytes of one super-block of a 16-row group
GROUPS_PER_TASK = 2


def _scales_mins(sc):
    """[..., 12] packed 6-bit scales -> (scales [..., 8], mins [..., 8]) (ggml's get_scale_min_k4)."""
    sc = sc.astype(np.uint8)
    s = np.empty(sc.shape[:-1] + (8,), np.uint8)
    m = np.empty_like(s)
    s[..., :4] = sc[..., 0:4] & 63
    m[..., :4] = sc[..., 4:8] & 63
    s[..., 4:] = (sc[..., 8:12] & 15) | ((sc[..., 0:4] >> 6) << 4)
    m[..., 4:] = (sc[..., 8:12] >> 4) | ((sc[..., 4:8] >> 6) << 4)
    return s, m


def repack_q4_k(raw, ne0, ne1):
    """[N, K/256 * 144] Q4_K blocks -> [ceil(N/16), K/256, 2368] (layout in the module doc)."""
    nb = ne0 // 256
    bb = block_bytes(Q4_K)
    G = (ne1 + GROUP - 1) // GROUP
    blocks = np.zeros((G * GROUP, nb, bb), np.uint8)
    blocks[:ne1] = np.asarray(raw).reshape(ne1, nb, bb)
    blocks = blocks.reshape(G, GROUP, nb, bb).transpose(0, 2, 1, 3)          # [G, nb, 16 rows, 144]
    out = np.empty((G, nb, PACKED), np.uint8)
    out[:, :, 0:32] = blocks[:, :, :, 0:2].reshape(G, nb, 32)
    out[:, :, 32:64] = blocks[:, :, :, 2:4].reshape(G, nb, 32)
    s, m = _scales_mins(blocks[:, :, :, 4:16])                               # [G, nb, 16, 8]
    out[:, :, 64:192] = s.transpose(0, 1, 3, 2).reshape(G, nb, 128)
    out[:, :, 192:320] = m.transpose(0, 1, 3, 2).reshape(G, nb, 128)
    qs = blocks[:, :, :, 16:].reshape(G, nb, GROUP, 4, 8, 4).transpose(0, 1, 3, 4, 2, 5)   # [G, nb, c, i, row, 4]
    out[:, :, 320:] = qs.reshape(G, nb, 2048)
    return out


@njit(cache=True, inline="always")
def _chunk_dots(P, o, c, qs, a):
    """Per lane (row): exact integer dots of sub-blocks 2c and 2c+1 with token elements at a."""
    lo, hi = isplat(0), isplat(0)
    for i in range(8):
        v = load64(P, o + 320 + 512 * c + 64 * i)
        lo = dot_acc(lo, band(v, 15), bcast4(qs, a + 64 * c + 4 * i))
        hi = dot_acc(hi, bshr(v, 4), bcast4(qs, a + 64 * c + 32 + 4 * i))
    return lo, hi


@njit(cache=True, inline="always")
def _chunk_sums(P, o, c, qs, bs, m, b, a):
    """(sum of scale x dot, sum of min x bsum) of chunk c (sub-blocks 2c, 2c+1), per lane."""
    lo, hi = _chunk_dots(P, o, c, qs, a)
    j = 2 * c
    s = iadd(imul(lo, iload_u8(P, o + 64 + 16 * j)), imul(hi, iload_u8(P, o + 80 + 16 * j)))
    b0 = bs[m, 16 * b + 2 * j] + bs[m, 16 * b + 2 * j + 1]
    b1 = bs[m, 16 * b + 2 * j + 2] + bs[m, 16 * b + 2 * j + 3]
    mn = iadd(imul(iload_u8(P, o + 192 + 16 * j), isplat(b0)), imul(iload_u8(P, o + 208 + 16 * j), isplat(b1)))
    return s, mn


@njit(cache=True, error_model="numpy", inline="always")
def _gemm_block(P, o, qs, ad, bs, m, b, K, acc, accm):
    """One super-block of token m in the gemm order (float chains per 64 elements)."""
    da = fsplat(ad[m, b])
    dd, dm = fmul(fload_f16(P, o), da), fmul(fload_f16(P, o + 32), da)
    a = m * K + 256 * b
    for c in range(4):
        s, mn = _chunk_sums(P, o, c, qs, bs, m, b, a)
        acc = ffma(tofloat(s), dd, acc)
        accm = ffma(tofloat(mn), dm, accm)
    return acc, accm


@njit(cache=True, error_model="numpy")
def _group1(P, g, qs, ad, bs, m, out):
    """16 rows x token m in the gemv order (float chains per super-block)."""
    K = qs.shape[1]
    nb = K // 256
    acc, accm = fzero(), fzero()
    for b in range(nb):
        o = PACKED * (g * nb + b)
        a = m * K + 256 * b
        s, mn = _chunk_sums(P, o, 0, qs, bs, m, b, a)
        for c in range(1, 4):
            s2, mn2 = _chunk_sums(P, o, c, qs, bs, m, b, a)
            s, mn = iadd(s, s2), iadd(mn, mn2)
        da = fsplat(ad[m, b])
        acc = ffma(tofloat(s), fmul(fload_f16(P, o), da), acc)
        accm = ffma(tofloat(mn), fmul(fload_f16(P, o + 32), da), accm)
    _put(out, m, g, fsub(acc, accm))


@njit(cache=True, error_model="numpy", inline="always")
def _group4(P, g, qs, ad, bs, m, out):
    K = qs.shape[1]
    nb = K // 256
    a0, a1, a2, a3 = fzero(), fzero(), fzero(), fzero()
    n0, n1, n2, n3 = fzero(), fzero(), fzero(), fzero()
    for b in range(nb):
        o = PACKED * (g * nb + b)
        a0, n0 = _gemm_block(P, o, qs, ad, bs, m, b, K, a0, n0)
        a1, n1 = _gemm_block(P, o, qs, ad, bs, m + 1, b, K, a1, n1)
        a2, n2 = _gemm_block(P, o, qs, ad, bs, m + 2, b, K, a2, n2)
        a3, n3 = _gemm_block(P, o, qs, ad, bs, m + 3, b, K, a3, n3)
    _put(out, m, g, fsub(a0, n0))
    _put(out, m + 1, g, fsub(a1, n1))
    _put(out, m + 2, g, fsub(a2, n2))
    _put(out, m + 3, g, fsub(a3, n3))


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_k_packed(P, qs, ad, bs, out):   # ggml_gemv/gemm_q4_K_8x8_q8_K (AVX2 and up)
    G, M = P.shape[0], qs.shape[0]
    n4 = M // 4 * 4           # llama.cpp: gemm on 4-token groups, gemv on the rest
    for t in prange((G + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK):
        mt = token_tile(qs.shape[1])
        for m0 in range(0, n4, mt):
            m1 = min(n4, m0 + mt)
            for g in range(t * GROUPS_PER_TASK, min(G, (t + 1) * GROUPS_PER_TASK)):
                for m in range(m0, m1, 4):
                    _group4(P, g, qs, ad, bs, m, out)
        for g in range(t * GROUPS_PER_TASK, min(G, (t + 1) * GROUPS_PER_TASK)):
            for m in range(n4, M):
                _group1(P, g, qs, ad, bs, m, out)
