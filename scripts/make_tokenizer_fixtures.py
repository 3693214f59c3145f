#!/usr/bin/env python3
"""Build the tokenizer test corpus and llama.cpp reference outputs (needs llama-cpp-python).

    python scripts/make_tokenizer_fixtures.py --corpus            # rewrite tests/fixtures/tokenizer_corpus.json
    python scripts/make_tokenizer_fixtures.py --smollm2 S.gguf --gemma3 G.gguf

For each vocab it writes tests/fixtures/tokenizer_ref_<name>.json with llama.cpp's
llama_tokenize ids (add_special=True, parse_special False and True), llama_detokenize of those ids,
a hash of every token's piece and the EOG set; and tokenizer_ref_<name>_<variant>.json with the
outputs for metadata variants (every pre-tokenizer family on the SmolLM2 vocab, add_space_prefix
on Gemma-3), obtained by re-writing the GGUF metadata into a temporary vocab-only file. Variant
outputs are stored only where they differ from the base outputs, to keep the files small.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import random
import sys
import tempfile

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
CORPUS = os.path.join(FIXTURES, "tokenizer_corpus.json")
PIECE_CHUNK = 4096

# one pre name per regex family, plus aliases that change flags (clean_spaces, bos, ignore_merges)
PRE_VARIANTS = ["default", None, "gpt-2", "mpt", "olmo", "starcoder", "command-r", "falcon", "llama-bpe",
                "dbrx", "chatglm-bpe", "jais-2", "qwen2", "stablelm2", "qwen35", "deepseek-llm",
                "deepseek-coder", "deepseek-v3", "spark2_5", "youtu", "bloom", "poro-chat", "viking", "tekken",
                "chameleon", "gpt-4o", "granite-embed-multi-97m", "bailingmoe", "seed-coder", "ufakzeka",
                "laguna", "exaone-moe", "minicpm5", "trillion"]


# ----------------------------------------------------------------------------- corpus
def build_corpus() -> list[str]:
    fixed = [
        "", " ", "  ", "   ", "\n", "\t", "\r\n", "Hello", "Hello world", " Hello world", "  Hello world",
        "Hello world ", "Hello  world", "hello\nworld", "Hello, world!", "Hello , world .", "a", "A", "I",
        # contractions and apostrophes
        "I'll", "don't", "WE'RE", "They've", "she'd", "It's", "IT'S", "it'S", "you'Re", "I'M", "y'all",
        "rock 'n' roll", "it 's", "they 're here", "we 've", "I 'm", "don 't", "' ' '", "a ' b", "''", "'s",
        "it\u2019s", "it\u017fs", "it'\u017f", "l'homme d'\u00e9tat", "O'Neill's", "'tis", "'ll 're 've 'm 'd",
        # accents / combining marks
        "na\u00efve caf\u00e9 r\u00e9sum\u00e9", "nai\u0308ve cafe\u0301", "\u00c5ngstr\u00f6m", "Stra\u00dfe",
        "\u0131stanbul \u0130stanbul", "e\u0301\u0301\u0301", "\u0301", "Z\u0351\u0367\u0311a\u0357l\u0352g\u0351o",
        "cr\u00e8me br\u00fbl\u00e9e", "\u0141\u00f3d\u017a", "\u00d1and\u00fa", "\u1ec7 \u1ebf \u01b0\u1edd",
        # scripts
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\u3002",
        "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\ud55c\uad6d\uc5b4 \ud14c\uc2a4\ud2b8", "\u1100\u1161\u11a8",
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
        "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5",
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
        "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
        "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd",
        "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
        "\u0540\u0561\u0575\u0565\u0580\u0565\u0576",
        "\u1348\u12f0\u120d",
        "\u13e3\u13b3\u13a9",
        "\u0f56\u0f7c\u0f51\u0f0b\u0f61\u0f72\u0f42",
        "\u1019\u103c\u1014\u103a\u1019\u102c",
        "mixed English \u65e5\u672c\u8a9e and \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0639\u0631\u0628\u064a 123",
        "\u30ab\u30bf\u30ab\u30ca\u3072\u3089\u304c\u306a\u6f22\u5b57ABC\uff21\uff22\uff23",
        "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff11\uff12\uff13",
        # emoji
        "\U0001f600", "\U0001f600\U0001f601\U0001f602", "I \u2764\ufe0f NY", "\U0001f44d\U0001f3fd",
        "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
        "\U0001f1fa\U0001f1f8\U0001f1ef\U0001f1f5",
        "1\ufe0f\u20e3 #\ufe0f\u20e3",
        "\U0001f9d1\U0001f3ff\u200d\U0001f4bb",
        "emoji\U0001f680in\U0001f680words", " \U0001f600 \U0001f600 ", "\u263a\ufe0e\u263a\ufe0f",
        "\U0001f1e6", "\U0001faf6\U0001f3fb", "\u2728\u2728\u2728\u2728",
        # whitespace and control
        "\t\ttabs", "a\tb\tc", "line1\nline2\n\nline4\n\n\n", "\n\n\n\n", "  \n  \n", "\r\r\n\r",
        "trailing   ", "   leading", " \t \n mixed", "a\u00a0b", "a\u3000b\u3000\u3000c", "a\u2028b\u2029c",
        "a\u0085b", "zero\u200bwidth", "\ufeffbom", "a\u200db", "nul\x00byte", "bell\x07", "del\x7f",
        "\x1c\x1d\x1e\x1f", "\x0b\x0c", " " * 40, "\t" * 40, "\n" * 40, "x" + " " * 33 + "y",
        "a" + " " * 2 + "b" + " " * 5 + "c" + " " * 17 + "d", "\u2003em\u2002en\u2009thin",
        # numbers
        "0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "1,000,000", "1 000 000", "-17.5e-3",
        "0x1F 0b1010 0o17", "9" * 100, "1234567890" * 10, "\u00b2\u00b3\u00b9", "\u00bd \u00bc \u2153",
        "\u2160\u2161\u216b", "\u0663\u0664\u0665", "\u096a\u096b", "\uff10\uff11\uff12", "version 2.0.1-rc3",
        "2024-01-31T23:59:59Z", "$1,234.56", "50%", "+1 (555) 123-4567", "3rd 21st 100th", "a1b2c3",
        # code
        "def f(x):\n    return x**2  # square\n", "for (int i = 0; i < n; ++i) { a[i] = i; }",
        "if x == 1:\n\tprint('one')\nelse:\n\tpass", "const f = (a, b) => a + b;",
        '{"key": "value", "n": [1, 2, 3], "ok": true}', "<div class=\"x\">Hi &amp; bye</div>",
        "SELECT * FROM users WHERE id = 42;", "#include <stdio.h>\nint main(void) { return 0; }",
        "$ ls -la | grep '^d' && echo done", "x = [i for i in range(10) if i % 2]",
        "^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)$", "a->b; c::d; e<f>; g<<h; i>>=j;", "!=  ==  <=  >=  ===",
        "    indented\n        more\n    back", "// comment\n/* block */", "fn main() { println!(\"{}\", 1); }",
        "@decorator\nclass A(B):\n    ...", "```python\nprint(1)\n```", "| a | b |\n|---|---|\n| 1 | 2 |",
        # urls / emails / paths
        "https://example.com/path?query=1&b=2#frag", "http://localhost:8080/", "mailto:a.b@c.org",
        "user.name+tag@example.co.uk", "C:\\Users\\me\\file.txt", "/usr/local/bin/python3",
        "www.\u4f8b\u5b50.\u6d4b\u8bd5", "ftp://ftp.example.org/pub/file.tar.gz",
        # punctuation runs
        "...", "!!!???", "\u2026", "--", "\u2014\u2013", "((()))", "[[{{<<>>}}]]", "***bold***", "__init__",
        "a.b.c", "Mr. Smith, Jr.", "\u00bfQu\u00e9? \u00a1S\u00ed!", "\u00ab\u00bb \u201c\u201d \u2018\u2019",
        "~!@#$%^&*()_+`-=", "\u3002\uff0c\u3001\uff01\uff1f", "\u060c\u061b\u061f", "\u0964\u0965",
        # special-token texts (both vocabs) and near misses
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>",
        "<start_of_turn>", "<end_of_turn>", "<mask>", "[multimodal]", "<unused0>", "<unused99>",
        "<start_of_image>", "<table>", "<td>x</td>", "<b>bold</b>", "<repo_name>", "<reponame>", "<file_sep>",
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
        "<bos><start_of_turn>user\nx<end_of_turn>", "<|im_start|><|im_start|>", "<|im_start", "im_start|>",
        "<|im_end |>", "< s >", "<<s>>", "<s><s>", " <s> ", "a<|endoftext|>b", "<|endoftext|> <|endoftext|>",
        "text<end_of_turn>text", "<|im_end|>\n", "  <|im_start|>  ", "<s>Hello</s>", "<filename>a.py",
        "<jupyter_code>print(1)<jupyter_output>1", "<empty_output>",
        # clean_spaces targets
        "Hello , world . Yes ! No ?", " ' quoted ' ", "He said ' hi ' .", "it ' s", "x 's y 'm z 're w 've",
        "a ,b", " .", "end .", "? ! . ,",
        # long words
        "a" * 300, "ab" * 200, "Donaudampfschifffahrtsgesellschaftskapit\u00e4nsm\u00fctze",
        "supercalifragilisticexpialidocious" * 10, "\u65e5" * 200, "\U0001f600" * 50,
        "pneumonoultramicroscopicsilicovolcanoconiosis", "x" * 1000,
        "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgYmFzZTY0IHN0cmluZyB0aGF0IGtlZXBzIGdvaW5nIGFuZCBnb2luZw==",
        "camelCaseIdentifierWithManyWords", "snake_case_identifier_with_many_words", "ALLCAPSWORD",
        "MixedCASEandNUMBERS123abcDEF", "HTTPServerError", "iPhone", "McDonald's",
    ]
    # deterministic mixtures of the fragments above, with separators that stress the splitters
    rng = random.Random(20240531)
    pool = [s for s in fixed if 0 < len(s) <= 60]
    seps = ["", " ", "  ", "\n", "\t", " \n", "\n\n", "   ", "'", ".", ", ", "\u3000"]
    mixed = []
    while len(mixed) < 160:
        k = rng.randint(2, 5)
        s = rng.choice(seps).join(rng.choice(pool) for _ in range(k))
        if rng.random() < 0.3:
            s = rng.choice([" ", "  ", "\n", "\t"]) + s
        if rng.random() < 0.2:
            s += rng.choice([" ", "\n", "  "])
        if s not in fixed and s not in mixed:
            mixed.append(s)
    return fixed + mixed


# ----------------------------------------------------------------------------- llama.cpp side
class LlamaVocab:
    """Thin ctypes wrapper over llama-cpp-python's low-level vocab API."""

    def __init__(self, path):
        import llama_cpp
        self.lc = llama_cpp
        self.model = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        self.vocab = self.model._model.vocab
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 8
        buf = (self.lc.llama_token * n_max)()
        n = self.lc.llama_tokenize(self.vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0:
            raise RuntimeError(f"llama_tokenize failed for {text!r}")
        return list(buf[:n])

    def detokenize(self, ids, remove_special=False, unparse_special=False) -> bytes:
        arr = (self.lc.llama_token * max(1, len(ids)))(*ids)
        size = 64 + 64 * len(ids)
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self.lc.llama_detokenize(self.vocab, arr, len(ids), buf, size, remove_special, unparse_special)
            if n >= 0:
                return buf.raw[:n]
            size = -n + 16

    def piece(self, tok, special) -> bytes:
        buf = ctypes.create_string_buffer(512)
        n = self.lc.llama_token_to_piece(self.vocab, tok, buf, 512, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.lc.llama_token_to_piece(self.vocab, tok, buf, -n, 0, special)
        return buf.raw[:n]

    def info(self) -> dict:
        lc, v = self.lc, self.vocab
        return {
            "n_vocab": self.n_vocab, "bos_id": lc.llama_vocab_bos(v), "eos_id": lc.llama_vocab_eos(v),
            "add_bos": bool(lc.llama_vocab_get_add_bos(v)), "add_eos": bool(lc.llama_vocab_get_add_eos(v)),
            "eog_ids": [i for i in range(self.n_vocab) if lc.llama_vocab_is_eog(v, i)],
        }

    def piece_hashes(self, special) -> list[str]:
        return piece_hashes(lambda t: self.piece(t, special), self.n_vocab)


def piece_hashes(piece_fn, n_vocab) -> list[str]:
    """sha256 (first 16 hex) of the length-prefixed pieces of each PIECE_CHUNK-token block."""
    out = []
    for start in range(0, n_vocab, PIECE_CHUNK):
        h = hashlib.sha256()
        for t in range(start, min(n_vocab, start + PIECE_CHUNK)):
            p = piece_fn(t)
            h.update(len(p).to_bytes(4, "little") + p)
        out.append(h.hexdigest()[:16])
    return out


def outputs(lv: LlamaVocab, corpus) -> dict:
    res = {"ids_plain": [], "ids_special": [], "text_plain": [], "text_special": [], "text_special_unparsed": []}
    for s in corpus:
        a = lv.tokenize(s, True, False)
        b = lv.tokenize(s, True, True)
        res["ids_plain"].append(a)
        res["ids_special"].append(b)
        res["text_plain"].append(lv.detokenize(a).decode("utf-8", "replace"))
        res["text_special"].append(lv.detokenize(b).decode("utf-8", "replace"))
        # remove_special + unparse_special exercises the BOS/EOS strip and control-token rendering
        res["text_special_unparsed"].append(lv.detokenize(b, True, True).decode("utf-8", "replace"))
    return res


def diff_outputs(base: dict, var: dict, keys) -> dict:
    """{key: {index: value}} for entries of `keys` that differ from base."""
    return {k: {str(i): v for i, (b, v) in enumerate(zip(base[k], var[k])) if b != v} for k in keys}


def rewrite_gguf(src: str, dst: str, overrides: dict):
    """Copy `src`'s metadata (no tensors) into `dst`, with overrides {key: value or None to delete}."""
    import gguf
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, arch=r.fields["general.architecture"].contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in overrides:
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, f.contents(), vtype, sub_type=sub)
    for key, val in overrides.items():
        if val is None:
            continue
        if isinstance(val, bool):
            w.add_bool(key, val)
        else:
            w.add_string(key, val)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def variant_outputs(path, overrides, corpus, base, keys) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        dst = os.path.join(tmp, "vocab.gguf")
        rewrite_gguf(path, dst, overrides)
        lv = LlamaVocab(dst)
        out = outputs(lv, corpus)
        return {"overrides": overrides, "info": lv.info(), "diff": diff_outputs(base, out, keys)}


def make_ref(name, path, corpus) -> tuple[dict, dict]:
    import llama_cpp
    lv = LlamaVocab(path)
    base = outputs(lv, corpus)
    ref = {
        "source": f"llama-cpp-python {llama_cpp.__version__} (llama_tokenize add_special=True; "
                  "llama_detokenize remove_special=False unparse_special=False unless noted)",
        "model": os.path.basename(path),
        "corpus_size": len(corpus),
        "info": lv.info(),
        "piece_hashes": {"chunk": PIECE_CHUNK, "special_false": lv.piece_hashes(False),
                         "special_true": lv.piece_hashes(True)},
        **base,
    }
    return ref, base


def make_variants(name, path, corpus, base, variants, keys) -> dict:
    import llama_cpp
    out = {"source": f"llama-cpp-python {llama_cpp.__version__}: {name} vocab with rewritten metadata; "
                     f"entries of {', '.join(keys)} that differ from tokenizer_ref_{name}.json",
           "variants": {}}
    for label, overrides in variants:
        print(f"  {name}: variant {label}", file=sys.stderr)
        out["variants"][label] = variant_outputs(path, overrides, corpus, base, keys)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="store_true", help="rewrite the corpus file from build_corpus()")
    ap.add_argument("--smollm2", default=os.environ.get("GGRAPH_SMOLLM2"))
    ap.add_argument("--gemma3", default=os.environ.get("GGRAPH_GEMMA3"))
    args = ap.parse_args()
    if args.corpus:
        corpus = build_corpus()
        with open(CORPUS, "w", encoding="utf-8") as fh:
            json.dump(corpus, fh, ensure_ascii=False, indent=0)
            fh.write("\n")
        print(f"wrote {len(corpus)} strings to {CORPUS}")
    with open(CORPUS, encoding="utf-8") as fh:
        corpus = json.load(fh)
    jobs = []
    if args.smollm2:
        pre_vars = [(f"pre={p}", {"tokenizer.ggml.pre": p}) for p in PRE_VARIANTS]
        jobs.append(("smollm2", args.smollm2, "pretok", pre_vars, ["ids_plain", "text_plain"]))
    if args.gemma3:
        jobs.append(("gemma3", args.gemma3, "space_prefix",
                     [("add_space_prefix", {"tokenizer.ggml.add_space_prefix": True})],
                     ["ids_plain", "ids_special", "text_plain", "text_special_unparsed"]))
    for name, path, suffix, variants, keys in jobs:
        ref, base = make_ref(name, path, corpus)
        write_json(os.path.join(FIXTURES, f"tokenizer_ref_{name}.json"), ref)
        var = make_variants(name, path, corpus, base, variants, keys)
        write_json(os.path.join(FIXTURES, f"tokenizer_ref_{name}_{suffix}.json"), var)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, separators=(",", ":"))
        fh.write("\n")
    print(f"wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
