"""rope_ext as ggml's CPU op: per-position cos/sin cache built in float32 with the running
product theta *= theta_scale, YaRN ramp when ext_factor != 0, NORM (adjacent pairs) and NEOX
(i, i + n_dims/2) modes; dims past n_dims pass through."""
import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _yarn_ramp(low, high, i0):
    y = (np.float32(i0) / np.float32(2.0) - low) / max(np.float32(0.001), high - low)
    return np.float32(1.0) - min(np.float32(1.0), max(np.float32(0.0), y))


@njit(cache=True)
def _cache(p, n_dims, theta_scale, freq_factors, has_ff, freq_scale, corr0, corr1, ext_factor, mscale, cs):
    theta = np.float32(p)
    for i0 in range(0, n_dims, 2):
        ff = freq_factors[i0 // 2] if has_ff else np.float32(1.0)
        theta_extrap = theta / ff
        theta_interp = freq_scale * theta_extrap
        th = theta_interp
        ms = mscale
        if ext_factor != np.float32(0.0):
            ramp_mix = _yarn_ramp(corr0, corr1, i0) * ext_factor
            th = theta_interp * (np.float32(1.0) - ramp_mix) + theta_extrap * ramp_mix
            ms *= np.float32(1.0) + np.float32(0.1) * np.float32(math.log(np.float32(1.0) / freq_scale))
        cs[i0] = np.float32(math.cos(th)) * ms
        cs[i0 + 1] = np.float32(math.sin(th)) * ms
        theta *= theta_scale


@njit(cache=True, parallel=True)
def rope_f32(x, pos, out, freq_factors, has_ff, n_dims, neox, freq_base, freq_scale,
             ext_factor, attn_factor, corr0, corr1):
    """x, out: float32 [T, H, D] (tokens, heads, head_dim); pos int32 [T]."""
    T, H, D = x.shape
    theta_scale = np.float32(freq_base ** (-2.0 / n_dims))
    fs = np.float32(freq_scale)
    ef = np.float32(ext_factor)
    ms = np.float32(attn_factor)
    for t in prange(T):
        cs = np.empty(n_dims, np.float32)
        _cache(pos[t], n_dims, theta_scale, freq_factors, has_ff, fs, np.float32(corr0), np.float32(corr1), ef, ms, cs)
        half = n_dims // 2
        for h in range(H):
            for i0 in range(0, n_dims, 2):
                c = cs[i0]
                s = cs[i0 + 1]
                if neox:
                    a = i0 // 2
                    b = a + half
                else:
                    a = i0
                    b = i0 + 1
                x0 = x[t, h, a]
                x1 = x[t, h, b]
                out[t, h, a] = x0 * c - x1 * s
                out[t, h, b] = x0 * s + x1 * c
            for i in range(n_dims, D):
                out[t, h, i] = x[t, h, i]


def yarn_corr_dims(n_dims: int, n_ctx_orig: int, freq_base: float, beta_fast: float, beta_slow: float):
    """ggml_rope_yarn_corr_dims: the dims where the YaRN ramp starts and ends."""
    def corr_dim(n_rot):
        return n_dims * math.log(n_ctx_orig / (n_rot * 2 * math.pi)) / (2 * math.log(freq_base))
    start = math.floor(corr_dim(beta_fast))
    end = math.ceil(corr_dim(beta_slow))
    return max(0.0, float(start)), min(n_dims - 1.0, float(end))
