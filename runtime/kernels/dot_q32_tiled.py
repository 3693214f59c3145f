"""Prompt batches of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): the same per-output
order as dot_q32.py (llama.cpp's tinyBLAS_Q0 / vec_dot 8-lane chain, see there), with the weight
unpacking taken out of the inner loop.

Each parallel task first unpacks its rows once into task-local scratch, per group of 8 rows (4 row
pairs) and block: each pair's 64 unsigned codes (one vector) and its fp16 scales widened to
[d0]*8 + [d1]*8; for Q4_1 / Q5_1 also the 8 rows' mins, twice. The token loop then runs 8 rows x 4
tokens per step on plain vector loads: per (pair, token) one VNNI dot, one int->float,
fl(d_w * d_a) and one fma, exactly the one-token kernel's arithmetic (the product of the scales is
the same float multiply, lane by lane). The mins' chain summs = fma(m_w, s_a, summs) runs for 8 rows
x 2 tokens in one vector, one lane per (row, token). Before, every 4 tokens re-unpacked every block.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.ggml_common import Q4_0, Q5_0, block_bytes
from ggraph.runtime.kernels.q32_blocks import has_min, pairs, unpack2
from ggraph.runtime.kernels.simd.f32 import (
    fhsum8_hi, fhsum8_lo, ffma, flane, fload, fmul, fsplat, fsplat2, fstore, fzero, lane, lanes02, tofloat,
)
from ggraph.runtime.kernels.simd.i32 import iload8x2, isar
from ggraph.runtime.kernels.simd.u8 import bcast32, bstore, dot, dot_acc, load64
from ggraph.runtime.kernels.tiling import ROWS_PER_TASK, token_tile

TILED_MIN_M = 8     # tokens from which unpacking once per task pays (decode and small batches: dot_q32)


@njit(cache=True, error_model="numpy", inline="always")
def _unpack_rows(w, r0, groups, nb, U, D, MV, fmt):
    """Rows r0 .. r0 + 8 groups - 1. Pair p = 4 g + j, block b: codes at byte 64 (p nb + b) of U,
    scales at float 16 (p nb + b) of D; mins of group g at float 16 (g nb + b) of MV (lane 2j + i
    and 8 + 2j + i: row r0 + 8 g + 2 j + i)."""
    rb = w.shape[1]
    bb = block_bytes(fmt)
    for p in range(4 * groups):
        o = (r0 + 2 * p) * rb
        g, j = divmod(p, 4)
        for b in range(nb):
            u, dm = unpack2(w, o + bb * b, o + rb + bb * b, fmt)
            bstore(U, 64 * (p * nb + b), u)
            fstore(D, 64 * (p * nb + b), lanes02(dm))
            if has_min(fmt):
                mo = 16 * (g * nb + b) + 2 * j
                MV[mo], MV[mo + 1] = lane(dm, 1), lane(dm, 3)
                MV[mo + 8], MV[mo + 9] = lane(dm, 1), lane(dm, 3)


@njit(cache=True, error_model="numpy", inline="always")
def _step(U, D, pb, a, c, da, acc, fmt):
    """acc = fma(fl(d_w * d_a), float(lanes), acc) for the pair block at index pb."""
    u = load64(U, 64 * pb)
    lanes = dot(u, a) if has_min(fmt) else dot_acc(c, u, a)
    return ffma(fmul(fload(D, 64 * pb), da), tofloat(lanes), acc)


@njit(cache=True, error_model="numpy", inline="always")
def _offset(a2, m, b, K, fmt):
    """The exact removal of the unsigned codes' offset: -offset x the activation 4-sums."""
    c = iload8x2(a2, 4 * (m * (K // 4) + 8 * b))
    if fmt == Q4_0:
        c = isar(c, 4)        # -8 x
    elif fmt == Q5_0:
        c = isar(c, 3)        # -16 x
    return c


@njit(cache=True, error_model="numpy", inline="always")
def _token(U, D, q, b, qs, a1, a2, m, K, c0, c1, c2, c3, fmt):
    """Token m's block b against the 4 pairs whose blocks start at indices q, q + nb, ..."""
    nb = K // 32
    a = bcast32(qs, m * K + 32 * b)
    c = _offset(a2, m, b, K, fmt)
    da = fsplat(a1[m, 2 * b])
    c0 = _step(U, D, q + b, a, c, da, c0, fmt)
    c1 = _step(U, D, q + nb + b, a, c, da, c1, fmt)
    c2 = _step(U, D, q + 2 * nb + b, a, c, da, c2, fmt)
    c3 = _step(U, D, q + 3 * nb + b, a, c, da, c3, fmt)
    return c0, c1, c2, c3


@njit(cache=True, error_model="numpy", inline="always")
def _store8(out, m, r, c0, c1, c2, c3, S, base, fmt):
    """Token m's 8 outputs: hsum_float_8 of each row (+ summs from lane base + row of S)."""
    for j, acc in ((0, c0), (1, c1), (2, c2), (3, c3)):
        lo, hi = fhsum8_lo(acc), fhsum8_hi(acc)
        if has_min(fmt):
            lo += flane(S, base + 2 * j)
            hi += flane(S, base + 2 * j + 1)
        out[m, r + 2 * j] = lo
        out[m, r + 2 * j + 1] = hi


@njit(cache=True, error_model="numpy", inline="always")
def _tile1(U, D, MV, g, nb, r, qs, a1, a2, m, out, fmt):
    """Rows r..r+7 (group g) x token m."""
    K = qs.shape[1]
    c0, c1, c2, c3, S = fzero(), fzero(), fzero(), fzero(), fzero()
    for b in range(nb):
        c0, c1, c2, c3 = _token(U, D, 4 * g * nb, b, qs, a1, a2, m, K, c0, c1, c2, c3, fmt)
        if has_min(fmt):
            S = ffma(fload(MV, 64 * (g * nb + b)), fsplat(a1[m, 2 * b + 1]), S)
    _store8(out, m, r, c0, c1, c2, c3, S, 0, fmt)


@njit(cache=True, error_model="numpy")
def _tile4(U, D, MV, g, nb, r, qs, a1, a2, m, out, fmt):
    """Rows r..r+7 (group g) x tokens m..m+3: 16 accumulators, each code and scale vector loaded
    from L1 once per token."""
    K = qs.shape[1]
    q = 4 * g * nb
    c00, c01, c02, c03 = fzero(), fzero(), fzero(), fzero()
    c10, c11, c12, c13 = fzero(), fzero(), fzero(), fzero()
    c20, c21, c22, c23 = fzero(), fzero(), fzero(), fzero()
    c30, c31, c32, c33 = fzero(), fzero(), fzero(), fzero()
    S01, S23 = fzero(), fzero()     # mins: lanes 0-7 token m (m + 2), 8-15 token m + 1 (m + 3)
    for b in range(nb):
        c00, c01, c02, c03 = _token(U, D, q, b, qs, a1, a2, m, K, c00, c01, c02, c03, fmt)
        c10, c11, c12, c13 = _token(U, D, q, b, qs, a1, a2, m + 1, K, c10, c11, c12, c13, fmt)
        c20, c21, c22, c23 = _token(U, D, q, b, qs, a1, a2, m + 2, K, c20, c21, c22, c23, fmt)
        c30, c31, c32, c33 = _token(U, D, q, b, qs, a1, a2, m + 3, K, c30, c31, c32, c33, fmt)
        if has_min(fmt):
            mv = fload(MV, 64 * (g * nb + b))
            S01 = ffma(mv, fsplat2(a1[m, 2 * b + 1], a1[m + 1, 2 * b + 1]), S01)
            S23 = ffma(mv, fsplat2(a1[m + 2, 2 * b + 1], a1[m + 3, 2 * b + 1]), S23)
    _store8(out, m, r, c00, c01, c02, c03, S01, 0, fmt)
    _store8(out, m + 1, r, c10, c11, c12, c13, S01, 8, fmt)
    _store8(out, m + 2, r, c20, c21, c22, c23, S23, 0, fmt)
    _store8(out, m + 3, r, c30, c31, c32, c33, S23, 8, fmt)


@njit(cache=True, error_model="numpy", inline="always")
def mm_tiled(w, qs, a1, a2, out, fmt):
    """out = w x qs (M >= TILED_MIN_M tokens, K % 32 == 0)."""
    N, M, K = w.shape[0], qs.shape[0], qs.shape[1]
    nb = K // 32
    for c in prange((N + ROWS_PER_TASK - 1) // ROWS_PER_TASK):
        r0 = c * ROWS_PER_TASK
        r_end = min(N, r0 + ROWS_PER_TASK)
        groups = (r_end - r0) // 8
        U = np.empty(groups * 4 * nb * 64, np.uint8)
        D = np.empty(groups * 4 * nb * 16, np.float32)
        MV = np.empty(groups * nb * 16 if has_min(fmt) else 0, np.float32)
        _unpack_rows(w, r0, groups, nb, U, D, MV, fmt)
        mt = token_tile(K)
        for m0 in range(0, M, mt):
            m1 = min(M, m0 + mt)
            for g in range(groups):
                m = m0
                while m + 4 <= m1:
                    _tile4(U, D, MV, g, nb, r0 + 8 * g, qs, a1, a2, m, out, fmt)
                    m += 4
                while m < m1:
                    _tile1(U, D, MV, g, nb, r0 + 8 * g, qs, a1, a2, m, out, fmt)
                    m += 1
            pairs(w, r0 + 8 * groups, r_end, qs, a1, a2, m0, m1, out, fmt)   # rows no 8-row group covers
