"""BPE pre-tokenizers: `tokenizer.ggml.pre` name -> options + regex split, as llama.cpp does it.

The regexes are the ones llama.cpp actually runs (`llm_tokenizer_bpe` in src/llama-vocab.cpp),
not always the tokenizer.json originals: llama.cpp rewrote `(?i:'s|...)` as `'[sS]|...` (so the
long s 'ſ' does not match) and `[\\p{Lu}...]` classes as `(?=[\\p{L}])([^a-z])` (so combining
marks are not letters there). Running those strings through the `regex` module reproduces
llama.cpp's hand-written splitters and its std::regex fallback: `regex`'s `\\s` is exactly
llama.cpp's whitespace set and its \\p{L}/\\p{N}/\\p{P}/\\p{S}/\\p{M} agree with llama.cpp's
tables except for code points assigned after llama.cpp's Unicode version.

Each regex splits every piece produced by the previous one; both matches and the unmatched gaps
between them are kept as pieces (`unicode_regex_split`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import regex

from ggraph.errors import GGraphError

# contractions, written the way llama.cpp does (explicit case classes instead of (?i:...))
_CONTR = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = _CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN2 = _CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_CJK_DS = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
_CJK_DS3 = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
_DS3_MAIN = (r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"""
             r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_UPPER = r"((?=[\p{L}])([^a-z]))"   # llama.cpp's stand-in for [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
_LOWER = r"((?=[\p{L}])([^A-Z]))"   # ... and for [\p{Ll}\p{Lm}\p{Lo}\p{M}]
_LU = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LL = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"

