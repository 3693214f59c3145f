"""`ggraph graph`: the compute graph of one ubatch as the model file builds it (the graph the runtime
plans, before fusions): every node with its op, shape (ggml ne order), type and bytes, a header with
per-op counts and the weight bytes per layer, and Graphviz DOT (SVG when `dot` is installed).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

from ggraph.errors import GGraphError
from ggraph.graph import row_size

VIEW_OPS = ("view", "reshape", "permute", "transpose")


def tensor_bytes(t) -> int:
    return row_size(t.type, t.ne[0]) * t.ne[1] * t.ne[2] * t.ne[3]


def _size(n: int) -> str:
    for unit, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n} B"


def build(model, n_tokens: int, n_outputs: int = 1):
    """The model's graph for one ubatch of n_tokens (n_outputs rows of logits) at the start of a
    context: (LLMGraphContext, n_kv)."""
    from ..kv_cache import KV_PAD, pad
    n_ctx = pad(n_tokens)
    ctx = model.new_context(n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=1)
    n_kv = ctx.kv.n_kv_for(n_tokens, pad_to=KV_PAD)        # llama.cpp's graph (its n_kv padding)
    return ctx.build_graph(n_tokens, n_outputs, n_kv), n_kv


def leaves(g, kind: str) -> dict:
    """Weight / cache leaves by name: they belong to the model's (the cache's) own graph, so they
    are found as sources, not in g.gf.nodes (their ids overlap this graph's)."""
    out = {}
    for t in g.gf.nodes:
        for s in t.src:
            if s.kind == kind:
                out.setdefault(s.name, s)
    return out


def summary(model, g, n_kv: int) -> dict:
    nodes = g.gf.nodes
    ops = [t for t in nodes if t.kind == "op"]
    computed = [t for t in ops if t.op not in VIEW_OPS]
    weights = leaves(g, "weight")
    per_layer: dict[str, int] = {}
    other: dict[str, int] = {}
    for name, t in weights.items():
        m = re.match(r"blk\.(\d+)\.", name)
        if m:
            per_layer[m.group(1)] = per_layer.get(m.group(1), 0) + tensor_bytes(t)
        else:
            other[name] = tensor_bytes(t)
    return {
        "model": model.path, "architecture": model.file.arch, "n_tokens": g.n_tokens, "n_outputs": g.n_outputs,
        "n_kv": n_kv, "n_nodes": len(nodes), "n_ops": len(computed), "n_views": len(ops) - len(computed),
        "n_leaves": {"input": sum(t.kind == "input" for t in nodes), "weight": len(weights),
                     "cache": len(leaves(g, "cache"))},
        "op_counts": dict(Counter(t.op for t in ops).most_common()),
        "weight_bytes": sum(tensor_bytes(t) for t in weights.values()),
        "weight_bytes_per_layer": {int(k): v for k, v in sorted(per_layer.items(), key=lambda kv: int(kv[0]))},
        "weight_bytes_other": other,
        "activation_bytes": sum(tensor_bytes(t) for t in computed),
    }


def _ref(s) -> str:
    """How a row names a source: weights and cache leaves by name, this graph's nodes by name or #id."""
    return s.name if s.kind in ("weight", "cache") or s.name else f"#{s.id}"


def node_rows(g) -> list[dict]:
    """This graph's nodes (inputs and ops) in order; sources as names (#id for unnamed nodes)."""
    rows = []
    for t in g.gf.nodes:
        view = t.kind == "op" and t.op in VIEW_OPS
        rows.append({"id": t.id, "name": t.name, "op": t.op if t.kind == "op" else t.kind, "kind": t.kind,
                     "shape": list(t.ne[:t.n_dims]), "type": t.type.name, "bytes": 0 if view else tensor_bytes(t),
                     "view": view, "src": [_ref(s) for s in t.src]})
    return rows


def to_dot(g) -> str:
    """Graphviz DOT: ops as ellipses (views dashed), inputs, weights and cache leaves as boxes.
    Nodes are keyed by object, as weights and cache leaves come from other graphs."""
    keys: dict[int, str] = {}
    out = ["digraph ggraph {", "  rankdir=TB;", '  node [fontname="monospace", fontsize=10];']

    def key(t) -> str:
        k = keys.get(id(t))
        if k is None:
            k = keys[id(t)] = f"n{len(keys)}"
            shape = "box" if t.kind != "op" else "ellipse"
            style = ', style=dashed' if t.kind == "op" and t.op in VIEW_OPS else ""
            what = t.op if t.kind == "op" else t.kind
            label = f"{_ref(t)}\\n{what} {t.shape_str()} {t.type.name}".replace('"', "'")
            out.append(f'  {k} [label="{label}", shape={shape}{style}];')
        return k

    for t in g.gf.nodes:
        k = key(t)
        for s in t.src:
            out.append(f"  {key(s)} -> {k};")
    out.append("}")
    return "\n".join(out)


def _layers_line(per_layer: dict) -> str:
    """Runs of layers with the same weight bytes: 'blk.0-29 4.38 MiB each'."""
    items = list(per_layer.items())
    out, i = [], 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1][1] == items[i][1] and items[j + 1][0] == items[j][0] + 1:
            j += 1
        k0, v = items[i]
        out.append(f"blk.{k0} {_size(v)}" if i == j else f"blk.{k0}-{items[j][0]} {_size(v)} each")
        i = j + 1
    return ", ".join(out)


