"""`ggraph bench`: llama-bench's measurement and table.

pp<N>: one prompt of N tokens in ubatches; tg<N>: N one-token decode steps; "@ d<D>": D tokens are
already in the context (filled once, untimed; each repetition truncates back to them). Every test
runs once untimed first (kernel loading, plans, page cache). With `vs_llama_cpp`, llama.cpp
(llama-cpp-python) runs the same tests on the same GGUF and threads, alternating with ggraph
repetition by repetition, so both see the same machine load; the ratio is what to read.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

from ggraph.errors import GGraphError


class _GGraphRunner:
    backend = "ggraph"

    def __init__(self, model, n_ctx, n_threads):
        self.ctx = model.new_context(n_ctx=n_ctx, n_batch=2048, n_ubatch=512, n_threads=n_threads)
        self.n_threads = self.ctx.n_threads

    def keep(self, n):
        self.ctx.truncate(min(n, self.ctx.n_past))

    def prompt(self, toks):
        self.ctx.decode(toks)

    def gen_one(self, tok):
        self.ctx.decode([tok])


class _LlamaCppRunner:
    backend = "llama.cpp"

    def __init__(self, path, n_ctx, n_threads):
        try:
            import llama_cpp
        except ImportError:
            raise GGraphError("--vs-llama-cpp needs llama-cpp-python: pip install -e \".[compare]\"") from None
        self.llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=2048, n_ubatch=512, n_threads=n_threads,
                                   n_threads_batch=n_threads, flash_attn=False, verbose=False)
        self.n_threads = n_threads

    def keep(self, n):
        self.llm.n_tokens = min(n, self.llm.n_tokens)   # Llama.eval drops the KV cells past n_tokens

    def prompt(self, toks):
        self.llm.eval(toks)

    def gen_one(self, tok):
        self.llm.eval([tok])


def _timed(runner, toks, depth, kind, n):
    """Tokens/s of one repetition: truncate to the depth, then pp n or tg n."""
    runner.keep(depth)
    if kind == "tg":
        t = time.perf_counter()
        for i in range(n):
            runner.gen_one(toks[i % len(toks)])
        return n / (time.perf_counter() - t)
    t = time.perf_counter()
    runner.prompt(toks[:n])
    return n / (time.perf_counter() - t)


def _tests(n_prompt, n_gen, depths):
    out = []
    for d in depths:
        if n_prompt > 0:
            out.append(("pp", n_prompt, d))
        if n_gen > 0:
            out.append(("tg", n_gen, d))
    return out


def check_args(n_prompt, n_gen, reps, depths):
    if reps < 1:
        raise GGraphError(f"bench: -r/--repetitions must be at least 1, got {reps}")
    if n_prompt < 0 or n_gen < 0 or (n_prompt == 0 and n_gen == 0):
        raise GGraphError(f"bench: -p and -n must be >= 0 and not both 0 (got -p {n_prompt} -n {n_gen})")
    if any(d < 0 for d in depths):
        raise GGraphError(f"bench: -d/--n-depth must be >= 0, got {depths}")


def bench(model, n_prompt=512, n_gen=128, reps=5, n_threads=None, depths=(0,), vs_llama_cpp=False,
          out=sys.stdout, progress=sys.stderr, as_json=False, profile=False) -> list[dict]:
    """Run llama-bench's tests; print its table (or JSON) to `out`; return one row per backend x test.
    With `profile`, ggraph's timed repetitions also record where each token's time goes, per op
    (each row gets "profile": {label: [ms per token, calls per token]}; printed after the table)."""
    depths = tuple(depths)
    check_args(n_prompt, n_gen, reps, depths)
    n_ctx = max(depths) + max(n_prompt, n_gen) + 16
    toks = np.random.default_rng(0).integers(100, model.n_vocab - 100, size=max(n_prompt, n_gen) + max(depths)).tolist()
    runners = [_GGraphRunner(model, n_ctx, n_threads)]
    if vs_llama_cpp:
        runners.append(_LlamaCppRunner(model.path, n_ctx, runners[0].n_threads))
    rows = []
    for kind, n, d in _tests(n_prompt, n_gen, depths):
        speeds = {r.backend: [] for r in runners}
        for r in runners:    # the depth is filled once per test, untimed; then a warm-up repetition
            r.keep(0)
            if d:
                r.prompt(toks[n:n + d] if kind == "pp" else toks[:d])
            _timed(r, toks if kind == "pp" else toks[d:], d, kind, min(n, 16))
        ops = {} if profile else None
        runners[0].ctx.op_profile = ops
        for i in range(reps):
            for r in (runners if i % 2 == 0 else runners[::-1]):    # alternate who goes first
                speeds[r.backend].append(_timed(r, toks if kind == "pp" else toks[d:], d, kind, n))
            if progress is not None:
                print(f"bench: {kind}{n}{f' @ d{d}' if d else ''} repetition {i + 1}/{reps}", file=progress, flush=True)
        runners[0].ctx.op_profile = None
        test = f"{kind}{n}" + (f" @ d{d}" if d else "")
        for r in runners:
            v = speeds[r.backend]
            rows.append({"backend": r.backend, "threads": r.n_threads, "test": test, "n_prompt": n if kind == "pp" else 0,
                         "n_gen": n if kind == "tg" else 0, "n_depth": d, "samples_ts": v,
                         "avg_ts": statistics.mean(v), "stddev_ts": statistics.stdev(v) if len(v) > 1 else 0.0,
                         "median_ts": statistics.median(v)})
            if ops is not None and r.backend == "ggraph":
                n_tok = reps * n
                rows[-1]["profile"] = {k: [1e3 * t / n_tok, c / n_tok] for k, (t, c) in ops.items()}
    if as_json:
        print(json.dumps({"model": model.path, "rows": rows}, indent=2), file=out)
    else:
        print_table(model, rows, vs_llama_cpp, out)
        for row in rows:
            if "profile" in row:
                print_profile(row, out)
    return rows


def print_profile(row, out):
    """Per-op table of one test: where a token's time goes inside the plan (ops and thread switches;
    the rest of a step, Python around the plan, is the difference to 1000 / t/s)."""
    prof = row["profile"]
    total = sum(ms for ms, _ in prof.values())
    step = 1e3 / row["avg_ts"]
    print(f"\nprofile {row['test']} (ggraph): {step:.3f} ms per token, {total:.3f} ms in ops", file=out)
    print("| op | calls / token | ms / token | share |", file=out)
    print("|---|---|---|---|", file=out)
    for label, (ms, calls) in sorted(prof.items(), key=lambda kv: -kv[1][0]):
        print(f"| {label} | {calls:.1f} | {ms:.3f} | {100 * ms / total:.1f}% |", file=out)


def print_table(model, rows, ratio, out):
    info = model.info()
    name = info["name"] or info["architecture"]
    size = f"{info['file_size'] / 2**20:.2f} MiB"
    params = f"{info['n_params'] / 1e6:.2f} M"
    head = "| model | size | params | backend | threads | test | t/s |" + (" ratio |" if ratio else "")
    print(head, file=out)
    print("|" + "---|" * (head.count("|") - 1), file=out)
    ref = {row["test"]: row["median_ts"] for row in rows if row["backend"] == "llama.cpp"}
    for row in rows:
        line = (f"| {name} | {size} | {params} | {row['backend']} | {row['threads']} | {row['test']} | "
                f"{row['avg_ts']:.2f} ± {row['stddev_ts']:.2f} |")
        if ratio:
            r = row["median_ts"] / ref[row["test"]] if row["backend"] == "ggraph" else 1.0
            line += f" {r:.2f}x |"
        print(line, file=out)
