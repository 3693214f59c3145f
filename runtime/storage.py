"""How graph tensor types are held in memory at run time: the one place for the F16 rule.

Numba has no float16 arithmetic, so an F16 tensor (the KV cache) is held widened to float32 with
every value rounded to F16 when it is written: the numerics are those of an F16 store then load,
at twice the bytes. Byte strides and offsets from the graph (ggml's, 2 bytes per F16) are scaled
by `widen` to address the float32 storage.
"""
from __future__ import annotations

import numpy as np

from ggraph.errors import GGraphError
from ggraph.graph import F16, F32, I32, Tensor

from .kernels.quantize_act import round_to_f16

_DTYPE = {F32: np.float32, F16: np.float32, I32: np.int32}
_WIDEN = {F32: 1, F16: 2, I32: 1}     # runtime bytes per element / ggml bytes per element


def runtime_dtype(t: Tensor):
    """The numpy dtype an activation, input or cache tensor of t's type is held in."""
    try:
        return _DTYPE[t.type]
    except KeyError:
        raise GGraphError(f"tensor {t.name}: type {t.type.name} cannot be an activation or cache type") from None


def widen(t: Tensor) -> int:
    """Factor from ggml byte strides/offsets to runtime ones."""
    return _WIDEN[t.type]


def zeros(t: Tensor) -> np.ndarray:
    """Flat zeroed storage for a long-lived leaf (a KV cache layer)."""
    return np.zeros(t.nelements, runtime_dtype(t))


def stored(t: Tensor, values: np.ndarray) -> np.ndarray:
    """`values` as a tensor of t's type holds them: rounded to F16 for F16 tensors."""
    return round_to_f16(values) if t.type == F16 else values
