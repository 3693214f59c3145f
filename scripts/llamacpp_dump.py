#!/usr/bin/env python3
"""Dump llama.cpp's named intermediate tensors (like llama-eval-callback) and diff them with
ggraph's nodes of the same name (attn_norm-0, Qcur-0, kqv_out-0, ffn_out-0, l_out-0, ...).

    python scripts/llamacpp_dump.py MODEL.gguf "The cat sat" [--layers 2] [--decode] [--isolated]

--decode    feed the prompt token by token (one-token ubatches, the decode code paths) on both
            sides and compare the nodes of the last token.
--isolated  also run ggraph's op kernels on llama.cpp's own inputs for every RMS_NORM, NORM,
            MUL_MAT (attention, and weight x activation with ggraph's weights), SOFT_MAX, ROPE,
            GLU and UNARY node, so each kernel is checked on its own (exact = bit-identical
            output), whatever drift came before it.

Needs llama-cpp-python. Reads every node through the cb_eval hook of llama_context_params.
"""
from __future__ import annotations

import argparse
import ctypes
import os

import numpy as np


class GGMLTensor(ctypes.Structure):
    # struct ggml_tensor from ggml.h (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64)
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]


_NP_TYPES = {0: np.float32, 1: np.float16, 26: np.int32}     # GGML_TYPE_F32, F16, I32


def _read(t: GGMLTensor) -> np.ndarray | None:
    """A copy of t's data as a numpy array (shape reversed ne, F16 widened to float32)."""
    dt = _NP_TYPES.get(t.type)
    if dt is None or not t.data:
        return None
    shape = tuple(reversed([int(x) for x in t.ne]))
    strides = tuple(reversed([int(x) for x in t.nb]))
    esz = np.dtype(dt).itemsize
    extent = sum((n - 1) * s for n, s in zip(shape, strides)) + esz
    buf = (ctypes.c_char * extent).from_address(t.data)
    arr = np.array(np.lib.stride_tricks.as_strided(np.frombuffer(buf, dt), shape, strides))
    return arr.astype(np.float32) if dt == np.float16 else arr


def _is_contiguous(t: GGMLTensor) -> bool:
    esz = {0: 4, 1: 2, 26: 4}.get(t.type, 0)
    nb = esz
    for d in range(4):
        if t.ne[d] != 1 and t.nb[d] != nb:
            return False
        nb *= t.ne[d]
    return True


class _OpNames:
    def __init__(self):
        import llama_cpp
        lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
        self._name, self._desc = lib.ggml_op_name, lib.ggml_op_desc
        self._name.restype, self._name.argtypes = ctypes.c_char_p, [ctypes.c_int]
        self._desc.restype, self._desc.argtypes = ctypes.c_char_p, [ctypes.c_void_p]

    def __call__(self, ptr, t):
        return self._name(t.op).decode(), self._desc(ptr).decode()


_KERNEL_OPS = ("RMS_NORM", "NORM", "MUL_MAT", "SOFT_MAX", "ROPE", "GLU", "UNARY")


