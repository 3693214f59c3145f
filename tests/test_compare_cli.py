"""The eval callback (Context.decode(cb_eval=...) / set_eval_callback) and `ggraph compare` (logits,
continuations, --tensors, --decode, --json) on a tiny qwen3 model that ggraph reproduces bit for bit,
plus planted bugs (a scaled weight, a perturbed kernel) that the tensor diff must localise."""
import json
import os
import sys

import numpy as np
import pytest

import ggraph
from conftest import FIXTURES, load_script
from ggraph.errors import GGraphError
from ggraph.runtime import executor
from ggraph.runtime.apps import cli, compare
from ggraph.runtime.context import EvalStopped

PROMPT = "The cat sat on the mat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cmp") / "tiny-qwen3-F32.gguf")
    return load_script("make_tiny_model").make(path, "qwen3", "F32", 0)


@pytest.fixture(scope="module")
def model(tiny):
    return ggraph.load(tiny)


def _named_ops(ctx, n, n_out):
    g = ctx.build_graph(n, n_out, ctx.kv.n_kv_for(n))
    return [t.name for t in g.gf.ops() if t.name]


# -- the eval callback ----------------------------------------------------------------------------

def test_callback_sees_every_named_node_in_graph_order(model):
    ctx = model.new_context(n_ctx=512, n_threads=2)
    ids = model.tokenize(PROMPT)
    ref = ctx.decode(ids, logits_all=True)
    ctx.reset()
    seen = []
    out = ctx.decode(ids, logits_all=True, cb_eval=lambda name, v, t: seen.append((name, v, t)))
    assert np.array_equal(out.view(np.uint32), ref.view(np.uint32))      # same values as the fused plan
    names = [s[0] for s in seen]
    assert names == _named_ops(ctx, len(ids), len(ids))
    assert names[:3] == ["inp_embd", "attn_norm-0", "Qcur-0"] and names[-1] == "result_output"
    assert names.index("l_out-0") < names.index("attn_norm-1")
    for name, v, t in seen:
        assert v.dtype == np.float32 and v.shape == tuple(reversed(t.ne)) and t.name == name
    logits = seen[-1][1]
    assert np.array_equal(logits.reshape(len(ids), -1), out)       # result_output is the logits
    logits[...] = 0                                                  # a copy, not the plan's buffer
    assert not np.array_equal(logits.reshape(len(ids), -1), out)


def test_callback_one_token_step_and_set_eval_callback(model):
    ctx = model.new_context(n_ctx=512, n_threads=2)
    ids = model.tokenize(PROMPT)
    ctx.decode(ids)
    names = []
    ctx.set_eval_callback(lambda name, v, t: names.append(name))    # returns None: continue
    last = ctx.decode([ids[-1]])
    assert names == _named_ops(ctx, 1, 1) and ctx.n_past == len(ids) + 1
    ctx.set_eval_callback(None)
    ctx.truncate(len(ids))
    assert np.array_equal(ctx.decode([ids[-1]]), last) and len(names) == len(_named_ops(ctx, 1, 1))
    with pytest.raises(GGraphError):
        ctx.set_eval_callback(42)


def test_false_stops_the_run_and_keeps_the_cache(model):
    ctx = model.new_context(n_ctx=512, n_threads=2)
    ids = model.tokenize(PROMPT)
    ctx.decode(ids[:3])
    seen = []

    def cb(name, v, t):
        seen.append(name)
        return name != "Qcur-1"

    with pytest.raises(EvalStopped) as e:
        ctx.decode(ids[3:], cb_eval=cb)
    assert e.value.node_name == "Qcur-1" and seen[-1] == "Qcur-1" and "result_output" not in seen
    assert ctx.n_past == 3                                   # as before the stopped call
    full = model.new_context(n_ctx=512, n_threads=2).decode(ids)
    assert np.array_equal(ctx.decode(ids[3:]), full)


