"""Activations as ggml computes them in float32 (silu = x/(1+e^-x); gelu = tanh approximation)."""
import math

import numpy as np
from numba import njit, prange

GELU_COEF_A = np.float32(0.044715)
SQRT_2_OVER_PI = np.float32(0.79788456080286535587989211986876)


@njit(cache=True, inline="always")
def _silu(x):
    return x / (np.float32(1.0) + np.exp(-x))


@njit(cache=True, inline="always")
def _gelu(x):
    # ggml evaluates gelu through an fp16 table for |x| < 10; x<=-10 -> 0, x>=10 -> x
    if x <= np.float32(-10.0):
        return np.float32(0.0)
    if x >= np.float32(10.0):
        return x
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(SQRT_2_OVER_PI * x * (np.float32(1.0) + GELU_COEF_A * x * x)))


@njit(cache=True, parallel=True)
def silu_f32(x, out):
    rows, n = x.shape
    for r in prange(rows):
        for i in range(n):
            out[r, i] = _silu(x[r, i])


@njit(cache=True, parallel=True)
def gelu_f32(x, out):
    rows, n = x.shape
    for r in prange(rows):
        for i in range(n):
            out[r, i] = _gelu(x[r, i])


@njit(cache=True, parallel=True)
def swiglu_f32(g, u, out):
    """silu(g) * u."""
    rows, n = g.shape
    for r in prange(rows):
        for i in range(n):
            out[r, i] = _silu(g[r, i]) * u[r, i]


@njit(cache=True, parallel=True)
def geglu_f32(g, u, out):
    rows, n = g.shape
    for r in prange(rows):
        for i in range(n):
            out[r, i] = _gelu(g[r, i]) * u[r, i]


def round_f16(x: np.ndarray) -> np.ndarray:
    """Values rounded to float16 precision, kept as float32 (what an F16 store then load gives)."""
    return x.astype(np.float16).astype(np.float32)


_ = math  # math kept for readers comparing with ggml's scalar code
