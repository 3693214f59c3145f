"""The window-sized cache of sliding-window layers (llama.cpp's iswa cache with swa_full = false):
one sequence's cells per stream, placed exactly as llama_kv_cache places them, so that attention
sums over the same cells in the same order and gives llama.cpp's bits.

llama_kv_cache::find_slot (non-contiguous): from the head (back to 0 when enough cells before it are
free), take each cell that is empty or holds a position the window has left for the sequence's
newest position (llama_hparams::is_masked_swa, STANDARD); apply_ubatch writes the positions, purges
every position up to the newest one it overwrote (all positions between the sequence's min and max
stay present) and moves the head past the last cell; seq_rm empties cells by position and moves the
head back to the first freed one.
"""
from __future__ import annotations

import numpy as np

from ggraph.errors import GGraphError


def swa_cache_size(n_ctx_cells: int, n_swa: int, n_ubatch: int) -> int:
    """llama_kv_cache_iswa: GGML_PAD(min(size_base, n_swa + n_ubatch), 256) cells per stream."""
    return (min(n_ctx_cells, n_swa + n_ubatch) + 255) // 256 * 256


class SwaCells:
    def __init__(self, size: int, n_swa: int):
        self.size, self.n_swa = size, n_swa
        self.pos = np.full(size, -1, np.int32)
        self.head = 0

    def clear(self) -> None:
        self.pos[:] = -1
        self.head = 0

    def used(self) -> int:
        return int(np.count_nonzero(self.pos >= 0))

    def used_max_p1(self) -> int:
        nz = np.flatnonzero(self.pos >= 0)
        return int(nz[-1]) + 1 if nz.size else 0

    def pos_min(self) -> int:
        u = self.pos[self.pos >= 0]
        return int(u.min()) if u.size else -1

    def pos_max(self) -> int:
        return int(self.pos.max())

    def find_slot(self, n_tokens: int) -> np.ndarray:
        """The cells for the next n_tokens (not placed yet)."""
        size = self.size
        if n_tokens > size:
            raise GGraphError(f"a ubatch of {n_tokens} tokens does not fit the {size}-cell sliding-window cache")
        head = self.head
        if head > self.used() + 2 * n_tokens:
            head = 0
        p_next = self.pos_max() + 1
        idxs, n_tested = [], 0
        while True:
            if head + 1 > size:
                n_tested += size - head
                head = 0
                continue
            idx = head
            head += 1
            n_tested += 1
            p = self.pos[idx]
            if p < 0 or p_next - p >= self.n_swa:
                idxs.append(idx)
            if len(idxs) == n_tokens:
                return np.array(idxs, np.int32)
            if n_tested >= size:
                raise GGraphError(f"no room for {n_tokens} tokens in the {size}-cell sliding-window cache")

    def apply(self, idxs: np.ndarray, positions: np.ndarray) -> None:
        old = self.pos[idxs]
        rm_max = int(old.max()) if old.size and old.max() >= 0 else -1
        self.pos[idxs] = positions
        if rm_max >= 0:
            lo = self.pos_min()
            if 0 <= lo <= rm_max:
                self.pos[(self.pos >= lo) & (self.pos <= rm_max)] = -1
        self.head = int(idxs[-1]) + 1

    def seq_rm(self, p0: int) -> None:
        """Empty the cells holding positions >= p0 (llama_memory_seq_rm(seq, p0, -1))."""
        freed = np.flatnonzero(self.pos >= max(p0, 0))
        if freed.size:
            self.pos[freed] = -1
            if freed[0] < self.head:
                self.head = int(freed[0])

    def holds_window_before(self, n_keep: int) -> bool:
        """Whether the next token at position n_keep finds its whole window here."""
        if n_keep == 0:
            return True
        lo = self.pos_min()
        return 0 <= lo <= max(0, n_keep - self.n_swa + 1)
