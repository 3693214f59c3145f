"""Binding of graph ops to kernels: bind(node, plan) returns a no-argument closure that computes
the node into its planned array, or None for ops that are pure views.

Arrays are the plan's numpy views (shape reversed from ne). Reshapes to 2-D/3-D are done here,
once, and must not copy (a copy would be a stale snapshot); non-contiguous inputs are made
contiguous inside the closure, at run time.
"""
from __future__ import annotations

import numpy as np

from ggraph.errors import GGraphError
from ggraph.graph import F16, Tensor

from .kernels import batched_matmul, elementwise, norm, rope, routing, softmax
from .kernels.norm import rms_norm_mul_f32
from .kernels.matmul import get_rows as q_get_rows
from .kernels.matmul import activation_buffers, batch_is_rowwise, convert, convert_call, mul_mat_call, mul_mat_converted
from .kernels.matmul import mul_mat as q_mul_mat
from .kernels.matmul import mul_mat_id as q_mul_mat_id
from .kernels.matmul import mul_mat_rowwise as q_mul_mat_rowwise
from .kernels.quantize_act import round_f16_4d, round_to_f16
from .kernels.set_rows import set_rows_f16
from .kernel_call import Call, Calls
from .storage import stored

VIEW_OPS = ("view", "reshape", "permute", "transpose")


def _rows(a: np.ndarray) -> np.ndarray:
    """[.., n] -> [rows, n] without copying."""
    try:
        return np.reshape(a, (-1, a.shape[-1]), copy=False)
    except ValueError:
        raise GGraphError("internal: a row view of a non-contiguous tensor was needed") from None


def _is_c(a: np.ndarray) -> bool:
    return a.flags.c_contiguous


NUMPY_OPS = ("add", "mul", "div", "scale", "clamp", "get_rows", "concat", "repeat", "set_rows", "cont", "cpy", "mul_mat_id")
MIN_PARALLEL_ROWS = 16


def bind(t: Tensor, plan, fused: tuple | None = None):
    """(closure, parallel) for an op, or None for pure views. `parallel` says whether the kernel
    should run with all threads (True), one thread (False), or does not care (None: numpy).
    `fused`: (pattern, nodes) from runtime/fusion.py when t ends a fused pattern."""
    if fused is not None:
        return _FUSED[fused[0]](t, plan, *fused[1:]), wants_threads(fused[1])   # as its first op
    if t.op in VIEW_OPS:
        return None
    fn = _BINDERS.get(t.op)
    if fn is None:
        raise GGraphError(f"op '{t.op}' ({t.name}) has no kernel in the runtime")
    return fn(t, plan), wants_threads(t)


def wants_threads(t: Tensor):
    """Parallel regions pay only around real work: weight matmuls always, other kernels only
    for prompt batches. A one-token step then opens ~7 regions per layer instead of ~20."""
    if t.op in NUMPY_OPS:
        return None
    if t.op == "mul_mat":       # weights, and attention (it streams the KV cache)
        return True
    return t.nelements // t.ne[0] >= MIN_PARALLEL_ROWS


def _unary_rows(kernel, *extra, call=None):
    """call: the kernel's (kernel, args) form where the kernel is a Python wrapper."""
    def binder(t, plan):
        src, out = plan.array(t.src[0]), _rows(plan.array(t))
        if _is_c(src):
            return Call.of(call(_rows(src), out)) if call else Call(kernel, _rows(src), out, *extra)
        return lambda: kernel(_rows(np.ascontiguousarray(src)), out, *extra)
    return binder


def _bind_rms_norm(t, plan):
    return _unary_rows(norm.rms_norm_f32, np.float32(t.params["eps"]))(t, plan)


def _bind_norm(t, plan):
    return _unary_rows(norm.norm_f32, np.float32(t.params["eps"]))(t, plan)


def _bind_glu(kernel, call=None):
    def binder(t, plan):
        g, u, out = plan.array(t.src[0]), plan.array(t.src[1]), _rows(plan.array(t))
        if _is_c(g) and _is_c(u):
            return Call.of(call(_rows(g), _rows(u), out)) if call else Call(kernel, _rows(g), _rows(u), out)
        # the halves of a fused [gate; up] row (ops.swiglu): copied, so the kernel sees plain rows
        return lambda: kernel(_rows(np.ascontiguousarray(g)), _rows(np.ascontiguousarray(u)), out)
    return binder