def test_no_callback_costs_no_extra_calls(model, monkeypatch):
    calls = []
    monkeypatch.setattr(executor.Plan, "run_observed", lambda self, fn: calls.append(1))
    monkeypatch.setattr(executor.Plan, "_observe_schedule", lambda self: calls.append(2))
    ctx = model.new_context(n_ctx=512, n_threads=2)
    ids = model.tokenize(PROMPT)
    ctx.decode(ids)
    ctx.decode([ids[0]])
    assert calls == []
    assert ctx._steps and all(k[-1] != "eval" for k in ctx._steps)    # only the ordinary (fused) plans
    for step in ctx._steps.values():
        assert step.plan._observe is None


# -- measures ---------------------------------------------------------------------------------------

def test_logit_stats_match_a_float64_reference():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(5, 300)).astype(np.float32) * 3
    ours = ref.copy()
    ours[1] += rng.normal(size=300).astype(np.float32) * 0.1
    ours[3, 7] = ours[3].max() + 1
    s = compare.logit_stats(ref, ours)
    p = np.exp(ref.astype(np.float64))
    p /= p.sum(1, keepdims=True)
    q = np.exp(ours.astype(np.float64))
    q /= q.sum(1, keepdims=True)
    kl = (p * np.log(p / q)).sum(1)
    assert s["mean_kl"] == pytest.approx(kl.mean(), rel=1e-9) and s["max_kl"] == pytest.approx(kl.max(), rel=1e-9)
    assert s["identical_rows"] == 3 and s["n"] == 5
    assert s["top1"] == np.mean(ref.argmax(1) == ours.argmax(1))
    assert s["max_abs_diff"] == np.abs(ref.astype(np.float64) - ours).max()
    assert compare.first_difference([1, 2, 3], [1, 2, 3]) is None
    assert compare.first_difference([1, 2, 3], [1, 5, 3]) == 1


# -- the command without llama.cpp / bad input --------------------------------------------------

