"""Int32 lanes (I32x16): the exact integer side of the dot products (scales, corrections,
reductions). Everything here is exact, so reduction orders are free."""
from llvmlite import ir
from numba import types

from ggraph.runtime.kernels.simd.core import (
    ARR, F32x4, I32, I32x16, INT, LIT, V16, binop, cint, extract, hsum_tree, load, load_at, pack, scalar_binop,
    shuf, splat_scalar, to_i32, vec_intrinsic, vt,
)

iadd = binop(I32x16, "add")
imul = binop(I32x16, "mul")
iand = scalar_binop(I32x16, "and_", to_i32)
ishr = scalar_binop(I32x16, "lshr", to_i32)
isar = scalar_binop(I32x16, "ashr", to_i32)   # arithmetic
isplat = splat_scalar(I32x16, INT, to_i32)
ilane = extract(I32x16, types.int32)
iload = load(I32x16, I32x16.llty, doc="16 int32 at byte `off` (precomputed per-lane activation corrections).")
iload8x2 = load(I32x16, vt(I32, 8), lambda b, v: shuf(b, v, v, list(range(8)) * 2),
                "8 int32 at byte `off`, twice (per-lane integer corrections of one block for both halves).")
iload_s8 = load(I32x16, V16.llty, lambda b, v: b.sext(v, I32x16.llty), "16 signed bytes -> I32x16.")
iload_u8 = load(I32x16, V16.llty, lambda b, v: b.zext(v, I32x16.llty), "16 unsigned bytes -> I32x16.")


@vec_intrinsic(I32x16, INT, INT)
def isplat2(context, builder, sig, args):
    """(a, b) -> [a]*8 + [b]*8: one integer scale per 32-block."""
    return pack(context, builder, sig, args, I32, to_i32, [i // 8 for i in range(16)])


@vec_intrinsic(types.int32, I32x16)
def ihsum(context, builder, sig, args):
    """Sum of the 16 int32 lanes."""
    return hsum_tree(builder, args[0], builder.add)


# two-vector shuffles: lanes 0-7 of a and of b / lanes 8-15 of a and of b
_LO8, _HI8 = list(range(8)) + list(range(16, 24)), list(range(8, 16)) + list(range(24, 32))


def _fold(builder, a, b, idx_a, idx_b):
    return builder.add(shuf(builder, a, b, idx_a), shuf(builder, a, b, idx_b))


def _fold2(idx_a, idx_b, doc):
    @vec_intrinsic(I32x16, I32x16, I32x16)
    def f(context, builder, sig, args):
        return _fold(builder, args[0], args[1], idx_a, idx_b)
    f.__doc__ = doc
    return f


ifold2 = _fold2(_LO8, _HI8, """[a_i + a_{i+8} for i < 8] + [b_i + b_{i+8} for i < 8]: 16 lanes of 4-element
    sums -> llama.cpp's 8 __m256i lanes (which sum elements 4i..4i+3 of each 32), for two rows.""")
ipairs2 = _fold2(list(range(0, 16, 2)) + list(range(16, 32, 2)), list(range(1, 16, 2)) + list(range(17, 32, 2)),
                 """[a_{2i} + a_{2i+1} for i < 8] + [b_{2i} + b_{2i+1} for i < 8] (madd_epi16 pairing, two rows).""")


@vec_intrinsic(I32x16, I32x16, I32x16)
def ihsum2(context, builder, sig, args):
    """I32x16 whose lane 0 is the sum of a's lanes and lane 8 the sum of b's (two reductions in one tree)."""
    v = _fold(builder, args[0], args[1], _LO8, _HI8)
    for k in (4, 2, 1):
        v = builder.add(v, shuf(builder, v, v, [(i + k) % 16 if (i % 8) < k else i for i in range(16)]))
    return v


@vec_intrinsic(F32x4, I32x16, I32x16, I32x16, I32x16)
def ihsum4f(context, builder, sig, args):
    """F32x4 [sum(a), sum(b), sum(c), sum(d)] of four I32x16 (exact integer sums, one tree, then
    converted to float as cvtdq2ps does)."""
    v, w = _fold(builder, args[0], args[1], _LO8, _HI8), _fold(builder, args[2], args[3], _LO8, _HI8)
    u = _fold(builder, v, w, [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27],
              [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31])
    u = builder.add(u, shuf(builder, u, u, [i + 2 if i % 4 < 2 else i for i in range(16)]))
    u = builder.add(u, shuf(builder, u, u, [i + 1 if i % 4 < 1 else i for i in range(16)]))
    return builder.sitofp(shuf(builder, u, u, [0, 4, 8, 12]), F32x4.llty)


@vec_intrinsic(I32x16, I32x16)
def ipairs_hi(context, builder, sig, args):
    """I32x16 -> lanes 8+j = v[2j] + v[2j+1], lanes 0-7 = 0 (bsums of 32-element sub-blocks)."""
    z = ir.Constant(I32x16.llty, None)
    return _fold(builder, args[0], z, [16] * 8 + list(range(0, 16, 2)), [16] * 8 + list(range(1, 16, 2)))


@vec_intrinsic(I32x16, I32x16, LIT, LIT, prefer_literal=True)
def ibcast2(context, builder, sig, args):
    """I32x16 -> [v[i]]*8 + [v[j]]*8 (i, j literal): per-32-block integer scales from a scale vector."""
    a, b = sig.args[1].literal_value, sig.args[2].literal_value
    return shuf(builder, args[0], args[0], [a] * 8 + [b] * 8)


@vec_intrinsic(I32x16, I32x16, LIT, prefer_literal=True)
def ibcast4(context, builder, sig, args):
    """I32x16 -> lanes 4g..4g+3 = v[4k+g] (k literal): per-16-group integer scales."""
    base = 4 * sig.args[1].literal_value
    return shuf(builder, args[0], args[0], [base + i // 4 for i in range(16)])


def make_scale_decoder(a_idx, a_shift, a_mask, b_idx, b_shift, b_mask, bias):
    """Intrinsic (arr, off) -> I32x16 unpacking packed sub-block scales from the 16 bytes at off:
    lane i = ((A >> a_shift[i]) & a_mask[i] | ((B >> b_shift[i]) & b_mask[i]) << 4) - bias, with
    A = byte a_idx[i], B = byte b_idx[i] (K-quant 6-bit scales: low bits + 2 high bits elsewhere)."""
    @vec_intrinsic(I32x16, ARR, INT)
    def dec(context, builder, sig, args):
        raw = load_at(context, builder, sig, args, 0, V16.llty)
        t = I32x16.llty
        a = builder.zext(shuf(builder, raw, raw, a_idx), t)
        b = builder.zext(shuf(builder, raw, raw, b_idx), t)
        lo = builder.and_(builder.lshr(a, ir.Constant(t, list(a_shift))), ir.Constant(t, list(a_mask)))
        hi = builder.and_(builder.lshr(b, ir.Constant(t, list(b_shift))), ir.Constant(t, list(b_mask)))
        v = builder.or_(lo, builder.shl(hi, cint(t, 4)))
        return builder.sub(v, cint(t, bias))
    return dec