def _src_array(s: Tensor, plan) -> np.ndarray:
    """An F32 operand: an activation array, or an F32 weight (norm weights, biases)."""
    if s.kind == "weight":
        return plan.weight(s).f32().reshape(tuple(reversed(s.ne)))
    return plan.array(s)


def _bind_binary(ufunc, flat_kernel):
    def binder(t, plan):
        a, b, out = _src_array(t.src[0], plan), _src_array(t.src[1], plan), plan.array(t)
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise GGraphError(f"{t.op} {t.name}: broadcast by tiling is not supported") from None
        if flat_kernel is not None and a.shape == b.shape == out.shape and _is_c(a) and _is_c(b) and _is_c(out):
            return Call(flat_kernel, a.reshape(-1), b.reshape(-1), out.reshape(-1))
        return lambda: ufunc(a, b, out=out)
    return binder


def _bind_scale(t, plan):
    a, out, s = plan.array(t.src[0]), plan.array(t), np.float32(t.params["s"])
    return lambda: np.multiply(a, s, out=out)


def _bind_get_rows(t, plan):
    src, ids = t.src
    ids_arr = plan.array(ids).reshape(-1)
    out = _rows(plan.array(t))
    if src.kind == "weight":
        w = plan.weight(src)
        return lambda: q_get_rows(w, ids_arr, out)
    a = plan.array(src)
    if src.ne[2] == 1:
        a2 = a[0, 0]
        return lambda: np.take(a2, ids_arr, axis=0, out=out)
    a3, ids2, out3 = a[0], plan.array(ids)[0, 0], plan.array(t)[0]     # [B, rows, n], [B, k], [B, k, n]
    batch = np.arange(src.ne[2])[:, None]

    def run():
        if ids2.size and (ids2.min() < 0 or ids2.max() >= src.ne[1]):
            raise GGraphError(f"get_rows {t.name}: row id out of range [0, {src.ne[1]})")
        out3[...] = a3[batch, ids2]
    return run


def _bind_mul_mat(t, plan):
    a, b = t.src
    out = plan.array(t)
    if a.kind == "weight":
        return _bind_weight_mul_mat(t, plan, plan.weight(a), b, _rows(out))
    # activation x activation (attention): batched over dims 2 (GQA broadcast) and 3 (KV streams)
    av, bv, o3 = plan.array(a), plan.array(b), out
    to_f16 = a.type == F16      # ggml converts src1 to src0's vec_dot type (F16) first
    b_cont = _is_c(plan.array(b))
    # the summation order (llamafile sgemm for prompt batches, vec_dot for one-token decode) is
    # picked by bmm_call from the shapes, as ggml's mul_mat does

    b16 = plan.scratch(bv.shape) if to_f16 else None
    if av.ndim == 4 and av.strides[3] == av.itemsize and (to_f16 or b_cont):
        # src0 (a KV cache view) read in place, src1 rounded to F16 into a contiguous copy
        x4 = b16 if to_f16 else bv
        product = Call.of(batched_matmul.bmm_call(av, x4, o3, to_f16, b_cont))
        return Calls(Call(round_f16_4d, bv, b16), product) if to_f16 else product

    def run():     # src0 (a KV cache view) is read in place
        b3 = round_to_f16(bv, b16) if to_f16 else (bv if _is_c(bv) else np.ascontiguousarray(bv))
        batched_matmul.bmm_f32(av, b3, o3, to_f16, b_cont)
    return run


