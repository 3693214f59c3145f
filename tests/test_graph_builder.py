"""The builder layer alone (no kernels): shapes, views, errors, printing, the llama graph."""
import numpy as np
import pytest

from ggraph import ops
from ggraph.errors import GGraphError
from ggraph.graph import F16, F32, I32, Graph


def test_mul_mat_shape_and_broadcast():
    g = Graph()
    w = g.input("w", F32, (64, 32, 2))
    x = g.input("x", F32, (64, 5, 6))
    y = ops.mul_mat(w, x)
    assert y.ne == (32, 5, 6, 1) and y.op == "mul_mat" and y.src == (w, x)


def test_errors_name_the_op_and_shapes():
    g = Graph()
    a = g.input("a", F32, (64, 4))
    b = g.input("b", F32, (48, 4))
    with pytest.raises(GGraphError, match=r"mul_mat: inner dims differ.*a\[64, 4\].*b\[48, 4\]"):
        ops.mul_mat(a, b)
    with pytest.raises(GGraphError, match="add: b does not broadcast"):
        ops.add(a, g.input("c", F32, (5,)))
    with pytest.raises(GGraphError, match="reshape: cannot reshape"):
        ops.reshape(a, 7, 9)
    with pytest.raises(GGraphError, match="rope_ext: pos must be I32"):
        ops.rope_ext(ops.reshape(a, 16, 4, 4), g.input("p", F32, (4,)), None, 16, 0, 512, 1e4, 1.0)


def test_permute_transpose_view_strides_follow_ggml():
    g = Graph()
    a = g.input("a", F32, (8, 3, 5))
    p = ops.permute(a, 0, 2, 1, 3)
    assert p.ne == (8, 5, 3, 1) and p.nb == (4, 96, 32, 480) and not p.is_contiguous()
    t = ops.transpose(a)
    assert t.ne == (3, 8, 5, 1) and t.nb[:2] == (32, 4)
    v = ops.view(a, (8, 2), (32,), offset=32)
    assert v.view_src is a and v.view_offs == 32 and v.nb[1] == 32
    with pytest.raises(GGraphError, match="needs a contiguous"):
        ops.reshape(p, 8 * 15)
    c = ops.cont(p)
    assert c.is_contiguous() and c.ne == p.ne


def test_set_rows_returns_view_of_cache_and_checks():
    cache = Graph()
    k = cache.cache("cache_k_l0", F16, (32, 256))
    g = Graph()
    src = g.input("k", F32, (32, 4))
    ids = g.input("ids", I32, (4,))
    with g:
        w = ops.set_rows(k, src, ids)
    assert w.view_src is k and w.graph is g and w.type == F16
    with pytest.raises(GGraphError, match="set_rows"):
        ops.set_rows(k, src, g.input("bad", I32, (3,)))


def test_op_on_persistent_leaves_needs_current_graph():
    cache = Graph()
    v = cache.cache("cache_v_l0", F16, (256, 32))
    with pytest.raises(GGraphError, match="current graph"):
        ops.transpose(v)
    g = Graph()
    with g:
        t = ops.transpose(v)
    assert t in g.nodes and t not in cache.nodes


def test_print_and_dot():
    g = Graph()
    a = g.input("a", F32, (4, 2))
    b = ops.scale(a, 2.0).set_name("b")
    s = str(g)
    assert "scale" in s and "b " in s and "[4, 2]" in s
    dot = g.to_dot()
    assert dot.startswith("digraph") and f"n{a.id} -> n{b.id}" in dot


def test_llama_graph_names_and_shapes(tiny_llama_path):
    from ggraph.gguf_file import GGUFFile
    from ggraph.llm import ContextParams, KVCacheLayout, LLMGraphContext, UBatch
    from ggraph.models import model_class
    f = GGUFFile(tiny_llama_path)
    m = model_class(f.arch)(f)
    hp = m.hp
    kv = KVCacheLayout(hp, 256)
    g = LLMGraphContext(m, ContextParams(256, hp.rope_freq_base, 1.0, hp.n_ctx_train), UBatch(7, 1, 256), kv)
    with g.gf:
        m.build_graph(g)
    names = {t.name for t in g.gf.nodes}
    for il in range(hp.n_layer):
        for n in ("attn_norm", "Qcur", "Kcur", "Vcur", "kq", "kq_soft_max", "kqv_out", "attn_out", "ffn_inp",
                  "ffn_norm", "ffn_out", "l_out"):
            assert f"{n}-{il}" in names
    out = g.gf.outputs["result_output"]
    assert out.ne[:2] == (hp.n_vocab, 1)
    assert g.gf.outputs["result_norm"].ne[:2] == (hp.n_embd, 1)
    # weights are leaves of the model's own graph, shared by every ubatch graph
    assert all(t.kind == "weight" for t in m.weights.nodes)
    assert not any(t.kind == "weight" for t in g.gf.nodes)


def test_unknown_architecture_lists_known():
    from ggraph.models import model_class
    with pytest.raises(GGraphError, match=r"unknown model architecture 'mamba9' \(known: .*llama"):
        model_class("mamba9")


def test_hparams_are_read_with_arch_prefix(tiny_llama_path):
    from ggraph.gguf_file import GGUFFile
    from ggraph.hparams import load_hparams
    f = GGUFFile(tiny_llama_path)
    hp = load_hparams(f)
    assert (hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv) == (64, 2, 4, 2)
    assert hp.n_embd_head_k == 16 and hp.n_gqa == 2 and hp.n_vocab == len(f.get("tokenizer.ggml.tokens"))
    t = f.tensor("blk.0.attn_k.weight")
    assert t.ne == (64, 32) and t.data.dtype == np.uint8 and t.data.shape == (32, 64 * 4)


def test_fusion_takes_rms_norm_times_weight_only_when_the_norm_has_no_other_reader():
    """runtime/fusion.py: rms_norm -> mul(weight) becomes one kernel; a norm read elsewhere too
    (here: also a graph output) stays its own node, and so does a mul by an activation."""
    from ggraph import ops
    from ggraph.graph import F32, Graph
    from ggraph.runtime import fusion
    g = Graph()
    x = g.input("x", F32, (8, 3))
    w = g.weight("w", F32, (8,))
    a = ops.mul(ops.rms_norm(x, 1e-6), w)
    n2 = ops.rms_norm(a, 1e-6)
    b = ops.mul(n2, w)
    c = ops.mul(ops.rms_norm(b, 1e-6), x)          # times an activation: not fused
    g.set_output(n2, "n2")
    g.set_output(c, "c")
    fz = fusion.find(g)
    assert set(fz.fused) == {a.id}
    assert fz.absorbed == {a.src[0].id}
