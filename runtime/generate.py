"""The decode-then-sample loop: prompt once, then one token per step until an end-of-generation
token, n_predict tokens, or a full context."""
from __future__ import annotations

from typing import Iterator


def generate(ctx, ids, n_predict: int = -1, sampler=None) -> Iterator[int]:
    """Yield generated token ids (greedy unless a sampler chain is given). The prompt `ids` is
    appended to ctx's sequence; the sampler sees prompt tokens too (llama.cpp accepts them into
    the penalty history)."""
    from .sampling import SamplerChain
    sampler = sampler if sampler is not None else SamplerChain.greedy()
    vocab = ctx.model.vocab
    for tok in ids:
        sampler.accept(int(tok))
    logits = ctx.decode(ids)
    n = 0
    while n_predict < 0 or n < n_predict:
        tok = sampler.sample(logits)
        sampler.accept(tok)
        if vocab.is_eog(tok):
            return
        yield tok
        n += 1
        if n == n_predict or ctx.n_past >= ctx.n_ctx:
            return
        logits = ctx.decode([tok])
