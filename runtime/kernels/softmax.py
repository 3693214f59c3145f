"""soft_max_ext: softmax(x*scale + mask) per row, bit for bit as ggml's CPU op (ops.cpp
ggml_compute_forward_soft_max_f32 + vec.cpp ggml_vec_soft_max_f32, AVX512 build):

  wp = x*scale (+ mask); max = max(wp)
  chunks of 16: e = ggml_v_expf(wp - max); sum += (double)_mm512_reduce_add_ps(e)
  leftovers:    e = expf(wp - max);        sum += (double)e
  y = e * (float)(1.0/sum)

A fully masked row (max = -inf) gives zeros here (ggml would produce NaN)."""
import numpy as np
from numba import njit, prange

from .ggml_math import reduce16, v_expf

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
        mx = F32(-np.inf)
        for n in range(N):
            v = x[b, m, n] * sc
            if has_mask:
                v += mask[m, n]
            o[n] = v
            mx = max(mx, v)
        if mx == F32(-np.inf):      # fully masked row
            for n in range(N):
                o[n] = F32(0.0)
            continue
        s = 0.0
        i = 0
        while i + 16 <= N:
            for k in range(16):
                o[i + k] = v_expf(o[i + k] - mx)
            s += np.float64(reduce16(o, i))
            i += 16
        while i < N:
            e = np.exp(o[i] - mx)
            o[i] = e
            s += np.float64(e)
            i += 1
        inv = F32(1.0 / s)
        for n in range(N):
            o[n] *= inv
