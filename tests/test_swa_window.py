"""The window-sized cache of sliding-window layers (swa_full=False, llama-cli's default): cells placed
as llama.cpp places them (runtime/kv_cells.py), so attention sums in llama.cpp's cell order. A tiny
gemma2 with a 160-token window (several valid cells per summation lane, so the ring order matters:
the full-size cache gives other bits) and 32-token ubatches (a 256-cell window cache, wrapped twice)."""
import numpy as np
import pytest

import ggraph
from conftest import load_script

N_CTX, N_UBATCH, WINDOW = 1024, 32, 160


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return load_script("make_tiny_model").make(str(tmp_path_factory.mktemp("swa") / "g2w.gguf"), "gemma2", "F32", 0,
                                              keys={"attention.sliding_window": WINDOW})


@pytest.fixture(scope="module")
def ids(model_path):
    return np.random.default_rng(0).integers(1, ggraph.load(model_path).n_vocab, 700).tolist()


def _ctx(model, swa_full=False, **kw):
    return model.new_context(n_ctx=N_CTX, n_ubatch=N_UBATCH, n_threads=2, swa_full=swa_full, **kw)


def test_window_cache_is_smaller_and_close_to_the_full_one(model_path, ids):
    model = ggraph.load(model_path)
    win, full = _ctx(model), _ctx(model, swa_full=True)
    assert win.kv.size_swa == 256 and full.kv.size_swa is None        # pad(160 + 32, 256)
    assert win.kv.nbytes < full.kv.nbytes
    a, b = win.decode(ids, logits_all=True), full.decode(ids, logits_all=True)
    assert np.abs(a - b).max() <= 1e-3 * np.abs(b).max()              # the same attention, other sum order
    assert not np.array_equal(a, b)


def test_truncating_past_what_the_window_keeps_clears(model_path, ids):
    model = ggraph.load(model_path)
    ctx = _ctx(model)
    ctx.decode(ids)
    assert ctx.truncate(690) == 690 and ctx.n_past == 690     # positions 531.. are still held
    assert ctx.truncate(100) == 0 and ctx.n_past == 0         # the window before 100 is gone: start over
    assert np.array_equal(ctx.decode(ids[:50], logits_all=True), _ctx(model).decode(ids[:50], logits_all=True))


def test_multi_sequence_step_equals_each_alone(model_path, ids):
    model = ggraph.load(model_path)
    a, b = ids[:300], ids[300:420]
    solo = []
    for p in (a, b):
        ctx = _ctx(model)
        last, steps = ctx.decode(p), []
        for _ in range(4):
            last = ctx.decode([int(last.argmax())])
            steps.append(last)
        solo.append(steps)
    ctx = model.new_context(n_ctx=2 * N_CTX, n_ubatch=N_UBATCH, n_threads=2, swa_full=False, n_seq_max=2)
    last = {0: ctx.decode(a, seq_id=0), 1: ctx.decode(b, seq_id=1)}
    for step in range(4):
        last = ctx.decode_batch({s: int(last[s].argmax()) for s in (0, 1)})
        assert all(np.array_equal(last[s], solo[s][step]) for s in (0, 1)), step


@pytest.mark.llamacpp
def test_bit_for_bit_with_llamacpp_swa_full_false(model_path, ids):
    """700 prompt tokens, 20 greedy steps, a truncation within the window and 10 more steps, each
    row against llama.cpp's (llama-cpp-python with swa_full=False, the same ubatch size)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    model = ggraph.load(model_path)
    ctx = _ctx(model)
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=N_CTX, n_batch=512, n_ubatch=N_UBATCH, swa_full=False,
                          logits_all=True, verbose=False, n_threads=2, flash_attn=False)
    ours = ctx.decode(ids, logits_all=True)
    llm.eval(ids)
    assert np.array_equal(ours, np.array(llm.scores[:len(ids)]))

    def steps(tok, n):
        for i in range(n):
            a = ctx.decode([tok])
            llm.eval([tok])
            assert np.array_equal(a, np.array(llm.scores[llm.n_tokens - 1])), i
            tok = int(a.argmax())
        return tok
    tok = steps(int(ours[-1].argmax()), 20)
    assert ctx.truncate(710) == 710
    llm.n_tokens = 710                      # Llama.eval removes the cells from 710 on (llama_memory_seq_rm)
    steps(tok, 10)


def test_matches_the_llamacpp_fixture(model_path, ids):
    """tests/fixtures/llamacpp_swa_window.npz (scripts/make_swa_window_fixture.py: llama-cpp-python,
    swa_full=False): the top-32 logits of the last 60 prompt rows and of 20 greedy steps, exactly."""
    import os
    fx = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "llamacpp_swa_window.npz"))
    assert ids == np.random.default_rng(0).integers(1, ggraph.load(model_path).n_vocab, 700).tolist()
    ctx = _ctx(ggraph.load(model_path))
    rows = [ctx.decode(ids, logits_all=True)[-60:]]
    for tok in fx["steps"]:
        rows.append(ctx.decode([int(tok)])[None])
    rows = np.concatenate(rows)
    assert np.array_equal(np.take_along_axis(rows, fx["top_idx"], axis=1), fx["top_val"])
    assert [int(r.argmax()) for r in rows[59:-1]] == fx["steps"].tolist()      # the same greedy tokens