# regex family -> list of regexes applied in sequence
FAMILY_REGEXES: dict[str, list[str]] = {
    "default": [r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
    "gpt2": [_GPT2],
    "starcoder": [r"\p{N}", _GPT2],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, "[0-9][0-9][0-9]"],
    "llama3": [_LLAMA3],
    "jais2": [_CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
              r"|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)"
              r"|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}"],
    "qwen2": [_QWEN2],
    "qwen35": [_CONTR + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "deepseek-llm": [
        "[\r\n]",
        "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
        "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
        "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
        "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
        "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
        "\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc"
        "\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
        "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
        "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06"
        "\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
        "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
        "\U0001e900-\U0001e943]+",
        "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
        r"\s+\Z",   # ECMAScript `$` = end of the piece only (Python's `$` also matches before a final \n)
        _CJK_DS,
        r"\p{N}+",
    ],
    "deepseek-coder": ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK_DS, r"\p{N}"],
    "deepseek3": [r"\p{N}{1,3}", _CJK_DS3, _DS3_MAIN],
    "spark2_5": [r"\p{N}{1,3}", _CJK_DS3,
                 r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"""
                 r"| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+", r"\p{N}"],
    "youtu": ["[\uac00-\ud7a3\u3131-\u318e]+|[\uff01\u2026\u201c\u201d\u2018\u2019\u2014\uff1a\uff1b\uff0c"
              "\u3001-\u303f\ufe30-\ufe4f]+|[\u3105-\u312f]+|[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
              rf"[^\r\n\p{{L}}\p{{N}}]?{_LU}*{_LL}+{_CONTR}?|[^\r\n\p{{L}}\p{{N}}]?{_LU}+{_LL}*{_CONTR}?"
              r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "bloom": [r" ?[^(\s|.,!?…。，、।۔،)]+"],
    "viking": [r" ?[^(\s|.,!?…。，、।۔،)]+", r"\p{N}"],
    "tekken": [rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*"
               r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "chameleon": ["<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )",
                  r"\p{N}", r"[\p{P}!-/:-@\[-`{-~]", _GPT2],
    "gpt4o": [rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{_CONTR}?|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{_CONTR}?"
              r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "granite-emb-multi": [
        r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+" + _CONTR + "?"
        r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*" + _CONTR + "?"
        r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "bailingmoe": [r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                   r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"],
    "seed-coder": [_CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "ufakzeka": [r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    "laguna": [r"[^\n]+|[\n]+", _QWEN2],
    "exaone-moe": [_CONTR + r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
                   r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"],
    "newlines": [r"[^\n]+|[\n]+"],
    "minicpm5": [r"\p{N}{1,3}",
                 _CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
}


@dataclass(frozen=True)
class PreType:
    """What a `tokenizer.ggml.pre` value selects (flags as set in llama_vocab::impl::load)."""
    family: str
    clean_spaces: bool = True
    ignore_merges: bool = False
    add_bos: bool = False           # default before the GGUF add_bos_token key overrides it
    no_bos: bool = False            # chatglm: BOS id forced to none
    escape_whitespaces: bool = False  # SPM-style BPE: ' ' -> U+2581, raw UTF-8, <0xXX> byte fallback
    add_sep: bool = False
    gemma4: bool = False            # Gemma-4 quirks: newline-run words looked up whole, add_bos forced


def _names(family, names, **kw):
    return {n: PreType(family, **kw) for n in names}


PRE_TYPES: dict[str, PreType] = {
    "default": PreType("default"),
    **_names("llama3", ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                        "lfm2", "jina-v5-nano"], ignore_merges=True, add_bos=True),
    **_names("llama3", ["dbrx", "smaug-bpe"]),
    "chatglm-bpe": PreType("llama3", no_bos=True),
    **_names("llama3", ["glm4", "glm5"], no_bos=True, ignore_merges=True),
    "minicpm5": PreType("minicpm5", ignore_merges=True),
    "deepseek-llm": PreType("deepseek-llm", clean_spaces=False),
    "deepseek-coder": PreType("deepseek-coder", clean_spaces=False),
    **_names("deepseek3", ["deepseek-v3", "hunyuan-dense", "hy_v4", "joyai-llm"], clean_spaces=False),
    "spark2_5": PreType("spark2_5", clean_spaces=False),
    "youtu": PreType("youtu", clean_spaces=False, ignore_merges=True),
    "falcon": PreType("falcon"),
    **_names("gpt2", ["mpt", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                      "a.x-4.0", "mellum", "modern-bert", "olmo", "jais", "exaone4"]),
    **_names("gpt2", ["trillion", "granite-docling"], clean_spaces=False),
    **_names("gpt2", ["jina-v1-en", "jina-v2-code", "roberta-bpe"], add_sep=True),
    **_names("starcoder", ["starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"]),
    **_names("starcoder", ["command-r", "smollm"], clean_spaces=False),
    "jais-2": PreType("jais2"),
    **_names("newlines", ["gemma4", "granite-embed-multi-311m"], escape_whitespaces=True, gemma4=True),
    "sarvam-moe": PreType("newlines", escape_whitespaces=True, clean_spaces=False),
    **_names("qwen2", ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2"],
             clean_spaces=False),
    **_names("qwen2", ["stablelm2", "megrez"]),
    "qwen35": PreType("qwen35", clean_spaces=False),
    "poro-chat": PreType("bloom", clean_spaces=False),
    **_names("bloom", ["bloom", "gpt3-finnish"]),
    "viking": PreType("viking", clean_spaces=False),
    "tekken": PreType("tekken", clean_spaces=False, ignore_merges=True, add_bos=True),
    "chameleon": PreType("chameleon", clean_spaces=False, add_bos=True),
    **_names("gpt4o", ["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"], clean_spaces=False),
    "granite-embed-multi-97m": PreType("granite-emb-multi", clean_spaces=False, ignore_merges=True),
    **_names("bailingmoe", ["bailingmoe", "bailingmoe2", "llada-moe"], clean_spaces=False),
    "seed-coder": PreType("seed-coder", clean_spaces=False),
    "ufakzeka": PreType("ufakzeka", clean_spaces=False),
    "laguna": PreType("laguna", clean_spaces=False),
    "exaone-moe": PreType("exaone-moe"),
}

# llama.cpp knows these but runs hand-written code for them (or a non-gpt2 model type)
UNSUPPORTED_PRE = {"kimi-k2", "afmoe", "tiny_aya", "cohere2moe", "superbpe", "whitespace"}


def lookup_pre(name: str | None) -> tuple[str, PreType]:
    """Resolve `tokenizer.ggml.pre` the way llama.cpp does: missing -> 'default' (with a warning)."""
    if name is None or name == "":
        warnings.warn("GGUF has no tokenizer.ggml.pre: using the 'default' pre-tokenizer "
                      "(generation quality will be degraded; consider regenerating the model)", stacklevel=5)
        return "default", PRE_TYPES["default"]
    if name in PRE_TYPES:
        return name, PRE_TYPES[name]
    if name in UNSUPPORTED_PRE:
        raise GGraphError(f"pre-tokenizer type '{name}' is known to llama.cpp but not supported by ggraph yet")
    raise GGraphError(f"unknown pre-tokenizer type: '{name}'")


# llama.cpp's std::regex fallback sees every non-ASCII letter as one collapsed "letter" byte and maps
# \p{Lu}/\p{Ll}/\p{Lt}/\p{Lm}/\p{Lo} to it together with A-Za-z, so there they all mean \p{L}
_LETTER_SUBCLASS = regex.compile(r"\\p\{L[ultmo]\}")


class Splitter:
    """Applies a family's regexes in sequence, keeping matches and gaps (unicode_regex_split)."""

    def __init__(self, family: str):
        self.family = family
        self._res = [regex.compile(_LETTER_SUBCLASS.sub(r"\\p{L}", p)) for p in FAMILY_REGEXES[family]]

    def split(self, text: str) -> list[str]:
        pieces = [text] if text else []
        for rx in self._res:
            out = []
            for piece in pieces:
                pos = 0
                for m in rx.finditer(piece):
                    s, e = m.span()
                    if e == s:   # empty match: llama.cpp records an empty word, which yields no tokens
                        continue
                    if s > pos:
                        out.append(piece[pos:s])
                    out.append(piece[s:e])
                    pos = e
                if pos < len(piece):
                    out.append(piece[pos:])
            pieces = out
        return pieces


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable code point table (unicode_byte_to_utf8_map)."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table
