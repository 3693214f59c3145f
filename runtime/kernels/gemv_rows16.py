"""One-token mat-vec for Q8_0, Q5_0 and Q4_1 in ggml_vec_dot_*'s order, on 16-row interleaved copies.

vec_dot keeps 8 float lanes per output row (lane i: the exact integer dot of elements 4i..4i+3 of
each block, acc_i = fma(fl(d_w * d_a), float(lane i), acc_i); Q4_1 also summs = fma(m_w, s_a, summs)),
then hsum_float_8 (+ summs). dot_q32 holds two rows per vector and pays a horizontal sum per row;
here lane r of 8 accumulator vectors is lane i of row r, so one VNNI dot on a broadcast 4-byte
activation group advances 16 rows at once and hsum_float_8 becomes 7 vector adds in its own order
((a_i + a_{i+4}), then (r0 + r2) + (r1 + r3)). Bit-identical to the plain kernel, about twice as fast.

Layouts (only for row counts that are a multiple of 16), per group of 16 rows and block:
  Q8_0 / Q5_0: the 16 fp16 scales (32 bytes), then for i = 0..7 the 16 rows' codes 4i..4i+3 as
               unsigned bytes (Q8_0 q + 128, Q5_0 its 5-bit code; the offsets are removed with the
               activation 4-sums a2): 544 bytes (Q8_0: as many as the plain blocks; Q5_0: 352 -> 544)
  Q4_1:        16 fp16 d, 16 fp16 m (64 bytes), then for c = 0..3 the 16 rows' qs bytes 4c..4c+3
               (low nibbles = lane c, high nibbles = lane c + 4): 320 bytes, as many as the plain blocks
Batches keep reading the plain blocks (tinyBLAS's order, dot_q32).
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.ggml_common import Q4_1, Q5_0, Q8_0
from ggraph.runtime.kernels.simd.f32 import fadd, ffma, fload_f16, fmul, fsplat, fstore, fzero, tofloat
from ggraph.runtime.kernels.simd.i32 import isplat
from ggraph.runtime.kernels.simd.u8 import band, bcast4, bshr, dot_acc, load64

GROUP = 16
GROUPS_PER_TASK = 4
LAYOUT_VERSION = "v1"   # bump when a layout changes (names the on-disk copies)


def tag(fmt):
    return f"rows16_{int(fmt)}.{LAYOUT_VERSION}"


def _by_groups(raw, sb):
    """[N, nb * sb] -> [N/16, nb, 16 rows, sb] (a view where numpy can)."""
    N = raw.shape[0]
    return np.asarray(raw).reshape(N // GROUP, GROUP, -1, sb).transpose(0, 2, 1, 3)


def _interleave(codes):
    """[G, nb, 16 rows, 8 * 4] codes -> [G, nb, 512]: per 4-code group i, the 16 rows' 4 codes."""
    G, nb = codes.shape[:2]
    return codes.reshape(G, nb, GROUP, -1, 4).transpose(0, 1, 3, 2, 4).reshape(G, nb, -1)


def _layout_q8_0(raw):
    blk = _by_groups(raw, 34)
    return np.concatenate([blk[..., :2].reshape(*blk.shape[:2], 32), _interleave(blk[..., 2:] ^ 0x80)], axis=2)


def _layout_q5_0(raw):
    blk = _by_groups(raw, 22)
    qh = np.unpackbits(blk[..., 2:6], axis=-1, bitorder="little")          # bit j of the u32 = element j
    qs = blk[..., 6:]
    codes = np.concatenate([qs & 15, qs >> 4], axis=-1) | (qh << 4)
    return np.concatenate([blk[..., :2].reshape(*blk.shape[:2], 32), _interleave(codes)], axis=2)


def _layout_q4_1(raw):
    blk = _by_groups(raw, 20)
    G, nb = blk.shape[:2]
    return np.concatenate([blk[..., :2].reshape(G, nb, 32), blk[..., 2:4].reshape(G, nb, 32),
                           _interleave(blk[..., 4:])], axis=2)


_LAYOUTS = {Q8_0: _layout_q8_0, Q5_0: _layout_q5_0, Q4_1: _layout_q4_1}


