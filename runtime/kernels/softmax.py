"""soft_max_ext: softmax(x*scale + mask) per row, as ggml's CPU op (exp in float32, sum in float64)."""
import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def soft_max_f32(x, mask, out, scale, has_mask):
    """x, out: float32 [B, M, N] (rows of N); mask: float32 [Mm, N] with Mm >= M, broadcast over B."""
    B, M, N = x.shape
    for bm in prange(B * M):
        b = bm // M
        m = bm - b * M
        mx = -np.inf
        for n in range(N):
            v = x[b, m, n] * np.float32(scale)
            if has_mask:
                v += mask[m, n]
            out[b, m, n] = v
            if v > mx:
                mx = v
        s = 0.0
        if mx == -np.inf:      # fully masked row: ggml yields zeros here
            for n in range(N):
                out[b, m, n] = np.float32(0.0)
            continue
        for n in range(N):
            e = np.exp(out[b, m, n] - np.float32(mx))
            out[b, m, n] = e
            s += np.float64(e)
        inv = np.float32(1.0 / s)
        for n in range(N):
            out[b, m, n] *= inv
