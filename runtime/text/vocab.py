"""Vocabulary + tokenizer with llama.cpp semantics (src/llama-vocab.cpp).

    vocab = Vocab.from_gguf(gguf_file)          # any object with .get(key, default)
    ids = vocab.tokenize("Hello", add_special=True, parse_special=False)   # llama_tokenize
    text = vocab.detokenize(ids)                                          # llama_detokenize

Supported `tokenizer.ggml.model` values: `llama` (SPM), `gpt2` (byte-level BPE with the
pre-tokenizers of pretokenize.py) and `gemma4` (SPM-style BPE). Missing special ids are -1
(LLAMA_TOKEN_NULL).

Bytes: tokenize() takes a str or raw bytes, as llama_tokenize takes a char buffer. Valid UTF-8
bytes tokenize exactly as their str. Invalid UTF-8 is read as llama.cpp reads it: the BPE
tokenizers decode it leniently (unicode_cpts_from_utf8: a byte that does not start a well-formed
sequence becomes one U+FFFD, surrogates and overlong forms are kept as code points), SPM keeps the
raw bytes (symbols of unicode_len_utf8 bytes, unknown ones byte-fallback to <0xXX>). One deviation:
a 4-byte form above U+10FFFF becomes U+FFFD here, where llama.cpp aborts (std::invalid_argument).
Bytes with no token at all (a byte-level BPE vocabulary without that byte; SmolLM2 lacks 21 of
them) are dropped, as llama.cpp drops them; the logger "ggraph.text" says so at DEBUG level.
detokenize_bytes() / token_to_piece() return bytes; detokenize() decodes them with U+FFFD.
"""
from __future__ import annotations

import codecs
import logging
import re
import warnings

from ggraph.errors import GGraphError

from .pretokenize import PreType, bytes_to_unicode, lookup_pre
from .bpe import BpeModel
from .spm import SpmModel

# llama_token_attr bits
ATTR_UNDEFINED, ATTR_UNKNOWN, ATTR_UNUSED, ATTR_NORMAL = 0, 1, 2, 4
ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_BYTE = 8, 16, 32
ATTR_LSTRIP, ATTR_RSTRIP = 128, 256
_SPECIAL_ATTRS = ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN

# GGUF tokenizer.ggml.token_type -> attr
_TYPE_ATTR = {1: ATTR_NORMAL, 2: ATTR_UNKNOWN, 3: ATTR_CONTROL, 4: ATTR_USER_DEFINED, 5: ATTR_UNUSED,
              6: ATTR_BYTE}

_C_SPACE = " \t\n\v\f\r"   # C isspace(), used by LSTRIP/RSTRIP
_K = "tokenizer.ggml."

# texts that llama.cpp recognises as special tokens when the GGUF does not name them
_EOT_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
              "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>")
