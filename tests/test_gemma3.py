"""Gemma-3-270M Q4_K_M (the second real default model: SPM vocab, SWA layers, mixed Q5_0/Q4_K/
Q6_K/Q8_0 weights) against llama.cpp's committed fixture."""
import os

import pytest

from compare import llamacpp_self_spread, replay_fixture

pytestmark = pytest.mark.slow
FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "llamacpp_gemma3_q4_k_m.npz")


@pytest.fixture(scope="module")
def gemma3(gemma3_path):
    import ggraph
    return ggraph.load(gemma3_path)


def test_swa_hparams(gemma3):
    hp = gemma3.hp
    assert hp.n_swa == 512 and hp.rope_freq_base_swa == 10000.0
    assert hp.swa_layers == [il % 6 < 5 for il in range(hp.n_layer)]


def test_agrees_with_llamacpp_as_well_as_llamacpp_with_itself(gemma3):
    ours = replay_fixture(gemma3, FIXTURE, n_threads=2)
    spread = llamacpp_self_spread(FIXTURE)     # same prompts fed token by token to llama.cpp
    print("ggraph:", ours, "\nllama.cpp token-by-token:", spread)
    assert ours.top1 >= spread.top1, (ours, spread)
    assert ours.same_continuations >= spread.same_continuations, (ours, spread)
    assert ours.mean_kl <= 1.5 * spread.mean_kl, (ours, spread)


def test_swa_mask_beyond_the_window(gemma3):
    """Past n_swa positions the SWA layers stop seeing the oldest tokens: logits then differ from
    a run where the window is (wrongly) unlimited."""
    import numpy as np
    ctx = gemma3.new_context(n_ctx=640, n_threads=2)
    ids = (gemma3.tokenize("one two three four five six seven eight nine ten " * 60))[:600]
    a = ctx.decode(ids)
    hp = gemma3.hp
    saved = hp.n_swa
    try:
        hp.n_swa = 10 ** 6
        ctx.reset()
        b = ctx.decode(ids)
    finally:
        hp.n_swa = saved
    assert not np.allclose(a, b, atol=1e-3)
