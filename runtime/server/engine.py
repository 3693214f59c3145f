"""The server's slot scheduler: N slots over one loaded model, one worker thread for every decode.

    engine = Engine(model, n_parallel=2, n_ctx=4096)    # -c is shared by the slots, as llama-server's
    job = engine.submit(task)            # task(llm, slot_id) -> iterator; each next() is one step
    for event in job: ...                # blocking; or `await job.get()` from an asyncio handler
    job.cancel()                         # frees the slot before its next step (client gone)
    engine.close()

A task is a generator over a slot's `ggraph.Llama` (runtime/server/jobs.py builds them): each
next() advances that slot by one generated token (one decode; while text is held back for a
partial stop string or an unfinished UTF-8 character the Llama stream may take a few tokens
before it yields) and returns an event for the client, or None for "nothing to send yet".
The first next() also validates the request and evaluates the prompt; an exception there or later
ends the job and reaches the consumer as that exception.

Scheduling: jobs wait in a FIFO queue; at the start of every round each free slot takes the next
queued job; then every active slot takes one step, in slot order (round-robin, so concurrent
streams interleave token by token). A finished, failed or cancelled job frees its slot at once.
Only the worker thread touches the slots' contexts, so two decodes never run at the same time
(the kernels already use every core).

Batching: the slots' Llamas share ONE context with a sequence per slot (n_seq_max = N); in a round
every active slot's step runs in a thread of its own but one at a time, and their one-token decodes
are gathered into one decode_batch (runtime/server/batch.py), which reads each weight once for all
and gives every sequence exactly its solo logits. A new request joins at the next round, a
finished one leaves at once (continuous batching).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
import time

from ggraph.errors import GGraphError

from .batch import Batcher, SeqContext

log = logging.getLogger("ggraph.server")

END = object()          # Job.get(): the task has finished


class ShuttingDown(GGraphError):
    """The engine was closed: the job was not run, or not to its end."""


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Job:
    """One request: its task, the events it produced (thread-safe), and a cancel flag."""

    def __init__(self, task, loop: asyncio.AbstractEventLoop | None = None):
        self.task = task
        self.slot_id: int | None = None          # set when a slot takes the job
        self.t_submit = time.perf_counter()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._loop = loop
        self._wakeup = asyncio.Event() if loop is not None else None
        self._cancelled = threading.Event()
        self._engine: Engine | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the job: a queued job never starts, a running one frees its slot before its next step."""
        if not self._cancelled.is_set():
            self._cancelled.set()
            if self._engine is not None:
                self._engine._wake()

    # -- producer side (the worker thread) ----------------------------------------------------
    def _put(self, item) -> None:
        self._events.put(item)
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._wakeup.set)
            except RuntimeError:         # the consumer's event loop is gone: nobody is listening
                self._cancelled.set()

    # -- consumer side --------------------------------------------------------------------------
    @staticmethod
    def _unwrap(item):
        if isinstance(item, _Failure):
            raise item.exc
        return item

    def __iter__(self):
        """Events as they come (blocking); raises the task's exception if it failed."""
        while True:
            item = self._unwrap(self._events.get())
            if item is END:
                return
            yield item

    async def get(self, timeout: float | None = None):
        """The next event, END when the task is done (asyncio; the job must have been submitted
        with this loop). Raises TimeoutError after `timeout` seconds without an event, or the
        task's exception."""
        while True:
            try:
                return self._unwrap(self._events.get_nowait())
            except queue.Empty:
                pass
            self._wakeup.clear()
            if self._events.empty():
                await asyncio.wait_for(self._wakeup.wait(), timeout)


class Slot:
    """One sequence: a Llama (its own context and KV cache) on the shared model, and its job."""

    def __init__(self, slot_id: int, llm):
        self.id, self.llm = slot_id, llm
        self.job: Job | None = None
        self.steps = None                # the job's task iterator, started at its first step
        self.n_steps = 0

    @property
    def busy(self) -> bool:
        return self.job is not None


