"""The sampler chain of llama.cpp's `common/sampling.cpp` (`common_sampler_init`) with the defaults of
`common_params_sampling` (`common/common.h`).

    p = SamplerParams()                        # llama.cpp defaults: temp 0.8, top_k 40, top_p 0.95, ...
    chain = SamplerChain.from_params(p, n_vocab)
    for tok in prompt_tokens:                  # what llama-completion and llama-server do
        chain.accept(tok)
    tok = chain.sample(logits)                 # never modifies `logits`
    chain.accept(tok)                          # feed the penalty history (sample() does not)

Default order (`--samplers`): penalties; dry; top_n_sigma; top_k; typ_p; top_p; min_p; xtc;
temperature, then dist(seed). Samplers that are disabled by their value are left out of the chain
(llama.cpp inserts no-op placeholders). Note that temperature comes after the truncation samplers:
top_p / min_p / typical see un-tempered probabilities, and temp <= 0 makes the temperature sampler
keep only the arg-max, so the chain is greedy (dist still consumes one random number).

accept(): llama.cpp's `common_sampler_accept` feeds every token it is given to the chain; both
llama-completion and llama-server call it for every prompt token (is_generated/accept_grammar =
false) and then for each generated token, so the penalty window includes the prompt. This class does
the same when the caller does: `sample()` never accepts on its own (like `common_sampler_sample`);
call `accept(tok)` (or `accept_many(prompt)`) explicitly.

Grammar (`SamplerParams.grammar`, GBNF or `%llguidance` text; `SamplerChain.grammar`, a
`grammar.Grammar`): held beside the samplers, as `common_sampler` holds `grmr`, and applied as
`common_sampler_sample(..., grammar_first = false)` does: the chain samples without it; if the grammar
rejects the chosen token, the chain samples again from the raw logits with the grammar's mask applied
first (dist draws a second random number). Only generated tokens advance the grammar
(`common_sampler_accept(..., is_generated)`): `accept(tok)` counts `tok` as generated when it is the
token the last `sample()` returned (what llama.cpp's callers pass as is_generated = true); prompt
tokens accepted before sampling only feed the penalty window. `is_generated=` overrides that.

Deviations from llama.cpp: DRY is not implemented ("dry" in the order is accepted and skipped: it is
off by default, dry_multiplier = 0); infill, adaptive_p and mirostat are not available; unknown sampler
names raise instead of being dropped with a warning; repeat_last_n = -1 means "every token accepted
since the last reset" (older llama.cpp: the context size; current llama.cpp rejects negative values);
parameters out of range raise GGraphError where llama-server would clamp them.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ggraph.errors import GGraphError

from .candidates import TokenDataArray
from .samplers import XTC, Dist, Greedy, LogitBias, MinP, Penalties, Sampler, Temperature, TopK, TopNSigma, TopP, Typical

# common_params_sampling::samplers
DEFAULT_SAMPLERS = ("penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature")

# common_sampler_types_from_names: canonical names and alternative spellings
_SAMPLER_NAMES = {
    "penalties": "penalties", "dry": "dry",
    "top_n_sigma": "top_n_sigma", "top-n-sigma": "top_n_sigma",
    "top_k": "top_k", "top-k": "top_k",
    "typ_p": "typ_p", "typ-p": "typ_p", "typ": "typ_p", "typical": "typ_p", "typical-p": "typ_p",
    "typical_p": "typ_p",
    "top_p": "top_p", "top-p": "top_p", "nucleus": "top_p",
    "min_p": "min_p", "min-p": "min_p",
    "xtc": "xtc",
    "temperature": "temperature", "temp": "temperature",
}
_UNSUPPORTED = ("infill", "adaptive_p", "adaptive-p")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


@dataclass
class SamplerParams:
    """`common_params_sampling` (same defaults; names follow llama-server's request fields)."""

    temp: float = 0.8                 # <= 0: greedy (arg-max through the chain)
    top_k: int = 40                   # <= 0: disabled
    top_p: float = 0.95               # 1.0: disabled
    min_p: float = 0.05               # 0.0: disabled
    typical_p: float = 1.0            # 1.0: disabled
    repeat_penalty: float = 1.0       # 1.0: disabled
    repeat_last_n: int = 64           # 0: disabled, -1: every accepted token
    frequency_penalty: float = 0.0    # 0.0: disabled
    presence_penalty: float = 0.0     # 0.0: disabled
    seed: int | None = None           # None / -1 / 0xFFFFFFFF: random
    min_keep: int = 0                 # 0: disabled, else top_p/min_p/typical/xtc keep at least this many
    top_n_sigma: float = -1.0         # <= 0: disabled
    dynatemp_range: float = 0.0       # 0: disabled
    dynatemp_exponent: float = 1.0
    xtc_probability: float = 0.0      # 0: disabled
    xtc_threshold: float = 0.1        # > 0.5: disabled
    logit_bias: dict | None = None    # {token_id: bias}, -inf bans a token
    grammar: str | None = None        # GBNF or %llguidance text (grammar.json_schema_to_grammar for a schema)
    samplers: tuple = field(default=DEFAULT_SAMPLERS)  # order; names or one "a;b;c" string

    def validate(self, n_vocab: int | None = None) -> "SamplerParams":
        """Raise GGraphError (one line naming the parameter) for a bad value; return self."""

        def bad(name, why):
            raise GGraphError(f"invalid sampling parameter {name}={getattr(self, name)!r}: {why}")

        for name in ("temp", "top_p", "min_p", "typical_p", "repeat_penalty", "frequency_penalty",
                     "presence_penalty", "top_n_sigma", "dynatemp_range", "dynatemp_exponent",
                     "xtc_probability", "xtc_threshold"):
            v = getattr(self, name)
            if not _is_real(v) or not math.isfinite(v):
                bad(name, "must be a finite number")
        for name in ("top_p", "min_p", "typical_p", "xtc_probability", "xtc_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "must be in [0, 1]")
        with np.errstate(all="ignore"):
            rp = np.float32(self.repeat_penalty)
            inv_ok = rp > 0 and np.isfinite(np.float32(1.0) / rp)
        if not inv_ok:
            bad("repeat_penalty", "must be greater than 0 (1.0 = disabled)")
        for name in ("top_k", "repeat_last_n", "min_keep"):
            if not _is_int(getattr(self, name)):
                bad(name, "must be an integer")
        if not -(2**31) <= self.top_k < 2**31:
            bad("top_k", "must fit in 32 bits (<= 0 = disabled)")
        if not -1 <= self.repeat_last_n < 2**31:
            bad("repeat_last_n", "must be -1 (all), 0 (disabled) or a positive count")
        if not 0 <= self.min_keep < 2**31:
            bad("min_keep", "must be >= 0")
        s = self.seed
        if not (s is None or (_is_int(s) and (s == -1 or 0 <= s <= 0xFFFFFFFF))):
            bad("seed", "must be None, -1 (random) or an integer in [0, 4294967295]")
        if self.logit_bias is not None:
            if not isinstance(self.logit_bias, dict):
                bad("logit_bias", "must be a dict {token_id: bias}")
            for t, b in self.logit_bias.items():
                if not _is_int(t) or t < 0 or (n_vocab is not None and t >= n_vocab):
                    raise GGraphError(f"invalid sampling parameter logit_bias: token {t!r} is not a token id"
                                      + (f" in [0, {n_vocab})" if n_vocab is not None else ""))
                if not _is_real(b) or math.isnan(b) or b == math.inf:
                    raise GGraphError(f"invalid sampling parameter logit_bias: bias {b!r} for token {t} "
                                      "must be a finite number or -inf")
        if self.grammar is not None and not isinstance(self.grammar, str):
            bad("grammar", "must be a GBNF (or %llguidance) string")
        self.sampler_order()
        return self

    def sampler_order(self) -> tuple:
        """The sampler order as canonical names (raises GGraphError on an unknown name)."""
        names = self.samplers
        if isinstance(names, str):
            names = [n for n in names.split(";") if n.strip()]
        if not isinstance(names, (list, tuple)):
            raise GGraphError(f"invalid sampling parameter samplers={names!r}: must be a list of names or 'a;b;c'")
        out = []
        for n in names:
            key = str(n).strip().lower()
            if key in _UNSUPPORTED:
                raise GGraphError(f"invalid sampling parameter samplers: '{n}' is not supported by ggraph")
            if key not in _SAMPLER_NAMES:
                raise GGraphError(f"invalid sampling parameter samplers: unknown sampler '{n}' "
                                  f"(known: {', '.join(DEFAULT_SAMPLERS)})")
            out.append(_SAMPLER_NAMES[key])
        return tuple(out)


class SamplerChain:
    """`llama_sampler_chain`: samplers applied in order to the candidates of one logits row; the
    last one (Dist or Greedy) selects the token."""

    def __init__(self, samplers, n_vocab: int | None = None, grammar=None):
        self.samplers = list(samplers)
        for s in self.samplers:
            if not isinstance(s, Sampler):
                raise GGraphError(f"not a sampler: {s!r}")
        self.n_vocab = None if n_vocab is None else int(n_vocab)
        self.last: TokenDataArray | None = None  # candidates of the last sample() (like common_sampler_get_candidates)
        self.grammar = grammar                   # common_sampler::grmr: a grammar.Grammar or None
        self._sampled: int | None = None         # the last sample()'s token until it is accepted

    @classmethod
    def from_params(cls, params: SamplerParams, n_vocab: int, vocab=None) -> "SamplerChain":
        """`common_sampler_init`: the grammar (needs the model's `vocab`), logit_bias, then the
        samplers in `params.samplers` order, then dist."""
        if not _is_int(n_vocab) or n_vocab <= 0:
            raise GGraphError(f"invalid n_vocab={n_vocab!r}: must be a positive integer")
        p = params.validate(n_vocab)
        grammar = None
        if p.grammar is not None:
            if vocab is None:
                raise GGraphError("a grammar needs the model's vocabulary: "
                                  "SamplerChain.from_params(p, n_vocab, model.vocab)")
            from .grammar import Grammar
            grammar = Grammar(vocab, p.grammar)
        mk = p.min_keep
        chain: list[Sampler] = []
        if p.logit_bias:
            chain.append(LogitBias(p.logit_bias))
        for name in p.sampler_order():
            if name == "penalties":
                s = Penalties(p.repeat_last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty)
                if not s.disabled:
                    chain.append(s)
            elif name == "top_n_sigma" and p.top_n_sigma > 0:
                chain.append(TopNSigma(p.top_n_sigma))
            elif name == "top_k" and p.top_k > 0:
                chain.append(TopK(p.top_k))
            elif name == "typ_p" and p.typical_p < 1.0:
                chain.append(Typical(p.typical_p, mk))
            elif name == "top_p" and p.top_p < 1.0:
                chain.append(TopP(p.top_p, mk))
            elif name == "min_p" and p.min_p > 0.0:
                chain.append(MinP(p.min_p, mk))
            elif name == "xtc" and p.xtc_probability > 0.0 and p.xtc_threshold <= 0.5:
                chain.append(XTC(p.xtc_probability, p.xtc_threshold, mk, p.seed))
            elif name == "temperature" and not (p.temp == 1.0 and p.dynatemp_range <= 0.0):
                chain.append(Temperature(p.temp, p.dynatemp_range, p.dynatemp_exponent))
            # "dry": not implemented, disabled by default (dry_multiplier = 0)
        chain.append(Dist(p.seed))
        return cls(chain, n_vocab, grammar)

    @classmethod
    def greedy(cls, n_vocab: int | None = None) -> "SamplerChain":
        """A chain with only the greedy (arg-max) sampler."""
        return cls([Greedy()], n_vocab)

    # -- sampling --
    def apply(self, logits) -> TokenDataArray:
        """Run every sampler on a copy of `logits`; returns the candidates (with `.selected`)."""
        arr = np.asarray(logits)
        if arr.ndim != 1 or arr.shape[0] == 0:
            raise GGraphError(f"logits must be a non-empty 1-D array, got shape {arr.shape}")
        if self.n_vocab is not None and arr.shape[0] != self.n_vocab:
            raise GGraphError(f"logits have {arr.shape[0]} entries but the vocabulary has {self.n_vocab} tokens")
        cur = TokenDataArray.from_logits(arr)
        for s in self.samplers:
            s.apply(cur)
        g = self.grammar
        if g is not None and not g.allows(cur.token()):
            # grammar-based rejection sampling: again from the raw logits, grammar first
            cur = TokenDataArray.from_logits(arr)
            g.apply(cur)
            for s in self.samplers:
                s.apply(cur)
        self.last = cur
        return cur

    def sample(self, logits) -> int:
        """The next token for one logits row ([n_vocab]). Does not accept it: call accept()."""
        tok = self.apply(logits).token()
        self._sampled = tok
        return tok

    def accept(self, token: int, is_generated: bool | None = None) -> None:
        """Feed a token (prompt or generated) to the stateful samplers (the penalty window); a
        generated one also advances the grammar. is_generated=None: generated iff it is the token
        the last sample() returned."""
        if not _is_int(token) or token < 0 or (self.n_vocab is not None and token >= self.n_vocab):
            raise GGraphError(f"cannot accept token {token!r}: not a token id"
                              + (f" in [0, {self.n_vocab})" if self.n_vocab is not None else ""))
        if self.grammar is not None:
            if is_generated is None:
                is_generated = self._sampled is not None and token == self._sampled
            if is_generated:
                self.grammar.accept(token)
        self._sampled = None
        for s in self.samplers:
            s.accept(token)

    def accept_many(self, tokens, is_generated: bool = False) -> None:
        """Accept prompt tokens (is_generated=False: they do not advance the grammar)."""
        for t in tokens:
            self.accept(int(t) if isinstance(t, np.integer) else t, is_generated)

    def reset(self) -> None:
        """Clear histories and re-seed RNGs (a fixed seed restarts its sequence, like llama.cpp)."""
        for s in self.samplers:
            s.reset()
        if self.grammar is not None:
            self.grammar.reset()
        self.last = None
        self._sampled = None

    def clone(self) -> "SamplerChain":
        """An independent copy with the same state (history, RNG position)."""
        return copy.deepcopy(self)

    @property
    def seed(self) -> int | None:
        """The seed in use by the selecting sampler (`llama_sampler_get_seed`), None if it has none."""
        for s in reversed(self.samplers):
            if hasattr(s, "seed_cur"):
                return s.seed_cur
        return None

    def __repr__(self) -> str:
        text = "logits -> " + " -> ".join(s.name for s in self.samplers)
        return text + (" (grammar: checked after, applied first when it rejects)" if self.grammar is not None else "")
