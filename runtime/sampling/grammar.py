"""Grammar-constrained sampling: llama.cpp's grammar sampler (`llama_sampler_init_grammar` for GBNF,
`llama_sampler_init_llg` for `%llguidance` grammars), with llguidance computing the token masks.

    from ggraph.runtime.sampling import SamplerChain, SamplerParams
    from ggraph.runtime.sampling.grammar import Grammar, json_schema_to_grammar
    g = Grammar(model.vocab, open("json.gbnf").read())           # GBNF (llama.cpp's grammars/ folder)
    g = Grammar(model.vocab, json_schema_to_grammar({"type": "object"}))   # JSON schema
    chain = SamplerChain.from_params(SamplerParams(temp=0.8), model.n_vocab)
    chain.grammar = g             # or SamplerParams(grammar=TEXT) and from_params(p, n_vocab, vocab)

The grammar is not one of the chain's samplers: like llama.cpp's `common_sampler` the chain holds it
beside them (`SamplerChain.grammar`) and uses it the way `common_sampler_sample(..., grammar_first =
false)` does: sample from the chain without it, check the chosen token against the grammar, and only
when the grammar rejects it start again from the raw logits with the grammar's mask applied first and
then the whole chain (whose dist draws a second random number). Only generated tokens advance it
(`common_sampler_accept(..., is_generated = true)`); prompt tokens do not. See docs/grammars.md.

Grammar text: a string starting with `%llguidance` is llguidance's Lark-like syntax (what llama.cpp
passes to llguidance); anything else is GBNF, parsed as llama.cpp parses it and written in that syntax
with the same meaning (gbnf.py: why not llguidance's own converter). A JSON
schema becomes `%llguidance {}\\nstart: %json SCHEMA`, as llama.cpp's `json_schema_to_grammar` does
when built with LLAMA_LLGUIDANCE. Errors are one-line GGraphError.

Token bytes come from the GGUF vocabulary (`Vocab.token_to_piece`, the pieces llama.cpp's own GBNF
sampler matches); a token whose piece is empty unless specials are rendered (control, unknown) is
given as 0xFF + its text, llguidance's marker for a special token, which text in a grammar never
matches (`llama_sampler_llg_new_tokenizer`). End of generation: every EOG token of the vocabulary is
allowed exactly when the grammar is complete (llama.cpp's GBNF sampler: `vocab->is_eog(id)`).
"""
from __future__ import annotations

import json
import weakref

import numpy as np

from ggraph.errors import GGraphError

from .samplers import Sampler

_NEG_INF = np.float32(-np.inf)
_LLG_PREFIX = "%llguidance"
_TOKENIZERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _llg():
    try:
        import llguidance
    except ImportError:       # a core dependency (setup.cfg); say what to do if it is missing anyway
        raise GGraphError("grammar-constrained sampling needs llguidance: pip install llguidance") from None
    return llguidance


def _one_line(msg) -> str:
    return " ".join(str(msg).split()) or "unknown error"


class _VocabTokenizer:
    """What llguidance's TokenizerWrapper reads: token bytes, EOS/BOS, special ids, and a tokenize
    function (llama_tokenize with add_special=false, parse_special=true, as llama.cpp passes it)."""

    def __init__(self, vocab):
        self._vocab = vocab
        tokens, special = [], []
        for i in range(vocab.n_vocab):
            piece = vocab.token_to_piece(i)
            if not piece:
                text = vocab.token_to_piece(i, special=True)
                if text:
                    piece = b"\xff" + text
                    special.append(i)
            tokens.append(piece)
        self.tokens = tokens
        self.special_token_ids = special
        self.eos_token_id = vocab.eot_id if vocab.eot_id >= 0 else vocab.eos_id
        self.bos_token_id = vocab.bos_id if vocab.bos_id >= 0 else None

    def __call__(self, text) -> list[int]:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", errors="replace")
        return self._vocab.tokenize(text, add_special=False, parse_special=True)


_NUL_TOKENS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_NUL_SETS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _nul_tokens(vocab) -> np.ndarray:
    """Ids of the tokens whose piece starts with a NUL byte."""
    a = _NUL_TOKENS.get(vocab)
    if a is None:
        a = np.array([i for i in range(vocab.n_vocab) if vocab.token_to_piece(i)[:1] == b"\x00"], dtype=np.int64)
        _NUL_TOKENS[vocab] = a
        _NUL_SETS[vocab] = frozenset(a.tolist())
    return a


