"""The first-run notice: shown while no marker exists for these kernels and formats, then not."""
import subprocess
import sys
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


def test_kernels_skip_numbas_scipy_blas_probe():
    """Importing the kernels does not pull in scipy (numba's BLAS probe, ~0.3 s of a warm start), and
    numba's own np.dot still works afterwards for other code."""
    code = ("import sys, numpy as np, numba\n"
            "import ggraph.runtime.kernels\n"
            "assert 'scipy.linalg' not in sys.modules, 'scipy imported'\n"
            "try:\n    import scipy.linalg  # noqa\nexcept ImportError:\n    sys.exit(0)\n"
            "f = numba.njit(lambda a, b: np.dot(a, b))\n"
            "assert f(np.ones(3), np.ones(3)) == 3.0\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
