"""ggml ops by their ggml names. Each checks shapes and types at build time and adds one node.

Semantics follow ggml (see graph.py for the shape convention). Errors name the op and the shapes.
"""
from __future__ import annotations

from .errors import GGraphError
from .graph import F16, F32, I32, Graph, Tensor, contiguous_nb, pad_ne

# rope modes (ggml.h; llama_rope_type NONE for the archs without RoPE)
ROPE_TYPE_NONE = -1
ROPE_TYPE_NORM = 0
ROPE_TYPE_NEOX = 2


def _fail(op: str, msg: str, *ts: Tensor):
    shapes = " ".join(f"{t.name or '#%d' % t.id}{t.shape_str()}:{t.type.name}" for t in ts)
    raise GGraphError(f"{op}: {msg} ({shapes})")


def _can_repeat(b: Tensor, a: Tensor) -> bool:
    """b broadcasts to a: every dim of a is a multiple of b's (ggml_can_repeat)."""
    return all(b.ne[i] > 0 and a.ne[i] % b.ne[i] == 0 for i in range(4))


def _unary(op: str, a: Tensor, **params) -> Tensor:
    if a.type != F32:
        _fail(op, "expects F32", a)
    return _g(a).new_tensor(F32, a.ne, op, (a,), params)


# -- data movement ----------------------------------------------------------------------------

def get_rows(a: Tensor, ids: Tensor) -> Tensor:
    """Rows of a by ids (ggml_get_rows): a [n_cols, n_rows, B], ids [n, B] -> [n_cols, n, B]: out[:, i, b]
    = a[:, ids[i, b], b] (F32 out; dequantizes weights). B = 1 for a plain row lookup."""
    if ids.type != I32:
        _fail("get_rows", "ids must be I32", a, ids)
    if ids.ne[1] != a.ne[2] or ids.ne[3] != 1 or a.ne[3] != 1:
        _fail("get_rows", "ids.ne1 must equal a.ne2 (one id row per batch of a)", a, ids)
    return _g(ids, a).new_tensor(F32, (a.ne[0], ids.ne[0], ids.ne[1], ids.ne[2]), "get_rows", (a, ids))


def set_rows(dst: Tensor, src: Tensor, ids: Tensor) -> Tensor:
    """dst row ids[i] <- src row i (converted to dst's type). Returns a view of dst (used for ordering)."""
    if ids.type != I32 or ids.ne[0] != src.ne[1]:
        _fail("set_rows", "need one I32 index per src row", dst, src, ids)
    if dst.ne[0] != src.ne[0]:
        _fail("set_rows", "row length differs", dst, src)
    return _g(src, ids, dst).new_tensor(dst.type, dst.ne, "set_rows", (dst, src, ids), nb=dst.nb,
                                view_src=dst.storage, view_offs=dst.view_offs)


def cpy(a: Tensor, b: Tensor) -> Tensor:
    """Copy a into b (same element count, b's type); the result is a view of b."""
    if a.nelements != b.nelements:
        _fail("cpy", "element counts differ", a, b)
    return _g(a, b).new_tensor(b.type, b.ne, "cpy", (a, b), nb=b.nb, view_src=b.storage, view_offs=b.view_offs)


def cont(a: Tensor, *ne) -> Tensor:
    """Contiguous copy of a (optionally with a new shape of the same size: cont_2d etc.)."""
    ne = pad_ne(ne) if ne else a.ne
    if ne[0] * ne[1] * ne[2] * ne[3] != a.nelements:
        _fail("cont", f"cannot make {ne} from {a.nelements} elements", a)
    return _g(a).new_tensor(a.type, ne, "cont", (a,))


def _g(*ts: Tensor):
    """The graph a new node joins: that of the first source that is not a persistent leaf
    (weights and KV cache live in their own long-lived graphs, like ggml's model context)."""
    for t in ts:
        if t is not None and t.kind not in ("weight", "cache"):
            return t.graph
    if Graph.current is None:
        raise GGraphError("an op on weights/cache alone needs a current graph (use `with graph:`)")
    return Graph.current


def concat(a: Tensor, b: Tensor, dim: int) -> Tensor:
    """ggml_concat: a then b along dim; the other dims must match."""
    if a.type != F32 or b.type != F32:
        _fail("concat", "expects F32", a, b)
    if not 0 <= dim < 4 or any(a.ne[i] != b.ne[i] for i in range(4) if i != dim):
        _fail("concat", f"shapes do not concatenate along dim {dim}", a, b)
    ne = tuple(a.ne[i] + b.ne[i] if i == dim else a.ne[i] for i in range(4))
    return _g(a, b).new_tensor(F32, ne, "concat", (a, b), {"dim": dim})


