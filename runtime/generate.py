"""The decode-then-sample loop: prompt once, then one token per step until an end-of-generation
token, n_predict tokens, or a full context.

n_predict as llama.cpp's -n: >= 0 that many tokens, -1 until end of generation (llama.cpp then
shifts the context; ggraph has no context shift and stops at a full context), -2 until the context
is full. Values below -2 are refused (runtime/checks.py). Every row of logits is checked before it
is sampled: NaN or inf (corrupt weights, say) raise GGraphError naming the first graph node that
went bad, instead of sampling garbage."""
from __future__ import annotations

from typing import Iterator

from . import checks


def generate(ctx, ids, n_predict: int = -1, sampler=None) -> Iterator[int]:
    """Yield generated token ids (greedy unless a sampler chain is given). The prompt `ids` is
    appended to ctx's sequence; the sampler sees prompt tokens too (llama.cpp accepts them into
    the penalty history)."""
    from .sampling import SamplerChain
    sampler = sampler if sampler is not None else SamplerChain.greedy()
    vocab = ctx.model.vocab
    ids = [int(t) for t in ids]
    for tok in ids:
        sampler.accept(tok)
    n_past = ctx.n_past
    logits = checks.finite_logits(ctx, ctx.decode(ids), ids, n_past)
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
        n_past = ctx.n_past
        logits = checks.finite_logits(ctx, ctx.decode([tok]), [tok], n_past)
