#!/usr/bin/env python3
"""NumPy ports of llama.cpp's reference K-quant quantizers (ggml/src/ggml-quants.c), byte-identical to
quantize_row_{q2,q3,q4,q5,q6}_K_ref, i.e. what llama_model_quantize writes without an imatrix.

    from kquants import quantize
    data = quantize(w, "Q4_K")      # w: float32 (rows, n_per_row), n_per_row % 256 == 0
                                    # -> uint8 (rows, row bytes), the GGUF tensor data

Exactness rules followed throughout:
- every C `float` value is an np.float32 and every op is a single float32 op in the C order
  (numpy float32 + - * / sqrt are IEEE-exact, like ggml-base which is built without FMA);
- a C `sum += ...` loop is a loop over the element index (vectorised across blocks), never np.sum
  (which sums pairwise);
- arrays are laid out (element index, block) so those loops walk contiguous rows.
"""
from __future__ import annotations

import numpy as np

QK_K = 256
F32 = np.float32
GROUP_MAX_EPS = F32(1e-15)
BLOCK_BYTES = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210}
CHUNK = 2048   # super-blocks per pass: bounds the temporaries for big matrices


def nearest_int(f: np.ndarray) -> np.ndarray:
    """Mirrors nearest_int: adding 1.5*2^23 in float32 rounds to the nearest integer (ties to even)."""
    v = (np.asarray(f, F32) + F32(12582912.0)).view(np.int32)
    return (v & 0x007FFFFF) - 0x00400000


def fp32_to_fp16(f: np.ndarray) -> np.ndarray:
    """Mirrors ggml_compute_fp32_to_fp16 (GGML_FP32_TO_FP16 in ggml-base): round to nearest even,
    subnormals included; NaN -> 0x7E00. Returns the uint16 bits."""
    f = np.asarray(f, F32)
    base = (np.abs(f) * F32(2.0 ** 112)) * F32(2.0 ** -110)
    w = f.view(np.uint32)
    shl1_w = w + w                                   # uint32 wrap-around like C
    sign = w & np.uint32(0x80000000)
    bias = np.maximum(shl1_w & np.uint32(0xFF000000), np.uint32(0x71000000))
    base = ((bias >> np.uint32(1)) + np.uint32(0x07800000)).view(F32) + base
    bits = base.view(np.uint32)
    nonsign = ((bits >> np.uint32(13)) & np.uint32(0x7C00)) + (bits & np.uint32(0x0FFF))
    h = (sign >> np.uint32(16)) | np.where(shl1_w > np.uint32(0xFF000000), np.uint32(0x7E00), nonsign)
    return h.astype(np.uint16)


def fp16_to_fp32(h: np.ndarray) -> np.ndarray:
    """GGML_FP16_TO_FP32: exact, so numpy's half -> float conversion is the same."""
    return np.asarray(h, np.uint16).view(np.float16).astype(F32)


def _seqsum(a: np.ndarray) -> np.ndarray:
    """`float s = 0; for (i...) s += a[i];` along axis 0, in that order."""
    s = np.zeros(a.shape[1:], F32)
    for i in range(a.shape[0]):
        s += a[i]
    return s


def _absmax(x: np.ndarray):
    """`if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }` from 0: first index of the
    largest |x| along axis 0 (argmax returns the first one). Returns (amax, max)."""
    ax = np.abs(x)
    i = np.argmax(ax, axis=0)
    cols = np.arange(x.shape[1])
    return ax[i, cols], x[i, cols]


def _pos_max(a: np.ndarray) -> np.ndarray:
    """`float m = 0; if (a[j] > m) m = a[j];` along axis 1 (+0 when nothing is positive)."""
    m = a.max(axis=1)
    return np.where(m > 0, m, F32(0))


