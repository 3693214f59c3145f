"""ggraph perplexity: llama-perplexity's chunking and formulas, its KL-divergence base file format,
and (live) llama.cpp's own logits giving the same base file byte for byte."""
import io
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import ggraph
from conftest import load_script
from ggraph.errors import GGraphError
from ggraph.runtime.apps import perplexity as P

TEXT = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = load_script("make_tiny_llama").make(str(tmp_path_factory.mktemp("ppl") / "tiny.gguf"), "F32", 0, "tiny")
    return path, ggraph.load(path)


def _lse64(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def test_perplexity_is_the_second_half_of_each_chunk(tiny):
    """Against an independent float64 pass over the same logits: chunks of n_ctx from an empty cache,
    positions n_ctx/2 .. n_ctx-2 predicting the next token, exp(mean nll), llama.cpp's uncertainty."""
    path, model = tiny
    tokens = np.asarray(model.tokenize(TEXT), np.int64)
    n_ctx, n_chunks = 64, 5
    out = io.StringIO()
    res = P.perplexity(P.GgraphBackend(model, n_ctx, n_ctx, 1), tokens, n_ctx, n_chunks, None, out=out,
                       err=io.StringIO())
    ctx = model.new_context(n_ctx=n_ctx, n_threads=1)
    nll = []
    for i in range(n_chunks):
        chunk = tokens[i * n_ctx:(i + 1) * n_ctx]
        ctx.reset()
        lg = ctx.decode(chunk, logits_all=True).astype(np.float64)
        j = np.arange(n_ctx // 2, n_ctx - 1)
        nll.extend(_lse64(lg[j]) - lg[j, chunk[j + 1]])
    nll = np.array(nll)
    ppl = math.exp(nll.mean())
    unc = math.sqrt(((nll ** 2).mean() - nll.mean() ** 2) / (nll.size - 1)) * ppl
    assert res["count"] == nll.size == n_chunks * (n_ctx - n_ctx // 2 - 1)
    assert res["ppl"] == pytest.approx(ppl, rel=1e-6) and res["uncertainty"] == pytest.approx(unc, rel=1e-4)
    text = out.getvalue()
    assert text.startswith("[1]") and text.count(",[") == n_chunks - 1
    assert float(text.split("Final estimate: PPL = ")[1].split()[0]) == pytest.approx(ppl, rel=1e-6)


def test_base_file_round_trip_and_self_kl(tiny, tmp_path):
    path, model = tiny
    tokens = np.asarray(model.tokenize(TEXT), np.int64)
    base = str(tmp_path / "base.kld")
    backend = P.GgraphBackend(model, 64, 64, 1)
    P.perplexity(backend, tokens, 64, 4, None, base, out=io.StringIO(), err=io.StringIO())
    n_ctx, n_vocab, n_chunk, toks, fh = P.read_base(base)
    fh.close()
    assert (n_ctx, n_vocab, n_chunk) == (64, model.n_vocab, 4) and np.array_equal(toks, tokens[:256])
    # the quantized log-probs decode to the float64 log-softmax within half a quantization step
    ctx = model.new_context(n_ctx=64, n_threads=1)
    lg = ctx.decode(tokens[:64], logits_all=True)
    q = P.quantized_log_probs(lg[40], 2 * ((n_vocab + 1) // 2) + 4)
    scale, mn = q[:4].view(np.float32)
    ref = lg[40].astype(np.float64) - _lse64(lg[40:41])[0]
    dec = scale * q[4:4 + n_vocab].astype(np.float64) + mn
    visible = ref > mn + scale
    assert np.abs(dec[visible] - ref[visible]).max() <= scale * 0.51 + 1e-6
    res = P.kl_divergence(backend, base, -1, None, out=io.StringIO())
    assert res["same_top"] == 1.0 and abs(res["mean_kld"]) < 1e-5 and res["count"] == 4 * 31


def test_errors(tiny, tmp_path):
    path, model = tiny
    with pytest.raises(GGraphError, match="at least 1024 tokens"):
        P.perplexity(P.GgraphBackend(model, 512, 512, 1), np.arange(600), 512)
    bad = tmp_path / "x.kld"
    bad.write_bytes(b"not a logits file")
    with pytest.raises(GGraphError, match="does not look like"):
        P.read_base(str(bad))
    r = subprocess.run([sys.executable, "-m", "ggraph", "perplexity", "-m", path, "--kl-divergence"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "needs --kl-divergence-base" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.llamacpp
def test_llamacpp_backend_writes_the_same_base_file(tiny, tmp_path):
    """llama.cpp's logits (llama-cpp-python) through the same code: the base files are byte-identical,
    as ggraph's logits are llama.cpp's bit for bit."""
    pytest.importorskip("llama_cpp")
    path, model = tiny
    tokens = np.asarray(model.tokenize(TEXT), np.int64)
    ours, theirs = str(tmp_path / "g.kld"), str(tmp_path / "l.kld")
    P.perplexity(P.GgraphBackend(model, 64, 64, 1), tokens, 64, 3, None, ours, out=io.StringIO(), err=io.StringIO())
    P.perplexity(P.LlamaCppBackend(path, 64, 64, 1), tokens, 64, 3, None, theirs, out=io.StringIO(),
                 err=io.StringIO())
    assert open(ours, "rb").read() == open(theirs, "rb").read()


def test_perplexity_matches_llamacpps_fixture(tiny):
    """The tiny model over tests/fixtures/ppl_text.txt (Python's own docs, 4,776 tokens), n_ctx 128:
    llama.cpp's logits gave these running and final perplexities (tests/fixtures/llamacpp_tiny_perplexity.json)."""
    import json
    path, model = tiny
    fx = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "llamacpp_tiny_perplexity.json")))
    text = open(os.path.join(os.path.dirname(__file__), "fixtures", "ppl_text.txt"), encoding="utf-8").read()
    tokens = np.asarray(model.tokenize(text), np.int64)
    assert tokens.size == fx["n_tokens"]
    res = P.perplexity(P.GgraphBackend(model, fx["n_ctx"], fx["n_ctx"], 1), tokens, fx["n_ctx"], -1, None,
                       out=io.StringIO(), err=io.StringIO())
    assert res["chunks"] == pytest.approx(fx["chunks"], rel=1e-12)
    assert res["ppl"] == pytest.approx(fx["ppl"], rel=1e-12) and res["uncertainty"] == pytest.approx(fx["uncertainty"], rel=1e-9)


def test_cli_json(tiny, tmp_path):
    import json
    path, model = tiny
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    r = subprocess.run([sys.executable, "-m", "ggraph", "perplexity", "-m", path, "-f", str(text), "-c", "64",
                        "--chunks", "3", "-t", "1", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    res = json.loads(r.stdout)
    assert len(res["chunks"]) == 3 and res["ppl"] == pytest.approx(res["chunks"][-1]) and "[3]" in r.stderr
