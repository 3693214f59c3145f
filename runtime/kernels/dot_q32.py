"""32-element block formats with llama.cpp's 8-lane dot: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL.

llama.cpp's x86 vec_dot (one token, ggml_vec_dot_*_q8_*) and llamafile's tinyBLAS_Q0_AVX (batches of
>= 2 tokens: Q8_0, Q4_0, Q5_0, IQ4_NL) compute every output the same way (AVX2 __m256 code, also in
the AVX512 build):

    acc[0..7] = 0
    for each block b:   lane i of the block = exact integer sum of the 4 products of elements 4i..4i+3
                        acc[i] = fma(fl(d_w * d_a), float(lane i), acc[i])
    out = hsum_float_8(acc)  ((acc_i + acc_{i+4}), then (r0 + r2) + (r1 + r3))
          + summs for Q4_1 / Q5_1, where summs = fma(m_w, s_a, summs) over the blocks (GCC contracts it)

ggml_vec_dot_iq4_nl_q8_0 (one token) differs: even and odd blocks go to two accumulators that are
added before the reduction, and an odd last block is added after it as fl(float(sum) * d).

Here one 16-lane vector holds two weight rows (lanes 0-7 row r, lanes 8-15 row r+1), so each VNNI
dot / fma does the block of both rows. Weights run as unsigned codes (Q4_0 q, Q5_0 q, IQ4_NL
kvalue+128, Q8_0 q+128); the offset is removed exactly per lane with the activation's 4-sums
(quantize_act: a2 = -128 * sum of 4, arithmetic-shifted for the smaller offsets). Batches of fewer
than TILED_MIN_M tokens share each weight unpack between 4 tokens, and each activation block load between
two row pairs (_quad4); larger ones unpack each task's rows once (dot_q32_tiled.py). Per-token
arithmetic is the one above throughout (q32_blocks.py).

Q4_0 and IQ4_NL weights whose row count is a multiple of 8 are repacked by llama.cpp at load time and
use another order (repack.py); this module serves them otherwise.

Kernels: mm_*(w [N, row_bytes] u8, qs [M, K] i8, a1, a2, out [M, N] f32), see quantize_act.py for a1/a2.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.ggml_common import IQ4_NL, KVALUES_IQ4NL, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, block_bytes
from ggraph.runtime.kernels.dot_q32_tiled import TILED_MIN_M, mm_tiled
from ggraph.runtime.kernels.q32_blocks import act_scales, fma_block, fma_mins, pair1, pairs, store_pair, unpack2
from ggraph.runtime.kernels.simd.f32 import fadd, fhsum8_hi, fhsum8_lo, fzero, fzero4
from ggraph.runtime.kernels.simd.scalar import f16at, prefetch
from ggraph.runtime.kernels.tiling import PREFETCH_BYTES, ROWS_PER_TASK, token_tile


@njit(cache=True, error_model="numpy", inline="always")
def _quad1(w, r0, qs, a1, a2, m, out, fmt):
    """Rows r0..r0+3 (two pairs: two independent chains in flight) x token m."""
    K = qs.shape[1]
    bb = block_bytes(fmt)
    w0 = r0 * w.shape[1]
    rb = w.shape[1]
    ahead = max(4 * rb, PREFETCH_BYTES)
    acc, acc2, sm, sm2 = fzero(), fzero(), fzero4(), fzero4()
    for b in range(K // 32):
        o = w0 + bb * b
        nxt = w0 + ahead + 192 * b   # the rows ahead, 3 lines per block: in cache when they start
        prefetch(w, nxt)
        prefetch(w, nxt + 64)
        prefetch(w, nxt + 128)
        ds = act_scales(a1, m, b)
        u, dm = unpack2(w, o, o + rb, fmt)
        acc = fma_block(u, dm, ds, qs, a2, m, b, K, acc, fmt)
        sm = fma_mins(dm, ds, sm, fmt)
        u2, dm2 = unpack2(w, o + 2 * rb, o + 3 * rb, fmt)
        acc2 = fma_block(u2, dm2, ds, qs, a2, m, b, K, acc2, fmt)
        sm2 = fma_mins(dm2, ds, sm2, fmt)
    store_pair(out, m, r0, r0 + 1, acc, sm, fmt)
    store_pair(out, m, r0 + 2, r0 + 3, acc2, sm2, fmt)


@njit(cache=True, error_model="numpy")
def _quad4(w, r0, qs, a1, a2, m, out, fmt):
    """Rows r0..r0+3 (two pairs) x tokens m..m+3: each activation block load serves both pairs."""
    K = qs.shape[1]
    bb = block_bytes(fmt)
    rb = w.shape[1]
    w0 = r0 * rb
    a0, a1_, a2_, a3 = fzero(), fzero(), fzero(), fzero()
    b0, b1, b2, b3 = fzero(), fzero(), fzero(), fzero()
    sa0, sa1, sa2, sa3 = fzero4(), fzero4(), fzero4(), fzero4()
    sb0, sb1, sb2, sb3 = fzero4(), fzero4(), fzero4(), fzero4()
    for b in range(K // 32):
        o = w0 + bb * b
        u, dm = unpack2(w, o, o + rb, fmt)
        v, dn = unpack2(w, o + 2 * rb, o + 3 * rb, fmt)
        ds = act_scales(a1, m, b)
        a0 = fma_block(u, dm, ds, qs, a2, m, b, K, a0, fmt)
        b0 = fma_block(v, dn, ds, qs, a2, m, b, K, b0, fmt)
        sa0, sb0 = fma_mins(dm, ds, sa0, fmt), fma_mins(dn, ds, sb0, fmt)
        ds = act_scales(a1, m + 1, b)
        a1_ = fma_block(u, dm, ds, qs, a2, m + 1, b, K, a1_, fmt)
        b1 = fma_block(v, dn, ds, qs, a2, m + 1, b, K, b1, fmt)
        sa1, sb1 = fma_mins(dm, ds, sa1, fmt), fma_mins(dn, ds, sb1, fmt)
        ds = act_scales(a1, m + 2, b)
        a2_ = fma_block(u, dm, ds, qs, a2, m + 2, b, K, a2_, fmt)
        b2 = fma_block(v, dn, ds, qs, a2, m + 2, b, K, b2, fmt)
        sa2, sb2 = fma_mins(dm, ds, sa2, fmt), fma_mins(dn, ds, sb2, fmt)
        ds = act_scales(a1, m + 3, b)
        a3 = fma_block(u, dm, ds, qs, a2, m + 3, b, K, a3, fmt)
        b3 = fma_block(v, dn, ds, qs, a2, m + 3, b, K, b3, fmt)
        sa3, sb3 = fma_mins(dm, ds, sa3, fmt), fma_mins(dn, ds, sb3, fmt)
    store_pair(out, m, r0, r0 + 1, a0, sa0, fmt)
    store_pair(out, m + 1, r0, r0 + 1, a1_, sa1, fmt)
    store_pair(out, m + 2, r0, r0 + 1, a2_, sa2, fmt)
    store_pair(out, m + 3, r0, r0 + 1, a3, sa3, fmt)
    store_pair(out, m, r0 + 2, r0 + 3, b0, sb0, fmt)
    store_pair(out, m + 1, r0 + 2, r0 + 3, b1, sb1, fmt)
    store_pair(out, m + 2, r0 + 2, r0 + 3, b2, sb2, fmt)
    store_pair(out, m + 3, r0 + 2, r0 + 3, b3, sb3, fmt)


@njit(cache=True, error_model="numpy", inline="always")
def _mm(w, qs, a1, a2, out, fmt):
    N, M = w.shape[0], qs.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        mt = token_tile(qs.shape[1])
        r_end = min(N, (c + 1) * ROWS_PER_TASK)
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            if m1 - m0 == 1:   # one token: two row pairs at a time (two fma chains in flight)
                for r in range(c * ROWS_PER_TASK, r_end, 4):
                    if r + 3 < r_end:
                        _quad1(w, r, qs, a1, a2, m0, out, fmt)
                    else:
                        for rr in range(r, r_end, 2):
                            pair1(w, rr, min(rr + 1, r_end - 1), qs, a1, a2, m0, out, fmt)
                continue
            r = c * ROWS_PER_TASK
            while r + 4 <= r_end:
                m = m0
                while m + 4 <= m1:
                    _quad4(w, r, qs, a1, a2, m, out, fmt)
                    m += 4
                while m < m1:
                    pair1(w, r, r + 1, qs, a1, a2, m, out, fmt)
                    pair1(w, r + 2, r + 3, qs, a1, a2, m, out, fmt)
                    m += 1
                r += 4
            pairs(w, r, r_end, qs, a1, a2, m0, m1, out, fmt)


# ---- ggml_vec_dot_iq4_nl_q8_0 (one token, weights not repacked) ----------------------------------

_KV = np.array(KVALUES_IQ4NL, np.int32)


@njit(cache=True, inline="always")
def _iq4nl_isum(w, r, ob, qs, e0):
    """Exact integer dot of row r's IQ4_NL block at byte ob with token 0's elements e0..e0+31."""
    s = 0
    for j in range(16):
        byte = w[r, ob + 2 + j]
        s += _KV[byte & 15] * np.int32(qs[0, e0 + j]) + _KV[byte >> 4] * np.int32(qs[0, e0 + j + 16])
    return s


@njit(cache=True, error_model="numpy", inline="always")
def _iq4nl_vec_pair(w, r0, r1, qs, a1, a2, out):
    K = qs.shape[1]
    nb = K // 32
    bb = block_bytes(IQ4_NL)
    w0, w1 = r0 * w.shape[1], r1 * w.shape[1]
    acc_e, acc_o = fzero(), fzero()
    for b in range(0, nb - 1, 2):
        u, dm = unpack2(w, w0 + bb * b, w1 + bb * b, IQ4_NL)
        acc_e = fma_block(u, dm, act_scales(a1, 0, b), qs, a2, 0, b, K, acc_e, IQ4_NL)
        u, dm = unpack2(w, w0 + bb * (b + 1), w1 + bb * (b + 1), IQ4_NL)
        acc_o = fma_block(u, dm, act_scales(a1, 0, b + 1), qs, a2, 0, b + 1, K, acc_o, IQ4_NL)
    acc = fadd(acc_e, acc_o)
    t0, t1 = fhsum8_lo(acc), fhsum8_hi(acc)
    if nb % 2:   # the last block: sumf += float(sumi) * (d_a * d_w), not fused
        b = nb - 1
        da = a1[0, 2 * b]
        t0 += np.float32(_iq4nl_isum(w, r0, bb * b, qs, 32 * b)) * (da * f16at(w, w0 + bb * b))
        t1 += np.float32(_iq4nl_isum(w, r1, bb * b, qs, 32 * b)) * (da * f16at(w, w1 + bb * b))
    out[0, r0] = t0
    if r1 != r0:
        out[0, r1] = t1


@njit(cache=True, parallel=True, error_model="numpy")
def _mm_iq4nl_vec(w, qs, a1, a2, out):
    N = w.shape[0]
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        r_end = min(N, (c + 1) * ROWS_PER_TASK)
        for r in range(c * ROWS_PER_TASK, r_end, 2):
            _iq4nl_vec_pair(w, r, min(r + 1, r_end - 1), qs, a1, a2, out)


def _kernel(fmt):
    """The parallel kernel of one format (fmt a compile-time constant in it)."""
    @njit(cache=True, parallel=True, error_model="numpy")
    def mm(w, qs, a1, a2, out):
        if qs.shape[0] >= TILED_MIN_M:
            mm_tiled(w, qs, a1, a2, out, fmt)
        else:
            _mm(w, qs, a1, a2, out, fmt)
    return mm


mm_q4_0 = _kernel(Q4_0)
mm_q4_1 = _kernel(Q4_1)
mm_q5_0 = _kernel(Q5_0)
mm_q5_1 = _kernel(Q5_1)
mm_q8_0 = _kernel(Q8_0)
_mm_iq4nl_batch = _kernel(IQ4_NL)


def mm_iq4_nl(w, qs, a1, a2, out):
    """tinyBLAS for >= 2 tokens, ggml_vec_dot_iq4_nl_q8_0 for one."""
    if qs.shape[0] == 1:
        _mm_iq4nl_vec(w, qs, a1, a2, out)
    else:
        _mm_iq4nl_batch(w, qs, a1, a2, out)
