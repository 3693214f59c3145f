"""llama.cpp's individual samplers (`src/llama-sampler.cpp`), one class each.

A sampler works on a `TokenDataArray` (llama.cpp's `llama_token_data_array`): parallel arrays of
candidate ids, logits and probabilities, a `sorted` flag and the `selected` index. `apply` narrows,
reorders or rescales the candidates in place; a selecting sampler (`Dist`, `Greedy`) sets `selected`.
`accept(token)` feeds the history of stateful samplers (`Penalties`), `reset()` clears state and
re-seeds RNGs.

Each sampler mirrors its llama.cpp counterpart step by step, including which ones sort, the order in
which the candidates are left (it decides which token a given random number picks), float32
accumulation where llama.cpp uses `float` and float64 where it uses `double`. The float32 loops that
must run over the whole vocabulary are small Numba kernels; everything else is numpy.

Deviations (see also `sampling.py`): ties between equal logits are broken by current position (a
stable sort) where llama.cpp's `std::sort`/`std::partial_sort` leave them in an unspecified order;
`Typical` treats `0 * log(0)` as 0 where llama.cpp would produce NaN for underflowed probabilities.
"""

from __future__ import annotations

import math
import secrets
from collections import deque

import numba as nb
import numpy as np

from ggraph.errors import GGraphError

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.h: "use a random seed"

_F32 = np.float32
_NEG_INF = np.float32(-np.inf)


# ---------------------------------------------------------------------------------------------------
# candidates


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


# ---------------------------------------------------------------------------------------------------
# sorting helpers (stable: equal logits keep their order, which makes results deterministic)


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


@nb.njit(cache=True, nogil=True)
def _sort_keys(x, descending):
    """uint64 keys (order-preserving bits of the float32 value << 32 | position) whose unsigned
    order is the (stable) ascending or descending order of x; -0.0 sorts as +0.0."""
    n = x.shape[0]
    out = np.empty(n, np.uint64)
    bits = (x + np.float32(0.0)).view(np.uint32)
    for i in range(n):
        b = np.uint64(bits[i])
        if b & np.uint64(0x80000000):
            k = np.uint64(0xFFFFFFFF) ^ b
        else:
            k = b | np.uint64(0x80000000)
        if descending:
            k = np.uint64(0xFFFFFFFF) ^ k
        out[i] = (k << np.uint64(32)) | np.uint64(i)
    return out


# ---------------------------------------------------------------------------------------------------
# Numba kernels (float32 where llama.cpp uses float, float64 where it uses double)


@nb.njit(cache=True, nogil=True)
def _top_k_indices(x, k):
    """Positions of the k largest values of x, descending, ties by ascending position.
    Heap selection, O(n log k): the replacement for llama.cpp's bucket/partial sort."""
    n = x.shape[0]
    if k > n:
        k = n
    if k <= 0:
        return np.empty(0, np.int64)
    hv = np.empty(k, np.float32)
    hi = np.empty(k, np.int64)
    # min-heap of the "worst" kept element: lower value, or equal value and higher position
    for i in range(k):
        v = x[i]
        j = i
        while j > 0:
            par = (j - 1) >> 1
            if v < hv[par] or (v == hv[par] and i > hi[par]):
                hv[j] = hv[par]
                hi[j] = hi[par]
                j = par
            else:
                break
        hv[j] = v
        hi[j] = i
    for i in range(k, n):
        v = x[i]
        if not (v > hv[0]):
            continue
        # replace the root and sift down
        j = 0
        while True:
            c = 2 * j + 1
            if c >= k:
                break
            if c + 1 < k and (hv[c + 1] < hv[c] or (hv[c + 1] == hv[c] and hi[c + 1] > hi[c])):
                c += 1
            if hv[c] < v or (hv[c] == v and hi[c] > i):
                hv[j] = hv[c]
                hi[j] = hi[c]
                j = c
            else:
                break
        hv[j] = v
        hi[j] = i
    # pop the worst element repeatedly: fills the output from the end
    out = np.empty(k, np.int64)
    m = k
    while m > 0:
        out[m - 1] = hi[0]
        m -= 1
        if m == 0:
            break
        v = hv[m]
        ii = hi[m]
        j = 0
        while True:
            c = 2 * j + 1
            if c >= m:
                break
            if c + 1 < m and (hv[c + 1] < hv[c] or (hv[c + 1] == hv[c] and hi[c + 1] > hi[c])):
                c += 1
            if hv[c] < v or (hv[c] == v and hi[c] > ii):
                hv[j] = hv[c]
                hi[j] = hi[c]
                j = c
            else:
                break
        hv[j] = v
        hi[j] = ii
    return out


