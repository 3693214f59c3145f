"""Context: one sequence's KV cache plus the decode loop (llama_context / llama_decode).

decode(ids) splits the tokens into ubatches of n_batch, builds (or reuses) the graph of each
ubatch shape, fills the inputs (tokens, positions, mask, cache cells, output rows), runs it and
returns logits. Plans are cached by shape: during generation n_kv only changes every 256 cells.
"""
from __future__ import annotations

from collections import OrderedDict

import numba
import numpy as np

from ggraph.errors import GGraphError
from ggraph.llm import ContextParams, LLMGraphContext, UBatch

from .executor import Plan
from .kv_cache import KVCache

N_PLANS_KEPT = 8


def check_threads(n_threads: int) -> int:
    max_threads = numba.config.NUMBA_NUM_THREADS
    if not isinstance(n_threads, (int, np.integer)) or isinstance(n_threads, bool) or not 1 <= n_threads <= max_threads:
        raise GGraphError(f"n_threads must be between 1 and {max_threads}, got {n_threads}")
    return int(n_threads)


class Context:
    def __init__(self, model, n_ctx: int = 4096, n_batch: int = 512, n_threads: int | None = None):
        if not isinstance(n_ctx, int) or n_ctx < 1:
            raise GGraphError(f"n_ctx must be a positive integer, got {n_ctx!r}")
        if not isinstance(n_batch, int) or n_batch < 1:
            raise GGraphError(f"n_batch must be a positive integer, got {n_batch!r}")
        self.model = model
        hp = model.arch_model.hp
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.n_threads = check_threads(n_threads if n_threads is not None else numba.config.NUMBA_NUM_THREADS)
        self.kv = KVCache(hp, n_ctx)
        self.cparams = ContextParams(n_ctx=self.kv.size, freq_base=hp.rope_freq_base, freq_scale=hp.rope_freq_scale,
                                     n_ctx_orig=hp.n_ctx_train)
        self._plans: OrderedDict[tuple, Plan] = OrderedDict()
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
    def build_graph(self, n_tokens: int, n_outputs: int, n_kv: int):
        g = LLMGraphContext(self.model.arch_model, self.cparams, UBatch(n_tokens, n_outputs, n_kv), self.kv.layout)
        with g.gf:
            self.model.arch_model.build_graph(g)
        return g.gf

    def _plan(self, n_tokens: int, n_outputs: int, n_kv: int) -> Plan:
        key = (n_tokens, n_outputs, n_kv)
        plan = self._plans.get(key)
        if plan is None:
            plan = Plan(self.build_graph(n_tokens, n_outputs, n_kv), self.model.weights, self.kv.arrays,
                        n_threads=self.n_threads)
            self._plans[key] = plan
            if len(self._plans) > N_PLANS_KEPT:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

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
        numba.set_num_threads(self.n_threads)
        out = np.empty((ids.size, self.n_vocab), np.float32) if logits_all else None
        last = None
        for start in range(0, ids.size, self.n_batch):
            chunk = ids[start:start + self.n_batch]
            n = chunk.size
            n_out = n if logits_all else 1
            logits = self._decode_ubatch(chunk, n_out)
            if logits_all:
                out[start:start + n] = logits
            else:
                last = logits[-1]
        return out if logits_all else last.copy()

    def _decode_ubatch(self, tokens: np.ndarray, n_outputs: int) -> np.ndarray:
        n = tokens.size
        n_kv = self.kv.n_kv_for(n)
        plan = self._plan(n, n_outputs, n_kv)
        p0 = self.kv.n_past
        pos = np.arange(p0, p0 + n, dtype=np.int32)
        inp = plan.inputs
        inp["inp_tokens"].reshape(-1)[:] = tokens
        inp["inp_pos"].reshape(-1)[:] = pos
        inp["k_idxs"].reshape(-1)[:] = pos          # one sequence: cell == position
        inp["v_idxs"].reshape(-1)[:] = pos
        cells = np.arange(n_kv, dtype=np.int32)[None, :]
        visible = cells <= pos[:, None]                 # causal over this sequence's cells
        inp["kq_mask"].reshape(n, n_kv)[:] = np.where(visible, np.float32(0.0), np.float32(-np.inf))
        if "kq_mask_swa" in inp:                        # llama_hparams::is_masked_swa (STANDARD)
            in_window = pos[:, None] - cells < self.model.hp.n_swa
            inp["kq_mask_swa"].reshape(n, n_kv)[:] = np.where(visible & in_window, np.float32(0.0),
                                                              np.float32(-np.inf))
        inp["inp_out_ids"].reshape(-1)[:] = np.arange(n - n_outputs, n, dtype=np.int32)
        plan.run()
        self.kv.n_past = p0 + n
        return plan.outputs["result_output"].reshape(n_outputs, self.n_vocab)
