"""Plan-time fusions: patterns of graph nodes the runtime computes with one kernel call.

The graph stays as the model file built it; the plan finds these patterns and binds the last node
of each to a fused kernel, the others to nothing. Only patterns whose fused kernel rounds every
intermediate to float32 exactly as the separate ops do (so results stay bit for bit) are listed:

    rms_norm(x) -> mul(., w)      rms_norm_mul: (x * scale) * w per element, w an F32 row weight

Fusions are off when a plan keeps every node's own array (reuse_buffers=False: node-by-node
diffs need the intermediate values).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ggraph.graph import F32, Graph, Tensor


@dataclass
class Fusions:
    absorbed: set[int] = field(default_factory=set)        # node ids computed inside a later node
    fused: dict[int, tuple] = field(default_factory=dict)  # node id -> (pattern name, nodes it absorbs)


def _consumers(graph: Graph) -> dict[int, int]:
    """How many nodes read each node (views count as readers), plus one per graph output. Keyed by
    object: weights and cache leaves come from other graphs, whose node ids overlap this one's."""
    n: dict[int, int] = {}
    for t in graph.nodes:
        for s in t.src:
            n[id(s)] = n.get(id(s), 0) + 1
        if t.is_view:
            n[id(t.view_src)] = n.get(id(t.view_src), 0) + 1
    for t in graph.outputs.values():
        n[id(t)] = n.get(id(t), 0) + 1
    return n


def _row_weight(w: Tensor, n: int) -> bool:
    return w.kind == "weight" and w.type == F32 and tuple(w.ne) == (n, 1, 1, 1)


def find(graph: Graph) -> Fusions:
    fz = Fusions()
    uses = _consumers(graph)
    for t in graph.ops():
        if t.op != "mul" or len(t.src) != 2:
            continue
        a, b = t.src
        norm, w = (a, b) if a.op == "rms_norm" else (b, a)
        if (norm.kind == "op" and norm.op == "rms_norm" and uses.get(id(norm)) == 1 and norm.id not in fz.absorbed
                and _row_weight(w, norm.ne[0]) and tuple(t.ne) == tuple(norm.ne)):
            fz.absorbed.add(norm.id)
            fz.fused[t.id] = ("rms_norm_mul", norm, w)
    return fz
