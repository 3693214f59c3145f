"""Grammar-constrained sampling (runtime/sampling/grammar.py, gbnf.py): llama.cpp's GBNF and JSON
schema through llguidance, applied as llama.cpp's common_sampler applies its grammar sampler.

Fast tests run on the tiny random llama (vocab 377: <|endoftext|>, the 256 byte tokens, merges):
the grammar's mask against a brute-force check of every token (a fresh llguidance matcher fed the
prefix and the token one byte token at a time, and for arithmetic.gbnf an independent recognizer
below), the rejection-sampling order, the CLI flags, ggraph.Llama's grammar / response_format and
one-line errors. The SmolLM2 tests (slow) sample JSON under a schema and under json.gbnf /
arithmetic.gbnf (tests/fixtures/grammars/, copied from llama.cpp) and check the outputs with
json.loads, a schema validator and the recognizer."""
from __future__ import annotations

import copy
import json
import os
import re

import numpy as np
import pytest

import ggraph
from conftest import FIXTURES
from ggraph.errors import GGraphError
from ggraph.runtime.sampling import SamplerChain, SamplerParams
from ggraph.runtime.sampling.grammar import Grammar, json_schema_to_grammar

GRAMMARS = os.path.join(FIXTURES, "grammars")
JSON_GBNF = open(os.path.join(GRAMMARS, "json.gbnf"), encoding="utf-8").read()
ARITH_GBNF = open(os.path.join(GRAMMARS, "arithmetic.gbnf"), encoding="utf-8").read()

SCHEMA = {      # nested object, enum, array, number ranges
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "species": {"enum": ["cat", "dog", "parrot"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 30},
        "weight_kg": {"type": "number", "minimum": 0.5, "maximum": 80},
        "owner": {"type": "object",
                  "properties": {"name": {"type": "string", "maxLength": 24},
                                 "city": {"type": "string", "maxLength": 24}},
                  "required": ["name", "city"], "additionalProperties": False},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "minItems": 1, "maxItems": 3},
    },
    "required": ["name", "species", "age", "weight_kg", "owner", "tags"],
    "additionalProperties": False,
}


# -- independent checkers ---------------------------------------------------------------------
_WS = " \t\n"


def _arith_step(cfg, c):
    """One character through arithmetic.gbnf as a nondeterministic automaton with a paren depth:
    root ::= (expr "=" ws term "\\n")+, expr ::= term ([-+*/] term)*, term ::= ident | num |
    "(" ws expr ")" ws, ident ::= [a-z] [a-z0-9_]* ws, num ::= [0-9]+ ws, ws ::= [ \\t\\n]*.
    States: T term start, O after "(" (ws), W after "=" (ws), L after a line (accepting), I/N in an
    ident/num, E after a term (ws); side: the line's left (expr) or right (one term) of "="."""
    st, d, side = cfg
    out = []
    if st in "TOWL":
        if st in "OW" and c in _WS:
            out.append((st, d, side))
        side2, d2 = ("R" if st == "W" else "L" if st == "L" else side), (0 if st == "L" else d)
        if "a" <= c <= "z":
            out.append(("I", d2, side2))
        elif "0" <= c <= "9":
            out.append(("N", d2, side2))
        elif c == "(":
            out.append(("O", d2 + 1, side2))
        return out
    if st == "I" and (c.isascii() and (c.isalnum() and not c.isupper() or c == "_")):
        out.append(("I", d, side))
    if st == "N" and "0" <= c <= "9":
        out.append(("N", d, side))
    if c in _WS:
        out.append(("E", d, side))
    if c == "\n" and side == "R" and d == 0:
        out.append(("L", 0, "L"))
    if c in "+-*/" and (side == "L" or d > 0):
        out.append(("T", d, side))
    if c == ")" and d > 0:
        out.append(("E", d - 1, side))
    if c == "=" and side == "L" and d == 0:
        out.append(("W", 0, "R"))
    return out


