"""One-token mat-vec for Q8_0 in ggml_vec_dot_q8_0_q8_0's order, on a 16-row interleaved copy.

vec_dot keeps 8 float lanes per output row (lane i: the exact integer dot of elements 4i..4i+3 of
each block, acc_i = fma(fl(d_w * d_a), float(lane i), acc_i)), then hsum_float_8. dot_q32 holds two
rows per vector and pays a horizontal sum per row; here lane r of 8 accumulator vectors is lane
i of row r, so one VNNI dot on a broadcast 4-byte activation group advances 16 rows at once and
hsum_float_8 becomes 7 vector adds in its own order ((a_i + a_{i+4}), then (r0 + r2) + (r1 + r3)).
Bit-identical to the plain kernel; several times fewer instructions per weight byte.

Layout (rows16_q8_0, only for row counts that are a multiple of 16), per group of 16 rows and
block: the 16 fp16 scales (32 bytes), then for i = 0..7 the 16 rows' codes 4i..4i+3 as unsigned
bytes (q + 128; the offset is removed with the activation 4-sums, a2) = 544 bytes, as many as the
plain blocks. Batches keep reading the plain blocks (tinyBLAS's order, dot_q32).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.simd.f32 import fadd, ffma, fload_f16, fmul, fsplat, fstore, fzero, tofloat
from ggraph.runtime.kernels.simd.i32 import isplat
from ggraph.runtime.kernels.simd.u8 import bcast4, dot_acc, load64

GROUP = 16
Q8_0_BLOCK = 34
PACKED_BLOCK = GROUP * Q8_0_BLOCK
GROUPS_PER_TASK = 4
TAG_Q8_0 = "rows16_q8_0.v1"   # bump when the layout changes (names its on-disk copies)


@njit(cache=True, parallel=True)
def rows16_q8_0(raw):
    """[N, K/32 * 34] Q8_0 blocks -> [N/16, K/32, 544] (layout in the module doc)."""
    N, rb = raw.shape
    nb = rb // Q8_0_BLOCK
    out = np.empty((N // GROUP, nb, PACKED_BLOCK), np.uint8)
    for g in prange(N // GROUP):
        for b in range(nb):
            for r in range(GROUP):
                o = Q8_0_BLOCK * b
                out[g, b, 2 * r] = raw[GROUP * g + r, o]
                out[g, b, 2 * r + 1] = raw[GROUP * g + r, o + 1]
                for i in range(8):
                    for k in range(4):
                        out[g, b, 32 + 64 * i + 4 * r + k] = raw[GROUP * g + r, o + 2 + 4 * i + k] ^ 0x80
    return out


@njit(cache=True, error_model="numpy", inline="always")
def _lane(P, o, i, qs, a2, b, d, acc):
    """acc = fma(d, float(lane i of this block), acc) for the 16 rows."""
    c = isplat(a2[0, 8 * b + i])                      # -128 x the activation 4-sum
    return ffma(d, tofloat(dot_acc(c, load64(P, o + 32 + 64 * i), bcast4(qs, 32 * b + 4 * i))), acc)


@njit(cache=True, error_model="numpy")
def _group(P, g, qs, a1, a2, out):
    nb = P.shape[1]
    c0, c1, c2, c3, c4, c5, c6, c7 = fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero()
    for b in range(nb):
        o = PACKED_BLOCK * (g * nb + b)
        d = fmul(fload_f16(P, o), fsplat(a1[0, 2 * b]))
        c0 = _lane(P, o, 0, qs, a2, b, d, c0)
        c1 = _lane(P, o, 1, qs, a2, b, d, c1)
        c2 = _lane(P, o, 2, qs, a2, b, d, c2)
        c3 = _lane(P, o, 3, qs, a2, b, d, c3)
        c4 = _lane(P, o, 4, qs, a2, b, d, c4)
        c5 = _lane(P, o, 5, qs, a2, b, d, c5)
        c6 = _lane(P, o, 6, qs, a2, b, d, c6)
        c7 = _lane(P, o, 7, qs, a2, b, d, c7)
    r = fadd(fadd(fadd(c0, c4), fadd(c2, c6)), fadd(fadd(c1, c5), fadd(c3, c7)))
    fstore(out, 4 * GROUP * g, r)


@njit(cache=True, parallel=True, error_model="numpy")
def gemv_q8_0_rows16(P, qs, a1, a2, out):
    G = P.shape[0]
    for t in prange((G + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK):
        for g in range(t * GROUPS_PER_TASK, min(G, (t + 1) * GROUPS_PER_TASK)):
            _group(P, g, qs, a1, a2, out)
