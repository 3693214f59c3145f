"""Activations bit for bit as ggml's CPU backend (vec.cpp / vec.h, AVX512 build).

silu / swiglu: per row, chunks of 16 use ggml_v_silu (x / (1 + ggml_v_expf(-x))), the leftover
  n % 16 elements the scalar ggml_silu_f32 (x / (1 + expf(-x))); swiglu multiplies by g.
relu / sqr / reglu: ggml_vec_relu_f32, x*x, g > 0 ? g*u : 0.
gelu / geglu (GGML_GELU_FP16): x <= -10 -> 0, x >= 10 -> x, else a 65536-entry table indexed by
  the F16 bits of x, holding fp16(gelu_f32(fp16 value)) with
  gelu_f32(x) = 0.5*x*(1 + tanhf(sqrt(2/pi)*x*(1 + 0.044715*x*x))), the inner 1 + a*x*x
  contracted to fma(a*x, x, 1) as GCC compiles it; geglu multiplies by g.
"""
import functools
import math

import numpy as np
from numba import njit, prange

from .ggml_math import fma32, silu_scalar, v_silu
from .simd.scalar import f16bits

F32 = np.float32
GELU_COEF_A = F32(0.044715)
SQRT_2_OVER_PI = F32(0.79788456080286535587989211986876)


@njit(cache=True)
def _gelu_f32_all(x, out):
    for i in range(x.size):
        v = x[i]
        inner = fma32(GELU_COEF_A * v, v, F32(1.0))
        out[i] = F32(0.5) * v * (F32(1.0) + np.tanh(SQRT_2_OVER_PI * v * inner))


@functools.cache
def gelu_table() -> np.ndarray:
    """ggml_table_gelu_f16 decoded to float32: entry i is gelu of the F16 value with bits i (built
    on first use: models without GELU do not pay its ~0.3 s at every start)."""
    vals = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    g = np.empty_like(vals)
    with np.errstate(all="ignore"):
        _gelu_f32_all(vals, g)
        return g.astype(np.float16).astype(np.float32)



@njit(cache=True, parallel=True)
def silu_f32(x, out):
    rows, n = x.shape
    n16 = n - n % 16
    for r in prange(rows):
        for i in range(n16):
            out[r, i] = v_silu(x[r, i])
        for i in range(n16, n):
            out[r, i] = silu_scalar(x[r, i])


@njit(cache=True, parallel=True)
def swiglu_f32(g, u, out):
    """silu(g) * u."""
    rows, n = g.shape
    n16 = n - n % 16
    for r in prange(rows):
        for i in range(n16):
            out[r, i] = v_silu(g[r, i]) * u[r, i]
        for i in range(n16, n):
            out[r, i] = silu_scalar(g[r, i]) * u[r, i]


@njit(cache=True, parallel=True)
def _gelu_lookup(x, table, out, u, has_u):
    """Table lookup by the F16 bits of x (vcvtps2ph in the loop: no numpy pass, no allocation)."""
    rows, n = x.shape
    for r in prange(rows):
        for i in range(n):
            v = x[r, i]
            if v <= F32(-10.0):
                out[r, i] = F32(0.0)
                continue
            y = v if v >= F32(10.0) else table[f16bits(v)]
            out[r, i] = y * u[r, i] if has_u else y


def gelu_f32(x, out):
    _gelu_lookup(x, gelu_table(), out, x, False)


def geglu_f32(g, u, out):
    """gelu(g) * u."""
    _gelu_lookup(g, gelu_table(), out, u, True)


def gelu_call(x, out):
    """(kernel, args) of gelu_f32 (the plan's step form)."""
    return _gelu_lookup, (x, gelu_table(), out, x, False)


def geglu_call(g, u, out):
    return _gelu_lookup, (g, gelu_table(), out, u, True)


@njit(cache=True, parallel=True)
def tanh_f32(x, out):
    """ggml_vec_tanh_f32: tanhf per element (Numba calls libm's tanhf; numpy's own float32 tanh
    differs from it in the last bit for ~40% of inputs)."""
    rows, n = x.shape
    for r in prange(rows):
        for i in range(n):
            out[r, i] = math.tanh(x[r, i])


SQRT_2_INV = F32(0.70710678118654752440084436210484)


@njit(cache=True, parallel=True)
def gelu_erf_f32(x, out):
    """ggml_vec_gelu_erf_f32: 0.5*x*(1 + erff(x*SQRT_2_INV)) (Numba calls libm's erff)."""
    rows, n = x.shape
    for r in prange(rows):
        for i in range(n):
            v = x[r, i]
            out[r, i] = F32(0.5) * v * (F32(1.0) + math.erf(v * SQRT_2_INV))


@njit(cache=True, parallel=True)
def relu_f32(x, out):
    """ggml_vec_relu_f32: x > 0 ? x : 0 (NaN and -0 give 0)."""
    rows, n = x.shape
    for r in prange(rows):
        for i in range(n):
            v = x[r, i]
            out[r, i] = v if v > F32(0.0) else F32(0.0)


@njit(cache=True, parallel=True)
def sqr_f32(x, out):
    rows, n = x.shape
    for r in prange(rows):
        for i in range(n):
            out[r, i] = x[r, i] * x[r, i]


@njit(cache=True, parallel=True)
def reglu_f32(g, u, out):
    """ggml_vec_reglu_f32: g > 0 ? g * u : 0."""
    rows, n = g.shape
    for r in prange(rows):
        for i in range(n):
            v = g[r, i]
            out[r, i] = v * u[r, i] if v > F32(0.0) else F32(0.0)


@njit(cache=True)
def add_f32(a, b, out):
    """out = a + b over flat float32 arrays of one size (the residual adds of a decode step: a
    compiled loop is ~1 us where numpy's ufunc machinery on 4-D views is ~4 us)."""
    for i in range(out.size):
        out[i] = a[i] + b[i]


@njit(cache=True)
def mul_f32(a, b, out):
    for i in range(out.size):
        out[i] = a[i] * b[i]


@njit(cache=True)
def copy_4d(src, out):
    """out[...] = src for two 4-D arrays of one shape and dtype, any strides (ggml_cont)."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            for k in range(src.shape[2]):
                for m in range(src.shape[3]):
                    out[i, j, k, m] = src[i, j, k, m]
