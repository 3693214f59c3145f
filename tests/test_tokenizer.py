"""Tokenizer tests: llama.cpp reference fixtures (real vocabs), sentencepiece cross-check, unit cases.

Real-vocab tests (marked slow) read the GGUF path from the `smollm2_path` / `gemma3_path` fixtures
when conftest provides them, else from $GGRAPH_SMOLLM2 / $GGRAPH_GEMMA3, else they skip. The
reference outputs come from scripts/make_tokenizer_fixtures.py (llama-cpp-python 0.3.36).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings

import pytest

from ggraph.errors import GGraphError
from ggraph.runtime.text.vocab import StreamDecoder, Vocab, _clean_spaces

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _load_json(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as fh:
        return json.load(fh)


CORPUS = _load_json("tokenizer_corpus.json")
REF = {name: _load_json(f"tokenizer_ref_{name}.json") for name in ("smollm2", "gemma3")}
PRETOK = _load_json("tokenizer_ref_smollm2_pretok.json")["variants"]
SPACE_PREFIX = _load_json("tokenizer_ref_gemma3_space_prefix.json")["variants"]
MODEL_SOURCE = {"smollm2": ("smollm2_path", "GGRAPH_SMOLLM2"), "gemma3": ("gemma3_path", "GGRAPH_GEMMA3")}


class Meta:
    """Metadata source for Vocab.from_gguf: a dict, optionally layered over another source."""

    def __init__(self, values, base=None):
        self.values, self.base = values, base

    def get(self, key, default=None):
        if key in self.values:
            v = self.values[key]
            return default if v is None else v
        return self.base.get(key, default) if self.base is not None else default


# ----------------------------------------------------------------------------- real vocabs
_GGUF_CACHE: dict[str, object] = {}


def _gguf(request, name):
    fixture, env = MODEL_SOURCE[name]
    try:
        path = request.getfixturevalue(fixture)
    except pytest.FixtureLookupError:
        path = os.environ.get(env)
    if not path or not os.path.isfile(str(path)):
        pytest.skip(f"{name} GGUF not available (no `{fixture}` fixture and ${env} not set)")
    path = str(path)
    if path not in _GGUF_CACHE:
        from ggraph.gguf_file import GGUFFile
        _GGUF_CACHE[path] = GGUFFile(path)
    return _GGUF_CACHE[path]


_VOCAB_CACHE: dict[tuple, Vocab] = {}


def _vocab(request, name, overrides=None):
    g = _gguf(request, name)
    key = (id(g), json.dumps(overrides, sort_keys=True))
    if key not in _VOCAB_CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # pre=None variant warns by design
            _VOCAB_CACHE[key] = Vocab.from_gguf(Meta(overrides or {}, g))
    return _VOCAB_CACHE[key]


def _mismatches(got, want):
    bad = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
    msg = "; ".join(f"#{i} {CORPUS[i][:40]!r}: got {got[i]!r:.120} want {want[i]!r:.120}" for i in bad[:5])
    return bad, f"{len(got) - len(bad)}/{len(got)} agree. {msg}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
@pytest.mark.parametrize("parse_special", [False, True], ids=["plain", "special"])
def test_tokenize_matches_llamacpp(request, name, parse_special):
    v = _vocab(request, name)
    want = REF[name]["ids_special" if parse_special else "ids_plain"]
    got = [v.tokenize(s, add_special=True, parse_special=parse_special) for s in CORPUS]
    bad, msg = _mismatches(got, want)
    assert not bad, msg


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
@pytest.mark.parametrize("key,src,kw", [
    ("text_plain", "ids_plain", {}),
    ("text_special", "ids_special", {}),
    ("text_special_unparsed", "ids_special", {"remove_special": True, "unparse_special": True}),
], ids=["plain", "special", "remove+unparse"])
def test_detokenize_matches_llamacpp(request, name, key, src, kw):
    v = _vocab(request, name)
    got = [v.detokenize(ids, **kw) for ids in REF[name][src]]
    bad, msg = _mismatches(got, REF[name][key])
    assert not bad, msg


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_vocab_info_matches_llamacpp(request, name):
    v = _vocab(request, name)
    info = REF[name]["info"]
    assert (v.n_vocab, v.bos_id, v.eos_id, v.add_bos, v.add_eos) == \
        (info["n_vocab"], info["bos_id"], info["eos_id"], info["add_bos"], info["add_eos"])
    assert sorted(v.eog_ids) == info["eog_ids"]
    assert all(v.is_eog(t) for t in info["eog_ids"]) and not v.is_eog(-1)


def _piece_hashes(piece_fn, n_vocab, chunk):
    out = []
    for start in range(0, n_vocab, chunk):
        h = hashlib.sha256()
        for t in range(start, min(n_vocab, start + chunk)):
            p = piece_fn(t)
            h.update(len(p).to_bytes(4, "little") + p)
        out.append(h.hexdigest()[:16])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
@pytest.mark.parametrize("special", [False, True])
def test_token_to_piece_matches_llamacpp(request, name, special):
    v = _vocab(request, name)
    ref = REF[name]["piece_hashes"]
    got = _piece_hashes(lambda t: v.token_to_piece(t, special=special), v.n_vocab, ref["chunk"])
    want = ref["special_true" if special else "special_false"]
    bad = [i * ref["chunk"] for i, (a, b) in enumerate(zip(got, want)) if a != b]
    assert not bad, f"token pieces differ in the blocks starting at ids {bad[:10]}"


def _check_variant(v, variant, name):
    base = REF[name]
    assert sorted(v.eog_ids) == variant["info"]["eog_ids"]
    assert (v.add_bos, v.bos_id) == (variant["info"]["add_bos"], variant["info"]["bos_id"])
    diff = variant["diff"]

    def want(key):
        return [diff[key].get(str(i), base[key][i]) for i in range(len(CORPUS))]

    checks = {
        "ids_plain": lambda: [v.tokenize(s, True, False) for s in CORPUS],
        "ids_special": lambda: [v.tokenize(s, True, True) for s in CORPUS],
        "text_plain": lambda: [v.detokenize(ids) for ids in want("ids_plain")],
        "text_special_unparsed": lambda: [v.detokenize(ids, True, True) for ids in want("ids_special")],
    }
    for key in diff:
        bad, msg = _mismatches(checks[key](), want(key))
        assert not bad, f"{key}: {msg}"


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(PRETOK))
def test_pretokenizer_families_match_llamacpp(request, label):
    """Every pre-tokenizer family, run on the SmolLM2 vocab with a rewritten tokenizer.ggml.pre."""
    _check_variant(_vocab(request, "smollm2", PRETOK[label]["overrides"]), PRETOK[label], "smollm2")


@pytest.mark.slow
def test_spm_space_prefix_matches_llamacpp(request):
    variant = SPACE_PREFIX["add_space_prefix"]
    _check_variant(_vocab(request, "gemma3", variant["overrides"]), variant, "gemma3")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_stream_decoder_real_vocab(request, name):
    v = _vocab(request, name)
    held_back = 0
    for s in CORPUS:
        if s.isascii():
            continue
        ids = v.tokenize(s, add_special=False)
        dec = StreamDecoder(v)
        parts = [dec.push(t) for t in ids]
        parts.append(dec.flush())
        held_back += sum(1 for t, p in zip(ids, parts) if p == "" and v.token_to_piece(t))
        # these vocabs have neither add_space_prefix nor clean_spaces, so streaming == detokenize
        assert "".join(parts) == v.detokenize(ids), s
        if "\ufffd" not in s:
            assert all("\ufffd" not in p for p in parts), s
    assert held_back > 0   # some token ended mid-character, so buffering was exercised


# ----------------------------------------------------------------------------- sentencepiece
def _train_spm(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    import random
    rng = random.Random(7)
    words = ("the quick brown fox jumps over lazy dog tokenizer piece merge score byte fallback "
             "caf\u00e9 na\u00efve \u00fcber stra\u00dfe hello world 2024 3.14 it's don't "
             "data model vocabulary llama gemma sentence").split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(3000)]
    text = tmp_path / "train.txt"
    text.write_text("\n".join(lines), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp_path / "m"), vocab_size=400, model_type="bpe",
        byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    return spm.SentencePieceProcessor(model_file=str(tmp_path / "m.model"))


def _spm_to_gguf(sp, path):
    import gguf
    n = sp.get_piece_size()
    types = []
    for i in range(n):
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                     else 5 if sp.is_unused(i) else 1)
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_tokenizer_model("llama")
    w.add_token_list([sp.id_to_piece(i) for i in range(n)])
    w.add_token_scores([sp.get_score(i) for i in range(n)])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


SPM_STRINGS = [
    "", "hello world", "Hello World", " leading space", "two  spaces", "trailing ", "   ", "the quick brown fox",
    "caf\u00e9 na\u00efve \u00fcber", "stra\u00dfe", "unknown \u65e5\u672c\u8a9e chars", "emoji \U0001f600!",
    "tabs\tand\nnewlines", "it's don't", "2024 3.14 12345", "tokenizerpiecemerge", "QUICK BROWN",
    "a", "zzz qqq xxx", "fallback\u00a0nbsp", "\u00e9\u00e9\u00e9", "lazy dog.", "(brackets) [x] {y}",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u0645\u0631\u062d\u0628\u0627", "mixed caf\u00e9 \u4e2d 123",
    "vocabulary" * 5, "x" * 50, " ", "sentence model data llama gemma",
]


def test_spm_matches_sentencepiece(tmp_path):
    """Score-driven merges + byte fallback agree with sentencepiece's own BPE encoder."""
    from ggraph.gguf_file import GGUFFile
    sp = _train_spm(tmp_path)
    _spm_to_gguf(sp, tmp_path / "spm.gguf")
    v = Vocab.from_gguf(GGUFFile(str(tmp_path / "spm.gguf")))
    assert v.add_bos and v.bos_id == 1 and v.add_space_prefix
    byte_fallbacks = 0
    for s in SPM_STRINGS:
        want = sp.encode(s)
        got = v.tokenize(s, add_special=False)
        assert got == want, (s, got, want)
        assert v.tokenize(s) == [1] + want
        byte_fallbacks += sum(1 for t in got if sp.is_byte(t))
        # detokenize strips the prefix space like sentencepiece's decode
        assert v.detokenize(got) == sp.decode(want), s
    assert byte_fallbacks > 0


