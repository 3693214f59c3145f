"""set_rows into an F16 destination (the KV cache write): rows of float32 values stored as the bits
of their nearest fp16 (round-to-nearest-even, ggml's fp32 -> fp16), straight into the cache view.
numpy's astype(float16) plus a fancy-index store cost ~12 us per call, 60 calls a token."""
from numba import njit

from ggraph.runtime.kernels.simd.scalar import f16bits


@njit(cache=True, error_model="numpy")
def set_rows_f16(dst, src, ids):
    """dst uint16 [n_rows, n] (any strides), src float32 [T, n], ids int [T]: dst[ids[t]] = fp16(src[t])."""
    n_rows = dst.shape[0]
    for t in range(src.shape[0]):
        r = ids[t]
        if r < 0 or r >= n_rows:
            raise IndexError("set_rows: row id out of range")
    if dst.strides[1] <= dst.strides[0]:      # rows contiguous (the K cache): row by row
        for t in range(src.shape[0]):
            for i in range(src.shape[1]):
                dst[ids[t], i] = f16bits(src[t, i])
    else:       # the transposed V cache: a row's values lie n_ctx cells apart; all tokens' value i at once
        for i in range(src.shape[1]):
            for t in range(src.shape[0]):
                dst[ids[t], i] = f16bits(src[t, i])
