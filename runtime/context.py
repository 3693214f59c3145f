"""Context: one sequence's KV cache plus the decode loop (llama_context / llama_decode).

decode(ids) splits the tokens into ubatches of n_ubatch (the physical batch, llama.cpp's -ub),
builds (or reuses) the graph of each ubatch shape, lets each graph input fill itself from the
ubatch (ggraph.llm.GraphInput), runs it and returns logits. Plans are cached by shape: during
generation n_kv only changes every 256 cells.
"""
from __future__ import annotations

from collections import OrderedDict

import numba
import numpy as np

from ggraph.errors import GGraphError
from ggraph.llm import LLMGraphContext, UBatch, context_params

from . import compile_helper, first_run
from .executor import BufferArena, Plan
from .kv_cache import KVCache

N_PLANS_KEPT = 8


class _Step:
    """The plan of one ubatch shape, with the graph's inputs and the logits it computes."""

    def __init__(self, g: LLMGraphContext, plan: Plan):
        self.plan, self.inputs = plan, g.inputs
        self.logits = plan.array(g.res.t_logits)

    def run(self, ub: UBatch, profile: dict | None = None) -> np.ndarray:
        arrays = self.plan.arrays
        for inp in self.inputs:
            inp.set_input(ub, lambda t: arrays[t.id].reshape(-1))
        self.plan.run(profile)
        return self.logits


def check_threads(n_threads: int) -> int:
    max_threads = numba.config.NUMBA_NUM_THREADS
    if not isinstance(n_threads, (int, np.integer)) or isinstance(n_threads, bool) or not 1 <= n_threads <= max_threads:
        raise GGraphError(f"n_threads must be between 1 and {max_threads}, got {n_threads}")
    return int(n_threads)


class Context:
    def __init__(self, model, n_ctx: int = 4096, n_batch: int = 2048, n_ubatch: int = 512,
                 n_threads: int | None = None):
        for name, v in (("n_ctx", n_ctx), ("n_batch", n_batch), ("n_ubatch", n_ubatch)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise GGraphError(f"{name} must be a positive integer, got {v!r}")
        self.model = model
        hp = model.arch_model.hp
        self.n_ctx = n_ctx
        self.n_batch = n_batch                  # logical batch (-b): kept for llama.cpp parity
        self.n_ubatch = min(n_batch, n_ubatch)  # physical batch (-ub), as llama.cpp clamps it
        self.n_threads = check_threads(n_threads if n_threads is not None else numba.config.NUMBA_NUM_THREADS)
        self.kv = KVCache(hp, n_ctx)
        self._arena = BufferArena()            # scratch shared by this context's plans
        self._cold = None                       # first run: kernels not compiled yet (first_run.py)
        self._helped = False                    # a compile helper ran for this context (compile_helper.py)
        self.op_profile: dict | None = None     # set to {} to collect per-op [seconds, calls] (bench --profile)
        self.cparams = context_params(hp, self.kv.size)
        self._steps: OrderedDict[tuple, _Step] = OrderedDict()
        self.n_vocab = hp.n_vocab

    @property
    def n_past(self) -> int:
        return self.kv.n_past

    def reset(self) -> None:
        """Forget the sequence (clear the KV cache)."""
        self.kv.clear()

    def truncate(self, n_keep: int) -> None:
        """Keep only the first n_keep positions (llama_memory_seq_rm from n_keep on)."""
        if not 0 <= n_keep <= self.kv.n_past:
            raise GGraphError(f"truncate: n_keep={n_keep} outside 0..{self.kv.n_past}")
        self.kv.n_past = n_keep

    def generate(self, ids, n_predict: int = -1, sampler=None):
        """Iterator over generated token ids (see runtime/generate.py)."""
        from .generate import generate
        return generate(self, ids, n_predict=n_predict, sampler=sampler)

    # -- graphs -----------------------------------------------------------------------------
    def build_graph(self, n_tokens: int, n_outputs: int, n_kv: int) -> LLMGraphContext:
        """The model's graph for one ubatch shape (g.gf the graph, g.inputs, g.res)."""
        g = LLMGraphContext(self.model.arch_model, self.cparams, UBatch(n_tokens, n_outputs, n_kv), self.kv.layout)
        with g.gf:
            self.model.arch_model.build_graph(g)
        if g.res.t_logits is None:
            raise GGraphError(f"arch {self.model.arch_model.arch}: build_graph set no g.res.t_logits")
        return g

    def _step(self, n_tokens: int, n_outputs: int, n_kv: int) -> _Step:
        key = (n_tokens, n_outputs, n_kv)
        step = self._steps.get(key)
        if step is None:
            g = self.build_graph(n_tokens, n_outputs, n_kv)
            step = _Step(g, Plan(g.gf, self.model.weights, self.kv.arrays, n_threads=self.n_threads,
                                    arena=self._arena))
            self._steps[key] = step
            if len(self._steps) > N_PLANS_KEPT:
                self._steps.popitem(last=False)
        else:
            self._steps.move_to_end(key)
        return step

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, ids, logits_all: bool = False) -> np.ndarray:
        """Append tokens to the sequence; returns float32 logits [len(ids), n_vocab] if logits_all,
        else [n_vocab] for the last token."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise GGraphError("decode: no tokens given")
        if ids.min() < 0 or ids.max() >= self.n_vocab:
            bad = int(ids[(ids < 0) | (ids >= self.n_vocab)][0])
            raise GGraphError(f"decode: token id {bad} is outside the vocabulary (0..{self.n_vocab - 1})")
        if self.kv.n_past + ids.size > self.n_ctx:
            raise GGraphError(f"the prompt needs {self.kv.n_past + ids.size} positions but the context holds "
                              f"n_ctx={self.n_ctx} (prompt too long: raise -c/n_ctx or shorten it)")
        if self._cold is None:
            self._cold = first_run.is_first_run(self.model)
        helper = None
        if self._cold:
            first_run.announce(self.model)
            if not self._helped:
                helper = compile_helper.start(self, ids.size)
                self._helped = True
        try:
            return self._decode(ids, logits_all)
        finally:
            compile_helper.stop(helper)

    def _decode(self, ids: np.ndarray, logits_all: bool) -> np.ndarray:
        numba.set_num_threads(self.n_threads)
        out = np.empty((ids.size, self.n_vocab), np.float32) if logits_all else None
        last = None
        for start in range(0, ids.size, self.n_ubatch):
            chunk = ids[start:start + self.n_ubatch]
            n = chunk.size
            logits = self._decode_ubatch(chunk, n if logits_all else 1)
            if logits_all:
                out[start:start + n] = logits
            else:
                last = logits[-1]
        if self._cold and ids.size == 1:     # prompt and one-token kernels have both compiled
            first_run.mark_compiled(self.model)
            self._cold = False
        return out if logits_all else last.copy()

    def _decode_ubatch(self, tokens: np.ndarray, n_outputs: int) -> np.ndarray:
        n = tokens.size
        n_kv = self.kv.n_kv_for(n)
        step = self._step(n, n_outputs, n_kv)
        p0 = self.kv.n_past
        cells = self.kv.find_slot(n)
        ub = UBatch(n, n_outputs, n_kv, tokens=tokens.astype(np.int32), pos=np.arange(p0, p0 + n, dtype=np.int32),
                    out_ids=np.arange(n - n_outputs, n, dtype=np.int32), kv_cells=cells,
                    kv_pos=self.kv.cell_pos(n_kv, p0 + n))
        logits = step.run(ub, self.op_profile)
        self.kv.n_past = p0 + n
        return logits.reshape(n_outputs, self.n_vocab)