@nb.njit(cache=True, nogil=True)
def _softmax_kernel(logits, is_sorted, out):
    """`llama_sampler_softmax_impl` without the sort: float32 exp and float32 running sum."""
    n = logits.shape[0]
    max_l = logits[0]
    if not is_sorted:
        for i in range(1, n):
            if logits[i] > max_l:
                max_l = logits[i]
    cum = np.float32(0.0)
    for i in range(n):
        pv = np.float32(math.exp(logits[i] - max_l))
        out[i] = pv
        cum += pv
    for i in range(n):
        out[i] = out[i] / cum


def _softmax(logits: np.ndarray, is_sorted: bool) -> np.ndarray:
    out = np.empty(logits.shape[0], np.float32)
    if logits.shape[0]:
        _softmax_kernel(logits, is_sorted, out)
    return out


@nb.njit(cache=True, nogil=True)
def _dist_kernel(logits, is_sorted, rnd, out):
    """`llama_sampler_dist_apply` (size >= 2): float32 exp, float64 sums, first index whose running
    sum reaches rnd * total; writes the normalised probabilities to out."""
    n = logits.shape[0]
    max_l = logits[0]
    if not is_sorted:
        for i in range(1, n):
            if logits[i] > max_l:
                max_l = logits[i]
    sum_cum = 0.0
    for i in range(n):
        pv = np.float32(math.exp(logits[i] - max_l))
        out[i] = pv
        sum_cum += np.float64(pv)
    sum_tgt = sum_cum * rnd
    sum_run = 0.0
    selected = -1
    for i in range(n):
        if selected < 0:
            sum_run += np.float64(out[i])
            if sum_run >= sum_tgt:
                selected = i
        out[i] = np.float32(np.float64(out[i]) / sum_cum)
    if selected < 0:
        selected = n - 1
    return selected


@nb.njit(cache=True, nogil=True)
def _cum_reach(p, thr, min_keep):
    """top-p cut: 1 + first i with float32 cumsum(p)[i] >= thr and i + 1 >= min_keep, else -1."""
    cum = np.float32(0.0)
    for i in range(p.shape[0]):
        cum += p[i]
        if cum >= thr and i + 1 >= min_keep:
            return i + 1
    return -1


@nb.njit(cache=True, nogil=True)
def _entropy(p):
    """Sequential float32 sum of -p log p over p > 0 (0 log 0 = 0)."""
    ent = np.float32(0.0)
    for i in range(p.shape[0]):
        if p[i] > 0:
            ent -= p[i] * np.float32(math.log(p[i]))
    return ent


@nb.njit(cache=True, nogil=True)
def _typical_scores(p, out):
    """Entropy H and out[i] = |-log p_i - H| (float32)."""
    ent = _entropy(p)
    for i in range(p.shape[0]):
        out[i] = abs(-np.float32(math.log(p[i])) - ent)
    return ent


@nb.njit(cache=True, nogil=True)
def _typical_cut(p, order, thr, min_keep):
    cum = np.float32(0.0)
    for i in range(order.shape[0]):
        cum += p[order[i]]
        if cum > thr and (min_keep == 0 or i >= min_keep - 1):
            return i + 1
    return order.shape[0]


@nb.njit(cache=True, nogil=True)
def _n_sigma_mask(logits, n):
    """`llama_sampler_top_n_sigma_apply`: -inf for logits below max - n * std (finite ones)."""
    neg_inf = np.float32(-np.inf)
    mx = logits[0]
    s = np.float32(0.0)
    cnt = 0
    for i in range(logits.shape[0]):
        if logits[i] != neg_inf:
            if logits[i] > mx:
                mx = logits[i]
            s += logits[i]
            cnt += 1
    mean = s / np.float32(cnt) if cnt > 0 else np.float32(0.0)
    acc = np.float32(0.0)
    for i in range(logits.shape[0]):
        if logits[i] != neg_inf:
            d = np.float64(logits[i] - mean)
            acc = np.float32(np.float64(acc) + d * d)
    std = np.float32(math.sqrt(acc / np.float32(cnt))) if cnt > 0 else np.float32(0.0)
    lim = mx - n * std
    for i in range(logits.shape[0]):
        if logits[i] < lim:
            logits[i] = neg_inf


