"""`llama_token_data_array`: the candidates a sampler narrows, reorders or rescales, and the
stable sorts it uses (equal logits keep their order, which makes results deterministic)."""
from __future__ import annotations

import numpy as np

from ggraph.errors import GGraphError

from .kernels import _softmax, _sort_keys, _top_k_indices


class TokenDataArray:
    """`llama_token_data_array`: candidates `ids` (int32), `logits` (float32), `p` (float32 or None
    until a sampler computes probabilities), `sorted` (descending by logit) and `selected` (-1 = none).
    `identity` is True while `ids[i] == i` (fresh from a logits row, possibly truncated)."""

    __slots__ = ("ids", "logits", "p", "sorted", "selected", "identity")

    def __init__(self, ids, logits, p=None, sorted=False, identity=False):
        self.ids = ids
        self.logits = logits
        self.p = p
        self.sorted = sorted
        self.selected = -1
        self.identity = identity

    @classmethod
    def from_logits(cls, logits) -> "TokenDataArray":
        """Candidates for every token of a logits row (a float32 copy; the input is never modified)."""
        lg = np.array(logits, dtype=np.float32, copy=True).reshape(-1)
        return cls(_arange(lg.shape[0]), lg, None, False, True)

    @property
    def size(self) -> int:
        return self.ids.shape[0]

    def __len__(self) -> int:
        return self.ids.shape[0]

    def token(self) -> int:
        """The selected token id."""
        if self.selected < 0 or self.selected >= self.size:
            raise GGraphError("no token was selected: end the sampler chain with Dist or Greedy")
        return int(self.ids[self.selected])

    def probs(self) -> np.ndarray:
        """Probabilities of the candidates (softmax of the current logits if no sampler set them)."""
        if self.p is None:
            return _softmax(self.logits, self.sorted)
        return self.p

    # -- in-place edits used by the samplers --
    def truncate(self, n: int) -> None:
        """Keep the first n candidates (`cur_p->size = n`)."""
        self.ids = self.ids[:n]
        self.logits = self.logits[:n]
        if self.p is not None:
            self.p = self.p[:n]

    def take(self, order) -> None:
        """Reorder/select candidates by positions `order` (ids are no longer the identity)."""
        self.ids = self.ids[order]
        self.logits = self.logits[order]
        if self.p is not None:
            self.p = self.p[order]
        self.identity = False

    def sort_desc(self, k: int | None = None) -> None:
        """`llama_token_data_array_partial_sort_inplace`: keep the top k (all if None), sorted
        descending by logit; ties keep their current relative order."""
        n = self.size
        if k is None or k >= n:
            order = _argsort_desc(self.logits)
        elif k * 8 < n:
            order = _top_k_indices(self.logits, k)
        else:
            order = _argsort_desc(self.logits)[:k]
        self.take(order)
        self.sorted = True


_ARANGE_CACHE: dict[int, np.ndarray] = {}


def _arange(n: int) -> np.ndarray:
    a = _ARANGE_CACHE.get(n)
    if a is None:
        a = np.arange(n, dtype=np.int32)
        a.setflags(write=False)
        _ARANGE_CACHE[n] = a
    return a


def _argsort_desc(x: np.ndarray) -> np.ndarray:
    """Positions of x by descending value, ties by ascending position."""
    if x.shape[0] <= 1024:
        return np.argsort(-x, kind="stable")
    keys = _sort_keys(x, True)
    keys.sort()
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.intp)


def _argsort_asc(x: np.ndarray) -> np.ndarray:
    """Positions of x by ascending value, ties by ascending position."""
    if x.shape[0] <= 1024:
        return np.argsort(x, kind="stable")
    keys = _sort_keys(x, False)
    keys.sort()
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.intp)
