"""Numba kernels, each mirroring one of ggml's CPU code paths (see docs/design.md)."""


def _skip_numba_blas_probe() -> None:
    """Numba's first compile or cache load imports numba.np.arraymath, whose BLAS probe imports
    scipy.linalg when scipy is installed: ~0.3 s of every warm start. No ggraph kernel uses BLAS (a
    BLAS dot would not sum in ggml's order); the probe only picks np.correlate's inner product. So
    import arraymath once with the probe answering "no BLAS", then put the real ensure_blas back
    (numba's own np.dot / linalg keep working for other code in the process)."""
    import sys
    if "numba.np.arraymath" in sys.modules:
        return
    from numba.np import linalg
    real = linalg.ensure_blas

    def no_blas():
        raise ImportError("BLAS probe skipped by ggraph")

    linalg.ensure_blas = no_blas
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        linalg.ensure_blas = real


_skip_numba_blas_probe()
