"""Embeddings (runtime/embeddings.py, Llama.embed / create_embedding, `ggraph embed`, the server's
/v1/embeddings) against llama.cpp's own values (scripts/make_embedding_fixtures.py: llama-cpp-python
0.3.36, and common_embd_normalize compiled from llama.cpp's source), bit for bit, for every pooling
type: on the tiny random llama (fast) and the real SmolLM2 and Gemma-3 (slow)."""
import json
import os
import warnings

import numpy as np
import pytest

import ggraph
from conftest import FIXTURES, load_script
from ggraph.errors import GGraphError
from ggraph.runtime import embeddings as E

POOLS = {"mean": E.MEAN, "cls": E.CLS, "last": E.LAST}


def fixture(name):
    return np.load(os.path.join(FIXTURES, f"llamacpp_embd_{name}.npz"))


def check_against_fixture(model, fx, n_threads=2):
    """Every array of a fixture, from the Embedder (packed batches, alone) and from ggraph.Llama."""
    texts = [str(t) for t in fx["texts"]]
    toks = [fx[f"tokens_{i}"].tolist() for i in range(len(texts))]
    assert [model.tokenize(t) for t in texts] == toks
    emb = E.Embedder(model, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=n_threads)
    alone = emb.embed(toks, E.NONE, n_seq_max=1)
    for i, rows in enumerate(alone):
        assert np.array_equal(rows, fx[f"none_{i}"]), f"none, text {i}"
    packed = emb.embed(toks, E.NONE)
    assert np.array_equal(np.concatenate(packed), fx["none_packed"]), "none, packed"
    for name, p in POOLS.items():
        assert np.array_equal(np.stack(emb.embed(toks, p)), fx[f"{name}_packed"]), name
        assert np.array_equal(np.stack(emb.embed(toks, p, n_seq_max=1)), fx[f"{name}_alone"]), name + " alone"
    many = [model.tokenize(str(t)) for t in fx["many"]]       # 24 inputs in one batch, at odd cell offsets
    for name in ("mean", "last"):
        assert np.array_equal(np.stack(emb.embed(many, POOLS[name])), fx[f"many_{name}"]), "many, " + name
    llm = ggraph.Llama.from_model(model, n_ctx=512, n_threads=n_threads, verbose=False, embedding=True, pooling_type=1)
    got = llm.embed(texts, normalize=True)
    assert got == fx["mean_packed_l2"].tolist()            # Python floats, llama-cpp-python's normalisation
    assert llm.embed(texts[1]) == fx["mean_alone"][1].tolist()
    for mode in (-1, 0, 1, 2, 3):
        assert np.array_equal(E.normalize(fx["mean_packed"], mode), fx[f"norm_{mode}"]), f"normalise {mode}"


# -- fast: the tiny random llama --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_llama_path):
    return ggraph.load(tiny_llama_path)


def test_tiny_model_agrees_with_llamacpp(tiny):
    check_against_fixture(tiny, fixture("tiny_f32"))


@pytest.mark.parametrize("name", ["tiny_f32", "smollm2_q4_1", "gemma3_q4_k_m"])
def test_normalize_is_common_embd_normalize(name):
    fx = fixture(name)
    for mode in (-1, 0, 1, 2, 3):
        for v, ref in zip(fx["mean_packed"], fx[f"norm_{mode}"]):
            assert np.array_equal(E.normalize(v, mode), ref), mode
    assert np.array_equal(E.normalize(np.zeros(8, np.float32), 2), np.zeros(8, np.float32))
    with pytest.raises(GGraphError, match="embd_normalize"):
        E.normalize(fx["mean_packed"][0], -2)


def test_embeddings_are_result_norm_and_logits_unchanged(tiny):
    ctx = tiny.new_context(n_ctx=256, n_threads=2)
    ids = tiny.tokenize("The cat sat on the mat")
    ref_logits = ctx.decode(ids, logits_all=True)
    seen = {}
    ctx.reset()
    ctx.decode(ids, logits_all=True, cb_eval=lambda name, v, t: seen.setdefault(name, v))
    ctx.reset()
    e = ctx.decode(ids, embeddings=True)
    assert e.shape == (len(ids), tiny.hp.n_embd) and e.dtype == np.float32
    assert np.array_equal(e, seen["result_norm"].reshape(len(ids), -1))
    assert ctx.n_past == len(ids)
    ctx.reset()
    assert np.array_equal(ctx.decode(ids, logits_all=True), ref_logits)
    with pytest.raises(GGraphError, match="embeddings"):
        ctx.decode(ids, embeddings=1)


