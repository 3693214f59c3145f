"""KV cache storage for one or several sequences (one stream each): cell i of a stream holds
position i (no context shift).

The graph side (which leaves, which layout) is ggraph.llm.KVCacheLayout; this owns the arrays.
F16 cells are held as runtime/storage.py says (uint16 F16 bits: llama.cpp's bytes per cell).
"""
from __future__ import annotations

import numpy as np

from ggraph.llm import KVCacheLayout

from .storage import zeros

KV_PAD = 256   # llama.cpp pads n_ctx and the attended cell count n_kv to 256
# ggraph's plans attend over the used cells padded to 64 instead: the cells in between are masked
# (-inf, probability exactly 0), and in every order ggml sums in (16-lane chunks from cell 0, 64-cell
# vec_dot steps, sgemm's K % 16 == 0 and N % 4 == 0 choices) masked cells add exact zeros at the end,
# so the bits are llama.cpp's at up to 4x less attention work at short context. Eval-callback plans
# keep llama.cpp's 256 (their kq tensors have its shapes).
KV_READ_PAD = 64


def pad(n: int, to: int = KV_PAD) -> int:
    return (n + to - 1) // to * to


class KVCache:
    """n_stream sequences, each in its own stream of `size` cells (cell i of a stream holds its
    position i); stream 0 is the one-sequence API's."""

    def __init__(self, hp, n_ctx: int, n_stream: int = 1):
        self.size = pad(n_ctx)
        self.n_stream = n_stream
        self.layout = KVCacheLayout(hp, self.size, n_stream=n_stream)
        self.arrays = {t.name: zeros(t) for t in self.layout.k + self.layout.v}
        self.past = [0] * n_stream       # cells in use per stream (= its next position)

    @property
    def n_past(self) -> int:
        return self.past[0]

    @n_past.setter
    def n_past(self, n: int) -> None:
        self.past[0] = n

    def find_slot(self, n_tokens: int, stream: int = 0) -> np.ndarray:
        """Cells for the next n_tokens of a stream (llama_kv_cache::find_slot): the next ones."""
        p0 = stream * self.size + self.past[stream]
        return np.arange(p0, p0 + n_tokens, dtype=np.int32)

    def cell_pos(self, n_kv: int, n_used: int) -> np.ndarray:
        """Position held by each of the first n_kv cells of a stream once n_used are filled (-1: empty)."""
        pos = np.arange(n_kv, dtype=np.int32)
        pos[n_used:] = -1
        return pos

    def n_kv_for(self, n_tokens: int, stream: int = 0, pad_to: int = KV_READ_PAD) -> int:
        """Cells the attention reads for a ubatch: used + new, padded to 64 (KV_READ_PAD; llama.cpp: 256)."""
        return min(self.size, pad(self.past[stream] + n_tokens, pad_to))

    def clear(self, stream: int | None = None) -> None:
        if stream is None:
            self.past = [0] * self.n_stream
        else:
            self.past[stream] = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())
