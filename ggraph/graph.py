"""Graph data: tensors are nodes; a Graph is the list of them in build (= topological) order.

Shape convention (used everywhere in ggraph, as in ggml):
  ne = (ne0, ne1, ne2, ne3), ne0 varies fastest. A weight {n_embd, n_ff} has ne0 = n_embd (input)
  and ne1 = n_ff (output rows). Activations are [n_embd, n_tokens]. The matching numpy array has
  the reversed shape (n_tokens, n_embd). nb are byte strides in the same order (nb0 = element size).
Views (view/reshape/permute/transpose) keep a `view_src` and carry their own ne/nb/offset, exactly
like ggml; the runtime turns them into numpy strided views without copying.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as GGMLType

from .errors import GGraphError

F32, F16, BF16, I32 = GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.I32

# Leaf kinds: 'input' (filled by the runtime before each run), 'weight' (from the GGUF),
# 'cache' (persistent KV-cache storage). Everything else is an op result.
LEAF_KINDS = ("input", "weight", "cache")


def row_size(t: GGMLType, ne0: int) -> int:
    block, size = GGML_QUANT_SIZES[t]
    return ne0 // block * size


def contiguous_nb(t: GGMLType, ne: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    block, size = GGML_QUANT_SIZES[t]
    nb0 = size
    nb1 = nb0 * (ne[0] // block)
    nb2 = nb1 * ne[1]
    nb3 = nb2 * ne[2]
    return (nb0, nb1, nb2, nb3)


def pad_ne(ne) -> tuple[int, int, int, int]:
    ne = tuple(int(x) for x in ne)
    if not 1 <= len(ne) <= 4:
        raise GGraphError(f"a tensor has 1 to 4 dims, got {ne}")
    if any(x < 0 for x in ne):
        raise GGraphError(f"negative dimension in {ne}")
    return ne + (1,) * (4 - len(ne))


@dataclass(eq=False)
class Tensor:
    graph: "Graph"
    id: int
    type: GGMLType
    ne: tuple[int, int, int, int]
    nb: tuple[int, int, int, int]
    op: str                        # 'none' for leaves, else the ggml op name
    src: tuple["Tensor", ...] = ()
    params: dict = field(default_factory=dict)
    name: str = ""
    kind: str = "op"               # 'op' or one of LEAF_KINDS
    view_src: "Tensor | None" = None
    view_offs: int = 0             # byte offset into view_src's storage

    @property
    def n_dims(self) -> int:
        n = 4
        while n > 1 and self.ne[n - 1] == 1:
            n -= 1
        return n

    @property
    def nelements(self) -> int:
        return self.ne[0] * self.ne[1] * self.ne[2] * self.ne[3]

    @property
    def is_view(self) -> bool:
        return self.view_src is not None

    @property
    def storage(self) -> "Tensor":
        """The tensor owning this one's bytes: itself, or the root of its view chain."""
        return self.view_src if self.view_src is not None else self

    def is_contiguous(self) -> bool:
        return self.nb == contiguous_nb(self.type, self.ne)

    def set_name(self, name: str) -> "Tensor":
        self.name = name
        return self

    def shape_str(self) -> str:
        return "[" + ", ".join(str(x) for x in self.ne[: self.n_dims]) + "]"

    def __repr__(self) -> str:
        return f"Tensor({self.name or '#%d' % self.id}, {self.op}, {self.shape_str()}, {self.type.name})"


class Graph:
    """A compute graph: `nodes` in build order (leaves included). Builders append via ops.*.

    An op joins the graph of its first non-persistent source; an op on weights or cache alone
    (e.g. a view of the cache) joins `Graph.current`, set with `with graph:` (ggml's ctx0)."""

    current: "Graph | None" = None

    def __enter__(self):
        self._prev, Graph.current = Graph.current, self
        return self

    def __exit__(self, *exc):
        Graph.current = self._prev

    def __init__(self):
        self.nodes: list[Tensor] = []
        self.outputs: dict[str, Tensor] = {}   # e.g. 'result_output', 'result_norm'

    def new_tensor(self, type, ne, op="none", src=(), params=None, kind="op", name="",
                   view_src=None, view_offs=0, nb=None) -> Tensor:
        ne = pad_ne(ne)
        if nb is None:
            nb = contiguous_nb(GGMLType(type), ne)
        t = Tensor(self, len(self.nodes), GGMLType(type), ne, tuple(nb), op, tuple(src),
                   dict(params or {}), name, kind, view_src, view_offs)
        self.nodes.append(t)
        return t

    # -- leaves -----------------------------------------------------------------------------
    def input(self, name: str, type, ne) -> Tensor:
        return self.new_tensor(type, ne, kind="input", name=name)

    def weight(self, name: str, type, ne) -> Tensor:
        return self.new_tensor(type, ne, kind="weight", name=name)

    def cache(self, name: str, type, ne) -> Tensor:
        return self.new_tensor(type, ne, kind="cache", name=name)

    def set_output(self, t: Tensor, key: str | None = None) -> None:
        self.outputs[key or t.name] = t

    # -- inspection -------------------------------------------------------------------------
    def leaves(self, kind: str | None = None) -> list[Tensor]:
        return [t for t in self.nodes if t.kind != "op" and (kind is None or t.kind == kind)]

    def ops(self) -> list[Tensor]:
        return [t for t in self.nodes if t.kind == "op"]

    def find(self, name: str) -> Tensor:
        for t in self.nodes:
            if t.name == name:
                return t
        raise KeyError(name)

    def __str__(self) -> str:
        lines = []
        for t in self.nodes:
            srcs = ", ".join(s.name or f"#{s.id}" for s in t.src)
            op = t.op if t.kind == "op" else t.kind
            lines.append(f"{t.id:4d} {op:12s} {t.name or '-':28s} {t.shape_str():22s} {t.type.name:5s} {srcs}")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz DOT of the graph (leaves as boxes, ops as ellipses)."""
        out = ["digraph ggraph {", "  rankdir=TB;", '  node [fontname="monospace", fontsize=10];']
        for t in self.nodes:
            label = f"{t.name or '#%d' % t.id}\\n{t.op if t.kind == 'op' else t.kind} {t.shape_str()} {t.type.name}"
            shape = "ellipse" if t.kind == "op" else "box"
            out.append(f'  n{t.id} [label="{label}", shape={shape}];')
            for s in t.src:
                out.append(f"  n{s.id} -> n{t.id};")
        out.append("}")
        return "\n".join(out)
