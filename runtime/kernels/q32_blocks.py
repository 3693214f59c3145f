"""One block pair of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) against one token,
in llama.cpp's 8-lane order (see dot_q32.py): the unpacking of two rows' blocks into one 64-byte
vector, the exact integer lanes against an activation block, the fma of their scaled floats, and the
per-row reduction; and the plain pair kernels (one token, 4 tokens) on them. Shared by the one-token / small-batch kernels (dot_q32.py) and the tiled batch
kernel (dot_q32_tiled.py).
"""
from numba import njit

from ggraph.runtime.kernels.ggml_common import IQ4_NL, Q4_0, Q4_1, Q5_0, Q5_1, block_bytes
from ggraph.runtime.kernels.simd.f32 import ffma, ffma4, fzero, fzero4, fhsum8_hi, fhsum8_lo, fload2x2, fmul4, fpair4, halves2, lane, lanes02, tofloat
from ggraph.runtime.kernels.simd.i32 import iload8x2, isar
from ggraph.runtime.kernels.simd.scalar import f16at
from ggraph.runtime.kernels.simd.u8 import bcast32, bor, bxor, cat, dot, dot_acc, hbits2, load32, lut_iq4, nib2


@njit(cache=True)
def unpack2(w, o0, o1, fmt):
    """Blocks at byte offsets o0 (row r) and o1 (row r+1): 64 unsigned codes (each row in element
    order) and F32x4 [d0, m0, d1, m1] (Q4_1 / Q5_1) or [d0, d0, d1, d1]."""
    if fmt == Q4_0 or fmt == IQ4_NL:
        u = nib2(w, o0 + 2, o1 + 2)
        if fmt == IQ4_NL:
            u = lut_iq4(u)
    elif fmt == Q4_1:
        u = nib2(w, o0 + 4, o1 + 4)
    elif fmt == Q5_0:
        u = bor(nib2(w, o0 + 6, o1 + 6), hbits2(w, o0 + 2, o1 + 2))
    elif fmt == Q5_1:
        u = bor(nib2(w, o0 + 8, o1 + 8), hbits2(w, o0 + 4, o1 + 4))
    else:
        u = bxor(cat(load32(w, o0 + 2), load32(w, o1 + 2)), 0x80)
    if fmt == Q4_1 or fmt == Q5_1:
        return u, halves2(w, o0, o1)
    return u, fpair4(f16at(w, o0), f16at(w, o1))


@njit(cache=True)
def has_min(fmt):
    return fmt == Q4_1 or fmt == Q5_1


