"""llama-bench style measurement: pp<N> (one batch of N prompt tokens) and tg<N> (N one-token
decode steps), median tokens/s over repetitions, after one warm-up run."""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np


def _pp(ctx, toks) -> float:
    ctx.reset()
    t = time.perf_counter()
    ctx.decode(toks)
    return len(toks) / (time.perf_counter() - t)


def _tg(ctx, toks, n_gen) -> float:
    ctx.reset()
    ctx.decode(toks[:1])
    t = time.perf_counter()
    for i in range(n_gen):
        ctx.decode(toks[(i + 1) % len(toks):(i + 1) % len(toks) + 1])
    return n_gen / (time.perf_counter() - t)


def bench(model, n_prompt=512, n_gen=128, reps=3, n_threads=None, out=sys.stdout) -> dict:
    rng = np.random.default_rng(0)
    toks = rng.integers(0, model.n_vocab, size=max(n_prompt, n_gen + 1)).tolist()
    ctx = model.new_context(n_ctx=max(n_prompt, n_gen + 1) + 16, n_ubatch=512, n_threads=n_threads)
    _pp(ctx, toks[:n_prompt]), _tg(ctx, toks, min(n_gen, 8))        # warm-up: compile/load kernels, plans
    pp = [_pp(ctx, toks[:n_prompt]) for _ in range(reps)]
    tg = [_tg(ctx, toks, n_gen) for _ in range(reps)]
    res = {"model": model.path, "threads": ctx.n_threads, f"pp{n_prompt}": statistics.median(pp),
           f"tg{n_gen}": statistics.median(tg)}
    print("| model | threads | test | t/s |\n|---|---|---|---|", file=out)
    for k in (f"pp{n_prompt}", f"tg{n_gen}"):
        print(f"| {model.file.get('general.name')} | {ctx.n_threads} | {k} | {res[k]:.1f} |", file=out)
    return res