class Engine:
    """N_PARALLEL slots over one Model and the worker thread that runs them (see the module doc)."""

    def __init__(self, model, n_parallel: int = 1, n_ctx: int = 4096, n_batch: int = 2048, n_ubatch: int = 512,
                 n_threads: int | None = None, start: bool = True, swa_full: bool = False):
        from ..api.llama import Llama
        if not isinstance(n_parallel, int) or isinstance(n_parallel, bool) or n_parallel < 1:
            raise GGraphError(f"-np/n_parallel must be a positive integer, got {n_parallel!r}")
        if not isinstance(n_ctx, int) or isinstance(n_ctx, bool) or n_ctx < 0:
            raise GGraphError(f"-c/n_ctx must be an integer >= 0, got {n_ctx!r}")
        n_ctx = n_ctx or model.hp.n_ctx_train            # 0 = the model's training context
        n_ctx_slot = n_ctx // n_parallel                  # llama-server: the slots share -c
        if n_ctx_slot < 2:
            raise GGraphError(f"-c {n_ctx} split over {n_parallel} slots leaves {n_ctx_slot} tokens per slot")
        self.model = model
        model.vocab                                       # built once here, not by two threads at once
        self.n_ctx_slot = n_ctx_slot
        # one context, a sequence per slot; a round's one-token decodes run as one ubatch (batch.py)
        self.batcher = Batcher(model, n_parallel, n_ctx_slot, min(n_batch, n_ctx_slot), min(n_ubatch, n_batch),
                               n_threads, swa_full=swa_full)
        self.slots = [Slot(i, Llama.from_model(model, n_ctx=n_ctx_slot, n_batch=n_batch, n_ubatch=n_ubatch,
                                               n_threads=n_threads, verbose=False,
                                               context=SeqContext(self.batcher, i)))
                      for i in range(n_parallel)]
        self._queue: collections.deque[Job] = collections.deque()
        self._cv = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- public interface -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ggraph-engine", daemon=True)
            self._thread.start()

    def submit(self, task, loop: asyncio.AbstractEventLoop | None = None) -> Job:
        """Queue a task (task(llm, slot_id) -> iterator of events); returns its Job. Give `loop`
        to consume the events with `await job.get()` from that asyncio loop."""
        job = Job(task, loop)
        job._engine = self
        with self._cv:
            if self._closing:
                raise ShuttingDown("the server is shutting down")
            self._queue.append(job)
            self._cv.notify()
        return job

    def stats(self) -> dict:
        with self._cv:
            busy = sum(s.busy for s in self.slots)
            return {"slots_idle": len(self.slots) - busy, "slots_processing": busy,
                    "requests_queued": sum(not j.cancelled for j in self._queue)}

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after its current round; jobs still queued or running end with
        ShuttingDown (their streams end at once)."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the worker -----------------------------------------------------------------------------
    def _wake(self) -> None:
        with self._cv:
            self._cv.notify()

    def _admit(self) -> bool:
        """Under the lock: give free slots the next queued jobs (dropping cancelled ones);
        True if any slot is active."""
        while self._queue and self._queue[0].cancelled:
            self._queue.popleft()._put(END)
        for slot in self.slots:
            if slot.job is None:
                while self._queue:
                    job = self._queue.popleft()
                    if job.cancelled:
                        job._put(END)
                        continue
                    slot.job, slot.steps, slot.n_steps, job.slot_id = job, None, 0, slot.id
                    break
        return any(s.busy for s in self.slots)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._admit():
                    self._cv.wait()
                if self._closing:
                    break
            self.step_all_active_slots()
        err = ShuttingDown("the server is shutting down")
        with self._cv:
            pending = [s.job for s in self.slots if s.job is not None] + list(self._queue)
            self._queue.clear()
        for slot in self.slots:
            self._release(slot)
        for job in pending:
            job._put(_Failure(err))
        self.batcher.close()

    def step_all_active_slots(self) -> None:
        """One round: every active slot advances by one step; their one-token decodes run as ONE
        decode_batch of the shared context (runtime/server/batch.py), the events go out in slot order."""
        active = []
        for slot in self.slots:
            if slot.job is None:
                continue
            if slot.job.cancelled:
                self._finish(slot, END)
            else:
                active.append(slot)
        outcomes = self.batcher.run_round([lambda s=slot: self._step(s) for slot in active])
        for slot, out in zip(active, outcomes):
            job = slot.job
            if out is StopIteration:
                self._finish(slot, END)
            elif isinstance(out, BaseException):    # GGraphError: a bad request; others: a bug
                if not isinstance(out, GGraphError):
                    log.error("slot %d: the request failed", slot.id, exc_info=out)
                self._finish(slot, _Failure(out))
            else:
                slot.n_steps += 1
                if out is not None:
                    job._put(out)

    @staticmethod
    def _step(slot):
        """One step of a slot (run by the batcher's thread for it): its next event, None, or
        StopIteration when the task is done."""
        if slot.steps is None:
            slot.steps = iter(slot.job.task(slot.llm, slot.id))
        try:
            return next(slot.steps)
        except StopIteration:
            return StopIteration

    def _release(self, slot: Slot) -> None:
        steps, slot.steps = slot.steps, None
        if steps is not None and hasattr(steps, "close"):
            try:
                steps.close()                       # a cancelled stream: end the Llama generation
            except Exception:
                log.exception("slot %d: closing the task failed", slot.id)
        slot.job = None

    def _finish(self, slot: Slot, last) -> None:
        job = slot.job
        self._release(slot)
        job._put(last)
