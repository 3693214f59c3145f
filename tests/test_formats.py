"""Every weight format end to end: a tiny llama (rows of 256) in each format, against llama.cpp's
fixture for the same file (scripts/make_quant_models.py). Formats gguf-py quantizes bit-identically
to llama.cpp are regenerated here from the deterministic F32 model; K-quants and IQ4 files were
made by llama.cpp's quantizer and are committed under tests/fixtures/models."""
import os

import pytest

import ggraph
from compare import llamacpp_self_spread, replay_fixture

HERE = os.path.dirname(__file__)
PY_FORMATS = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
LLAMACPP_FORMATS = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"]
# the bars (mean KL, llama.cpp as P); top-1 >= 98% for all
KL_BAR = {f: 1e-4 for f in ("F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL")}
KL_BAR.update({f: 2.5e-3 for f in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "BF16", "IQ4_XS")})


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory):
    from conftest import load_script
    make = load_script("make_tiny_llama").make
    d = tmp_path_factory.mktemp("formats")
    paths = {f: make(str(d / f"wide-{f}.gguf"), f, 0, "wide") for f in PY_FORMATS}
    paths.update({f: os.path.join(HERE, "fixtures", "models", f"wide-{f}.gguf") for f in LLAMACPP_FORMATS})
    return paths


@pytest.mark.parametrize("fmt", PY_FORMATS + LLAMACPP_FORMATS)
def test_format_agrees_with_llamacpp(fmt, model_paths):
    fixture = os.path.join(HERE, "fixtures", "quant", f"llamacpp_wide_{fmt}.npz")
    model = ggraph.load(model_paths[fmt])
    assert {t.type_name for t in model.file.tensors.values() if len(t.ne) == 2} == {fmt}
    ours = replay_fixture(model, fixture, n_threads=2)
    spread = llamacpp_self_spread(fixture)
    print(f"{fmt}: ggraph {ours} | llama.cpp token-by-token {spread}")
    assert ours.top1 >= 0.98, ours
    assert ours.mean_kl <= KL_BAR[fmt], ours
