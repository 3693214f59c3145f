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

Vector code uses the SIMD layer (simd/f32.py: fload, ffma, fhsum_gcc = reduce16's tree, ...).

Numba compiles float32 math functions (np.exp, math.cos, ** on float32, ...) to the same glibc
calls (expf, cosf, powf) that llama.cpp makes, so those agree bit for bit too. The kernels that use
these helpers must be compiled without fastmath (no reassociation, no contraction).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .simd.f32 import EXPF_CONSTANTS

F32 = np.float32

# ggml_v_expf constants (vec.h): the one table, shared with the 16-lane simd.f32.fexp
_EXP_R, _EXP_LOG2E, _EXP_LN2_HI, _EXP_LN2_LO, _EXP_C5, _EXP_C4, _EXP_C3, _EXP_C2, _EXP_C1 = (
    F32(float.fromhex(EXPF_CONSTANTS[k])) for k in ("r", "log2e", "ln2_hi", "ln2_lo", "c5", "c4", "c3", "c2", "c1"))

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
