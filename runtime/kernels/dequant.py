"""Rows of weights as float32 (ggml-quants.c dequantize_row_*, in the float32 operation order of
gguf.quants / ggml): get_rows (embedding lookups) and debugging.

One driver walks rows and blocks (geometry from ggml_common); each format has one block decoder
`_block_*(w, o, y, e, fmt)`: the block at byte o of row w into y[e:e + block_size].

Kernels: deq_*(w [N, row_bytes] u8, rows int64 [R], out [R, ne0] f32).
"""
import numpy as np
from numba import njit
from numba.extending import overload

from ggraph.runtime.kernels.ggml_common import (
    IQ4_NL, IQ4_XS, KVALUES_IQ4NL, Q2_K, Q3_K, Q4_0, Q4_1, Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0, block_bytes, block_size,
)
from ggraph.runtime.kernels.simd.scalar import b8, f16at, u32at

_KV = np.array(KVALUES_IQ4NL, dtype=np.float32)


# ---- 32-element blocks ------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _block_q4_0(w, o, y, e, fmt):
    """d, qs[16]: y = d * (q - 8)."""
    d = f16at(w, o)
    for j in range(16):
        q = w[o + 2 + j]
        y[e + j] = d * np.float32(np.int32(q & 15) - 8)
        y[e + j + 16] = d * np.float32(np.int32(q >> 4) - 8)


@njit(cache=True, inline="always")
def _block_iq4_nl(w, o, y, e, fmt):
    """d, qs[16]: y = d * kvalues_iq4nl[q]."""
    d = f16at(w, o)
    for j in range(16):
        q = w[o + 2 + j]
        y[e + j] = d * _KV[q & 15]
        y[e + j + 16] = d * _KV[q >> 4]


@njit(cache=True, inline="always")
def _block_q4_1(w, o, y, e, fmt):
    """d, m, qs[16]: y = d * q + m."""
    d = f16at(w, o)
    mn = f16at(w, o + 2)
    for j in range(16):
        q = w[o + 4 + j]
        y[e + j] = d * np.float32(q & 15) + mn
        y[e + j + 16] = d * np.float32(q >> 4) + mn


@njit(cache=True, inline="always")
def _block_q5(w, o, y, e, fmt):
    """Q5_0: d, qh u32, qs[16], y = d * (q - 16); Q5_1: d, m, qh, qs[16], y = d * q + m; q = nibble
    | bit << 4 where bit j of qh belongs to element j (low nibbles are elements 0-15)."""
    has_min = fmt == Q5_1
    hb = 4 if has_min else 2
    d = f16at(w, o)
    mn = f16at(w, o + 2) if has_min else np.float32(0.0)
    qh = u32at(w, o + hb)
    for j in range(32):
        byte = np.int32(w[o + hb + 4 + j % 16])
        q = ((byte >> 4) if j >= 16 else (byte & 15)) | (np.int32((qh >> j) & 1) << 4)
        if has_min:
            y[e + j] = d * np.float32(q) + mn
        else:
            y[e + j] = d * np.float32(q - 16)


@njit(cache=True, inline="always")
def _block_q8_0(w, o, y, e, fmt):
    """d, qs int8[32]: y = q * d."""
    d = f16at(w, o)
    for j in range(32):
        y[e + j] = np.float32(np.int8(w[o + 2 + j])) * d


# ---- 256-element super-blocks -----------------------------------------------------------------------

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


