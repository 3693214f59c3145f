"""Model weights bound to their GGUF data, once at load time: one Weight per tensor, whatever its
type (matrices, and the 1-D F32 norm weights and biases alike)."""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T

from ggraph.errors import GGraphError

from .kernels.type_traits import get_format
from .layout_cache import cached_layout


class Weight:
    """A weight tensor [ne1 rows x ne0] kept as its raw GGUF blocks (no dequantized copy), with its
    format (kernels.type_traits.WeightFormat) and the packed copy llama.cpp's CPU backend would
    repack it into (or None), and for one-token products a 16-row interleaved copy where the format
has one (`rows16`, see kernels/gemv_rows16.py); get_rows keeps reading `raw`, as llama.cpp's embedding lookups read the
    plain tensor."""

    __slots__ = ("name", "fmt", "raw", "ne0", "ne1", "packed", "rows16", "gguf_path", "_experts")

    def __init__(self, name, fmt, raw, ne0, ne1, gguf_path=None, stacked=False):
        self.name, self.fmt, self.raw, self.ne0, self.ne1 = name, fmt, raw, ne0, ne1
        self.gguf_path, self._experts = gguf_path, {}
        rp = fmt.repack        # stacked (3-D expert tensors): each expert() gets its own copies
        self.packed = rp.pack(raw, ne0, ne1) if rp is not None and rp.applies(ne1) and not stacked else None
        r16 = fmt.rows16       # ggraph's own one-token layout (same order as the plain kernel)
        self.rows16 = None
        if r16 is not None and self.packed is None and r16.applies(ne1) and not stacked:
            self.rows16 = cached_layout(gguf_path, name, r16.tag, raw, r16.layout)

    def expert(self, e: int, n_rows: int) -> "Weight":
        """Expert e of a 3-D expert tensor held as [n_expert * n_rows, row] (rows of expert e are
        e * n_rows ...): its own Weight, with the repack / 16-row copy llama.cpp's repack of a
        3-D tensor gives per 8-row group (built on first use)."""
        w = self._experts.get(e)
        if w is None:
            raw = self.raw[e * n_rows:(e + 1) * n_rows]
            w = self._experts[e] = Weight(f"{self.name}#{e}", self.fmt, raw, self.ne0, n_rows, self.gguf_path)
        return w

    @property
    def ggml_type(self):
        return int(self.fmt.type)

    @property
    def nbytes_weights(self):
        return self.raw.nbytes

    def f32(self) -> np.ndarray:
        """The values as float32 [ne1, ne0], zero-copy: what elementwise ops read (norm weights,
        biases). Only F32 weights have them."""
        if self.fmt.type != T.F32:
            raise GGraphError(f"{self.name}: a {self.fmt.name} weight cannot be used by elementwise ops")
        return self.raw.view(np.float32)

    def __repr__(self):
        return f"Weight({self.name!r}, {self.fmt.name}, ne0={self.ne0}, ne1={self.ne1})"


def prepare_weight(name, ggml_type, raw, ne0, ne1, gguf_path=None, stacked=False) -> Weight:
    """Validate and wrap one weight. `raw` (its bytes, [ne1, row_bytes] or flat) is used in place."""
    fmt = get_format(ggml_type, name)
    ne0, ne1 = int(ne0), int(ne1)
    if ne0 % fmt.block_size:
        raise GGraphError(f"tensor '{name}' ({fmt.name}): ne0={ne0} is not a multiple of the block size {fmt.block_size}")
    rb = fmt.row_bytes(ne0)
    raw = np.asarray(raw)
    if raw.dtype != np.uint8:
        raw = raw.view(np.uint8)
    if raw.size != ne1 * rb:
        raise GGraphError(f"tensor '{name}' ({fmt.name}): {raw.size} bytes, expected {ne1} rows x {rb} bytes")
    raw = raw.reshape(ne1, rb)
    if not raw.flags.c_contiguous:   # kernels address rows as r * row_bytes
        raw = np.ascontiguousarray(raw)
    return Weight(name, fmt, raw, ne0, ne1, gguf_path, stacked)


def prepare_weights(model) -> dict:
    """name -> Weight for every weight tensor of the model (zero-copy over the mmap where the data
    is contiguous)."""
    out = {}
    for t in model.weight_tensors():
        info = model.file.tensor(t.name)
        out[t.name] = prepare_weight(t.name, int(info.ggml_type), info.data, t.ne[0], t.nelements // t.ne[0],
                                     model.file.path, stacked=t.ne[2] > 1)
    return out