def test_pooling_defaults_and_names(tiny, tmp_path):
    assert E.model_pooling(tiny) == E.NONE                  # a causal LM without <arch>.pooling_type
    assert E.resolve_pooling(tiny, None) == E.NONE and E.resolve_pooling(tiny, "mean") == E.MEAN
    assert E.resolve_pooling(tiny, 3) == E.LAST
    with pytest.raises(GGraphError, match="rank"):
        E.resolve_pooling(tiny, "rank")
    with pytest.raises(GGraphError, match="pooling must be"):
        E.resolve_pooling(tiny, "max")
    mod = load_script("make_tiny_llama")
    plain = mod.add_tokenizer

    def with_pooling(w, *args):
        plain(w, *args)
        w.add_uint32("llama.pooling_type", 2)

    mod.add_tokenizer = with_pooling
    m = ggraph.load(mod.make(str(tmp_path / "tiny-cls.gguf"), "F32", 0, "tiny"))
    assert E.model_pooling(m) == E.CLS
    llm = ggraph.Llama(m.path, embedding=True, n_ctx=128, n_threads=2, verbose=False)
    assert llm.pooling_type() == E.CLS
    v = llm.embed("The cat")
    assert isinstance(v, list) and len(v) == m.hp.n_embd and isinstance(v[0], float)


def test_batches_like_llama_embedding():
    assert E.batches([3, 4, 5], 8) == [[0, 1], [2]]
    assert E.batches([3, 4, 5], 12) == [[0, 1, 2]]
    assert E.batches([1, 1, 1], 512, n_seq_max=2) == [[0, 1], [2]]
    with pytest.raises(GGraphError, match="batch size"):
        E.batches([9], 8)


def test_pool_batch_per_ubatch():
    rng = np.random.default_rng(0)
    rows = [rng.standard_normal((n, 8)).astype(np.float32) for n in (3, 5, 2)]
    one = E.pool_batch(rows, E.MEAN, 512)
    for r, v in zip(rows, one):
        assert np.allclose(v, r.astype(np.float64).mean(0), atol=1e-6)
    split = E.pool_batch(rows, E.CLS, 4)          # ubatches [0, 4) [4, 8) [8, 10): sequence 1 is cut
    assert all(np.array_equal(v, r[0]) for r, v in zip(rows, split))
    assert all(np.array_equal(v, r[-1]) for r, v in zip(rows, E.pool_batch(rows, E.LAST, 4)))


def test_llama_api_shapes_and_errors(tiny):
    llm = ggraph.Llama(tiny.path, embedding=True, n_ctx=128, n_threads=2, verbose=False)
    assert llm.pooling_type() == E.NONE
    rows = llm.embed("The cat")
    assert isinstance(rows, list) and isinstance(rows[0], list) and len(rows[0]) == tiny.hp.n_embd
    assert len(rows) == len(llm.tokenize(b"The cat"))
    out, n = llm.embed(["The cat", "a dog"], return_count=True)
    assert len(out) == 2 and n == sum(len(llm.tokenize(t.encode())) for t in ("The cat", "a dog"))
    r = llm.create_embedding(["The cat", "a dog"], model="m")
    assert r["object"] == "list" and r["model"] == "m" and [d["index"] for d in r["data"]] == [0, 1]
    assert r["data"][0] == {"object": "embedding", "embedding": out[0], "index": 0}
    assert r["usage"] == {"prompt_tokens": n, "total_tokens": n}
    # the completion path still works on an embedding Llama, and embed() resets its cache
    text = llm("The cat", max_tokens=4, temperature=0)["choices"][0]["text"]
    llm.embed("x")
    assert llm.n_tokens == 0 and llm("The cat", max_tokens=4, temperature=0)["choices"][0]["text"] == text
    with pytest.raises(GGraphError, match="embedding=True"):
        ggraph.Llama(tiny.path, n_ctx=64, n_threads=2, verbose=False).embed("x")
    with pytest.raises(GGraphError, match="rank"):
        ggraph.Llama(tiny.path, embedding=True, pooling_type=4, n_ctx=64, verbose=False)
    with pytest.raises(GGraphError, match="exceed batch size"):
        ggraph.Llama(tiny.path, embedding=True, n_ctx=64, n_batch=4, verbose=False).embed("The cat sat on it",
                                                                                           truncate=False)


