"""The one table of ggml weight types the CPU runtime can multiply (ggml-cpu.c's type_traits_cpu,
plus repack.cpp's choice of a load-time repack), keyed by ggml's type id (gguf.GGMLQuantizationType).

An entry (WeightFormat): the type, its vec_dot type (the type llama.cpp's CPU backend converts the
activations to: a key of ACTIVATIONS), the mat-mul kernel, the row dequantizer and, for the types
llama.cpp repacks, a Repack (packed layout + the kernel of its gemv / gemm order). Block geometry is
gguf's GGML_QUANT_SIZES, read through the entry (block_size, block_bytes, row_bytes) and, inside
kernels, through ggml_common.block_bytes / block_size.

Adding a weight format = one entry here plus its kernels: a dot kernel (dot_q32.py, dot_k.py or
dot_float.py, with the type's unpacking there), a block decoder in dequant.py, and, if llama.cpp
repacks it, its gemv / gemm in repack.py.

Kernel contract: matmul(w_raw u8 [N, row_bytes], xq, a1, a2, out f32 [M, N]) where (xq, a1, a2) come
from ACTIVATIONS[vec_dot].convert(x, bufs) (Repack.matmul: the same with Repack.pack's array);
dequant(w_raw, rows int64 [R], out f32 [R, ne0]).
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

from ggraph.errors import GGraphError
from ggraph.runtime.kernels import dequant as dq
from ggraph.runtime.kernels import dot_float as df
from ggraph.runtime.kernels import dot_k as dk
from ggraph.runtime.kernels import dot_q32 as d32
from ggraph.runtime.kernels import quantize_act as qa
from ggraph.runtime.kernels import repack as rp
from ggraph.runtime.kernels import repack_k as rk
from ggraph.runtime.kernels import gemv_rows16 as g16

# llama.cpp's CPU backend repacks a matrix of a repackable type only when its row count is a multiple
# of 8 (ggml_repack_get_optimal_repack_type: the 8-row interleaves)
REPACK_ROWS = 8


@dataclass(frozen=True)
class Repack:
    """The load-time repack llama.cpp's CPU backend does for a type (its "extra buffer")."""
    matmul: Callable            # kernel of the repacked gemv / gemm order, on pack()'s array
    layout: Callable = None     # layout(raw, ne0, ne1) -> the packed copy; None: the kernel reads raw

    @staticmethod
    def applies(ne1):
        return ne1 % REPACK_ROWS == 0

    def pack(self, raw, ne0, ne1):
        return raw if self.layout is None else self.layout(raw, ne0, ne1)


@dataclass(frozen=True)
class Rows16:
    """A 16-row interleaved copy for one-token products in the same order as the plain kernel
    (gemv_rows16.py): ggraph's own layout, not one of llama.cpp's repacks."""
    gemv: Callable              # kernel on layout()'s array, M == 1
    layout: Callable            # layout(raw) -> the copy
    tag: str                    # layout name and version (key of the on-disk copies)

    @staticmethod
    def applies(ne1):
        return ne1 % 16 == 0


def _rows16(gemv, t):
    return Rows16(gemv, g16.layout(t), g16.tag(t))


@dataclass(frozen=True)
class WeightFormat:
    type: T
    vec_dot: T                  # activation type: key of ACTIVATIONS
    matmul: Callable
    dequant: Callable
    repack: Repack = None
    rows16: Rows16 = None

    @property
    def name(self):
        return self.type.name

    @property
    def block_size(self):       # elements per block
        return GGML_QUANT_SIZES[self.type][0]

    @property
    def block_bytes(self):      # bytes per block
        return GGML_QUANT_SIZES[self.type][1]

    def row_bytes(self, ne0):
        return ne0 // self.block_size * self.block_bytes


_NO_SIDE = np.zeros((1, 1), np.float32)   # placeholder side arrays for float activations


