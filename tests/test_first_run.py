"""The first-run notice: shown while a plan has step kinds no earlier run compiled, then not."""
import io
import subprocess
import sys
from types import SimpleNamespace

from ggraph.runtime import first_run


def _model(path, types):
    tensors = {f"t{i}": SimpleNamespace(type_name=t) for i, t in enumerate(types)}
    return SimpleNamespace(path=path, file=SimpleNamespace(tensors=tensors))


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def _plan(kinds):
    calls = []
    steps = [(lambda i=i: calls.append(i)) for i in range(len(kinds))]
    return SimpleNamespace(steps=steps, kinds=kinds, run=lambda profile=None: [f() for f in steps]), calls


def test_notice_until_every_kind_ran(tmp_path, monkeypatch):
    monkeypatch.setenv("GGRAPH_CACHE", str(tmp_path))
    m = _model("a.gguf", ["Q4_1", "F32", "Q4_1", "Q8_0"])
    log = _Stream(tty=False)
    t = first_run.Tracker(m, out=log)
    assert not t.has_class("1")
    plan, calls = _plan([("mul_mat Q4_1", "CCC"), None, ("rms_norm", "CC"), ("mul_mat Q4_1", "CCC")])
    t.run(plan, "1")
    assert calls == [0, 1, 2, 3]                            # every step, in order
    assert t.n_compiled == 2                                # two new kinds
    assert log.getvalue() == "ggraph: compiling kernels for F32, Q4_1, Q8_0 (first run only, about 5 s)\n"
    t.run(_plan([("add", "CCC")])[0], "n")                  # a new kind, same process: no second notice
    assert log.getvalue().count("compiling") == 1
    t.finish()                                              # nothing to erase on a log
    assert log.getvalue().count("\n") == 1

    again = first_run.Tracker(m, out=_Stream(tty=False))  # a later process: all of them are compiled
    assert again.has_class("1") and again.missing(plan, "1") == 0
    p2, calls2 = _plan([("mul_mat Q4_1", "CCC"), ("rms_norm", "CC")])
    again.run(p2, "1")
    assert calls2 == [0, 1] and again.n_compiled == 0 and again.out.getvalue() == ""
    assert again.missing(_plan([("rms_norm", "CC")])[0], "rows") == 1      # another ubatch class
    other = first_run.Tracker(_model("b.gguf", ["Q4_K", "Q6_K"]), out=_Stream(tty=False))
    assert other.missing(plan, "1") == 2                    # other formats: another marker


def test_progress_counter_on_a_terminal_is_erased(tmp_path, monkeypatch):
    monkeypatch.setenv("GGRAPH_CACHE", str(tmp_path))
    tty = _Stream(tty=True)
    t = first_run.Tracker(_model("a.gguf", ["F32"]), out=tty)
    t.run(_plan([("add", "CCC"), ("mul", "CCC"), ("add", "CCC")])[0], "n")
    text = tty.getvalue()
    assert text.startswith("ggraph: compiling kernels for F32 (first run only, about 5 s)\r")
    assert ": 1/2, " in text and ": 2/2, " in text and "\n" not in text
    t.finish()
    assert tty.getvalue().endswith("\r\033[K")               # the line is erased, the stats report it


def test_compile_seconds_count_real_compiles_only(tmp_path):
    import numba
    before = first_run.compile_seconds()
    f = numba.njit(lambda x: x * 2.5 + 1.0)
    assert f(2.0) == 6.0
    mid = first_run.compile_seconds()
    assert mid > before                         # compiled here
    assert f(3.0) == 8.5 and first_run.compile_seconds() == mid      # already compiled: nothing added


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "ggraph", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_cli_first_run_notice_and_compile_time_then_quiet(tiny_llama_path, tmp_path):
    """A fresh ggraph cache (Numba's own cache may be warm): the first run says it compiles and
    reports compile time apart from the prompt's; the second says neither. An embedding-only run
    marks its kernels too."""
    import os
    env = {**os.environ, "GGRAPH_CACHE": str(tmp_path), "GGRAPH_NO_COMPILE_HELPER": "1"}
    first = _cli(env, "run", "-m", tiny_llama_path, "-p", "The cat", "-n", "3", "--temp", "0")
    assert first.returncode == 0, first.stderr[-800:]
    assert "compiling kernels for F32 (first run only" in first.stderr
    second = _cli(env, "run", "-m", tiny_llama_path, "-p", "The cat", "-n", "3", "--temp", "0")
    assert "compiling" not in second.stderr and "compile time" not in second.stderr
    assert second.stdout == first.stdout
    env["GGRAPH_CACHE"] = str(tmp_path / "embed-only")
    for expect in (True, False):
        e = _cli(env, "embed", "-m", tiny_llama_path, "-p", "a dog and a cat")
        assert e.returncode == 0, e.stderr[-800:]
        assert ("compiling kernels" in e.stderr) == expect, e.stderr


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


def test_stats_count_compile_time_apart(tiny_llama_path, monkeypatch, capsys):
    """The stats line takes the seconds Numba spent compiling out of prompt and generation time:
    here every decode "compiles" for 0.3 s (a fake clock, the decode really sleeping that long)."""
    import re
    import time
    from ggraph.runtime import context
    from ggraph.runtime.apps import cli
    fake = {"s": 0.0}
    monkeypatch.setattr(first_run, "compile_seconds", lambda: fake["s"])
    real = context.Context.decode

    def slow_decode(self, *a, **k):
        time.sleep(0.3)
        fake["s"] += 0.3
        return real(self, *a, **k)
    monkeypatch.setattr(context.Context, "decode", slow_decode)
    assert cli.main(["run", "-m", tiny_llama_path, "-p", "The cat", "-n", "3", "--temp", "0", "-t", "1"]) == 0
    err = capsys.readouterr().err
    ms = {k: float(v) for k, v in re.findall(r"(compile time|prompt eval time|  eval time) =\s+([\d.]+) ms", err)}
    assert abs(ms["compile time"] - 900.0) < 1e-6          # the prompt and two one-token steps
    assert ms["prompt eval time"] < 250 and ms["  eval time"] < 250    # without the 0.3 s of each