def make_qkx2_quants(x, weights, nmax, rmin, rdelta, nstep, use_mad):
    """Mirrors make_qkx2_quants for x, weights of shape (n, B). Returns (scale, the_min, L)."""
    n = x.shape[0]
    mn = x.min(axis=0)
    mx = x.max(axis=0)
    sum_w = weights[0].copy()
    sum_x = sum_w * x[0]
    for i in range(1, n):
        sum_w += weights[i]
        sum_x += weights[i] * x[i]
    mn = np.where(mn > 0, F32(0), mn)
    flat = mx == mn                                   # C returns early: L = 0, scale 0
    mn0 = mn
    nmax_f = F32(nmax)

    def sq(d):
        return np.abs(d) if use_mad else d * d

    rng = np.where(flat, F32(1), mx - mn)
    iscale = nmax_f / rng
    scale = F32(1) / iscale
    L = np.clip(nearest_int(iscale * (x - mn)), 0, nmax)
    best_error = _seqsum(weights * sq(scale * L.astype(F32) + mn - x))
    for step in range(nstep + 1):
        # min (and so max - min) is the current best one, as in the C loop
        iscale = (F32(rmin) + F32(rdelta) * F32(step) + nmax_f) / np.where(flat, F32(1), mx - mn)
        Laux = np.clip(nearest_int(iscale * (x - mn)), 0, nmax)
        lf = Laux.astype(F32)
        wl = weights * lf
        sum_l = _seqsum(wl)
        sum_l2 = _seqsum(wl * lf)
        sum_xl = _seqsum(wl * x)
        D = sum_w * sum_l2 - sum_l * sum_l
        ok = D > 0
        Ds = np.where(ok, D, F32(1))
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / Ds
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / Ds
        pos = this_min > 0
        this_min = np.where(pos, F32(0), this_min)
        this_scale = np.where(pos, sum_xl / np.where(pos, sum_l2, F32(1)), this_scale)
        cur_error = _seqsum(weights * sq(this_scale * lf + this_min - x))
        upd = ok & (cur_error < best_error)
        L = np.where(upd, Laux, L)
        best_error = np.where(upd, cur_error, best_error)
        scale = np.where(upd, this_scale, scale)
        mn = np.where(upd, this_min, mn)
    scale = np.where(flat, F32(0), scale)
    mn = np.where(flat, mn0, mn)
    L = np.where(flat, 0, L)
    return scale, -mn, L


def make_qx_quants_rmse1(x, nmax):
    """Mirrors make_qx_quants(n, nmax, x, L, rmse_type=1, qw=NULL) for x of shape (n, B).
    Returns (scale, L) with L in [0, 2*nmax)."""
    amax, mx = _absmax(x)
    zero = amax < GROUP_MAX_EPS
    mxs = np.where(zero, F32(1), mx)
    w = x * x
    wx = w * x

    def try_scale(iscale):
        l = np.clip(nearest_int(iscale * x), -nmax, nmax - 1)
        lf = l.astype(F32)
        return l, _seqsum(wx * lf), _seqsum(w * lf * lf)

    l, sumlx, suml2 = try_scale(F32(-nmax) / mxs)
    L = l + nmax
    scale = np.where(suml2 != 0, sumlx / np.where(suml2 != 0, suml2, F32(1)), F32(0))
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        l, sumlx, suml2 = try_scale(-(F32(nmax) + F32(0.1) * F32(step)) / mxs)
        upd = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        L = np.where(upd, l + nmax, L)
        scale = np.where(upd, sumlx / np.where(upd, suml2, F32(1)), scale)
        best = np.where(upd, scale * sumlx, best)
    return np.where(zero, F32(0), scale), np.where(zero, 0, L)


def make_q3_quants_rmse(x, nmax):
    """Mirrors make_q3_quants(n, nmax, x, L, do_rmse=true) for x of shape (n, B).
    Returns (scale, L) with L in [0, 2*nmax)."""
    n = x.shape[0]
    amax, mx = _absmax(x)
    zero = amax < GROUP_MAX_EPS
    iscale = F32(-nmax) / np.where(zero, F32(1), mx)
    L = np.clip(nearest_int(iscale * x), -nmax, nmax - 1)
    w = x * x
    wx = w * x
    lf = L.astype(F32)
    sumlx = _seqsum(wx * lf)
    suml2 = _seqsum(w * lf * lf)
    for _ in range(5):
        # a block whose pass changed nothing would change nothing again, so running the
        # remaining passes on it (where C breaks out) gives the same result
        changed = False
        for i in range(n):
            Li = L[i].astype(F32)
            slx = sumlx - wx[i] * Li
            sl2 = suml2 - w[i] * Li * Li
            live = slx > 0
            new_l = np.clip(nearest_int(x[i] * sl2 / np.where(live, slx, F32(1))), -nmax, nmax - 1)
            live &= new_l != L[i]
            nl = new_l.astype(F32)
            slx = slx + wx[i] * nl
            sl2 = sl2 + w[i] * nl * nl
            acc = live & (sl2 > 0) & (slx * slx * suml2 > sumlx * sumlx * sl2)
            if acc.any():
                changed = True
                L[i] = np.where(acc, new_l, L[i])
                sumlx = np.where(acc, slx, sumlx)
                suml2 = np.where(acc, sl2, suml2)
        if not changed:
            break
    scale = np.where(suml2 > 0, sumlx / np.where(suml2 > 0, suml2, F32(1)), F32(0))
    return np.where(zero, F32(0), scale), np.where(zero, 0, L + nmax)


