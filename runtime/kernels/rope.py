"""rope_ext as ggml's CPU op (ops.cpp ggml_compute_forward_rope_flt), bit for bit: per-position
cos/sin cache built in float32 with theta_scale = powf(freq_base, -2/n_dims) and the running
product theta *= theta_scale, cosf/sinf (glibc, like llama.cpp), YaRN ramp when ext_factor != 0,
NORM (adjacent pairs) and NEOX (i, i + n_dims/2) modes; dims past n_dims pass through.

GCC (-O3, default -ffp-contract=fast) contracts the rotation into FMAs:
    out0 = fma(x0, cos, -(x1*sin)),  out1 = fma(x0, sin, x1*cos)
and the YaRN mix / mscale likewise; those contractions are reproduced with fma32."""
import math

import numpy as np
from numba import njit, prange

from .ggml_math import fma32

F32 = np.float32


@njit(cache=True, inline="always")
def _yarn_ramp(low, high, i0):
    y = (F32(i0 // 2) - low) / max(F32(0.001), high - low)
    return F32(1.0) - min(F32(1.0), max(F32(0.0), y))


@njit(cache=True)
def _cache(p, n_dims, theta_scale, freq_factors, has_ff, freq_scale, corr0, corr1, ext_factor, mscale, cs):
    """ggml_rope_cache_init + rope_yarn for position p (first n_dims entries: cos, sin pairs)."""
    theta = F32(p)
    for i0 in range(0, n_dims, 2):
        ff = freq_factors[i0 // 2] if has_ff else F32(1.0)
        theta_extrap = theta / ff
        theta_interp = freq_scale * theta_extrap
        th = theta_interp
        ms = mscale
        if ext_factor != F32(0.0):
            ramp_mix = _yarn_ramp(corr0, corr1, i0) * ext_factor
            th = fma32(theta_interp, F32(1.0) - ramp_mix, theta_extrap * ramp_mix)
            ms = ms * fma32(F32(0.1), math.log(F32(1.0) / freq_scale), F32(1.0))
        cs[i0] = math.cos(th) * ms
        cs[i0 + 1] = math.sin(th) * ms
        theta *= theta_scale


@njit(cache=True, parallel=True)
def rope_f32(x, pos, out, freq_factors, has_ff, n_dims, neox, freq_base, freq_scale,
             ext_factor, attn_factor, corr0, corr1):
    """x, out: float32 [T, H, D] (tokens, heads, head_dim); pos int32 [T]."""
    T, H, D = x.shape
    theta_scale = F32(freq_base) ** (F32(-2.0) / F32(n_dims))     # powf, like ggml
    fs = F32(freq_scale)
    ef = F32(ext_factor)
    ms = F32(attn_factor)
    c0 = F32(corr0)
    c1 = F32(corr1)
    half = n_dims // 2
    for t in prange(T):
        cs = np.empty(n_dims, np.float32)
        _cache(pos[t], n_dims, theta_scale, freq_factors, has_ff, fs, c0, c1, ef, ms, cs)
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
                out[t, h, a] = fma32(x0, c, -(x1 * s))
                out[t, h, b] = fma32(x0, s, x1 * c)
            for i in range(n_dims, D):
                out[t, h, i] = x[t, h, i]


@njit(cache=True)
def _corr_dims(n_dims, n_ctx_orig, freq_base, beta_fast, beta_slow):
    """ggml_rope_yarn_corr_dims in float32 (logf, floorf, ceilf) like ggml.c."""
    pi = F32(math.pi)
    lb = F32(2.0) * math.log(F32(freq_base))
    s = F32(n_dims) * math.log(F32(n_ctx_orig) / (F32(beta_fast) * F32(2.0) * pi)) / lb
    e = F32(n_dims) * math.log(F32(n_ctx_orig) / (F32(beta_slow) * F32(2.0) * pi)) / lb
    return max(F32(0.0), np.floor(s)), min(F32(n_dims - 1), np.ceil(e))


def yarn_corr_dims(n_dims: int, n_ctx_orig: int, freq_base: float, beta_fast: float, beta_slow: float):
    """ggml_rope_yarn_corr_dims: the dims where the YaRN ramp starts and ends."""
    c0, c1 = _corr_dims(int(n_dims), int(n_ctx_orig), float(freq_base), float(beta_fast), float(beta_slow))
    return float(c0), float(c1)