# ---------------------------------------------------------------------------------------------------
# RNG: std::mt19937 + libstdc++'s std::uniform_real_distribution


def resolve_seed(seed) -> int:
    """llama.cpp `get_rng_seed`: None, -1 or 0xFFFFFFFF (LLAMA_DEFAULT_SEED) -> a random 32-bit seed."""
    if seed is None or seed == -1 or seed == LLAMA_DEFAULT_SEED:
        return secrets.randbits(32)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 0xFFFFFFFF:
        raise GGraphError(f"invalid seed={seed!r}: must be None, -1 or an integer in [0, 4294967295]")
    return int(seed)


class StdMT19937:
    """`std::mt19937` seeded with a 32-bit value (numpy's legacy MT19937 seeding is the same
    `init_genrand`), plus the draws of libstdc++'s `uniform_real_distribution`:

    - double: `generate_canonical<double, 53>` takes two 32-bit outputs a, b and returns
      `double(a + b * 2^32) / 2^64` (the sum rounded to double), or nextafter(1, 0) if that is 1.0;
    - float: one output, `float(a) / 2^32`, or nextafter(1f, 0f) if that is 1.0f.
    """

    def __init__(self, seed: int):
        self.seed(seed)

    def seed(self, seed: int) -> None:
        state = np.random.RandomState(int(seed)).get_state()
        bg = np.random.MT19937()
        bg.state = {"bit_generator": "MT19937", "state": {"key": state[1], "pos": state[2]}}
        self._bg = bg

    def next_u32(self, n: int = 1) -> np.ndarray:
        return self._bg.random_raw(n)

    def uniform_double(self) -> float:
        a, b = self._bg.random_raw(2)
        r = (float(a) + float(b) * 4294967296.0) / 18446744073709551616.0
        if r >= 1.0:
            r = math.nextafter(1.0, 0.0)
        return r

    def uniform_float(self) -> np.float32:
        a = self._bg.random_raw()
        r = _F32(float(a)) / _F32(4294967296.0)
        if r >= _F32(1.0):
            r = np.nextafter(_F32(1.0), _F32(0.0))
        return r

    def __deepcopy__(self, memo):
        new = StdMT19937.__new__(StdMT19937)
        bg = np.random.MT19937()
        bg.state = self._bg.state
        new._bg = bg
        return new


# ---------------------------------------------------------------------------------------------------
# samplers


class Sampler:
    """Base: `apply(cur)` edits a TokenDataArray; `accept(token)` / `reset()` for stateful ones."""

    name = "sampler"

    def apply(self, cur: TokenDataArray) -> None:
        raise NotImplementedError

    def __call__(self, logits_or_cur) -> TokenDataArray:
        """Apply to a TokenDataArray (in place) or to a copy of a logits row; returns the candidates."""
        cur = logits_or_cur if isinstance(logits_or_cur, TokenDataArray) else TokenDataArray.from_logits(logits_or_cur)
        self.apply(cur)
        return cur

    def accept(self, token: int) -> None:
        pass

    def reset(self) -> None:
        pass

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Greedy(Sampler):
    """`llama_sampler_init_greedy`: selects the first candidate with the largest logit."""

    name = "greedy"

    def apply(self, cur):
        cur.selected = int(np.argmax(cur.logits)) if cur.size else -1