def repeat(a: Tensor, b: Tensor) -> Tensor:
    """ggml_repeat: a tiled to b's shape (every dim of b a multiple of a's)."""
    if a.type != F32 or not _can_repeat(a, b):
        _fail("repeat", "a must be F32 and tile b's shape", a, b)
    return _g(a, b).new_tensor(F32, b.ne, "repeat", (a, b))


def view(a: Tensor, ne, nb=None, offset: int = 0) -> Tensor:
    """ggml_view_Nd: ne and byte strides nb[1:] (nb0 is the element size), offset in bytes."""
    ne = pad_ne(ne)
    full = contiguous_nb(a.type, ne)
    if nb is None:
        nb = full
    else:
        nb = (full[0],) + tuple(nb) + tuple(full[len(nb) + 1:])
    return _g(a).new_tensor(a.type, ne, "view", (a,), {"offset": offset}, nb=nb,
                              view_src=a.storage, view_offs=a.view_offs + offset)


def reshape(a: Tensor, *ne) -> Tensor:
    ne = pad_ne(ne)
    if not a.is_contiguous():
        _fail("reshape", "needs a contiguous tensor (use cont first)", a)
    if ne[0] * ne[1] * ne[2] * ne[3] != a.nelements:
        _fail("reshape", f"cannot reshape to {ne[:len(ne)]}", a)
    return _g(a).new_tensor(a.type, ne, "reshape", (a,), nb=contiguous_nb(a.type, ne),
                              view_src=a.storage, view_offs=a.view_offs)


def permute(a: Tensor, ax0: int, ax1: int, ax2: int, ax3: int = 3) -> Tensor:
    """ggml_permute: source dim i moves to position ax_i."""
    axes = (ax0, ax1, ax2, ax3)
    if sorted(axes) != [0, 1, 2, 3]:
        _fail("permute", f"axes {axes} are not a permutation", a)
    ne = [0] * 4
    nb = [0] * 4
    for i, ax in enumerate(axes):
        ne[ax] = a.ne[i]
        nb[ax] = a.nb[i]
    return _g(a).new_tensor(a.type, ne, "permute", (a,), {"axes": axes}, nb=nb,
                              view_src=a.storage, view_offs=a.view_offs)


def transpose(a: Tensor) -> Tensor:
    return permute(a, 1, 0, 2, 3)


# -- arithmetic -------------------------------------------------------------------------------

def mul_mat(a: Tensor, b: Tensor) -> Tensor:
    """a [K, N, B0, C0] x b [K, M, B1, C1] -> [N, M, B1, C1]; b's batch dims broadcast over a's
    (dst batch i reads a batch i // (B1/B0): GQA)."""
    if a.ne[0] != b.ne[0]:
        _fail("mul_mat", f"inner dims differ ({a.ne[0]} vs {b.ne[0]})", a, b)
    if b.ne[2] % a.ne[2] or b.ne[3] % a.ne[3]:
        _fail("mul_mat", "b's batch dims are not multiples of a's", a, b)
    if b.type != F32:
        _fail("mul_mat", "b must be F32", a, b)
    return _g(b, a).new_tensor(F32, (a.ne[1], b.ne[1], b.ne[2], b.ne[3]), "mul_mat", (a, b))


def mul_mat_id(a: Tensor, b: Tensor, ids: Tensor) -> Tensor:
    """Expert products (ggml_mul_mat_id): a [K, N, n_expert] weights, b [K, n_b, T] with n_b 1 (each
    token's row serves all its slots) or k, ids [k, T] I32 -> [N, k, T]: out[:, s, t] =
    a[:, :, ids[s, t]] x b[:, s % n_b, t]. Only the selected experts are computed."""
    if ids.type != I32 or ids.ne[2] != 1 or ids.ne[3] != 1:
        _fail("mul_mat_id", "ids must be I32 [k, n_tokens]", a, ids)
    if a.ne[0] != b.ne[0] or a.ne[3] != 1:
        _fail("mul_mat_id", "a must be [K, N, n_expert] with b's K", a, b)
    if b.type != F32 or b.ne[2] != ids.ne[1] or b.ne[3] != 1 or ids.ne[0] % b.ne[1]:
        _fail("mul_mat_id", "b must be F32 [K, 1 or k, n_tokens] matching ids", b, ids)
    return _g(b, ids, a).new_tensor(F32, (a.ne[1], ids.ne[0], ids.ne[1], 1), "mul_mat_id", (a, b, ids))


