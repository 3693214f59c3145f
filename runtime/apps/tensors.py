"""Tensor-level diff of ggraph against llama.cpp: every named intermediate of one ubatch, captured on
both sides (ggraph: the context's eval callback; llama.cpp: its cb_eval, runtime/apps/llamacpp_eval.py),
matched by name and shape, measured in graph order (`ggraph compare --tensors`).

Matching: views (reshape, view, permute, transpose: no computation of their own) are left out on
both sides; a name llama.cpp gives several computed nodes (Qcur-0: the projection, then the rope)
is matched occurrence by occurrence; a pair whose shapes differ is reported, not measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .llamacpp_eval import Node

VIEW_OPS = ("view", "reshape", "permute", "transpose")


def ggraph_nodes(model, ids, n_ctx: int = 512, decode: bool = False, n_threads: int = 2,
                 logits_all: bool = True, n_ubatch: int | None = None, on_node=None) -> list[Node]:
    """ggraph's named op nodes (views included, flagged) of the (last) ubatch of `ids`, in graph
    order, through Context's eval callback. `model`: a runtime Model or a GGUF path. decode=True
    feeds the tokens one per step and returns the nodes of the last step. logits_all=False computes
    only the last row of the output layer, as llama.cpp's llama_batch_get_one does. With on_node,
    each Node goes to on_node(node) instead of the returned list (which is then empty)."""
    if isinstance(model, str):
        from ..model import Model
        model = Model(model)
    ids = [int(i) for i in ids]
    ctx = model.new_context(n_ctx=n_ctx, n_batch=n_ubatch or max(512, len(ids)),
                            n_ubatch=n_ubatch or max(512, len(ids)), n_threads=n_threads)
    nodes: list[Node] = []

    keep = on_node if on_node is not None else nodes.append

    def cb(name, value, t):
        keep(Node(name, t.op, value, t.op in VIEW_OPS))
        return True

    if decode:
        for i in ids[:-1]:
            ctx.decode([i])
        ctx.decode(ids[-1:], logits_all=logits_all, cb_eval=cb)
    else:
        ctx.decode(ids, logits_all=logits_all, cb_eval=cb)
    return nodes


def ne_str(shape) -> str:
    """numpy shape (ne reversed) as ggml's ne list without trailing 1s: (1, 1, 8, 64) -> [64, 8]."""
    ne = list(reversed([int(x) for x in shape]))
    while len(ne) > 1 and ne[-1] == 1:
        ne.pop()
    return "[" + ", ".join(str(x) for x in ne) + "]"


@dataclass
class TensorDiff:
    name: str
    op: str                  # ggraph's op
    ref_op: str              # llama.cpp's op
    shape: str               # ggml ne order
    n: int                   # elements
    max_abs_diff: float
    max_abs_ref: float
    nmse: float              # sum (ours - ref)^2 / sum ref^2 (float64); 0 / 0 = 0, x / 0 = inf
    identical: int           # bit-identical elements

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TensorReport:
    diffs: list[TensorDiff]               # in ggraph's graph order
    only_ggraph: list[str]
    only_llamacpp: list[str]
    shape_mismatch: list[tuple[str, str, str]]   # (name, ggraph shape, llama.cpp shape)
    threshold: float

    @property
    def first_past(self) -> TensorDiff | None:
        return next((d for d in self.diffs if not d.nmse <= self.threshold), None)

    @property
    def first_not_identical(self) -> TensorDiff | None:
        return next((d for d in self.diffs if d.identical != d.n), None)

    def as_dict(self) -> dict:
        fp, fn = self.first_past, self.first_not_identical
        return {"threshold": self.threshold, "first_past_threshold": fp.name if fp else None,
                "first_not_identical": fn.name if fn else None,
                "n_matched": len(self.diffs), "tensors": [d.as_dict() for d in self.diffs],
                "only_ggraph": self.only_ggraph, "only_llamacpp": self.only_llamacpp,
                "shape_mismatch": [list(x) for x in self.shape_mismatch]}


class _Counter:
    """(name, occurrence) keys of computed nodes (views and unread nodes skipped: None)."""

    def __init__(self):
        self.seen: dict[str, int] = {}

    def key(self, nd: Node):
        if nd.is_view or nd.value is None:
            return None
        k = self.seen.get(nd.name, 0)
        self.seen[nd.name] = k + 1
        return nd.name, k


def _occurrences(nodes: list[Node]) -> list[tuple[tuple[str, int], Node]]:
    c = _Counter()
    return [(k, nd) for nd in nodes if (k := c.key(nd)) is not None]


def _label(key: tuple[str, int]) -> str:
    return key[0] if key[1] == 0 else f"{key[0]}#{key[1] + 1}"