def _sub_blocks(x, size):
    """(nb, 256) super-blocks -> (size, nb*256/size): element index first, sub-blocks in order."""
    return np.ascontiguousarray(x.reshape(-1, size).T)


def _u8(a):
    """C's store of an int into a uint8_t (keeps the low byte)."""
    return (np.asarray(a) & 0xFF).astype(np.uint8)


def _f16_bytes(h):
    return h.astype("<u2").view(np.uint8).reshape(-1, 2)


def _pack_k4_scales(ls, lm):
    """The 12-byte 6-bit scale/min packing of quantize_row_q4_K_ref / q5_K (8 scales, 8 mins)."""
    s = np.zeros((ls.shape[0], 12), np.int64)
    s[:, 0:4] = ls[:, 0:4]
    s[:, 4:8] = lm[:, 0:4]
    s[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    s[:, 0:4] |= (ls[:, 4:8] >> 4) << 6
    s[:, 4:8] |= (lm[:, 4:8] >> 4) << 6
    return _u8(s)


def _q45_K(x, nmax, rmin, nstep):
    """The shared body of quantize_row_q4_K_ref (nmax 15) and quantize_row_q5_K_ref (nmax 31).
    Returns (d bits, dmin bits, 12 scale bytes, L (nb, 256))."""
    nb = x.shape[0]
    xs = _sub_blocks(x, 32)
    av_x = np.sqrt(_seqsum(xs * xs) / F32(32))
    weights = av_x + np.abs(xs)
    scales, mins, L = make_qkx2_quants(xs, weights, nmax, rmin, 0.1, nstep, False)
    scales = scales.reshape(nb, 8)
    mins = mins.reshape(nb, 8)
    L = L.T.reshape(nb, QK_K)
    max_scale = _pos_max(scales)
    max_min = _pos_max(mins)
    inv_scale = np.where(max_scale > 0, F32(63) / np.where(max_scale > 0, max_scale, F32(1)), F32(0))
    inv_min = np.where(max_min > 0, F32(63) / np.where(max_min > 0, max_min, F32(1)), F32(0))
    ls = np.minimum(63, nearest_int(inv_scale[:, None] * scales) & 0xFF)   # uint8_t, then MIN(63, .)
    lm = np.minimum(63, nearest_int(inv_min[:, None] * mins) & 0xFF)
    d = fp32_to_fp16(max_scale / F32(63))
    dmin = fp32_to_fp16(max_min / F32(63))
    # get_scale_min_k4 gives back ls, lm
    dj = (fp16_to_fp32(d)[:, None] * ls.astype(F32))
    dmj = (fp16_to_fp32(dmin)[:, None] * lm.astype(F32))
    nz = np.repeat(dj != 0, 32, axis=1)
    xr = x + np.repeat(dmj, 32, axis=1)
    l = np.clip(nearest_int(xr / np.repeat(np.where(dj != 0, dj, F32(1)), 32, axis=1)), 0, nmax)
    L = np.where(nz, l, L)
    return d, dmin, _pack_k4_scales(ls, lm), L


def quantize_q4_K(x):
    """Mirrors quantize_row_q4_K_ref; x (nb, 256) -> (nb, 144) bytes: d, dmin, scales[12], qs[128]."""
    d, dmin, sc, L = _q45_K(x, 15, -1.0, 20)
    L = L.reshape(-1, 4, 2, 32)
    qs = L[:, :, 0] | (L[:, :, 1] << 4)
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), sc, _u8(qs.reshape(-1, 128))], axis=1)


