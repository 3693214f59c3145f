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
ishr = _make_ibinop_scalar("lshr")


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