@njit(cache=True, inline="always")
def _block_q2_k(w, o, y, e0, fmt):
    """scales[16], qs[64], d, dmin."""
    d = f16at(w, o + 80)
    dmin = f16at(w, o + 82)
    for e in range(256):
        h, rem = e // 128, e % 128
        j, l = rem // 32, rem % 32
        q = (np.int32(w[o + 16 + 32 * h + l]) >> (2 * j)) & 3
        sc = np.int32(w[o + e // 16])
        y[e0 + e] = (d * np.float32(sc & 15)) * np.float32(q) - dmin * np.float32(sc >> 4)


@njit(cache=True, inline="always")
def _block_q3_k(w, o, y, e0, fmt):
    """hmask[32], qs[64], scales[12], d."""
    d = f16at(w, o + 108)
    for e in range(256):
        h, rem = e // 128, e % 128
        j, l = rem // 32, rem % 32
        q = (np.int32(w[o + 32 + 32 * h + l]) >> (2 * j)) & 3
        if not (np.int32(w[o + l]) >> (4 * h + j)) & 1:
            q -= 4
        sc = _scale_q3(w, o + 96, e // 16)
        y[e0 + e] = (d * np.float32(sc)) * np.float32(q)


@njit(cache=True, inline="always")
def _block_q45_k(w, o, y, e0, fmt):
    """Q4_K: d, dmin, scales[12], qs[128]; Q5_K adds qh[32] before qs."""
    q5 = fmt == Q5_K
    qo = 48 if q5 else 16
    d = f16at(w, o)
    dmin = f16at(w, o + 2)
    for e in range(256):
        sub, l = e // 32, e % 32
        byte = np.int32(w[o + qo + 32 * (sub // 2) + l])
        q = (byte >> 4) if sub % 2 else (byte & 15)
        if q5 and (np.int32(w[o + 16 + l]) >> sub) & 1:
            q += 16
        sc, mn = _scale_min_k4(w, o + 4, sub)
        y[e0 + e] = (d * np.float32(sc)) * np.float32(q) - dmin * np.float32(mn)


@njit(cache=True, inline="always")
def _block_q6_k(w, o, y, e0, fmt):
    """ql[128], qh[64], scales int8[16], d; q = 6 bits - 32."""
    d = f16at(w, o + 208)
    for e in range(256):
        h, rem = e // 128, e % 128
        j, l = rem // 32, rem % 32          # j: which of the four 32-runs in the half
        lbyte = np.int32(w[o + 64 * h + l + 32 * (j % 2)])
        low = (lbyte >> 4) if j >= 2 else (lbyte & 15)
        hi = (np.int32(w[o + 128 + 32 * h + l]) >> (2 * j)) & 3
        q = (low | (hi << 4)) - 32
        sc = np.int8(w[o + 192 + 8 * h + l // 16 + 2 * j])
        y[e0 + e] = (d * np.float32(sc)) * np.float32(q)


@njit(cache=True, inline="always")
def _block_iq4_xs(w, o, y, e0, fmt):
    """d, scales_h u16, scales_l[4], qs[128]: y = d * (ls - 32) * kvalues_iq4nl[q]."""
    d = f16at(w, o)
    sh = np.int32(w[o + 2]) | (np.int32(w[o + 3]) << 8)
    for ib in range(8):
        ls = ((np.int32(w[o + 4 + ib // 2]) >> (4 * (ib % 2))) & 15) | (((sh >> (2 * ib)) & 3) << 4)
        dl = d * np.float32(ls - 32)
        for j in range(16):
            q = w[o + 8 + 16 * ib + j]
            y[e0 + 32 * ib + j] = dl * _KV[q & 15]
            y[e0 + 32 * ib + j + 16] = dl * _KV[q >> 4]


_BLOCKS = {Q4_0: _block_q4_0, Q4_1: _block_q4_1, Q5_0: _block_q5, Q5_1: _block_q5, Q8_0: _block_q8_0,
           IQ4_NL: _block_iq4_nl, Q2_K: _block_q2_k, Q3_K: _block_q3_k, Q4_K: _block_q45_k, Q5_K: _block_q45_k,
           Q6_K: _block_q6_k, IQ4_XS: _block_iq4_xs}


def _block(w, o, y, e, fmt):
    """The block decoder of the literal type id fmt."""


@overload(_block, inline="always", prefer_literal=True)
def _ov_block(w, o, y, e, fmt):
    impl = _BLOCKS[fmt.literal_value]
    return lambda w, o, y, e, fmt: impl(w, o, y, e, fmt)


def _kernel(fmt):
    """dequantize_row_* over the requested rows, for one type (fmt a compile-time constant)."""
    @njit(cache=True)
    def deq(w, rows, out):
        bb, bs = block_bytes(fmt), block_size(fmt)
        for i in range(rows.shape[0]):
            wr, y = w[rows[i]], out[i]
            for b in range(w.shape[1] // bb):
                _block(wr, bb * b, y, bs * b, fmt)
    return deq


deq_q4_0, deq_q4_1, deq_q5_0, deq_q5_1, deq_q8_0, deq_iq4_nl = (_kernel(t) for t in (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL))
deq_q2_k, deq_q3_k, deq_q4_k, deq_q5_k, deq_q6_k, deq_iq4_xs = (_kernel(t) for t in (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS))


# ---- float types: exact conversions -----------------------------------------------------------------

def deq_f32(w, rows, out):
    out[:] = w[rows].view(np.float32)


def deq_f16(w, rows, out):
    out[:] = w[rows].view(np.float16)


def deq_bf16(w, rows, out):
    out[:] = (w[rows].view(np.uint16).astype(np.uint32) << 16).view(np.float32)