def lltokenizer(vocab):
    """The llguidance LLTokenizer of a ggraph Vocab (built once per vocabulary, ~0.2 s for 49k tokens)."""
    tok = _TOKENIZERS.get(vocab)
    if tok is None:
        llg = _llg()
        eog = sorted(int(t) for t in vocab.eog_ids if 0 <= t < vocab.n_vocab)
        wrapped = _VocabTokenizer(vocab)
        if not eog:
            if wrapped.eos_token_id is None or wrapped.eos_token_id < 0:
                raise GGraphError("grammar-constrained sampling needs an end-of-generation token; "
                                  "the vocabulary has none")
            eog = [wrapped.eos_token_id]
        primary = wrapped.eos_token_id if wrapped.eos_token_id in eog else eog[0]
        eos = [primary] + [t for t in eog if t != primary]
        try:
            tok = llg.LLTokenizer(llg.TokenizerWrapper(wrapped), eos_token=eos)
        except Exception as e:     # noqa: BLE001 - llguidance raises plain exceptions
            raise GGraphError(f"cannot build the grammar tokenizer from this vocabulary: {_one_line(e)}") from None
        _TOKENIZERS[vocab] = tok
    return tok


def gbnf_to_lark(text: str, vocab=None) -> str:
    """GBNF (llama.cpp) -> llguidance's Lark-like syntax (runtime/sampling/gbnf.py); `%llguidance`
    text is returned as it is. `vocab` resolves `<piece>` token references."""
    if not isinstance(text, str):
        raise GGraphError(f"a grammar must be a string, got {type(text).__name__}")
    if text.startswith(_LLG_PREFIX):
        return text
    if not text.strip():
        raise GGraphError("failed to parse grammar: the grammar is empty")
    from .gbnf import gbnf_to_lark as convert
    tokenize = None if vocab is None else (lambda t: vocab.tokenize(t, add_special=False, parse_special=True))
    return convert(text, tokenize)


def json_schema_to_grammar(schema) -> str:
    """A JSON schema (dict or JSON text) -> grammar text, as llama.cpp's `json_schema_to_grammar`
    does with LLAMA_LLGUIDANCE: `%llguidance {}\\nstart: %json SCHEMA`."""
    if isinstance(schema, (str, bytes, bytearray)):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise GGraphError(f"invalid JSON schema: not JSON ({_one_line(e)})") from None
    if schema is True:
        schema = {}
    elif schema is False:
        raise GGraphError("invalid JSON schema: false matches nothing")
    if not isinstance(schema, dict):
        raise GGraphError(f"invalid JSON schema: expected an object, got {type(schema).__name__}")
    try:
        text = json.dumps(schema)
    except (TypeError, ValueError) as e:
        raise GGraphError(f"invalid JSON schema: {_one_line(e)}") from None
    return f"{_LLG_PREFIX} {{}}\nstart: %json {text}"


def _compile(text: str, tokenizer, vocab=None) -> str:
    """Grammar text -> llguidance's grammar JSON, checked against the tokenizer."""
    llg = _llg()
    lark = gbnf_to_lark(text, vocab)
    g = llg.LLMatcher.grammar_from_lark(lark)
    is_error, msgs = llg.LLMatcher.validate_grammar_with_warnings(g, tokenizer)
    if is_error:
        first = (msgs[0] if msgs else "invalid grammar").strip().splitlines()[0]   # then llguidance's excerpt
        head, sep, why = first.partition("failed to compile JSON schema: ")
        if sep:
            raise GGraphError(f"invalid JSON schema: {_one_line(why)}")
        raise GGraphError(f"failed to parse grammar: {_one_line(first)}")
    return g


