"""Argument checks of the public runtime API, in one place: every value a user passes to
Context(...), decode(), generate() and truncate() is checked here before it reaches numpy, the KV
cache or a kernel, and a bad one raises GGraphError with one line naming the argument and value.

    checks.context_args(model, n_ctx, n_batch, n_ubatch, n_threads)   # top of Context.__init__
    checks.decode_args(ctx, ids, logits_all, cb_eval)                 # top of Context.decode
    checks.generate_args(ctx, ids, n_predict, sampler)                # top of Context.generate
    checks.truncate_args(ctx, n_keep)                                 # top of Context.truncate
    checks.finite_logits(ctx, logits, ...)                            # after a decode (generate.py)

Conventions (llama.cpp's where it has one): token ids are ints (Python or numpy integers, not bool,
not float) in [0, n_vocab); a token list is a flat sequence (list, tuple, range or 1-D integer
array); n_predict -1 = until end of generation or a full context, -2 = until the context is full
(ggraph has no context shift, so both stop at a full context), anything below -2 is refused.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from ggraph.errors import GGraphError

log = logging.getLogger("ggraph")

MAX_CTX = (1 << 31) - 1          # positions are int32 (llama_pos)
MAX_BATCH = (1 << 31) - 1
KV_BYTES_PER_VALUE = 2           # F16 cells (runtime/storage.py)
KV_PAD = 256


def _is_int(v) -> bool:
    return (type(v) is int or isinstance(v, (int, np.integer))) and not isinstance(v, (bool, np.bool_))


def _describe(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def check_int(where: str, name: str, v, lo: int | None = None, hi: int | None = None) -> int:
    """v as a Python int, or GGraphError naming `name` (ints only: not bool, not float, not None)."""
    if not _is_int(v):
        raise GGraphError(f"{where}: {name} must be an integer, got {type(v).__name__} {_describe(v)}")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}"
        raise GGraphError(f"{where}: {name} must be {rng}, got {v}")
    return v


def check_bool(where: str, name: str, v) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise GGraphError(f"{where}: {name} must be True or False, got {type(v).__name__} {_describe(v)}")
    return bool(v)


def token_ids(where: str, ids, n_vocab: int) -> int:
    """Check a flat sequence of token ids; returns its length."""
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise GGraphError(f"{where}: token ids must be a flat (1-D) sequence, got an array of shape {ids.shape}")
        if ids.size and ids.dtype.kind not in "iu":
            raise GGraphError(f"{where}: token ids must be integers, got an array of dtype {ids.dtype}")
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= n_vocab:
                bad = lo if lo < 0 else hi
                raise GGraphError(f"{where}: token id {bad} is outside the vocabulary (0..{n_vocab - 1})")
        return int(ids.size)
    if not isinstance(ids, (list, tuple, range)):
        raise GGraphError(f"{where}: token ids must be a list of ints, got {type(ids).__name__} {_describe(ids)}")
    for t in ids:
        if type(t) is not int:
            if not _is_int(t):
                raise GGraphError(f"{where}: token ids must be integers, got {type(t).__name__} {_describe(t)}")
        if not 0 <= t < n_vocab:
            raise GGraphError(f"{where}: token id {int(t)} is outside the vocabulary (0..{n_vocab - 1})")
    return len(ids)


# -- memory ----------------------------------------------------------------------------------------
def available_memory() -> int | None:
    """Bytes this process can still get: MemAvailable, and the RLIMIT_AS headroom if there is a limit
    (None if unknown)."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = 0
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmSize:"):
                        used = int(line.split()[1]) * 1024
                        break
            head = max(soft - used, 0)
            avail = head if avail is None else min(avail, head)
    except (ImportError, OSError, ValueError):
        pass
    return avail


def kv_cache_bytes(hp, n_ctx: int) -> int:
    cells = (n_ctx + KV_PAD - 1) // KV_PAD * KV_PAD
    return cells * hp.n_layer * (hp.n_embd_k_gqa + hp.n_embd_v_gqa) * KV_BYTES_PER_VALUE


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


