"""The vector types of the SIMD layer, the IR helpers and the intrinsic factories (the role of
ggml-cpu's simd-mappings.h: one name per vector operation, whatever instruction implements it).

  V16 / V32 / V64   <16|32|64 x i8>  raw bytes (weights or int8 activations)
  I32x16            <16 x i32>       integer dot-product lanes
  F32x16 / F32x4    <16|4 x float>   float accumulators (one __m512) / the scales of a block pair

Operations are `numba.extending.intrinsic`s emitting LLVM vector IR, so kernels hold real vector
values in registers across loop iterations (plain Numba loops over quantized blocks compile to
scalar / gather code). `vec_intrinsic` types an operation from its argument kinds; `binop`, `load`,
`splat`, ... build the one-instruction ones. All loads take an array and a BYTE offset (unaligned
loads are fine on x86); callers guarantee bounds.

Numba's on-disk cache (cache=True) only tracks the file defining each jitted kernel: after editing
the SIMD layer, delete runtime/kernels/__pycache__ or kernels may keep the old code.
"""
import inspect
import os

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

I8, I16, I32, I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
FLOAT = ir.FloatType()
HALF = ir.HalfType()


def vt(el, n):
    return ir.VectorType(el, n)


class _Vec(types.Type):
    def __init__(self, name, llty):
        self.llty = llty
        super().__init__(name=name)


V16 = _Vec("V16u8", vt(I8, 16))
V32 = _Vec("V32u8", vt(I8, 32))
V64 = _Vec("V64u8", vt(I8, 64))
I32x16 = _Vec("I32x16", vt(I32, 16))
F32x16 = _Vec("F32x16", vt(FLOAT, 16))
F32x4 = _Vec("F32x4", vt(FLOAT, 4))
BYTES = (V16, V32, V64)


@register_model(_Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, fe_type.llty)


# GGRAPH_SIMD_GENERIC=1 forces the generic IR paths (to test them on a VNNI machine; use a separate
# NUMBA_CACHE_DIR, the cache does not know about this switch).
_FEATURES = llvm.get_host_cpu_features()
_GENERIC = bool(os.environ.get("GGRAPH_SIMD_GENERIC"))
HAS_VNNI512 = bool(_FEATURES.get("avx512vnni", False)) and bool(_FEATURES.get("avx512bw", False)) and not _GENERIC
HAS_BF16_512 = bool(_FEATURES.get("avx512bf16", False)) and not _GENERIC


# ---- argument kinds and the typing decorator --------------------------------------------------------

ARR, INT, FLT, LIT = "array", "integer", "float", "integer literal"
_KIND = {ARR: types.Array, INT: types.Integer, FLT: types.Float, LIT: types.IntegerLiteral}


def _accepts(param, t):
    if isinstance(param, str):
        return isinstance(t, _KIND[param])
    if isinstance(param, tuple):
        return t in param
    return t == param


def vec_intrinsic(ret, *params, prefer_literal=False):
    """Decorator: `body(context, builder, sig, args) -> IR value` becomes an intrinsic typed
    ret(*args) when each argument matches its param (a vector type, a tuple of them, or ARR / INT /
    FLT / LIT); ret may also be a function of the argument types (None: not typed)."""
    def wrap(body):
        def typer(typingctx, *args):
            if len(args) != len(params) or not all(map(_accepts, params, args)):
                return None
            r = ret if isinstance(ret, types.Type) else ret(*args)
            return None if r is None else (r(*args), body)
        P = inspect.Parameter
        typer.__signature__ = inspect.Signature(   # numba folds call arguments by this signature
            [P(n, P.POSITIONAL_OR_KEYWORD) for n in ["typingctx"] + [f"a{i}" for i in range(len(params))]])
        typer.__name__, typer.__qualname__, typer.__doc__ = body.__name__, body.__qualname__, body.__doc__
        return intrinsic(prefer_literal=prefer_literal)(typer)
    return wrap


def same(t, *rest):
    return t if all(r == t for r in rest) else None


# ---- IR building blocks -----------------------------------------------------------------------------

def addr(context, builder, sig, args, i, j=None):
    """i8* to byte args[j] (default: the next argument) of array args[i]."""
    j = i + 1 if j is None else j
    arr = context.make_array(sig.args[i])(context, builder, args[i])
    base = builder.bitcast(arr.data, I8.as_pointer())
    return builder.gep(base, [context.cast(builder, args[j], sig.args[j], types.intp)])


