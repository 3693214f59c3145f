"""First runs: Numba compiles each kernel the first time a plan calls it (15-30 s for a model on 2
cores, the second core helping: compile_helper.py; later runs load them from Numba's on-disk cache).

A marker file per kernel-source version, weight-format set and Numba cache folder, in ggraph's cache
folder, lists the step kinds (op, array layouts, ubatch class) that have already run once. A plan
with kinds the marker lacks is run step by step with a one-line notice on stderr ("compiling kernels
for Q4_1, Q8_0 (first run only, about 20 s)"), a counter of kernels compiled (in place, on a
terminal). Any plan counts, so embedding-only and several-sequence runs mark theirs too.
`compile_seconds()` is the time Numba spent compiling in this process (its "numba:compile" events,
which fire on cache misses only, outermost ones counted): the CLI's stats show it apart from prompt
and generation time.
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import numba
from numba.core import event


class _CompileClock(event.Listener):
    """Seconds inside outermost "numba:compile" events (real compiles, not cache loads)."""

    def __init__(self):
        self.depth, self.t0, self.seconds = 0, 0.0, 0.0

    def on_start(self, ev):
        if self.depth == 0:
            self.t0 = time.perf_counter()
        self.depth += 1

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0:
            self.seconds += time.perf_counter() - self.t0


_clock = _CompileClock()
event.register("numba:compile", _clock)


def compile_seconds() -> float:
    return _clock.seconds

_KERNEL_DIRS = ("kernels", "kernels/simd", "sampling")
SECONDS_PER_KIND = 0.7       # a first run's compile seconds per new step kind of its first plan (SmolLM2: 19 kinds, 13-15 s with the helper)


def _marker(model) -> Path:
    here = Path(__file__).parent
    h = hashlib.sha1()
    for d in _KERNEL_DIRS:
        for f in sorted((here / d).glob("*.py")):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(",".join(formats(model)).encode())
    h.update(str(numba.config.CACHE_DIR).encode())     # NUMBA_CACHE_DIR: another cache, another first run
    from .apps.pull import cache_dir
    return Path(cache_dir()) / "compiled" / h.hexdigest()[:16]


def formats(model) -> list[str]:
    return sorted({t.type_name for t in model.file.tensors.values()})


def _key(kind, cls: str) -> str:
    label, layouts = kind
    return f"{cls}|{label}|{layouts}"


class Tracker:
    """The step kinds of one model already compiled (from the marker), and this process's share."""

    def __init__(self, model, out=None):
        self.model, self.out = model, out
        self.n_compiled = 0              # new step kinds run in this process
        self._announced = False          # the notice was shown (once per process on a log)
        self._open = False               # a progress line is on the terminal
        try:
            self.path = _marker(model)
            self.done = set(self.path.read_text().split("\n")) - {""} if self.path.exists() else set()
        except OSError:
            self.path, self.done = None, set()

    def has_class(self, cls: str) -> bool:
        """Some plan of this ubatch class ("1": one token) ran before: its kernels are compiled."""
        return any(k.startswith(cls + "|") for k in self.done)

    def missing(self, plan, cls: str) -> int:
        return len({_key(k, cls) for k in plan.kinds if k is not None} - self.done)

    def run(self, plan, cls: str, profile: dict | None = None) -> None:
        """plan.run(profile); a plan with new kinds runs step by step, counting them as they first run."""
        if getattr(plan, "_warm", False):
            plan.run(profile)
            return
        n_new = self.missing(plan, cls)
        if n_new == 0 or profile is not None:
            plan.run(profile)
        else:
            self._announce(n_new)
            seen = set()
            for step, kind in zip(plan.steps, plan.kinds):
                key = None if kind is None else _key(kind, cls)
                if key is None or key in self.done or key in seen:
                    step()
                    continue
                step()
                seen.add(key)
                self.n_compiled += 1
                self._progress(len(seen), n_new)
            self._record(seen)
        plan._warm = True

    def _stream(self):
        return self.out if self.out is not None else sys.stderr

    def _announce(self, n_new: int) -> None:
        s = self._stream()
        est = max(5, int(round(n_new * SECONDS_PER_KIND / 5.0)) * 5)
        self._line = f"ggraph: compiling kernels for {', '.join(formats(self.model))} (first run only, about {est} s)"
        if _tty(s):                  # a counter in place, erased by finish()
            self._open = True
            s.write(self._line)
        elif not self._announced:    # a log: the notice once
            s.write(self._line + "\n")
        self._announced = True
        s.flush()

    def _progress(self, done: int, total: int) -> None:
        s = self._stream()
        if self._open:
            s.write(f"\r{self._line}: {done}/{total}, {compile_seconds():.1f} s")
            s.flush()

    def finish(self) -> None:
        """Erase the progress line at the end of a decode (the stats line reports the seconds)."""
        if self._open:
            s = self._stream()
            s.write("\r\033[K")
            s.flush()
            self._open = False

    def _record(self, keys: set) -> None:
        self.done |= keys
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("\n".join(sorted(self.done)) + "\n")
        except OSError:
            pass


def tracker(model) -> Tracker:
    """The model's one tracker in this process (its contexts share it)."""
    t = getattr(model, "_first_run", None)
    if t is None:
        t = Tracker(model)
        try:
            model._first_run = t
        except AttributeError:
            pass
    return t


def _tty(s) -> bool:
    try:
        return s.isatty()
    except (AttributeError, ValueError):
        return False
