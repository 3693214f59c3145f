"""A plan's steps as C-level calls (runtime/kernel_call.fast_steps, from a plan's second run on)
compute what the step-by-step run computes: every step there, in order, bit for bit.

Two contexts of one model decode the same tokens; in one the plans never switch to the fast
steps. Every decode feeds a new token, so a step left out of the fast list (its buffer holding the
previous token's values) would change the logits."""
from __future__ import annotations

import numpy as np
import pytest

import ggraph
from conftest import load_script
from ggraph.runtime import kernel_call
from ggraph.runtime.kernel_call import Call, Calls, ThreadSwitch

CASES = [("llama", "Q4_1"), ("gemma2", "Q8_0"), ("qwen3moe", "F32"), ("qwen2", "Q4_K_M")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-{t}" for a, t in CASES])
def model(request, tmp_path_factory):
    arch, t = request.param
    path = str(tmp_path_factory.mktemp("fast") / f"{arch}-{t}.gguf")
    load_script("make_tiny_model").make(path, arch, t, 0, wide=t == "Q4_K_M")
    return ggraph.load(path)


def _run(model, plain: bool):
    ctx = model.new_context(n_ctx=128, n_threads=2)
    out = [ctx.decode([1, 5, 9, 14, 3, 7, 22, 4], logits_all=True)]
    plans = []
    for tok in (11, 2, 30, 6, 17, 8):
        if plain:
            for st in ctx._steps.values():
                st.plan._runs = -10 ** 9        # never reaches the second run
        out.append(ctx.decode([tok]))
        plans = [st.plan for st in ctx._steps.values()]
    out.append(ctx.decode([3, 12, 5, 19, 7, 2, 9, 1], logits_all=True))   # the prompt plan again: fast now
    return out, plans


def test_fast_steps_bit_for_bit(model):
    plain, plain_plans = _run(model, plain=True)
    fast, fast_plans = _run(model, plain=False)
    assert all(p._fast is None for p in plain_plans)
    assert any(p._fast is not None for p in fast_plans)     # the one-token plan ran its fast steps
    for a, b in zip(plain, fast):
        assert a.tobytes() == b.tobytes()


def test_fast_steps_flatten_in_order():
    """Calls become one callable per kernel call, switches their setter; other steps stay."""
    log = []
    k = lambda tag: log.append(tag)         # not a Numba kernel: called as it is
    steps = [Calls(Call(k, "a"), Call(k, "b")), ThreadSwitch(3, lambda n: log.append(f"t{n}")),
             Call(k, "c"), lambda: log.append("py")]
    fast = kernel_call.fast_steps(steps)
    assert len(fast) == 5
    for s in fast:
        s()
    assert log == ["a", "b", "t3", "c", "py"]


def test_entry_point_is_the_compiled_overload():
    from ggraph.runtime.kernels.elementwise import add_f32
    a, b, out = np.ones(8, np.float32), np.full(8, 2, np.float32), np.zeros(8, np.float32)
    c = Call(add_f32, a, b, out)
    c()                                     # compiles (or loads) the overload for these types
    ep = kernel_call._entry_point(c)
    assert ep is not add_f32
    out[:] = 0
    ep(a, b, out)
    assert (out == 3).all()