def load_at(context, builder, sig, args, i, llty, j=None):
    """The llty value at byte args[j] (default: the next argument) of array args[i]."""
    return builder.load(builder.bitcast(addr(context, builder, sig, args, i, j), llty.as_pointer()), align=1)


def splat(builder, val, vty):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), val, ir.Constant(I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(vt(I32, vty.count), [0] * vty.count))


def cint(vty, value):
    return ir.Constant(vty, [ir.Constant(vty.element, value)] * vty.count)


def shuf(builder, a, b, idx):
    return builder.shuffle_vector(a, b, ir.Constant(vt(I32, len(idx)), list(idx)))


def to_int(context, builder, val, ty, llty):
    """An integer argument as llty (through int64)."""
    return builder.trunc(context.cast(builder, val, ty, types.int64), llty)


def to_i8(context, builder, val, ty):
    return to_int(context, builder, val, ty, I8)


def to_i32(context, builder, val, ty):
    return to_int(context, builder, val, ty, I32)


def to_f32(context, builder, val, ty):
    return context.cast(builder, val, ty, types.float32)


def hsum_tree(builder, v, add):
    """Pairwise tree over halves (fixed order): for exact integer sums and max."""
    n = v.type.count
    while n > 1:
        n //= 2
        v = add(shuf(builder, v, v, range(n)), shuf(builder, v, v, range(n, 2 * n)))
    return builder.extract_element(v, ir.Constant(I32, 0))


def call(builder, name, ret, args):
    """A call to the LLVM intrinsic `name` (its argument types are those of args)."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, [a.type for a in args]), name)
    return builder.call(fn, args)


def pack(context, builder, sig, args, el, conv, idx):
    """The scalar arguments (converted by conv) in lanes 0.., then shuffled by idx."""
    v = ir.Constant(vt(el, len(args)), ir.Undefined)
    for i in range(len(args)):
        v = builder.insert_element(v, conv(context, builder, args[i], sig.args[i]), ir.Constant(I32, i))
    return shuf(builder, v, v, idx)


# ---- factories of one-operation intrinsics -----------------------------------------------------------

def binop(vec, op):
    """(a, b) -> builder.op(a, b), lane-wise, for a vector type (or a tuple of them)."""
    @vec_intrinsic(same, vec, vec)
    def f(context, builder, sig, args):
        return getattr(builder, op)(args[0], args[1])
    return f


def scalar_binop(vec, op, conv):
    """(v, k) -> builder.op(v, splat(conv(k))): a vector with an integer scalar."""
    @vec_intrinsic(lambda v, k: v, vec, INT)
    def f(context, builder, sig, args):
        k = conv(context, builder, args[1], sig.args[1])
        return getattr(builder, op)(args[0], splat(builder, k, sig.args[0].llty))
    return f


def load(ret, llty, post=None, doc=None):
    """(arr, off) -> post(the llty value at byte off), typed ret."""
    @vec_intrinsic(ret, ARR, INT)
    def f(context, builder, sig, args):
        v = load_at(context, builder, sig, args, 0, llty)
        return v if post is None else post(builder, v)
    f.__doc__ = doc
    return f


def const(vec, value):
    """() -> every lane = value (None: zeroinitializer)."""
    @vec_intrinsic(vec)
    def f(context, builder, sig, args):
        return ir.Constant(vec.llty, None) if value is None else cint(vec.llty, value)
    return f


def splat_scalar(vec, kind, conv):
    """(x) -> conv(x) in every lane."""
    @vec_intrinsic(vec, kind)
    def f(context, builder, sig, args):
        return splat(builder, conv(context, builder, args[0], sig.args[0]), vec.llty)
    return f


def extract(vec, ret):
    """(v, i) -> lane i of v."""
    @vec_intrinsic(ret, vec, INT)
    def f(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return f


def fma(vec, name):
    """(a, b, c) -> a * b + c with one rounding, lane-wise (LLVM intrinsic `name`)."""
    @vec_intrinsic(vec, vec, vec, vec)
    def f(context, builder, sig, args):
        return call(builder, name, vec.llty, list(args))
    return f
