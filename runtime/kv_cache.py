"""KV cache storage for one or several sequences (one stream each): cell i of a stream holds
position i (no context shift).

The graph side (which leaves, which layout) is ggraph.llm.KVCacheLayout; this owns the arrays.
F16 cells are held as runtime/storage.py says (uint16 F16 bits: llama.cpp's bytes per cell).
"""
from __future__ import annotations

import numpy as np

from ggraph.llm import KVCacheLayout

from .kv_cells import SwaCells, swa_cache_size
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

    def __init__(self, hp, n_ctx: int, n_stream: int = 1, n_ubatch: int = 512, swa_full: bool = True):
        self.size = pad(n_ctx)
        self.n_stream = n_stream
        # sliding-window layers: with swa_full off, their own cache of n_swa + n_ubatch cells (padded
        # to 256) per stream, placed as llama.cpp places them (runtime/kv_cells.py)
        size_swa = None
        if not swa_full and hp.n_swa > 0 and any(hp.is_swa(il) for il in range(hp.n_layer)):
            size_swa = swa_cache_size(self.size, hp.n_swa, n_ubatch)
        self.layout = KVCacheLayout(hp, self.size, n_stream=n_stream, size_swa=size_swa)
        self.size_swa = self.layout.size_swa
        self.swa = None if self.size_swa is None else [SwaCells(self.size_swa, hp.n_swa) for _ in range(n_stream)]
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
        for s, cells in enumerate(self.swa or []):
            if stream is None or s == stream:
                cells.clear()

    def truncate(self, stream: int, n_keep: int) -> int:
        """Keep the first n_keep positions of a stream; returns how many are kept: 0 (the stream
        cleared) when the window-sized cache no longer holds the window the next token needs."""
        if self.swa is not None:
            cells = self.swa[stream]
            cells.seq_rm(n_keep)
            if not cells.holds_window_before(n_keep):
                self.clear(stream)
                return 0
        self.past[stream] = n_keep
        return n_keep

    # -- the window-sized cache -------------------------------------------------------------
    def place_swa(self, stream: int, positions: np.ndarray) -> np.ndarray:
        """Place tokens at these positions in the stream's window-sized cells (llama.cpp's
        find_slot + apply_ubatch); their cells, as indices into every stream's cells."""
        cells = self.swa[stream]
        idxs = cells.find_slot(positions.size)
        cells.apply(idxs, positions)
        return idxs + np.int32(stream * self.size_swa)

    def swa_read(self, stream: int, pad_to: int = KV_READ_PAD) -> int:
        """Window-sized cells a ubatch reads in this stream: its used ones, padded."""
        return min(self.size_swa, pad(max(self.swa[stream].used_max_p1(), 1), pad_to))

    def swa_positions(self, stream: int, n_kv: int) -> np.ndarray:
        return self.swa[stream].pos[:n_kv].copy()

    def swa_state(self):
        return None if self.swa is None else [(c.pos.copy(), c.head) for c in self.swa]

    def set_swa_state(self, state) -> None:
        for c, (pos, head) in zip(self.swa or [], state or []):
            c.pos[:], c.head = pos, head

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())
