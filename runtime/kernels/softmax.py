"""soft_max_ext: softmax(x*scale + mask) per row, bit for bit as ggml's CPU op (ops.cpp
ggml_compute_forward_soft_max_f32 + vec.cpp ggml_vec_soft_max_f32, AVX512 build):

  wp = x*scale (+ slope*mask, slope the head's ALiBi slope, 1 without max_bias); max = max(wp)
  chunks of 16: e = ggml_v_expf(wp - max); sum += (double)_mm512_reduce_add_ps(e)
  leftovers:    e = expf(wp - max);        sum += (double)e
  y = e * (float)(1.0/sum)

A fully masked row (max = -inf) gives zeros here (ggml would produce NaN)."""
import math

import numpy as np
from numba import njit, prange

from .ggml_math import fma32
from .simd.f32 import fexp, ffma, fhmax, fhsum_gcc, fload, fmax, fmul, fsplat, fstore, fsub

F32 = np.float32


def alibi_slopes(n_head, max_bias):
    """ggml's per-head ALiBi slopes (all 1 without max_bias, without compiling anything)."""
    if not max_bias > 0.0:
        return np.ones(n_head, np.float32)
    return _alibi_slopes(n_head, F32(max_bias))


@njit(cache=True)
def _alibi_slopes(n_head, max_bias):
    """The slopes with libm's powf, as ggml calls it."""
    out = np.ones(n_head, np.float32)
    n_log2 = 1 << int(math.floor(math.log2(n_head)))
    m0 = math.pow(F32(2.0), -F32(max_bias) / F32(n_log2))
    m1 = math.pow(F32(2.0), -(F32(max_bias) / F32(2.0)) / F32(n_log2))
    for h in range(n_head):
        out[h] = math.pow(m0, F32(h + 1)) if h < n_log2 else math.pow(m1, F32(2 * (h - n_log2) + 1))
    return out


@njit(cache=True, parallel=True)
def soft_max_4d(x, mask, out, scale, has_mask, slopes):
    """x, out: float32 [S, B, M, N] (rows of N, B heads, S streams); mask: float32 [Sm, Mm, N] with
    Mm >= M, plane s % Sm for stream s (ggml's i13 % ne13), broadcast over B and added times the
    head's ALiBi slope (1: the mask as is, exactly)."""
    S, B, M, N = x.shape
    Sm = mask.shape[0]
    sc = F32(scale)
    for sbm in prange(S * B * M):
        st = sbm // (B * M)
        bm = sbm - st * (B * M)
        b = bm // M
        m = bm - b * M
        o = out[st, b, m]
        xr = x[st, b, m]
        mr = mask[st % Sm, m]
        slope = slopes[b]
        vsc = fsplat(sc)
        vsl = fsplat(slope)
        vmx = fsplat(F32(-np.inf))
        n = 0
        while n + 16 <= N:           # wp = x*scale (+ slope*mask), 16 lanes; max is exact in any order
            v = fmul(fload(xr, 4 * n), vsc)
            if has_mask:            # GCC contracts ggml's wp += slope*mask into an fma
                v = ffma(vsl, fload(mr, 4 * n), v)
            fstore(o, 4 * n, v)
            vmx = fmax(vmx, v)
            n += 16
        mx = fhmax(vmx)
        while n < N:
            v = xr[n] * sc
            if has_mask:
                v = fma32(slope, mr[n], v)
            o[n] = v
            mx = max(mx, v)
            n += 1
        if mx == F32(-np.inf):      # fully masked row
            for n in range(N):
                o[n] = F32(0.0)
            continue
        s = 0.0
        i = 0
        vmx = fsplat(mx)
        while i + 16 <= N:
            e = fexp(fsub(fload(o, 4 * i), vmx))
            fstore(o, 4 * i, e)
            s += np.float64(fhsum_gcc(e))
            i += 16
        while i < N:
            e = np.exp(o[i] - mx)
            o[i] = e
            s += np.float64(e)
            i += 1
        inv = F32(1.0 / s)
        vinv = fsplat(inv)
        n = 0
        while n + 16 <= N:
            fstore(o, 4 * n, fmul(fload(o, 4 * n), vinv))
            n += 16
        while n < N:
            o[n] *= inv
            n += 1


def soft_max_alibi_f32(x, mask, out, scale, has_mask, slopes):
    """x, out: float32 [B, M, N] (rows of N, B heads); mask: float32 [Mm, N] (soft_max_4d, one stream)."""
    soft_max_4d(x[None], mask[None], out[None], F32(scale), has_mask, slopes)


def soft_max_f32(x, mask, out, scale, has_mask):
    """soft_max_alibi_f32 without ALiBi."""
    soft_max_alibi_f32(x, mask, out, scale, has_mask, np.ones(x.shape[0], np.float32))
