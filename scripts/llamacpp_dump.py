#!/usr/bin/env python3
"""Dump llama.cpp's named intermediate tensors (like llama-eval-callback) and diff them with
ggraph's nodes of the same name (attn_norm-0, Qcur-0, kqv_out-0, ffn_out-0, l_out-0, ...).

    python scripts/llamacpp_dump.py MODEL.gguf "The cat sat" [--layers 2]

Needs llama-cpp-python. Reads every F32 node through the cb_eval hook of llama_context_params.
"""
from __future__ import annotations

import argparse
import ctypes

import numpy as np


class GGMLTensor(ctypes.Structure):
    # struct ggml_tensor from ggml.h (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64)
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]


def llamacpp_nodes(model_path: str, ids: list[int], n_ctx: int = 512) -> dict[str, np.ndarray]:
    import llama_cpp as lc
    dumped: dict[str, np.ndarray] = {}

    @lc.ggml_backend_sched_eval_callback
    def cb(ptr, ask, _ud):
        t = ctypes.cast(ptr, ctypes.POINTER(GGMLTensor)).contents
        if ask:
            return True
        if t.type == 0 and t.data:     # F32 only; shape as numpy (reversed ne) using byte strides
            shape = tuple(reversed([int(x) for x in t.ne]))
            strides = tuple(reversed([int(x) for x in t.nb]))
            extent = sum((n - 1) * s for n, s in zip(shape, strides)) + 4
            buf = (ctypes.c_char * extent).from_address(t.data)
            arr = np.lib.stride_tricks.as_strided(np.frombuffer(buf, np.float32), shape, strides)
            dumped[t.name.decode()] = np.array(arr)
        return True

    lc.llama_backend_init()
    model = lc.llama_model_load_from_file(model_path.encode(), lc.llama_model_default_params())
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_threads, cp.n_threads_batch = n_ctx, 512, 512, 2, 2
    cp.cb_eval, cp.cb_eval_user_data = cb, None
    if hasattr(cp, "flash_attn_type"):
        cp.flash_attn_type = 0
    ctx = lc.llama_init_from_model(model, cp)
    arr = (ctypes.c_int32 * len(ids))(*ids)
    if lc.llama_decode(ctx, lc.llama_batch_get_one(arr, len(ids))) != 0:
        raise RuntimeError("llama_decode failed")
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    return dumped


def ggraph_nodes(model_path: str, ids: list[int], n_ctx: int = 512) -> dict[str, np.ndarray]:
    from ggraph.runtime.executor import Plan
    from ggraph.runtime.model import Model
    m = Model(model_path)
    ctx = m.new_context(n_ctx=n_ctx, n_threads=2)
    n_kv = ctx.kv.n_kv_for(len(ids))
    g = ctx.build_graph(len(ids), len(ids), n_kv)
    plan = Plan(g, m.weights, ctx.kv.arrays, reuse_buffers=False)
    ctx._plans[(len(ids), len(ids), n_kv)] = plan
    ctx.decode(ids, logits_all=True)
    return {t.name: np.array(plan.array(t)) for t in g.nodes if t.name and t.kind == "op"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("prompt")
    ap.add_argument("--layers", type=int, default=2, help="show per-layer nodes of the first N layers")
    a = ap.parse_args()
    import llama_cpp
    vocab_model = llama_cpp.Llama(a.model, vocab_only=True, verbose=False)
    ids = vocab_model.tokenize(a.prompt.encode(), add_bos=True, special=False)
    ref = llamacpp_nodes(a.model, ids)
    ours = ggraph_nodes(a.model, ids)
    print(f"{'node':24s} {'shape':>18s} {'max|diff|':>12s} {'max|ref|':>12s}")
    for name, r in ref.items():
        parts = name.rsplit("-", 1)
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) >= a.layers:
            continue
        o = ours.get(name)
        if o is None or o.size != r.size:
            continue
        o = o.reshape(r.shape)
        print(f"{name:24s} {str(r.shape):>18s} {np.abs(o - r).max():12.4g} {np.abs(r).max():12.4g}")


if __name__ == "__main__":
    main()