def _arith_run(data: bytes) -> set:
    """{(configuration, ends of the sentences so far)} after `data`."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return set()
    runs = {(("T", 0, "L"), ())}
    for i, c in enumerate(text):
        runs = {(n, ends + (i + 1,) if n[0] == "L" else ends) for cfg, ends in runs for n in _arith_step(cfg, c)}
        if not runs:
            break
    return runs


def arith_configs(data: bytes) -> set:
    """The automaton's configurations after `data` (empty: not a prefix of any sentence)."""
    return {cfg for cfg, _ in _arith_run(data)}


def arith_accepts(data: bytes) -> bool:
    return any(st == "L" for st, _, _ in arith_configs(data))


def check_arith_eval(data: bytes) -> None:
    """A complete output: made of the grammar's characters, and each sentence 'expr = term' has
    two sides that compile as Python expressions (names prefixed, leading zeros dropped)."""
    text = data.decode("ascii")
    assert re.fullmatch(r"[a-z0-9_ \t\n()+\-*/=]+", text)
    ends = next(ends for cfg, ends in _arith_run(data) if cfg[0] == "L")
    start = 0
    for end in ends:
        lhs, rhs = text[start:end].split("=")
        for side in (lhs, rhs):
            py = re.sub(r"\b0+(\d)", r"\1", re.sub(r"\b([a-z][a-z0-9_]*)", r"v_\1", side))
            compile(" ".join(py.split()), "<arithmetic>", "eval")
        start = end


