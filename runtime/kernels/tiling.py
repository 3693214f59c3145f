"""How the quantized mat-mul kernels split their work (the role of ggml's chunking of mul_mat): rows
per parallel task, token tiles whose int8 activations stay in L1, prefetch distance."""
from numba import njit

ROWS_PER_TASK = 16      # weight rows per parallel task
ACT_TILE_BYTES = 16384  # int8 activations of one token tile
PREFETCH_BYTES = 8192   # decode kernels prefetch the rows at least this far ahead


@njit(cache=True, inline="always")
def token_tile(K):
    """Tokens per tile (a multiple of 4, at least 4) for activation rows of K bytes."""
    return max(4, ACT_TILE_BYTES // K // 4 * 4)
