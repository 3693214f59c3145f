"""Plan steps as data: a kernel and the arguments the plan bound to it.

A binder (op_kernels.py) returns a Call where an op is one compiled kernel on arrays fixed at plan
time, Calls where it is several (convert the activations, then the product), and a Python closure
where run-time logic remains. From a plan's second run, fast_steps turns them into partials of the
kernels' compiled entry points.
"""
from __future__ import annotations

from functools import partial

from numba.core.registry import CPUDispatcher


class Call:
    __slots__ = ("kernel", "args")

    def __init__(self, kernel, *args):
        self.kernel, self.args = kernel, args

    @classmethod
    def of(cls, kernel_args) -> "Call":
        """A Call from the (kernel, args) pair of a kernels' *_call function."""
        kernel, args = kernel_args
        return cls(kernel, *args)

    def __call__(self):
        self.kernel(*self.args)

    def calls(self) -> tuple:
        return (self,)

    def compiled(self) -> bool:
        """Whether the kernel is a Numba dispatcher (one compiled code can call it)."""
        return isinstance(self.kernel, CPUDispatcher)


class Calls:
    """Several kernel calls that make one step, in order."""
    __slots__ = ("_calls",)

    def __init__(self, *calls: Call):
        self._calls = calls

    def __call__(self):
        for c in self._calls:
            c()

    def calls(self) -> tuple:
        return self._calls


class ThreadSwitch:
    """numba.set_num_threads(n) between a parallel kernel and a serial one."""
    __slots__ = ("n", "_setter")

    def __init__(self, n: int, setter):
        self.n, self._setter = n, setter

    def __call__(self):
        self._setter(self.n)


def fast_steps(steps: list) -> list:
    """The steps as C-level callables once every kernel is compiled (after a plan's first run):
    functools.partial of each kernel's compiled entry point with its arguments. That skips the
    Python frame of Call.__call__ and the dispatcher's type lookup, ~0.5 us of ~1 us per kernel
    call (a one-token SmolLM2 step makes ~600, a switch of threads ~300 more)."""
    out = []
    for s in steps:
        if isinstance(s, ThreadSwitch):
            out.append(partial(s._setter, s.n))
        elif isinstance(s, (Call, Calls)):
            out.extend(partial(_entry_point(c), *c.args) for c in s.calls())
        else:
            out.append(s)
    return out


def _entry_point(c: Call):
    """The compiled function for c's argument types (the kernel itself where it has none)."""
    if not c.compiled():
        return c.kernel
    try:
        sig = tuple(c.kernel.typeof_pyval(a) for a in c.args)
        cres = c.kernel.overloads.get(sig)
    except Exception:        # pragma: no cover - an argument Numba cannot type: the dispatcher decides
        return c.kernel
    return c.kernel if cres is None else cres.entry_point
