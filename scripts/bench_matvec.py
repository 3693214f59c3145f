"""Mat-vec (M=1, decode) speed of every supported weight format, plus SmolLM2-135M's matmul shapes.

Times the public mul_mat (activation quantization + kernel + call overhead), median of repeats, and
reports weight bytes / time. "hot" repeats one matrix (it stays in L2/L3 when it fits); "cold" cycles
through copies totalling > 3x L3, so weights stream from RAM as in real decoding of a whole model.
Run on a quiet machine: `python scripts/bench_matvec.py [--quick]`.
"""
import argparse
import os
import time

import numba
import numpy as np

from ggraph.runtime.kernels.matmul import mul_mat
from ggraph.runtime.kernels.type_traits import FORMATS
from ggraph.runtime.weights import prepare_weight

SMOLLM2 = [  # (ne0 inputs, ne1 outputs, type name, what)
    (576, 576, "Q4_1", "attn_q / attn_output"),
    (576, 192, "Q4_1", "attn_k / attn_v"),
    (576, 1536, "Q4_1", "ffn_gate / ffn_up"),
    (1536, 576, "Q4_1", "ffn_down"),
    (576, 49152, "Q8_0", "output (tied token_embd)"),
]


def random_weight(fmt, ne0, ne1, rng):
    """Random bytes with small finite fp16 scales: speed does not depend on the values."""
    if fmt.block_size == 1:   # F32 / F16 / BF16 (f16 bit patterns are finite bf16 values too)
        dt = np.float32 if fmt.name == "F32" else np.float16
        raw = rng.standard_normal((ne1, ne0)).astype(dt).view(np.uint8)
    else:  # every 16-bit word a half in ~0.008-0.01, so all block scales are finite
        raw = rng.integers(0, 256, size=(ne1, fmt.row_bytes(ne0)), dtype=np.uint8)
        h = raw.view(np.uint16)
        h &= 0x03FF
        h |= 0x2000
    return prepare_weight(f"bench.{fmt.name}", int(fmt.type), raw, ne0, ne1)


COLD_BYTES = 100_000_000   # > 3x the 32 MB L3 of the reference machine


def median_time(ws, x, out, reps):
    """Median seconds per mul_mat, cycling through the weights in ws."""
    for w in ws:
        mul_mat(w, x, out)
    ts = []
    for i in range(reps):
        w = ws[i % len(ws)]
        t = time.perf_counter()
        mul_mat(w, x, out)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def cold_copies(w):
    """Copies of w (same bytes, new memory) totalling COLD_BYTES."""
    n = max(1, COLD_BYTES // w.nbytes_weights)
    return [prepare_weight(w.name, w.ggml_type, w.raw.copy(), w.ne0, w.ne1) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    threads = [t for t in (1, 2) if t <= numba.config.NUMBA_NUM_THREADS]
    reps_big, reps_small = (5, 50) if args.quick else (21, 300)
    print(f"load average {os.getloadavg()[0]:.2f}, numba threads available {numba.config.NUMBA_NUM_THREADS}")

    n = args.size
    cols = [(mode, t) for mode in ("hot", "cold") for t in threads]
    head = " ".join(f"{f'{m} {t}thr':>10}" for m, t in cols)
    print(f"\n{n}x{n} mat-vec: GB/s of weight bytes (and us), median of {reps_big}")
    print(f"{'format':8} {'MB':>6} {head}")
    x = rng.standard_normal((1, n)).astype(np.float32)
    out = np.empty((1, n), np.float32)
    for fmt in FORMATS.values():
        w = random_weight(fmt, n, n, rng)
        sets = {"hot": [w], "cold": cold_copies(w)}
        cells = []
        for mode, t in cols:
            numba.set_num_threads(t)
            s = median_time(sets[mode], x, out, max(reps_big, len(sets[mode])))
            cells.append(f"{w.nbytes_weights / s / 1e9:5.1f}{f'({s * 1e6:.0f})':>7}")
        print(f"{fmt.name:8} {w.nbytes_weights / 1e6:6.1f} " + " ".join(cells))

    print(f"\nSmolLM2-135M shapes (ne0 x ne1): microseconds per mat-vec, median of {reps_small}")
    print(f"{'shape':11} {'type':5} {'KB':>6} {head}  use")
    by_name = {f.name: f for f in FORMATS.values()}
    for ne0, ne1, tname, what in SMOLLM2:
        w = random_weight(by_name[tname], ne0, ne1, rng)
        sets = {"hot": [w], "cold": cold_copies(w)}
        x = rng.standard_normal((1, ne0)).astype(np.float32)
        out = np.empty((1, ne1), np.float32)
        cells = []
        for mode, t in cols:
            numba.set_num_threads(t)
            s = median_time(sets[mode], x, out, max(reps_small, len(sets[mode])))
            cells.append(f"{s * 1e6:10.1f}")
        print(f"{f'{ne0}x{ne1}':11} {tname:5} {w.nbytes_weights / 1e3:6.0f} " + " ".join(cells) + f"  {what}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
