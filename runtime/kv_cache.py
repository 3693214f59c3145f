"""KV cache storage for one sequence: cell i holds position i (no context shift).

The graph side (which leaves, which layout) is ggraph.llm.KVCacheLayout; this owns the arrays.
F16 cells are held as runtime/storage.py says (uint16 F16 bits: llama.cpp's bytes per cell).
"""
from __future__ import annotations

import numpy as np

from ggraph.llm import KVCacheLayout

from .storage import zeros

KV_PAD = 256   # llama.cpp pads n_ctx and the attended cell count n_kv to 256


def pad(n: int, to: int = KV_PAD) -> int:
    return (n + to - 1) // to * to


class KVCache:
    def __init__(self, hp, n_ctx: int):
        self.size = pad(n_ctx)
        self.layout = KVCacheLayout(hp, self.size)
        self.arrays = {t.name: zeros(t) for t in self.layout.k + self.layout.v}
        self.n_past = 0        # cells in use (= next position)

    def find_slot(self, n_tokens: int) -> np.ndarray:
        """Cells for the next n_tokens (llama_kv_cache::find_slot): one sequence, so the next ones."""
        return np.arange(self.n_past, self.n_past + n_tokens, dtype=np.int32)

    def cell_pos(self, n_kv: int, n_used: int) -> np.ndarray:
        """Position held by each of the first n_kv cells once n_used are filled (-1: empty)."""
        pos = np.arange(n_kv, dtype=np.int32)
        pos[n_used:] = -1
        return pos

    def n_kv_for(self, n_tokens: int) -> int:
        """Cells the attention reads for a ubatch: used + new, padded to 256."""
        return min(self.size, pad(self.n_past + n_tokens))

    def clear(self) -> None:
        self.n_past = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())