def quantize_q5_K(x):
    """Mirrors quantize_row_q5_K_ref; x (nb, 256) -> (nb, 176) bytes: d, dmin, scales[12], qh[32], qs[128]."""
    d, dmin, sc, L = _q45_K(x, 31, -0.5, 15)
    L = L.reshape(-1, 4, 2, 32)                       # 64-element groups n, halves, j
    qs = (L[:, :, 0] & 0xF) | ((L[:, :, 1] & 0xF) << 4)
    hi = L >> 4                                      # the 5th bit: m1 = 1 << 2n, m2 = 2 << 2n
    qh = np.zeros((L.shape[0], 32), np.int64)
    for k in range(4):
        qh |= (hi[:, k, 0] << (2 * k)) | (hi[:, k, 1] << (2 * k + 1))
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), sc, _u8(qh), _u8(qs.reshape(-1, 128))], axis=1)


def quantize_q6_K(x):
    """Mirrors quantize_row_q6_K_ref; x (nb, 256) -> (nb, 210) bytes: ql[128], qh[64], scales[16], d."""
    nb = x.shape[0]
    scales, L = make_qx_quants_rmse1(_sub_blocks(x, 16), 32)
    scales = scales.reshape(nb, 16)
    L = L.T.reshape(nb, QK_K)
    max_abs, max_scale = _absmax(scales.T)
    zero = max_abs < GROUP_MAX_EPS                    # C: memset the whole block to 0
    iscale = F32(-128) / np.where(zero, F32(1), max_scale)
    d = fp32_to_fp16(F32(1) / iscale)
    sc = np.minimum(127, nearest_int(iscale[:, None] * scales))
    sc = ((sc + 128) & 0xFF) - 128                    # stored in int8_t
    dj = fp16_to_fp32(d)[:, None] * sc.astype(F32)
    nz = np.repeat(dj != 0, 16, axis=1)
    l = np.clip(nearest_int(x / np.repeat(np.where(dj != 0, dj, F32(1)), 16, axis=1)), -32, 31) + 32
    L = np.where(nz, l, L).reshape(nb, 2, 4, 32)      # 128-element halves, quarters, l
    ql = np.concatenate([L[:, :, 0] & 0xF | (L[:, :, 2] & 0xF) << 4,
                         L[:, :, 1] & 0xF | (L[:, :, 3] & 0xF) << 4], axis=2)
    qh = (L[:, :, 0] >> 4) | (L[:, :, 1] >> 4) << 2 | (L[:, :, 2] >> 4) << 4 | (L[:, :, 3] >> 4) << 6
    out = np.concatenate([_u8(ql.reshape(nb, 128)), _u8(qh.reshape(nb, 64)), _u8(sc), _f16_bytes(d)], axis=1)
    out[zero] = 0
    return out