# -- the API entry points --------------------------------------------------------------------------
def context_args(model, n_ctx, n_batch, n_ubatch, n_threads, n_seq_max=1) -> None:
    """Context(model, n_ctx, n_batch, n_ubatch, n_threads, n_seq_max)."""
    where = "new_context"
    for name, v in (("n_ctx", n_ctx), ("n_batch", n_batch), ("n_ubatch", n_ubatch)):
        if not _is_int(v) or int(v) < 1:
            raise GGraphError(f"{name} must be a positive integer, got {_describe(v)}")
    check_int(where, "n_ctx", n_ctx, 1, MAX_CTX)
    check_int(where, "n_batch", n_batch, 1, MAX_BATCH)
    check_int(where, "n_ubatch", n_ubatch, 1, MAX_BATCH)
    if n_threads is not None and not _is_int(n_threads):
        raise GGraphError(f"n_threads must be an integer or None, got {type(n_threads).__name__} {_describe(n_threads)}")
    hp = model.arch_model.hp
    n_seq = int(n_seq_max) if _is_int(n_seq_max) and 1 <= n_seq_max <= n_ctx else 1   # else Context refuses it
    need = kv_cache_bytes(hp, int(n_ctx) // n_seq) * n_seq
    avail = available_memory()
    if avail is not None and need > avail:
        raise GGraphError(f"n_ctx={int(n_ctx)} needs {_gib(need)} of KV cache ({hp.n_layer} layers x "
                          f"{hp.n_embd_k_gqa + hp.n_embd_v_gqa} F16 values per position) but only {_gib(avail)} "
                          f"of memory is available: lower -c/n_ctx")
    if int(n_ctx) > hp.n_ctx_train:
        log.warning("n_ctx (%d) > n_ctx_train (%d) -- possible training context overflow", int(n_ctx), hp.n_ctx_train)


def _past(ctx, seq_id) -> int:
    return ctx.seq_n_past(seq_id) if hasattr(ctx, "seq_n_past") else ctx.n_past


def _room(where: str, ctx, n: int, seq_id=0) -> None:
    if n == 0:
        raise GGraphError(f"{where}: no tokens given")
    past = _past(ctx, seq_id)
    n_ctx = getattr(ctx, "n_ctx_seq", ctx.n_ctx)
    need = past + n
    if need > n_ctx:
        if n == 1 and past > 0:
            raise GGraphError(f"{where}: the context is full (all n_ctx={n_ctx} positions are used; one more token "
                              f"needs {need}): raise -c/n_ctx, or truncate()/reset() the context")
        raise GGraphError(f"the prompt needs {need} positions but the context holds n_ctx={n_ctx} "
                          f"(prompt too long: raise -c/n_ctx or shorten it)")


def decode_args(ctx, ids, logits_all, cb_eval=None, seq_id=0) -> None:
    """Context.decode(ids, logits_all, cb_eval, seq_id)."""
    n = token_ids("decode", ids, ctx.n_vocab)
    _room("decode", ctx, n, seq_id)
    check_bool("decode", "logits_all", logits_all)
    if cb_eval is not None and not callable(cb_eval):
        raise GGraphError(f"decode: cb_eval must be callable or None, got {type(cb_eval).__name__}")


def generate_args(ctx, ids, n_predict, sampler=None) -> None:
    """Context.generate(ids, n_predict, sampler)."""
    n = token_ids("generate", ids, ctx.n_vocab)
    _room("generate", ctx, n)
    check_int("generate", "n_predict", n_predict, -2)
    if sampler is not None and not (callable(getattr(sampler, "sample", None))
                                    and callable(getattr(sampler, "accept", None))):
        raise GGraphError(f"generate: sampler must have sample() and accept() (a SamplerChain), "
                          f"got {type(sampler).__name__}")


def truncate_args(ctx, n_keep, seq_id=0) -> None:
    """Context.truncate(n_keep, seq_id)."""
    check_int("truncate", "n_keep", n_keep, 0, _past(ctx, seq_id))


# -- results ---------------------------------------------------------------------------------------
def first_nonfinite_node(ctx, ids, n_past: int) -> str | None:
    """Decode `ids` again from position n_past with an eval callback that stops at the first named
    node holding NaN or inf (llama.cpp's cb_eval); the KV cache is put back to n_past."""
    found = []

    def cb(name, value, node):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            found.append(name)
            return False
        return True

    _rewind(ctx, n_past)
    try:
        ctx.decode(ids, cb_eval=cb)
    except GGraphError:
        pass
    finally:
        _rewind(ctx, n_past)
    return found[0] if found else None


def _rewind(ctx, n_past: int) -> None:
    if ctx.n_past > n_past:
        ctx.truncate(n_past)


def finite_logits(ctx, logits: np.ndarray, ids, n_past: int) -> np.ndarray:
    """Raise GGraphError if the logits of the tokens `ids` (decoded from position n_past) hold NaN
    or inf, naming the first graph node that went bad; the sequence is cut back to n_past."""
    if np.isfinite(logits).all():
        return logits
    bad = int(np.count_nonzero(~np.isfinite(logits)))
    try:
        node = first_nonfinite_node(ctx, ids, n_past)
    except Exception:          # the diagnosis must not hide the error itself
        node = None
    _rewind(ctx, n_past)
    where = f"first non-finite values in node {node}" if node else "no node named"
    raise GGraphError(f"the model produced {bad} NaN/inf logits ({where}): the weights or the input are "
                      f"corrupt (the tensor data of the GGUF?)")