_EOM_TEXTS = ("<|eom_id|>",)
_FIM_TEXTS = {
    "fim_pre": ("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
                "<|code_prefix|>", "<|prefix|>"),
    "fim_suf": ("<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
                "<|code_suffix|>", "<|suffix|>"),
    "fim_mid": ("<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
                "<|code_middle|>", "<|middle|>"),
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}
_EOG_TEXTS = frozenset(("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                        "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                        "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                        "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~["))
# GGUF key -> special id name, in llama.cpp's order (deprecated prefix/suffix/middle keys last)
_SPECIAL_KEYS = (("bos_token_id", "bos"), ("eos_token_id", "eos"), ("eot_token_id", "eot"),
                 ("eom_token_id", "eom"), ("unknown_token_id", "unk"), ("seperator_token_id", "sep"),
                 ("padding_token_id", "pad"), ("mask_token_id", "mask"), ("fim_pre_token_id", "fim_pre"),
                 ("fim_suf_token_id", "fim_suf"), ("fim_mid_token_id", "fim_mid"),
                 ("fim_pad_token_id", "fim_pad"), ("fim_rep_token_id", "fim_rep"),
                 ("fim_sep_token_id", "fim_sep"), ("prefix_token_id", "fim_pre"),
                 ("suffix_token_id", "fim_suf"), ("middle_token_id", "fim_mid"))
_UNSUPPORTED_MODELS = {"bert", "t5", "rwkv", "plamo2", "hybriddna", "whitespace", "test"}
log = logging.getLogger("ggraph.text")
_STRTOL16 = re.compile(rb"\s*[+-]?[0-9a-fA-F]+")


def _lcpp_utf8_error(exc: UnicodeDecodeError):
    """Codec error handler: resume where llama.cpp's unicode_cpt_from_utf8 would. Strict UTF-8 and
    llama.cpp agree on valid input, so this only runs at a byte strict decoding refuses."""
    b, i = exc.object, exc.start
    c, n = b[i], len(b)
    if not c & 0x40:
        return "\ufffd", i + 1
    if not c & 0x20:
        length, cp = 2, c & 0x1F
    elif not c & 0x10:
        length, cp = 3, c & 0x0F
    elif not c & 0x08:
        length, cp = 4, c & 0x07
    else:
        return "\ufffd", i + 1
    if i + length > n:
        return "\ufffd", i + 1
    for k in range(1, length):
        x = b[i + k]
        if x & 0xC0 != 0x80:
            return "\ufffd", i + 1
        cp = cp << 6 | x & 0x3F
    return (chr(cp) if cp <= 0x10FFFF else "\ufffd"), i + length


codecs.register_error("ggraph-llamacpp-utf8", _lcpp_utf8_error)


def utf8_like_llamacpp(data: bytes) -> str:
    """bytes -> str as llama.cpp's unicode_cpts_from_utf8 (used by its BPE tokenizers)."""
    return data.decode("utf-8", "ggraph-llamacpp-utf8")


def _flag(name: str, v) -> bool:
    if not isinstance(v, bool) and type(v).__name__ != "bool_":
        raise GGraphError(f"{name} must be True or False, got {type(v).__name__} {v!r}")
    return bool(v)


def _token_id(where: str, tok) -> int:
    if isinstance(tok, bool) or not isinstance(tok, int):
        if type(tok).__module__ == "numpy" and hasattr(tok, "dtype") and tok.dtype.kind in "iu" and tok.ndim == 0:
            return int(tok)
        raise GGraphError(f"{where}: token ids must be integers, got {type(tok).__name__} {tok!r:.60}")
    return tok


def _meta(g, key, kind):
    """A tokenizer key with its Python type checked (Vocab.from_gguf also takes plain dicts; a GGUFFile
    has already checked the GGUF value type)."""
    v = g.get(_K + key) if not key.startswith("general.") else g.get(key)
    if v is None:
        return None
    name = key if key.startswith("general.") else _K + key
    ok = {
        "str": lambda: isinstance(v, str),
        "bool": lambda: isinstance(v, bool),
        "id": lambda: isinstance(v, int) and not isinstance(v, bool),
        "strs": lambda: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
        "nums": lambda: isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                            for x in v),
        "ints": lambda: isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
    }[kind]()
    if not ok:
        what = {"str": "a string", "bool": "a bool", "id": "an integer token id", "strs": "an array of strings",
                "nums": "an array of numbers", "ints": "an array of integers"}[kind]
        raise GGraphError(f"{name} must be {what}, got {type(v).__name__}")
    return v


class Vocab:
    """A GGUF vocabulary. Build with Vocab.from_gguf()."""

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_gguf(cls, gguf) -> "Vocab":
        self = cls.__new__(cls)
        self._load(gguf)
        return self

    def _load(self, g):
        ids, pre = self._load_type(g)
        self._load_tokens(g)
        self._load_special_ids(g, ids, pre)
        self._detect_special_texts(ids)
        self._build_eog(ids)
        self._ids = ids
        # partition candidates, longest text (in bytes) first
        self._special_cache = sorted((i for i in range(self.n_vocab) if self._attrs[i] & _SPECIAL_ATTRS),
                                     key=lambda i: -len(self._texts[i].encode("utf-8")))
        self._set_model_attrs(g)
        if self.type == "spm":
            self._impl = SpmModel(self.token_to_id, self._scores, ids["unk"])
        else:
            self._impl = BpeModel(self.token_to_id, g.get(_K + "merges"), pre)
        self._unbyte = {c: b for b, c in bytes_to_unicode().items()}
        self._pieces: list[bytes | None] = [None] * self.n_vocab

    def _load_type(self, g) -> tuple[dict, PreType | None]:
        """Vocab type, pre-tokenizer and the per-type defaults of ids and flags."""
        model = _meta(g, "model", "str")
        if model is None:
            raise GGraphError("GGUF has no tokenizer.ggml.model (no vocabulary)")
        if model in ("no_vocab", "none"):
            raise GGraphError(f"model has no vocabulary (tokenizer.ggml.model = '{model}')")
        if model in _UNSUPPORTED_MODELS:
            raise GGraphError(f"tokenizer model '{model}' is known to llama.cpp but not supported by ggraph yet")
        if model not in ("llama", "gpt2", "gemma4"):
            raise GGraphError(f"unknown tokenizer: '{model}'")
        self.model = model
        self.type = "spm" if model == "llama" else "bpe"
        ids = {name: -1 for _, name in _SPECIAL_KEYS}
        pre = None
        if self.type == "spm":
            self.pre_name = None   # SPM ignores tokenizer.ggml.pre
            ids.update(bos=1, eos=2, unk=0)
            self.add_space_prefix, self.clean_spaces, self.add_bos, self.add_eos = True, False, True, False
            self.escape_whitespaces = True
        else:
            if _meta(g, "merges", "strs") is None:
                raise GGraphError("cannot find tokenizer merges (tokenizer.ggml.merges) in the GGUF")
            self.pre_name, pre = lookup_pre("gemma4" if model == "gemma4" else _meta(g, "pre", "str"))
            if model == "gpt2":
                ids.update(bos=11, eos=11)   # llama.cpp's placeholder defaults, nearly always overridden
            if pre.no_bos:
                ids["bos"] = -1
            self.add_space_prefix, self.clean_spaces = False, pre.clean_spaces
            self.add_bos, self.add_eos = pre.add_bos, False
            self.escape_whitespaces = pre.escape_whitespaces
        asp = _meta(g, "add_space_prefix", "bool")
        self.add_space_prefix = self.add_space_prefix if asp is None else asp
        return ids, pre

    def _load_tokens(self, g):
        tokens = _meta(g, "tokens", "strs")
        if not tokens:
            raise GGraphError("cannot find tokenizer vocab (tokenizer.ggml.tokens) in the GGUF")
        n = len(tokens)
        scores = _meta(g, "scores", "nums")
        types = _meta(g, "token_type", "ints")
        if scores is not None and len(scores) < n:
            raise GGraphError(f"tokenizer.ggml.scores has {len(scores)} entries for {n} tokens")
        if types is not None and len(types) < n:
            raise GGraphError(f"tokenizer.ggml.token_type has {len(types)} entries for {n} tokens")
        self._texts = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        self._scores = [float(s) for s in scores[:n]] if scores is not None else [0.0] * n
        self._attrs = ([_TYPE_ATTR.get(int(t), ATTR_UNDEFINED) for t in types[:n]] if types is not None
                       else [ATTR_NORMAL] * n)
        for i, a in enumerate(self._attrs):     # llama.cpp's token_to_byte: text.substr(3, 2) throws on load
            if a & ATTR_BYTE and len(self._texts[i].encode("utf-8", "surrogatepass")) < 3:
                raise GGraphError(f"token {i} {self._texts[i]!r:.20} has token type BYTE but is not a <0xXX> byte "
                                  f"token (llama.cpp refuses the vocabulary)")
        self.token_to_id = {t: i for i, t in enumerate(self._texts)}
        if len(self.token_to_id) != n:     # llama.cpp: GGML_ASSERT(id_to_token.size() == token_to_id.size())
            seen = {}
            for i, t in enumerate(self._texts):
                if t in seen:
                    raise GGraphError(f"tokenizer.ggml.tokens has the token {t!r:.40} twice (ids {seen[t]} and {i})")
                seen[t] = i

    def _load_special_ids(self, g, ids, pre):
        """Defaults out of range are dropped; GGUF ids override them when in range."""
        n = self.n_vocab
        for key, name in _SPECIAL_KEYS:
            if ids[name] >= n:
                ids[name] = -1
            v = _meta(g, key, "id")
            if v is None:
                continue
            if 0 <= int(v) < n:
                ids[name] = int(v)
            else:
                warnings.warn(f"bad special token {_K + key} = {v}, using default id {ids[name]}", stacklevel=4)
        add_bos, add_eos = _meta(g, "add_bos_token", "bool"), _meta(g, "add_eos_token", "bool")
        if add_bos is not None:
            self.add_bos = bool(add_bos)
        if add_eos is not None:
            self.add_eos = bool(add_eos)
        if pre is not None and pre.gemma4:
            self.add_bos = True   # llama.cpp overrides a false add_bos_token for Gemma-4

    def _force_control(self, tid):
        self._attrs[tid] |= ATTR_CONTROL

    def _detect_special_texts(self, ids):
        # llama.cpp walks a hash map, so with several candidates its pick is arbitrary; we take the lowest id
        for name, texts in (("eot", _EOT_TEXTS), ("eom", _EOM_TEXTS), *_FIM_TEXTS.items()):
            if ids[name] != -1:
                continue
            found = [self.token_to_id[t] for t in texts if t in self.token_to_id]
            if found:
                ids[name] = min(found)
                self._force_control(ids[name])
        for i, t in enumerate(self._texts):   # control tokens named "unused" are unused
            if self._attrs[i] & ATTR_CONTROL and "unused" in t:
                self._attrs[i] |= ATTR_UNUSED

    def _build_eog(self, ids):
        eog = {ids[k] for k in ("fim_pad", "fim_rep", "fim_sep") if ids[k] != -1}
        for t in _EOG_TEXTS:
            tid = self.token_to_id.get(t)
            if tid is not None:
                eog.add(tid)
                self._force_control(tid)
        for t in ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"):   # gpt-oss: always rendered
            if t in self.token_to_id:
                self._attrs[self.token_to_id[t]] = ATTR_USER_DEFINED
        eog |= {ids[k] for k in ("eos", "eot", "eom") if ids[k] != -1}
        texts = {self._texts[i]: i for i in eog}
        # o200k_harmony / solar-open: "<|end|>" ends a message, not the generation
        if "<|end|>" in texts and (("<|return|>" in texts and ("<|call|>" in texts or "<|calls|>" in texts))
                                   or (("<|call|>" in texts or "<|calls|>" in texts) and "<|flush|>" in texts)):
            eog.discard(texts["<|end|>"])
            self._attrs[texts["<|end|>"]] = ATTR_USER_DEFINED
        # gemma4 / plamo: "</s>" is a normal token there
        if "</s>" in texts and ("<|tool_response>" in texts or "<|plamo:eos|>" in texts):
            eog.discard(texts["</s>"])
            self._attrs[texts["</s>"]] = ATTR_NORMAL
        self.eog_ids = frozenset(eog)

    def _set_model_attrs(self, g):
        """LSTRIP/RSTRIP attributes llama.cpp sets by model name (they are not stored in GGUF)."""
        name = str(g.get("general.name", "") or "").lower()
        pre = str(g.get(_K + "pre", "") or "")
        arch = str(g.get("general.architecture", "") or "")

        def setattr_(text, bit, on):
            tid = self.token_to_id.get(text)
            if tid is not None:
                self._attrs[tid] = self._attrs[tid] | bit if on else self._attrs[tid] & ~bit

        if any(s in pre for s in ("jina-v2-de", "jina-v2-es", "jina-v2-code")) or \
                any(s in arch for s in ("nomic-bert-moe", "jina-bert-v3")):
            setattr_("<mask>", ATTR_LSTRIP, True)
        elif "phi-3" in name or "phi3" in name:
            for tid in self._special_cache:
                self._attrs[tid] |= ATTR_RSTRIP
            setattr_("</s>", ATTR_RSTRIP, True)
            for t in ("<unk>", "<s>", "<|endoftext|>"):
                setattr_(t, ATTR_RSTRIP, False)
        elif "modern-bert" in name:
            setattr_("[MASK]", ATTR_LSTRIP, True)

    # ------------------------------------------------------------------ properties
    @property
    def n_vocab(self) -> int:
        return len(self._texts)

    bos_id = property(lambda self: self._ids["bos"])
    eos_id = property(lambda self: self._ids["eos"])
    eot_id = property(lambda self: self._ids["eot"])
    unk_id = property(lambda self: self._ids["unk"])
    pad_id = property(lambda self: self._ids["pad"])

    def is_eog(self, tok: int) -> bool:
        return tok in self.eog_ids

    def token_text(self, tok: int) -> str:
        return self._texts[self._check_id(tok)]

    def token_attr(self, tok: int) -> int:
        return self._attrs[self._check_id(tok)]

    def token_score(self, tok: int) -> float:
        return self._scores[self._check_id(tok)]

    def _check_id(self, tok, where: str = "token"):
        if type(tok) is not int:
            tok = _token_id(where, tok)
        if not 0 <= tok < len(self._texts):
            raise GGraphError(f"token id {tok} out of range [0, {len(self._texts)})")
        return tok

    # ------------------------------------------------------------------ tokenize
    def tokenize(self, text: str | bytes, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """llama_tokenize: special-token partition, then SPM/BPE on each raw fragment. `text`: a str,
        or bytes read as llama.cpp reads them (see the module docstring)."""
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = self._from_bytes(bytes(text))
        elif not isinstance(text, str):
            raise GGraphError(f"tokenize() takes a str or bytes, got {type(text).__name__}")
        add_special = _flag("tokenize: add_special", add_special)
        parse_special = _flag("tokenize: parse_special", parse_special)
        frags = self._partition(text, parse_special) if text else []
        out: list[int] = []
        add_bos = add_special and self.add_bos
        if add_bos:
            out.append(self._need("bos"))
        if self.type == "spm":
            prev_special = True   # the first fragment gets the space prefix too
            for f in frags:
                if isinstance(f, int):
                    out.append(f)
                    prev_special = True
                    continue
                if self.add_space_prefix and prev_special:
                    f = " " + f
                out.extend(self._impl.tokenize(f.replace(" ", "\u2581")))
                prev_special = False
        else:
            for f in frags:
                if isinstance(f, int):
                    out.append(f)
                else:
                    out.extend(self._impl.tokenize(f.replace(" ", "\u2581") if self.escape_whitespaces else f))
        if add_special and self.add_eos:
            out.append(self._need("eos"))
        return out

    def _from_bytes(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if self.type == "spm":       # raw bytes: invalid ones ride along as surrogate escapes (spm.py)
            return data.decode("utf-8", "surrogateescape")
        return utf8_like_llamacpp(data)

    def _need(self, name):
        tid = self._ids[name]
        if tid < 0:
            raise GGraphError(f"add_{name} is set but the vocabulary has no {name} token")
        return tid

    def _partition(self, text: str, parse_special: bool) -> list:
        """Split out special-token texts, longest token first (tokenizer_st_partition).
        Fragments are str (raw text) or int (token id)."""
        frags: list = [text]
        for tid in self._special_cache:
            attr = self._attrs[tid]
            if not parse_special and attr & (ATTR_CONTROL | ATTR_UNKNOWN):
                continue   # user-defined tokens are split out even without parse_special (HF behaviour)
            tok = self._texts[tid]
            if tok not in text:
                continue
            out = []
            for f in frags:
                if isinstance(f, int) or tok not in f:
                    out.append(f)
                    continue
                pos = 0
                while True:
                    m = f.find(tok, pos)
                    if m < 0:
                        break
                    left = f[pos:m]
                    if attr & ATTR_LSTRIP:
                        left = left.rstrip(_C_SPACE)
                    if left:
                        out.append(left)
                    out.append(tid)
                    pos = m + len(tok)
                    if attr & ATTR_RSTRIP:
                        while pos < len(f) and f[pos] in _C_SPACE:
                            pos += 1
                if pos < len(f):
                    out.append(f[pos:])
            frags = out
        return frags

    # ------------------------------------------------------------------ detokenize
    def token_to_piece(self, tok: int, special: bool = False) -> bytes:
        """llama_token_to_piece with lstrip=0: control/unknown tokens are empty unless `special`."""
        tok = self._check_id(tok, "token_to_piece")
        special = _flag("token_to_piece: special", special)
        if not special and self._attrs[tok] & (ATTR_CONTROL | ATTR_UNKNOWN):
            return b""
        piece = self._pieces[tok]
        if piece is None:
            piece = self._pieces[tok] = self._make_piece(tok)
        return piece

    def _make_piece(self, tok) -> bytes:
        attr, text = self._attrs[tok], self._texts[tok]
        if attr & _SPECIAL_ATTRS:
            return text.encode("utf-8")
        if attr & ATTR_NORMAL:
            if self.type == "spm" or self.escape_whitespaces:
                return text.replace("\u2581", " ").encode("utf-8")
            return self._decode_byte_level(text)
        if attr & ATTR_BYTE:     # strtol(text.substr(3, 2), 16): the leading hex digits, 0 if none
            m = _STRTOL16.match(text.encode("utf-8", "surrogatepass")[3:5])
            return bytes([int(m.group(0), 16) & 0xFF]) if m else b"\x00"
        return b""   # unused / undefined tokens render as nothing

    def _decode_byte_level(self, text: str) -> bytes:
        out = bytearray()
        for c in text:
            b = self._unbyte.get(c)
            if b is not None:
                out.append(b)
            else:   # same odd marker llama.cpp writes for a code point outside the byte alphabet
                out += b"[UNK_BYTE_0x" + c.encode("utf-8").hex().encode() + text.encode("utf-8") + b"]"
        return bytes(out)

    def detokenize_bytes(self, ids, remove_special: bool = False, unparse_special: bool = False) -> bytes:
        """llama_detokenize: the bytes of the tokens' pieces."""
        if isinstance(ids, (str, bytes, bytearray, dict, set, frozenset)) or not hasattr(ids, "__iter__"):
            raise GGraphError(f"detokenize: ids must be a sequence of token ids, got {type(ids).__name__}")
        ids = [self._check_id(t, "detokenize") for t in ids]
        remove_special = _flag("detokenize: remove_special", remove_special)
        unparse_special = _flag("detokenize: unparse_special", unparse_special)
        remove_space = self.add_space_prefix
        if remove_special and self.add_bos and ids and ids[0] == self._ids["bos"]:
            remove_space = False
            ids = ids[1:]
        if remove_special and self.add_eos and ids and ids[-1] == self._ids["eos"]:
            ids = ids[:-1]
        parts = []
        for tok in ids:
            piece = self.token_to_piece(tok, unparse_special)
            if remove_space and piece[:1] == b" ":   # only the first token may lose one space
                piece = piece[1:]
            remove_space = False
            parts.append(piece)
        text = b"".join(parts)
        return _clean_spaces(text) if self.clean_spaces else text

    def detokenize(self, ids, remove_special: bool = False, unparse_special: bool = False) -> str:
        """llama_detokenize, decoded as UTF-8 with errors='replace'."""
        return self.detokenize_bytes(ids, remove_special, unparse_special).decode("utf-8", "replace")


def _clean_spaces(data: bytes) -> bytes:
    """The three in-place passes of llama_vocab::impl::detokenize (clean_up_tokenization_spaces)."""
    t = bytearray(data)
    sp, ap = ord(" "), ord("'")
    # 1: drop the space before ? ! . ,
    n, total = len(t), (1 if t else 0)
    for i in range(1, n):
        x = t[i]
        if t[i - 1] == sp and x in b"?!.,":
            total -= 1
        t[total] = x
        total += 1
    # 2: " ' " -> "'"
    n, total = total, (1 if total else 0)
    i = 1
    while i < n:
        x = t[i]
        if x == ap and i + 1 < n and t[i - 1] == sp and t[i + 1] == sp:
            total -= 1
            i += 1
            t[i] = 0
        t[total] = x
        total += 1
        i += 1
    # 3: drop the space before 's 'm 're 've
    n, total = total, (1 if total else 0)
    for i in range(1, n):
        x = t[i]
        if t[i - 1] == sp and x == ap and i + 1 < n:
            x1 = t[i + 1]
            if x1 in b"sm":
                total -= 1
            elif i + 2 < n and ((x1 == ord("r") and t[i + 2] == ord("e")) or
                                (x1 == ord("v") and t[i + 2] == ord("e"))):
                total -= 1
        t[total] = x
        total += 1
    return bytes(t[:total])


class StreamDecoder:
    """Incremental detokenizer for generation: push(tok) returns the text completed by that token.

    Pieces are concatenated like llama.cpp's streaming output (token_to_piece per token); bytes of an
    unfinished UTF-8 character are held back until the next token completes them, invalid bytes
    become U+FFFD. It does not apply detokenize()'s first-token space strip or clean_spaces.
    """

    def __init__(self, vocab: Vocab, special: bool = False):
        self.vocab = vocab
        self.special = special
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, tok: int) -> str:
        return self._dec.decode(self.vocab.token_to_piece(tok, self.special))

    def flush(self) -> str:
        """Return whatever is still buffered (an incomplete character becomes U+FFFD) and reset."""
        text = self._dec.decode(b"", final=True)
        self._dec.reset()
        return text
