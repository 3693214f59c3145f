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


def mul_mat_converted(w, xc, out):
    xq, a1, a2 = xc
    if w.packed is not None:
        w.fmt.repack.matmul(w.packed, xq, a1, a2, out)
    elif w.rows16 is not None and xq.shape[0] == 1:
        w.fmt.rows16.gemv(w.rows16, xq, a1, a2, out)
    else:
        w.fmt.matmul(w.raw, xq, a1, a2, out)


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
