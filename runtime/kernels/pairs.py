"""Per-token steps shared by the 32-block formats, which all work on pairs of blocks.

A kernel unpacks 2 weight blocks once into u (64 unsigned codes in activation order) plus their fp16
scales, then calls one of these per token (4 tokens share an unpack in batches). Keeping the
per-token arithmetic in one place makes the 1-token and 4-token paths bit-identical.
"""
from numba import njit

from ggraph.runtime.kernels.simd import corr13, dot, dot_acc, fadd4, ffma, fload4, fmul4, lanes02, load64, tofloat


@njit(cache=True, inline="always")
def tok_q8_0(u, dd, k, qs, qo, ds, dso, acc):
    """x Q8_0 activations (ds = interleaved (d, sum)): dd = [dw1, dw1, dw2, dw2]; the unsigned codes'
    offset is removed exactly as k * sum per lane (8 lanes per block)."""
    a4 = fload4(ds, dso)                                 # [da1, sum1, da2, sum2]
    p = dot_acc(corr13(a4, k), u, load64(qs, qo))
    return ffma(tofloat(p), lanes02(fmul4(dd, a4)), acc)


@njit(cache=True, inline="always")
def tok_q8_1(u, dm, qs, qo, ds, dso, acc, macc):
    """x Q8_1 activations (ds = interleaved (d, s)): dm = [d1, m1, d2, m2]; the m*s terms go to macc."""
    sc = fmul4(dm, fload4(ds, dso))                      # [d1*da1, m1*s1, d2*da2, m2*s2]
    return ffma(tofloat(dot(u, load64(qs, qo))), lanes02(sc), acc), fadd4(macc, sc)
