"""Prompt-batch (M = 512) matmul speed of the quantized formats, as a fraction of this machine's int8
peak: the public mul_mat (activation quantization + kernel) on the weight shapes of SmolLM2 and
Gemma-3, against a loop of independent VNNI dots (vpdpbusd, 64 multiply-adds each) that does nothing
else, on the same threads. Reports GOPS (2 ops per multiply-add) and % of that peak.
Run on a quiet machine: `python scripts/bench_matmul.py [--threads 2] [--quick]`.
"""
import argparse
import os
import sys
import time

import numba
import numpy as np
from numba import njit, prange

sys.path.insert(0, os.path.dirname(__file__))
from bench_matvec import random_weight  # noqa: E402

from ggraph.runtime.kernels.matmul import mul_mat  # noqa: E402
from ggraph.runtime.kernels.simd.i32 import ihsum, isplat  # noqa: E402
from ggraph.runtime.kernels.simd.u8 import dot_acc, load64  # noqa: E402
from ggraph.runtime.kernels.type_traits import FORMATS  # noqa: E402

SHAPES = [  # (ne0 inputs, ne1 outputs, type name, what)
    (576, 1536, "Q4_1", "SmolLM2 ffn_gate / ffn_up"),
    (1536, 576, "Q4_1", "SmolLM2 ffn_down"),
    (640, 2048, "Q5_0", "Gemma-3 ffn_gate / ffn_up"),
    (640, 1024, "Q5_0", "Gemma-3 attn_q"),
    (640, 256, "Q8_0", "Gemma-3 attn_v"),
    (1024, 640, "Q4_K", "Gemma-3 attn_output"),
    (2048, 640, "Q6_K", "Gemma-3 ffn_down"),
]
M = 512


@njit(parallel=True, cache=True)
def _vnni_loop(a, n_iter, n_tasks):
    """n_tasks x n_iter x 12 independent vpdpbusd: the int8 multiply-add ceiling."""
    tot = 0
    for t in prange(n_tasks):
        u = load64(a, 0)
        s = load64(a, 64)
        c0, c1, c2, c3 = isplat(t), isplat(1), isplat(2), isplat(3)
        c4, c5, c6, c7 = isplat(4), isplat(5), isplat(6), isplat(7)
        c8, c9, c10, c11 = isplat(8), isplat(9), isplat(10), isplat(11)
        for _ in range(n_iter):
            c0, c1, c2, c3 = dot_acc(c0, u, s), dot_acc(c1, u, s), dot_acc(c2, u, s), dot_acc(c3, u, s)
            c4, c5, c6, c7 = dot_acc(c4, u, s), dot_acc(c5, u, s), dot_acc(c6, u, s), dot_acc(c7, u, s)
            c8, c9, c10, c11 = dot_acc(c8, u, s), dot_acc(c9, u, s), dot_acc(c10, u, s), dot_acc(c11, u, s)
        tot += ihsum(c0) + ihsum(c1) + ihsum(c2) + ihsum(c3) + ihsum(c4) + ihsum(c5) + ihsum(c6) \
            + ihsum(c7) + ihsum(c8) + ihsum(c9) + ihsum(c10) + ihsum(c11)
    return tot


def vnni_peak_gops(threads: int, reps: int) -> float:
    a = np.ones(128, np.uint8)
    n_iter = 200_000
    _vnni_loop(a, 10, threads)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        _vnni_loop(a, n_iter, threads)
        ts.append(time.perf_counter() - t0)
    return threads * n_iter * 12 * 64 * 2 / np.median(ts) / 1e9


def matmul_gops(ne0, ne1, name, reps, rng):
    w = random_weight(next(f for f in FORMATS.values() if f.name == name), ne0, ne1, rng)
    x = rng.standard_normal((M, ne0)).astype(np.float32)
    out = np.empty((M, ne1), np.float32)
    mul_mat(w, x, out)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        mul_mat(w, x, out)
        ts.append(time.perf_counter() - t0)
    return 2 * M * ne0 * ne1 / np.median(ts) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    numba.set_num_threads(args.threads)
    reps = 3 if args.quick else 9
    rng = np.random.default_rng(0)
    peak = vnni_peak_gops(args.threads, reps)
    print(f"int8 peak (independent vpdpbusd, {args.threads} threads): {peak:.0f} GOPS")
    print("| shape (ne0 x ne1), M = 512 | format | what | GOPS | % of peak |")
    print("|---|---|---|---|---|")
    for ne0, ne1, name, what in SHAPES:
        g = matmul_gops(ne0, ne1, name, reps, rng)
        print(f"| {ne0} x {ne1} | {name} | {what} | {g:.0f} | {100 * g / peak:.0f}% |")


if __name__ == "__main__":
    main()
