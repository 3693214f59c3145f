"""The one table of ggml weight types the CPU runtime can multiply.

Each entry: block geometry, the activation (vec_dot) type llama.cpp's CPU backend converts src1 to
(ggml-cpu.c type_traits_cpu), the mat-mul kernel and the row dequantizer. Adding a format = one entry
here plus its kernels in a matmul_*.py file.

Kernel contract: matmul(w_raw u8 [N, row_bytes], xq, a1, a2, out f32 [M, N]) where (xq, a1, a2) come
from ACTIVATIONS[vec_dot].convert(x, bufs) (packed_matmul: the same with the repacked weight);
dequant(w_raw, rows int64 [R], out f32 [R, ne0]).
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ggraph.errors import GGraphError
from ggraph.runtime.kernels import matmul_float as mf
from ggraph.runtime.kernels import matmul_k as mk
from ggraph.runtime.kernels import matmul_q4 as m4
from ggraph.runtime.kernels import matmul_q5 as m5
from ggraph.runtime.kernels import matmul_q8 as m8
from ggraph.runtime.kernels import quantize_act as qa


@dataclass(frozen=True)
class QuantFormat:
    name: str
    ggml_type: int
    block_size: int      # elements per block
    block_bytes: int     # bytes per block
    vec_dot: str         # activation type: key of ACTIVATIONS
    matmul: Callable
    dequant: Callable
    # load-time repack llama.cpp's CPU backend does for this type (its "extra buffer"): when
    # repacks(ne1), prepare_weight keeps repack(raw, ne0, ne1) and mul_mat runs packed_matmul on it
    repacks: Callable = None
    repack: Callable = None
    packed_matmul: Callable = None

    def row_bytes(self, ne0):
        return ne0 // self.block_size * self.block_bytes


_NO_SIDE = np.zeros((1, 1), np.float32)   # placeholder side arrays for float activations


@dataclass(frozen=True)
class Activation:
    """How x [M, K] float32 becomes the vec_dot type: convert(x, bufs) -> (xq, a1, a2), where bufs
    (from buffers(M, K), or None to allocate) lets mul_mat reuse scratch arrays between calls."""
    convert: Callable
    buffers: Callable


def _float_act(rounder):
    return Activation(lambda x, bufs: (rounder(x), _NO_SIDE, _NO_SIDE), lambda M, K: None)


ACTIVATIONS = {
    "F32": _float_act(qa.keep_f32),
    "F16": _float_act(qa.round_to_f16),
    "BF16": _float_act(qa.round_to_bf16),
    "Q8_0": Activation(qa.quantize_q8_0, lambda M, K: qa.q8_buffers(M, K, 0)),
    "Q8_1": Activation(qa.quantize_q8_1, lambda M, K: qa.q8_buffers(M, K, 1)),
    "Q8_K": Activation(qa.quantize_q8_K, qa.q8k_buffers),
}


def _with(fn, *extra):
    def deq(w, rows, out):
        fn(w, rows, out, *extra)
    return deq


FORMATS = {f.ggml_type: f for f in (
    QuantFormat("F32", 0, 1, 4, "F32", mf.mm_f32, mf.deq_f32),
    QuantFormat("F16", 1, 1, 2, "F16", mf.mm_f16, mf.deq_f16),
    QuantFormat("Q4_0", 2, 32, 18, "Q8_0", m4.mm_q4_0, m4.deq_q4_0, m4.repacks, m4.repack_q4, m4.mm_q4_0_packed),
    QuantFormat("Q4_1", 3, 32, 20, "Q8_1", m4.mm_q4_1, m4.deq_q4_1),
    QuantFormat("Q5_0", 6, 32, 22, "Q8_0", m5.mm_q5_0, _with(m5.deq_q5, False)),
    QuantFormat("Q5_1", 7, 32, 24, "Q8_1", m5.mm_q5_1, _with(m5.deq_q5, True)),
    QuantFormat("Q8_0", 8, 32, 34, "Q8_0", m8.mm_q8_0, m8.deq_q8_0),
    QuantFormat("Q2_K", 10, 256, 84, "Q8_K", mk.mm_q2_k, mk.deq_q2_k),
    QuantFormat("Q3_K", 11, 256, 110, "Q8_K", mk.mm_q3_k, mk.deq_q3_k),
    QuantFormat("Q4_K", 12, 256, 144, "Q8_K", mk.mm_q4_k, _with(mk.deq_q4_k, False)),
    QuantFormat("Q5_K", 13, 256, 176, "Q8_K", mk.mm_q5_k, _with(mk.deq_q4_k, True)),
    QuantFormat("Q6_K", 14, 256, 210, "Q8_K", mk.mm_q6_k, mk.deq_q6_k),
    QuantFormat("IQ4_NL", 20, 32, 18, "Q8_0", m4.mm_iq4_nl, m4.deq_iq4_nl, m4.repacks, m4.repack_q4,
                m4.mm_iq4_nl_packed),
    QuantFormat("IQ4_XS", 23, 256, 136, "Q8_K", mk.mm_iq4_xs, mk.deq_iq4_xs),
    QuantFormat("BF16", 30, 1, 2, "BF16", mf.mm_bf16, mf.deq_bf16),
)}


def _type_name(ggml_type):
    try:
        import gguf
        return gguf.GGMLQuantizationType(ggml_type).name
    except Exception:
        return f"type {ggml_type}"


def supported_names():
    return ", ".join(f.name for f in FORMATS.values())


def get_format(ggml_type, tensor_name="?"):
    """The QuantFormat for a ggml type id, or a GGraphError naming the tensor and what is supported."""
    fmt = FORMATS.get(int(ggml_type))
    if fmt is None:
        raise GGraphError(
            f"tensor '{tensor_name}' has format {_type_name(ggml_type)} (ggml type {int(ggml_type)}), "
            f"which the CPU matmul kernels do not support; supported formats: {supported_names()}")
    return fmt
