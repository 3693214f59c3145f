"""The first run's compile helper (runtime/compile_helper.py) must call every kernel the parent's
first decode calls, with the same argument types: otherwise the parent still compiles alone."""
import json
import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent("""
    import json, sys
    import numba, ggraph
    from numba.core.registry import CPUDispatcher
    from ggraph.runtime import compile_helper

    def kernel_signatures():
        out = set()
        for name, mod in list(sys.modules.items()):
            if name.startswith("ggraph.runtime"):
                for attr, d in vars(mod).items():
                    if isinstance(d, CPUDispatcher):
                        out |= {(name + "." + attr, str(s)) for s in d.signatures}
        return out

    path, n_prompt = sys.argv[1], int(sys.argv[2])
    model = ggraph.load(path)
    helper_ctx = model.new_context(n_ctx=256, n_threads=1)
    compile_helper._run_kinds_backwards(helper_ctx, 1, n_prompt)
    compile_helper._run_kinds_backwards(helper_ctx, n_prompt, 0)
    before = kernel_signatures()
    ctx = model.new_context(n_ctx=256)
    ctx.decode(list(range(1, n_prompt + 1)))
    ctx.decode([3])
    after = kernel_signatures()
    print(json.dumps({"helper": len(before), "missed": sorted(map(list, after - before))}))
""")


def test_helper_calls_every_kernel_of_the_first_decode(tiny_llama_path):
    r = subprocess.run([sys.executable, "-c", _SCRIPT, tiny_llama_path, "5"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["helper"] > 5                     # it did call the kernels
    assert res["missed"] == []


def test_start_and_stop(tiny_llama_path, monkeypatch):
    import ggraph
    from ggraph.runtime import compile_helper
    monkeypatch.delenv("GGRAPH_NO_COMPILE_HELPER", raising=False)
    ctx = ggraph.load(tiny_llama_path).new_context(n_ctx=256)
    proc = compile_helper.start(ctx, 4)
    if (os.cpu_count() or 1) < 2:
        assert proc is None
        return
    assert proc is not None and proc.args[-3:] == ["4", "0", "1"]     # n_prompt, n_past, swa_full
    compile_helper.stop(proc)
    assert proc.returncode is not None
    monkeypatch.setenv("GGRAPH_NO_COMPILE_HELPER", "1")
    assert compile_helper.start(ctx, 4) is None