def test_cli_embed_json_is_llama_embedding(tiny_llama_path, capsys):
    from ggraph.runtime.apps.cli import main
    fx = fixture("tiny_f32")
    texts = [str(t) for t in fx["texts"]]
    assert main(["embed", "-m", tiny_llama_path, "-p", "\n".join(texts), "--pooling", "mean", "--json",
                 "-c", "512", "-t", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [d["index"] for d in out["data"]] == [0, 1, 2]
    for d, ref in zip(out["data"], fx["norm_2"]):
        assert d["embedding"] == [float(f"{x:1.7f}") for x in ref.tolist()]      # llama-embedding's %1.7f
    assert main(["embed", "-m", tiny_llama_path, "-p", texts[0], "--embd-output-format", "raw",
                 "--embd-normalize", "-1", "-t", "2"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert len(lines) == len(fx["tokens_0"])                 # pooling none: one line per token
    assert [float(x) for x in lines[0].split()] == [float(f"{x:1.7f}") for x in fx["none_0"][0].tolist()]
    assert main(["embed", "-m", tiny_llama_path, "-p", "a\nb", "--pooling", "last", "-t", "2"]) == 0
    assert "cosine similarity matrix" in capsys.readouterr().out


def test_server_embeddings(tiny):
    pytest.importorskip("fastapi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from ggraph.runtime.server.app import create_app
    from ggraph.runtime.server.embeddings import decode_base64
    from ggraph.runtime.server.engine import Engine
    eng = Engine(tiny, n_parallel=1, n_ctx=256, n_threads=2)
    try:
        c = TestClient(create_app(eng, "tiny"))
        r = c.post("/v1/embeddings", json={"input": ["The cat", "a dog"], "pooling": "mean"})
        assert r.status_code == 200, r.text
        body = r.json()
        ids = [tiny.tokenize(t, add_special=True, parse_special=True) for t in ("The cat", "a dog")]
        ref = E.Embedder(tiny, n_ctx=256, n_threads=2).embed(ids, E.MEAN, n_seq_max=1)
        assert [d["embedding"] for d in body["data"]] == [E.normalize(v, 2).tolist() for v in ref]
        assert body["usage"]["prompt_tokens"] == sum(map(len, ids)) and body["model"] == "tiny"
        r = c.post("/v1/embeddings", json={"input": ids[0], "pooling": "last", "encoding_format": "base64",
                                           "embd_normalize": -1})
        v = decode_base64(r.json()["data"][0]["embedding"])
        assert np.array_equal(v, E.Embedder(tiny, n_ctx=256, n_threads=2).embed([ids[0]], E.LAST)[0])
        r = c.post("/v1/embeddings", json={"input": "The cat"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "pooling"
        r = c.post("/v1/embeddings", json={"input": 3})
        assert r.status_code == 400 and r.json()["error"]["param"] == "input"
        r = c.post("/v1/embeddings", json={"input": "x", "pooling": "mean", "encoding_format": "hex"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "encoding_format"
    finally:
        eng.close()


# -- slow: the real models --------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_agrees_with_llamacpp(smollm2_model):
    check_against_fixture(smollm2_model, fixture("smollm2_q4_1"))


@pytest.mark.slow
def test_gemma3_agrees_with_llamacpp(gemma3_path):
    """Q4_K weights are repacked: a token's row depends on where it sits in the ubatch, so the inputs
    of a batch must be decoded together (Context.decode_embeddings_packed) to match."""
    check_against_fixture(ggraph.load(gemma3_path), fixture("gemma3_q4_k_m"))
