"""Every architecture's tiny model (scripts/make_tiny_model.py) against llama.cpp's fixture, bit for
bit: the top-32 logits at every prompt position and the greedy continuations."""
import os

import numpy as np
import pytest

import ggraph
from compare import assert_bit_exact_with_fixture
from conftest import load_script

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CASES = [(arch, t) for arch in ("qwen2", "qwen2moe", "qwen3", "qwen3moe") for t in ("F32", "Q8_0")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-{t}" for a, t in CASES])
def case(request, tmp_path_factory):
    arch, t = request.param
    path = str(tmp_path_factory.mktemp(arch) / f"tiny-{arch}-{t}.gguf")
    load_script("make_tiny_model").make(path, arch, t, 0)
    return arch, t, ggraph.load(path)


def test_logits_bit_for_bit_with_llamacpp(case):
    arch, t, model = case
    assert model.info()["architecture"] == arch
    assert_bit_exact_with_fixture(model, os.path.join(FIXTURES, f"llamacpp_tiny_{arch}_{t.lower()}.npz"))


def test_batch_and_token_by_token_agree(case):
    arch, t, model = case
    ids = model.tokenize("The cat sat on the mat. Once upon a time")
    ctx = model.new_context(n_ctx=64, n_threads=1)
    batch = ctx.decode(ids, logits_all=True)
    ctx.reset()
    steps = np.stack([ctx.decode([i]) for i in ids])
    assert (steps.argmax(1) == batch.argmax(1)).all()
    np.testing.assert_allclose(steps, batch, rtol=0, atol=1e-3 * np.abs(batch).max())
