"""`ggraph bench --parallel 1,2,4,8`: aggregate generation speed with N sequences decoding together.

Each of the N sequences gets its own short prompt (untimed), then n_gen steps in which every sequence
decodes one token: ggraph's Context.decode_batch (one ubatch for all, the server's engine) and, with
--vs-llama-cpp, llama.cpp through llama-cpp-python's C API (a context with n_seq_max = N, one
llama_batch holding every sequence's token per step, F16 KV, no flash attention). The two alternate
repetition by repetition. Aggregate t/s = N * n_gen / time; "scale" = that over the N = 1 rate.
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from ggraph.errors import GGraphError

N_PROMPT = 16


class _GGraph:
    backend = "ggraph"

    def __init__(self, model, n_seq, n_ctx_seq, n_threads):
        self.ctx = model.new_context(n_ctx=n_ctx_seq * n_seq, n_threads=n_threads, n_seq_max=n_seq)
        self.n_seq, self.n_threads = n_seq, self.ctx.n_threads

    def reset_and_prompt(self, prompts):
        self.ctx.reset()
        for s, p in enumerate(prompts):
            self.ctx.decode(p, seq_id=s)

    def step(self, toks):
        if self.n_seq == 1:
            self.ctx.decode(toks[:1])
        else:
            self.ctx.decode_batch({s: int(t) for s, t in enumerate(toks)})


_LOG_CB = None


def _quiet_llama_cpp(lc) -> None:
    """The C API logs every load step to stderr; a no-op log callback keeps the table readable."""
    global _LOG_CB
    if _LOG_CB is None:
        import ctypes
        _LOG_CB = lc.llama_log_callback(lambda level, text, user_data: None)
        lc.llama_log_set(_LOG_CB, ctypes.c_void_p(0))


class _LlamaCpp:
    backend = "llama.cpp"

    def __init__(self, path, n_seq, n_ctx_seq, n_threads):
        try:
            import llama_cpp as lc
        except ImportError:
            raise GGraphError('--vs-llama-cpp needs llama-cpp-python: pip install "ggraph[compare]"') from None
        self.lc, self.n_seq, self.n_threads = lc, n_seq, n_threads
        _quiet_llama_cpp(lc)
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        self.model = lc.llama_model_load_from_file(path.encode(), mp)
        cp = lc.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx_seq * n_seq, 512, 512, n_seq
        cp.n_threads = cp.n_threads_batch = n_threads
        cp.flash_attn_type = 0            # LLAMA_FLASH_ATTN_TYPE_DISABLED, as ggraph computes
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise GGraphError("llama.cpp could not create the context")
        self.batch = lc.llama_batch_init(max(512, n_seq), 0, 1)
        self.pos = [0] * n_seq

    def _decode(self, items):
        b = self.batch
        for i, (tok, pos, seq, want) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = tok, pos, 1, seq, want
        b.n_tokens = len(items)
        if self.lc.llama_decode(self.ctx, b) != 0:
            raise GGraphError("llama_decode failed")

    def reset_and_prompt(self, prompts):
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)
        for s, p in enumerate(prompts):
            self._decode([(int(t), i, s, i == len(p) - 1) for i, t in enumerate(p)])
            self.pos[s] = len(p)

    def step(self, toks):
        self._decode([(int(toks[s]), self.pos[s], s, True) for s in range(self.n_seq)])
        self.pos = [p + 1 for p in self.pos]

    def close(self):
        self.lc.llama_batch_free(self.batch)
        self.lc.llama_free(self.ctx)
        self.lc.llama_model_free(self.model)


def bench_parallel(model, n_seqs=(1, 2, 4, 8), n_gen=64, reps=3, n_threads=None, vs_llama_cpp=False,
                   out=sys.stdout, progress=sys.stderr) -> list[dict]:
    if reps < 1 or n_gen < 1 or not n_seqs or min(n_seqs) < 1:
        raise GGraphError("bench --parallel: repetitions, -n and every N must be >= 1")
    rng = np.random.default_rng(0)
    toks = rng.integers(100, model.n_vocab - 100, size=(max(n_seqs), N_PROMPT + n_gen + 1))
    n_ctx_seq = N_PROMPT + n_gen + 16
    rows = []
    for n in n_seqs:
        runners = [_GGraph(model, n, n_ctx_seq, n_threads)]
        if vs_llama_cpp:
            runners.append(_LlamaCpp(model.path, n, n_ctx_seq, runners[0].n_threads))
        speeds = {r.backend: [] for r in runners}
        prompts = [toks[s, :N_PROMPT].tolist() for s in range(n)]
        for i in range(reps + 1):                    # the first pass is a warm-up
            for r in (runners if i % 2 == 0 else runners[::-1]):
                r.reset_and_prompt(prompts)
                t = time.perf_counter()
                for k in range(n_gen):
                    r.step(toks[:n, N_PROMPT + k])
                if i:
                    speeds[r.backend].append(n * n_gen / (time.perf_counter() - t))
            if progress is not None and i:
                print(f"bench: parallel {n} repetition {i}/{reps}", file=progress, flush=True)
        for r in runners:
            v = speeds[r.backend]
            rows.append({"backend": r.backend, "threads": r.n_threads, "n_parallel": n, "n_gen": n_gen,
                         "samples_ts": v, "avg_ts": statistics.mean(v), "median_ts": statistics.median(v),
                         "stddev_ts": statistics.stdev(v) if len(v) > 1 else 0.0})
            if hasattr(r, "close"):
                r.close()
    print_table(rows, vs_llama_cpp, out)
    return rows


def print_table(rows, ratio, out):
    head = "| backend | threads | parallel | tg t/s (aggregate) | scale vs 1 |" + (" ratio |" if ratio else "")
    print(head, file=out)
    print("|" + "---|" * (head.count("|") - 1), file=out)
    one = {r["backend"]: r["median_ts"] for r in rows if r["n_parallel"] == 1}
    ref = {r["n_parallel"]: r["median_ts"] for r in rows if r["backend"] == "llama.cpp"}
    for r in rows:
        scale = f"{r['median_ts'] / one[r['backend']]:.2f}x" if r["backend"] in one else "-"
        line = (f"| {r['backend']} | {r['threads']} | {r['n_parallel']} | {r['avg_ts']:.2f} ± {r['stddev_ts']:.2f} "
                f"| {scale} |")
        if ratio:
            line += f" {r['median_ts'] / ref[r['n_parallel']]:.2f}x |" if r["backend"] == "ggraph" else " 1.00x |"
        print(line, file=out)
