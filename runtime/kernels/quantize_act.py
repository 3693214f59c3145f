"""Activation quantization, the way llama.cpp's x86 CPU backend converts src1 to a weight's vec_dot type
(quants.c quantize_row_q8_*, and the fp16 / bf16 from_float conversions).

Q8_0 / Q8_1 (AVX path of quantize_row_q8_0/1): per 32 values amax, d = amax/127 (stored as fp16),
id = 127/amax, q = round-half-even(x*id); Q8_1 also stores s = fp16(d * sum(q)) with the unrounded d.
Q8_K (quantize_row_q8_K_ref): per 256 values the signed extreme `max`, iscale = -127/max,
q = min(127, nearest_int(iscale*x)), d = 1/iscale (float32), bsums = sums of 16 q.

Every quantizer returns (qs int8 [M, K], a1, a2) with per-block side arrays:
  Q8_0: a1 = (d, sum(q)) interleaved per block [M, 2*K/32] float32 (d fp16-rounded, the sum exact);
        a2 = -128 * (sum of each 4 consecutive q) int32 [M, K/4]. Kernels run signed weights as
        unsigned (+ an offset, 128 or a power of two below) in VNNI dots and remove the offset
        exactly: per 32-bit lane (llama.cpp's 8-lane vec_dot sums) with a2, per block with the sum.
  Q8_1: a1 = (d, s) interleaved per block, float32 fp16-rounded [M, 2*K/32]; a2 = a1
  (interleaving lets a kernel fetch both values of 2 blocks with one 16-byte load)
  Q8_K: a1 = d (float32) [M, K/256], a2 = bsums int32 [M, K/16]
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.simd.f32 import fabs, fhmax, fload, fmax, fmul, fsplat, store_q8, store_q8_g4
from ggraph.runtime.kernels.simd.scalar import fround_f16

_F127 = np.float32(127.0)


@njit(cache=True, error_model="numpy", inline="always")
def _q8_block(x, xo, qs, qo, g4, go, kind):
    """Quantize 32 floats at byte xo of x into qs at byte qo (kind 0: also the -128 x 4-sums into g4
    at byte go); returns (d unrounded, sum of q)."""
    v0 = fload(x, xo)
    v1 = fload(x, xo + 64)
    amax = fhmax(fmax(fabs(v0), fabs(v1)))
    d = amax / _F127
    inv = _F127 / amax if amax != 0 else np.float32(0.0)
    sc = fsplat(inv)
    if kind == 0:
        return d, store_q8_g4(fmul(v0, sc), qs, qo, g4, go) + store_q8_g4(fmul(v1, sc), qs, qo + 16, g4, go + 16)
    return d, store_q8(fmul(v0, sc), qs, qo) + store_q8(fmul(v1, sc), qs, qo + 16)


@njit(cache=True, error_model="numpy")
def _q8_rows(x, m0, m1, qs, a1, a2, kind):
    # kind 0: Q8_0 (d, exact sum) + a2 lane corrections, kind 1: Q8_1 (d, fp16(d*sum)); a1 is the
    # interleaved pair array
    K = x.shape[1]
    for m in range(m0, m1):
        for b in range(K // 32):
            d, isum = _q8_block(x, 4 * (m * K + 32 * b), qs, m * K + 32 * b, a2, 4 * (m * (K // 4) + 8 * b), kind)
            a1[m, 2 * b] = fround_f16(d)
            if kind == 0:
                a1[m, 2 * b + 1] = np.float32(isum)   # exact: |sum| <= 32*127
            else:
                a1[m, 2 * b + 1] = fround_f16(d * np.float32(isum))


@njit(cache=True, parallel=True, error_model="numpy")
def _q8_rows_par(x, qs, a1, a2, kind):
    for m in prange(x.shape[0]):
        _q8_rows(x, m, m + 1, qs, a1, a2, kind)


@njit(cache=True, error_model="numpy")
def _q8k_rows(x, m0, m1, qs, d, bsums):
    K = x.shape[1]
    for m in range(m0, m1):
        for b in range(K // 256):
            j0 = 256 * b
            xo = 4 * (m * K + j0)
            acc = fabs(fload(x, xo))
            for g in range(1, 16):
                acc = fmax(acc, fabs(fload(x, xo + 64 * g)))
            amax = fhmax(acc)
            if amax == 0:
                d[m, b] = 0.0
                qs[m, j0:j0 + 256] = 0
                bsums[m, 16 * b:16 * b + 16] = 0
                continue
            j = j0
            while j < j0 + 255 and abs(x[m, j]) != amax:   # first largest magnitude, as ggml picks it
                j += 1
            iscale = np.float32(-127.0) / x[m, j]
            sc = fsplat(iscale)
            for g in range(16):
                bsums[m, 16 * b + g] = store_q8(fmul(fload(x, xo + 64 * g), sc), qs, m * K + j0 + 16 * g)
            d[m, b] = np.float32(1.0) / iscale


@njit(cache=True, parallel=True, error_model="numpy")
def _q8k_rows_par(x, qs, d, bsums):
    for m in prange(x.shape[0]):
        _q8k_rows(x, m, m + 1, qs, d, bsums)


# up to this many rows are quantized on one thread (a few us): short prompts and decode steps of a
# few sequences then never compile the parallel version, ~1 s of a first run
SERIAL_ROWS = 16


def _q8(x, kind, bufs):
    M, K = x.shape
    if bufs is None:
        bufs = q8_buffers(M, K, kind)
    kernel, args = _q8_call(x, kind, bufs)
    kernel(*args)
    return bufs


def _q8_call(x, kind, bufs):
    """(kernel, args) that quantize x into bufs."""
    qs, a1, a2 = bufs
    if x.shape[0] <= SERIAL_ROWS:
        return _q8_rows, (x, 0, x.shape[0], qs, a1, a2, kind)
    return _q8_rows_par, (x, qs, a1, a2, kind)


def q8_buffers(M, K, kind):
    """Output arrays for quantize_q8_0 (kind 0) / quantize_q8_1 (kind 1); mul_mat reuses them."""
    ds = np.empty((M, K // 16), np.float32)   # interleaved (d, sum or s) per block
    if kind == 0:
        return np.empty((M, K), np.int8), ds, np.empty((M, K // 4), np.int32)
    return np.empty((M, K), np.int8), ds, ds


def q8k_buffers(M, K):
    return np.empty((M, K), np.int8), np.empty((M, K // 256), np.float32), np.empty((M, K // 16), np.int32)


def quantize_q8_0(x, bufs=None):
    return _q8(x, 0, bufs)


def quantize_q8_1(x, bufs=None):
    return _q8(x, 1, bufs)


def quantize_q8_K(x, bufs=None):
    M, K = x.shape
    if bufs is None:
        bufs = q8k_buffers(M, K)
    kernel, args = q8_K_call(x, bufs)
    kernel(*args)
    return bufs


def q8_0_call(x, bufs):
    return _q8_call(x, 0, bufs)


def q8_1_call(x, bufs):
    return _q8_call(x, 1, bufs)


def q8_K_call(x, bufs):
    qs, d, bsums = bufs
    if x.shape[0] <= SERIAL_ROWS:
        return _q8k_rows, (x, 0, x.shape[0], qs, d, bsums)
    return _q8k_rows_par, (x, qs, d, bsums)


@njit(cache=True, error_model="numpy")
def _round_f16_flat(x, out):
    for i in range(x.size):
        out[i] = fround_f16(x[i])


@njit(cache=True, error_model="numpy")
def round_f16_4d(x, out):
    """round_to_f16 of a 4-D x of any strides into the C-contiguous out of its shape."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            for k in range(x.shape[2]):
                for m in range(x.shape[3]):
                    out[i, j, k, m] = fround_f16(x[i, j, k, m])


def round_to_f16(x, out=None):
    """x rounded to fp16 (round-to-nearest-even), kept as float32: ggml's fp32 -> fp16 conversion, as
    activations meet F16 weights or the F16 KV cache, and as an F16 store then load gives. Compiled
    (vcvtps2ph): numpy's astype(float16) takes a slow path for results that are F16 subnormals, which
    softmax probabilities at long context mostly are."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if out is None:
        out = np.empty_like(x)
    _round_f16_flat(x.reshape(-1), out.reshape(-1))
    return out


def round_to_bf16(x):
    """BF16 weights: activations rounded like ggml_compute_fp32_to_bf16 (RNE, NaN kept quiet)."""
    u = x.view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u.astype(np.uint64) + (0x7FFF + ((u >> 16) & 1))) >> 16).astype(np.uint32) << 16
    r = np.where(nan, (u & 0xFFFF0000) | (64 << 16), r).astype(np.uint32)
    return r.view(np.float32)


def keep_f32(x):
    return x