def format_text(s: dict, rows: list[dict], g) -> list[str]:
    lv = s["n_leaves"]
    lines = [f"graph of {os.path.basename(s['model'])} ({s['architecture']}): one ubatch of {s['n_tokens']} tokens, "
             f"{s['n_outputs']} output row(s), n_kv {s['n_kv']}",
             f"nodes: {s['n_nodes']} ({s['n_ops']} computed, {s['n_views']} views, {lv['input']} inputs); "
             f"read from outside: {lv['weight']} weights, {lv['cache']} KV cache tensors",
             "ops: " + ", ".join(f"{k} {v}" for k, v in s["op_counts"].items()),
             f"weights: {_size(s['weight_bytes'])}; per layer: {_layers_line(s['weight_bytes_per_layer']) or '-'}; "
             "other: " + (", ".join(f"{k} {_size(v)}" for k, v in s["weight_bytes_other"].items()) or "-"),
             f"op results: {_size(s['activation_bytes'])} before buffer reuse",
             "",
             f"{'id':>5s}  {'name':26s} {'op':12s} {'shape':22s} {'type':6s} {'bytes':>10s}  sources"]
    for r in rows:
        shape = "[" + ", ".join(str(x) for x in r["shape"]) + "]"
        b = "view" if r["view"] else str(r["bytes"])
        srcs = ", ".join(r["src"])
        lines.append(f"{r['id']:5d}  {r['name'] or '-':26s} {r['op']:12s} {shape:22s} {r['type']:6s} {b:>10s}  {srcs}".rstrip())
    return lines


def cmd_graph(args) -> int:
    if args.tokens < 1:
        raise GGraphError(f"--tokens must be >= 1, got {args.tokens}")
    if args.svg and shutil.which("dot") is None:
        raise GGraphError("--svg needs Graphviz's `dot` on PATH (not found): write --dot FILE and render it elsewhere")
    from .compare import load_ggraph
    model = load_ggraph(args.model)
    g, n_kv = build(model, args.tokens)
    s = summary(model, g, n_kv)
    rows = node_rows(g)
    dot = to_dot(g) if (args.dot or args.svg) else None
    try:
        if args.dot:
            with open(args.dot, "w", encoding="utf-8") as f:
                f.write(dot + "\n")
        if args.svg:
            res = subprocess.run(["dot", "-Tsvg", "-o", args.svg], input=dot, text=True, capture_output=True)
            if res.returncode != 0:
                raise GGraphError(f"dot failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    except OSError as e:
        raise GGraphError(f"cannot write the graph: {e}") from None
    if args.json:
        print(json.dumps({**s, "nodes": rows}, indent=1))
    else:
        print("\n".join(format_text(s, rows, g)))
    for what, path in (("DOT", args.dot), ("SVG", args.svg)):
        if path:
            print(f"graph: wrote {what} to {path}", file=sys.stderr)
    return 0


def add_arguments(p) -> None:
    """`ggraph graph`'s flags (runtime/apps/cli.py registers the subcommand)."""
    p.add_argument("-m", "--model", default=None,
                   help="GGUF file, or a default model name (smollm2, gemma3); default: smollm2")
    p.add_argument("--tokens", type=int, default=8, help="tokens in the ubatch (default: 8; one output row)")
    p.add_argument("--dot", default=None, metavar="FILE", help="write the graph as Graphviz DOT")
    p.add_argument("--svg", default=None, metavar="FILE", help="render an SVG with Graphviz's dot (if installed)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
