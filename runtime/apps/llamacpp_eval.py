"""llama.cpp's named intermediate tensors through its eval callback (cb_eval of
llama_context_params), like llama.cpp's `llama-eval-callback`, via llama-cpp-python's ctypes API.

`llamacpp_nodes` runs one prompt (one batch, or token by token with decode=True) with the settings
`ggraph compare` uses (F16 KV cache, flash attention off, the prompt in one ubatch) and returns the
F32 nodes of the last llama_decode in graph order. `ggraph_nodes` (runtime/apps/tensors.py) is the
ggraph side.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import numpy as np


class GGMLTensor(ctypes.Structure):
    # struct ggml_tensor from ggml.h (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, GGML_MAX_NAME 64)
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]


_NP_TYPES = {0: np.float32, 1: np.float16, 26: np.int32}     # GGML_TYPE_F32, F16, I32


def read_tensor(t: GGMLTensor) -> np.ndarray | None:
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


def is_contiguous(t: GGMLTensor) -> bool:
    esz = {0: 4, 1: 2, 26: 4}.get(t.type, 0)
    nb = esz
    for d in range(4):
        if t.ne[d] != 1 and t.nb[d] != nb:
            return False
        nb *= t.ne[d]
    return True


class OpNames:
    """ggml_op_name / ggml_op_desc of a tensor (e.g. 'MUL_MAT', 'GLU' / 'SWIGLU')."""

    def __init__(self):
        import llama_cpp
        lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
        self._name, self._desc = lib.ggml_op_name, lib.ggml_op_desc
        self._name.restype, self._name.argtypes = ctypes.c_char_p, [ctypes.c_int]
        self._desc.restype, self._desc.argtypes = ctypes.c_char_p, [ctypes.c_void_p]

    def __call__(self, ptr, t):
        return self._name(t.op).decode(), self._desc(ptr).decode()


@dataclass
class Node:
    """One named node as computed: name, op (llama.cpp's 'MUL_MAT' or ggraph's 'mul_mat'), value
    (shape = ne reversed), whether it is a view (no computation of its own)."""
    name: str
    op: str
    value: np.ndarray
    is_view: bool


KERNEL_OPS = ("RMS_NORM", "NORM", "MUL_MAT", "SOFT_MAX", "ROPE", "GLU", "UNARY")


def quiet():
    """A context manager silencing llama.cpp's load logs on stdout / stderr (file descriptors)."""
    import contextlib
    import sys
    try:
        from llama_cpp import _logger
        from llama_cpp._utils import suppress_stdout_stderr
        _logger.set_verbose(False)
    except Exception:   # pragma: no cover - other llama-cpp-python layouts
        return contextlib.nullcontext()
    sys.stdout.flush()
    sys.stderr.flush()
    return suppress_stdout_stderr(disable=False)


def llamacpp_nodes(model_path: str, ids: list[int], n_ctx: int = 512, decode: bool = False,
                   isolated: bool = False, n_threads: int = 2, n_ubatch: int | None = None,
                   ) -> tuple[list[Node], list[dict]]:
    """The F32 nodes of the (last) llama_decode of `ids` in graph order (views included, with
    their flag), and, if isolated, the records of the nodes ggraph's kernels implement (op,
    op_params, srcs read before the node ran) in graph order (scripts/llamacpp_dump.py).
    decode=True feeds the prompt one token per llama_decode; the nodes are those of the last."""
    import llama_cpp as lc
    nodes: list[Node] = []
    records: list[dict] = []
    op_names = OpNames()
    pending: dict[int, list] = {}
    state = {"on": False}

    @lc.ggml_backend_sched_eval_callback
    def cb(ptr, ask, _ud):
        if not state["on"]:
            return not ask      # ask: "not needed" (compute in one go); observe: continue
        t = ctypes.cast(ptr, ctypes.POINTER(GGMLTensor)).contents
        if ask:
            # the scheduler asks before computing the node (its sources are ready) and calls again
            # once it is computed: the sources are read now, as the allocator may let the node
            # overwrite them in place (soft_max, norms, ...)
            if isolated and op_names(ptr, t)[0] in KERNEL_OPS and t.type == 0:
                srcs = []
                for sp in t.src:
                    if not sp:
                        break
                    s = ctypes.cast(sp, ctypes.POINTER(GGMLTensor)).contents
                    srcs.append({"type": s.type, "data": read_tensor(s), "contiguous": is_contiguous(s),
                                 "name": s.name.decode()})
                pending[ptr] = srcs
            return True
        if t.type == 0 and t.data:
            nodes.append(Node(t.name.decode(errors="replace"), op_names(ptr, t)[0], read_tensor(t),
                              bool(t.view_src)))
        srcs = pending.pop(ptr, None)
        if srcs is not None:
            op, desc = op_names(ptr, t)
            records.append({"op": op, "desc": desc, "name": t.name.decode(), "params": list(t.op_params),
                            "out": read_tensor(t), "srcs": srcs})
        return True

    lc.llama_backend_init()
    with quiet():
        model = lc.llama_model_load_from_file(model_path.encode(), lc.llama_model_default_params())
    if not model:
        raise RuntimeError(f"llama.cpp could not load {model_path}")
    ub = n_ubatch or max(512, len(ids))
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_threads, cp.n_threads_batch = n_ctx, ub, ub, n_threads, n_threads
    cp.cb_eval, cp.cb_eval_user_data = cb, None
    if hasattr(cp, "flash_attn_type"):
        cp.flash_attn_type = 0
    with quiet():
        ctx = lc.llama_init_from_model(model, cp)
    if not ctx:
        lc.llama_model_free(model)
        raise RuntimeError("llama.cpp could not create a context")
    try:
        batches = [[i] for i in ids] if decode else [list(ids)]
        for k, b in enumerate(batches):
            state["on"] = k == len(batches) - 1
            arr = (ctypes.c_int32 * len(b))(*b)
            if lc.llama_decode(ctx, lc.llama_batch_get_one(arr, len(b))) != 0:
                raise RuntimeError("llama_decode failed")
    finally:
        lc.llama_free(ctx)
        lc.llama_model_free(model)
    return nodes, records
