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

import numpy as np

# The captures live in the package (`ggraph compare --tensors` uses them): llama.cpp's cb_eval in
# runtime/apps/llamacpp_eval.py, ggraph's eval callback in runtime/apps/tensors.py.
from ggraph.runtime.apps.llamacpp_eval import GGMLTensor, read_tensor  # noqa: F401  (for importers)


def llamacpp_nodes(model_path: str, ids: list[int], n_ctx: int = 512, decode: bool = False,
                   isolated: bool = False) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Named F32 nodes of the (last) llama_decode by name (the last node of a name wins), and, if
    isolated, the records of the nodes our kernels implement (op, op_params, srcs) in graph order."""
    from ggraph.runtime.apps.llamacpp_eval import llamacpp_nodes as capture
    nodes, records = capture(model_path, ids, n_ctx=n_ctx, decode=decode, isolated=isolated)
    return {nd.name: nd.value for nd in nodes}, records


def ggraph_nodes(model_path: str, ids: list[int], n_ctx: int = 512, decode: bool = False) -> dict[str, np.ndarray]:
    """ggraph's named op nodes (views included) of the (last) ubatch by name, logits for every
    position, through the context's eval callback."""
    from ggraph.runtime.apps.tensors import ggraph_nodes as capture
    return {nd.name: nd.value for nd in capture(model_path, ids, n_ctx=n_ctx, decode=decode, n_threads=2)}


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