def layout(fmt):
    """raw [N, row_bytes] -> the 16-row copy [N/16, blocks, packed block bytes] (numpy: no compile)."""
    return _LAYOUTS[int(fmt)]


@njit(cache=True, error_model="numpy", inline="always")
def _lane(P, o, i, qs, a2, b, d, acc, fmt):
    """acc = fma(d, float(lane i of this block), acc) for the 16 rows (byte-code layouts)."""
    c = np.int32(a2[0, 8 * b + i])                    # -128 x the activation 4-sum
    if fmt == Q5_0:
        c = c >> 3                                    # -16 x
    v = dot_acc(isplat(c), load64(P, o + 32 + 64 * i), bcast4(qs, 32 * b + 4 * i))
    return ffma(d, tofloat(v), acc)


@njit(cache=True, error_model="numpy", inline="always")
def _nib_lanes(P, o, c, qs, b, d, lo, hi):
    """Q4_1: lanes c (low nibbles) and c + 4 (high nibbles) of this block for the 16 rows."""
    v = load64(P, o + 64 + 64 * c)
    a = 32 * b + 4 * c
    lo = ffma(d, tofloat(dot_acc(isplat(0), band(v, 15), bcast4(qs, a))), lo)
    hi = ffma(d, tofloat(dot_acc(isplat(0), bshr(v, 4), bcast4(qs, a + 16))), hi)
    return lo, hi


@njit(cache=True, error_model="numpy")
def _group(P, g, qs, a1, a2, out, fmt):
    nb, pb = P.shape[1], P.shape[2]
    c0, c1, c2, c3, c4, c5, c6, c7 = fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero(), fzero()
    summs = fzero()
    for b in range(nb):
        o = pb * (g * nb + b)
        d = fmul(fload_f16(P, o), fsplat(a1[0, 2 * b]))
        if fmt == Q4_1:
            summs = ffma(fload_f16(P, o + 32), fsplat(a1[0, 2 * b + 1]), summs)
            c0, c4 = _nib_lanes(P, o, 0, qs, b, d, c0, c4)
            c1, c5 = _nib_lanes(P, o, 1, qs, b, d, c1, c5)
            c2, c6 = _nib_lanes(P, o, 2, qs, b, d, c2, c6)
            c3, c7 = _nib_lanes(P, o, 3, qs, b, d, c3, c7)
        else:
            c0 = _lane(P, o, 0, qs, a2, b, d, c0, fmt)
            c1 = _lane(P, o, 1, qs, a2, b, d, c1, fmt)
            c2 = _lane(P, o, 2, qs, a2, b, d, c2, fmt)
            c3 = _lane(P, o, 3, qs, a2, b, d, c3, fmt)
            c4 = _lane(P, o, 4, qs, a2, b, d, c4, fmt)
            c5 = _lane(P, o, 5, qs, a2, b, d, c5, fmt)
            c6 = _lane(P, o, 6, qs, a2, b, d, c6, fmt)
            c7 = _lane(P, o, 7, qs, a2, b, d, c7, fmt)
    r = fadd(fadd(fadd(c0, c4), fadd(c2, c6)), fadd(fadd(c1, c5), fadd(c3, c7)))
    if fmt == Q4_1:
        r = fadd(r, summs)
    fstore(out, 4 * GROUP * g, r)


def _kernel(fmt):
    @njit(cache=True, parallel=True, error_model="numpy")
    def gemv(P, qs, a1, a2, out):
        """out [M, N] for M activation rows (a few: the decode step of several sequences). Each group of
        16 weight rows is read from memory once and used for every activation row while it is in L1;
        each row's sums are exactly its one-row gemv's."""
        G = P.shape[0]
        M = qs.shape[0]
        for t in prange((G + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK):
            for g in range(t * GROUPS_PER_TASK, min(G, (t + 1) * GROUPS_PER_TASK)):
                for m in range(M):
                    _group(P, g, qs[m:m + 1], a1[m:m + 1], a2[m:m + 1], out[m:m + 1], fmt)
    return gemv


gemv_q8_0 = _kernel(Q8_0)
gemv_q5_0 = _kernel(Q5_0)
gemv_q4_1 = _kernel(Q4_1)
