"""Small SIMD helpers for Numba kernels, written as `numba.extending.intrinsic`s that emit LLVM vector IR.

Plain Numba loops over quantized blocks compile to scalar/gather code (2-5 GB/s). These helpers give
kernels real vector values that live in registers across loop iterations:

  V16 / V32 / V64   <16|32|64 x i8>  raw bytes (weights or int8 activations)
  I32x16            <16 x i32>       integer dot-product lanes
  F32x16 / F32x4    <16|4 x float>   float accumulators / the scales of a block pair

The int8 dot `dot(u, s)` follows VNNI `vpdpbusd` semantics exactly: lane i = sum of u[4i+k]*s[4i+k]
(k=0..3) with u unsigned and s signed bytes. On CPUs with AVX512-VNNI it calls that instruction (LLVM's
generic patterns only reach it for full reductions to a scalar, which costs a horizontal sum per block);
elsewhere a generic IR version with the same lane layout is emitted. Every kernel relies only on that
lane layout: a 64-byte vector holds 2 blocks of 32 (lanes 0-7 / 8-15) or 4 groups of 16 (4 lanes each).

All loads take an array and a BYTE offset (unaligned loads are fine on x86); callers guarantee bounds.

Numba's on-disk cache (cache=True) only tracks the file defining each jitted kernel: after editing this
file, delete runtime/kernels/__pycache__/*.nbi/*.nbc or kernels may keep the old code.
"""
import os

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_I8, _I16, _I32, _I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
_F32 = ir.FloatType()


def _vt(el, n):
    return ir.VectorType(el, n)


class _Vec(types.Type):
    def __init__(self, name, llty):
        self.llty = llty
        super().__init__(name=name)


V16 = _Vec("V16u8", _vt(_I8, 16))
V32 = _Vec("V32u8", _vt(_I8, 32))
V64 = _Vec("V64u8", _vt(_I8, 64))
I32x16 = _Vec("I32x16", _vt(_I32, 16))
F32x16 = _Vec("F32x16", _vt(_F32, 16))
F32x4 = _Vec("F32x4", _vt(_F32, 4))


@register_model(_Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, fe_type.llty)


def _has_vnni512():
    feats = llvm.get_host_cpu_features()
    return bool(feats.get("avx512vnni", False)) and bool(feats.get("avx512bw", False))


# GGRAPH_SIMD_GENERIC=1 forces the generic IR paths (to test them on a VNNI machine; use a separate
# NUMBA_CACHE_DIR, the cache does not know about this switch).
HAS_VNNI512 = _has_vnni512() and not os.environ.get("GGRAPH_SIMD_GENERIC")


# ---- IR building blocks ---------------------------------------------------------------------------

def _addr(context, builder, aty, aval, off, offty):
    """i8* to byte `off` of array `aval`."""
    arr = context.make_array(aty)(context, builder, aval)
    base = builder.bitcast(arr.data, _I8.as_pointer())
    return builder.gep(base, [context.cast(builder, off, offty, types.intp)])


def _load(builder, ptr, llty):
    return builder.load(builder.bitcast(ptr, llty.as_pointer()), align=1)


def _splat(builder, val, vty):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), val, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(_vt(_I32, vty.count), [0] * vty.count))


def _cint(vty, value):
    return ir.Constant(vty, [ir.Constant(vty.element, value)] * vty.count)


def _shuf(builder, a, b, idx):
    return builder.shuffle_vector(a, b, ir.Constant(_vt(_I32, len(idx)), list(idx)))


def _to_i8(context, builder, val, ty):
    return builder.trunc(context.cast(builder, val, ty, types.int64), _I8)


def _hsum_tree(builder, v, add):
    n = v.type.count
    while n > 1:
        n //= 2
        lo = _shuf(builder, v, v, range(n))
        hi = _shuf(builder, v, v, range(n, 2 * n))
        v = add(lo, hi)
    return builder.extract_element(v, ir.Constant(_I32, 0))


def _is_arr(t):
    return isinstance(t, types.Array)


# ---- byte vectors ---------------------------------------------------------------------------------

def _make_load(vec):
    @intrinsic
    def load(typingctx, arr, off):
        if not (_is_arr(arr) and isinstance(off, types.Integer)):
            return None

        def cg(context, builder, sig, args):
            p = _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
            return _load(builder, p, vec.llty)
        return vec(arr, off), cg
    return load


load16 = _make_load(V16)
load32 = _make_load(V32)
load64 = _make_load(V64)


@intrinsic
def cat(typingctx, a, b):
    """Concatenate two byte vectors of equal width (16+16 -> 32, 32+32 -> 64)."""
    out = {V16: V32, V32: V64}.get(a)
    if out is None or a != b:
        return None

    def cg(context, builder, sig, args):
        return _shuf(builder, args[0], args[1], range(2 * sig.args[0].llty.count))
    return out(a, b), cg


def _make_binop_scalar(op):
    @intrinsic
    def f(typingctx, v, k):
        if not (isinstance(v, _Vec) and v in (V16, V32, V64) and isinstance(k, types.Integer)):
            return None

        def cg(context, builder, sig, args):
            kv = _splat(builder, _to_i8(context, builder, args[1], sig.args[1]), sig.args[0].llty)
            return getattr(builder, op)(args[0], kv)
        return v(v, k), cg
    return f


band = _make_binop_scalar("and_")   # v & k
bshr = _make_binop_scalar("lshr")   # v >> k (logical, per byte)
bshl = _make_binop_scalar("shl")    # v << k (per byte)
bxor = _make_binop_scalar("xor")    # v ^ k


