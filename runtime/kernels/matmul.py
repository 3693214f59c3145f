"""mul_mat, get_rows and dequantize_rows of a weight (runtime.weights.Weight: raw blocks, format,
packed copy) as ggml-cpu's mul_mat / get_rows compute them.

mul_mat follows llama.cpp's CPU backend (x86, AVX512 build): x rows are converted to the weight
type's vec_dot type (Q8_0/Q8_1/Q8_K/F16/BF16/F32) and dotted with the float operation order of the
kernel llama.cpp runs for that type and shape: vec_dot for one token, llamafile's tinyBLAS for
batches where it applies, the repacked gemv/gemm for the types its CPU backend repacks at load time.
Batches run 4 tokens per weight unpack, over L1-sized token tiles. Where llama.cpp's one-token and
batch kernels agree, so do ours, bit for bit.
"""
import threading

import numpy as np
from gguf import GGMLQuantizationType as T

from ggraph.errors import GGraphError
from ggraph.runtime.kernels.type_traits import ACTIVATIONS

# Quantized-activation scratch arrays by (vec_dot type, M, K), per calling thread: saves three
# allocations per call (mul_mat consumes them before returning).
_tls = threading.local()
_SCRATCH_MAX = 32


def mul_mat(w, x, out):
    """out[m, n] = dot(W[n, :], x[m, :]) with llama.cpp's activation conversion. x: f32 [M, ne0]."""
    _check(w, x, out)
    if x.dtype != np.float32 or not x.flags.c_contiguous:
        x = np.ascontiguousarray(x, dtype=np.float32)
    key = (w.fmt.vec_dot, x.shape[0], x.shape[1])
    scratch = getattr(_tls, "scratch", None)
    if scratch is None:
        scratch = _tls.scratch = {}
    bufs = scratch.get(key)
    if bufs is None:
        if len(scratch) >= _SCRATCH_MAX:   # many prompt lengths: start over
            scratch.clear()
        bufs = scratch[key] = activation_buffers(w, x.shape[0])
    mul_mat_converted(w, convert(w, x, bufs), out)


# the 16-row gemv serves up to this many rows (its rows equal the batch kernel's, vec_dot order both);
# beyond, the batch kernel's 4x4 tiles reuse each weight block from registers instead of L1
ROWS16_MAX_M = 8


def batch_is_rowwise(w, M: int) -> bool:
    """Whether mul_mat on M rows gives every row exactly its one-row product (then a decode step of
    M sequences reads the weights once and still matches each sequence alone): the 32-block formats
    always (their batch kernel sums in vec_dot's order), non-repacked K-quants below the tiled
    kernel's 8 rows, repacked Q4_K / Q2_K below the 4-row gemm; never the float formats (sgemm order)."""
    t = w.fmt.type
    if M == 1 or t in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
        return True
    if t in (T.Q4_K, T.Q2_K) and w.packed is not None:
        return M < 4
    if t in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        return M < 8
    return False


def mul_mat_rowwise(w, x, out):
    """mul_mat with each row computed as if it were alone (one batch call where that is the same)."""
    if batch_is_rowwise(w, x.shape[0]):
        mul_mat(w, x, out)
        return
    for m in range(x.shape[0]):
        mul_mat(w, x[m:m + 1], out[m:m + 1])


def _check(w, x, out):
    if x.ndim != 2 or x.shape[1] != w.ne0 or out.shape != (x.shape[0], w.ne1):
        raise GGraphError(f"mul_mat '{w.name}': x {x.shape} / out {out.shape} do not fit weight ne0={w.ne0}, ne1={w.ne1}")


def activation_buffers(w, M):
    """Scratch for convert(): the weight type's vec_dot form of M activation rows."""
    return ACTIVATIONS[w.fmt.vec_dot].buffers(M, w.ne0)


def convert(w, x, bufs):
    """x (f32 [M, ne0], C-contiguous) in w's vec_dot type: (xq, a1, a2). Weights with the same
    vec_dot type and input share one conversion (the plan does Q, K and V from one)."""
    return ACTIVATIONS[w.fmt.vec_dot].convert(x, bufs)


def convert_call(w, x, bufs):
    """(kernel, args) that convert x into bufs (then bufs is the converted form), or None where the
    conversion allocates (the float formats)."""
    act = ACTIVATIONS[w.fmt.vec_dot]
    return None if act.call is None else act.call(x, bufs)


def mul_mat_converted(w, xc, out):
    kernel, args = mul_mat_call(w, xc, out)
    kernel(*args)


