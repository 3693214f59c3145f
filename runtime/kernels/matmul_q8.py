"""Q8_0 weights (d fp16, qs int8[32]; y = d*q) x Q8_0 activations.

llama.cpp does not repack Q8_0 on x86: one token runs ggml_vec_dot_q8_0_q8_0, batches tinyBLAS_Q0_AVX,
both llama.cpp's 8-lane arithmetic (pairs.py). VNNI multiplies unsigned by signed bytes, so the
weights run as q+128 (one xor) and 128 x the activation 4-sums are removed per lane, exactly.
"""
import numpy as np
from numba import njit

from ggraph.runtime.kernels import pairs
from ggraph.runtime.kernels.simd import f16at

mm_q8_0 = pairs.mm_q8_0


@njit(cache=True)
def deq_q8_0(w, rows, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // 34):
            o = 34 * b
            d = f16at(w[r], o)
            for j in range(32):
                out[i, 32 * b + j] = np.float32(np.int8(w[r, o + 2 + j])) * d
