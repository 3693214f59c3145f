"""ggraph's own weight layouts (kernels/gemv_rows16.py) kept on disk between runs.

Building the 16-row copies costs a few seconds per GB and touches every page of the original; a
warm start should do neither. The copies are written once to <cache>/layouts/ (one .npy per
tensor, keyed by the GGUF file's path, size and mtime, the tensor and the layout's version; the
folder can be deleted at any time) and memory-mapped afterwards. Without a writable cache folder,
or with GGRAPH_NO_LAYOUT_CACHE set (the test suite's many small temporary models), they are built
in memory.
"""
from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np



def cached_layout(gguf_path: str | None, tensor: str, tag: str, raw: np.ndarray, layout) -> np.ndarray:
    """layout(raw), from the disk cache when there is one (tag names the layout and its version).
    Always read-only, as the mapped copies are: kernels then compile for one array type."""
    if gguf_path is None or os.environ.get("GGRAPH_NO_LAYOUT_CACHE"):
        return _readonly(layout(raw))
    try:
        st = os.stat(gguf_path)
        key = f"{os.path.realpath(gguf_path)}|{st.st_size}|{st.st_mtime_ns}|{tensor}|{tag}|{raw.shape}"
        from ggraph.runtime.apps.pull import cache_dir
        folder = os.path.join(cache_dir(), "layouts")
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return _readonly(layout(raw))
    path = os.path.join(folder, hashlib.sha256(key.encode()).hexdigest()[:32] + ".npy")
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        pass
    out = layout(raw)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, out)
        os.replace(tmp, path)          # atomic: a concurrent reader sees the whole file or none
    except OSError:
        pass
    return _readonly(out)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a
