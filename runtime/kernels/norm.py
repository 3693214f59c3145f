"""rms_norm and norm over rows (ne0), as ggml's CPU ops: sums in float64, scale in float32."""
import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def rms_norm_f32(x, out, eps):
    """x, out: float32 [rows, n]. out = x / sqrt(mean(x^2) + eps)."""
    rows, n = x.shape
    for r in prange(rows):
        s = 0.0
        for i in range(n):
            v = np.float64(x[r, i])
            s += v * v
        mean = np.float32(s / n)
        scale = np.float32(1.0) / np.sqrt(mean + np.float32(eps))
        for i in range(n):
            out[r, i] = x[r, i] * scale


@njit(cache=True, parallel=True)
def norm_f32(x, out, eps):
    """LayerNorm without affine: (x - mean) / sqrt(var + eps)."""
    rows, n = x.shape
    for r in prange(rows):
        s = 0.0
        for i in range(n):
            s += np.float64(x[r, i])
        mean = np.float32(s / n)
        s2 = 0.0
        for i in range(n):
            d = x[r, i] - mean
            out[r, i] = d
            s2 += np.float64(d * d)
        var = np.float32(s2 / n)
        scale = np.float32(1.0) / np.sqrt(var + np.float32(eps))
        for i in range(n):
            out[r, i] *= scale


@njit(cache=True, parallel=True)
def rms_norm_mul_f32(x, w, out, eps):
    """Fused rms_norm(x) * w (w broadcast over rows): one pass less over the activations."""
    rows, n = x.shape
    for r in prange(rows):
        s = 0.0
        for i in range(n):
            v = np.float64(x[r, i])
            s += v * v
        mean = np.float32(s / n)
        scale = np.float32(1.0) / np.sqrt(mean + np.float32(eps))
        for i in range(n):
            out[r, i] = (x[r, i] * scale) * w[i]
