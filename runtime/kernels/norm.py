"""rms_norm and norm over rows (ne0), bit for bit as ggml's CPU ops (ops.cpp, AVX512 build).

rms_norm: sum += (double)(x*x) with the square in float32; mean = (float)(sum/n);
          scale = 1.0f/sqrtf(mean + eps); y = x*scale.
norm:     mean = (float)(double sum of x) / n in float32; then ggml_vec_cvar_f32: for each chunk of
          16, d = x - mean, sum += (double)_mm512_reduce_add_ps(d*d), leftovers
          sum += (double)(d*d); variance = (float)(sum/n); y = d * (1.0f/sqrtf(variance + eps)).
"""
import numpy as np
from numba import njit, prange

from .ggml_math import reduce16

F32 = np.float32


@njit(cache=True, inline="always")
def _rms_scale(x, r, n, eps):
    s = 0.0
    for i in range(n):
        v = x[r, i]
        s += np.float64(v * v)
    mean = F32(s / n)
    return F32(1.0) / np.sqrt(mean + eps)


@njit(cache=True, parallel=True)
def rms_norm_f32(x, out, eps):
    """x, out: float32 [rows, n]. out = x / sqrt(mean(x^2) + eps)."""
    rows, n = x.shape
    eps = F32(eps)
    for r in prange(rows):
        scale = _rms_scale(x, r, n, eps)
        for i in range(n):
            out[r, i] = x[r, i] * scale


@njit(cache=True, parallel=True)
def norm_f32(x, out, eps):
    """LayerNorm without affine: (x - mean) / sqrt(var + eps)."""
    rows, n = x.shape
    eps = F32(eps)
    for r in prange(rows):
        s = 0.0
        for i in range(n):
            s += np.float64(x[r, i])
        mean = F32(s) / F32(n)
        for i in range(n):
            out[r, i] = x[r, i] - mean
        sq = np.empty(16, np.float32)
        s2 = 0.0
        i = 0
        while i + 16 <= n:
            for k in range(16):
                d = out[r, i + k]
                sq[k] = d * d
            s2 += np.float64(reduce16(sq, 0))
            i += 16
        while i < n:
            d = out[r, i]
            s2 += np.float64(d * d)
            i += 1
        var = F32(s2 / n)
        scale = F32(1.0) / np.sqrt(var + eps)
        for i in range(n):
            out[r, i] *= scale


@njit(cache=True, parallel=True)
def rms_norm_mul_f32(x, w, out, eps):
    """Fused rms_norm(x) * w (w broadcast over rows), as ggml's rms_norm_mul_fused: (x*scale)*w."""
    rows, n = x.shape
    eps = F32(eps)
    for r in prange(rows):
        scale = _rms_scale(x, r, n, eps)
        for i in range(n):
            out[r, i] = (x[r, i] * scale) * w[i]
