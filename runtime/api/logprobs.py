"""OpenAI completion logprobs from the raw logits (before logit_bias, penalties or temperature).

llama-cpp-python's `logits_to_logprobs` is a log-softmax (in float32 there; float64 here, so the
numbers are the exact ones for the given logits).
"""
from __future__ import annotations

import numpy as np

from .detok import token_str


def log_softmax(logits) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    z = x - m
    with np.errstate(divide="ignore"):
        return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def token_entry(vocab, logits, tok: int, n: int, offset: int) -> tuple:
    """(token text, text offset, logprob of tok, {text: logprob} of the n most likely and tok)."""
    lp = log_softmax(logits)
    s = token_str(vocab, tok)
    top: dict[str, float] = {}
    if n > 0:
        n = min(n, lp.shape[0])
        idx = np.argpartition(-lp, n - 1)[:n]
        idx = idx[np.argsort(-lp[idx], kind="stable")]
        top = {token_str(vocab, int(i)): float(lp[i]) for i in idx}
    top[s] = float(lp[tok])
    return s, offset, float(lp[tok]), top


def first_entry(vocab, tok: int) -> tuple:
    """The first token of an echoed prompt: nothing predicts it, so its logprob is None (OpenAI)."""
    return token_str(vocab, tok), 0, None, None


def as_openai(entries) -> dict:
    return {"tokens": [e[0] for e in entries], "text_offset": [e[1] for e in entries],
            "token_logprobs": [e[2] for e in entries], "top_logprobs": [e[3] for e in entries]}