class Dist(Sampler):
    """`llama_sampler_init_dist(seed)`: softmax over the remaining candidates (in their current
    order), u = uniform_real_distribution<double>(mt19937), selects the first candidate whose
    running probability sum reaches u * total. One draw per call, even with a single candidate.
    seed None / -1 / 0xFFFFFFFF = random (re-drawn by reset(), like llama.cpp)."""

    name = "dist"

    def __init__(self, seed=None):
        self.seed = seed
        self.seed_cur = resolve_seed(seed)
        self._rng = StdMT19937(self.seed_cur)

    def reset(self):
        self.seed_cur = resolve_seed(self.seed)
        self._rng.seed(self.seed_cur)

    def apply(self, cur):
        n = cur.size
        if n == 0:
            cur.selected = -1
            return
        rnd = self._rng.uniform_double()
        if n == 1:
            cur.p = np.ones(1, np.float32)
            cur.selected = 0
            return
        p = np.empty(n, np.float32)
        cur.selected = int(_dist_kernel(cur.logits, cur.sorted, rnd, p))
        cur.p = p


class TopK(Sampler):
    """`llama_sampler_init_top_k(k)`: keep the k largest logits, sorted descending. k <= 0: no-op."""

    name = "top-k"

    def __init__(self, k: int):
        self.k = int(k)

    def apply(self, cur):
        if self.k <= 0:
            return
        k = min(self.k, cur.size)
        if not cur.sorted:
            cur.sort_desc(k)
        cur.truncate(k)


class TopP(Sampler):
    """`llama_sampler_init_top_p(p, min_keep)`: softmax, sort descending, keep the smallest prefix
    whose (float32) cumulative probability is >= p and has at least min_keep tokens (all if never
    reached). p >= 1: no-op."""

    name = "top-p"

    def __init__(self, p: float, min_keep: int = 1):
        self.p = float(p)
        self.min_keep = int(min_keep)

    def apply(self, cur):
        if self.p >= 1.0 or cur.size == 0:
            return
        cur.p = _softmax(cur.logits, cur.sorted)
        thr = _F32(self.p)
        if not cur.sorted and cur.size > 1024:
            # llama.cpp's adaptive partial sort: try the top 256 first (here also the top 4096)
            # before sorting everything; the kept prefix is the same either way
            k = 256
            while k * 8 < cur.size:
                top = _top_k_indices(cur.logits, k)
                last = _cum_reach(cur.p[top], thr, self.min_keep)
                if last > 0:
                    cur.take(top[:last])
                    cur.sorted = True
                    return
                k *= 16
        if not cur.sorted:
            cur.sort_desc()
        last = _cum_reach(cur.p, thr, self.min_keep)
        cur.truncate(last if last > 0 else cur.size)


class MinP(Sampler):
    """`llama_sampler_init_min_p(p, min_keep)`: keep candidates with logit >= max_logit + log(p)
    (i.e. p_i >= p * p_max). Unsorted input keeps its order; if fewer than min_keep survive, falls
    back to the sorted variant which keeps at least min_keep. p <= 0: no-op."""

    name = "min-p"

    def __init__(self, p: float, min_keep: int = 1):
        self.p = float(p)
        self.min_keep = int(min_keep)

    def apply(self, cur):
        if self.p <= 0.0 or cur.size == 0:
            return
        log_p = _F32(math.log(float(_F32(self.p))))
        if not cur.sorted:
            # llama.cpp starts its max at -FLT_MAX: all -inf logits then fall through to the sorted path
            min_logit = max(_F32(cur.logits.max()), _F32(-3.4028234663852886e38)) + log_p
            keep = np.flatnonzero(cur.logits >= min_logit)
            if keep.shape[0] and keep.shape[0] >= self.min_keep:
                if keep.shape[0] != cur.size:
                    if cur.identity and keep.shape[0] == keep[-1] + 1:
                        cur.truncate(keep.shape[0])
                    else:
                        cur.take(keep)
                return
            cur.sort_desc()
        min_logit = cur.logits[0] + log_p
        below = cur.logits[1:] < min_logit
        below[: max(self.min_keep - 1, 0)] = False
        hit = np.flatnonzero(below)
        cur.truncate(int(hit[0]) + 1 if hit.shape[0] else cur.size)


