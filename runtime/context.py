"""Context: one sequence's KV cache plus the decode loop (llama_context / llama_decode).

decode(ids) splits the tokens into ubatches of n_ubatch (the physical batch, llama.cpp's -ub),
builds (or reuses) the graph of each ubatch shape, lets each graph input fill itself from the
ubatch (ggraph.llm.GraphInput), runs it and returns logits. Plans are cached by shape: during
generation n_kv only changes every 256 cells.

Eval callback (llama.cpp's cb_eval, simplified): `ctx.set_eval_callback(fn)` or
`ctx.decode(ids, cb_eval=fn)` calls

    fn(name: str, value: numpy.ndarray, node: ggraph.graph.Tensor) -> bool | None

for every named op node of each ubatch's graph (attn_norm-0, Qcur-0, ..., result_norm,
result_output; views such as the reshaped Qcur-0 included, `node.is_view` tells them), right after
it is computed, in graph order. `value` is a copy, shaped as ggml's ne reversed:
(ne3, ne2, ne1, ne0), ne0 the contiguous axis (a [n_embd, n_tokens] node is
value[0, 0, token, i]); F32 and F16 nodes arrive as float32, I32 nodes as int32. Unlike llama.cpp
there is no "ask" call: every named node is observed. Returning False (not None) stops the run:
decode raises EvalStopped and the KV cache is left as it was before that decode call. A decode
with a callback runs a plan of its own with fusions off (every node is computed by its own kernel,
with the same values as the fused plan); without one, nothing of this runs.
"""
from __future__ import annotations

from collections import OrderedDict

import numba
import numpy as np

from ggraph.errors import GGraphError
from ggraph.llm import LLMGraphContext, StreamSlice, UBatch, context_params

from . import checks, compile_helper, first_run
from .executor import BufferArena, Plan
from .kv_cache import KV_PAD, KV_READ_PAD, KVCache
from .storage import as_f32

N_PLANS_KEPT = 16     # several sequences cycle through more shapes (their n_kv, who is active)


class EvalStopped(GGraphError):
    """An eval callback returned False: the decode stopped at `node_name`."""

    def __init__(self, node_name: str):
        super().__init__(f"decode stopped by the eval callback at node {node_name}")
        self.node_name = node_name


class _Step:
    """The plan of one ubatch shape, with the graph's inputs and the logits it computes."""

    def __init__(self, g: LLMGraphContext, plan: Plan):
        self.plan, self.inputs = plan, g.inputs
        ub = g.ubatch
        # first_run's ubatch class: kernels differ for one token, rowwise batches and prompt batches
        self.cls = "rows" if ub.independent_rows else "1" if ub.n_tokens == 1 else "n"
        self.logits = plan.array(g.res.t_logits)
        # t_embd (result_norm, a graph output: its buffer is never reused): decode(embeddings=True)
        self.embd = None if g.res.t_embd is None else plan.array(g.res.t_embd)

    def run(self, ub: UBatch, profile: dict | None = None, first=None) -> np.ndarray:
        """Set the inputs from ub and run the plan (through first_run's tracker when given)."""
        self.set_inputs(ub)
        if first is None:
            self.plan.run(profile)
        else:
            first.run(self.plan, self.cls, profile)
        return self.logits

    def set_inputs(self, ub: UBatch) -> None:
        arrays = self.plan.arrays
        for inp in self.inputs:
            inp.set_input(ub, lambda t: arrays[t.id].reshape(-1))

    def run_observed(self, ub: UBatch, cb) -> np.ndarray:
        """run() calling cb(name, value copy, node) after each named node; EvalStopped on False."""
        arrays = self.plan.arrays
        for inp in self.inputs:
            inp.set_input(ub, lambda t: arrays[t.id].reshape(-1))

        def observe(t):
            if not t.name:
                return True
            if cb(t.name, np.array(as_f32(t, arrays[t.id]), copy=True), t) is False:
                raise EvalStopped(t.name)
            return True

        self.plan.run_observed(observe)
        return self.logits


