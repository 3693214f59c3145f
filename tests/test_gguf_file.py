"""Our GGUF parser against gguf.GGUFReader (the reference implementation of the format)."""
import numpy as np
import pytest
from gguf import GGUFReader

from ggraph.gguf_file import GGUFFile


def _same_as_reader(path):
    ours = GGUFFile(path)
    ref = GGUFReader(path)
    for key, field in ref.fields.items():
        if key.startswith("GGUF."):
            continue
        want = field.contents()
        got = ours.metadata[key]
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-7), key
        elif isinstance(want, list) and want and isinstance(want[0], float):
            np.testing.assert_allclose(got, want, rtol=1e-7, err_msg=key)
        else:
            assert got == want, key
    assert set(ours.tensors) == {t.name for t in ref.tensors}
    for t in ref.tensors:
        mine = ours.tensors[t.name]
        assert mine.ne == tuple(int(x) for x in t.shape) and int(mine.ggml_type) == int(t.tensor_type)
        assert np.array_equal(mine.data.reshape(-1), np.asarray(t.data).reshape(-1).view(np.uint8)), t.name


def test_tiny_model_matches_gguf_reader(tiny_llama_path):
    _same_as_reader(tiny_llama_path)


@pytest.mark.slow
def test_smollm2_matches_gguf_reader(smollm2_path):
    _same_as_reader(smollm2_path)
