"""mul_mat between activations (attention: K x Q and V x softmax), batched over heads with GQA
broadcast: out[b, m, n] = sum_k a[b // r, n, k] * x[b, m, k]. Inputs are C-contiguous float32.

The summation order is llama.cpp's CPU backend (AVX512 build), so results are bit-identical:

* "sgemm" order (llamafile_sgemm, tinyBLAS<16, __m512>), used when src1 has M >= 2 columns,
  K % 16 == 0 and N % 4 == 0: 16 float32 lanes, lane k accumulates fma(a, x, lane) over
  l = k, k+16, k+32, ...; then _mm512_reduce_add_ps.
* "vec_dot" order (ggml_vec_dot_f16 / ggml_vec_dot_f32), used otherwise (one-token decode):
  4 accumulators of 16 lanes over steps of 64, acc0 += acc2, acc1 += acc3, acc0 += acc1, then
  _mm512_reduce_add_ps; the K % 64 leftovers are added in double (F16 src0, result rounded to
  float at the end) or in float (F32 src0, in the way GCC vectorized that loop).

With an F16 src0 both operands hold F16 values (the cache is rounded on write, src1 is rounded by
the caller as ggml converts it), so every product is exact in float32 and fma == mul + add.
"""
import numpy as np
from numba import njit, prange

from ggraph.runtime.kernels.ggml_math import fma32
from ggraph.runtime.kernels.simd.f32 import fadd, ffma, fhsum_gcc, fload, fzero

F32 = np.float32


@njit(cache=True, parallel=True)
def bmm_sgemm_order(a, x, out):
    """a, x C-contiguous; K % 16 == 0."""
    B0, N, K = a.shape
    B1, M, _ = x.shape
    r = B1 // B0
    for bm in prange(B1 * M):
        b = bm // M
        m = bm - b * M
        ab = b // r
        xo = (b * M + m) * K
        n = 0
        while n + 4 <= N:          # 4 rows of a share each load of x (as tinyBLAS' RM=4 tiles)
            ao = (ab * N + n) * K
            c0 = fzero()
            c1 = fzero()
            c2 = fzero()
            c3 = fzero()
            for l in range(0, K, 16):
                xv = fload(x, 4 * (xo + l))
                c0 = ffma(fload(a, 4 * (ao + l)), xv, c0)
                c1 = ffma(fload(a, 4 * (ao + K + l)), xv, c1)
                c2 = ffma(fload(a, 4 * (ao + 2 * K + l)), xv, c2)
                c3 = ffma(fload(a, 4 * (ao + 3 * K + l)), xv, c3)
            out[b, m, n] = fhsum_gcc(c0)
            out[b, m, n + 1] = fhsum_gcc(c1)
            out[b, m, n + 2] = fhsum_gcc(c2)
            out[b, m, n + 3] = fhsum_gcc(c3)
            n += 4
        while n < N:
            ao = (ab * N + n) * K
            c0 = fzero()
            for l in range(0, K, 16):
                c0 = ffma(fload(a, 4 * (ao + l)), fload(x, 4 * (xo + l)), c0)
            out[b, m, n] = fhsum_gcc(c0)
            n += 1


@njit(cache=True, parallel=True)
def bmm_vec_dot_order(a, x, out, f16):
    """a, x C-contiguous."""
    B0, N, K = a.shape
    B1, M, _ = x.shape
    r = B1 // B0
    kp = K - K % 64
    kv = kp + (K - kp) // 8 * 8
    for bm in prange(B1 * M):
        b = bm // M
        m = bm - b * M
        ab = b // r
        xo = (b * M + m) * K
        for n in range(N):
            ao = (ab * N + n) * K
            c0 = fzero()
            c1 = fzero()
            c2 = fzero()
            c3 = fzero()
            for l in range(0, kp, 64):
                c0 = ffma(fload(a, 4 * (ao + l)), fload(x, 4 * (xo + l)), c0)
                c1 = ffma(fload(a, 4 * (ao + l + 16)), fload(x, 4 * (xo + l + 16)), c1)
                c2 = ffma(fload(a, 4 * (ao + l + 32)), fload(x, 4 * (xo + l + 32)), c2)
                c3 = ffma(fload(a, 4 * (ao + l + 48)), fload(x, 4 * (xo + l + 48)), c3)
            c0 = fadd(c0, c2)
            c1 = fadd(c1, c3)
            c0 = fadd(c0, c1)
            if f16:
                s = np.float64(fhsum_gcc(c0))
                for l in range(kp, K):
                    s += np.float64(a[ab, n, l] * x[b, m, l])
                out[b, m, n] = F32(s)
            else:
                # GCC vectorizes this leftover loop as an in-order reduction: products by vmulps
                # in groups of 8, then scalar fmas for the last (K - kp) % 8
                sf = fhsum_gcc(c0)
                for l in range(kp, kv):
                    sf = sf + a[ab, n, l] * x[b, m, l]
                for l in range(kv, K):
                    sf = fma32(a[ab, n, l], x[b, m, l], sf)
                out[b, m, n] = sf


def uses_sgemm(N: int, M: int, K: int, f16: bool = True, src1_contiguous: bool = True) -> bool:
    """Whether ggml's mul_mat takes llamafile_sgemm for src0 [N, K] x src1 [M, K] (per head)."""
    if M < 2 or K % 16 or N % 4:
        return False
    # F32 x F32: sgemm is only tried on a contiguous src1 (no conversion pass)
    return f16 or src1_contiguous


def bmm_f32(a, x, out, f16=True, src1_contiguous=True):
    """a [B0, N, K], x [B1, M, K], out [B1, M, N]; f16: src0 is an F16 tensor (values F16-exact)."""
    _, N, K = a.shape
    M = x.shape[1]
    a = np.ascontiguousarray(a, dtype=np.float32)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if uses_sgemm(N, M, K, f16, src1_contiguous):
        bmm_sgemm_order(a, x, out)
    else:
        bmm_vec_dot_order(a, x, out, f16)
