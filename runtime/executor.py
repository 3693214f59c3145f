"""Executor: turns a Graph into a Plan (buffers assigned, kernels bound) and runs it.

Planning happens once per graph shape: every tensor gets a numpy array (views become strided
views of their storage, intermediate results share buffers once dead), and every op becomes a
pre-bound step: a kernel with its arguments (runtime/kernel_call.py) or a closure. Running a plan
is then one C-level call per kernel from its second run on (kernel_call.fast_steps), no allocation.

How each tensor type is held (F16 as uint16 bits) is runtime/storage.py's.
"""
from __future__ import annotations

import time

import numba
import numpy as np

from ggraph.errors import GGraphError
from ggraph.graph import Graph, Tensor

from . import fusion, kernel_call, op_kernels
from .kernel_call import ThreadSwitch
from .storage import runtime_dtype


class BufferArena:
    """Scratch buffers shared by the plans of one context, which run one at a time: the k-th buffer
    a plan allocates is the arena's k-th when that is big enough. A new ubatch shape (every prompt
    length builds a plan) then reuses pages already faulted in: first-touch faults cost ~40 us each
    on this project's VMs, 3.4 s of a 2.6 s pp512 at 2k context."""

    def __init__(self):
        self._bufs: list[np.ndarray] = []

    def take(self, k: int, nbytes: int) -> np.ndarray:
        if k < len(self._bufs) and self._bufs[k].nbytes >= nbytes:
            return self._bufs[k]
        buf = np.empty(nbytes, np.uint8)    # plans built before keep the smaller one they hold
        if k < len(self._bufs):
            self._bufs[k] = buf
        else:
            self._bufs.append(buf)
        return buf


