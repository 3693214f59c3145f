"""Byte vectors (V16 / V32 / V64): loads, bit operations, nibble and code-table unpacking, and the
int8 dot product that turns them into I32x16 lanes.

`dot(u, s)` follows VNNI `vpdpbusd` exactly: lane i = sum of u[4i+k] * s[4i+k] (k = 0..3), u unsigned
and s signed bytes. On CPUs with AVX512-VNNI it calls that instruction (LLVM's generic patterns only
reach it for full reductions to a scalar, which costs a horizontal sum per block); elsewhere a
generic IR version with the same lane layout is emitted. Kernels rely only on that lane layout: a
64-byte vector holds 2 blocks of 32 (lanes 0-7 / 8-15) or 4 groups of 16 (4 lanes each).
"""
from llvmlite import ir
from numba import types

from ggraph.runtime.kernels.ggml_common import KVALUES_IQ4NL
from ggraph.runtime.kernels.simd.core import (
    ARR, BYTES, HAS_VNNI512, addr, I8, I32, I64, I32x16, INT, V16, V32, V64, binop, call, cint, const, load, load_at,
    scalar_binop, shuf, splat, to_i8, vec_intrinsic, vt, same,
)

load16 = load(V16, V16.llty)
load32 = load(V32, V32.llty)
load64 = load(V64, V64.llty)
bcast32 = load(V64, V32.llty, lambda b, v: shuf(b, v, v, list(range(32)) * 2),
               "The 32 bytes at byte `off`, twice (one activation block for both halves of a vector).")
bcast4 = load(V64, I32, lambda b, v: b.bitcast(splat(b, v, I32x16.llty), V64.llty),
              "The 4 bytes at byte `off` in every 32-bit lane (vpbroadcastd: one activation 4-group).")
bones = const(V64, 1)   # dot(bones(), a) = the 4-sums of a's bytes per lane


@vec_intrinsic(types.void, ARR, INT, V64)
def bstore(context, builder, sig, args):
    """Store 64 bytes at byte `off` of arr."""
    p = addr(context, builder, sig, args, 0)
    builder.store(args[2], builder.bitcast(p, V64.llty.as_pointer()), align=1)
    return context.get_dummy_value()


band = scalar_binop(BYTES, "and_", to_i8)   # v & k
bshr = scalar_binop(BYTES, "lshr", to_i8)   # v >> k (logical, per byte)
bshl = scalar_binop(BYTES, "shl", to_i8)    # v << k (per byte)
bxor = scalar_binop(BYTES, "xor", to_i8)    # v ^ k
bor = binop(BYTES, "or_")


@vec_intrinsic(lambda a, b: {V16: V32, V32: V64}.get(a) if a == b else None, BYTES, BYTES)
def cat(context, builder, sig, args):
    """Concatenate two byte vectors of equal width (16+16 -> 32, 32+32 -> 64)."""
    return shuf(builder, args[0], args[1], range(2 * sig.args[0].llty.count))


@vec_intrinsic(lambda v, *k: v, BYTES, INT, INT, INT)
def bitsel(context, builder, sig, args):
    """Per byte: (v & mask) != 0 ? if_set : if_clear (the 5th/3rd-bit planes of Q5/Q3 formats)."""
    vty = sig.args[0].llty
    m, a, b = (splat(builder, to_i8(context, builder, args[i], sig.args[i]), vty) for i in (1, 2, 3))
    t = builder.icmp_unsigned("!=", builder.and_(args[0], m), ir.Constant(vty, None))
    return builder.select(t, a, b)


def _nibbles(src, out, order):
    @vec_intrinsic(out, src)
    def f(context, builder, sig, args):
        lo = builder.and_(args[0], cint(src.llty, 15))
        hi = builder.lshr(args[0], cint(src.llty, 4))
        return shuf(builder, lo, hi, range(2 * src.llty.count))
    f.__doc__ = f"{src.llty.count} bytes of nibbles -> [low nibbles, high nibbles] ({order})."
    return f


nib32 = _nibbles(V16, V32, "legacy 32-block element order")
nib64 = _nibbles(V32, V64, "K-quant chunk order")