def llamacpp_nodes(model_path: str, ids: list[int], n_ctx: int = 512, decode: bool = False,
                   isolated: bool = False) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Named F32 nodes of the (last) llama_decode, and, if isolated, the records of the nodes our
    kernels implement (op, op_params, srcs) in graph order."""
    import llama_cpp as lc
    dumped: dict[str, np.ndarray] = {}
    records: list[dict] = []
    op_names = _OpNames() if isolated else None

    pending: dict[int, list] = {}

    @lc.ggml_backend_sched_eval_callback
    def cb(ptr, ask, _ud):
        t = ctypes.cast(ptr, ctypes.POINTER(GGMLTensor)).contents
        if ask:
            # the scheduler asks before computing the node (its sources are ready) and calls again
            # once it is computed: the sources are read now, as the allocator may let the node
            # overwrite them in place (soft_max, norms, ...)
            if op_names is not None and op_names(ptr, t)[0] in _KERNEL_OPS and t.type == 0:
                srcs = []
                for sp in t.src:
                    if not sp:
                        break
                    s = ctypes.cast(sp, ctypes.POINTER(GGMLTensor)).contents
                    srcs.append({"type": s.type, "data": _read(s), "contiguous": _is_contiguous(s),
                                 "name": s.name.decode()})
                pending[ptr] = srcs
            return True
        if t.type == 0 and t.data:
            dumped[t.name.decode()] = _read(t)
        srcs = pending.pop(ptr, None)
        if srcs is not None:
            op, desc = op_names(ptr, t)
            records.append({"op": op, "desc": desc, "name": t.name.decode(), "params": list(t.op_params),
                            "out": _read(t), "srcs": srcs})
        return True

    lc.llama_backend_init()
    model = lc.llama_model_load_from_file(model_path.encode(), lc.llama_model_default_params())
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_threads, cp.n_threads_batch = n_ctx, 512, 512, 2, 2
    cp.cb_eval, cp.cb_eval_user_data = cb, None
    if hasattr(cp, "flash_attn_type"):
        cp.flash_attn_type = 0
    ctx = lc.llama_init_from_model(model, cp)
    batches = [[i] for i in ids] if decode else [ids]
    for b in batches:
        dumped.clear()
        records.clear()
        arr = (ctypes.c_int32 * len(b))(*b)
        if lc.llama_decode(ctx, lc.llama_batch_get_one(arr, len(b))) != 0:
            raise RuntimeError("llama_decode failed")
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    return dumped, records


def ggraph_nodes(model_path: str, ids: list[int], n_ctx: int = 512, decode: bool = False) -> dict[str, np.ndarray]:
    from ggraph.runtime.context import _Step
    from ggraph.runtime.executor import Plan
    from ggraph.runtime.model import Model
    from ggraph.runtime.storage import as_f32
    m = Model(model_path)
    ctx = m.new_context(n_ctx=n_ctx, n_threads=2)
    n = 1 if decode else len(ids)
    n_kv = ctx.kv.n_kv_for(len(ids))
    g = ctx.build_graph(n, n, n_kv)
    plan = Plan(g.gf, m.weights, ctx.kv.arrays, reuse_buffers=False)
    ctx._steps[(n, n, n_kv)] = _Step(g, plan)
    if decode:
        for i in ids:     # every step uses the same (1, 1, n_kv) debug plan; nodes of the last remain
            ctx.decode([i], logits_all=True)
    else:
        ctx.decode(ids, logits_all=True)
    return {t.name: np.array(as_f32(t, plan.array(t))) for t in g.gf.nodes if t.name and t.kind == "op"}


# -- isolated kernel checks ---------------------------------------------------------------------

def _f32_param(params, i):
    return float(np.array([params[i]], np.int32).view(np.float32)[0])


def _rows(a):
    return np.ascontiguousarray(a.reshape(-1, a.shape[-1]))


def run_kernel(rec: dict, weights: dict | None = None) -> np.ndarray | None:
    """ggraph's kernel for one recorded llama.cpp node, on llama.cpp's inputs (None: not ours).
    With `weights` (ggraph's prepared weights by name), matmuls with a weight run ggraph's
    quantized matmul on llama.cpp's activations."""
    from ggraph.runtime.kernels import batched_matmul, elementwise, norm, rope, softmax
    from ggraph.runtime.kernels.quantize_act import round_to_f16
    op, desc, p, srcs = rec["op"], rec["desc"], rec["params"], rec["srcs"]
    out = np.empty(rec["out"].shape, np.float32)
    if op == "MUL_MAT" and weights is not None and srcs[0]["name"] in weights:
        from ggraph.runtime.kernels.matmul import mul_mat as q_mul_mat
        o = _rows(out)
        q_mul_mat(weights[srcs[0]["name"]], _rows(srcs[1]["data"]), o)
        return o.reshape(out.shape)
    x = srcs[0]["data"]
    if x is None:
        return None
    if op in ("RMS_NORM", "NORM"):
        o = _rows(out)
        (norm.rms_norm_f32 if op == "RMS_NORM" else norm.norm_f32)(_rows(x), o, np.float32(_f32_param(p, 0)))
        return o.reshape(out.shape)
    if op == "UNARY" and desc in ("SILU", "GELU"):
        o = _rows(out)
        (elementwise.silu_f32 if desc == "SILU" else elementwise.gelu_f32)(_rows(x), o)
        return o.reshape(out.shape)
    if op == "GLU" and desc in ("SWIGLU", "GEGLU") and len(srcs) > 1:
        o = _rows(out)
        (elementwise.swiglu_f32 if desc == "SWIGLU" else elementwise.geglu_f32)(_rows(x), _rows(srcs[1]["data"]), o)
        return o.reshape(out.shape)
    if op == "SOFT_MAX":
        if _f32_param(p, 1) != 0.0 or len(srcs) > 2:
            return None
        has_mask = len(srcs) > 1
        mask = srcs[1]["data"][0, 0] if has_mask else np.zeros((1, 1), np.float32)
        softmax.soft_max_f32(np.ascontiguousarray(x[0]), np.ascontiguousarray(mask), out[0],
                             np.float32(_f32_param(p, 0)), has_mask)
        return out
    if op == "ROPE":
        n_dims, mode, n_ctx_orig = p[1], p[2], p[4]
        fb, fs, ef, af, bf, bs = (_f32_param(p, i) for i in range(5, 11))
        if mode not in (0, 2):
            return None
        has_ff = len(srcs) > 2
        ff = srcs[2]["data"].reshape(-1) if has_ff else np.ones(1, np.float32)
        c0, c1 = rope.yarn_corr_dims(n_dims, n_ctx_orig, fb, bf, bs)
        rope.rope_f32(np.ascontiguousarray(x[0]), srcs[1]["data"].reshape(-1), out[0], ff, has_ff, n_dims,
                      mode == 2, fb, fs, ef, af, c0, c1)
        return out
    if op == "MUL_MAT":
        a, b = srcs
        if a["type"] not in (0, 1) or a["data"] is None:
            return None      # quantized weights: not these kernels
        f16 = a["type"] == 1
        bx = round_to_f16(b["data"][0]) if f16 else np.ascontiguousarray(b["data"][0])
        try:
            batched_matmul.bmm_f32(np.ascontiguousarray(a["data"][0]), bx, out[0], f16, b["contiguous"])
        except TypeError:    # older bmm_f32(a, x, out)
            batched_matmul.bmm_f32(np.ascontiguousarray(a["data"][0]), bx, out[0])
        return out
    return None


def isolated_report(records: list[dict], layers: int, weights: dict | None = None) -> None:
    print(f"\nisolated kernels on llama.cpp's inputs ({len(records)} nodes)")
    print(f"{'node':24s} {'op':18s} {'shape':>18s} {'max|diff|':>12s} {'exact':>6s}")
    summary: dict[str, list[int]] = {}
    for rec in records:
        ours = run_kernel(rec, weights)
        if ours is None:
            continue
        ref = rec["out"]
        exact = bool(np.array_equal(ours.view(np.int32), ref.view(np.int32)) or np.array_equal(ours, ref))
        kind = rec["op"] if rec["op"] not in ("UNARY", "GLU") else rec["desc"]
        if kind == "MUL_MAT" and weights is not None and rec["srcs"][0]["name"] in weights:
            kind = "MUL_MAT(weight)"
        st = summary.setdefault(kind, [0, 0])
        st[0] += exact
        st[1] += 1
        name = rec["name"]
        parts = name.rsplit("-", 1)
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) >= layers:
            continue
        print(f"{name:24s} {kind:18s} {str(ref.shape):>18s} {float(np.abs(ours - ref).max()):12.4g} {str(exact):>6s}")
    print("summary (bit-exact / checked, all layers): " +
          ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in summary.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("prompt")
    ap.add_argument("--layers", type=int, default=2, help="show per-layer nodes of the first N layers")
    ap.add_argument("--decode", action="store_true", help="one token per ubatch; compare the last token")
    ap.add_argument("--isolated", action="store_true", help="run our kernels on llama.cpp's inputs")
    a = ap.parse_args()
    import llama_cpp
    vocab_model = llama_cpp.Llama(a.model, vocab_only=True, verbose=False)
    ids = vocab_model.tokenize(a.prompt.encode(), add_bos=True, special=False)
    ref, records = llamacpp_nodes(a.model, ids, decode=a.decode, isolated=a.isolated)
    ours = ggraph_nodes(a.model, ids, decode=a.decode)
    weights = None
    if a.isolated:
        from ggraph.runtime.model import Model
        weights = Model(a.model).weights
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
    if a.isolated:
        isolated_report(records, a.layers, weights)


if __name__ == "__main__":
    main()
