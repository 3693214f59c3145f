"""Every architecture's tiny model (scripts/make_tiny_model.py) against llama.cpp's fixture, bit for
bit: the top-32 logits at every prompt position and the greedy continuations; F32 and Q8_0 on the
64-wide models, Q4_K_M (llama.cpp's own type mix, Q4_K + Q6_K) on the 256-wide ones. MoE archs also
route layer 0 like an independent float64 reference."""
import json
import os

import numpy as np
import pytest

import ggraph
from compare import assert_bit_exact_with_fixture, assert_routing_matches_fixture
from conftest import load_script

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ARCHS = ("qwen2", "qwen2moe", "qwen3", "qwen3moe", "gpt2", "phi3", "olmoe", "gemma2", "granite", "bloom")
MOE = ("qwen2moe", "qwen3moe", "olmoe", "llama")
# llama's F32 / Q8_0 MoE models are make_tiny_llama's (tests/test_moe_model.py); its Q4_K_M one is here
CASES = [(a, t) for a in ARCHS for t in ("F32", "Q8_0")] + [(a, "Q4_K_M") for a in ARCHS + ("llama",)]
# RoPE variants (make_tiny_model.py --set): partial rotary (8 of 16 dims) with YaRN and LongRoPE's long
# factors (the context outgrows the original 128), and partial rotary with linear scaling
ROPE_VARIANTS = {
    "phi3_yarn": ("phi3", {"rope.dimension_count": 8, "rope.scaling.type": "yarn", "rope.scaling.factor": 4.0,
                           "rope.scaling.original_context_length": 128}),
    "gemma2_linear": ("gemma2", {"rope.dimension_count": 8, "rope.scaling.type": "linear",
                                 "rope.scaling.factor": 2.0}),
}
CASES += [(v, "F32") for v in ROPE_VARIANTS]


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-{t}" for a, t in CASES])
def case(request, tmp_path_factory):
    name, t = request.param
    arch, keys = ROPE_VARIANTS.get(name, (name, None))
    path = str(tmp_path_factory.mktemp(name) / f"tiny-{name}-{t}.gguf")
    load_script("make_tiny_model").make(path, arch, t, 0, wide=t == "Q4_K_M", keys=keys)
    return name, t, path, ggraph.load(path)


def fixture(name, t):
    return os.path.join(FIXTURES, f"llamacpp_tiny_{name}_{t.lower()}.npz")


def test_logits_bit_for_bit_with_llamacpp(case):
    name, t, path, model = case
    assert model.info()["architecture"] == ROPE_VARIANTS.get(name, (name,))[0]
    assert_bit_exact_with_fixture(model, fixture(name, t))


def test_token_by_token_is_llamacpps_token_by_token(case):
    """Prompts fed one token per step: the full-vocabulary KL of those logits against the batch ones equals,
    in float64, the KL llama.cpp recorded for its own token-by-token run (fixture self_kl), position for
    position. Both our paths reproduce llama.cpp's, so their spread is llama.cpp's spread exactly (for
    Q4_K_M ~3e-4, as its batch and one-token kernels quantize and sum differently)."""
    arch, t, path, model = case
    fx = np.load(fixture(arch, t))
    ctx = model.new_context(n_ctx=512, n_threads=1)
    for i in range(2):
        a, b = fx["offsets"][i], fx["offsets"][i + 1]
        ctx.reset()
        batch = ctx.decode(fx["ids"][a:b], logits_all=True).astype(np.float64)
        ctx.reset()
        steps = np.stack([ctx.decode([tok]) for tok in fx["ids"][a:b]]).astype(np.float64)
        lp = batch - _lse(batch)[:, None]
        lq = steps - _lse(steps)[:, None]
        assert np.array_equal((np.exp(lp) * (lp - lq)).sum(1), fx["self_kl"][a:b]), f"prompt {i}"


def _lse(x):
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def test_moe_routing_matches_float64_reference(case):
    arch, t, path, model = case
    if arch not in MOE:
        pytest.skip("dense architecture")
    every = 2 if t == "Q4_K_M" else 4       # the Q4_K_M fixtures hold 8 prompts, the others 24
    assert assert_routing_matches_fixture(path, fixture(arch, t), quantized=t != "F32", every=every) >= 20


def test_q4_k_m_models_are_llamacpps_own():
    """The Q4_K_M files the tests run are, tensor for tensor, what llama.cpp's quantizer made of the same
    F32 model (sha256 of its tensors recorded by make_tiny_model.py --record-q4-k-m), and mix Q4_K and
    Q6_K as Q4_K_M does."""
    mk = load_script("make_tiny_model")
    table = json.load(open(mk.Q4_K_M_TYPES))
    assert set(table) == set(ARCHS) | {"llama"}
    for arch, rec in table.items():
        assert {"Q4_K", "Q6_K"} <= set(rec["types"].values()), arch


@pytest.mark.parametrize("arch", ["gpt2", "olmoe"])
def test_q4_k_m_bytes_match_llamacpps_quantizer(arch, tmp_path):
    mk = load_script("make_tiny_model")
    path = mk.make(str(tmp_path / f"{arch}.gguf"), arch, "Q4_K_M", 0, wide=True)
    assert mk.tensor_data_sha256(path) == json.load(open(mk.Q4_K_M_TYPES))[arch]["sha256"]
