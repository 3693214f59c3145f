"""soft_max_ext: softmax(x*scale + mask) per row, bit for bit as ggml's CPU op (ops.cpp
ggml_compute_forward_soft_max_f32 + vec.cpp ggml_vec_soft_max_f32, AVX512 build):

  wp = x*scale (+ mask); max = max(wp)
  chunks of 16: e = ggml_v_expf(wp - max); sum += (double)_mm512_reduce_add_ps(e)
  leftovers:    e = expf(wp - max);        sum += (double)e
  y = e * (float)(1.0/sum)

A fully masked row (max = -inf) gives zeros here (ggml would produce NaN)."""
import numpy as np
from numba import njit, prange

from .simd.f32 import fadd, fexp, fhmax, fhsum_gcc, fload, fmax, fmul, fsplat, fstore, fsub

F32 = np.float32


@njit(cache=True, parallel=True)
def soft_max_f32(x, mask, out, scale, has_mask):
    """x, out: float32 [B, M, N] (rows of N); mask: float32 [Mm, N] with Mm >= M, broadcast over B."""
    B, M, N = x.shape
    sc = F32(scale)
    for bm in prange(B * M):
        b = bm // M
        m = bm - b * M
        o = out[b, m]
        xr = x[b, m]
        mr = mask[m]
        vsc = fsplat(sc)
        vmx = fsplat(F32(-np.inf))
        n = 0
        while n + 16 <= N:           # wp = x*scale (+ mask), 16 lanes; max is exact in any order
            v = fmul(fload(xr, 4 * n), vsc)
            if has_mask:
                v = fadd(v, fload(mr, 4 * n))
            fstore(o, 4 * n, v)
            vmx = fmax(vmx, v)
            n += 16
        mx = fhmax(vmx)
        while n < N:
            v = xr[n] * sc
            if has_mask:
                v += mr[n]
            o[n] = v
            mx = max(mx, v)
            n += 1
        if mx == F32(-np.inf):      # fully masked row
            for n in range(N):
                o[n] = F32(0.0)
            continue
        s = 0.0
        i = 0
        vmx = fsplat(mx)
        while i + 16 <= N:
            e = fexp(fsub(fload(o, 4 * i), vmx))
            fstore(o, 4 * i, e)
            s += np.float64(fhsum_gcc(e))
            i += 16
        while i < N:
            e = np.exp(o[i] - mx)
            o[i] = e
            s += np.float64(e)
            i += 1
        inv = F32(1.0 / s)
        vinv = fsplat(inv)
        n = 0
        while n + 16 <= N:
            fstore(o, 4 * n, fmul(fload(o, 4 * n), vinv))
            n += 16
        while n < N:
            o[n] *= inv
            n += 1