# ----------------------------------------------------------------------------- synthetic vocabs
def _byte_bpe_meta(pre="gpt-2", merges=(), extra_tokens=(), **keys):
    from ggraph.runtime.text.pretokenize import bytes_to_unicode
    tokens = [bytes_to_unicode()[b] for b in range(256)]
    types = [1] * 256
    for m in merges:
        tokens.append(m.replace(" ", ""))
        types.append(1)
    for text, ttype in extra_tokens:
        tokens.append(text)
        types.append(ttype)
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": list(merges)}
    meta.update({"tokenizer.ggml." + k: v for k, v in keys.items()})
    return Meta(meta)


def _spm_meta(extra=()):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    for text, score in extra:
        tokens.append(text)
        types.append(1)
    scores = [0.0] * 259 + [s for _, s in extra]
    return Meta({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
                 "tokenizer.ggml.scores": scores, "tokenizer.ggml.token_type": types})


def test_bpe_merges_by_rank():
    merges = ["h e", "l l", "he ll", "hell o", "Ġ w"]
    v = Vocab.from_gguf(_byte_bpe_meta(merges=merges))
    t2i = v.token_to_id
    assert v.tokenize("hello world", add_special=False) == \
        [t2i["hello"], t2i["Ġw"], t2i["o"], t2i["r"], t2i["l"], t2i["d"]]
    assert v.detokenize(v.tokenize("hello world")) == "hello world"


