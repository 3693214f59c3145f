"""Float lanes: F32x16 (one __m512, or two rows' __m256 accumulators) and F32x4 (the scales of a
block pair), with the exact reductions llama.cpp's CPU code uses (GCC's _mm512_reduce_add_ps tree,
hsum_float_8), and the float -> int8 rounding of the activation quantizers."""
from llvmlite import ir
from numba import types

from ggraph.runtime.kernels.simd.core import (
    ARR, FLOAT, F32x4, F32x16, FLT, HALF, HAS_BF16_512, I8, I16, I32, I64, I32x16, INT, binop, call, cint, const, fma,
    hsum_tree, extract, load, load_at, addr, pack, shuf, splat_scalar, to_f32, vec_intrinsic, vt,
)

fzero = const(F32x16, None)
fzero4 = const(F32x4, None)
fadd = binop(F32x16, "fadd")
fmul = binop(F32x16, "fmul")
fmul4 = binop(F32x4, "fmul")
ffma = fma(F32x16, "llvm.fma.v16f32")
ffma4 = fma(F32x4, "llvm.fma.v4f32")
fsplat = splat_scalar(F32x16, FLT, to_f32)
fsplat4 = splat_scalar(F32x4, FLT, to_f32)
flane = extract(F32x16, types.float32)
lane = extract(F32x4, types.float32)
fload = load(F32x16, F32x16.llty, doc="16 float32 at byte `off`.")
fload4 = load(F32x4, F32x4.llty, doc="4 float32 at byte `off`.")
fload_f16 = load(F32x16, vt(HALF, 16), lambda b, v: b.fpext(v, F32x16.llty),
                 "16 IEEE halves at byte `off` -> F32x16 (vcvtph2ps).")
fload2x2 = load(F32x4, vt(FLOAT, 2), lambda b, v: shuf(b, v, v, [0, 1, 0, 1]),
                "F32x4 [a, b, a, b] of the 2 float32 at byte `off` (an activation block's (d, s) pair).")


@vec_intrinsic(F32x16, I32x16)
def tofloat(context, builder, sig, args):
    return builder.sitofp(args[0], F32x16.llty)


