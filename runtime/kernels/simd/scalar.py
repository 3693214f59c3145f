"""Scalars at byte offsets of any array (block scales and fields of quantized weights), the F16
round trip of one float, and a software prefetch."""
from llvmlite import ir
from numba import types

from ggraph.runtime.kernels.simd.core import ARR, FLOAT, FLT, HALF, I8, I16, I32, INT, addr, call, load, to_f32, vec_intrinsic

b8 = load(types.int32, I8, lambda b, v: b.zext(v, I32), "The unsigned byte at byte `off`, as int32.")
u32at = load(types.uint32, I32, doc="The little-endian u32 at byte `off`.")
f32at = load(types.float32, FLOAT, doc="The float32 at byte `off`.")
f16at = load(types.float32, HALF, lambda b, v: b.fpext(v, FLOAT),
             "The IEEE half at byte `off`, as float32 (block scales of quantized weights).")
bf16at = load(types.float32, I16, lambda b, v: b.bitcast(b.shl(b.zext(v, I32), ir.Constant(I32, 16)), FLOAT),
              "The bfloat16 at byte `off`, as float32.")


@vec_intrinsic(types.float32, FLT)
def fround_f16(context, builder, sig, args):
    """float32 -> nearest fp16 (round-to-nearest-even, like F16C) -> float32."""
    return builder.fpext(builder.fptrunc(to_f32(context, builder, args[0], sig.args[0]), HALF), FLOAT)


@vec_intrinsic(types.uint16, FLT)
def f16bits(context, builder, sig, args):
    """float32 -> the bits of the nearest fp16 (round-to-nearest-even, like F16C and numpy)."""
    return builder.bitcast(builder.fptrunc(to_f32(context, builder, args[0], sig.args[0]), HALF), I16)


@vec_intrinsic(types.void, ARR, INT)
def prefetch(context, builder, sig, args):
    """Software prefetch (to all cache levels) of the line holding byte `off` of arr: kernels that
    stream several weight rows at once use it, the hardware prefetchers track them poorly."""
    p = addr(context, builder, sig, args, 0)
    call(builder, "llvm.prefetch.p0i8", ir.VoidType(), [p, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])
    return context.get_dummy_value()