def check_threads(n_threads: int) -> int:
    max_threads = numba.config.NUMBA_NUM_THREADS
    if not isinstance(n_threads, (int, np.integer)) or isinstance(n_threads, bool) or not 1 <= n_threads <= max_threads:
        raise GGraphError(f"n_threads must be between 1 and {max_threads}, got {n_threads}")
    return int(n_threads)


class Context:
    def __init__(self, model, n_ctx: int = 4096, n_batch: int = 2048, n_ubatch: int = 512,
                 n_threads: int | None = None, n_seq_max: int = 1, swa_full: bool = True):
        checks.context_args(model, n_ctx, n_batch, n_ubatch, n_threads, n_seq_max)
        for name, v in (("n_ctx", n_ctx), ("n_batch", n_batch), ("n_ubatch", n_ubatch)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise GGraphError(f"{name} must be a positive integer, got {v!r}")
        self.model = model
        hp = model.arch_model.hp
        self.n_ctx = n_ctx
        self.n_batch = n_batch                  # logical batch (-b): kept for llama.cpp parity
        self.n_ubatch = min(n_batch, n_ubatch)  # physical batch (-ub), as llama.cpp clamps it
        self.n_threads = check_threads(n_threads if n_threads is not None else numba.config.NUMBA_NUM_THREADS)
        if not isinstance(n_seq_max, int) or isinstance(n_seq_max, bool) or not 1 <= n_seq_max <= n_ctx:
            raise GGraphError(f"n_seq_max must be an integer in 1..n_ctx={n_ctx}, got {n_seq_max!r}")
        # several sequences: each gets n_ctx / n_seq_max cells of its own (llama.cpp's non-unified cache)
        self.n_seq_max = n_seq_max
        self.n_ctx_seq = n_ctx // n_seq_max
        checks.check_bool("new_context", "swa_full", swa_full)
        self.kv = KVCache(hp, self.n_ctx_seq, n_seq_max, n_ubatch=self.n_ubatch, swa_full=swa_full)
        self._arena = BufferArena()            # scratch shared by this context's plans
        self._first = first_run.tracker(model)  # which kernels are compiled yet (first_run.py)
        self._helped = False                    # a compile helper ran for this context (compile_helper.py)
        self.op_profile: dict | None = None     # set to {} to collect per-op [seconds, calls] (bench --profile)
        self.cparams = context_params(hp, self.kv.size)
        self._steps: OrderedDict[tuple, _Step] = OrderedDict()
        self.n_vocab = hp.n_vocab
        self._cb_eval = None                    # set_eval_callback

    def set_eval_callback(self, fn) -> None:
        """Call fn(name, value, node) for every named node of every later decode (see the module
        docstring); None removes it."""
        if fn is not None and not callable(fn):
            raise GGraphError(f"set_eval_callback: expected a callable or None, got {type(fn).__name__}")
        self._cb_eval = fn

    @property
    def compile_seconds(self) -> float:
        """Seconds this process spent compiling kernels for the model (first runs; first_run.py)."""
        return first_run.compile_seconds()

    @property
    def n_past(self) -> int:
        return self.kv.n_past

    def seq_n_past(self, seq_id: int) -> int:
        return self.kv.past[self._seq(seq_id)]

    def reset(self, seq_id: int | None = None) -> None:
        """Forget the sequence seq_id (all of them when None): clear its KV cells."""
        self.kv.clear(None if seq_id is None else self._seq(seq_id))

    def truncate(self, n_keep: int, seq_id: int = 0) -> int:
        """Keep only the first n_keep positions of a sequence (llama_memory_seq_rm from n_keep on);
        returns the positions kept: 0 (the sequence cleared) when a window-sized SWA cache no longer
        holds the window its next token needs (then the caller decodes from the start, as
        llama-server does when it cannot reuse a window-sized cache)."""
        checks.truncate_args(self, n_keep, seq_id)
        s = self._seq(seq_id)
        if not 0 <= n_keep <= self.kv.past[s]:
            raise GGraphError(f"truncate: n_keep={n_keep} outside 0..{self.kv.past[s]}")
        return self.kv.truncate(s, n_keep)

    def _seq(self, seq_id) -> int:
        if not isinstance(seq_id, (int, np.integer)) or isinstance(seq_id, bool) or not 0 <= seq_id < self.n_seq_max:
            raise GGraphError(f"seq_id must be an integer in 0..{self.n_seq_max - 1}, got {seq_id!r}")
        return int(seq_id)

    def generate(self, ids, n_predict: int = -1, sampler=None):
        """Iterator over generated token ids (see runtime/generate.py)."""
        checks.generate_args(self, ids, n_predict, sampler)
        from .generate import generate
        return generate(self, ids, n_predict=n_predict, sampler=sampler)

    # -- graphs -----------------------------------------------------------------------------
    def build_graph(self, n_tokens: int, n_outputs: int, n_kv: int, streams=None,
                    independent_rows: bool = False, swa_skip: int = 0, n_kv_swa: int = 0) -> LLMGraphContext:
        """The model's graph for one ubatch shape (g.gf the graph, g.inputs, g.res)."""
        ub = UBatch(n_tokens, n_outputs, n_kv, streams=streams, independent_rows=independent_rows,
                    swa_skip=swa_skip, n_kv_swa=n_kv_swa)
        g = LLMGraphContext(self.model.arch_model, self.cparams, ub, self.kv.layout)
        with g.gf:
            self.model.arch_model.build_graph(g)
        if g.res.t_logits is None:
            raise GGraphError(f"arch {self.model.arch_model.arch}: build_graph set no g.res.t_logits")
        return g

    def _step(self, n_tokens: int, n_outputs: int, n_kv: int, observed: bool = False, streams=None,
              independent_rows: bool = False, swa_skip: int = 0, n_kv_swa: int = 0) -> _Step:
        key = (n_tokens, n_outputs, n_kv, streams, independent_rows, swa_skip, n_kv_swa) + (("eval",) if observed else ())
        step = self._steps.get(key)
        if step is None:
            g = self.build_graph(n_tokens, n_outputs, n_kv, streams, independent_rows, swa_skip, n_kv_swa)
            step = _Step(g, Plan(g.gf, self.model.weights, self.kv.arrays, n_threads=self.n_threads,
                                    arena=self._arena, fuse=not observed))
            self._steps[key] = step
            if len(self._steps) > N_PLANS_KEPT:
                self._steps.popitem(last=False)
        else:
            self._steps.move_to_end(key)
        return step

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, ids, logits_all: bool = False, cb_eval=None, seq_id: int = 0,
               embeddings: bool = False) -> np.ndarray:
        """Append tokens to sequence seq_id; returns float32 logits [len(ids), n_vocab] if logits_all,
        else [n_vocab] for the last token. cb_eval: an eval callback for this call only (it
        replaces set_eval_callback's; see the module docstring). embeddings=True returns instead
        every token's t_embd (result_norm: llama.cpp's embeddings with pooling none), float32
        [len(ids), n_embd]; pooling is runtime/embeddings.py's."""
        checks.decode_args(self, ids, logits_all, cb_eval, seq_id)
        checks.check_bool("decode", "embeddings", embeddings)
        seq = self._seq(seq_id)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise GGraphError("decode: no tokens given")
        if ids.min() < 0 or ids.max() >= self.n_vocab:
            bad = int(ids[(ids < 0) | (ids >= self.n_vocab)][0])
            raise GGraphError(f"decode: token id {bad} is outside the vocabulary (0..{self.n_vocab - 1})")
        if self.kv.past[seq] + ids.size > self.n_ctx_seq:
            raise GGraphError(f"the prompt needs {self.kv.past[seq] + ids.size} positions but the context holds "
                              f"n_ctx={self.n_ctx_seq} (prompt too long: raise -c/n_ctx or shorten it)")
        helper = None
        if not self._helped:         # decided once per context: on a first run the second core helps
            self._helped = True
            if not self._first.has_class("1"):
                helper = compile_helper.start(self, ids.size)
        cb = cb_eval if cb_eval is not None else self._cb_eval
        if cb is not None and not callable(cb):
            raise GGraphError(f"decode: cb_eval must be callable, got {type(cb).__name__}")
        n_past, swa_state = self.kv.past[seq], self.kv.swa_state()
        try:
            return self._decode(ids, logits_all, cb, seq, bool(embeddings))
        except BaseException:       # nothing of a failed or stopped decode stays in the cache
            self.kv.past[seq] = n_past
            self.kv.set_swa_state(swa_state)
            raise
        finally:
            compile_helper.stop(helper)
            self._first.finish()

    def decode_batch(self, tokens_by_seq: dict) -> dict:
        """One token for each of several sequences in ONE ubatch ({seq_id: token} -> {seq_id: logits
        [n_vocab]}): the weights are read once for all (where the format's batch kernel gives each
        row its one-token result; row by row otherwise), each sequence attends over its own cells,
        and every sequence's logits are bit for bit those of decoding it alone."""
        if not isinstance(tokens_by_seq, dict) or not tokens_by_seq:
            raise GGraphError("decode_batch: expected a non-empty {seq_id: token} dict")
        seqs = sorted(self._seq(s) for s in tokens_by_seq)
        toks = np.array([tokens_by_seq[s] for s in seqs], dtype=np.int64)
        if toks.min() < 0 or toks.max() >= self.n_vocab:
            raise GGraphError(f"decode_batch: token ids must be in 0..{self.n_vocab - 1}")
        full = [s for s in seqs if self.kv.past[s] + 1 > self.n_ctx_seq]
        if full:
            raise GGraphError(f"decode_batch: sequence {full[0]} is full (n_ctx per sequence {self.n_ctx_seq})")
        if len(seqs) == 1:
            return {seqs[0]: self.decode(toks, seq_id=seqs[0])}
        numba.set_num_threads(self.n_threads)
        n = len(seqs)
        # every stream attends over the same n_kv cells (the most any needs, as llama.cpp's n_kv over
        # its streams) and skips the same leading SWA cells (the fewest any may): consecutive streams
        # then attend in one 4-D product (ggraph.llm.stream_runs); the extra cells are masked, and
        # masked cells add exact zeros, so each sequence keeps its solo bits
        n_kv = max(self.kv.n_kv_for(1, s) for s in seqs)
        pos = np.array([self.kv.past[s] for s in seqs], np.int32)
        swa_state = self.kv.swa_state()
        cells_swa, pos_swa, n_kv_swa = self._place_swa(seqs, [pos[i:i + 1] for i in range(n)])
        skip = 0 if self.kv.swa is not None else min(self._swa_skip(self.kv.past[s], n_kv) for s in seqs)
        streams = tuple(StreamSlice(s, i, i + 1, n_kv, skip, n_kv_swa) for i, s in enumerate(seqs))
        step = self._step(n, n, 0, streams=streams, independent_rows=True)
        ub = UBatch(n, n, 0, tokens=toks.astype(np.int32), pos=pos,
                    out_ids=np.arange(n, dtype=np.int32),
                    kv_cells=np.concatenate([self.kv.find_slot(1, s) for s in seqs]),
                    streams=streams, independent_rows=True,
                    stream_kv_pos=[self.kv.cell_pos(sl.n_kv, self.kv.past[sl.stream] + 1) for sl in streams],
                    kv_cells_swa=cells_swa, kv_pos_swa=pos_swa)
        try:
            logits = step.run(ub, self.op_profile, self._first).reshape(n, self.n_vocab)
        except BaseException:
            self.kv.set_swa_state(swa_state)
            raise
        finally:
            self._first.finish()
        for s in seqs:
            self.kv.past[s] += 1
        return {s: logits[i].copy() for i, s in enumerate(seqs)}

    def decode_embeddings_packed(self, seqs: list) -> list:
        """Token embeddings (t_embd) of several sequences decoded TOGETHER, as llama.cpp decodes an
        embedding batch in its unified KV cache: their tokens packed in order into cells 0, 1, ... of
        sequence 0 (cleared before and after) and cut into ubatches of n_ubatch, each token attending
        only to the cells of its own sequence (the kq masks are set per sequence). Returns float32
        [len(seqs[i]), n_embd] per sequence (runtime/embeddings.py pools them)."""
        from ggraph.llm import InputAttnKV
        if not isinstance(seqs, (list, tuple)) or not seqs:
            raise GGraphError("decode_embeddings_packed: expected a non-empty list of token lists")
        for i, s in enumerate(seqs):
            if checks.token_ids("decode_embeddings_packed", s, self.n_vocab) < 1:
                raise GGraphError(f"decode_embeddings_packed: sequence {i} has no tokens")
        if self.kv.swa is not None:
            raise GGraphError("decode_embeddings_packed: needs a context with swa_full=True (a full-size cache "
                              "for sliding-window layers)")
        seqs = [np.asarray(s, np.int64).reshape(-1) for s in seqs]
        owner = np.concatenate([np.full(s.size, i, np.int32) for i, s in enumerate(seqs)])
        pos = np.concatenate([np.arange(s.size, dtype=np.int32) for s in seqs])
        toks = np.concatenate(seqs).astype(np.int32)
        if toks.size > self.n_ctx_seq:
            raise GGraphError(f"decode_embeddings_packed: {toks.size} tokens but the context holds "
                              f"n_ctx={self.n_ctx_seq}")
        numba.set_num_threads(self.n_threads)
        hp = self.model.arch_model.hp
        out = np.empty((toks.size, hp.n_embd), np.float32)
        self.kv.clear(0)
        try:
            for start in range(0, toks.size, self.n_ubatch):
                n = min(self.n_ubatch, toks.size - start)
                n_kv = self.kv.n_kv_for(n, 0)
                step = self._step(n, n, n_kv)
                ub = UBatch(n, n, n_kv, tokens=toks[start:start + n], pos=pos[start:start + n],
                            out_ids=np.arange(n, dtype=np.int32), kv_cells=self.kv.find_slot(n, 0),
                            kv_pos=self.kv.cell_pos(n_kv, start + n))
                arrays = step.plan.arrays
                step.set_inputs(ub)
                # llama_kv_cache::set_input_kq_mask over a unified cache: a cell is visible to a token
                # of the same sequence at a position >= the cell's
                used = min(start + n, n_kv)
                c_seq = np.full(n_kv, -1, np.int32)
                c_pos = np.full(n_kv, -1, np.int32)
                c_seq[:used], c_pos[:used] = owner[:used], pos[:used]
                p, cp = ub.pos[:, None], c_pos[None, :]
                visible = (c_seq[None, :] == owner[start:start + n, None]) & (cp >= 0) & (cp <= p)
                inside = -np.abs(p - cp).astype(np.float32) if hp.f_max_alibi_bias > 0.0 else np.float32(0.0)
                for inp in step.inputs:
                    if isinstance(inp, InputAttnKV):
                        arrays[inp.masks[0].id].reshape(-1)[:] = \
                            np.where(visible, inside, np.float32(-np.inf)).astype(np.float32).reshape(-1)
                        if inp.masks_swa is not None:
                            arrays[inp.masks_swa[0].id].reshape(-1)[:] = np.where(
                                visible & (p - cp < hp.n_swa), inside, np.float32(-np.inf)).astype(np.float32).reshape(-1)
                self._first.run(step.plan, step.cls, self.op_profile)
                self.kv.past[0] = start + n
                if step.embd is None:
                    raise GGraphError(f"arch {self.model.arch_model.arch}: build_graph set no g.res.t_embd")
                out[start:start + n] = step.embd.reshape(n, -1)
        finally:
            self.kv.clear(0)
            self._first.finish()
        return np.split(out, np.cumsum([s.size for s in seqs])[:-1])

    def _place_swa(self, seqs, positions, pad_to: int = KV_READ_PAD):
        """The window-sized cache's cells for each sequence's new positions (placed now, as llama.cpp
        places a ubatch before computing it), the positions its read cells hold, and the cells read
        (the most any sequence needs); (None, None, 0) without a window-sized cache."""
        if self.kv.swa is None:
            return None, None, 0
        cells = np.concatenate([self.kv.place_swa(s, p) for s, p in zip(seqs, positions)])
        n_kv_swa = max(self.kv.swa_read(s, pad_to) for s in seqs)
        return cells, [self.kv.swa_positions(s, n_kv_swa) for s in seqs], n_kv_swa

    def _swa_skip(self, p_first: int, n_kv: int) -> int:
        """Leading cells (whole 64-blocks: every sum's lanes stay where they were) that the sliding
        window of the ubatch's first token at position p_first, and so of every later one, has left:
        the SWA layers' attention skips them."""
        n_swa = self.model.arch_model.hp.n_swa
        if n_swa <= 0:
            return 0
        return max(0, min(max(0, p_first - n_swa + 1) // KV_READ_PAD * KV_READ_PAD, n_kv - KV_READ_PAD))

    def _decode(self, ids: np.ndarray, logits_all: bool, cb=None, seq: int = 0, embd: bool = False) -> np.ndarray:
        numba.set_num_threads(self.n_threads)
        logits_all = logits_all or embd          # embeddings: every token is an output, as llama.cpp's
        out = np.empty((ids.size, self.model.arch_model.hp.n_embd if embd else self.n_vocab), np.float32) \
            if logits_all else None
        last = None
        for start in range(0, ids.size, self.n_ubatch):
            chunk = ids[start:start + self.n_ubatch]
            n = chunk.size
            logits = self._decode_ubatch(chunk, n if logits_all else 1, cb, seq, embd)
            if logits_all:
                out[start:start + n] = logits
            else:
                last = logits[-1]
        return out if logits_all else last.copy()

    def _decode_ubatch(self, tokens: np.ndarray, n_outputs: int, cb=None, seq: int = 0,
                       embd: bool = False) -> np.ndarray:
        n = tokens.size
        # an eval callback sees llama.cpp's shapes: n_kv padded to 256, no SWA skipping
        n_kv = self.kv.n_kv_for(n, seq, KV_PAD if cb is not None else KV_READ_PAD)
        # stream 0 keeps the one-sequence graph; another stream's views start at its cells
        p0 = self.kv.past[seq]
        pos = np.arange(p0, p0 + n, dtype=np.int32)
        cells_swa, pos_swa, n_kv_swa = self._place_swa([seq], [pos], KV_PAD if cb is not None else KV_READ_PAD)
        skip = self._swa_skip(p0, n_kv) if cb is None and self.kv.swa is None else 0
        streams = None if seq == 0 else (StreamSlice(seq, 0, n, n_kv, skip, n_kv_swa),)
        step = self._step(n, n_outputs, n_kv, cb is not None, streams, swa_skip=skip, n_kv_swa=n_kv_swa)
        cells = self.kv.find_slot(n, seq)
        kv_pos = self.kv.cell_pos(n_kv, p0 + n)
        ub = UBatch(n, n_outputs, n_kv, tokens=tokens.astype(np.int32), pos=pos,
                    out_ids=np.arange(n - n_outputs, n, dtype=np.int32), kv_cells=cells, kv_pos=kv_pos,
                    streams=streams, stream_kv_pos=None if streams is None else [kv_pos], swa_skip=skip,
                    n_kv_swa=n_kv_swa, kv_cells_swa=cells_swa, kv_pos_swa=pos_swa)
        logits = step.run(ub, self.op_profile, self._first) if cb is None else step.run_observed(ub, cb)
        self.kv.past[seq] = p0 + n
        if embd:
            if step.embd is None:
                raise GGraphError(f"arch {self.model.arch_model.arch}: build_graph set no g.res.t_embd")
            return step.embd.reshape(n_outputs, -1)
        return logits.reshape(n_outputs, self.n_vocab)