def _binary(op: str, a: Tensor, b: Tensor) -> Tensor:
    if a.type != F32 or b.type != F32:
        _fail(op, "expects F32 operands", a, b)
    if not _can_repeat(b, a):
        _fail(op, "b does not broadcast to a", a, b)
    return _g(a, b).new_tensor(F32, a.ne, op, (a, b))


def add(a: Tensor, b: Tensor) -> Tensor:
    return _binary("add", a, b)


def div(a: Tensor, b: Tensor) -> Tensor:
    return _binary("div", a, b)


def mul(a: Tensor, b: Tensor) -> Tensor:
    return _binary("mul", a, b)


def scale(a: Tensor, s: float) -> Tensor:
    return _unary("scale", a, s=float(s))


def rms_norm(a: Tensor, eps: float) -> Tensor:
    return _unary("rms_norm", a, eps=float(eps))


def norm(a: Tensor, eps: float) -> Tensor:
    return _unary("norm", a, eps=float(eps))


def silu(a: Tensor) -> Tensor:
    return _unary("silu", a)


def sigmoid(a: Tensor) -> Tensor:
    return _unary("sigmoid", a)


def clamp(a: Tensor, min: float, max: float) -> Tensor:
    return _unary("clamp", a, min=float(min), max=float(max))


def sum_rows(a: Tensor) -> Tensor:
    """Sum over ne0: [n, rows, ...] -> [1, rows, ...]."""
    if a.type != F32:
        _fail("sum_rows", "expects F32", a)
    return _g(a).new_tensor(F32, (1, a.ne[1], a.ne[2], a.ne[3]), "sum_rows", (a,))


SORT_ORDER_ASC = 0
SORT_ORDER_DESC = 1


def argsort(a: Tensor, order: int = SORT_ORDER_ASC) -> Tensor:
    """Per row (ne0), the indices that sort it (I32, same shape)."""
    if a.type != F32:
        _fail("argsort", "expects F32", a)
    if order not in (SORT_ORDER_ASC, SORT_ORDER_DESC):
        _fail("argsort", f"unknown order {order}", a)
    return _g(a).new_tensor(I32, a.ne, "argsort", (a,), {"order": order})


def argsort_top_k(a: Tensor, k: int) -> Tensor:
    """The indices of each row's k largest values, largest first: a view of the descending argsort."""
    if not 1 <= k <= a.ne[0]:
        _fail("argsort_top_k", f"k={k} must be in [1, {a.ne[0]}]", a)
    s = argsort(a, SORT_ORDER_DESC)
    return view(s, (k, a.ne[1], a.ne[2], a.ne[3]), s.nb[1:])


def gelu(a: Tensor) -> Tensor:
    return _unary("gelu", a)


def tanh(a: Tensor) -> Tensor:
    return _unary("tanh", a)


def gelu_erf(a: Tensor) -> Tensor:
    """0.5 x (1 + erf(x / sqrt 2)), the exact GELU (ggml_gelu_erf)."""
    return _unary("gelu_erf", a)


def relu(a: Tensor) -> Tensor:
    return _unary("relu", a)


def sqr(a: Tensor) -> Tensor:
    return _unary("sqr", a)


def swiglu_split(a: Tensor, b: Tensor) -> Tensor:
    """silu(a) * b (ggml_swiglu_split)."""
    if a.ne != b.ne:
        _fail("swiglu", "operands differ in shape", a, b)
    return _g(a, b).new_tensor(F32, a.ne, "swiglu", (a, b))


def geglu_split(a: Tensor, b: Tensor) -> Tensor:
    """gelu(a) * b (ggml_geglu_split)."""
    if a.ne != b.ne:
        _fail("geglu", "operands differ in shape", a, b)
    return _g(a, b).new_tensor(F32, a.ne, "geglu", (a, b))


def reglu_split(a: Tensor, b: Tensor) -> Tensor:
    """relu(a) * b (ggml_reglu_split)."""
    if a.ne != b.ne:
        _fail("reglu", "operands differ in shape", a, b)
    return _g(a, b).new_tensor(F32, a.ne, "reglu", (a, b))