def measure(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float, float, int]:
    """(max |diff|, max |ref|, normalised error, bit-identical elements) of two same-shaped arrays."""
    o, r = np.asarray(ours), np.asarray(ref)
    if o.dtype == np.float32 and r.dtype == np.float32:
        identical = int((o.view(np.uint32) == r.view(np.uint32)).sum())
    else:
        identical = int((o == r).sum())
    o64, r64 = o.astype(np.float64), r.astype(np.float64)
    d = o64 - r64
    with np.errstate(invalid="ignore", over="ignore"):
        num, den = float((d * d).sum()), float((r64 * r64).sum())
    nmse = 0.0 if num == 0 else (num / den if den > 0 else float("inf"))
    max_diff = float(np.abs(d).max()) if d.size else 0.0
    max_ref = float(np.abs(r64).max()) if r64.size else 0.0
    return max_diff, max_ref, nmse, identical


class Differ:
    """Measures ggraph's nodes as they arrive (add) against llama.cpp's, kept by (name,
    occurrence); only the measures are kept, not ggraph's arrays."""

    def __init__(self, ref: list[Node], threshold: float = 1e-6):
        self.ref_by = dict(_occurrences(ref))
        self.threshold = threshold
        self._count = _Counter()
        self.diffs: list[TensorDiff] = []
        self.only_ours: list[str] = []
        self.mismatch: list[tuple[str, str, str]] = []
        self._keys: set = set()

    def add(self, nd: Node) -> None:
        key = self._count.key(nd)
        if key is None:
            return
        self._keys.add(key)
        r = self.ref_by.get(key)
        if r is None:
            self.only_ours.append(_label(key))
        elif tuple(nd.value.shape) != tuple(r.value.shape):
            self.mismatch.append((_label(key), ne_str(nd.value.shape), ne_str(r.value.shape)))
        else:
            mx, mr, nmse, ident = measure(nd.value, r.value)
            self.diffs.append(TensorDiff(_label(key), nd.op, r.op, ne_str(r.value.shape), int(r.value.size),
                                         mx, mr, nmse, ident))

    def report(self) -> TensorReport:
        only_ref = [_label(k) for k in self.ref_by if k not in self._keys]
        return TensorReport(self.diffs, self.only_ours, only_ref, self.mismatch, self.threshold)


def diff_nodes(ours: list[Node], ref: list[Node], threshold: float = 1e-6) -> TensorReport:
    """Match ggraph's nodes with llama.cpp's by (name, occurrence) and shape; measure each pair."""
    d = Differ(ref, threshold)
    for nd in ours:
        d.add(nd)
    return d.report()


def _g(x: float) -> str:
    return "0" if x == 0 else f"{x:.3g}"


def _names(xs: list[str], k: int = 8) -> str:
    return ", ".join(xs[:k]) + (f", ... ({len(xs) - k} more)" if len(xs) > k else "")


def format_report(rep: TensorReport) -> list[str]:
    lines = [f"{'#':>4s}  {'node':24s} {'op':10s} {'shape':>16s} {'max|diff|':>10s} {'nmse':>10s} "
             f"{'identical':>17s}"]
    first = rep.first_past
    for i, d in enumerate(rep.diffs, 1):
        mark = "  <-- first past threshold" if d is first else ""
        ident = f"{d.identical}/{d.n}"
        lines.append(f"{i:4d}  {d.name:24s} {d.op:10s} {d.shape:>16s} {_g(d.max_abs_diff):>10s} "
                     f"{_g(d.nmse):>10s} {ident:>17s}{mark}")
    lines.append(f"matched {len(rep.diffs)} computed nodes by name and shape (views left out); "
                 f"bit-identical: {sum(d.identical == d.n for d in rep.diffs)}/{len(rep.diffs)}")
    if rep.only_ggraph:
        lines.append(f"only in ggraph ({len(rep.only_ggraph)}): {_names(rep.only_ggraph)}")
    if rep.only_llamacpp:
        lines.append(f"only in llama.cpp ({len(rep.only_llamacpp)}): {_names(rep.only_llamacpp)}")
    for name, a, b in rep.shape_mismatch:
        lines.append(f"shape differs: {name} ggraph {a}, llama.cpp {b}")
    ni = rep.first_not_identical
    lines.append("first tensor not bit-identical: " + ("none" if ni is None else
                 f"{ni.name} ({ni.op}, {ni.shape}, {ni.identical}/{ni.n} identical, max|diff| {_g(ni.max_abs_diff)})"))
    if first is None:
        lines.append(f"first tensor past threshold {rep.threshold:g} (normalised error): none")
    else:
        lines.append(f"first tensor past threshold {rep.threshold:g} (normalised error): {first.name} "
                     f"({first.op}, {first.shape}, nmse {_g(first.nmse)}, max|diff| {_g(first.max_abs_diff)})")
    return lines
