"""A tiny Mixtral-style MoE (arch llama, 4 experts, top-2: scripts/make_tiny_llama.py --config moe)
against llama.cpp's logits, bit for bit, in F32 and Q8_0; and the same model from the CLI."""
import os
import subprocess
import sys

import numpy as np
import pytest

import ggraph
from compare import assert_bit_exact_with_fixture, assert_routing_matches_fixture
from conftest import load_script

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module", params=["F32", "Q8_0"])
def moe(request, tmp_path_factory):
    t = request.param
    path = str(tmp_path_factory.mktemp("moe") / f"tiny-moe-{t}.gguf")
    load_script("make_tiny_llama").make(path, t, 0, config="moe")
    return t, path


def test_logits_bit_for_bit_with_llamacpp(moe):
    t, path = moe
    model = ggraph.load(path)
    assert model.info()["n_expert"] == 4 and model.info()["n_expert_used"] == 2
    assert_bit_exact_with_fixture(model, os.path.join(FIXTURES, f"llamacpp_tiny_moe_{t.lower()}.npz"))


def test_cli_runs_the_moe_model(moe):
    t, path = moe
    r = subprocess.run([sys.executable, "-m", "ggraph", "run", "-m", path, "-p", "The cat", "-n", "8",
                        "--temp", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    assert "eval time" in r.stderr
    info = subprocess.run([sys.executable, "-m", "ggraph", "info", path], capture_output=True, text=True,
                          timeout=120)
    assert "n_expert       4" in info.stdout and "n_expert_used  2" in info.stdout


def test_layer0_routing_picks_the_float64_reference_experts(moe):
    """ffn_moe_topk-0 against an independent float64 numpy forward of layer 0 stored in the fixture."""
    t, path = moe
    fixture = os.path.join(FIXTURES, f"llamacpp_tiny_moe_{t.lower()}.npz")
    assert assert_routing_matches_fixture(path, fixture, quantized=t != "F32") > 100
