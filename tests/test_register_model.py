"""An architecture defined outside the package, added through the public API, runs."""
import sys
import textwrap

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter

import ggraph
from ggraph.errors import GGraphError
from ggraph.models import ARCHITECTURES

PLUGIN = textwrap.dedent('''
    """A user's architecture: llama's graph under another name, with one extra required key."""
    from ggraph.models.llama import LlamaModel

    class MyTinyModel(LlamaModel):
        arch = "mytiny"

        def load_arch_hparams(self, f):
            super().load_arch_hparams(f)
            self.flavour = int(f.require_arch("flavour"))
''')


def _renamed(src, dst, arch):
    """A copy of the GGUF at src with general.architecture = arch and its <arch>.* keys renamed."""
    r = GGUFReader(src)
    old = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        key = arch + name[len(old):] if name.startswith(old + ".") else name
        vtype = f.types[0]
        if vtype == GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(key, f.contents(), vtype)
    w.add_uint32(f"{arch}.flavour", 7)
    for t in r.tensors:
        w.add_tensor(t.name, np.asarray(t.data), raw_shape=np.asarray(t.data).shape, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_arch_pkg.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__("my_arch_pkg")
    ARCHITECTURES.pop("mytiny", None)
    sys.modules.pop("my_arch_pkg", None)


def test_a_registered_architecture_loads_and_runs(plugin, tiny_llama_path, tmp_path):
    path = _renamed(tiny_llama_path, str(tmp_path / "mytiny.gguf"), "mytiny")
    with pytest.raises(GGraphError, match="unknown model architecture 'mytiny'.*register_model"):
        ggraph.load(path)
    assert ggraph.register_model(plugin.MyTinyModel) is plugin.MyTinyModel
    model = ggraph.load(path)
    assert model.info()["architecture"] == "mytiny" and model.arch_model.flavour == 7
    ids = model.tokenize("The cat sat on the mat")
    ours = model.new_context(n_ctx=64, n_threads=1).decode(ids, logits_all=True)
    ref = ggraph.load(tiny_llama_path).new_context(n_ctx=64, n_threads=1).decode(ids, logits_all=True)
    assert np.array_equal(ours, ref)          # the same graph on the same weights


def test_register_model_refuses_bad_classes_and_silent_overrides(plugin):
    with pytest.raises(GGraphError, match="not a ModelBase subclass"):
        ggraph.register_model(object)
    from ggraph.models.llama import LlamaModel

    class Other(LlamaModel):
        arch = "llama"
    with pytest.raises(GGraphError, match="already registered"):
        ggraph.register_model(Other)
    assert ARCHITECTURES["llama"] is LlamaModel
