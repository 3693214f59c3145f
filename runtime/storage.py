"""How graph tensor types are held in memory at run time: the one place for the F16 rule.

An F16 tensor (the KV cache) is held as its IEEE half bits in uint16, as ggml holds it: the same
bytes per cell and the same byte strides as llama.cpp. Numba has no float16 arithmetic, so kernels
convert on load (vcvtph2ps: `simd.f32.fload_f16`, `simd.scalar.f16at`) and writers round with
`stored` (round-to-nearest-even, ggml's fp32 -> fp16). `as_f32` reads such storage back as floats
(tools and tests).
"""
from __future__ import annotations

import numpy as np

from ggraph.errors import GGraphError
from ggraph.graph import F16, F32, I32, Tensor

_DTYPE = {F32: np.float32, F16: np.uint16, I32: np.int32}


def runtime_dtype(t: Tensor):
    """The numpy dtype an activation, input or cache tensor of t's type is held in."""
    try:
        return _DTYPE[t.type]
    except KeyError:
        raise GGraphError(f"tensor {t.name}: type {t.type.name} cannot be an activation or cache type") from None


def zeros(t: Tensor) -> np.ndarray:
    """Flat zeroed storage for a long-lived leaf (a KV cache layer)."""
    return np.zeros(t.nelements, runtime_dtype(t))


def stored(t: Tensor, values: np.ndarray) -> np.ndarray:
    """float32 `values` as a tensor of t's type holds them: F16 bits for F16 tensors."""
    return values.astype(np.float16).view(np.uint16) if t.type == F16 else values


def as_f32(t: Tensor, arr: np.ndarray) -> np.ndarray:
    """The values of t's runtime array as float32 (F16 bits decoded)."""
    return arr.view(np.float16).astype(np.float32) if t.type == F16 else arr