@intrinsic
def bor(typingctx, a, b):
    if not (a in (V16, V32, V64) and a == b):
        return None

    def cg(context, builder, sig, args):
        return builder.or_(args[0], args[1])
    return a(a, b), cg


@intrinsic
def bitsel(typingctx, v, mask, if_set, if_clear):
    """Per byte: (v & mask) != 0 ? if_set : if_clear (the 5th/3rd-bit planes of Q5/Q3 formats)."""
    if v not in (V16, V32, V64):
        return None

    def cg(context, builder, sig, args):
        vty = sig.args[0].llty
        m = _splat(builder, _to_i8(context, builder, args[1], sig.args[1]), vty)
        a = _splat(builder, _to_i8(context, builder, args[2], sig.args[2]), vty)
        b = _splat(builder, _to_i8(context, builder, args[3], sig.args[3]), vty)
        t = builder.icmp_unsigned("!=", builder.and_(args[0], m), ir.Constant(vty, None))
        return builder.select(t, a, b)
    return v(v, mask, if_set, if_clear), cg


@intrinsic
def bits32(typingctx, bits):
    """u32 -> 32 bytes, byte i = bit i (0 or 1): the qh plane of Q5_0/Q5_1."""
    if not isinstance(bits, types.Integer):
        return None

    def cg(context, builder, sig, args):
        b32 = builder.trunc(context.cast(builder, args[0], sig.args[0], types.uint64), _I32)
        mask = builder.bitcast(b32, _vt(ir.IntType(1), 32))
        return builder.zext(mask, _vt(_I8, 32))
    return V32(bits), cg


@intrinsic
def nib32(typingctx, v):
    """16 bytes of nibbles -> 32 values: [low nibbles, high nibbles] (legacy 32-block element order)."""
    if v != V16:
        return None

    def cg(context, builder, sig, args):
        lo = builder.and_(args[0], _cint(V16.llty, 15))
        hi = builder.lshr(args[0], _cint(V16.llty, 4))
        return _shuf(builder, lo, hi, range(32))
    return V32(v), cg


@intrinsic
def nib64(typingctx, v):
    """32 bytes of nibbles -> 64 values: [32 low nibbles, 32 high nibbles] (K-quant chunk order)."""
    if v != V32:
        return None

    def cg(context, builder, sig, args):
        lo = builder.and_(args[0], _cint(V32.llty, 15))
        hi = builder.lshr(args[0], _cint(V32.llty, 4))
        return _shuf(builder, lo, hi, range(64))
    return V64(v), cg


# ggml's kvalues_iq4nl plus 128, as unsigned bytes for the VNNI u8 x s8 dot (the +128 is undone with
# the activation sums).
IQ4NL_VALUES = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)