class Grammar(Sampler):
    """The grammar sampler: `apply` sets the logit of every candidate the grammar does not allow next
    to -inf; `allows(tok)` checks one token (the rejection test); `accept(tok)` advances the grammar
    (raises GGraphError for a token it does not allow, as llama.cpp's does). `mask()` is the boolean
    mask over the vocabulary for the current state (computed by llguidance, cached until accept)."""

    name = "grammar"

    def __init__(self, vocab, grammar: str):
        self.grammar = grammar
        self._vocab = vocab
        self._tok = lltokenizer(vocab)
        self._n = int(self._tok.vocab_size)
        self._eos = frozenset(int(t) for t in self._tok.eos_tokens)
        llg = _llg()
        self._matcher = llg.LLMatcher(self._tok, _compile(grammar, self._tok, vocab), log_level=0)
        self._check()
        # llama.cpp's GBNF sampler refuses a token whose piece starts with a NUL byte (a C string)
        self._nul = None if grammar.startswith(_LLG_PREFIX) else _nul_tokens(vocab)
        self._words = np.zeros((self._n + 31) // 32, dtype=np.int32)
        self._mask = None

    @classmethod
    def from_json_schema(cls, vocab, schema) -> "Grammar":
        return cls(vocab, json_schema_to_grammar(schema))

    def _check(self) -> None:
        if self._matcher.is_error():
            raise GGraphError(f"grammar: {_one_line(self._matcher.get_error())}")

    # -- state --
    @property
    def n_vocab(self) -> int:
        return self._n

    def is_accepting(self) -> bool:
        """True when the text so far is a complete match (an end-of-generation token is allowed)."""
        return bool(self._matcher.is_accepting())

    def is_stopped(self) -> bool:
        """True when no token but end-of-generation can follow."""
        return bool(self._matcher.is_stopped())

    def mask(self) -> np.ndarray:
        """bool [n_vocab]: the tokens the grammar allows next."""
        if self._mask is None:
            w = self._words
            self._matcher.unsafe_compute_mask_ptr(w.ctypes.data, w.nbytes)
            self._check()
            m = np.unpackbits(w.view(np.uint8), bitorder="little")[:self._n].view(np.bool_)
            if self._nul is not None and self._nul.size:
                m[self._nul] = False
            self._mask = m
        return self._mask

    def allows(self, token: int) -> bool:
        """Whether `token` may come next (llama.cpp applies the grammar to a one-token array)."""
        token = int(token)
        if not 0 <= token < self._n:
            return False
        if self._mask is not None or token in self._eos:    # llguidance's validate_tokens() refuses an
            return bool(self.mask()[token])                  # EOS id even where the grammar names the token
        ok = self._matcher.validate_tokens([token]) == 1
        self._check()
        return ok and not (self._nul is not None and token in self._nul_set())

    # -- Sampler interface --
    def apply(self, cur) -> None:
        if cur.size == 0:
            return
        m = self.mask()
        ids = cur.ids
        if cur.identity and cur.size <= self._n:
            ok = m[:cur.size]
        else:
            ok = np.zeros(cur.size, dtype=np.bool_)
            inb = (ids >= 0) & (ids < self._n)
            ok[inb] = m[ids[inb]]
        cur.logits[~ok] = _NEG_INF
        cur.p = None

    def accept(self, token: int) -> None:
        token = int(token)
        if not self._matcher.consume_token(token):
            piece = self._vocab.token_to_piece(token, special=True) if 0 <= token < self._vocab.n_vocab else b""
            raise GGraphError(f"grammar: token {token} ({piece.decode('utf-8', 'replace')!r}) is not allowed here: "
                              f"{_one_line(self._matcher.get_error())}")
        self._mask = None

    def reset(self) -> None:
        self._matcher.reset()
        self._check()
        self._mask = None

    def _nul_set(self) -> frozenset:
        return _NUL_SETS[self._vocab]

    def __deepcopy__(self, memo):
        new = Grammar.__new__(Grammar)
        new.grammar, new._vocab, new._tok, new._n, new._eos = self.grammar, self._vocab, self._tok, self._n, self._eos
        new._nul = self._nul
        new._matcher = self._matcher.deep_copy()
        new._words = np.zeros_like(self._words)
        new._mask = None if self._mask is None else self._mask.copy()
        memo[id(self)] = new
        return new

    def __repr__(self) -> str:
        head = " ".join(self.grammar.split())[:60]
        return f"Grammar({head!r}{'...' if len(self.grammar) > 60 else ''})"


def grammar_text(grammar) -> str | None:
    """What `ggraph.Llama` accepts as `grammar=`: None, a grammar string (GBNF or `%llguidance`), or
    an object holding one (llama-cpp-python's `LlamaGrammar` keeps its GBNF in `_grammar`; an object
    with a string `grammar` attribute works too)."""
    if grammar is None or isinstance(grammar, str):
        return grammar
    for attr in ("_grammar", "grammar"):
        v = getattr(grammar, attr, None)
        if isinstance(v, str):
            return v
    raise GGraphError(f"grammar must be a GBNF string or a LlamaGrammar, got {type(grammar).__name__}")


def response_format_grammar(response_format) -> str | None:
    """OpenAI / llama-cpp-python `response_format` -> grammar text (None for 'text'):
    {"type": "json_object"} (any JSON object, as llama-cpp-python), {"type": "json_object", "schema":
    {...}} (llama-cpp-python), {"type": "json_schema", "json_schema": {"schema": {...}}} (OpenAI,
    llama-server; no schema: any JSON value, as llama-server)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise GGraphError(f"response_format must be {{'type': 'text' | 'json_object' | 'json_schema'}}, "
                          f"got {response_format!r}")
    if kind == "text":
        return None
    if kind == "json_object":
        schema = response_format.get("schema", {"type": "object"})
    else:
        wrapper = response_format.get("json_schema", {})
        if not isinstance(wrapper, dict):
            raise GGraphError("response_format json_schema must be an object {'schema': {...}}")
        schema = wrapper.get("schema", {})
    return json_schema_to_grammar(schema)


def grammar_from_args(args, vocab) -> Grammar | None:
    """The grammar of `ggraph run`'s --grammar / --grammar-file / -j --json-schema / -jf --json-schema-file."""
    text = getattr(args, "grammar", None)
    path = getattr(args, "grammar_file", None)
    schema = getattr(args, "json_schema", None)
    schema_path = getattr(args, "json_schema_file", None)
    if path is not None:
        text = _read(path, "grammar")
    if schema_path is not None:
        schema = _read(schema_path, "JSON schema")
    if schema is not None:
        text = json_schema_to_grammar(schema)
    return None if text is None else Grammar(vocab, text)


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise GGraphError(f"cannot read {what} file: {e}") from None
