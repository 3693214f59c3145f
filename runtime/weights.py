"""Binding model weight tensors to GGUF data, once at load time."""
from __future__ import annotations

import numpy as np

from ggraph.graph import F32

from .kernels.matmul import prepare_weight


def prepare_weights(model) -> dict:
    """name -> prepared weight: 1-D F32 tensors (norms, biases) as float32 arrays, matrices as
    the quantized-kernel's prepared blocks (zero-copy over the mmap where the format allows)."""
    out = {}
    for t in model.weight_tensors():
        info = model.file.tensor(t.name)
        if t.type == F32 and t.n_dims == 1:
            out[t.name] = info.data.view(np.float32).reshape(-1)
        else:
            out[t.name] = prepare_weight(t.name, int(info.ggml_type), info.data, t.ne[0], t.nelements // t.ne[0])
    return out