@vec_intrinsic(V64, ARR, INT, INT)
def nib2(context, builder, sig, args):
    """The 16 nibble bytes at byte o0 and at o1 -> 64 codes [lo(o0), hi(o0), lo(o1), hi(o1)] (two rows
    of 32-blocks, each in element order)."""
    a = load_at(context, builder, sig, args, 0, V16.llty)
    b = load_at(context, builder, sig, args, 0, V16.llty, 2)
    ab = shuf(builder, a, b, range(32))
    v = shuf(builder, ab, ab, list(range(16)) * 2 + list(range(16, 32)) * 2)
    lo = builder.and_(v, cint(V64.llty, 15))
    hi = builder.lshr(v, cint(V64.llty, 4))
    sel = ir.Constant(vt(ir.IntType(1), 64), [(i // 16) % 2 == 1 for i in range(64)])
    return builder.select(sel, hi, lo)


@vec_intrinsic(V64, ARR, INT, INT)
def hbits2(context, builder, sig, args):
    """The u32 at byte o0 and at o1 -> 64 bytes, byte i = 16 where bit i of the 64 bits is set
    (the 5th bit of two rows' Q5 codes)."""
    a = load_at(context, builder, sig, args, 0, I32)
    b = load_at(context, builder, sig, args, 0, I32, 2)
    ab = builder.or_(builder.zext(a, I64), builder.shl(builder.zext(b, I64), ir.Constant(I64, 32)))
    m = builder.bitcast(ab, vt(ir.IntType(1), 64))   # built in a GPR: kmovq, no trip through memory
    return builder.select(m, cint(V64.llty, 16), ir.Constant(V64.llty, None))


@vec_intrinsic(same, (V32, V64))
def lut_iq4(context, builder, sig, args):
    """Per byte (values 0..15): kvalues_iq4nl[v] + 128 (unsigned, for the u8 x s8 dot; the +128 is
    undone with the activation sums). One vpshufb with a per-128-bit-lane table on AVX512BW (LLVM does
    not reliably form it from generic IR); generic per-lane lookup elsewhere."""
    vty = sig.args[0].llty
    n = vty.count
    table = [x + 128 for x in KVALUES_IQ4NL]
    if HAS_VNNI512:
        name = "llvm.x86.avx512.pshuf.b.512" if n == 64 else "llvm.x86.avx2.pshuf.b"
        return call(builder, name, vty, [ir.Constant(vty, table * (n // 16)), args[0]])
    tv = ir.Constant(vt(I8, 16), table)
    out = ir.Constant(vty, ir.Undefined)
    for i in range(n):
        idx = builder.extract_element(args[0], ir.Constant(I32, i))
        out = builder.insert_element(out, builder.extract_element(tv, idx), ir.Constant(I32, i))
    return out


# ---- int8 dot products ------------------------------------------------------------------------------

def _dot_ir(builder, acc, u, s):
    """acc + vpdpbusd(u, s): lane i += sum_k u[4i+k] * s[4i+k] (u unsigned, s signed)."""
    if HAS_VNNI512:
        return call(builder, "llvm.x86.avx512.vpdpbusd.512", I32x16.llty,
                    [acc, builder.bitcast(u, I32x16.llty), builder.bitcast(s, I32x16.llty)])
    prod = builder.mul(builder.zext(u, vt(I32, 64)), builder.sext(s, vt(I32, 64)))
    for k in range(4):
        acc = builder.add(acc, shuf(builder, prod, prod, range(k, 64, 4)))
    return acc


@vec_intrinsic(I32x16, V64, V64)
def dot(context, builder, sig, args):
    """64 unsigned x 64 signed bytes -> I32x16 (lane i = products 4i..4i+3)."""
    return _dot_ir(builder, ir.Constant(I32x16.llty, None), args[0], args[1])


@vec_intrinsic(I32x16, I32x16, V64, V64)
def dot_acc(context, builder, sig, args):
    """acc + dot(u, s)."""
    return _dot_ir(builder, args[0], args[1], args[2])
