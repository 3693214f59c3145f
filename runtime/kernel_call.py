"""Plan steps as data: a kernel and the arguments the plan bound to it.

A binder (op_kernels.py) returns a Call where an op is one compiled kernel on arrays fixed at plan
time, Calls where it is several (convert the activations, then the product), and a Python closure
where run-time logic remains. Calls are run as they are, one Python call each, or handed to
step_compiler.py, which turns a run of them into one compiled function.
"""
from __future__ import annotations

from numba.core.registry import CPUDispatcher


class Call:
    __slots__ = ("kernel", "args")

    def __init__(self, kernel, *args):
        self.kernel, self.args = kernel, args

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