def quantize_q3_K(x):
    """Mirrors quantize_row_q3_K_ref; x (nb, 256) -> (nb, 110) bytes: hmask[32], qs[64], scales[12], d."""
    nb = x.shape[0]
    scales, L = make_q3_quants_rmse(_sub_blocks(x, 16), 4)
    scales = scales.reshape(nb, 16)
    L = L.T.reshape(nb, QK_K)
    _, max_scale = _absmax(scales.T)
    has = max_scale != 0
    iscale = F32(-32) / np.where(has, max_scale, F32(1))
    l = nearest_int(iscale[:, None] * scales)
    l = ((l + 128) & 0xFF) - 128                      # int8_t l = nearest_int(...)
    l = np.where(has[:, None], np.clip(l, -32, 31) + 32, 0)
    s = np.zeros((nb, 12), np.int64)
    s[:, 0:8] = (l[:, 0:8] & 0xF) | ((l[:, 8:16] & 0xF) << 4)
    for j in range(16):
        s[:, 8 + j % 4] |= (l[:, j] >> 4) << (2 * (j // 4))
    d = np.where(has, fp32_to_fp16(F32(1) / iscale), fp32_to_fp16(F32(0)))
    dj = fp16_to_fp32(d)[:, None] * (l - 32).astype(F32)     # decoded 6-bit scale - 32
    nz = np.repeat(dj != 0, 16, axis=1)
    q = np.clip(nearest_int(x / np.repeat(np.where(dj != 0, dj, F32(1)), 16, axis=1)), -4, 3) + 4
    L = np.where(nz, q, L).reshape(nb, 8, 32)          # high bit of element 32k+m -> hmask[m] bit k
    hmask = np.zeros((nb, 32), np.int64)
    for k in range(8):
        hmask |= (L[:, k] > 3).astype(np.int64) << k
    L = np.where(L > 3, L - 4, L).reshape(nb, 2, 4, 32)
    qs = L[:, :, 0] | L[:, :, 1] << 2 | L[:, :, 2] << 4 | L[:, :, 3] << 6
    return np.concatenate([_u8(hmask), _u8(qs.reshape(nb, 64)), _u8(s), _f16_bytes(d)], axis=1)


def quantize_q2_K(x):
    """Mirrors quantize_row_q2_K_ref; x (nb, 256) -> (nb, 84) bytes: scales[16], qs[64], d, dmin."""
    nb = x.shape[0]
    xs = _sub_blocks(x, 16)
    scales, mins, L = make_qkx2_quants(xs, np.abs(xs), 3, -0.5, 0.1, 15, True)
    scales = scales.reshape(nb, 16)
    mins = mins.reshape(nb, 16)
    L = L.T.reshape(nb, QK_K)
    max_scale = _pos_max(scales)
    max_min = _pos_max(mins)
    hs, hm = max_scale > 0, max_min > 0
    q4scale = F32(15)
    ls = nearest_int((q4scale / np.where(hs, max_scale, F32(1)))[:, None] * scales)
    lm = nearest_int((q4scale / np.where(hm, max_min, F32(1)))[:, None] * mins)
    sc = np.where(hs[:, None], ls & 0xFF, 0)
    sc = np.where(hm[:, None], (sc | (lm << 4)) & 0xFF, sc)
    zero16 = fp32_to_fp16(F32(0))
    d = np.where(hs, fp32_to_fp16(max_scale / q4scale), zero16)
    dmin = np.where(hm, fp32_to_fp16(max_min / q4scale), zero16)
    dj = fp16_to_fp32(d)[:, None] * (sc & 0xF).astype(F32)
    dmj = fp16_to_fp32(dmin)[:, None] * (sc >> 4).astype(F32)
    nz = np.repeat(dj != 0, 16, axis=1)
    xr = x + np.repeat(dmj, 16, axis=1)
    q = np.clip(nearest_int(xr / np.repeat(np.where(dj != 0, dj, F32(1)), 16, axis=1)), 0, 3)
    L = np.where(nz, q, L).reshape(nb, 2, 4, 32)
    qs = L[:, :, 0] | L[:, :, 1] << 2 | L[:, :, 2] << 4 | L[:, :, 3] << 6
    return np.concatenate([_u8(sc), _u8(qs.reshape(nb, 64)), _f16_bytes(d), _f16_bytes(dmin)], axis=1)


QUANTIZERS = {"Q2_K": quantize_q2_K, "Q3_K": quantize_q3_K, "Q4_K": quantize_q4_K,
              "Q5_K": quantize_q5_K, "Q6_K": quantize_q6_K}


def quantize(x: np.ndarray, qtype) -> np.ndarray:
    """Quantize float32 rows (rows, n_per_row) like llama.cpp's quantize_{q2..q6}_K without an imatrix.
    qtype: "Q4_K" etc. or a gguf.GGMLQuantizationType. Returns uint8 (rows, n_per_row/256*block bytes)."""
    name = getattr(qtype, "name", qtype)
    if name not in QUANTIZERS:
        raise ValueError(f"unsupported K-quant type {qtype!r} (have {sorted(QUANTIZERS)})")
    x = np.ascontiguousarray(x, dtype=F32)
    if x.ndim == 1:
        x = x[None]
    rows, n_per_row = x.shape[0], x.shape[-1]
    if n_per_row % QK_K:
        raise ValueError(f"row length {n_per_row} is not a multiple of {QK_K}")
    blocks = x.reshape(-1, QK_K)
    out = np.empty((blocks.shape[0], BLOCK_BYTES[name]), np.uint8)
    with np.errstate(all="ignore"):          # masked-out lanes may divide by zero / overflow
        for i in range(0, blocks.shape[0], CHUNK):
            out[i:i + CHUNK] = QUANTIZERS[name](blocks[i:i + CHUNK])
    return out.reshape(*x.shape[:-1], n_per_row // QK_K * BLOCK_BYTES[name])
