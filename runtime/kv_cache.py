"""KV cache storage for one sequence: cell i holds position i (no context shift).

The graph side (which leaves, which layout) is ggraph.llm.KVCacheLayout; this owns the arrays.
F16 cells are stored widened to float32 (values rounded to F16 on write, see executor.py).
"""
from __future__ import annotations

import numpy as np

from ggraph.llm import KVCacheLayout

KV_PAD = 256   # llama.cpp pads n_ctx and the attended cell count n_kv to 256


def pad(n: int, to: int = KV_PAD) -> int:
    return (n + to - 1) // to * to


class KVCache:
    def __init__(self, hp, n_ctx: int):
        self.size = pad(n_ctx)
        self.layout = KVCacheLayout(hp, self.size)
        self.arrays = {t.name: np.zeros(t.nelements, np.float32)
                       for t in self.layout.k + self.layout.v}
        self.n_past = 0        # cells in use (= next position)

    def n_kv_for(self, n_tokens: int) -> int:
        """Cells the attention reads for a ubatch: used + new, padded to 256."""
        return min(self.size, pad(self.n_past + n_tokens))

    def clear(self) -> None:
        self.n_past = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())
