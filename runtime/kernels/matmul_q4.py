"""4-bit 32-blocks: Q4_0 and IQ4_NL (x Q8_0 activations), Q4_1 (x Q8_1 activations).

Q4_1, and Q4_0 / IQ4_NL matrices whose row count is not a multiple of 8, run llama.cpp's 8-lane
vec_dot / tinyBLAS arithmetic (pairs.py).

Q4_0 / IQ4_NL matrices with a multiple of 8 rows are repacked by llama.cpp's CPU backend at load
time (repack.cpp, block_q4_0x8 / block_iq4_nlx8) and multiplied by ggml_gemv/gemm_*_8x8_q8_0, whose
per-output arithmetic is one float chain over the blocks:

    acc = fma(float(exact integer dot of the block), fl(d_w * d_a), acc)      (acc starts at 0)

for one token and for batches alike. repack_q4() mirrors that: 16 rows are interleaved per block
(their 16 fp16 scales, then for each 4 bytes of qs the 16 rows' copies), so one VNNI dot on a
broadcast 4-byte activation group advances the block sums of all 16 rows (one row per 32-bit lane).
Codes run unsigned (Q4_0 q, IQ4_NL kvalue + 128); the offset is removed per block with the
activation block sum. Batches share each weight unpack between 4 tokens.

Kernels: mm_*(w, qs [M, K] i8, a1, a2, out [M, N] f32), see quantize_act.py for a1/a2; w is the raw
[N, row_bytes] u8 blocks or, for the packed kernels, repack_q4's [ceil(N/16), K/32, 288] u8.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels import pairs
from ggraph.runtime.kernels.simd import (
    IQ4NL_VALUES, band, bcast4, bshr, dot_acc, f16at, ffma, fload_f16, fmul, fsplat, fstore, fzero, flane, iadd,
    isplat, load64, lut_iq4, tofloat,
)

ACT_TILE_BYTES = 16384
GROUPS_PER_TASK = 2
_KV = np.array(IQ4NL_VALUES, dtype=np.float32)

mm_q4_1 = pairs.mm_q4_1
mm_q4_0 = pairs.mm_q4_0          # row counts llama.cpp does not repack
mm_iq4_nl = pairs.mm_iq4_nl


def repacks(ne1):
    """Whether llama.cpp's CPU backend repacks a Q4_0 / IQ4_NL matrix of ne1 rows (AVX2 and up)."""
    return ne1 % 8 == 0


def repack_q4(raw, ne0, ne1):
    """[N, K/32 * 18] Q4_0 / IQ4_NL blocks -> [ceil(N/16), K/32, 288]: per 16-row group and block,
    the 16 fp16 scales, then for c = 0..3 the 16 rows' qs bytes 4c..4c+3 (zero rows pad the group)."""
    nb = ne0 // 32
    G = (ne1 + 15) // 16
    blocks = np.zeros((G * 16, nb, 18), np.uint8)
    blocks[:ne1] = raw.reshape(ne1, nb, 18)
    blocks = blocks.reshape(G, 16, nb, 18).transpose(0, 2, 1, 3)          # [G, nb, 16 rows, 18]
    out = np.empty((G, nb, 288), np.uint8)
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


@njit(cache=True, error_model="numpy", inline="always")
def _group1(P, g, qs, a1, m, out, nl):
    K = qs.shape[1]
    nb = K // 32
    acc = fzero()
    for b in range(nb):
        l0, l1, l2, l3, h0, h1, h2, h3, dw = _unpack16(P, 288 * (g * nb + b), nl)
        acc = _tok16(l0, l1, l2, l3, h0, h1, h2, h3, dw, qs, a1, m, b, K, acc, nl)
    _put(out, m, g, acc)


@njit(cache=True, error_model="numpy", inline="always")
def _group4(P, g, qs, a1, m, out, nl):
    K = qs.shape[1]
    nb = K // 32
    acc0, acc1, acc2, acc3 = fzero(), fzero(), fzero(), fzero()
    for b in range(nb):
        l0, l1, l2, l3, h0, h1, h2, h3, dw = _unpack16(P, 288 * (g * nb + b), nl)
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
        mt = max(4, ACT_TILE_BYTES // qs.shape[1] // 4 * 4)   # tokens whose activations stay in L1
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


@njit(cache=True, parallel=True, error_model="numpy")
def mm_q4_0_packed(P, qs, a1, a2, out):
    _mm_packed(P, qs, a1, out, False)


@njit(cache=True, parallel=True, error_model="numpy")
def mm_iq4_nl_packed(P, qs, a1, a2, out):
    _mm_packed(P, qs, a1, out, True)


# ---- dequantization (same float32 operation order as gguf.quants / ggml) ------------------------

@njit(cache=True)
def deq_q4_0(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 18):
            o = 18 * b
            d = f16at(w[r], o)
            for j in range(16):
                q = w[r, o + 2 + j]
                out[i, 32 * b + j] = d * np.float32(np.int32(q & 15) - 8)
                out[i, 32 * b + j + 16] = d * np.float32(np.int32(q >> 4) - 8)


@njit(cache=True)
def deq_iq4_nl(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 18):
            o = 18 * b
            d = f16at(w[r], o)
            for j in range(16):
                q = w[r, o + 2 + j]
                out[i, 32 * b + j] = d * _KV[q & 15]
                out[i, 32 * b + j + 16] = d * _KV[q >> 4]


@njit(cache=True)
def deq_q4_1(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 20):
            o = 20 * b
            d = f16at(w[r], o)
            mn = f16at(w[r], o + 2)
            for j in range(16):
                q = w[r, o + 4 + j]
                out[i, 32 * b + j] = d * np.float32(q & 15) + mn
                out[i, 32 * b + j + 16] = d * np.float32(q >> 4) + mn
