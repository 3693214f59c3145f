"""The sampler chain's float loops over the whole vocabulary, as Numba kernels (float32 where
llama.cpp's samplers use float, float64 where they use double)."""
from __future__ import annotations

import math

import numba as nb
import numpy as np


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

@nb.njit(cache=True, nogil=True, inline="always")
def _sift_down(hv, hi, size, v, vi):
    """Put (v, vi) at the root of the min-heap hv/hi[:size] and sift it down ("worse" = lower
    value, or equal value and higher position)."""
    j = 0
    while True:
        c = 2 * j + 1
        if c >= size:
            break
        if c + 1 < size and (hv[c + 1] < hv[c] or (hv[c + 1] == hv[c] and hi[c + 1] > hi[c])):
            c += 1
        if hv[c] < v or (hv[c] == v and hi[c] > vi):
            hv[j] = hv[c]
            hi[j] = hi[c]
            j = c
        else:
            break
    hv[j] = v
    hi[j] = vi


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
        _sift_down(hv, hi, k, v, i)       # replace the root
    # pop the worst element repeatedly: fills the output from the end
    out = np.empty(k, np.int64)
    m = k
    while m > 0:
        out[m - 1] = hi[0]
        m -= 1
        if m == 0:
            break
        _sift_down(hv, hi, m, hv[m], hi[m])   # the last element moves to the root
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
