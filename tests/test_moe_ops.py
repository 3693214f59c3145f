"""The ops of expert routing and mul_mat_id, against float64 numpy references (and, for the order
of a product, against the one-row mul_mat llama.cpp's mul_mat_id runs per routed row)."""
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from ggraph import ops
from ggraph.graph import F32, I32, Graph
from ggraph.runtime.executor import Plan
from ggraph.runtime.kernels.matmul import mul_mat, mul_mat_id
from ggraph.runtime.weights import Weight, prepare_weight


def _run(build, inputs):
    g = Graph()
    ins = {k: g.input(k, t, ne) for k, (t, ne, _) in inputs.items()}
    for name, out in build(ins).items():
        g.set_output(out, name)
    plan = Plan(g, {}, {})
    for k, (_, _, v) in inputs.items():
        plan.inputs[k][...] = v.reshape(plan.inputs[k].shape)
    plan.run()
    return plan.outputs


def test_argsort_top_k_is_descending_and_keeps_ties_in_index_order():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    x[1, [2, 5, 6]] = x[1].max() + 1          # a three-way tie at the top
    out = _run(lambda i: {"top": ops.cont(ops.argsort_top_k(i["x"], 3)),
                          "asc": ops.argsort(i["x"], ops.SORT_ORDER_ASC)},
               {"x": (F32, (8, 5), x)})
    top = out["top"].reshape(5, 3)
    ref = np.argsort(-x.astype(np.float64), axis=1, kind="stable")[:, :3]
    assert np.array_equal(top, ref) and list(top[1]) == [2, 5, 6]
    assert np.array_equal(out["asc"].reshape(5, 8), np.argsort(x.astype(np.float64), axis=1, kind="stable"))


def test_sum_rows_clamp_div_sigmoid():
    rng = np.random.default_rng(1)
    x = (rng.random((6, 3)) * np.array([[1], [1e-6], [1], [1], [1], [1]])).astype(np.float32)
    x[2, 0] = np.nan
    out = _run(lambda i: {"s": ops.sum_rows(i["x"]),
                          "c": ops.clamp(ops.sum_rows(i["x"]), 6.103515625e-5, float("inf")),
                          "d": ops.div(i["x"], ops.sum_rows(i["x"])),
                          "sig": ops.sigmoid(i["x"])},
               {"x": (F32, (3, 6), x)})
    s64 = x.astype(np.float64).sum(1)
    s = out["s"].reshape(6)
    assert np.array_equal(s[~np.isnan(s64)], s64[~np.isnan(s64)].astype(np.float32))   # double sum, one rounding
    c = out["c"].reshape(6)
    assert c[1] == np.float32(6.103515625e-5) and c[2] == np.inf          # ggml's MIN/MAX: NaN -> max
    d = out["d"].reshape(6, 3)
    ok = ~np.isnan(s64)
    assert np.array_equal(d[ok], (x / s[:, None])[ok])                   # a true division in float32
    sig = out["sig"].reshape(6, 3)
    ref = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    assert np.allclose(sig[ok], ref[ok], rtol=2e-7, atol=0)


def test_get_rows_gathers_per_batch_rows():
    rng = np.random.default_rng(2)
    probs = rng.random((4, 6)).astype(np.float32)            # [tokens, experts]
    sel = np.array([[5, 0], [1, 2], [3, 3], [0, 4]], np.int32)
    out = _run(lambda i: {"w": ops.get_rows(ops.reshape_3d(i["p"], 1, 6, 4), i["s"])},
               {"p": (F32, (6, 4), probs), "s": (I32, (2, 4), sel)})
    assert np.array_equal(out["w"].reshape(4, 2), np.take_along_axis(probs, sel, axis=1))


_KQUANT_SCALES = {T.Q4_K: (0, 2), T.Q6_K: (208,)}     # byte offsets of the fp16 scales in a block


def _experts(t, n_expert, n, k, rng):
    if t in _KQUANT_SCALES:                  # gguf-py cannot quantize these: random blocks, sane scales
        bb = {T.Q4_K: 144, T.Q6_K: 210}[t]
        raw = rng.integers(0, 256, (n_expert * n, k // 256, bb), dtype=np.uint8)
        for o in _KQUANT_SCALES[t]:
            d = rng.uniform(1e-3, 4e-3, raw.shape[:2]).astype(np.float16)
            raw[:, :, o:o + 2] = d.view(np.uint8).reshape(*raw.shape[:2], 2)
        raw = raw.reshape(n_expert * n, -1)
    else:
        w = (rng.standard_normal((n_expert * n, k)) * 0.1).astype(np.float32)
        raw = w if t == T.F32 else quantize(w, t)
    return prepare_weight("blk.0.ffn_up_exps.weight", int(t), raw, k, n_expert * n, stacked=True), raw


@pytest.mark.parametrize("t,n", [(T.F32, 32), (T.Q8_0, 32), (T.Q4_K, 32), (T.Q4_K, 36), (T.Q6_K, 32)],
                         ids=["F32", "Q8_0", "Q4_K-repacked", "Q4_K-rows36", "Q6_K"])
def test_mul_mat_id_runs_only_the_selected_experts_in_the_one_row_order(t, n, monkeypatch):
    """llama.cpp: the one-row kernel per routed row (vec_dot, or the repacked gemv), except
    non-repacked K-quant experts with >= 8 rows, which take the tiled kernel over their rows."""
    rng = np.random.default_rng(3)
    n_expert, k, n_tok, k_used = 6, 256, 11, 2
    w, raw = _experts(t, n_expert, n, k, rng)
    x = rng.standard_normal((n_tok, 1, k)).astype(np.float32)
    ids = np.stack([rng.choice([0, 2, 3, 5], 2, replace=False) for _ in range(n_tok)]).astype(np.int32)
    ids[:9, 0] = 3                                      # expert 3 gets >= 8 rows (llama.cpp: tiled for K-quants)
    used = []
    orig = Weight.expert
    monkeypatch.setattr(Weight, "expert", lambda self, e, rows: used.append(e) or orig(self, e, rows))
    out = np.full((n_tok, k_used, n), np.nan, np.float32)
    mul_mat_id(w, n, x, ids, out)
    assert sorted(set(used)) == sorted(set(ids.ravel())) and len(used) == len(set(ids.ravel()))
    for e in set(ids.ravel()):
        rows = [(tt, s) for tt in range(n_tok) for s in range(k_used) if ids[tt, s] == e]
        we = w.expert(e, n)
        for tt, s in rows:
            one = np.empty((1, n), np.float32)
            tiled = t == T.Q6_K or (t == T.Q4_K and n % 8)
            if tiled and len(rows) >= 8:
                xb = np.stack([x[a, 0] for a, _ in rows])       # tiled: the expert's rows as one batch
                allb = np.empty((len(rows), n), np.float32)
                mul_mat(we, xb, allb)
                one[0] = allb[rows.index((tt, s))]
            else:
                mul_mat(we, x[tt, :, :], one)
            assert np.array_equal(out[tt, s], one[0]), (e, tt, s)
    deq = (raw if t == T.F32 else dequantize(raw, t)).reshape(n_expert, n, k)
    ref = np.einsum("tsnk,tk->tsn", deq[ids].astype(np.float64), x[:, 0].astype(np.float64))
    assert np.allclose(out, ref, rtol=0.05, atol=0.05 * np.abs(ref).max())
