"""5-bit 32-blocks: Q5_0 (x Q8_0 activations) and Q5_1 (x Q8_1 activations).

Q5_0: d, qh u32, qs[16] (22 bytes), y = d*(q-16); Q5_1: d, m, qh, qs[16] (24 bytes), y = d*q + m.
q = nibble | bit << 4 where bit j of qh belongs to element j (low nibbles are elements 0-15).
llama.cpp does not repack them: the kernels are llama.cpp's 8-lane vec_dot / tinyBLAS (pairs.py).
"""
import numpy as np
from numba import njit

from ggraph.runtime.kernels import pairs
from ggraph.runtime.kernels.simd import f16at, u32at

mm_q5_0 = pairs.mm_q5_0
mm_q5_1 = pairs.mm_q5_1


@njit(cache=True)
def deq_q5(w, rows, out, has_min):
    bb = 24 if has_min else 22
    hb = 4 if has_min else 2
    for i in range(rows.shape[0]):
        r = rows[i]
        for b in range(w.shape[1] // bb):
            o = bb * b
            d = f16at(w[r], o)
            mn = f16at(w[r], o + 2) if has_min else np.float32(0.0)
            qh = u32at(w[r], o + hb)
            for e in range(32):
                byte = np.int32(w[r, o + hb + 4 + e % 16])
                q = ((byte >> 4) if e >= 16 else (byte & 15)) | (np.int32((qh >> e) & 1) << 4)
                if has_min:
                    out[i, 32 * b + e] = d * np.float32(q) + mn
                else:
                    out[i, 32 * b + e] = d * np.float32(q - 16)