@vec_intrinsic(F32x16, FLT, FLT)
def fsplat2(context, builder, sig, args):
    """(a, b) -> [a]*8 + [b]*8: per-32-block float scales for a 2-block vector."""
    return pack(context, builder, sig, args, FLOAT, to_f32, [i // 8 for i in range(16)])


@vec_intrinsic(F32x4, FLT, FLT)
def fpair4(context, builder, sig, args):
    """(a, b) -> F32x4 [a, a, b, b] (per-block scales of a pair, in the lanes lanes02 reads)."""
    return pack(context, builder, sig, args, FLOAT, to_f32, [0, 0, 1, 1])


@vec_intrinsic(F32x16, F32x4)
def lanes02(context, builder, sig, args):
    """F32x4 [a0, a1, a2, a3] -> F32x16 [a0]*8 + [a2]*8 (per-block scales of a 2-block vector)."""
    return shuf(builder, args[0], args[0], [0] * 8 + [2] * 8)


@vec_intrinsic(F32x4, ARR, INT, INT)
def halves2(context, builder, sig, args):
    """F32x4 [h(o0), h(o0 + 2), h(o1), h(o1 + 2)] of the IEEE halves at those byte offsets (d and m of
    two rows' blocks)."""
    a = load_at(context, builder, sig, args, 0, vt(I32, 1))
    b = load_at(context, builder, sig, args, 0, vt(I32, 1), 2)
    h = builder.bitcast(shuf(builder, a, b, [0, 1]), vt(HALF, 4))
    return builder.fpext(h, F32x4.llty)


@vec_intrinsic(types.void, ARR, INT, F32x16)
def fstore(context, builder, sig, args):
    """Store 16 float32 at byte `off` of arr."""
    p = addr(context, builder, sig, args, 0)
    builder.store(args[2], builder.bitcast(p, F32x16.llty.as_pointer()), align=1)
    return context.get_dummy_value()


@vec_intrinsic(F32x16, F32x16)
def fabs(context, builder, sig, args):
    return call(builder, "llvm.fabs.v16f32", F32x16.llty, [args[0]])


def _fmax_ir(builder, a, b):
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


@vec_intrinsic(F32x16, F32x16, F32x16)
def fmax(context, builder, sig, args):
    return _fmax_ir(builder, args[0], args[1])


@vec_intrinsic(types.float32, F32x16)
def fhmax(context, builder, sig, args):
    return hsum_tree(builder, args[0], lambda x, y: _fmax_ir(builder, x, y))


@vec_intrinsic(types.float32, F32x16)
def fhsum_gcc(context, builder, sig, args):
    """_mm512_reduce_add_ps as GCC 12 emits it: 8 + 8, 4 + 4, then (t0 + t2) + (t1 + t3)."""
    x = args[0]
    t3 = builder.fadd(shuf(builder, x, x, range(8, 16)), shuf(builder, x, x, range(8)))
    t6 = builder.fadd(shuf(builder, t3, t3, range(4, 8)), shuf(builder, t3, t3, range(4)))
    t8 = builder.fadd(t6, shuf(builder, t6, t6, [2, 3, 0, 1]))
    return builder.fadd(builder.extract_element(t8, ir.Constant(I32, 0)),
                        builder.extract_element(t8, ir.Constant(I32, 1)))


def _fhsum8(base):
    """hsum_float_8 (ggml x86 quants.c) of lanes base..base+7 (llama.cpp's reduction of one __m256
    accumulator): (x_i + x_{i+4}) for i < 4, then (r0 + r2) + (r1 + r3)."""
    @vec_intrinsic(types.float32, F32x16)
    def f(context, builder, sig, args):
        v = args[0]
        r = builder.fadd(shuf(builder, v, v, [base + 4 + i for i in range(4)]), shuf(builder, v, v, [base + i for i in range(4)]))
        t = builder.fadd(r, shuf(builder, r, r, [2, 3, 2, 3]))
        return builder.fadd(builder.extract_element(t, ir.Constant(I32, 0)), builder.extract_element(t, ir.Constant(I32, 1)))
    return f


fhsum8_lo = _fhsum8(0)   # lanes 0-7 (row r of a row pair)
fhsum8_hi = _fhsum8(8)   # lanes 8-15 (row r + 1)


class _BFloat(ir.Type):
    """LLVM's bfloat (llvmlite has no class for it)."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, _BFloat)

    def __hash__(self):
        return hash("bfloat")


@vec_intrinsic(F32x16, F32x16, ARR, INT, ARR, INT)
def fdpbf16(context, builder, sig, args):
    """_mm512_dpbf16_ps(acc, a[ao:ao+64 bytes], b[bo:...]): lane j += a[2j+1]*b[2j+1], then += a[2j]*b[2j]
    (32 bfloat16 each). The vdpbf16ps instruction where the CPU has it (llama.cpp's AVX512_BF16 kernels
    use it; its roundings are the hardware's); elsewhere the two float32 additions in that order (the
    products are exact), without the instruction's denormal flushing."""
    va = load_at(context, builder, sig, args, 1, vt(I16, 32))
    vb = load_at(context, builder, sig, args, 3, vt(I16, 32))
    if HAS_BF16_512:
        bt = vt(_BFloat(), 32)
        return call(builder, "llvm.x86.avx512bf16.dpbf16ps.512", F32x16.llty,
                    [args[0], builder.bitcast(va, bt), builder.bitcast(vb, bt)])

    def wide(v, idx):
        h = shuf(builder, v, v, idx)
        return builder.bitcast(builder.shl(builder.zext(h, I32x16.llty), cint(I32x16.llty, 16)), F32x16.llty)
    ev, od = list(range(0, 32, 2)), list(range(1, 32, 2))
    t = builder.fadd(args[0], builder.fmul(wide(va, od), wide(vb, od)))
    return builder.fadd(t, builder.fmul(wide(va, ev), wide(vb, ev)))


# ---- float -> int8 (quantize_row_q8_*) ---------------------------------------------------------------

def _round_store_q8(context, builder, sig, args):
    """Round args[0] half-to-even, clamp to <= 127, store as int8 at byte args[2] of args[1]: the
    int32 codes."""
    r = call(builder, "llvm.roundeven.v16f32", F32x16.llty, [args[0]])
    q = builder.fptosi(r, I32x16.llty)
    c127 = cint(I32x16.llty, 127)
    q = builder.select(builder.icmp_signed(">", q, c127), c127, q)
    p = addr(context, builder, sig, args, 1)
    builder.store(builder.trunc(q, vt(I8, 16)), builder.bitcast(p, vt(I8, 16).as_pointer()), align=1)
    return q


@vec_intrinsic(types.int32, F32x16, ARR, INT)
def store_q8(context, builder, sig, args):
    """Round 16 floats half-to-even, clamp to <= 127, store as int8 at byte `off` of arr; return their sum."""
    return hsum_tree(builder, _round_store_q8(context, builder, sig, args), builder.add)


@vec_intrinsic(types.int32, F32x16, ARR, INT, ARR, INT)
def store_q8_g4(context, builder, sig, args):
    """store_q8, and also the 4 sums of 4 consecutive codes, times -128, as int32 at byte `soff` of
    sarr (the per-lane corrections of a VNNI dot whose other operand carries a +128 offset)."""
    q = _round_store_q8(context, builder, sig, args)
    g = shuf(builder, q, q, range(0, 16, 4))
    for k in range(1, 4):
        g = builder.add(g, shuf(builder, q, q, range(k, 16, 4)))
    ps = addr(context, builder, sig, args, 3)
    builder.store(builder.mul(g, cint(vt(I32, 4), -128)), builder.bitcast(ps, vt(I32, 4).as_pointer()), align=1)
    return hsum_tree(builder, q, builder.add)


fsub = binop(F32x16, "fsub")

# ggml_v_expf's constants (vec.h, AVX512 version), as float32 hex (ggml_math's scalar lane too)
EXPF_CONSTANTS = dict(r="0x1.8p23", log2e="0x1.715476p+0", ln2_hi="0x1.62e4p-1", ln2_lo="0x1.7f7d1cp-20",
             c5="0x1.0e4020p-7", c4="0x1.573e2ep-5", c3="0x1.555e66p-3", c2="0x1.fffdb6p-2", c1="0x1.ffffecp-1")


@vec_intrinsic(F32x16, F32x16)
def fexp(context, builder, sig, args):
    """ggml_v_expf (AVX512) on 16 lanes, bit for bit: the polynomial with fmadd/fnmadd, then
    _mm512_scalef_ps(j, n) as one rounding of the exact double j * 2^n, |n| > 192 -> 0 or inf."""
    f = {k: cint(F32x16.llty, float.fromhex(v)) for k, v in EXPF_CONSTANTS.items()}
    one, zero = cint(F32x16.llty, 1.0), ir.Constant(F32x16.llty, None)

    def fma_(a, b, c):
        return call(builder, "llvm.fma.v16f32", F32x16.llty, [a, b, c])
    x = args[0]
    z = fma_(x, f["log2e"], f["r"])
    n = builder.fsub(z, f["r"])
    neg_n = builder.fneg(n)
    b = fma_(neg_n, f["ln2_lo"], fma_(neg_n, f["ln2_hi"], x))
    u = builder.fmul(b, b)
    j = fma_(fma_(fma_(f["c5"], b, f["c4"]), u, fma_(f["c3"], b, f["c2"])), u, fma_(f["c1"], b, one))
    d64 = vt(ir.DoubleType(), 16)
    ni = builder.fptosi(n, vt(I64, 16))
    pow2 = builder.bitcast(builder.shl(builder.add(ni, cint(vt(I64, 16), 1023)), cint(vt(I64, 16), 52)), d64)
    res = builder.fptrunc(builder.fmul(builder.fpext(j, d64), pow2), F32x16.llty)
    big = builder.fcmp_ordered(">", call(builder, "llvm.fabs.v16f32", F32x16.llty, [n]), cint(F32x16.llty, 192.0))
    alt = builder.select(builder.fcmp_ordered("<=", n, zero), zero, cint(F32x16.llty, float("inf")))
    res = builder.select(big, alt, res)
    return builder.select(builder.fcmp_unordered("uno", n, n), n, res)