def mul_mat_call(w, xc, out):
    """(kernel, args) of the product of w with converted activations xc into out."""
    xq, a1, a2 = xc
    if w.packed is not None:
        return w.fmt.repack.matmul, (w.packed, xq, a1, a2, out)
    if w.rows16 is not None and xq.shape[0] <= ROWS16_MAX_M:   # one token, or a few sequences' tokens
        return w.fmt.rows16.gemv, (w.rows16, xq, a1, a2, out)
    return w.fmt.matmul, (w.raw, xq, a1, a2, out)


def mul_mat_id(w, n_rows, x, ids, out, independent_rows=False):
    """Expert products as ggml-cpu's mul_mat_id: out[t, s, :] = W_e x[t, s % n_b, :] with e = ids[t, s];
    w holds n_expert blocks of n_rows rows; x f32 [T, n_b, K], ids i32 [T, k], out f32 [T, k, n_rows].

    Only the selected experts run, each over the (slot, token) rows routed to it, in token order.
    llama.cpp computes every row with the one-token kernel (vec_dot, or the repacked gemv), except
    non-repacked K-quant experts with >= 8 rows, which take the tiled kernel. Batched here where our
    batch kernel has exactly that order (the 32-block formats, where vec_dot and the batch order
    agree; the K-quant tiled / vec rule is mul_mat's own); one row at a time otherwise.
    independent_rows: every row as if its token were alone (a decode step of several sequences)."""
    T, k = ids.shape
    n_b, K = x.shape[1], x.shape[2]
    if out.shape != (T, k, n_rows) or x.shape[0] != T or k % n_b:
        raise GGraphError(f"mul_mat_id '{w.name}': x {x.shape} / ids {ids.shape} / out {out.shape} do not fit")
    n_expert = w.ne1 // n_rows
    if ids.size and (ids.min() < 0 or ids.max() >= n_expert):
        raise GGraphError(f"mul_mat_id '{w.name}': expert id out of range [0, {n_expert})")
    flat = np.asarray(ids).reshape(-1)                 # row j = (t, s) = divmod(j, k), token order
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(n_expert + 1))
    batch = _batches_like_vec_dot(w, n_rows)
    for e in range(n_expert):
        rows = order[bounds[e]:bounds[e + 1]]
        if rows.size == 0:
            continue
        we = w.expert(e, n_rows)
        t, s = np.divmod(rows, k)
        xe = np.ascontiguousarray(x[t, s % n_b])
        if rows.size == 1 or (batch and not independent_rows) or (independent_rows and batch_is_rowwise(we, rows.size)):
            oe = np.empty((rows.size, n_rows), np.float32)
            mul_mat(we, xe, oe)
            out[t, s] = oe
        else:
            o1 = np.empty((1, n_rows), np.float32)
            for i in range(rows.size):
                mul_mat(we, xe[i:i + 1], o1)
                out[t[i], s[i]] = o1[0]


def _batches_like_vec_dot(w, n_rows) -> bool:
    """Whether mul_mat on a batch of rows gives llama.cpp's mul_mat_id order for these experts."""
    t = w.fmt.type
    if t in (T.Q8_0, T.Q4_1, T.Q5_0, T.Q5_1):
        return True                  # tinyBLAS and vec_dot agree; mul_mat_id never repacks these here
    if w.fmt.repack is not None and w.fmt.repack.applies(n_rows):
        return t in (T.Q4_0, T.IQ4_NL)   # repacked: gemv per row; these kernels have one chain for all M
    return t in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS)   # tiled from 8 rows, vec below


def _check_ids(w, ids):
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= w.ne1):
        raise GGraphError(f"get_rows '{w.name}': row id out of range [0, {w.ne1})")
    return ids


def get_rows(w, ids, out):
    """out[i, :] = dequantized row ids[i] (embedding lookup; exact, no activation rounding)."""
    ids = _check_ids(w, ids)
    if out.shape != (ids.size, w.ne0):
        raise GGraphError(f"get_rows '{w.name}': out {out.shape}, expected {(ids.size, w.ne0)}")
    w.fmt.dequant(w.raw, ids, out)


def dequantize_rows(w, start, stop):
    """Rows [start, stop) as float32 (tests, debugging)."""
    ids = _check_ids(w, np.arange(start, stop))
    out = np.empty((ids.size, w.ne0), np.float32)
    w.fmt.dequant(w.raw, ids, out)
    return out