@intrinsic
def lut_iq4(typingctx, v):
    """Per byte (values 0..15): kvalues_iq4nl[v] + 128. One vpshufb with a per-128-bit-lane table on
    AVX512BW (LLVM does not reliably form it from generic IR); generic per-lane lookup elsewhere."""
    if v not in (V32, V64):
        return None

    def cg(context, builder, sig, args):
        vty = sig.args[0].llty
        n = vty.count
        table = [x + 128 for x in IQ4NL_VALUES]
        if HAS_VNNI512:
            name = "llvm.x86.avx512.pshuf.b.512" if n == 64 else "llvm.x86.avx2.pshuf.b"
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty]), name)
            return builder.call(fn, [ir.Constant(vty, table * (n // 16)), args[0]])
        tv = ir.Constant(_vt(_I8, 16), table)
        out = ir.Constant(vty, ir.Undefined)
        for i in range(n):
            idx = builder.extract_element(args[0], ir.Constant(_I32, i))
            out = builder.insert_element(out, builder.extract_element(tv, idx), ir.Constant(_I32, i))
        return out
    return v(v), cg


# ---- pairs of 32-blocks: one load, codes in dot order, the 4 fp16 scales as F32x4 -------------------

def make_load_parts(parts):
    """Intrinsic (arr, off) -> V64: the byte ranges [(start, size)] (size 16 or 32) at off, concatenated
    and zero-padded. Plain loads only: masked loads are slow on data streaming in from RAM."""
    total = sum(n for _, n in parts)
    assert total <= 64 and all(n in (16, 32) for _, n in parts)

    @intrinsic
    def loadp(typingctx, arr, off):
        if not (_is_arr(arr) and isinstance(off, types.Integer)):
            return None

        def cg(context, builder, sig, args):
            base = _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
            v = ir.Constant(V64.llty, None)
            pos = 0
            for start, n in parts:
                part = _load(builder, builder.gep(base, [ir.Constant(_I64, start)]), _vt(_I8, n))
                wide = _shuf(builder, part, ir.Constant(part.type, None), list(range(n)) + [n] * (64 - n))
                v = _shuf(builder, v, wide, [64 + i - pos if pos <= i < pos + n else i for i in range(64)])
                pos += n
            return v
        return V64(arr, off), cg
    return loadp


def make_nibbles(src, high):
    """Intrinsic V64 -> V64: byte i = nibble of byte src[i] (high nibble where high[i]), one vpermb
    plus masks; kernels use it to pull the 4-bit codes of 2 blocks out of one load in dot order."""
    @intrinsic
    def nibs(typingctx, v):
        if v != V64:
            return None

        def cg(context, builder, sig, args):
            p = _shuf(builder, args[0], args[0], src)
            lo = builder.and_(p, _cint(V64.llty, 15))
            hi = builder.lshr(p, _cint(V64.llty, 4))
            sel = ir.Constant(_vt(ir.IntType(1), 64), [bool(h) for h in high])
            return builder.select(sel, hi, lo)
        return V64(v), cg
    return nibs


def make_bits64(byte_idx, value):
    """Intrinsic V64 -> V64: the 64 bits of the 8 bytes at byte_idx, one per byte, as value or 0
    (Q5 formats: the 5th bit of each code of 2 blocks, bit i = element i)."""
    @intrinsic
    def bits(typingctx, v):
        if v != V64:
            return None

        def cg(context, builder, sig, args):
            b = builder.bitcast(_shuf(builder, args[0], args[0], byte_idx), _vt(ir.IntType(1), 64))
            return builder.select(b, _cint(V64.llty, value), ir.Constant(V64.llty, None))
        return V64(v), cg
    return bits


def make_halves4(byte_offsets):
    """Intrinsic V64 -> F32x4: the 4 fp16 values starting at the given byte offsets of the vector."""
    @intrinsic
    def halves(typingctx, v):
        if v != V64:
            return None

        def cg(context, builder, sig, args):
            idx = [o + k for o in byte_offsets for k in (0, 1)]
            b = _shuf(builder, args[0], args[0], idx)
            return builder.fpext(builder.bitcast(b, _vt(ir.HalfType(), 4)), F32x4.llty)
        return F32x4(v), cg
    return halves


@intrinsic
def fload4(typingctx, arr, off):
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        return _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), F32x4.llty)
    return F32x4(arr, off), cg


@intrinsic
def fsplat4(typingctx, a):
    if not isinstance(a, types.Float):
        return None

    def cg(context, builder, sig, args):
        return _splat(builder, context.cast(builder, args[0], sig.args[0], types.float32), F32x4.llty)
    return F32x4(a), cg


@intrinsic
def fzero4(typingctx):
    def cg(context, builder, sig, args):
        return ir.Constant(F32x4.llty, None)
    return F32x4(), cg


@intrinsic
def fpair4(typingctx, a, b):
    """(a, b) -> F32x4 [a, a, b, b] (per-block scales of a pair, in the lanes lanes02 reads)."""
    if not (isinstance(a, types.Float) and isinstance(b, types.Float)):
        return None

    def cg(context, builder, sig, args):
        v = ir.Constant(_vt(_F32, 2), ir.Undefined)
        for i in range(2):
            v = builder.insert_element(v, context.cast(builder, args[i], sig.args[i], types.float32), ir.Constant(_I32, i))
        return _shuf(builder, v, v, [0, 0, 1, 1])
    return F32x4(a, b), cg


@intrinsic
def fmul4(typingctx, a, b):
    if not (a == F32x4 and b == F32x4):
        return None

    def cg(context, builder, sig, args):
        return builder.fmul(args[0], args[1])
    return F32x4(a, b), cg


@intrinsic
def fadd4(typingctx, a, b):
    if not (a == F32x4 and b == F32x4):
        return None

    def cg(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return F32x4(a, b), cg


@intrinsic
def lanes02(typingctx, a):
    """F32x4 [a0, a1, a2, a3] -> F32x16 [a0]*8 + [a2]*8 (per-block scales of a 2-block vector)."""
    if a != F32x4:
        return None

    def cg(context, builder, sig, args):
        return _shuf(builder, args[0], args[0], [0] * 8 + [2] * 8)
    return F32x16(a), cg


@intrinsic
def corr13(typingctx, a, k):
    """F32x4 [d1, n1, d2, n2] (n exact integers) -> I32x16 [k*n1]*8 + [k*n2]*8: per-block integer
    corrections of a 2-block dot, taken from the interleaved (d, sum) activation side array."""
    if not (a == F32x4 and isinstance(k, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        n = builder.fptosi(args[0], _vt(_I32, 4))
        kk = builder.trunc(context.cast(builder, args[1], sig.args[1], types.int64), _I32)
        n = builder.mul(n, _splat(builder, kk, _vt(_I32, 4)))
        return _shuf(builder, n, n, [1] * 8 + [3] * 8)
    return I32x16(a, k), cg


@intrinsic
def lane(typingctx, a, i):
    if not (a == F32x4 and isinstance(i, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return types.float32(a, i), cg


# ---- int8 dot products ----------------------------------------------------------------------------

def _dot_ir(builder, acc, u, s):
    """acc + vpdpbusd(u, s): lane i += sum_k u[4i+k] * s[4i+k] (u unsigned, s signed)."""
    if HAS_VNNI512:
        fnty = ir.FunctionType(_vt(_I32, 16), [_vt(_I32, 16)] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")
        return builder.call(fn, [acc, builder.bitcast(u, _vt(_I32, 16)), builder.bitcast(s, _vt(_I32, 16))])
    prod = builder.mul(builder.zext(u, _vt(_I32, 64)), builder.sext(s, _vt(_I32, 64)))
    for k in range(4):
        acc = builder.add(acc, _shuf(builder, prod, prod, range(k, 64, 4)))
    return acc


@intrinsic
def dot(typingctx, u, s):
    """64 unsigned x 64 signed bytes -> I32x16 (lane i = products 4i..4i+3)."""
    if not (u == V64 and s == V64):
        return None

    def cg(context, builder, sig, args):
        return _dot_ir(builder, ir.Constant(I32x16.llty, None), args[0], args[1])
    return I32x16(u, s), cg


@intrinsic
def dot_acc(typingctx, acc, u, s):
    if not (acc == I32x16 and u == V64 and s == V64):
        return None

    def cg(context, builder, sig, args):
        return _dot_ir(builder, args[0], args[1], args[2])
    return I32x16(acc, u, s), cg


# ---- int32 lanes ----------------------------------------------------------------------------------

@intrinsic
def iadd(typingctx, a, b):
    if not (a == I32x16 and b == I32x16):
        return None

    def cg(context, builder, sig, args):
        return builder.add(args[0], args[1])
    return I32x16(a, b), cg


@intrinsic
def imul(typingctx, a, b):
    if not (a == I32x16 and b == I32x16):
        return None

    def cg(context, builder, sig, args):
        return builder.mul(args[0], args[1])
    return I32x16(a, b), cg


def _isplat_ir(context, builder, sig, args):
    n = len(args)
    v = ir.Constant(_vt(_I32, n), ir.Undefined)
    for i, (a, t) in enumerate(zip(args, sig.args)):
        a32 = builder.trunc(context.cast(builder, a, t, types.int64), _I32)
        v = builder.insert_element(v, a32, ir.Constant(_I32, i))
    return _shuf(builder, v, v, [i // (16 // n) for i in range(16)])


@intrinsic
def isplat2(typingctx, a, b):
    """(a, b) -> [a]*8 + [b]*8: one integer scale per 32-block."""
    if not all(isinstance(v, types.Integer) for v in (a, b)):
        return None
    return I32x16(a, b), _isplat_ir


@intrinsic
def iload(typingctx, arr, off):
    """16 int32 at byte offset `off` of arr (precomputed per-lane activation corrections)."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        return _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), I32x16.llty)
    return I32x16(arr, off), cg


def _make_ibinop_scalar(op):
    @intrinsic
    def f(typingctx, v, k):
        if not (v == I32x16 and isinstance(k, types.Integer)):
            return None

        def cg(context, builder, sig, args):
            kk = builder.trunc(context.cast(builder, args[1], sig.args[1], types.int64), _I32)
            return getattr(builder, op)(args[0], _splat(builder, kk, I32x16.llty))
        return I32x16(v, k), cg
    return f


iand = _make_ibinop_scalar("and_")
ishl = _make_ibinop_scalar("shl")
ishr = _make_ibinop_scalar("lshr")
isar = _make_ibinop_scalar("ashr")   # arithmetic


def make_scale_decoder(a_idx, a_shift, a_mask, b_idx, b_shift, b_mask, bias):
    """Intrinsic (arr, off) -> I32x16 unpacking packed sub-block scales from the 16 bytes at off:
    lane i = ((A >> a_shift[i]) & a_mask[i] | ((B >> b_shift[i]) & b_mask[i]) << 4) - bias, with
    A = byte a_idx[i], B = byte b_idx[i] (K-quant 6-bit scales: low bits + 2 high bits elsewhere)."""
    @intrinsic
    def dec(typingctx, arr, off):
        if not (_is_arr(arr) and isinstance(off, types.Integer)):
            return None

        def cg(context, builder, sig, args):
            raw = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), V16.llty)
            t = I32x16.llty
            a = builder.zext(_shuf(builder, raw, raw, a_idx), t)
            b = builder.zext(_shuf(builder, raw, raw, b_idx), t)
            lo = builder.and_(builder.lshr(a, ir.Constant(t, list(a_shift))), ir.Constant(t, list(a_mask)))
            hi = builder.and_(builder.lshr(b, ir.Constant(t, list(b_shift))), ir.Constant(t, list(b_mask)))
            v = builder.or_(lo, builder.shl(hi, _cint(t, 4)))
            return builder.sub(v, _cint(t, bias))
        return I32x16(arr, off), cg
    return dec


@intrinsic(prefer_literal=True)
def ibcast2(typingctx, v, i, j):
    """I32x16 -> [v[i]]*8 + [v[j]]*8 (i, j literal): per-32-block integer scales from a scale vector."""
    if not (v == I32x16 and isinstance(i, types.IntegerLiteral) and isinstance(j, types.IntegerLiteral)):
        return None
    a, b = i.literal_value, j.literal_value

    def cg(context, builder, sig, args):
        return _shuf(builder, args[0], args[0], [a] * 8 + [b] * 8)
    return I32x16(v, i, j), cg


@intrinsic(prefer_literal=True)
def ibcast4(typingctx, v, k):
    """I32x16 -> lanes 4g..4g+3 = v[4k+g] (k literal): per-16-group integer scales."""
    if not (v == I32x16 and isinstance(k, types.IntegerLiteral)):
        return None
    base = 4 * k.literal_value

    def cg(context, builder, sig, args):
        return _shuf(builder, args[0], args[0], [base + i // 4 for i in range(16)])
    return I32x16(v, k), cg


def _make_iload8(signed):
    @intrinsic
    def f(typingctx, arr, off):
        if not (_is_arr(arr) and isinstance(off, types.Integer)):
            return None

        def cg(context, builder, sig, args):
            b = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), V16.llty)
            return builder.sext(b, I32x16.llty) if signed else builder.zext(b, I32x16.llty)
        return I32x16(arr, off), cg
    return f


iload_s8 = _make_iload8(True)    # 16 signed bytes -> I32x16
iload_u8 = _make_iload8(False)   # 16 unsigned bytes -> I32x16


@intrinsic
def ipairs_hi(typingctx, v):
    """I32x16 -> lanes 8+j = v[2j] + v[2j+1], lanes 0-7 = 0 (bsums of 32-element sub-blocks)."""
    if v != I32x16:
        return None

    def cg(context, builder, sig, args):
        z = ir.Constant(I32x16.llty, None)
        ev = _shuf(builder, args[0], z, [16] * 8 + list(range(0, 16, 2)))
        od = _shuf(builder, args[0], z, [16] * 8 + list(range(1, 16, 2)))
        return builder.add(ev, od)
    return I32x16(v), cg


# ---- float lanes ----------------------------------------------------------------------------------

@intrinsic
def fzero(typingctx):
    def cg(context, builder, sig, args):
        return ir.Constant(F32x16.llty, None)
    return F32x16(), cg


@intrinsic
def tofloat(typingctx, a):
    if a != I32x16:
        return None

    def cg(context, builder, sig, args):
        return builder.sitofp(args[0], F32x16.llty)
    return F32x16(a), cg


def _fma_ir(builder, a, b, c):
    fnty = ir.FunctionType(F32x16.llty, [F32x16.llty] * 3)
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.v16f32")
    return builder.call(fn, [a, b, c])


@intrinsic
def ffma(typingctx, a, b, acc):
    """a * b + acc (fused)."""
    if not (a == F32x16 and b == F32x16 and acc == F32x16):
        return None

    def cg(context, builder, sig, args):
        return _fma_ir(builder, *args)
    return F32x16(a, b, acc), cg


@intrinsic
def fmul(typingctx, a, b):
    if not (a == F32x16 and b == F32x16):
        return None

    def cg(context, builder, sig, args):
        return builder.fmul(args[0], args[1])
    return F32x16(a, b), cg


@intrinsic
def fadd(typingctx, a, b):
    if not (a == F32x16 and b == F32x16):
        return None

    def cg(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return F32x16(a, b), cg


@intrinsic
def fsplat(typingctx, a):
    if not isinstance(a, types.Float):
        return None

    def cg(context, builder, sig, args):
        return _splat(builder, context.cast(builder, args[0], sig.args[0], types.float32), F32x16.llty)
    return F32x16(a), cg


@intrinsic
def fsplat2(typingctx, a, b):
    """(a, b) -> [a]*8 + [b]*8: per-32-block float scales for a 2-block vector."""
    if not (isinstance(a, types.Float) and isinstance(b, types.Float)):
        return None

    def cg(context, builder, sig, args):
        v = ir.Constant(_vt(_F32, 2), ir.Undefined)
        for i in range(2):
            x = context.cast(builder, args[i], sig.args[i], types.float32)
            v = builder.insert_element(v, x, ir.Constant(_I32, i))
        return _shuf(builder, v, v, [i // 8 for i in range(16)])
    return F32x16(a, b), cg


@intrinsic
def fload(typingctx, arr, off):
    """16 float32 at byte offset `off` of arr."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        return _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), F32x16.llty)
    return F32x16(arr, off), cg


@intrinsic
def fload_f16(typingctx, arr, off):
    """16 IEEE halves at byte offset `off` -> F32x16 (vcvtph2ps)."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        h = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]),
                  _vt(ir.HalfType(), 16))
        return builder.fpext(h, F32x16.llty)
    return F32x16(arr, off), cg


@intrinsic
def fload_bf16(typingctx, arr, off):
    """16 bfloat16 at byte offset `off` -> F32x16 (bits << 16)."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        h = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), _vt(_I16, 16))
        w = builder.shl(builder.zext(h, I32x16.llty), _cint(I32x16.llty, 16))
        return builder.bitcast(w, F32x16.llty)
    return F32x16(arr, off), cg


@intrinsic
def fhsum(typingctx, a):
    """Horizontal sum (pairwise tree, fixed order)."""
    if a != F32x16:
        return None

    def cg(context, builder, sig, args):
        return _hsum_tree(builder, args[0], builder.fadd)
    return types.float32(a), cg


@intrinsic
def fabs(typingctx, a):
    if a != F32x16:
        return None

    def cg(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F32x16.llty, [F32x16.llty]),
                                            "llvm.fabs.v16f32")
        return builder.call(fn, [args[0]])
    return F32x16(a), cg


def _fmax_ir(builder, a, b):
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


@intrinsic
def fmax(typingctx, a, b):
    if not (a == F32x16 and b == F32x16):
        return None

    def cg(context, builder, sig, args):
        return _fmax_ir(builder, args[0], args[1])
    return F32x16(a, b), cg


@intrinsic
def fhmax(typingctx, a):
    if a != F32x16:
        return None

    def cg(context, builder, sig, args):
        return _hsum_tree(builder, args[0], lambda x, y: _fmax_ir(builder, x, y))
    return types.float32(a), cg


@intrinsic
def store_q8_g4(typingctx, v, arr, off, sarr, soff):
    """store_q8, and also the 4 sums of 4 consecutive codes, times -128, as int32 at byte `soff` of
    sarr (the per-lane corrections of a VNNI dot whose other operand carries a +128 offset)."""
    if not (v == F32x16 and _is_arr(arr) and isinstance(off, types.Integer) and _is_arr(sarr)
            and isinstance(soff, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F32x16.llty, [F32x16.llty]),
                                            "llvm.roundeven.v16f32")
        r = builder.call(fn, [args[0]])
        q = builder.fptosi(r, I32x16.llty)
        c127 = _cint(I32x16.llty, 127)
        q = builder.select(builder.icmp_signed(">", q, c127), c127, q)
        p = _addr(context, builder, sig.args[1], args[1], args[2], sig.args[2])
        builder.store(builder.trunc(q, _vt(_I8, 16)), builder.bitcast(p, _vt(_I8, 16).as_pointer()), align=1)
        g = _shuf(builder, q, q, range(0, 16, 4))
        for k in range(1, 4):
            g = builder.add(g, _shuf(builder, q, q, range(k, 16, 4)))
        ps = _addr(context, builder, sig.args[3], args[3], args[4], sig.args[4])
        builder.store(builder.mul(g, _cint(_vt(_I32, 4), -128)), builder.bitcast(ps, _vt(_I32, 4).as_pointer()), align=1)
        return _hsum_tree(builder, q, builder.add)
    return types.int32(v, arr, off, sarr, soff), cg


@intrinsic
def store_q8(typingctx, v, arr, off):
    """Round 16 floats half-to-even, clamp to <= 127, store as int8 at byte `off` of arr; return their sum."""
    if not (v == F32x16 and _is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F32x16.llty, [F32x16.llty]),
                                            "llvm.roundeven.v16f32")
        r = builder.call(fn, [args[0]])
        q = builder.fptosi(r, I32x16.llty)
        c127 = _cint(I32x16.llty, 127)
        q = builder.select(builder.icmp_signed(">", q, c127), c127, q)
        p = _addr(context, builder, sig.args[1], args[1], args[2], sig.args[2])
        builder.store(builder.trunc(q, _vt(_I8, 16)), builder.bitcast(p, _vt(_I8, 16).as_pointer()), align=1)
        return _hsum_tree(builder, q, builder.add)
    return types.int32(v, arr, off), cg


# ---- llama.cpp's 8-lane (AVX2 __m256) accumulators, two rows per 16-lane vector ----------------------

def _hsum8_ir(builder, v, base):
    """hsum_float_8 (ggml x86 quants.c) of lanes base..base+7: (x_i + x_{i+4}) for i < 4, then
    (r0 + r2) + (r1 + r3)."""
    r = builder.fadd(_shuf(builder, v, v, [base + 4 + i for i in range(4)]), _shuf(builder, v, v, [base + i for i in range(4)]))
    t = builder.fadd(r, _shuf(builder, r, r, [2, 3, 2, 3]))
    return builder.fadd(builder.extract_element(t, ir.Constant(_I32, 0)), builder.extract_element(t, ir.Constant(_I32, 1)))


@intrinsic
def fhsum8_lo(typingctx, a):
    """hsum_float_8 of lanes 0-7 (llama.cpp's reduction of one __m256 accumulator)."""
    if a != F32x16:
        return None

    def cg(context, builder, sig, args):
        return _hsum8_ir(builder, args[0], 0)
    return types.float32(a), cg


@intrinsic
def fhsum8_hi(typingctx, a):
    """hsum_float_8 of lanes 8-15."""
    if a != F32x16:
        return None

    def cg(context, builder, sig, args):
        return _hsum8_ir(builder, args[0], 8)
    return types.float32(a), cg


@intrinsic
def nib2(typingctx, arr, o0, o1):
    """The 16 nibble bytes at byte o0 and at o1 -> 64 codes [lo(o0), hi(o0), lo(o1), hi(o1)] (two rows
    of 32-blocks, each in element order)."""
    if not (_is_arr(arr) and isinstance(o0, types.Integer) and isinstance(o1, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        a = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), V16.llty)
        b = _load(builder, _addr(context, builder, sig.args[0], args[0], args[2], sig.args[2]), V16.llty)
        ab = _shuf(builder, a, b, range(32))
        v = _shuf(builder, ab, ab, list(range(16)) * 2 + list(range(16, 32)) * 2)
        lo = builder.and_(v, _cint(V64.llty, 15))
        hi = builder.lshr(v, _cint(V64.llty, 4))
        sel = ir.Constant(_vt(ir.IntType(1), 64), [(i // 16) % 2 == 1 for i in range(64)])
        return builder.select(sel, hi, lo)
    return V64(arr, o0, o1), cg


@intrinsic
def hbits2(typingctx, arr, o0, o1):
    """The u32 at byte o0 and at o1 -> 64 bytes, byte i = 16 where bit i of the 64 bits is set
    (the 5th bit of two rows' Q5 codes)."""
    if not (_is_arr(arr) and isinstance(o0, types.Integer) and isinstance(o1, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        a = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), _I32)
        b = _load(builder, _addr(context, builder, sig.args[0], args[0], args[2], sig.args[2]), _I32)
        ab = builder.or_(builder.zext(a, _I64), builder.shl(builder.zext(b, _I64), ir.Constant(_I64, 32)))
        m = builder.bitcast(ab, _vt(ir.IntType(1), 64))   # built in a GPR: kmovq, no trip through memory
        return builder.select(m, _cint(V64.llty, 16), ir.Constant(V64.llty, None))
    return V64(arr, o0, o1), cg


@intrinsic
def halves2(typingctx, arr, o0, o1):
    """F32x4 [h(o0), h(o0 + 2), h(o1), h(o1 + 2)] of the IEEE halves at those byte offsets (d and m of
    two rows' blocks)."""
    if not (_is_arr(arr) and isinstance(o0, types.Integer) and isinstance(o1, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        a = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), _vt(_I32, 1))
        b = _load(builder, _addr(context, builder, sig.args[0], args[0], args[2], sig.args[2]), _vt(_I32, 1))
        h = builder.bitcast(_shuf(builder, a, b, [0, 1]), _vt(ir.HalfType(), 4))
        return builder.fpext(h, F32x4.llty)
    return F32x4(arr, o0, o1), cg


@intrinsic
def fload2x2(typingctx, arr, off):
    """F32x4 [a, b, a, b] of the 2 float32 at byte `off` (an activation block's (d, s) pair)."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        v = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), _vt(_F32, 2))
        return _shuf(builder, v, v, [0, 1, 0, 1])
    return F32x4(arr, off), cg


@intrinsic
def ffma4(typingctx, a, b, c):
    """a * b + c (fused), F32x4."""
    if not (a == F32x4 and b == F32x4 and c == F32x4):
        return None

    def cg(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F32x4.llty, [F32x4.llty] * 3),
                                            "llvm.fma.v4f32")
        return builder.call(fn, args)
    return F32x4(a, b, c), cg


@intrinsic
def ihsum(typingctx, a):
    """Sum of the 16 int32 lanes (exact, so any order)."""
    if a != I32x16:
        return None

    def cg(context, builder, sig, args):
        return _hsum_tree(builder, args[0], builder.add)
    return types.int32(a), cg


@intrinsic
def ilane(typingctx, a, i):
    """Lane i of an I32x16."""
    if not (a == I32x16 and isinstance(i, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return types.int32(a, i), cg


@intrinsic
def ifold2(typingctx, a, b):
    """[a_i + a_{i+8} for i < 8] + [b_i + b_{i+8} for i < 8]: 16 lanes of 4-element sums -> llama.cpp's
    8 __m256i lanes (which sum elements 4i..4i+3 of each 32), for two rows."""
    if not (a == I32x16 and b == I32x16):
        return None

    def cg(context, builder, sig, args):
        lo = _shuf(builder, args[0], args[1], list(range(8)) + list(range(16, 24)))
        hi = _shuf(builder, args[0], args[1], list(range(8, 16)) + list(range(24, 32)))
        return builder.add(lo, hi)
    return I32x16(a, b), cg


@intrinsic
def ipairs2(typingctx, a, b):
    """[a_{2i} + a_{2i+1} for i < 8] + [b_{2i} + b_{2i+1} for i < 8] (madd_epi16 pairing, two rows)."""
    if not (a == I32x16 and b == I32x16):
        return None

    def cg(context, builder, sig, args):
        ev = _shuf(builder, args[0], args[1], list(range(0, 16, 2)) + list(range(16, 32, 2)))
        od = _shuf(builder, args[0], args[1], list(range(1, 16, 2)) + list(range(17, 32, 2)))
        return builder.add(ev, od)
    return I32x16(a, b), cg


@intrinsic
def prefetch(typingctx, arr, off):
    """Software prefetch (to all cache levels) of the line holding byte `off` of arr: kernels that
    stream several weight rows at once use it, the hardware prefetchers track them poorly."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        p = _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [_I8.as_pointer(), _I32, _I32, _I32]),
                                            "llvm.prefetch.p0i8")
        builder.call(fn, [p, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()
    return types.void(arr, off), cg


@intrinsic
def ihsum2(typingctx, a, b):
    """I32x16 whose lane 0 is the sum of a's lanes and lane 8 the sum of b's (two reductions in one
    tree; exact, so any order)."""
    if not (a == I32x16 and b == I32x16):
        return None

    def cg(context, builder, sig, args):
        v = builder.add(_shuf(builder, args[0], args[1], list(range(8)) + list(range(16, 24))),
                        _shuf(builder, args[0], args[1], list(range(8, 16)) + list(range(24, 32))))
        for k in (4, 2, 1):
            idx = [(i + k) % 16 if (i % 8) < k else i for i in range(16)]
            v = builder.add(v, _shuf(builder, v, v, idx))
        return v
    return I32x16(a, b), cg


@intrinsic
def bones(typingctx):
    """V64 of ones (dot(bones(), a) = the 4-sums of a's bytes per lane)."""
    def cg(context, builder, sig, args):
        return _cint(V64.llty, 1)
    return V64(), cg


class _BFloat(ir.Type):
    """LLVM's bfloat (llvmlite has no class for it)."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, _BFloat)

    def __hash__(self):
        return hash("bfloat")


HAS_BF16_512 = bool(llvm.get_host_cpu_features().get("avx512bf16", False)) and not os.environ.get("GGRAPH_SIMD_GENERIC")


@intrinsic
def fdpbf16(typingctx, acc, a, ao, b, bo):
    """_mm512_dpbf16_ps(acc, a[ao:ao+64 bytes], b[bo:...]): lane j += a[2j+1]*b[2j+1], then += a[2j]*b[2j]
    (32 bfloat16 each). The vdpbf16ps instruction where the CPU has it (llama.cpp's AVX512_BF16 kernels
    use it; its roundings are the hardware's); elsewhere the two float32 additions in that order (the
    products are exact), without the instruction's denormal flushing."""
    if not (acc == F32x16 and _is_arr(a) and _is_arr(b) and isinstance(ao, types.Integer)
            and isinstance(bo, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        va = _load(builder, _addr(context, builder, sig.args[1], args[1], args[2], sig.args[2]), _vt(_I16, 32))
        vb = _load(builder, _addr(context, builder, sig.args[3], args[3], args[4], sig.args[4]), _vt(_I16, 32))
        if HAS_BF16_512:
            bt = _vt(_BFloat(), 32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(F32x16.llty, [F32x16.llty, bt, bt]),
                                                "llvm.x86.avx512bf16.dpbf16ps.512")
            return builder.call(fn, [args[0], builder.bitcast(va, bt), builder.bitcast(vb, bt)])

        def wide(v, idx):
            h = _shuf(builder, v, v, idx)
            return builder.bitcast(builder.shl(builder.zext(h, I32x16.llty), _cint(I32x16.llty, 16)), F32x16.llty)
        ev, od = list(range(0, 32, 2)), list(range(1, 32, 2))
        t = builder.fadd(args[0], builder.fmul(wide(va, od), wide(vb, od)))
        return builder.fadd(t, builder.fmul(wide(va, ev), wide(vb, ev)))
    return F32x16(acc, a, ao, b, bo), cg


@intrinsic
def fhsum_gcc(typingctx, a):
    """_mm512_reduce_add_ps as GCC 12 emits it: 8 + 8, 4 + 4, then (t0 + t2) + (t1 + t3)."""
    if a != F32x16:
        return None

    def cg(context, builder, sig, args):
        x = args[0]
        t3 = builder.fadd(_shuf(builder, x, x, range(8, 16)), _shuf(builder, x, x, range(8)))
        t6 = builder.fadd(_shuf(builder, t3, t3, range(4, 8)), _shuf(builder, t3, t3, range(4)))
        t8 = builder.fadd(t6, _shuf(builder, t6, t6, [2, 3, 0, 1]))
        return builder.fadd(builder.extract_element(t8, ir.Constant(_I32, 0)),
                            builder.extract_element(t8, ir.Constant(_I32, 1)))
    return types.float32(a), cg


@intrinsic
def ihsum4f(typingctx, a, b, c, d):
    """F32x4 [sum(a), sum(b), sum(c), sum(d)] of four I32x16 (exact integer sums, one tree, then
    converted to float as cvtdq2ps does)."""
    if not all(v == I32x16 for v in (a, b, c, d)):
        return None

    def cg(context, builder, sig, args):
        def fold(x, y):   # lanes 0-7: x_i + x_{i+8}; lanes 8-15: y_i + y_{i+8}
            return builder.add(_shuf(builder, x, y, list(range(8)) + list(range(16, 24))),
                               _shuf(builder, x, y, list(range(8, 16)) + list(range(24, 32))))
        v, w = fold(args[0], args[1]), fold(args[2], args[3])
        u = builder.add(_shuf(builder, v, w, [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27]),
                        _shuf(builder, v, w, [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31]))
        u = builder.add(u, _shuf(builder, u, u, [i + 2 if i % 4 < 2 else i for i in range(16)]))
        u = builder.add(u, _shuf(builder, u, u, [i + 1 if i % 4 < 1 else i for i in range(16)]))
        return builder.sitofp(_shuf(builder, u, u, [0, 4, 8, 12]), F32x4.llty)
    return F32x4(a, b, c, d), cg


@intrinsic
def bcast32(typingctx, arr, off):
    """The 32 bytes at byte `off`, twice (one activation block for both halves of a vector)."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        v = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), V32.llty)
        return _shuf(builder, v, v, list(range(32)) * 2)
    return V64(arr, off), cg


@intrinsic
def bcast4(typingctx, arr, off):
    """The 4 bytes at byte `off`, 16 times (vpbroadcastd): one 4-element activation group for every
    32-bit lane."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        x = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), _I32)
        return builder.bitcast(_splat(builder, x, I32x16.llty), V64.llty)
    return V64(arr, off), cg


@intrinsic
def iload8x2(typingctx, arr, off):
    """8 int32 at byte `off`, twice (per-lane integer corrections of one block for both halves)."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        v = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), _vt(_I32, 8))
        return _shuf(builder, v, v, list(range(8)) * 2)
    return I32x16(arr, off), cg


@intrinsic
def isplat(typingctx, a):
    if not isinstance(a, types.Integer):
        return None

    def cg(context, builder, sig, args):
        a32 = builder.trunc(context.cast(builder, args[0], sig.args[0], types.int64), _I32)
        return _splat(builder, a32, I32x16.llty)
    return I32x16(a), cg


@intrinsic
def fstore(typingctx, arr, off, v):
    """Store 16 float32 at byte `off` of arr."""
    if not (_is_arr(arr) and isinstance(off, types.Integer) and v == F32x16):
        return None

    def cg(context, builder, sig, args):
        p = _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        builder.store(args[2], builder.bitcast(p, F32x16.llty.as_pointer()), align=1)
        return context.get_dummy_value()
    return types.void(arr, off, v), cg


@intrinsic
def flane(typingctx, a, i):
    """Lane i of an F32x16."""
    if not (a == F32x16 and isinstance(i, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return types.float32(a, i), cg


# ---- scalars --------------------------------------------------------------------------------------

@intrinsic
def f16at(typingctx, arr, off):
    """The IEEE half at byte offset `off` of arr, as float32 (block scales of quantized weights)."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        h = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), ir.HalfType())
        return builder.fpext(h, _F32)
    return types.float32(arr, off), cg


def _make_scalar_load(llty, nbty):
    @intrinsic
    def f(typingctx, arr, off):
        if not (_is_arr(arr) and isinstance(off, types.Integer)):
            return None

        def cg(context, builder, sig, args):
            return _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), llty)
        return nbty(arr, off), cg
    return f


def _make_byte_load(signed):
    @intrinsic
    def f(typingctx, arr, off):
        if not (_is_arr(arr) and isinstance(off, types.Integer)):
            return None

        def cg(context, builder, sig, args):
            v = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), _I8)
            return builder.sext(v, _I32) if signed else builder.zext(v, _I32)
        return types.int32(arr, off), cg
    return f


b8 = _make_byte_load(False)   # unsigned byte at a byte offset of any array, as int32
u32at = _make_scalar_load(_I32, types.uint32)   # little-endian u32 at a byte offset
f32at = _make_scalar_load(_F32, types.float32)  # float32 at a byte offset


@intrinsic
def bf16at(typingctx, arr, off):
    """The bfloat16 at byte offset `off` of arr, as float32."""
    if not (_is_arr(arr) and isinstance(off, types.Integer)):
        return None

    def cg(context, builder, sig, args):
        h = _load(builder, _addr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), _I16)
        return builder.bitcast(builder.shl(builder.zext(h, _I32), ir.Constant(_I32, 16)), _F32)
    return types.float32(arr, off), cg


@intrinsic
def round_f16(typingctx, x):
    """float32 -> nearest fp16 (round-to-nearest-even, like F16C) -> float32."""
    if not isinstance(x, types.Float):
        return None

    def cg(context, builder, sig, args):
        x32 = context.cast(builder, args[0], sig.args[0], types.float32)
        return builder.fpext(builder.fptrunc(x32, ir.HalfType()), _F32)
    return types.float32(x), cg


