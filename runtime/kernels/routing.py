"""The small ops of expert routing, as ggml's CPU backend computes them (ops.cpp / unary-ops.cpp).

argsort: std::sort of the row's indices with the comparator data[a] > data[b] (descending) or <,
  ported step for step from libstdc++ (GCC builds llama.cpp): for rows of at most 16 elements a plain
  insertion sort (ties in index order), above that introsort, whose swaps can reorder ties.
sum_rows: ggml_vec_sum_f32, a sequential double accumulator rounded to float at the end.
sigmoid: 1 / (1 + expf(-x)) in float32 with the C library's expf (Numba's math.exp on float32).
"""
import math

import numpy as np
from numba import njit

F32 = np.float32


@njit(cache=True, inline="always")
def _less(x, a, b, descending):
    """The comparator ggml's argsort gives std::sort: x[a] > x[b] (DESC) or x[a] < x[b] (ASC)."""
    return x[a] > x[b] if descending else x[a] < x[b]


@njit(cache=True)
def _push_heap(x, o, lo, hole, top, value, d):
    parent = (hole - 1) // 2
    while hole > top and _less(x, o[lo + parent], value, d):
        o[lo + hole] = o[lo + parent]
        hole = parent
        parent = (hole - 1) // 2
    o[lo + hole] = value


@njit(cache=True)
def _adjust_heap(x, o, lo, hole, n, value, d):
    top = hole
    child = hole
    while child < (n - 1) // 2:
        child = 2 * (child + 1)
        if _less(x, o[lo + child], o[lo + child - 1], d):
            child -= 1
        o[lo + hole] = o[lo + child]
        hole = child
    if (n & 1) == 0 and child == (n - 2) // 2:
        child = 2 * (child + 1)
        o[lo + hole] = o[lo + child - 1]
        hole = child - 1
    _push_heap(x, o, lo, hole, top, value, d)


@njit(cache=True)
def _heap_sort(x, o, lo, hi, d):
    """std::__partial_sort(first, last, last): make_heap, then sort_heap."""
    n = hi - lo
    if n >= 2:
        parent = (n - 2) // 2
        while True:
            _adjust_heap(x, o, lo, parent, n, o[lo + parent], d)
            if parent == 0:
                break
            parent -= 1
    while hi - lo > 1:
        hi -= 1
        v = o[hi]
        o[hi] = o[lo]
        _adjust_heap(x, o, lo, 0, hi - lo, v, d)


@njit(cache=True)
def _introsort(x, o, n, d):
    """libstdc++'s std::sort (bits/stl_algo.h) on the index row o, step for step: introsort down to
    runs of 16 (median-of-three pivot into the first slot, unguarded partition, heap sort past
    2*floor(log2 n) levels), then the final insertion sort. Ties land where its swaps put them."""
    if n > 16:
        stack = np.empty((2 * 64 + 2, 3), np.int64)
        stack[0, 0], stack[0, 1], stack[0, 2] = 0, n, 2 * _lg(n)
        sp = 1
        while sp > 0:
            sp -= 1
            lo, hi, depth = stack[sp, 0], stack[sp, 1], stack[sp, 2]
            while hi - lo > 16:
                if depth == 0:
                    _heap_sort(x, o, lo, hi, d)
                    break
                depth -= 1
                a, b, c = lo + 1, lo + (hi - lo) // 2, hi - 1       # __move_median_to_first
                if _less(x, o[a], o[b], d):
                    m = b if _less(x, o[b], o[c], d) else (c if _less(x, o[a], o[c], d) else a)
                else:
                    m = a if _less(x, o[a], o[c], d) else (c if _less(x, o[b], o[c], d) else b)
                o[lo], o[m] = o[m], o[lo]
                first, last = lo + 1, hi                             # __unguarded_partition
                while True:
                    while _less(x, o[first], o[lo], d):
                        first += 1
                    last -= 1
                    while _less(x, o[lo], o[last], d):
                        last -= 1
                    if not first < last:
                        break
                    o[first], o[last] = o[last], o[first]
                    first += 1
                stack[sp, 0], stack[sp, 1], stack[sp, 2] = first, hi, depth     # the right part
                sp += 1
                hi = first
    # __final_insertion_sort: guarded over the first 16, unguarded after (the minimum is in front)
    for i in range(1, n):
        v = o[i]
        if i < 16 and _less(x, v, o[0], d):
            for k in range(i, 0, -1):
                o[k] = o[k - 1]
            o[0] = v
            continue
        p = i
        while _less(x, v, o[p - 1], d):
            o[p] = o[p - 1]
            p -= 1
        o[p] = v


@njit(cache=True, inline="always")
def _lg(n):
    """std::__lg: floor(log2(n)) for n > 0."""
    lg = 0
    while (n >> (lg + 1)) > 0:
        lg += 1
    return lg


@njit(cache=True)
def argsort_rows(x, out, descending):
    """x [rows, n] f32 -> out [rows, n] i32, each row's indices in std::sort's order."""
    n = x.shape[1]
    for r in range(x.shape[0]):
        o = out[r]
        for i in range(n):
            o[i] = i
        _introsort(x[r], o, n, descending)


@njit(cache=True)
def sum_rows_f32(x, out):
    """x [rows, n] -> out [rows] (double accumulator, as ggml_vec_sum_f32)."""
    for r in range(x.shape[0]):
        s = 0.0
        for i in range(x.shape[1]):
            s += np.float64(x[r, i])
        out[r] = F32(s)


@njit(cache=True)
def sigmoid_f32(x, out):
    """x, out [rows, n]: 1 / (1 + expf(-x))."""
    for r in range(x.shape[0]):
        for i in range(x.shape[1]):
            out[r, i] = F32(1.0) / (F32(1.0) + F32(math.exp(-x[r, i])))
