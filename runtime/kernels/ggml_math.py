"""Scalar emulations of the float32 building blocks of ggml's x86 CPU backend (AVX512 build), so
that Numba kernels reproduce llama.cpp bit for bit:

  fma32(a, b, c)     one-rounding fused multiply-add (LLVM's llvm.fma.f32: vfmadd on FMA CPUs,
                     libm fmaf elsewhere), as _mm512_fmadd_ps / _mm512_fnmadd_ps per lane.
  reduce16(v, o)     _mm512_reduce_add_ps of v[o:o+16] in GCC's order: halves of 8, then 4, then
                     (t0 + t2) + (t1 + t3).
  v_expf(x)          one lane of ggml_v_expf (vec.h, AVX512F+DQ): the ARM optimized-routines
                     polynomial with fmadd/fnmadd and _mm512_scalef_ps, |n| > 192 -> 0 or inf.
  v_silu(x)          one lane of ggml_v_silu: x / (1 + v_expf(0 - x)).
  silu_scalar(x)     ggml_silu_f32 (the leftovers of a row): x / (1 + expf(-x)).

and a minimal <16 x float> vector type (one __m512) for the hot loops: vload (16 floats at an
element offset of a C-contiguous float32 array), vzero, vfma (per-lane fma), vadd, vsum (GCC's
_mm512_reduce_add_ps tree, like reduce16).

Numba compiles float32 math functions (np.exp, math.cos, ** on float32, ...) to the same glibc
calls (expf, cosf, powf) that llama.cpp makes, so those agree bit for bit too. The kernels that use
these helpers must be compiled without fastmath (no reassociation, no contraction).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, models, register_model

F32 = np.float32

# ggml_v_expf constants (vec.h)
_EXP_R = F32(12582912.0)                     # 0x1.8p23f
_EXP_LOG2E = F32(float.fromhex("0x1.715476p+0"))
_EXP_LN2_HI = F32(float.fromhex("0x1.62e4p-1"))
_EXP_LN2_LO = F32(float.fromhex("0x1.7f7d1cp-20"))
_EXP_C5 = F32(float.fromhex("0x1.0e4020p-7"))
_EXP_C4 = F32(float.fromhex("0x1.573e2ep-5"))
_EXP_C3 = F32(float.fromhex("0x1.555e66p-3"))
_EXP_C2 = F32(float.fromhex("0x1.fffdb6p-2"))
_EXP_C1 = F32(float.fromhex("0x1.ffffecp-1"))

# 2^k for k in [-192, 192] (float64, exact): _mm512_scalef_ps(j, n) = round_f32(j * 2^n)
_POW2 = np.array([math.ldexp(1.0, k) for k in range(-192, 193)], dtype=np.float64)


@intrinsic
def fma32(typingctx, a, b, c):
    """float32 a*b + c with a single rounding."""
    for t in (a, b, c):
        if not isinstance(t, types.Float):
            raise TypingError("fma32 takes float arguments")
    sig = types.float32(a, b, c)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        vals = [context.cast(builder, v, ty, types.float32) for v, ty in zip(args, signature.args)]
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fn, vals)
    return sig, codegen


@njit(cache=True, inline="always")
def reduce16(v, o):
    """_mm512_reduce_add_ps(v[o:o+16]) as GCC 12 emits it."""
    t0 = v[o + 0] + v[o + 8]
    t1 = v[o + 1] + v[o + 9]
    t2 = v[o + 2] + v[o + 10]
    t3 = v[o + 3] + v[o + 11]
    t4 = v[o + 4] + v[o + 12]
    t5 = v[o + 5] + v[o + 13]
    t6 = v[o + 6] + v[o + 14]
    t7 = v[o + 7] + v[o + 15]
    u0 = t0 + t4
    u1 = t1 + t5
    u2 = t2 + t6
    u3 = t3 + t7
    return (u0 + u2) + (u1 + u3)


@njit(cache=True, inline="always")
def v_expf(x):
    """One lane of ggml_v_expf (AVX512 version)."""
    z = fma32(x, _EXP_LOG2E, _EXP_R)
    n = z - _EXP_R
    b = fma32(-n, _EXP_LN2_LO, fma32(-n, _EXP_LN2_HI, x))
    if abs(n) > F32(192.0):          # ordered compare: false for NaN
        return F32(0.0) if n <= F32(0.0) else F32(np.inf)
    u = b * b
    j = fma32(fma32(fma32(_EXP_C5, b, _EXP_C4), u, fma32(_EXP_C3, b, _EXP_C2)), u,
              fma32(_EXP_C1, b, F32(1.0)))
    if n != n:                       # NaN in, NaN out (scalef propagates it)
        return n
    return F32(np.float64(j) * _POW2[int(n) + 192])


@njit(cache=True, inline="always")
def v_silu(x):
    """One lane of ggml_v_silu: x / (1 + v_expf(0 - x))."""
    return x / (F32(1.0) + v_expf(F32(0.0) - x))


@njit(cache=True, inline="always")
def silu_scalar(x):
    """ggml_silu_f32: x / (1 + expf(-x)) with glibc's expf."""
    return x / (F32(1.0) + np.exp(-x))


