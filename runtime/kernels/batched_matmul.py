"""mul_mat between activations (attention: K x Q and V x softmax), batched over heads with GQA
broadcast and over streams (several sequences' KV streams, ggml's dim 3):
out[s, b, m, n] = sum_k a[s // r3, b // r, n, k] * x[s, b, m, k].

`a` is read where it lies: the KV cache's views (rows contiguous, any row and head strides), held
as float32 or, for an F16 cache, as uint16 F16 bits (runtime/storage.py) converted on load with
vcvtph2ps. `x` is float32, C-contiguous.

The summation order is llama.cpp's CPU backend (AVX512 build), so results are bit-identical:

* "sgemm" order (llamafile_sgemm, tinyBLAS<16, __m512>), used when src1 has M >= 2 columns,
  K % 16 == 0 and N % 4 == 0: 16 float32 lanes, lane k accumulates fma(a, x, lane) over
  l = k, k+16, k+32, ...; then _mm512_reduce_add_ps. The order of one output does not depend on
  the tiling, so the kernel tiles 4 rows of a by 4 rows of x (16 accumulators, 8 loads per 16 FMAs)
  over chunks of a that stay in L1.
* "vec_dot" order (ggml_vec_dot_f16 / ggml_vec_dot_f32), used otherwise (one-token decode):
  4 accumulators of 16 lanes over steps of 64, acc0 += acc2, acc1 += acc3, acc0 += acc1, then
  _mm512_reduce_add_ps; the K % 64 leftovers are added in double (F16 src0, result rounded to
  float at the end) or in float (F32 src0, in the way GCC vectorized that loop).

With an F16 src0 both operands hold F16 values (the cache is F16, src1 is rounded by the caller as
ggml converts it), so every product is exact in float32 and fma == mul + add.
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ggraph.runtime.kernels.ggml_math import fma32
from ggraph.runtime.kernels.simd.f32 import fadd, ffma, fhsum_gcc, fload, fload_f16, fzero
from ggraph.runtime.kernels.simd.scalar import f16at, f32at

F32 = np.float32
A_CHUNK_BYTES = 16384     # rows of `a` one sgemm task keeps in L1 while x streams past


def load_a(a, off):
    """16 values of src0 at byte `off`, as float32 lanes (F16 bits or float32)."""


def at_a(a, off):
    """One value of src0 at byte `off`, as float32."""


@overload(load_a, inline="always")
def _load_a(a, off):
    if a.dtype == types.uint16:
        return lambda a, off: fload_f16(a, off)
    return lambda a, off: fload(a, off)


@overload(at_a, inline="always")
def _at_a(a, off):
    if a.dtype == types.uint16:
        return lambda a, off: f16at(a, off)
    return lambda a, off: f32at(a, off)


@njit(cache=True, inline="always")
def _store4(out, s, b, m, M, n, N, c0, c1, c2, c3):
    if m < M:
        out[s, b, m, n] = fhsum_gcc(c0)
        if n + 1 < N:
            out[s, b, m, n + 1] = fhsum_gcc(c1)
        if n + 2 < N:
            out[s, b, m, n + 2] = fhsum_gcc(c2)
        if n + 3 < N:
            out[s, b, m, n + 3] = fhsum_gcc(c3)


@njit(cache=True, parallel=True)
def bmm_sgemm_order(a, x, out):
    """K % 16 == 0; a rows contiguous, x C-contiguous."""
    S0, B0, N, K = a.shape
    S1, B1, M, _ = x.shape
    r, r3 = B1 // B0, S1 // S0
    sas, sa0, sa1, es = a.strides[0], a.strides[1], a.strides[2], a.itemsize
    nc = max(4, A_CHUNK_BYTES // (K * es) // 4 * 4)     # rows of a per task
    n_chunks = (N + nc - 1) // nc
    for task in prange(S1 * B1 * n_chunks):
        sb = task // n_chunks
        s = sb // B1
        b = sb - s * B1
        n0 = (task - sb * n_chunks) * nc
        n1 = min(N, n0 + nc)
        a_b = (s // r3) * sas + (b // r) * sa0
        for m in range(0, M, 4):
            # a tile past the edge repeats the last row (loads stay in bounds; never stored)
            x0 = 4 * K * (sb * M + m)
            x1 = 4 * K * (sb * M + min(m + 1, M - 1))
            x2 = 4 * K * (sb * M + min(m + 2, M - 1))
            x3 = 4 * K * (sb * M + min(m + 3, M - 1))
            for n in range(n0, n1, 4):
                a0 = a_b + n * sa1
                a1 = a_b + min(n + 1, N - 1) * sa1
                a2 = a_b + min(n + 2, N - 1) * sa1
                a3 = a_b + min(n + 3, N - 1) * sa1
                c00, c01, c02, c03 = fzero(), fzero(), fzero(), fzero()
                c10, c11, c12, c13 = fzero(), fzero(), fzero(), fzero()
                c20, c21, c22, c23 = fzero(), fzero(), fzero(), fzero()
                c30, c31, c32, c33 = fzero(), fzero(), fzero(), fzero()
                for l in range(0, K, 16):
                    v0 = load_a(a, a0 + es * l)
                    v1 = load_a(a, a1 + es * l)
                    v2 = load_a(a, a2 + es * l)
                    v3 = load_a(a, a3 + es * l)
                    xv = fload(x, x0 + 4 * l)
                    c00, c01, c02, c03 = ffma(v0, xv, c00), ffma(v1, xv, c01), ffma(v2, xv, c02), ffma(v3, xv, c03)
                    xv = fload(x, x1 + 4 * l)
                    c10, c11, c12, c13 = ffma(v0, xv, c10), ffma(v1, xv, c11), ffma(v2, xv, c12), ffma(v3, xv, c13)
                    xv = fload(x, x2 + 4 * l)
                    c20, c21, c22, c23 = ffma(v0, xv, c20), ffma(v1, xv, c21), ffma(v2, xv, c22), ffma(v3, xv, c23)
                    xv = fload(x, x3 + 4 * l)
                    c30, c31, c32, c33 = ffma(v0, xv, c30), ffma(v1, xv, c31), ffma(v2, xv, c32), ffma(v3, xv, c33)
                _store4(out, s, b, m, M, n, N, c00, c01, c02, c03)
                _store4(out, s, b, m + 1, M, n, N, c10, c11, c12, c13)
                _store4(out, s, b, m + 2, M, n, N, c20, c21, c22, c23)
                _store4(out, s, b, m + 3, M, n, N, c30, c31, c32, c33)


@njit(cache=True, error_model="numpy", inline="always")
def _vec_dot(a, ao, es, x, s, b, m, K, kp, kv, f16):
    """One output in ggml_vec_dot_f16 / _f32 order: src0's row at byte ao with x[s, b, m]."""
    xo = 4 * K * ((s * x.shape[1] + b) * x.shape[2] + m)
    c0, c1, c2, c3 = fzero(), fzero(), fzero(), fzero()
    for l in range(0, kp, 64):
        c0 = ffma(load_a(a, ao + es * l), fload(x, xo + 4 * l), c0)
        c1 = ffma(load_a(a, ao + es * (l + 16)), fload(x, xo + 4 * (l + 16)), c1)
        c2 = ffma(load_a(a, ao + es * (l + 32)), fload(x, xo + 4 * (l + 32)), c2)
        c3 = ffma(load_a(a, ao + es * (l + 48)), fload(x, xo + 4 * (l + 48)), c3)
    c0 = fadd(fadd(c0, c2), fadd(c1, c3))
    if f16:
        sd = np.float64(fhsum_gcc(c0))
        for l in range(kp, K):
            sd += np.float64(at_a(a, ao + es * l) * x[s, b, m, l])
        return F32(sd)
    # GCC vectorizes this leftover loop as an in-order reduction: products by vmulps in groups
    # of 8, then scalar fmas for the last (K - kp) % 8
    sf = fhsum_gcc(c0)
    for l in range(kp, kv):
        sf = sf + at_a(a, ao + es * l) * x[s, b, m, l]
    for l in range(kv, K):
        sf = fma32(at_a(a, ao + es * l), x[s, b, m, l], sf)
    return sf