def validate(value, schema, path="$") -> None:
    """The JSON-schema keywords SCHEMA uses."""
    if "enum" in schema:
        assert value in schema["enum"], (path, value)
    t = schema.get("type")
    if t == "object":
        assert isinstance(value, dict), (path, value)
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            assert k in value, (path, k)
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), (path, set(value) - set(props))
        for k, v in value.items():
            if k in props:
                validate(v, props[k], f"{path}.{k}")
    elif t == "array":
        assert isinstance(value, list), (path, value)
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9), (path, value)
        for i, v in enumerate(value):
            validate(v, schema.get("items", {}), f"{path}[{i}]")
    elif t == "string":
        assert isinstance(value, str), (path, value)
        assert schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 10**9), (path, value)
    elif t in ("integer", "number"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (path, value)
        if t == "integer":
            assert isinstance(value, int), (path, value)
        assert schema.get("minimum", -np.inf) <= value <= schema.get("maximum", np.inf), (path, value)


def test_checkers_themselves():
    for good in (b"x=y\n", b"a+b=c\n", b"(a)=b\n\n", b"a+b=c\nd=e\n", b"x1_ = (a*b)\n", b"1+2=3 \n", b"if=007\n"):
        assert arith_accepts(good), good
        check_arith_eval(good)
    for bad in (b"x=y", b"a + b=c\n", b"x=y+z\n", b"=x\n", b"x=(y\n", b"X=y\n"):
        assert not arith_accepts(bad), bad
    assert arith_configs(b"a+(b") and not arith_configs(b"a+)")
    validate({"name": "x", "species": "cat", "age": 3, "weight_kg": 2.5, "owner": {"name": "a", "city": "b"},
              "tags": ["t"]}, SCHEMA)
    with pytest.raises(AssertionError):
        validate({"name": "x", "species": "cow"}, SCHEMA)


# -- the tiny model ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_llama_path):
    return ggraph.load(tiny_llama_path)


def _byte_token(vocab, b: int) -> int:
    tid = b + 1                   # the tiny vocabulary: <|endoftext|>, then one token per byte
    assert vocab.token_to_piece(tid) == bytes([b])
    return tid


def _brute_force_mask(vocab, text: str, prefix: bytes) -> np.ndarray:
    """For every token: does a fresh matcher accept prefix + the token's bytes, fed byte by byte?"""
    fresh = Grammar(vocab, text)
    for b in prefix:
        fresh.accept(_byte_token(vocab, b))
    out = np.zeros(vocab.n_vocab, dtype=bool)
    for t in range(vocab.n_vocab):
        if vocab.is_eog(t):
            out[t] = fresh.is_accepting()
            continue
        piece = vocab.token_to_piece(t)
        if not piece:
            continue
        g = copy.deepcopy(fresh)
        out[t] = all(g._matcher.consume_token(_byte_token(vocab, b)) for b in piece)
    return out


@pytest.mark.parametrize("kind", ["json.gbnf", "arithmetic.gbnf", "schema"])
def test_mask_equals_brute_force(tiny, kind):
    vocab = tiny.vocab
    text = {"json.gbnf": JSON_GBNF, "arithmetic.gbnf": ARITH_GBNF,
            "schema": json_schema_to_grammar(SCHEMA)}[kind]
    g = Grammar(vocab, text)
    rng = np.random.default_rng(0)
    prefix = b""
    for step in range(10):
        allows = np.array([g.allows(t) for t in range(vocab.n_vocab)])   # the one-token test (no mask yet)
        mask = g.mask()
        assert mask.shape == (vocab.n_vocab,) and mask.any()
        np.testing.assert_array_equal(allows, mask)
        np.testing.assert_array_equal(mask, _brute_force_mask(vocab, text, prefix), err_msg=f"after {prefix!r}")
        if kind == "arithmetic.gbnf":
            for t in range(vocab.n_vocab):
                piece = vocab.token_to_piece(t)
                want = arith_accepts(prefix) if vocab.is_eog(t) else bool(arith_configs(prefix + piece))
                assert mask[t] == want, (prefix, vocab.token_to_piece(t))
        choices = [t for t in np.flatnonzero(mask) if not vocab.is_eog(t)]
        if not choices:
            break
        multi = [t for t in choices if len(vocab.token_to_piece(t)) > 1]
        t = int(rng.choice(multi if multi and step % 2 else choices))
        g.accept(t)
        prefix += vocab.token_to_piece(t)
    assert len(prefix) >= 5


def test_rejection_sampling_order(tiny):
    """grammar_first = false: the chain's pick stands when the grammar allows it; otherwise the chain
    runs again on the grammar-masked logits, its dist drawing a second random number."""
    vocab, n = tiny.vocab, tiny.n_vocab
    params = SamplerParams(temp=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=7)
    rng = np.random.default_rng(1)
    n_rejected = 0
    for _ in range(30):
        logits = rng.standard_normal(n).astype(np.float32) * 3
        g = Grammar(vocab, 'root ::= [a-m] [a-z]*')
        chain = SamplerChain.from_params(params, n)
        chain.grammar = g
        ref = SamplerChain.from_params(params, n)
        want = ref.sample(logits)
        if not g.allows(want):
            n_rejected += 1
            masked = np.where(g.mask(), logits, -np.inf).astype(np.float32)
            want = ref.sample(masked)
        assert chain.sample(logits) == want
    assert n_rejected > 5


def test_prompt_tokens_do_not_advance_the_grammar(tiny):
    vocab = tiny.vocab
    chain = SamplerChain.from_params(SamplerParams(temp=0.0, seed=1, grammar='root ::= "ab"'), tiny.n_vocab, vocab)
    chain.accept_many(tiny.tokenize("zzz", add_special=False))     # prompt: only the penalty window
    for t in tiny.tokenize("qq", add_special=False):
        chain.accept(t)                                            # not sampled: a prompt token too
    logits = np.zeros(tiny.n_vocab, dtype=np.float32)
    out = b""
    for _ in range(4):
        tok = chain.sample(logits)
        chain.accept(tok)
        if vocab.is_eog(tok):
            break
        out += vocab.token_to_piece(tok)
    assert out == b"ab" and vocab.is_eog(tok)
    clone = chain.clone()
    chain.reset()
    assert chain.grammar.allows(vocab.tokenize("a", add_special=False)[0]) and clone.grammar.is_accepting()
    with pytest.raises(GGraphError, match="needs the model's vocabulary"):
        SamplerChain.from_params(SamplerParams(grammar='root ::= "a"'), tiny.n_vocab)


def _generate(model, text: str, prompt: str, n: int, seed: int, bias=None) -> tuple[bytes, bool]:
    """Sample under a grammar; returns (bytes, ended with an end-of-generation token)."""
    ctx = model.new_context(n_ctx=256, n_threads=2)
    chain = SamplerChain.from_params(SamplerParams(temp=1.0, seed=seed, logit_bias=bias), model.n_vocab, model.vocab)
    chain.grammar = Grammar(model.vocab, text)
    ids = model.tokenize(prompt, add_special=True, parse_special=True)
    toks = list(ctx.generate(ids, n_predict=n, sampler=chain))
    return b"".join(model.token_to_piece(t) for t in toks), len(toks) < n     # < n: ended by EOG


def test_gbnf_outputs_on_the_tiny_model(tiny):
    v = tiny.vocab
    close = {v.tokenize(c, add_special=False)[0]: 4.0 for c in ("}", "]")}
    n_json = 0
    for seed in range(6):
        out, ended = _generate(tiny, JSON_GBNF, "The", 48, seed, {0: 6.0, **close})
        if ended:
            assert isinstance(json.loads(out.decode("utf-8")), dict), out
            n_json += 1
        out, _ = _generate(tiny, ARITH_GBNF, "The", 24, seed)
        assert arith_configs(out), out          # every output is a prefix of a sentence of the grammar
        done = _complete_part(out)
        if done:
            check_arith_eval(done)
    assert n_json >= 3


def _complete_part(out: bytes) -> bytes:
    """The longest prefix of an arithmetic.gbnf output that is a complete sentence list."""
    done = out[:out.rfind(b"\n") + 1]
    while done and not arith_accepts(done):
        done = done[:done[:-1].rfind(b"\n") + 1]
    return done


def test_llama_cpp_python_grammars_compile(tiny):
    """Every grammar llama-cpp-python ships (llama.cpp's grammars/ folder) and its JSON-schema GBNF."""
    lg = pytest.importorskip("llama_cpp.llama_grammar")
    names = [k for k in dir(lg) if k.endswith("_GBNF")]
    assert {"JSON_GBNF", "ARITHMETIC_GBNF", "LIST_GBNF", "C_GBNF", "CHESS_GBNF"} <= set(names)
    for k in names:
        Grammar(tiny.vocab, getattr(lg, k))
    g = lg.LlamaGrammar.from_json_schema(json.dumps(SCHEMA), verbose=False)
    Grammar(tiny.vocab, g._grammar)


def _native_grammar(path):
    """llama.cpp's own GBNF sampler (llama_sampler_init_grammar) on the GGUF's vocabulary, through
    llama-cpp-python's C API: (make(text) -> sampler, mask(sampler) -> bool [n_vocab], accept)."""
    import ctypes
    import math
    L = pytest.importorskip("llama_cpp")
    noop = L.ggml_log_callback(lambda level, text, data: None) if hasattr(L, "ggml_log_callback") else None
    if noop is not None:
        L.llama_log_set(noop, None)
        _native_grammar.keep = noop
    mp = L.llama_model_default_params()
    mp.vocab_only = True
    model = L.llama_model_load_from_file(path.encode(), mp)
    vocab = L.llama_model_get_vocab(model)
    n = L.llama_vocab_n_tokens(vocab)

    def mask(smpl):
        arr = (L.llama_token_data * n)()
        for i in range(n):
            arr[i].id, arr[i].logit, arr[i].p = i, 0.0, 0.0
        cur = L.llama_token_data_array(data=arr, size=n, selected=-1, sorted=False)
        L.llama_sampler_apply(smpl, ctypes.byref(cur))
        return np.array([arr[i].logit != -math.inf for i in range(n)])

    return (lambda text: L.llama_sampler_init_grammar(vocab, text.encode(), b"root")), mask, L.llama_sampler_accept


def test_masks_equal_llama_cpp_grammar_sampler(tiny, tiny_llama_path):
    """Every grammar of llama.cpp's grammars/ folder (as llama-cpp-python ships them): the mask
    equals llama.cpp's own GBNF sampler's along random walks, on every token whose bytes are whole
    UTF-8 characters. (On partial UTF-8 llama.cpp is looser: it takes lead bytes F5-FF, which never
    start a character, and in a negated class it refuses a lead byte if any character it could
    start is excluded; llguidance is exact. See docs/grammars.md.)"""
    lg = pytest.importorskip("llama_cpp.llama_grammar")
    make, native_mask, native_accept = _native_grammar(tiny_llama_path)
    vocab = tiny.vocab
    whole = np.array([_is_whole_utf8(vocab.token_to_piece(t)) or vocab.is_eog(t) for t in range(vocab.n_vocab)])
    rng = np.random.default_rng(0)
    names = sorted(k for k in dir(lg) if k.endswith("_GBNF"))
    assert len(names) >= 7
    for name in names:
        text = getattr(lg, name)
        for walk in range(2):
            ref, g = make(text), Grammar(vocab, text)
            for step in range(20):
                want, got = native_mask(ref) & whole, g.mask() & whole
                diff = np.flatnonzero(want != got)
                assert not diff.size, (name, step, [(vocab.token_to_piece(int(t)), want[t]) for t in diff[:5]])
                choices = [t for t in np.flatnonzero(want) if not vocab.is_eog(t)]
                if not choices:
                    break
                t = int(rng.choice(choices))
                native_accept(ref, t)
                g.accept(t)


def _is_whole_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return bool(b)
    except UnicodeDecodeError:
        return False


BAD_GRAMMARS = [
    ("root ::= foo", "Undefined rule identifier 'foo'"),
    ('root ::= "a', "unexpected end of input"),
    ("root = \"a\"", "expecting ::="),
    ('root ::= "\\q"', "unknown escape"),
    ('root ::= "a" )', "expecting newline or end"),
    ('rooot ::= "a"', "no 'root' rule"),
    ("root ::= *", "expecting preceding item"),
    ('root ::= "a"{3000}', "number of repetitions"),
    ("", "empty"),
    ('%llguidance {}\nstart: foo', "foo"),
]


@pytest.mark.parametrize("text,msg", BAD_GRAMMARS)
def test_bad_grammar_is_one_line(tiny, text, msg):
    with pytest.raises(GGraphError, match=re.escape(msg)) as e:
        Grammar(tiny.vocab, text)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("schema,msg", [("{not json", "not JSON"), ("[1, 2]", "expected an object"),
                                        ({"type": "object", "properties": {"a": {"type": "strin"}}},
                                         "invalid JSON schema: Invalid type")])
def test_bad_schema_is_one_line(tiny, schema, msg):
    with pytest.raises(GGraphError, match=msg) as e:
        Grammar.from_json_schema(tiny.vocab, schema)
    assert "\n" not in str(e.value)


def test_gbnf_semantics_beyond_the_llguidance_converter(tiny):
    """What llguidance's own GBNF converter gets wrong: a greedy lexeme (arithmetic's ws swallowing
    the line's "\\n"), \\u escapes, '.' matching a newline; and llama.cpp's own parsing rules."""
    v = tiny.vocab

    def accepts(text, data: bytes) -> bool:
        g = Grammar(v, text)
        for b in data:
            t = _byte_token(v, b)
            if not g.allows(t):
                return False
            g.accept(t)
        return g.is_accepting()

    assert accepts(ARITH_GBNF, b"a+b=c\nd=e\n")
    assert accepts('root ::= "\\u00e9" [\\u0041-\\u005A] "\\x41"', "éBA".encode())
    assert accepts('root ::= "a" . "b"', b"a\nb")
    assert accepts('root ::= x x\nx ::= "a"\nx ::= "b"', b"bb")          # the last definition wins
    assert accepts('root ::= [^"]* "\\""  # a comment\n', b'ab c"')
    assert accepts('root ::= ("a" | "b"){2,3} "."', b"aba.") and not accepts('root ::= ("a" | "b"){2,3} "."', b"abab.")
    assert accepts('root ::= "a" <[0]>', b"a") is False                  # needs the token itself
    g = Grammar(v, 'root ::= "a" <|endoftext|> "b"')
    g.accept(_byte_token(v, ord("a")))
    assert g.allows(0) and not g.allows(_byte_token(v, ord("b")))


# -- ggraph.Llama ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llm(tiny_llama_path):
    return ggraph.Llama(tiny_llama_path, n_ctx=128, n_threads=2, verbose=False)


class _LlamaGrammarLike:
    def __init__(self, text):
        self._grammar = text


def test_llama_create_completion_grammar(llm):
    for seed in range(4):
        for grammar in ('root ::= "yes" | "no"', _LlamaGrammarLike('root ::= "yes" | "no"')):
            out = llm.create_completion("The cat", max_tokens=16, temperature=1.0, seed=seed, grammar=grammar)
            c = out["choices"][0]
            assert c["text"] in ("yes", "no") and c["finish_reason"] == "stop"
    chunks = list(llm("The cat", max_tokens=16, seed=3, grammar='root ::= "ab"+ "c"', stream=True))
    text = "".join(ch["choices"][0]["text"] for ch in chunks)
    last = chunks[-1]["choices"][0]["finish_reason"]
    assert re.fullmatch(r"(ab)+c", text) or (re.fullmatch(r"(ab)*a?", text) and last == "length")
    lcp = pytest.importorskip("llama_cpp.llama_grammar")
    g = lcp.LlamaGrammar.from_string('root ::= "yes" | "no"', verbose=False)
    assert llm("The cat", max_tokens=8, temperature=0, grammar=g)["choices"][0]["text"] in ("yes", "no")
    with pytest.raises(GGraphError, match="grammar must be"):
        llm("The cat", grammar=42)




@pytest.fixture(scope="module")
def chat_llm(tiny_chat_path):
    return ggraph.Llama(tiny_chat_path, n_ctx=128, n_threads=2, verbose=False)


@pytest.mark.parametrize("rf", [
    {"type": "json_object", "schema": {"enum": ["red", "green"]}},                     # llama-cpp-python
    {"type": "json_schema", "json_schema": {"name": "c", "schema": {"enum": ["red", "green"]}}},   # OpenAI
])
def test_chat_response_format(chat_llm, rf):
    msgs = [{"role": "user", "content": "Pick a color"}]
    for seed in range(3):
        out = chat_llm.create_chat_completion(msgs, max_tokens=16, temperature=1.0, seed=seed, response_format=rf)
        c = out["choices"][0]
        assert json.loads(c["message"]["content"]) in ("red", "green") and c["finish_reason"] == "stop"


def test_chat_response_format_errors(chat_llm):
    msgs = [{"role": "user", "content": "Hi"}]
    out = chat_llm.create_chat_completion(msgs, max_tokens=2, response_format={"type": "text"})
    assert out["choices"][0]["message"]["role"] == "assistant"
    for rf, msg in (({"type": "xml"}, "response_format must be"), ("json", "response_format must be"),
                    ({"type": "json_schema", "json_schema": {"schema": "{bad"}}, "invalid JSON schema")):
        with pytest.raises(GGraphError, match=msg):
            chat_llm.create_chat_completion(msgs, response_format=rf)
    with pytest.raises(GGraphError, match="not both"):
        chat_llm.create_chat_completion(msgs, grammar='root ::= "a"', response_format={"type": "json_object"})


# -- the command line -----------------------------------------------------------------------
def _run(capsys, argv):
    from ggraph.runtime.apps import cli
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_grammar_flags(tiny_llama_path, tmp_path, capsys):
    base = ["run", "-m", tiny_llama_path, "-p", "The cat", "-n", "24", "--temp", "1", "-s", "5", "-c", "128"]
    rc, out, err = _run(capsys, base + ["--grammar", 'root ::= ("ab" | "c")+ "."'])
    assert rc == 0 and re.fullmatch(r"(ab|c)+\.\n|(ab|c)*a?\n", out), (out, err)
    gf = tmp_path / "yn.gbnf"
    gf.write_text('root ::= "yes" | "no"\n')
    rc, out, _ = _run(capsys, base + ["--grammar-file", str(gf)])
    assert rc == 0 and out in ("yes\n", "no\n")
    for flag in ("-j", "--json-schema"):
        rc, out, _ = _run(capsys, base + [flag, '{"enum": ["red", "green", 3]}'])
        assert rc == 0 and json.loads(out) in ("red", "green", 3)
    sf = tmp_path / "s.json"
    sf.write_text(json.dumps({"type": "boolean"}))
    rc, out, _ = _run(capsys, base + ["-jf", str(sf)])
    assert rc == 0 and out in ("true\n", "false\n")


@pytest.mark.parametrize("extra,msg", [
    (["--grammar", "root ::= foo"], "error: failed to parse grammar: Undefined rule identifier 'foo'"),
    (["-j", "{nope"], "error: invalid JSON schema"),
    (["--grammar-file", "/nonexistent/x.gbnf"], "error: cannot read grammar file"),
])
def test_cli_bad_grammar_is_one_line(tiny_llama_path, capsys, extra, msg):
    rc, out, err = _run(capsys, ["run", "-m", tiny_llama_path, "-p", "x", "-n", "4"] + extra)
    lines = err.strip().splitlines()
    assert rc == 1 and out == "" and lines[-1].startswith(msg) and not any("Traceback" in x for x in lines), err


# -- SmolLM2 ----------------------------------------------------------------------------------
def _chat_ids(model, user: str) -> list[int]:
    return model.tokenize(f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{user}"
                          "<|im_end|>\n<|im_start|>assistant\n", add_special=True, parse_special=True)


@pytest.mark.slow
def test_json_schema_smollm2_20_generations(smollm2_model):
    """20 generations at temperature 1 under SCHEMA all parse and validate."""
    llm = ggraph.Llama(smollm2_model, n_ctx=512, n_threads=2, verbose=False)
    msgs = [{"role": "user", "content": "Describe a pet as JSON: name, species, age, weight, owner, tags."}]
    rf = {"type": "json_schema", "json_schema": {"name": "pet", "schema": SCHEMA}}
    outs = []
    for seed in range(20):
        out = llm.create_chat_completion(msgs, temperature=1.0, seed=seed, max_tokens=200, response_format=rf)
        c = out["choices"][0]
        assert c["finish_reason"] == "stop", c
        value = json.loads(c["message"]["content"])
        validate(value, SCHEMA)
        outs.append(value)
    jsonschema = pytest.importorskip("jsonschema")
    for value in outs:
        jsonschema.validate(value, SCHEMA)
    assert len({json.dumps(v, sort_keys=True) for v in outs}) > 10       # temperature 1: varied


@pytest.mark.slow
def test_gbnf_outputs_smollm2(smollm2_model):
    """Outputs of llama.cpp's json.gbnf and arithmetic.gbnf parse under those grammars."""
    m = smollm2_model
    for seed in range(3):
        ctx = m.new_context(n_ctx=512, n_threads=2)
        chain = SamplerChain.from_params(SamplerParams(temp=1.0, seed=seed, grammar=JSON_GBNF), m.n_vocab, m.vocab)
        toks = list(ctx.generate(_chat_ids(m, "Give a JSON object describing a book."), n_predict=200, sampler=chain))
        assert len(toks) < 200 and chain.grammar.is_accepting()
        assert isinstance(json.loads(b"".join(m.token_to_piece(t) for t in toks)), dict)
    for seed in range(3):
        ctx = m.new_context(n_ctx=512, n_threads=2)
        chain = SamplerChain.from_params(SamplerParams(temp=1.0, seed=seed, grammar=ARITH_GBNF), m.n_vocab, m.vocab)
        ids = _chat_ids(m, "Write three lines of arithmetic such as x=y+1, one per line.")
        toks = list(ctx.generate(ids, n_predict=60, sampler=chain))
        out = b"".join(m.token_to_piece(t) for t in toks)
        if len(toks) < 60:
            assert arith_accepts(out), out
        assert arith_configs(out), out
        done = _complete_part(out)
        assert done, out
        check_arith_eval(done)
