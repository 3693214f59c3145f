"""Continuous batching for the server's slots: one Context holding a sequence per slot
(n_seq_max = slots), and per round ONE decode_batch of every active slot's next token.

Each slot's Llama runs on a `SeqContext` (its sequence of the shared context) inside a thread of
its own, but only one of them executes at any time: they all hold `Batcher.cv`'s lock while running
and release it only while parked in `decode_one`. When every slot of the round is parked (or done
with its step) the last one to arrive runs decode_batch for all parked tokens and wakes them with
their logits. A prompt (several tokens) is decoded at once, alone, by the thread that needs it.
decode_batch gives each sequence exactly its solo logits (ggraph's Context.decode_batch), so a
request's output does not depend on what else the server is doing.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


class Batcher:
    def __init__(self, model, n_slots: int, n_ctx_slot: int, n_batch: int, n_ubatch: int, n_threads: int | None,
                 swa_full: bool = True):
        self.ctx = model.new_context(n_ctx=n_ctx_slot * n_slots, n_batch=n_batch, n_ubatch=n_ubatch,
                                     n_threads=n_threads, n_seq_max=n_slots, swa_full=swa_full)
        self.cv = threading.Condition()
        self._running = 0            # threads of this round that are executing (not parked, not done)
        self._pending: dict[int, int] = {}
        self._results: dict[int, object] = {}
        self._pool = ThreadPoolExecutor(max_workers=n_slots, thread_name_prefix="ggraph-slot")
        self._local = threading.local()      # in_round: this thread runs a step of the current round
        self.n_batches = 0           # decode_batch calls (for tests and stats)
        self.n_batched_tokens = 0

    def run_round(self, steps: list) -> list:
        """Run the callables (one step of a slot each) as one round; returns their results in order
        (an exception a step raised is returned, not raised)."""
        with self.cv:
            self._running = len(steps)
        return [f.result() for f in [self._pool.submit(self._run_step, s) for s in steps]]

    def _run_step(self, step):
        with self.cv:
            self._local.in_round = True
            try:
                return step()
            except BaseException as e:      # noqa: BLE001 - handed to the engine as the step's outcome
                return e
            finally:
                self._local.in_round = False
                self._running -= 1
                self._flush_if_ready()

    def decode_one(self, seq: int, token: int):
        """Called by a slot's step (holding cv): park until the round's batch gives this logits."""
        self._pending[seq] = token
        self._running -= 1
        self._flush_if_ready()
        while seq not in self._results:
            self.cv.wait()
        self._running += 1
        out = self._results.pop(seq)
        if isinstance(out, BaseException):
            raise out
        return out

    def _flush_if_ready(self) -> None:
        if self._running or not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            out = self.ctx.decode_batch(batch)
        except Exception as e:              # every parked slot gets the failure
            out = {s: e for s in batch}
        self.n_batches += 1
        self.n_batched_tokens += len(batch)
        self._results.update(out)
        self.cv.notify_all()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class SeqContext:
    """The part of Context that ggraph.Llama uses, for one sequence of the shared context: one-token
    decodes inside a round go through the batcher, everything else runs directly (under its lock)."""

    def __init__(self, batcher: Batcher, seq_id: int):
        self._b, self.seq_id = batcher, seq_id
        ctx = batcher.ctx
        self.n_threads, self.n_ctx, self.n_vocab, self.model = ctx.n_threads, ctx.n_ctx_seq, ctx.n_vocab, ctx.model

    @property
    def n_past(self) -> int:
        return self._b.ctx.seq_n_past(self.seq_id)

    def decode(self, ids, logits_all: bool = False, cb_eval=None):
        if len(ids) == 1 and not logits_all and cb_eval is None and getattr(self._b._local, "in_round", False):
            return self._b.decode_one(self.seq_id, int(ids[0]))
        return self._b.ctx.decode(ids, logits_all=logits_all, cb_eval=cb_eval, seq_id=self.seq_id)

    def truncate(self, n_keep: int) -> int:
        return self._b.ctx.truncate(n_keep, seq_id=self.seq_id)

    def reset(self) -> None:
        self._b.ctx.reset(self.seq_id)