@njit(cache=True, parallel=True)
def bmm_vec_dot_order(a, x, out, f16):
    """a rows contiguous, x C-contiguous. A task is a block of rows (KV cells) for all heads: the
    cache is read once, in its order (a cell's heads are adjacent), each row from L1 for the r
    query heads that share it (GQA). The order of one output is the one-row order above."""
    S0, B0, N, K = a.shape
    S1, B1, M, _ = x.shape
    r, r3 = B1 // B0, S1 // S0
    sas, sa0, sa1, es = a.strides[0], a.strides[1], a.strides[2], a.itemsize
    kp = K - K % 64
    kv = kp + (K - kp) // 8 * 8
    n_blocks = max(1, min(N, 32))
    rows = (N + n_blocks - 1) // n_blocks
    for task in prange(S1 * n_blocks):
        s = task // n_blocks
        n0 = (task - s * n_blocks) * rows
        a_s = (s // r3) * sas
        for m in range(M):
            for n in range(n0, min(N, n0 + rows)):
                for ab in range(B0):
                    ao = a_s + ab * sa0 + n * sa1
                    for j in range(r):
                        out[s, ab * r + j, m, n] = _vec_dot(a, ao, es, x, s, ab * r + j, m, K, kp, kv, f16)


def uses_sgemm(N: int, M: int, K: int, f16: bool = True, src1_contiguous: bool = True) -> bool:
    """Whether ggml's mul_mat takes llamafile_sgemm for src0 [N, K] x src1 [M, K] (per head)."""
    if M < 2 or K % 16 or N % 4:
        return False
    # F32 x F32: sgemm is only tried on a contiguous src1 (no conversion pass)
    return f16 or src1_contiguous


def bmm_f32(a, x, out, f16=True, src1_contiguous=True):
    """a [S0, B0, N, K] (float32, or uint16 F16 bits; rows contiguous), x [S1, B1, M, K] float32,
    out [S1, B1, M, N] (or all three without S: one stream); f16: src0 is an F16 tensor (values
    F16-exact)."""
    if a.ndim == 3:
        a, x, out = a[None], x[None], out[None]
    if a.strides[3] != a.itemsize:
        a = np.ascontiguousarray(a)
    kernel, args = bmm_call(a, np.ascontiguousarray(x, dtype=np.float32), out, f16, src1_contiguous)
    kernel(*args)


def bmm_call(a, x, out, f16, src1_contiguous):
    """(kernel, args) of bmm_f32 on 4-D arrays, a's rows and x contiguous."""
    if uses_sgemm(a.shape[2], x.shape[2], a.shape[3], f16, src1_contiguous):
        return bmm_sgemm_order, (a, x, out)
    return bmm_vec_dot_order, (a, x, out, f16)
