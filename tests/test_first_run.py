"""The first-run notice: shown while no marker exists for these kernels and formats, then not."""
from types import SimpleNamespace

from ggraph.runtime import first_run


def _model(path, types):
    tensors = {f"t{i}": SimpleNamespace(type_name=t) for i, t in enumerate(types)}
    return SimpleNamespace(path=path, file=SimpleNamespace(tensors=tensors))


def test_notice_until_marked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GGRAPH_CACHE", str(tmp_path))
    m = _model("a.gguf", ["Q4_1", "F32", "Q4_1", "Q8_0"])
    assert first_run.is_first_run(m)
    first_run.announce(m)
    first_run.announce(m)                       # once per process and model
    err = capsys.readouterr().err
    assert err == "ggraph: compiling kernels for F32, Q4_1, Q8_0 (first run only, about half a minute)\n"
    first_run.mark_compiled(m)
    assert not first_run.is_first_run(m)
    assert first_run.is_first_run(_model("b.gguf", ["Q4_K", "Q6_K"]))   # other formats: still cold
