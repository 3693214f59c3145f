"""scripts/kquants.py against llama.cpp's own K-quant output: the committed wide-*.gguf files were
quantized by llama_model_quantize (pure, no imatrix => quantize_row_*_ref) from the deterministic
F32 'wide' llama, so re-quantizing that F32 file must give the same bytes."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import FIXTURES, load_script
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

kquants = load_script("kquants")
TYPES = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]


@pytest.fixture(scope="module")
def wide_f32(tmp_path_factory) -> dict[str, np.ndarray]:
    path = str(tmp_path_factory.mktemp("kquants") / "wide-F32.gguf")
    load_script("make_tiny_llama").make(path, "F32", 0, "wide")
    return {t.name: np.array(t.data, np.float32) for t in GGUFReader(path).tensors}


@pytest.mark.parametrize("qtype", TYPES)
def test_byte_identical_to_llamacpp(wide_f32, qtype):
    ref = GGUFReader(os.path.join(FIXTURES, "models", f"wide-{qtype}.gguf"))
    checked = 0
    for t in ref.tensors:
        if t.tensor_type.name != qtype:          # norms stay F32
            continue
        got = kquants.quantize(wide_f32[t.name], qtype)
        want = np.asarray(t.data).view(np.uint8).reshape(got.shape)
        assert np.array_equal(got, want), f"{qtype} {t.name}: {int((got != want).sum())} bytes differ"
        checked += 1
    assert checked >= 14


@pytest.mark.parametrize("qtype", TYPES)
def test_extreme_blocks_round_trip(qtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 512)).astype(np.float32)
    x[0] = 0                                   # all-zero row
    x[1, :16] = 0                              # one zero sub-block
    x[2, 40] = 1e4                             # one huge outlier
    x[3] = -np.abs(x[3])                       # negative only
    x[4] = np.abs(x[4]) + 3                    # positive, far from 0
    x[5] = -2.5                                # constant
    q = kquants.quantize(x, qtype)
    y = dequantize(q, GGMLQuantizationType[qtype]).reshape(x.shape)
    assert np.isfinite(y).all()
    # error within a fraction of each 256-block's largest |x| (coarser for fewer bits)
    amax = np.abs(x.reshape(-1, 256)).max(1, keepdims=True)
    tol = {"Q2_K": 0.6, "Q3_K": 0.35, "Q4_K": 0.15, "Q5_K": 0.08, "Q6_K": 0.04}[qtype]
    assert (np.abs(y - x).reshape(-1, 256) <= tol * amax + 1e-6).all()
