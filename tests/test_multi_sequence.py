"""Several sequences in one context (n_seq_max, llama.cpp's non-unified KV: a stream each): every
sequence's logits are bit for bit those of running it alone, prompts and decode steps, and a
decode step of all sequences in one ubatch reads each weight once where the format allows."""
import numpy as np
import pytest

import ggraph
from conftest import load_script
from ggraph.errors import GGraphError
from ggraph.runtime import op_kernels
from ggraph.runtime.kernels import matmul

PROMPTS = ["The cat sat on the mat.", "Once upon a time there", "Hello"]
N_CTX_SEQ = 256


def _model(kind, tmp_path_factory):
    d = tmp_path_factory.mktemp("multiseq")
    if kind.startswith("llama"):
        return ggraph.load(load_script("make_tiny_llama").make(str(d / f"{kind}.gguf"), kind.split("-")[1], 0, "tiny"))
    arch, t = kind.split("-")
    return ggraph.load(load_script("make_tiny_model").make(str(d / f"{kind}.gguf"), arch, t, 0, wide=t == "Q4_K_M"))


def _solo(model, ids, n_steps):
    ctx = model.new_context(n_ctx=N_CTX_SEQ, n_threads=2)
    out = [ctx.decode(ids)]
    for _ in range(n_steps):
        out.append(ctx.decode([int(out[-1].argmax())]))
    return out


@pytest.mark.parametrize("kind", ["llama-Q8_0", "llama-F32", "qwen3moe-F32", "gemma2-Q4_K_M", "phi3-Q8_0"])
def test_every_sequence_matches_running_it_alone(kind, tmp_path_factory):
    model = _model(kind, tmp_path_factory)
    prompts = [model.tokenize(t) for t in PROMPTS]
    n_steps = 10
    solo = [_solo(model, ids, n_steps) for ids in prompts]
    ctx = model.new_context(n_ctx=N_CTX_SEQ * 3, n_threads=2, n_seq_max=3)
    last = {s: ctx.decode(ids, seq_id=s) for s, ids in enumerate(prompts)}
    for s in range(3):
        assert np.array_equal(last[s], solo[s][0]), f"prompt of sequence {s}"
    for step in range(n_steps):
        active = {s: int(last[s].argmax()) for s in range(3) if not (s == 2 and step >= 6)}   # seq 2 leaves
        last.update(ctx.decode_batch(active))
        for s in active:
            assert np.array_equal(last[s], solo[s][step + 1]), f"sequence {s}, step {step}"
    assert ctx.seq_n_past(2) == len(prompts[2]) + 6


def test_a_sequence_joining_later_and_reset_reuse(tmp_path_factory):
    model = _model("llama-Q8_0", tmp_path_factory)
    a, b = (model.tokenize(t) for t in PROMPTS[:2])
    solo_a, solo_b = _solo(model, a, 6), _solo(model, b, 3)
    ctx = model.new_context(n_ctx=N_CTX_SEQ * 2, n_threads=2, n_seq_max=2)
    la = ctx.decode(a, seq_id=0)
    for step in range(3):
        la = ctx.decode_batch({0: int(la.argmax())})[0]
    ctx.reset(1)
    lb = ctx.decode(b, seq_id=1)                 # joins while 0 is mid-generation
    for step in range(3):
        out = ctx.decode_batch({0: int(la.argmax()), 1: int(lb.argmax())})
        la, lb = out[0], out[1]
        assert np.array_equal(la, solo_a[step + 4]) and np.array_equal(lb, solo_b[step + 1])


def test_weights_are_read_once_per_step_where_the_batch_is_rowwise(tmp_path_factory, monkeypatch):
    """Q8_0: one product per weight for the 3 sequences; F32 (sgemm's order differs from one row's):
    one per row."""
    for kind, per_weight in (("llama-Q8_0", 1), ("llama-F32", 3)):
        model = _model(kind, tmp_path_factory)
        ctx = model.new_context(n_ctx=N_CTX_SEQ * 3, n_threads=2, n_seq_max=3)
        for s, t in enumerate(PROMPTS):
            ctx.decode(model.tokenize(t), seq_id=s)
        calls = []
        real = matmul.mul_mat_call

        def counted(w, xc, out):         # the product's kernel, counting its calls when they run
            kernel, args = real(w, xc, out)
            return (lambda *a: (calls.append(w.name), kernel(*a))), args
        monkeypatch.setattr(matmul, "mul_mat_call", counted)       # row by row goes through here
        monkeypatch.setattr(op_kernels, "mul_mat_call", counted)   # a plan binds its batch call here
        ctx.decode_batch({0: 5, 1: 6, 2: 7})
        monkeypatch.undo()
        counts = {name: calls.count(name) for name in set(calls)}
        assert counts["blk.0.attn_q.weight"] == per_weight and counts["output.weight"] == per_weight, counts


@pytest.mark.parametrize("fmt", ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                 "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
def test_batch_is_rowwise_rule_holds(fmt):
    """matmul.batch_is_rowwise says a batch of M rows gives each row its one-row product: checked for
    M = 2..9 (where it says so, the rows are bit-identical; the rule is what decode_batch trusts)."""
    import sys, os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    import kquants
    from gguf import GGMLQuantizationType as T
    from gguf.quants import quantize
    from ggraph.runtime.weights import prepare_weight
    rng = np.random.default_rng(1)
    K, N = 512, 64
    w = rng.standard_normal((N, K)).astype(np.float32)
    raw = {"F32": lambda: w.view(np.uint8), "F16": lambda: w.astype(np.float16).view(np.uint8)}.get(fmt)
    raw = raw() if raw else (kquants.quantize(w, fmt) if fmt in kquants.BLOCK_BYTES else quantize(w, T[fmt]))
    W = prepare_weight("blk.0.ffn_up.weight", int(T[fmt]), raw, K, N)
    for M in range(2, 10):
        if not matmul.batch_is_rowwise(W, M):
            continue
        x = rng.standard_normal((M, K)).astype(np.float32)
        batch, one = np.empty((M, N), np.float32), np.empty((1, N), np.float32)
        matmul.mul_mat(W, x, batch)
        for m in range(M):
            matmul.mul_mat(W, x[m:m + 1], one)
            assert np.array_equal(one[0], batch[m]), (fmt, M, m)


def test_bad_sequence_ids(tmp_path_factory):
    model = _model("llama-Q8_0", tmp_path_factory)
    ctx = model.new_context(n_ctx=512, n_threads=1, n_seq_max=2)
    for bad in (2, -1, 1.5, "0"):
        with pytest.raises(GGraphError, match="seq_id"):
            ctx.decode([1, 2], seq_id=bad)
    with pytest.raises(GGraphError, match="n_seq_max"):
        model.new_context(n_ctx=512, n_seq_max=0)
    with pytest.raises(GGraphError, match="decode_batch"):
        ctx.decode_batch({})


def test_bench_parallel_runs_and_reports_scaling(tmp_path_factory):
    """`ggraph bench --parallel`: a row per backend and N, aggregate t/s and the scale column (the
    speed itself is measured in docs/bench.md, not here)."""
    import io
    from ggraph.runtime.apps.bench_parallel import bench_parallel
    model = _model("llama-Q8_0", tmp_path_factory)
    out = io.StringIO()
    rows = bench_parallel(model, n_seqs=(1, 2), n_gen=4, reps=1, n_threads=1, out=out, progress=None)
    assert [r["n_parallel"] for r in rows] == [1, 2] and all(r["avg_ts"] > 0 for r in rows)
    assert "| ggraph | 1 | 2 |" in out.getvalue() and "x |" in out.getvalue()