def _bind_weight_mul_mat(t, plan, w, b, out2):
    """A weight product. Consecutive products of one input with weights of one vec_dot type (Q, K,
    V; gate, up) convert the input once: the plan's conversion buffer of that shape still holds it."""
    if t.src[0].ne[2] != 1 or t.src[0].ne[3] != 1:
        raise GGraphError(f"mul_mat {t.name}: 3-D weights are not supported yet")
    xb = plan.array(b)
    # several sequences' decode tokens, each as if alone: one batch call (and a shared conversion)
    # where the format's batch kernel gives every row its one-row bits, else row by row
    if t.params.get("independent_rows") and not batch_is_rowwise(w, out2.shape[0]):
        return lambda: q_mul_mat_rowwise(w, _rows(np.ascontiguousarray(xb)), out2)
    if not _is_c(xb):
        return lambda: q_mul_mat(w, _rows(np.ascontiguousarray(xb)), out2)
    x2 = _rows(xb)
    key = (w.fmt.vec_dot, x2.shape[0], x2.shape[1])
    conv = plan.conversions.get(key)
    if conv is None:
        # [node converted last, buffers, its converted form, whether a Call converted it]
        conv = plan.conversions[key] = [None, activation_buffers(w, x2.shape[0]), None, False]
    if conv[0] == b.id:                 # converted by the previous product of this shape
        if conv[3]:
            return Call.of(mul_mat_call(w, conv[2], out2))
        return lambda: mul_mat_converted(w, conv[2], out2)
    conv[0] = b.id
    bufs = conv[1]
    cc = convert_call(w, x2, bufs)
    conv[3] = cc is not None
    if cc is not None:                  # the conversion writes bufs: the products read it
        conv[2] = bufs
        return Calls(Call.of(cc), Call.of(mul_mat_call(w, bufs, out2)))

    def run():
        conv[2] = convert(w, x2, bufs)
        mul_mat_converted(w, conv[2], out2)
    return run


def _bind_mul_mat_id(t, plan):
    a, b, ids = t.src
    if a.kind != "weight":
        raise GGraphError(f"mul_mat_id {t.name}: the experts must be a weight tensor")
    w, n_rows = plan.weight(a), a.ne[1]
    x, ids2, out = plan.array(b)[0], plan.array(ids)[0, 0], plan.array(t)[0]
    independent = bool(t.params.get("independent_rows"))
    return lambda: q_mul_mat_id(w, n_rows, x, ids2, out, independent)


def _bind_argsort(t, plan):
    x, out = plan.array(t.src[0]), _rows(plan.array(t))
    desc = t.params["order"] == 1
    if _is_c(x):
        x2 = _rows(x)
        return lambda: routing.argsort_rows(x2, out, desc)
    return lambda: routing.argsort_rows(_rows(np.ascontiguousarray(x)), out, desc)


def _bind_sum_rows(t, plan):
    x, out = plan.array(t.src[0]), plan.array(t).reshape(-1)
    return lambda: routing.sum_rows_f32(_rows(np.ascontiguousarray(x)), out)


def _bind_clamp(t, plan):
    a, out = plan.array(t.src[0]), plan.array(t)
    lo, hi = np.float32(t.params["min"]), np.float32(t.params["max"])
    # ggml: MAX(MIN(x, max), min) with C's ?: macros: a NaN becomes max, as fmin returns the number
    return lambda: np.fmax(np.fmin(a, hi, out=out), lo, out=out)


def _bind_soft_max(t, plan):
    x, out = plan.array(t.src[0]), plan.array(t)
    has_mask = len(t.src) > 1
    if has_mask and t.src[1].ne[2] != 1:
        raise GGraphError("soft_max: a mask with per-head planes is not supported")
    mask = plan.array(t.src[1])[:, 0] if has_mask else np.zeros((1, 1, 1), np.float32)
    scale = np.float32(t.params["scale"])
    slopes = softmax.alibi_slopes(t.src[0].ne[2], np.float32(t.params.get("max_bias", 0.0)))
    return Call(softmax.soft_max_4d, x, mask, out, scale, has_mask, slopes)


def _bind_rope(t, plan):
    p = t.params
    x, pos, out = plan.array(t.src[0]), plan.array(t.src[1]).reshape(-1), plan.array(t)
    if len(t.src) > 2:
        ff = np.ascontiguousarray(_src_array(t.src[2], plan).reshape(-1), dtype=np.float32)
        has_ff = True
    else:
        ff, has_ff = np.ones(1, np.float32), False
    corr0, corr1 = rope.yarn_corr_dims(p["n_dims"], p["n_ctx_orig"], p["freq_base"], p["beta_fast"], p["beta_slow"])
    args = (ff, has_ff, p["n_dims"], p["mode"] == 2, p["freq_base"], p["freq_scale"], p["ext_factor"],
            p["attn_factor"], corr0, corr1)
    x3, o3 = x[0], out[0]
    if _is_c(x3):
        return Call(rope.rope_f32, x3, pos, o3, *args)
    return lambda: rope.rope_f32(np.ascontiguousarray(x3), pos, o3, *args)