@dataclass(frozen=True)
class Activation:
    """How x [M, K] float32 becomes the vec_dot type: convert(x, bufs) -> (xq, a1, a2), where bufs
    (from buffers(M, K), or None to allocate) lets mul_mat reuse scratch arrays between calls."""
    convert: Callable
    buffers: Callable
    call: Callable = None       # call(x, bufs) -> (kernel, args) converting x into bufs; None: convert only


def _float_act(rounder):
    return Activation(lambda x, bufs: (rounder(x), _NO_SIDE, _NO_SIDE), lambda M, K: None)


ACTIVATIONS = {
    T.F32: _float_act(qa.keep_f32),
    T.F16: _float_act(qa.round_to_f16),
    T.BF16: _float_act(qa.round_to_bf16),
    T.Q8_0: Activation(qa.quantize_q8_0, lambda M, K: qa.q8_buffers(M, K, 0), qa.q8_0_call),
    T.Q8_1: Activation(qa.quantize_q8_1, lambda M, K: qa.q8_buffers(M, K, 1), qa.q8_1_call),
    T.Q8_K: Activation(qa.quantize_q8_K, qa.q8k_buffers, qa.q8_K_call),
}

FORMATS = {f.type: f for f in (
    WeightFormat(T.F32, T.F32, df.mm_f32, dq.deq_f32),
    WeightFormat(T.F16, T.F16, df.mm_f16, dq.deq_f16),
    WeightFormat(T.BF16, T.BF16, df.mm_bf16, dq.deq_bf16),
    WeightFormat(T.Q4_0, T.Q8_0, d32.mm_q4_0, dq.deq_q4_0, Repack(rp.mm_q4_0_packed, rp.repack_q4)),  # AVX2 and up
    WeightFormat(T.Q4_1, T.Q8_1, d32.mm_q4_1, dq.deq_q4_1, rows16=_rows16(g16.gemv_q4_1, T.Q4_1)),
    WeightFormat(T.Q5_0, T.Q8_0, d32.mm_q5_0, dq.deq_q5_0, rows16=_rows16(g16.gemv_q5_0, T.Q5_0)),
    WeightFormat(T.Q5_1, T.Q8_1, d32.mm_q5_1, dq.deq_q5_1),
    WeightFormat(T.Q8_0, T.Q8_0, d32.mm_q8_0, dq.deq_q8_0, rows16=_rows16(g16.gemv_q8_0, T.Q8_0)),
    WeightFormat(T.IQ4_NL, T.Q8_0, d32.mm_iq4_nl, dq.deq_iq4_nl, Repack(rp.mm_iq4_nl_packed, rp.repack_q4)),
    WeightFormat(T.Q2_K, T.Q8_K, dk.mm_q2_k, dq.deq_q2_k, Repack(rp.mm_q2_k_packed)),   # AVX512
    WeightFormat(T.Q3_K, T.Q8_K, dk.mm_q3_k, dq.deq_q3_k),
    WeightFormat(T.Q4_K, T.Q8_K, dk.mm_q4_k, dq.deq_q4_k, Repack(rk.mm_q4_k_packed, rk.repack_q4_k)),   # AVX2 and up
    WeightFormat(T.Q5_K, T.Q8_K, dk.mm_q5_k, dq.deq_q5_k),
    WeightFormat(T.Q6_K, T.Q8_K, dk.mm_q6_k, dq.deq_q6_k),
    WeightFormat(T.IQ4_XS, T.Q8_K, dk.mm_iq4_xs, dq.deq_iq4_xs),
)}


def _type_name(ggml_type):
    try:
        return T(int(ggml_type)).name
    except ValueError:
        return f"type {ggml_type}"


def supported_names():
    return ", ".join(f.name for f in FORMATS.values())


def get_format(ggml_type, tensor_name="?"):
    """The WeightFormat of a ggml type id, or a GGraphError naming the tensor and what is supported."""
    fmt = FORMATS.get(int(ggml_type))
    if fmt is None:
        raise GGraphError(
            f"tensor '{tensor_name}' has format {_type_name(ggml_type)} (ggml type {int(ggml_type)}), "
            f"which the CPU matmul kernels do not support; supported formats: {supported_names()}")
    return fmt
