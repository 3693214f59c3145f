"""Sliding-window layers skip the leading 64-cell blocks every token's window has left: the same
bits as attending over the whole cache with those cells masked (which is what llama.cpp computes
with its full-size SWA cache), at a fraction of the work at long context."""
import numpy as np
import pytest

import ggraph
from conftest import load_script
from ggraph.runtime.context import Context


def _run(model, ids, skip: bool, monkeypatch):
    if not skip:
        monkeypatch.setattr(Context, "_swa_skip", lambda self, p, n: 0)
    ctx = model.new_context(n_ctx=2048, n_threads=2)
    out = [ctx.decode(ids[:300], logits_all=True), ctx.decode(ids[300:650], logits_all=True)]
    out += [ctx.decode([t])[None] for t in ids[650:700]]
    skipped = ctx._swa_skip(650, 768)
    monkeypatch.undo()
    return np.concatenate(out), skipped


@pytest.mark.parametrize("t", ["F32", "Q8_0"])
def test_skipping_out_of_window_cells_changes_no_bit(t, tmp_path, monkeypatch):
    """gemma2's tiny model (window 24, every other layer): a 300-token prompt, a 350-token batch at
    depth 300 and 50 decode steps to position 700."""
    model = ggraph.load(load_script("make_tiny_model").make(str(tmp_path / f"g2-{t}.gguf"), "gemma2", t, 0))
    ids = np.random.default_rng(0).integers(1, model.n_vocab, 700).tolist()
    with_skip, skipped = _run(model, ids, True, monkeypatch)
    full, _ = _run(model, ids, False, monkeypatch)
    assert skipped == 576              # positions >= 650 with a window of 24: cells 0..575 left behind
    assert np.array_equal(with_skip, full)


def test_skip_in_a_multi_sequence_step(tmp_path):
    """decode_batch with one sequence far past its window and one near the start: both bit-identical
    to running them alone (with skipping) and the far one skips."""
    model = ggraph.load(load_script("make_tiny_model").make(str(tmp_path / "g2.gguf"), "gemma2", "F32", 0))
    rng = np.random.default_rng(1)
    a, b = rng.integers(1, model.n_vocab, 600).tolist(), rng.integers(1, model.n_vocab, 20).tolist()
    solo = []
    for ids in (a, b):
        ctx = model.new_context(n_ctx=1024, n_threads=2)
        last = ctx.decode(ids)
        steps = []
        for _ in range(5):
            last = ctx.decode([int(last.argmax())])
            steps.append(last)
        solo.append(steps)
    ctx = model.new_context(n_ctx=2048, n_threads=2, n_seq_max=2)
    last = {0: ctx.decode(a, seq_id=0), 1: ctx.decode(b, seq_id=1)}
    assert ctx._swa_skip(ctx.seq_n_past(0), 768) == 576
    for step in range(5):
        last = ctx.decode_batch({s: int(last[s].argmax()) for s in (0, 1)})
        assert all(np.array_equal(last[s], solo[s][step]) for s in (0, 1)), step