class Plan:
    """A graph bound to buffers and kernels. Fill `inputs[name]` then call run()."""

    def __init__(self, graph: Graph, weights: dict, cache_arrays: dict, reuse_buffers: bool = True,
                 n_threads: int | None = None, arena: "BufferArena | None" = None, fuse: bool | None = None):
        self.graph = graph
        self._arena = arena if arena is not None else BufferArena()
        self._n_taken = 0
        self._reuse = reuse_buffers        # off: every node keeps its own array (for debugging/diffs)
        self._weights = weights            # weight name -> prepared Weight (runtime/weights.py)
        self._cache = cache_arrays         # cache leaf name -> flat storage array
        self.arrays: dict[int, np.ndarray] = {}
        self._storage_buf: dict[int, np.ndarray] = {}
        self._allocate()
        self.inputs = {t.name: self.arrays[t.id] for t in graph.leaves("input")}
        self.outputs = {k: self.arrays[t.id] for k, t in graph.outputs.items()}
        self.conversions: dict[tuple, list] = {}   # op_kernels: activation conversions by shape
        # fuse (default: as reuse_buffers) off: every node is computed into its own array by its own
        # step, so an eval callback (run_observed) sees every intermediate value
        fz = fusion.find(graph) if (reuse_buffers if fuse is None else fuse) else fusion.Fusions()
        bound, kinds = [], []
        for t in graph.ops():
            if t.id in fz.absorbed:
                continue
            b = op_kernels.bind(t, self, fz.fused.get(t.id))
            if b is not None:
                bound.append(b)
                kinds.append(((fz.fused[t.id][0] if t.id in fz.fused else self._label(t), self._layouts(t)), t))
        # kinds: (label, array layouts) per step; the compile helper calls one step of each
        self.steps, kinds_nodes = _with_thread_switches(bound, kinds, n_threads)
        self.kinds = [k and k[0] for k in kinds_nodes]
        self.step_nodes = [k and k[1] for k in kinds_nodes]   # the node each step computes (None: a switch)
        self.labels = [k and k[0] for k in self.kinds]
        self._absorbed = fz.absorbed
        self._observe = None                 # run_observed's schedule, built on first use
        self._fast: list | None = None       # the steps as C-level calls (kernel_call.fast_steps)
        self._runs = 0

    # -- arrays ------------------------------------------------------------------------------
    def array(self, t: Tensor) -> np.ndarray:
        """numpy view of t, 4-D, shape reversed from ne (ne3, ne2, ne1, ne0)."""
        return self.arrays[t.id]

    def scratch(self, shape, dtype=np.float32) -> np.ndarray:
        """A C-contiguous work array for one kernel of this plan (from the arena)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self._take(nbytes)[:nbytes].view(dtype).reshape(shape)

    def _take(self, nbytes: int) -> np.ndarray:
        """This plan's next buffer from the arena (each plan takes slots 0, 1, ... in order)."""
        buf = self._arena.take(self._n_taken, max(nbytes, 4))
        self._n_taken += 1
        return buf

    def weight(self, t: Tensor):
        return self._weights[t.name]

    def _view_of(self, t: Tensor, buf: np.ndarray) -> np.ndarray:
        buf = buf.reshape(-1).view(runtime_dtype(t))
        esz = buf.itemsize
        shape = tuple(reversed(t.ne))
        strides = tuple(reversed(t.nb))      # ggml's byte strides: runtime storage has ggml's sizes
        offs = t.view_offs
        if offs % esz or offs + _extent(shape, strides, esz) > buf.nbytes:
            raise GGraphError(f"view {t.name or t.id} {t.shape_str()} falls outside its storage")
        base = buf[offs // esz:]
        return np.lib.stride_tricks.as_strided(base, shape=shape, strides=strides, writeable=True)

    def _allocate(self):
        g = self.graph
        # last use of each storage (a view keeps its storage alive); outputs live forever
        last_use: dict[int, int] = {}
        for i, t in enumerate(g.nodes):
            for s in t.src:
                last_use[s.storage.id] = i
            if t.is_view:
                last_use[t.storage.id] = max(last_use.get(t.storage.id, i), i)
        for t in g.outputs.values():
            last_use[t.storage.id] = len(g.nodes)
        free: list[np.ndarray] = []
        releases: dict[int, list[np.ndarray]] = {}
        for i, t in enumerate(g.nodes):
            self._place(t, free, releases, last_use.get(t.id, i), len(g.nodes))
            # buffers whose storage dies at this node become free for the next allocations
            free.extend(releases.pop(i, []))

    def _place(self, t: Tensor, free: list, releases: dict, end: int, n_nodes: int) -> None:
        if t.kind == "weight":
            return
        if t.kind == "cache":
            self.arrays[t.id] = self._view_of(t, self._cache[t.name])
            return
        if t.is_view:
            st = t.storage
            if st.kind == "weight":
                raise GGraphError(f"views of weights are not supported ({t.name})")
            buf = self._cache[st.name] if st.kind == "cache" else self._storage_buf[st.id]
            self.arrays[t.id] = self._view_of(t, buf)
            return
        dtype = runtime_dtype(t)
        nbytes = t.nelements * np.dtype(dtype).itemsize
        buf = None
        if t.kind == "op":
            for j, fb in enumerate(free):
                if nbytes <= fb.nbytes <= 4 * nbytes + 4096:
                    buf = free.pop(j)
                    break
        if buf is None:
            if t.kind == "op" and end >= n_nodes:       # a graph output: never shared with other plans
                buf = np.empty(max(nbytes, 4), np.uint8)
            else:
                buf = self._take(nbytes)
        self._storage_buf[t.id] = buf
        self.arrays[t.id] = buf[:nbytes].view(dtype).reshape(tuple(reversed(t.ne)))
        if t.kind == "op" and end < n_nodes and self._reuse:
            releases.setdefault(end, []).append(buf)

    def _label(self, t: Tensor) -> str:
        """What a per-op profile calls a node: its op; a weight mul_mat by its format, an attention
        one by its node name (kq, kqv)."""
        if t.op != "mul_mat":
            return t.op
        a = t.src[0]
        if a.kind == "weight":
            return f"mul_mat {self.weight(a).fmt.name}"
        return f"mul_mat {(t.name or 'act').rsplit('-', 1)[0]}"

    def _layouts(self, t: Tensor) -> str:
        """Contiguity of t's and its sources' arrays (C, F or A each): kernels compile per layout."""
        out = []
        for x in (t, *t.src):
            a = self.arrays.get(x.id)
            out.append("-" if a is None else "C" if a.flags.c_contiguous else "F" if a.flags.f_contiguous else "A")
        return "".join(out)

    def run(self, profile: dict | None = None) -> None:
        """Run every step; with `profile`, add each op's seconds and calls to profile[label]."""
        if profile is None:
            if self._fast is None:
                self._runs += 1
                if self._runs >= 2:         # every kernel compiled by now
                    self._fast = kernel_call.fast_steps(self.steps)
            for step in self._fast if self._fast is not None else self.steps:
                step()
            return
        clock = time.perf_counter
        for step, label in zip(self.steps, self.labels):
            t0 = clock()
            step()
            acc = profile.setdefault(label or "(thread switch)", [0.0, 0])
            acc[0] += clock() - t0
            acc[1] += 1


    # -- eval callback -----------------------------------------------------------------------
    def _observe_schedule(self):
        """(op nodes before the first step, per step the op nodes whose values are final once it
        ran): each computed node after its own step, each view right after the node before it in
        graph order. Nodes a fusion absorbed have no value of their own and are left out."""
        first: list[Tensor] = []
        after: list[list[Tensor]] = [[] for _ in self.steps]
        index = {t.id: i for i, t in enumerate(self.step_nodes) if t is not None}
        cur = None
        for t in self.graph.ops():
            if t.id in self._absorbed:
                continue
            cur = index.get(t.id, cur)
            (first if cur is None else after[cur]).append(t)
        return first, after

    def run_observed(self, observe) -> bool:
        """Run every step and call observe(node) for every op node of the graph (views included) in
        graph order, once its value is computed; stop and return False when observe returns False.
        The values are read right after their step: later steps may reuse the buffer."""
        if self._observe is None:
            self._observe = self._observe_schedule()
        first, after = self._observe
        for t in first:
            if observe(t) is False:
                return False
        for step, nodes in zip(self.steps, after):
            step()
            for t in nodes:
                if observe(t) is False:
                    return False
        return True


def _set_threads_fn():
    try:   # numba's unchecked setter: 0.2 us instead of 3 us for the public one
        from numba.np.ufunc.parallel import _launch_threads, _set_num_threads
        _launch_threads()
        return _set_num_threads
    except ImportError:  # pragma: no cover - other numba versions
        return numba.set_num_threads


def _with_thread_switches(bound, labels, n_threads):
    """Insert thread-count switches where kernels change between parallel and serial; returns the
    steps and their labels (None for a switch)."""
    if not n_threads:
        return [fn for fn, _ in bound], list(labels)
    setter = _set_threads_fn()
    steps, out_labels, current = [], [], None
    for (fn, parallel), label in zip(bound, labels):
        if parallel is not None and parallel != current:
            n = n_threads if parallel else 1
            steps.append(ThreadSwitch(n, setter))
            out_labels.append(None)
            current = parallel
        steps.append(fn)
        out_labels.append(label)
    return steps, out_labels


def _extent(shape, strides, esz) -> int:
    if any(s == 0 for s in shape):
        return 0
    return sum((n - 1) * st for n, st in zip(shape, strides)) + esz
