"""The one-line notice of a first run: Numba compiles the kernels a model uses on its first decode
(15-30 s on 2 cores, the second core helping: compile_helper.py; later runs load them from the
on-disk cache in about a second). A marker per kernel-source version, weight-format set and Numba
cache folder, in ggraph's cache folder, tells a first run apart."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numba

_KERNEL_DIRS = ("kernels", "kernels/simd", "sampling")


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


_announced: set[str] = set()


def is_first_run(model) -> bool:
    try:
        return not _marker(model).exists()
    except OSError:
        return False


def announce(model) -> None:
    if model.path in _announced:
        return
    _announced.add(model.path)
    print(f"ggraph: compiling kernels for {', '.join(formats(model))} (first run only, about half a minute)",
          file=sys.stderr, flush=True)


def mark_compiled(model) -> None:
    try:
        m = _marker(model)
        m.parent.mkdir(parents=True, exist_ok=True)
        m.touch()
    except OSError:
        pass
