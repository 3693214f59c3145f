#!/usr/bin/env python3
"""Streaming read bandwidth of this machine (GB/s) at 1 and 2 threads: the ceiling for mat-vec,
which reads every weight byte once. Median of repeats over a 1 GiB buffer.

    python scripts/bench_bandwidth.py
"""
import statistics
import time

import numba
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, fastmath=True)
def _read_all(a):
    """a: [chunks, n] int64; vectorised sums, one chunk per prange iteration."""
    acc = np.zeros(a.shape[0], np.int64)
    for c in prange(a.shape[0]):
        s = np.int64(0)
        row = a[c]
        for i in range(row.shape[0]):
            s += row[i]
        acc[c] = s
    return acc.sum()


def main():
    a = np.ones((64, 1 << 21), np.int64)     # 1 GiB in 64 chunks of 16 MiB
    for t in (1, 2):
        numba.set_num_threads(t)
        _read_all(a)
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            _read_all(a)
            runs.append(a.nbytes / (time.perf_counter() - t0) / 1e9)
        print(f"threads {t}: {statistics.median(runs):.1f} GB/s (median of 5)")


if __name__ == "__main__":
    main()