def _glu_fused(op: str, a: Tensor) -> Tensor:
    """ggml_swiglu / geglu / reglu of one tensor: each row is [gate; up], halves of ne0 (the fused
    ffn_up of phi3). The node reads its two halves through row views, as ggml's kernel does."""
    if a.type != F32 or a.ne[0] % 2:
        _fail(op, "expects F32 with an even ne0 (rows are [gate; up])", a)
    nc = a.ne[0] // 2
    ne = (nc,) + tuple(a.ne[1:])
    gate = view(a, ne, a.nb[1:], 0)
    up = view(a, ne, a.nb[1:], nc * a.nb[0])
    return _g(a).new_tensor(F32, ne, op, (gate, up))


def swiglu(a: Tensor) -> Tensor:
    return _glu_fused("swiglu", a)


def geglu(a: Tensor) -> Tensor:
    return _glu_fused("geglu", a)


def reglu(a: Tensor) -> Tensor:
    return _glu_fused("reglu", a)


def soft_max_ext(a: Tensor, mask: Tensor | None, scale: float, max_bias: float = 0.0) -> Tensor:
    """softmax(a*scale + mask) over ne0; mask [ne0, >=ne1] broadcasts over dims 2, 3."""
    if mask is not None:
        if mask.ne[0] != a.ne[0] or mask.ne[1] < a.ne[1] or mask.type not in (F32, F16):
            _fail("soft_max_ext", "mask must be [ne0, >= ne1] F32/F16", a, mask)
        if a.ne[2] % mask.ne[2] or a.ne[3] % mask.ne[3]:
            _fail("soft_max_ext", "mask batch dims do not broadcast", a, mask)
    src = (a,) if mask is None else (a, mask)
    return _g(*src).new_tensor(F32, a.ne, "soft_max", src, {"scale": float(scale), "max_bias": float(max_bias)})


def rope_ext(a: Tensor, pos: Tensor, freq_factors: Tensor | None, n_dims: int, mode: int, n_ctx_orig: int,
             freq_base: float, freq_scale: float, ext_factor: float = 0.0, attn_factor: float = 1.0,
             beta_fast: float = 32.0, beta_slow: float = 1.0) -> Tensor:
    """Rotary embedding of a [head_dim, n_head, n_tokens]; the first n_dims dims rotate.
    mode 0 (NORM) rotates adjacent pairs, mode 2 (NEOX) pairs i and i + n_dims/2."""
    if a.type != F32:
        _fail("rope_ext", "expects F32", a)
    if pos.type != I32 or pos.ne[0] != a.ne[2]:
        _fail("rope_ext", "pos must be I32 with one entry per token (ne2)", a, pos)
    if n_dims > a.ne[0] or n_dims % 2:
        _fail("rope_ext", f"n_dims={n_dims} must be even and <= head_dim", a)
    if mode not in (ROPE_TYPE_NORM, ROPE_TYPE_NEOX):
        _fail("rope_ext", f"unsupported mode {mode}", a)
    if freq_factors is not None and (freq_factors.type != F32 or freq_factors.ne[0] < n_dims // 2):
        _fail("rope_ext", "freq_factors must be F32 with n_dims/2 entries", a, freq_factors)
    src = (a, pos) if freq_factors is None else (a, pos, freq_factors)
    return _g(*src).new_tensor(F32, a.ne, "rope", src, dict(
        n_dims=n_dims, mode=mode, n_ctx_orig=n_ctx_orig, freq_base=float(freq_base),
        freq_scale=float(freq_scale), ext_factor=float(ext_factor), attn_factor=float(attn_factor),
        beta_fast=float(beta_fast), beta_slow=float(beta_slow)))


# llama.cpp names for the 2d/3d helpers
def cont_2d(a: Tensor, ne0: int, ne1: int) -> Tensor:
    return cont(a, ne0, ne1)


def reshape_2d(a: Tensor, ne0: int, ne1: int) -> Tensor:
    return reshape(a, ne0, ne1)


def reshape_3d(a: Tensor, ne0: int, ne1: int, ne2: int) -> Tensor:
    return reshape(a, ne0, ne1, ne2)


def view_2d(a: Tensor, ne0: int, ne1: int, nb1: int, offset: int) -> Tensor:
    return view(a, (ne0, ne1), (nb1,), offset)


def view_3d(a: Tensor, ne0: int, ne1: int, ne2: int, nb1: int, nb2: int, offset: int) -> Tensor:
    return view(a, (ne0, ne1, ne2), (nb1, nb2), offset)

