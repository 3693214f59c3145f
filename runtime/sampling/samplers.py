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

Deviations (see also `chain.py`): ties between equal logits are broken by current position (a
stable sort) where llama.cpp's `std::sort`/`std::partial_sort` leave them in an unspecified order;
`Typical` treats `0 * log(0)` as 0 where llama.cpp would produce NaN for underflowed probabilities.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .candidates import TokenDataArray, _argsort_asc
from .kernels import (_cum_reach, _dist_kernel, _entropy, _n_sigma_mask, _softmax, _top_k_indices, _typical_cut,
                      _typical_scores)
from .rng import StdMT19937, resolve_seed

_F32 = np.float32
_NEG_INF = np.float32(-np.inf)


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


class _RandomSampler(Sampler):
    """A sampler that draws random numbers (Dist, XTC): its own mt19937; reset() restarts a fixed
    seed's sequence and re-draws a random seed."""

    def _seed_rng(self, seed) -> None:
        self.seed = seed
        self.seed_cur = resolve_seed(seed)
        self._rng = StdMT19937(self.seed_cur)

    def reset(self) -> None:
        self.seed_cur = resolve_seed(self.seed)
        self._rng.seed(self.seed_cur)


class Greedy(Sampler):
    """`llama_sampler_init_greedy`: selects the first candidate with the largest logit."""

    name = "greedy"

    def apply(self, cur):
        cur.selected = int(np.argmax(cur.logits)) if cur.size else -1


class Dist(_RandomSampler):
    """`llama_sampler_init_dist(seed)`: softmax over the remaining candidates (in their current
    order), u = uniform_real_distribution<double>(mt19937), selects the first candidate whose
    running probability sum reaches u * total. One draw per call, even with a single candidate.
    seed None / -1 / 0xFFFFFFFF = random (re-drawn by reset(), like llama.cpp)."""

    name = "dist"

    def __init__(self, seed=None):
        self._seed_rng(seed)


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


class XTC(_RandomSampler):
    """`llama_sampler_init_xtc(probability, threshold, min_keep, seed)` (exclude top choices): with
    probability `probability` (own mt19937, uniform_real_distribution<float>), sort + softmax and
    remove every candidate with p >= threshold except the least probable of them, if at least two
    qualify and min_keep remain. No-op if probability <= 0 or threshold > 0.5."""

    name = "xtc"

    def __init__(self, probability: float, threshold: float = 0.1, min_keep: int = 1, seed=None):
        self.probability = float(probability)
        self.threshold = float(threshold)
        self.min_keep = int(min_keep)
        self._seed_rng(seed)


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