class Typical(Sampler):
    """`llama_sampler_init_typical(p, min_keep)` (locally typical sampling): softmax (sorted),
    entropy H, order candidates by |-log p_i - H| ascending, keep the shortest prefix whose
    cumulative probability exceeds p (and min_keep). Leaves the candidates unsorted. p >= 1: no-op."""

    name = "typical"

    def __init__(self, p: float, min_keep: int = 1):
        self.p = float(p)
        self.min_keep = int(min_keep)

    def apply(self, cur):
        if self.p >= 1.0 or cur.size == 0:
            return
        if not cur.sorted:
            cur.sort_desc()
        cur.p = _softmax(cur.logits, True)
        scores = np.empty(cur.size, np.float32)
        _typical_scores(cur.p, scores)
        order = _argsort_asc(scores)
        last = _typical_cut(cur.p, order, _F32(self.p), self.min_keep)
        cur.take(order[:last])
        cur.sorted = False


class Temperature(Sampler):
    """`llama_sampler_init_temp_ext(temp, delta, exponent)` (`init_temp` when delta = 0).

    delta <= 0: logits /= temp; temp <= 0 keeps only the first largest logit and sets every other
    candidate to -inf (greedy through the chain). delta > 0 (dynamic temperature): sort + softmax,
    normalised entropy e = H / log(n), temp = t_min + (t_max - t_min) * e^exponent with
    t_min = max(0, temp - delta), t_max = temp + delta, then rescale and recompute probabilities."""

    name = "temp"

    def __init__(self, temp: float, delta: float = 0.0, exponent: float = 1.0):
        self.temp = float(temp)
        self.delta = float(delta)
        self.exponent = float(exponent)

    @staticmethod
    def _scale(cur, temp):
        if cur.size == 0:
            return
        if temp <= 0.0:
            i = int(np.argmax(cur.logits))
            lg = np.full(cur.size, _NEG_INF, np.float32)
            lg[i] = cur.logits[i]
            cur.logits = lg
        else:
            cur.logits = cur.logits / _F32(temp)
        cur.p = None

    def apply(self, cur):
        if self.delta > 0.0:
            t = _F32(self.temp)
            d = _F32(self.delta)
            min_temp = max(_F32(0.0), t - d)
            max_temp = t + d
            if cur.size <= 1:
                return
            max_entropy = -_F32(math.log(float(_F32(1.0) / _F32(cur.size))))
            if not cur.sorted:
                cur.sort_desc()
            entropy = _F32(_entropy(_softmax(cur.logits, True)))
            norm = entropy / max_entropy
            dyn = min_temp + (max_temp - min_temp) * _F32(math.pow(float(norm), float(_F32(self.exponent))))
            self._scale(cur, float(dyn))
            e = np.exp(cur.logits.astype(np.float64) - np.float64(cur.logits[0]))
            cur.p = (e / e.sum()).astype(np.float32)
            return
        if self.temp == 1.0:
            return
        self._scale(cur, float(_F32(self.temp)))


class Penalties(Sampler):
    """`llama_sampler_init_penalties(last_n, repeat, freq, present)` over the last `last_n` accepted
    tokens (-1 = every token accepted since reset, 0 = disabled). For a candidate seen c > 0 times:
    logit *= repeat if logit <= 0 else logit /= repeat; then logit -= c * freq + present.
    No-op when last_n == 0 or all three are neutral (1, 0, 0)."""

    name = "penalties"

    def __init__(self, last_n: int = 64, repeat: float = 1.0, freq: float = 0.0, present: float = 0.0):
        self.last_n = int(last_n)
        self.repeat = float(repeat)
        self.freq = float(freq)
        self.present = float(present)
        self._prev: deque = deque()
        self._count: dict[int, int] = {}
        self._arrays = None

    @property
    def disabled(self) -> bool:
        return self.last_n == 0 or (self.repeat == 1.0 and self.freq == 0.0 and self.present == 0.0)

    def accept(self, token):
        if self.last_n == 0:
            return
        token = int(token)
        self._count[token] = self._count.get(token, 0) + 1
        if self.last_n > 0 and len(self._prev) >= self.last_n:
            old = self._prev.popleft()
            c = self._count[old] - 1
            if c:
                self._count[old] = c
            else:
                del self._count[old]
        self._prev.append(token)
        self._arrays = None

    def reset(self):
        self._prev.clear()
        self._count.clear()
        self._arrays = None

    @property
    def history(self) -> list[int]:
        """Tokens in the penalty window, oldest first."""
        return list(self._prev)

    def _tables(self):
        if self._arrays is None:
            toks = np.array(sorted(self._count), dtype=np.int64)
            cnts = np.array([self._count[t] for t in toks.tolist()], dtype=np.float32)
            self._arrays = (toks, cnts)
        return self._arrays

    def apply(self, cur):
        if self.disabled or not self._count or cur.size == 0:
            return
        toks, cnts = self._tables()
        if cur.identity:
            m = toks < cur.size
            pos, c = toks[m], cnts[m]
        else:
            j = np.minimum(np.searchsorted(toks, cur.ids), toks.shape[0] - 1)
            pos = np.flatnonzero(toks[j] == cur.ids)
            c = cnts[j[pos]]
        if pos.shape[0] == 0:
            cur.sorted = False
            return
        lg = cur.logits[pos]
        r = _F32(self.repeat)
        lg = np.where(lg <= 0, lg * r, lg / r).astype(np.float32)
        lg -= c * _F32(self.freq) + _F32(self.present)
        cur.logits = cur.logits.copy() if not cur.logits.flags.writeable else cur.logits
        cur.logits[pos] = lg
        cur.p = None
        cur.sorted = False