def test_missing_llama_cpp_is_one_line_and_exit_2(tiny, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)      # import llama_cpp raises ImportError
    assert cli.main(["compare", "-m", tiny, "-p", PROMPT]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "ggraph[compare]"' in err


@pytest.mark.parametrize("argv, msg", [
    (["-p", PROMPT, "-n", "-1"], "-n must be >= 0"),
    (["-p", PROMPT, "-t", "0"], "n_threads must be"),
    (["--prompts", os.path.join(FIXTURES, "prompts.json"), "--tensors"], "--tensors compares one prompt"),
    (["-f", "/nonexistent/prompt.txt"], "cannot read prompt file"),
])
def test_bad_input_is_one_error_line(tiny, argv, msg, capsys):
    assert cli.main(["compare", "-m", tiny] + argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and msg in err


def test_bad_prompts_file(tiny, tmp_path, capsys):
    bad = tmp_path / "p.json"
    bad.write_text('{"not": "a list"}')
    assert cli.main(["compare", "-m", tiny, "--prompts", str(bad)]) == 1
    assert "expected a non-empty JSON list of strings" in capsys.readouterr().err


# -- against llama.cpp ------------------------------------------------------------------------------

def _run(argv, capsys):
    rc = cli.main(["compare"] + argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    return out


@pytest.mark.llamacpp
def test_compare_text_report_is_exact(tiny, capsys):
    pytest.importorskip("llama_cpp")
    out = _run(["-m", tiny, "-p", PROMPT, "-n", "12"], capsys)
    assert "tokenization       identical (8 tokens)" in out
    assert "8 positions: top-1 1.0000, KL mean 0 max 0, max |logit diff| 0, bit-identical rows 8/8" in out
    assert "11 steps with the same inputs: top-1 1.0000, KL mean 0 max 0" in out
    assert "greedy continuation (12 tokens): identical" in out


@pytest.mark.llamacpp
def test_compare_prompts_json(tiny, capsys):
    pytest.importorskip("llama_cpp")
    out = _run(["-m", tiny, "--prompts", os.path.join(FIXTURES, "prompts.json"), "-n", "4", "--json", "--self-spread"],
               capsys)
    d = json.loads(out)
    prompts = json.load(open(os.path.join(FIXTURES, "prompts.json")))
    s = d["summary"]
    assert s["n_prompts"] == len(prompts) == len(d["prompts"])
    assert s["tokenization_match"] == len(prompts) and s["identical_continuations"] == len(prompts)
    p = s["prompt_logits"]
    assert p["top1"] == 1.0 and p["mean_kl"] == 0 and p["max_abs_diff"] == 0 and p["identical_rows"] == p["n"]
    assert s["decode_logits"]["n"] == 3 * len(prompts) and s["decode_logits"]["identical_rows"] == 3 * len(prompts)
    r = d["prompts"][0]
    assert r["prompt"] == prompts[0] and r["continuation"]["ggraph"] == r["continuation"]["llama_cpp"]
    spread = s["llama_cpp_token_by_token"]      # llama.cpp against itself: not necessarily 0
    assert spread["n"] == p["n"] and spread["mean_kl"] >= 0 and 0 <= spread["identical_continuations"] <= len(prompts)


@pytest.mark.llamacpp
def test_tokenization_mismatch_is_reported(tiny, monkeypatch, capsys):
    pytest.importorskip("llama_cpp")
    load = compare.load_ggraph

    def other_tokenizer(path):
        m = load(path)
        real = m.tokenize
        m.tokenize = lambda text, **kw: real(text, **kw)[:-1] + [5]
        return m

    monkeypatch.setattr(compare, "load_ggraph", other_tokenizer)
    out = _run(["-m", tiny, "-p", PROMPT, "-n", "4"], capsys)
    assert "tokenization       DIFFERENT from token 7" in out and "both sides run llama.cpp's 8 ids" in out
    assert "bit-identical rows 8/8" in out


@pytest.mark.llamacpp
@pytest.mark.parametrize("mode", ["--tensors", "--decode"])
def test_tensors_all_bit_identical(tiny, mode, capsys):
    pytest.importorskip("llama_cpp")
    d = json.loads(_run(["-m", tiny, "-p", PROMPT, mode, "--json"], capsys))
    assert d["first_past_threshold"] is None and d["tokens_match"] and d["decode"] == (mode == "--decode")
    names = [t["name"] for t in d["tensors"]]
    assert names[0] == "attn_norm-0" and names[-1] == "result_output" and "Qcur-0#2" in names   # the rope
    assert d["n_matched"] >= 35 and not d["shape_mismatch"]
    assert all(t["identical"] == t["n"] and t["nmse"] == 0 for t in d["tensors"])
    text = _run(["-m", tiny, "-p", PROMPT, mode], capsys)
    assert "first tensor past threshold 1e-06 (normalised error): none" in text


def _scaled_weight(monkeypatch, name, factor):
    from ggraph.runtime.weights import prepare_weight
    load = compare.load_ggraph

    def perturbed(path):
        m = load(path)
        w = m.weights[name]
        m.weights[name] = prepare_weight(name, w.ggml_type, (w.f32() * np.float32(factor)).view(np.uint8), w.ne0, w.ne1)
        return m

    monkeypatch.setattr(compare, "load_ggraph", perturbed)


@pytest.mark.llamacpp
def test_planted_weight_bug_is_localised(tiny, monkeypatch, capsys):
    pytest.importorskip("llama_cpp")
    _scaled_weight(monkeypatch, "blk.1.attn_norm.weight", 1.01)     # normalised error ~1e-4
    d = json.loads(_run(["-m", tiny, "-p", PROMPT, "--tensors", "--json"], capsys))
    assert d["first_past_threshold"] == d["first_not_identical"] == "attn_norm-1"
    by = {t["name"]: t for t in d["tensors"]}
    assert all(t["identical"] == t["n"] for n, t in by.items() if n.endswith("-0"))   # layer 0 untouched
    assert by["attn_norm-1"]["identical"] < by["attn_norm-1"]["n"] and by["result_output"]["nmse"] > 0
    text = _run(["-m", tiny, "-p", PROMPT, "--tensors"], capsys)
    assert "first tensor past threshold 1e-06 (normalised error): attn_norm-1 (mul" in text
    assert "attn_norm-1" in [ln.split()[1] for ln in text.splitlines() if "<-- first past threshold" in ln]
    logits = json.loads(_run(["-m", tiny, "-p", PROMPT, "-n", "4", "--json"], capsys))["summary"]
    assert logits["prompt_logits"]["mean_kl"] > 0 and logits["prompt_logits"]["identical_rows"] == 0


@pytest.mark.llamacpp
def test_planted_kernel_bug_is_localised_and_continuations_marked(tiny, monkeypatch, capsys):
    pytest.importorskip("llama_cpp")
    from ggraph.runtime import op_kernels
    orig = op_kernels._BINDERS["soft_max"]

    def bad_soft_max(t, plan):          # a softmax that is off by 0.01% on every layer (nmse ~1e-8)
        fn, out = orig(t, plan), plan.array(t)

        def run():
            fn()
            out[...] *= np.float32(1.0001)
        return run

    monkeypatch.setitem(op_kernels._BINDERS, "soft_max", bad_soft_max)
    d = json.loads(_run(["-m", tiny, "-p", PROMPT, "--decode", "--json"], capsys))
    assert d["first_past_threshold"] is None                 # below the default 1e-6 ...
    assert d["first_not_identical"] == "kq_soft_max-0"       # ... but not bit for bit
    names = [t["name"] for t in d["tensors"]]
    assert all(t["identical"] == t["n"] for t in d["tensors"][:names.index("kq_soft_max-0")])
    d = json.loads(_run(["-m", tiny, "-p", PROMPT, "--decode", "--json", "--threshold", "1e-9"], capsys))
    assert d["first_past_threshold"] == "kq_soft_max-0"
    # a gross planted bug: the continuation diverges and the report marks the first differing token
    _scaled_weight(monkeypatch, "blk.0.attn_norm.weight", 1.5)
    text = _run(["-m", tiny, "-p", PROMPT, "-n", "8"], capsys)
    assert "first difference at generated token" in text and "[[" in text and "]]" in text


# -- ggraph graph -----------------------------------------------------------------------------------

def test_graph_command(tiny, tmp_path, capsys):
    dot = tmp_path / "g.dot"
    assert cli.main(["graph", "-m", tiny, "--tokens", "4", "--dot", str(dot)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("graph of tiny-qwen3-F32.gguf (qwen3): one ubatch of 4 tokens")
    assert "ops: mul_mat 19" in out and "per layer: blk.0-1 " in out and "attn_norm-0" in out
    text = dot.read_text()
    assert text.startswith("digraph ggraph {") and '"blk.0.attn_q.weight' in text and text.rstrip().endswith("}")
    assert cli.main(["graph", "-m", tiny, "--tokens", "4", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["n_tokens"] == 4 and d["n_nodes"] == len(d["nodes"]) and sum(d["op_counts"].values()) == d["n_ops"] + d["n_views"]
    assert d["weight_bytes"] == sum(d["weight_bytes_per_layer"].values()) + sum(d["weight_bytes_other"].values())
    row = next(r for r in d["nodes"] if r["name"] == "Qcur-0")
    assert row["op"] == "mul_mat" and row["shape"] == [64, 4] and row["bytes"] == 64 * 4 * 4
    assert row["src"] == ["blk.0.attn_q.weight", "attn_norm-0"]


def test_graph_bad_input(tiny, tmp_path, monkeypatch, capsys):
    assert cli.main(["graph", "-m", tiny, "--tokens", "0"]) == 1
    assert "--tokens must be >= 1" in capsys.readouterr().err
    import shutil
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.main(["graph", "-m", tiny, "--svg", str(tmp_path / "g.svg")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs Graphviz" in err
