"""llama-cpp-python's sampling arguments -> a SamplerChain, in llama-cpp-python's order
(`Llama._init_sampler`): logit_bias, penalties, then temperature 0: greedy; else top_k, typical,
top_p, min_p (min_keep 1), temperature, dist(seed)."""
from __future__ import annotations

import math
import numbers

from ggraph.errors import GGraphError

from ..sampling import Greedy, LogitBias, Penalties, SamplerChain, SamplerParams

_ORDER = ("penalties", "top_k", "typ_p", "top_p", "min_p", "temperature")


def _logit_bias(bias) -> dict | None:
    """OpenAI clients send token ids as JSON strings ({"50256": -100}); llama-cpp-python int()s them."""
    if bias is None:
        return None
    if not isinstance(bias, dict):
        raise GGraphError(f"logit_bias must be a dict {{token_id: bias}}, got {bias!r}")
    out = {}
    for k, v in bias.items():
        try:
            t = int(k) if isinstance(k, str) else k
        except ValueError:
            raise GGraphError(f"logit_bias: {k!r} is not a token id") from None
        out[t] = v
    return out


def make_sampler(n_vocab: int, *, temperature, top_k, top_p, min_p, typical_p, repeat_penalty,
                 frequency_penalty, presence_penalty, last_n, logit_bias, seed) -> SamplerChain:
    """Check every argument (one-line GGraphError) and build the chain."""
    if (not isinstance(temperature, numbers.Real) or isinstance(temperature, bool)
            or not math.isfinite(temperature) or temperature < 0):
        raise GGraphError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    p = SamplerParams(temp=float(temperature), top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
                      repeat_penalty=repeat_penalty, repeat_last_n=last_n, frequency_penalty=frequency_penalty,
                      presence_penalty=presence_penalty, seed=seed, min_keep=1, logit_bias=_logit_bias(logit_bias),
                      samplers=_ORDER).validate(n_vocab)
    if p.temp > 0:
        return SamplerChain.from_params(p, n_vocab)
    # llama-cpp-python's temperature 0 is llama.cpp's greedy sampler: no truncation, no random draw
    chain = [LogitBias(p.logit_bias)] if p.logit_bias else []
    pen = Penalties(p.repeat_last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty)
    if not pen.disabled:
        chain.append(pen)
    return SamplerChain(chain + [Greedy()], n_vocab)