class TopNSigma(Sampler):
    """`llama_sampler_init_top_n_sigma(n)`: over finite logits, set to -inf every logit below
    max - n * std. n <= 0: no-op."""

    name = "top-n-sigma"

    def __init__(self, n: float):
        self.n = float(n)

    def apply(self, cur):
        if self.n <= 0.0 or cur.size <= 1:
            return
        _n_sigma_mask(cur.logits, _F32(self.n))
        cur.p = None


class XTC(Sampler):
    """`llama_sampler_init_xtc(probability, threshold, min_keep, seed)` (exclude top choices): with
    probability `probability` (own mt19937, uniform_real_distribution<float>), sort + softmax and
    remove every candidate with p >= threshold except the least probable of them, if at least two
    qualify and min_keep remain. No-op if probability <= 0 or threshold > 0.5."""

    name = "xtc"

    def __init__(self, probability: float, threshold: float = 0.1, min_keep: int = 1, seed=None):
        self.probability = float(probability)
        self.threshold = float(threshold)
        self.min_keep = int(min_keep)
        self.seed = seed
        self.seed_cur = resolve_seed(seed)
        self._rng = StdMT19937(self.seed_cur)

    def reset(self):
        self.seed_cur = resolve_seed(self.seed)
        self._rng.seed(self.seed_cur)

    def apply(self, cur):
        if self.probability <= 0.0 or self.threshold > 0.5 or cur.size < 2:
            return
        if self._rng.uniform_float() > _F32(self.probability):
            return
        if not cur.sorted:
            cur.sort_desc()
        cur.p = _softmax(cur.logits, True)
        above = np.flatnonzero(cur.p < _F32(self.threshold))
        n_above = int(above[0]) if above.shape[0] else cur.size
        pos_last = max(n_above - 1, 0)
        if cur.size - pos_last >= self.min_keep and pos_last > 0:
            cur.ids = cur.ids[pos_last:]
            cur.logits = cur.logits[pos_last:]
            cur.p = cur.p[pos_last:]
            cur.identity = False


class LogitBias(Sampler):
    """`llama_sampler_init_logit_bias`: add bias[token] to each listed token's logit (-inf bans it)."""

    name = "logit-bias"

    def __init__(self, bias: dict):
        items = sorted((int(t), float(b)) for t, b in dict(bias).items())
        self.bias = dict(items)
        self._toks = np.array([t for t, _ in items], dtype=np.int64)
        self._vals = np.array([b for _, b in items], dtype=np.float32)

    def apply(self, cur):
        if not self.bias or cur.size == 0:
            return
        if cur.identity:
            m = (self._toks >= 0) & (self._toks < cur.size)
            pos, v = self._toks[m], self._vals[m]
        else:
            j = np.minimum(np.searchsorted(self._toks, cur.ids), self._toks.shape[0] - 1)
            pos = np.flatnonzero(self._toks[j] == cur.ids)
            v = self._vals[j[pos]]
        if pos.shape[0]:
            cur.logits[pos] += v
            cur.p = None
            cur.sorted = False