@njit(cache=True, inline="always")
def block_lanes(u, qs, a2, m, b, K, fmt):
    """The 16 exact integer lanes of the block pair against token m's block b."""
    a = bcast32(qs, m * K + 32 * b)
    if has_min(fmt):
        return dot(u, a)
    c = iload8x2(a2, 4 * (m * (K // 4) + 8 * b))   # -128 x 4-sums of the activations
    if fmt == Q4_0:
        c = isar(c, 4)        # -8 x
    elif fmt == Q5_0:
        c = isar(c, 3)        # -16 x
    return dot_acc(c, u, a)


@njit(cache=True)
def act_scales(a1, m, b):
    """F32x4 [d_a, s_a, d_a, s_a] of token m's block b (s_a: Q8_1's s, or Q8_0's exact sum)."""
    return fload2x2(a1, 4 * (m * a1.shape[1] + 2 * b))


@njit(cache=True, error_model="numpy", inline="always")
def fma_block(u, dm, ds, qs, a2, m, b, K, acc, fmt):
    """acc = fma(d_w * d_a, lanes, acc) for token m, block b (both rows)."""
    return ffma(lanes02(fmul4(dm, ds)), tofloat(block_lanes(u, qs, a2, m, b, K, fmt)), acc)


@njit(cache=True, error_model="numpy")
def fma_mins(dm, ds, sm, fmt):
    """Lanes 1 and 3: summs = fma(m_w, s_a, summs) of the two rows (other lanes unused)."""
    if has_min(fmt):
        return ffma4(dm, ds, sm)
    return sm


@njit(cache=True, error_model="numpy")
def store_pair(out, m, r0, r1, acc, sm, fmt):
    if has_min(fmt):
        out[m, r0] = fhsum8_lo(acc) + lane(sm, 1)
        if r1 != r0:
            out[m, r1] = fhsum8_hi(acc) + lane(sm, 3)
    else:
        out[m, r0] = fhsum8_lo(acc)
        if r1 != r0:
            out[m, r1] = fhsum8_hi(acc)


@njit(cache=True, error_model="numpy")
def pair1(w, r0, r1, qs, a1, a2, m, out, fmt):
    """Rows r0, r1 (r1 == r0: one row) x token m."""
    K = qs.shape[1]
    bb = block_bytes(fmt)
    w0, w1 = r0 * w.shape[1], r1 * w.shape[1]
    acc, sm = fzero(), fzero4()
    for b in range(K // 32):
        u, dm = unpack2(w, w0 + bb * b, w1 + bb * b, fmt)
        ds = act_scales(a1, m, b)
        acc = fma_block(u, dm, ds, qs, a2, m, b, K, acc, fmt)
        sm = fma_mins(dm, ds, sm, fmt)
    store_pair(out, m, r0, r1, acc, sm, fmt)


@njit(cache=True, error_model="numpy")
def pair4(w, r0, r1, qs, a1, a2, m, out, fmt):
    """Rows r0, r1 x tokens m..m+3, sharing each weight unpack; per-token math as in pair1."""
    K = qs.shape[1]
    bb = block_bytes(fmt)
    w0, w1 = r0 * w.shape[1], r1 * w.shape[1]
    acc0, acc1, acc2, acc3 = fzero(), fzero(), fzero(), fzero()
    sm0, sm1, sm2, sm3 = fzero4(), fzero4(), fzero4(), fzero4()
    for b in range(K // 32):
        u, dm = unpack2(w, w0 + bb * b, w1 + bb * b, fmt)
        ds0, ds1, ds2, ds3 = act_scales(a1, m, b), act_scales(a1, m + 1, b), act_scales(a1, m + 2, b), act_scales(a1, m + 3, b)
        acc0 = fma_block(u, dm, ds0, qs, a2, m, b, K, acc0, fmt)
        acc1 = fma_block(u, dm, ds1, qs, a2, m + 1, b, K, acc1, fmt)
        acc2 = fma_block(u, dm, ds2, qs, a2, m + 2, b, K, acc2, fmt)
        acc3 = fma_block(u, dm, ds3, qs, a2, m + 3, b, K, acc3, fmt)
        sm0, sm1 = fma_mins(dm, ds0, sm0, fmt), fma_mins(dm, ds1, sm1, fmt)
        sm2, sm3 = fma_mins(dm, ds2, sm2, fmt), fma_mins(dm, ds3, sm3, fmt)
    store_pair(out, m, r0, r1, acc0, sm0, fmt)
    store_pair(out, m + 1, r0, r1, acc1, sm1, fmt)
    store_pair(out, m + 2, r0, r1, acc2, sm2, fmt)
    store_pair(out, m + 3, r0, r1, acc3, sm3, fmt)


@njit(cache=True, error_model="numpy", inline="always")
def pairs(w, r, r_end, qs, a1, a2, m0, m1, out, fmt):
    """Rows r..r_end-1 (by pairs; an odd last row alone) x tokens m0..m1-1, 4 tokens per unpack."""
    for r in range(r, r_end, 2):
        r1 = min(r + 1, r_end - 1)
        m = m0
        while m + 4 <= m1:
            pair4(w, r, r1, qs, a1, a2, m, out, fmt)
            m += 4
        while m < m1:
            pair1(w, r, r1, qs, a1, a2, m, out, fmt)
            m += 1
