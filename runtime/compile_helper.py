"""The second core's share of a first run's compiling.

Numba compiles one kernel at a time, in one thread. On a first run the context starts this module
in a child process (`start`): it builds the same plans the parent is about to run (the prompt's
ubatch and the one-token step after it) and calls one step of each kind (op, weight format, array layouts) on
dummy inputs, while the parent runs its steps in order: first the one-token attention products (a kernel
only the second plan needs), then the prompt's kinds in the reverse order of their first use. Each
kernel one of them compiles lands in Numba's on-disk cache, where the other finds it when it gets
there: the two big weight kernels of a model (e.g. Q4_1 layers, Q8_0 output) compile side by side.
The child's results are garbage and thrown away; it only has to call every kernel with the
argument types the parent's will have. The parent stops it once its own first step is done.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np


def start(ctx, n_prompt: int):
    """Start the helper for ctx's model and a prompt of n_prompt tokens (None when it cannot help)."""
    if (os.cpu_count() or 1) < 2 or os.environ.get("GGRAPH_NO_COMPILE_HELPER"):
        return None
    args = [sys.executable, "-m", "ggraph.runtime.compile_helper", ctx.model.path, str(ctx.n_ctx),
            str(ctx.n_ubatch), str(n_prompt), str(ctx.kv.n_past), str(int(ctx.kv.swa is None))]
    try:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    except OSError:
        return None


def stop(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _run_kinds_backwards(ctx, n_tokens: int, n_past: int, only=None) -> None:
    from ggraph.llm import UBatch
    ctx.kv.n_past = n_past
    n_kv = ctx.kv.n_kv_for(n_tokens)
    pos = np.arange(n_past, n_past + n_tokens, dtype=np.int32)
    cells_swa, pos_swa, n_kv_swa = ctx._place_swa([0], [pos])
    step = ctx._step(n_tokens, 1, n_kv, n_kv_swa=n_kv_swa)
    ub = UBatch(n_tokens, 1, n_kv, tokens=np.zeros(n_tokens, np.int32), pos=pos,
                out_ids=np.array([n_tokens - 1], np.int32), kv_cells=ctx.kv.find_slot(n_tokens),
                kv_pos=ctx.kv.cell_pos(n_kv, n_past + n_tokens),
                n_kv_swa=n_kv_swa, kv_cells_swa=cells_swa, kv_pos_swa=pos_swa)
    arrays = step.plan.arrays
    for inp in step.inputs:
        inp.set_input(ub, lambda t: arrays[t.id].reshape(-1))
    first = {}
    for fn, kind in zip(step.plan.steps, step.plan.kinds):
        if kind is not None and (only is None or only(kind[0])):
            first.setdefault(kind, fn)
    with np.errstate(all="ignore"):
        for fn in reversed(list(first.values())):
            fn()


def _sample_once(ctx) -> None:
    """The sampler chain's kernels (llama.cpp's default chain: top-k, softmax, top-p, min-p, dist),
    which the parent needs right after its first decode."""
    from .sampling import SamplerChain, SamplerParams
    chain = SamplerChain.from_params(SamplerParams(seed=1), ctx.n_vocab)
    chain.sample(np.random.default_rng(0).standard_normal(ctx.n_vocab).astype(np.float32))


def main(argv) -> None:
    import ggraph
    path, n_ctx, n_ubatch, n_prompt, n_past, swa_full = argv[0], *map(int, argv[1:6])
    ctx = ggraph.load(path).new_context(n_ctx=n_ctx, n_ubatch=n_ubatch, n_threads=1, swa_full=bool(swa_full))
    n_first = min(n_prompt, ctx.n_ubatch)
    n_next = min(n_past + n_prompt, n_ctx - 1)
    if n_first > 1:
        # the parent runs the prompt's plan first, then the one-token plan: first what only the latter
        # needs (the attention products' vec_dot-order kernel), then the prompt's kinds from its end
        # (the output product first), meeting the parent half way, then the rest of the one-token plan
        _run_kinds_backwards(ctx, 1, n_next, only=lambda label: label.startswith("mul_mat kq"))
        _sample_once(ctx)
        _run_kinds_backwards(ctx, n_first, n_past)
    _run_kinds_backwards(ctx, 1, n_next)


if __name__ == "__main__":
    main(sys.argv[1:])
