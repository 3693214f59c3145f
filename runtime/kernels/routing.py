"""The small ops of expert routing, as ggml's CPU backend computes them (ops.cpp / unary-ops.cpp).

argsort: std::sort of the row's indices with the comparator data[a] > data[b] (descending) or <.
  For rows of at most 16 elements libstdc++'s introsort is a plain insertion sort, which keeps tied
  values in index order; this kernel is that insertion sort for every row length (llama.cpp's
  introsort can order ties differently above 16 experts: exact ties in float32 router probabilities
  are rare, but that case is not mirrored).
sum_rows: ggml_vec_sum_f32, a sequential double accumulator rounded to float at the end.
sigmoid: 1 / (1 + expf(-x)) in float32 with the C library's expf (Numba's math.exp on float32).
"""
import math

import numpy as np
from numba import njit

F32 = np.float32


@njit(cache=True)
def argsort_rows(x, out, descending):
    """x [rows, n] f32 -> out [rows, n] i32, each row's indices in sorted order."""
    n = x.shape[1]
    for r in range(x.shape[0]):
        for i in range(n):
            out[r, i] = i
        for i in range(1, n):
            j = out[r, i]
            v = x[r, j]
            p = i
            while p > 0 and ((v > x[r, out[r, p - 1]]) if descending else (v < x[r, out[r, p - 1]])):
                out[r, p] = out[r, p - 1]
                p -= 1
            out[r, p] = j


@njit(cache=True)
def sum_rows_f32(x, out):
    """x [rows, n] -> out [rows] (double accumulator, as ggml_vec_sum_f32)."""
    for r in range(x.shape[0]):
        s = 0.0
        for i in range(x.shape[1]):
            s += np.float64(x[r, i])
        out[r] = F32(s)


@njit(cache=True)
def sigmoid_f32(x, out):
    """x, out [rows, n]: 1 / (1 + expf(-x))."""
    for r in range(x.shape[0]):
        for i in range(x.shape[1]):
            out[r, i] = F32(1.0) / (F32(1.0) + F32(math.exp(-x[r, i])))