def _bind_set_rows(t, plan):
    dst, src, ids = t.src
    d2 = plan.array(t)[0, 0]           # [n_rows, row] view of the destination storage
    s2 = _rows(plan.array(src)) if _is_c(plan.array(src)) else None
    sv = plan.array(src)
    ids_arr = plan.array(ids).reshape(-1)
    if dst.type == F16 and s2 is not None:
        return Call(set_rows_f16, d2, s2, ids_arr)

    def run():
        rows = s2 if s2 is not None else _rows(np.ascontiguousarray(sv))
        d2[ids_arr] = stored(dst, rows)
    return run


def _bind_cont(t, plan):
    src, out = plan.array(t.src[0]), plan.array(t)
    shape = tuple(reversed(t.src[0].ne))
    src_view = src.reshape(shape) if src.shape != shape else src
    flat_out = out.reshape(shape)     # out is contiguous: this is a view
    if src_view.ndim == 4 and src_view.dtype == flat_out.dtype:
        return Call(elementwise.copy_4d, src_view, flat_out)
    return lambda: np.copyto(flat_out, src_view)


def _bind_concat(t, plan):
    a, b = (_src_array(s, plan).reshape(tuple(reversed(s.ne))) for s in t.src)
    out = plan.array(t).reshape(tuple(reversed(t.ne)))
    axis = 3 - t.params["dim"]             # numpy axes are ggml's dims reversed
    return lambda: np.concatenate((a, b), axis=axis, out=out)


def _bind_repeat(t, plan):
    a = _src_array(t.src[0], plan).reshape(tuple(reversed(t.src[0].ne)))
    out = plan.array(t).reshape(tuple(reversed(t.ne)))
    reps = tuple(o // i for o, i in zip(out.shape, a.shape))
    return lambda: np.copyto(out, np.tile(a, reps))


def _bind_cpy(t, plan):
    a, b = t.src
    src, dst = plan.array(a), plan.array(t)

    def run():
        vals = np.ascontiguousarray(src).reshape(dst.shape)
        dst[...] = stored(b, vals)
    return run


def _bind_rms_norm_mul(t, plan, norm, w):
    src, out = plan.array(norm.src[0]), _rows(plan.array(t))
    wv = _src_array(w, plan).reshape(-1)
    eps = np.float32(norm.params["eps"])
    if _is_c(src):
        return Call(rms_norm_mul_f32, _rows(src), wv, out, eps)
    return lambda: rms_norm_mul_f32(_rows(np.ascontiguousarray(src)), wv, out, eps)


_FUSED = {"rms_norm_mul": _bind_rms_norm_mul}

_BINDERS = {
    "get_rows": _bind_get_rows,
    "mul_mat": _bind_mul_mat,
    "add": _bind_binary(np.add, elementwise.add_f32),
    "mul": _bind_binary(np.multiply, elementwise.mul_f32),
    "scale": _bind_scale,
    "rms_norm": _bind_rms_norm,
    "norm": _bind_norm,
    "silu": _unary_rows(elementwise.silu_f32),
    "sigmoid": _unary_rows(routing.sigmoid_f32),
    "div": _bind_binary(np.divide, None),
    "clamp": _bind_clamp,
    "sum_rows": _bind_sum_rows,
    "argsort": _bind_argsort,
    "mul_mat_id": _bind_mul_mat_id,
    "gelu": _unary_rows(elementwise.gelu_f32, call=elementwise.gelu_call),
    "tanh": _unary_rows(elementwise.tanh_f32),
    "relu": _unary_rows(elementwise.relu_f32),
    "gelu_erf": _unary_rows(elementwise.gelu_erf_f32),
    "concat": _bind_concat,
    "repeat": _bind_repeat,
    "sqr": _unary_rows(elementwise.sqr_f32),
    "swiglu": _bind_glu(elementwise.swiglu_f32),
    "geglu": _bind_glu(elementwise.geglu_f32, call=elementwise.geglu_call),
    "reglu": _bind_glu(elementwise.reglu_f32),
    "soft_max": _bind_soft_max,
    "rope": _bind_rope,
    "set_rows": _bind_set_rows,
    "cont": _bind_cont,
    "cpy": _bind_cpy,
}
