#!/usr/bin/env python3
"""Side-by-side speed: ggraph and llama.cpp (llama-cpp-python) on the same GGUF, same threads,
interleaved repetitions, medians and ratios (the machine is shared and noisy: compare, don't quote
absolutes). pp = one batch of N prompt tokens, tg = N one-token decode steps.

    python scripts/bench.py MODEL.gguf [-t 2] [-p 512] [-n 128] [-r 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def llamacpp_pp(llm, toks):
    llm.reset()
    t = time.perf_counter()
    llm.eval(toks)
    return len(toks) / (time.perf_counter() - t)


def llamacpp_tg(llm, toks, n):
    llm.reset()
    llm.eval(toks[:1])
    t = time.perf_counter()
    for i in range(n):
        llm.eval([toks[i + 1]])
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=3)
    a = ap.parse_args()

    import llama_cpp

    import ggraph
    from ggraph.runtime.apps.bench import _pp, _tg

    rng = np.random.default_rng(0)
    model = ggraph.load(a.model)
    toks = rng.integers(100, model.n_vocab - 100, size=max(a.n_prompt, a.n_gen + 1)).tolist()
    n_ctx = max(a.n_prompt, a.n_gen + 1) + 16
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=n_ctx, n_batch=512, n_ubatch=512, n_threads=a.threads,
                          n_threads_batch=a.threads, flash_attn=False, verbose=False)
    ctx = model.new_context(n_ctx=n_ctx, n_ubatch=512, n_threads=a.threads)
    # warm-up both (kernel loading, graph plans, page cache)
    _pp(ctx, toks[:a.n_prompt]), _tg(ctx, toks, 8), llamacpp_pp(llm, toks[:a.n_prompt]), llamacpp_tg(llm, toks, 8)
    res = {k: [] for k in ("g_pp", "l_pp", "g_tg", "l_tg")}
    for _ in range(a.reps):
        res["l_pp"].append(llamacpp_pp(llm, toks[:a.n_prompt]))
        res["g_pp"].append(_pp(ctx, toks[:a.n_prompt]))
        res["l_tg"].append(llamacpp_tg(llm, toks, a.n_gen))
        res["g_tg"].append(_tg(ctx, toks, a.n_gen))
    med = {k: statistics.median(v) for k, v in res.items()}
    name = model.file.get("general.name")
    print(f"model: {name} ({a.model}); threads {a.threads}; llama-cpp-python {llama_cpp.__version__}; "
          f"median of {a.reps} interleaved runs")
    print("| test | ggraph t/s | llama.cpp t/s | ratio |")
    print("|---|---|---|---|")
    for test, g, l in ((f"pp{a.n_prompt}", med["g_pp"], med["l_pp"]), (f"tg{a.n_gen}", med["g_tg"], med["l_tg"])):
        print(f"| {test} | {g:.1f} | {l:.1f} | {g / l:.2f}x |")


if __name__ == "__main__":
    main()