def test_spm_byte_fallback_and_stream_decoder():
    v = Vocab.from_gguf(_spm_meta([("\u2581", -1.0), ("a", -2.0), ("\u2581a", -0.5)]))
    ids = v.tokenize("a \U0001f600", add_special=False)
    assert ids[:2] == [v.token_to_id["\u2581a"], v.token_to_id["\u2581"]]
    assert [v.token_text(t) for t in ids[2:]] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    dec = StreamDecoder(v)
    assert [dec.push(t) for t in ids] == [" a", " ", "", "", "", "\U0001f600"]
    assert dec.flush() == ""
    assert v.detokenize(ids) == "a \U0001f600"   # first-token space stripped (add_space_prefix)
    dec = StreamDecoder(v)
    assert dec.push(ids[2]) == "" and dec.flush() == "\ufffd"   # incomplete char at the end


def test_gemma4_style_bpe():
    """SPM-style BPE: spaces become U+2581, raw UTF-8 merges, <0xXX> byte fallback, BOS forced on."""
    tokens = ["<bos>", "\u2581", "h", "i", "\u2581h", "\u2581hi", "\n", "\n\n"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [3] + [1] * 7 + [6] * 256
    v = Vocab.from_gguf(Meta({"tokenizer.ggml.model": "gemma4", "tokenizer.ggml.tokens": tokens,
                              "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": ["\u2581 h", "\u2581h i"],
                              "tokenizer.ggml.bos_token_id": 0}))
    assert v.add_bos and v.pre_name == "gemma4"
    ids = v.tokenize(" hi\n\n\u00e9")
    assert [v.token_text(t) for t in ids] == ["<bos>", "\u2581hi", "\n\n", "<0xC3>", "<0xA9>"]
    assert v.detokenize(ids) == " hi\n\n\u00e9"


def test_special_partition_user_defined_and_strip():
    extra = [("<|im_start|>", 3), ("<tag>", 4)]
    v = Vocab.from_gguf(_byte_bpe_meta(extra_tokens=extra))
    im, tag = v.token_to_id["<|im_start|>"], v.token_to_id["<tag>"]
    plain = v.tokenize("a<tag>b<|im_start|>", add_special=False)
    assert tag in plain and im not in plain          # user-defined split even without parse_special
    special = v.tokenize("a<tag>b<|im_start|>", add_special=False, parse_special=True)
    assert special[-1] == im
    assert v.token_to_piece(im) == b"" and v.token_to_piece(im, special=True) == b"<|im_start|>"
    assert v.token_to_piece(tag) == b"<tag>"
    # phi-3 (by general.name) gets RSTRIP on its special tokens, as in llama.cpp
    meta = _byte_bpe_meta(extra_tokens=extra)
    meta.values["general.name"] = "Phi-3 mini"
    phi = Vocab.from_gguf(meta)
    assert phi.tokenize("<|im_start|>  x", add_special=False, parse_special=True) == [im, phi.token_to_id["x"]]


def test_eog_detection_by_text():
    extra = [("<|im_end|>", 1), ("<|endoftext|>", 3), ("<|fim_pad|>", 3)]
    v = Vocab.from_gguf(_byte_bpe_meta(extra_tokens=extra, eos_token_id=257))
    assert v.eog_ids == frozenset({256, 257, 258})
    assert v.token_to_piece(256) == b""   # forced to CONTROL like llama.cpp


def test_clean_spaces_rules():
    assert _clean_spaces(b"Hello , world . Yes ! No ?") == b"Hello, world. Yes! No?"
    assert _clean_spaces(b"He said ' hi ' .") == b"He said'hi '."
    assert _clean_spaces(b"it 's I 'm we 're they 've I 'll don 't") == b"it's I'm we're they've I 'll don 't"
    assert _clean_spaces(b"") == b"" and _clean_spaces(b" ") == b" "


def test_llama3_flags_and_ignore_merges():
    extra = [("abc", 1)]
    v = Vocab.from_gguf(_byte_bpe_meta(pre="llama-bpe", merges=["a b"], extra_tokens=extra))
    assert v.add_bos and v.clean_spaces and v.bos_id == 11   # llama.cpp's BPE placeholder BOS id
    assert v.tokenize("abc") == [11, v.token_to_id["abc"]]   # ignore_merges: whole word is a token
    g2 = Vocab.from_gguf(_byte_bpe_meta(pre="gpt-2", merges=["a b"], extra_tokens=extra))
    assert not g2.add_bos and g2.tokenize("abc") == [g2.token_to_id["ab"], g2.token_to_id["c"]]
    off = Vocab.from_gguf(_byte_bpe_meta(pre="llama-bpe", add_bos_token=False))
    assert not off.add_bos and off.tokenize("a") == [off.token_to_id["a"]]


# ----------------------------------------------------------------------------- errors
def test_unknown_tokenizer_model_is_clear_error():
    meta = _byte_bpe_meta()
    meta.values["tokenizer.ggml.model"] = "wordpiece-xyz"
    with pytest.raises(GGraphError, match="unknown tokenizer: 'wordpiece-xyz'"):
        Vocab.from_gguf(meta)


def test_unknown_pre_is_clear_error():
    with pytest.raises(GGraphError, match="unknown pre-tokenizer type: 'no-such-pre'"):
        Vocab.from_gguf(_byte_bpe_meta(pre="no-such-pre"))


def test_unsupported_pre_and_model_are_clear_errors():
    with pytest.raises(GGraphError, match="not supported"):
        Vocab.from_gguf(_byte_bpe_meta(pre="kimi-k2"))
    meta = _byte_bpe_meta()
    meta.values["tokenizer.ggml.model"] = "bert"
    with pytest.raises(GGraphError, match="not supported"):
        Vocab.from_gguf(meta)


def test_missing_pre_warns_and_uses_default():
    with pytest.warns(UserWarning, match="tokenizer.ggml.pre"):
        v = Vocab.from_gguf(_byte_bpe_meta(pre=None))
    assert v.pre_name == "default"


def test_missing_model_and_bad_input_are_clear_errors():
    with pytest.raises(GGraphError, match="tokenizer.ggml.model"):
        Vocab.from_gguf(Meta({}))
    v = Vocab.from_gguf(_byte_bpe_meta())
    assert v.tokenize(b"bytes") == v.tokenize("bytes")     # bytes are accepted, as llama_tokenize takes them
    with pytest.raises(GGraphError, match="takes a str or bytes"):
        v.tokenize(12)
    with pytest.raises(GGraphError, match="out of range"):
        v.token_to_piece(v.n_vocab)


def test_corpus_covers_hard_cases():
    assert len(CORPUS) >= 300 and "" in CORPUS
    joined = "".join(CORPUS)
    for needle in ("\u200d", "\t", "\n", "<|im_start|>", "<start_of_turn>", "<s>", "<|endoftext|>",
                   "I'll", "WE'RE", "\u65e5", "https://"):
        assert needle in joined, needle
    assert max(map(len, CORPUS)) >= 1000