# ---- <16 x float> ---------------------------------------------------------------------------------

_LL_F32 = ir.FloatType()
_LL_V16 = ir.VectorType(_LL_F32, 16)
_LL_I32 = ir.IntType(32)


class _F32x16Type(types.Type):
    def __init__(self):
        super().__init__(name="ggml_math.F32x16")


F32x16 = _F32x16Type()


@register_model(_F32x16Type)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _LL_V16)


def _shuffle(builder, a, b, idx):
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_LL_I32, len(idx)), list(idx)))


@intrinsic
def vload(typingctx, arr, off):
    """16 floats of C-contiguous float32 `arr` from flat element offset `off` (no bounds check)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32 and isinstance(off, types.Integer)):
        raise TypingError("vload(float32 array, int offset)")

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        o = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.bitcast(builder.gep(data, [o]), _LL_V16.as_pointer())
        return builder.load(ptr, align=4)
    return F32x16(arr, off), codegen


@intrinsic
def vzero(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_LL_V16, [ir.Constant(_LL_F32, 0.0)] * 16)
    return F32x16(), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """lane-wise a*b + c, one rounding (_mm512_fmadd_ps(a, b, c))."""
    if not (a == F32x16 and b == F32x16 and c == F32x16):
        raise TypingError("vfma takes F32x16 arguments")

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_LL_V16, [_LL_V16] * 3),
                                            "llvm.fma.v16f32")
        return builder.call(fn, args)
    return F32x16(a, b, c), codegen


@intrinsic
def vadd(typingctx, a, b):
    if not (a == F32x16 and b == F32x16):
        raise TypingError("vadd takes F32x16 arguments")

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return F32x16(a, b), codegen


@intrinsic
def vsum(typingctx, v):
    """_mm512_reduce_add_ps(v) in GCC 12's order (see reduce16)."""
    if v != F32x16:
        raise TypingError("vsum takes an F32x16")

    def codegen(context, builder, sig, args):
        x = args[0]
        t3 = builder.fadd(_shuffle(builder, x, x, range(8, 16)), _shuffle(builder, x, x, range(8)))
        t6 = builder.fadd(_shuffle(builder, t3, t3, range(4, 8)), _shuffle(builder, t3, t3, range(4)))
        t8 = builder.fadd(t6, _shuffle(builder, t6, t6, [2, 3, 0, 1]))
        return builder.fadd(builder.extract_element(t8, ir.Constant(_LL_I32, 0)),
                            builder.extract_element(t8, ir.Constant(_LL_I32, 1)))
    return types.float32(v), codegen
