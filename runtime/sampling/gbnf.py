"""GBNF, llama.cpp's grammar format, parsed as `llama_grammar_parser` does (src/llama-grammar.cpp) and
written out in llguidance's Lark-like syntax with the same meaning.

    lark = gbnf_to_lark(open("json.gbnf").read())            # '%llguidance {}\\n\\nstart: ...'

Why not llguidance's own converter (`llguidance.gbnf_to_lark`): it turns every rule made only of
characters into one lexeme, and llguidance's lexer is greedy, so a lexeme never ends where it could
go on. GBNF is a plain context-free grammar over characters: in llama.cpp's arithmetic.gbnf,
`ident ::= [a-z] [a-z0-9_]* ws` with `ws ::= [ \\t\\n]*` may end before the "\\n" that ends the line,
but as one greedy lexeme it swallows that "\\n", and no sentence is ever complete. (The converter
also drops the leading zeros of \\u escapes, which llguidance then cannot read.)

Here every rule stays a grammar rule and every lexeme is one character (a literal is a sequence of
one-character strings), so llguidance's Earley parser sees exactly llama.cpp's grammar. For speed,
a rule made only of characters whose language is prefix-free (no match can be continued, checked
with a one-character-lookahead analysis) and whose first characters no other lexeme of the grammar
can start with, is kept as one lexeme: e.g. json.gbnf's `"\\"" (...)* "\\""` string body, which is
where a mask must look at most of the vocabulary. Its trailing optional part (`ws`) stays a rule.
Such a lexeme can never meet the greedy case, so the meaning is unchanged.

Written with llguidance's `no_forcing` option: where the grammar forces a run of bytes, llguidance
would otherwise allow only that text's canonical tokenization (after "ch" in c.gbnf, "ar" but not
"a"); llama.cpp's sampler allows every token that fits, and so does this.

Same errors as llama.cpp's parser (names, escapes, `::=`, newline or end after a rule, undefined
rules, repetition bounds over 2000; the last definition of a rule wins), as one-line GGraphError.
Not mirrored: llama.cpp refuses left-recursive grammars; llguidance's Earley parser accepts them.
Token references `<[id]>`, `<piece>` and `!<...>` are supported when a vocabulary is given.
"""
from __future__ import annotations

import re

from ggraph.errors import GGraphError

MAX_REPETITION_THRESHOLD = 2000     # llama-grammar.cpp
_MAX_CP = 0x10FFFF
_ALL = ((0, _MAX_CP),)


# -- the grammar as data ------------------------------------------------------------------------
class Chars:            # a literal "...": code points in order (empty: matches "")
    __slots__ = ("cps",)

    def __init__(self, cps):
        self.cps = cps


class CharClass:        # [...] / [^...] / . (any: negated empty set)
    __slots__ = ("neg", "ranges")

    def __init__(self, neg, ranges):
        self.neg, self.ranges = neg, ranges


class Ref:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class Seq:
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items


class Alt:
    __slots__ = ("alts",)

    def __init__(self, alts):
        self.alts = alts


class Rep:              # node{lo,hi}, hi None = unbounded
    __slots__ = ("node", "lo", "hi")

    def __init__(self, node, lo, hi):
        self.node, self.lo, self.hi = node, lo, hi


class Token:            # <[id]> / !<[id]>
    __slots__ = ("id", "neg")

    def __init__(self, id, neg):
        self.id, self.neg = id, neg


# -- parser: llama_grammar_parser ---------------------------------------------------------------
def _is_word(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9") or c == "-"


class _Parser:
    def __init__(self, src: str, tokenize=None):
        self.s = src
        self.tokenize = tokenize
        self.rules: dict[str, Alt] = {}
        self.refs: list[str] = []

    def fail(self, what: str, pos: int):
        line = self.s.count("\n", 0, pos) + 1
        col = pos - (self.s.rfind("\n", 0, pos) + 1) + 1
        near = self.s[pos:pos + 20]
        raise GGraphError(f"failed to parse grammar: {what} at line {line}, column {col}"
                          + (f" ({near!r})" if near else " (end of input)"))

    def cur(self, pos: int) -> str:
        return self.s[pos] if pos < len(self.s) else ""

    def space(self, pos: int, newline_ok: bool) -> int:
        s, n = self.s, len(self.s)
        while pos < n and (s[pos] in " \t#" or (newline_ok and s[pos] in "\r\n")):
            if s[pos] == "#":
                while pos < n and s[pos] not in "\r\n":
                    pos += 1
            else:
                pos += 1
        return pos

    def name(self, pos: int) -> int:
        end = pos
        while end < len(self.s) and _is_word(self.s[end]):
            end += 1
        if end == pos:
            self.fail("expecting name", pos)
        return end

    def int_(self, pos: int) -> int:
        end = pos
        while end < len(self.s) and self.s[end].isdigit() and self.s[end].isascii():
            end += 1
        if end == pos:
            self.fail("expecting integer", pos)
        return end

    def char(self, pos: int) -> tuple[int, int]:
        s = self.s
        if pos >= len(s):
            self.fail("unexpected end of input", pos)
        if s[pos] == "\\":
            c = self.cur(pos + 1)
            size = {"x": 2, "u": 4, "U": 8}.get(c)
            if size:
                digits = s[pos + 2:pos + 2 + size]
                if len(digits) != size or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    self.fail(f"expecting {size} hex chars", pos + 2)
                cp = int(digits, 16)
                if cp > _MAX_CP:
                    self.fail(f"\\{c}{digits} is not a Unicode character", pos)
                return cp, pos + 2 + size
            simple = {"t": 9, "r": 13, "n": 10, "\\": 92, '"': 34, "[": 91, "]": 93, "-": 45}
            if c in simple:
                return simple[c], pos + 2
            self.fail("unknown escape", pos)
        return ord(s[pos]), pos + 1

    def token(self, pos: int) -> tuple[int, int]:
        s = self.s
        start = pos
        if self.cur(pos) != "<":
            self.fail("expecting '<'", pos)
        pos += 1
        if self.cur(pos) == "[":
            end = self.int_(pos + 1)
            tid = int(s[pos + 1:end])
            if tid > 0xFFFFFFFF:
                self.fail("parsed token id is too big", pos + 1)
            if self.cur(end) != "]":
                self.fail("expecting ']'", end)
            if self.cur(end + 1) != ">":
                self.fail("expecting '>'", end + 1)
            return tid, end + 2
        if self.tokenize is None:
            self.fail("no vocab to parse token", start)
        end = s.find(">", pos)
        if end < 0:
            self.fail("expecting '>'", len(s))
        ids = self.tokenize(s[start:end + 1])
        if len(ids) != 1:
            self.fail(f"token {s[start:end + 1]!r} must be exactly one token of the vocabulary, not {len(ids)}", start)
        return ids[0], end + 1

    def sequence(self, pos: int, nested: bool) -> tuple[Seq, int]:
        s, items = self.s, []
        while pos < len(s):
            c = s[pos]
            if c == '"':
                pos += 1
                cps = []
                while self.cur(pos) != '"':
                    if pos >= len(s):
                        self.fail("unexpected end of input", pos)
                    cp, pos = self.char(pos)
                    cps.append(cp)
                items.append(Chars(cps))
                pos = self.space(pos + 1, nested)
            elif c == "[":
                pos += 1
                neg = self.cur(pos) == "^"
                if neg:
                    pos += 1
                ranges = []
                while self.cur(pos) != "]":
                    if pos >= len(s):
                        self.fail("unexpected end of input", pos)
                    lo, pos = self.char(pos)
                    hi = lo
                    if self.cur(pos) == "-" and self.cur(pos + 1) != "]":
                        if pos + 1 >= len(s):
                            self.fail("unexpected end of input", pos + 1)
                        hi, pos = self.char(pos + 1)
                    ranges.append((lo, hi))
                items.append(CharClass(neg, ranges))
                pos = self.space(pos + 1, nested)
            elif c in "<!":
                neg = c == "!"
                tid, pos = self.token(pos + 1 if neg else pos)
                items.append(Token(tid, neg))
                pos = self.space(pos, nested)
            elif _is_word(c):
                end = self.name(pos)
                items.append(Ref(s[pos:end]))
                self.refs.append(s[pos:end])
                pos = self.space(end, nested)
            elif c == "(":
                alt, pos = self.alternates(self.space(pos + 1, True), True)
                if self.cur(pos) != ")":
                    self.fail("expecting ')'", pos)
                items.append(alt)
                pos = self.space(pos + 1, nested)
            elif c == ".":
                items.append(CharClass(True, []))
                pos = self.space(pos + 1, nested)
            elif c in "*+?{":
                if not items:
                    self.fail("expecting preceding item to */+/?/{", pos)
                if c == "{":
                    pos = self.space(pos + 1, nested)
                    if not self.cur(pos).isdigit():
                        self.fail("expecting an int", pos)
                    end = self.int_(pos)
                    lo = int(s[pos:end])
                    pos = self.space(end, nested)
                    if self.cur(pos) == "}":
                        hi = lo
                        pos = self.space(pos + 1, nested)
                    elif self.cur(pos) == ",":
                        pos = self.space(pos + 1, nested)
                        hi = None
                        if self.cur(pos).isdigit():
                            end = self.int_(pos)
                            hi = int(s[pos:end])
                            pos = self.space(end, nested)
                        if self.cur(pos) != "}":
                            self.fail("expecting '}'", pos)
                        pos = self.space(pos + 1, nested)
                    else:
                        self.fail("expecting ','", pos)
                    if lo > MAX_REPETITION_THRESHOLD:
                        self.fail("number of repetitions exceeds sane defaults, please reduce the number of "
                                  "repetitions", pos)
                    if hi is not None and hi > MAX_REPETITION_THRESHOLD:
                        hi = None
                else:
                    lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
                    pos = self.space(pos + 1, nested)
                items[-1] = Rep(items[-1], lo, hi)
            else:
                break
        return Seq(items), pos

    def alternates(self, pos: int, nested: bool) -> tuple[Alt, int]:
        seq, pos = self.sequence(pos, nested)
        alts = [seq]
        while self.cur(pos) == "|":
            seq, pos = self.sequence(self.space(pos + 1, True), nested)
            alts.append(seq)
        return Alt(alts), pos

    def parse(self) -> dict[str, Alt]:
        pos = self.space(0, True)
        while pos < len(self.s):
            end = self.name(pos)
            name = self.s[pos:end]
            pos = self.space(end, False)
            if self.s[pos:pos + 3] != "::=":
                self.fail("expecting ::=", pos)
            alt, pos = self.alternates(self.space(pos + 3, True), False)
            self.rules[name] = alt           # add_rule: a later definition replaces an earlier one
            c = self.cur(pos)
            if c == "\r":
                pos += 2 if self.cur(pos + 1) == "\n" else 1
            elif c == "\n":
                pos += 1
            elif c:
                self.fail("expecting newline or end", pos)
            pos = self.space(pos, True)
        for r in self.refs:
            if r not in self.rules:
                raise GGraphError(f"failed to parse grammar: Undefined rule identifier '{r}'")
        if "root" not in self.rules:
            raise GGraphError("failed to parse grammar: the grammar has no 'root' rule")
        return self.rules


def parse_gbnf(text: str, tokenize=None) -> dict[str, Alt]:
    """GBNF text -> {rule name: Alt}. `tokenize(text) -> ids` resolves `<piece>` token references."""
    return _Parser(text, tokenize).parse()


# -- character sets (sorted, merged, inclusive code point ranges) ------------------------------
def _norm(ranges) -> tuple:
    rs = sorted((lo, hi) for lo, hi in ranges if lo <= hi)
    out: list[list[int]] = []
    for lo, hi in rs:
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def _complement(rs: tuple) -> tuple:
    out, nxt = [], 0
    for lo, hi in rs:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CP:
        out.append((nxt, _MAX_CP))
    return tuple(out)


def _union(a: tuple, b: tuple) -> tuple:
    return _norm(a + b) if a and b else (a or b)


def _meets(a: tuple, b: tuple) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def _class_set(c: CharClass) -> tuple:
    rs = _norm(c.ranges)
    return _complement(rs) if c.neg else rs


# -- analysis of character-only rules ----------------------------------------------------------
class _Analysis:
    def __init__(self, rules: dict[str, Alt]):
        self.rules = rules
        self.terminal = self._terminal_rules()
        self._fn: dict[str, tuple] = {}

    def _terminal_rules(self) -> set:
        """Rules made only of characters and such rules, with no recursion (llguidance's notion)."""
        term: set = set()

        def ok(n) -> bool:
            if isinstance(n, (Chars, CharClass)):
                return True
            if isinstance(n, Token):
                return False
            if isinstance(n, Ref):
                return n.name in term
            if isinstance(n, Seq):
                return all(ok(x) for x in n.items)
            if isinstance(n, Alt):
                return all(ok(x) for x in n.alts)
            return ok(n.node)

        changed = True
        while changed:
            changed = False
            for name, body in self.rules.items():
                if name not in term and ok(body):
                    term.add(name)
                    changed = True
        return term

    def fn(self, n) -> tuple:
        """(first characters, nullable) of a node of a character-only rule."""
        if isinstance(n, Chars):
            return (((n.cps[0], n.cps[0]),), False) if n.cps else ((), True)
        if isinstance(n, CharClass):
            return _class_set(n), False
        if isinstance(n, Ref):
            r = self._fn.get(n.name)
            if r is None:
                r = self._fn[n.name] = self.fn(self.rules[n.name])
            return r
        if isinstance(n, Seq):
            first: tuple = ()
            for x in n.items:
                f, nul = self.fn(x)
                first = _union(first, f)
                if not nul:
                    return first, False
            return first, True
        if isinstance(n, Alt):
            first, nul = (), False
            for x in n.alts:
                f, z = self.fn(x)
                first, nul = _union(first, f), nul or z
            return first, nul
        if n.hi == 0:
            return (), True
        f, z = self.fn(n.node)
        return f, z or n.lo == 0

    def det(self, n, follow: tuple, follow_empty: bool) -> bool:
        """Whether one character of lookahead always decides how `n` goes on, when what follows it
        starts with a character of `follow` (or may be empty: `follow_empty`, e.g. the lexeme's end)."""
        if isinstance(n, (Chars, CharClass)):
            return True
        if isinstance(n, Ref):
            return self.det(self.rules[n.name], follow, follow_empty)
        if isinstance(n, Seq):
            items = n.items
            rest_first: list = [None] * len(items)
            f, nul = follow, follow_empty
            for i in range(len(items) - 1, -1, -1):
                rest_first[i] = (f, nul)
                fi, zi = self.fn(items[i])
                f, nul = (_union(fi, f), nul) if zi else (fi, False)
            return all(self.det(x, *rest_first[i]) for i, x in enumerate(items))
        if isinstance(n, Alt):
            seen: tuple = ()
            n_null = 0
            for x in n.alts:
                f, z = self.fn(x)
                if _meets(seen, f) or not self.det(x, follow, follow_empty):
                    return False
                seen = _union(seen, f)
                n_null += z
            if n_null > 1 or (n_null and (follow_empty or _meets(seen, follow))):
                return False
            return True
        if n.hi == 0:
            return True
        f, z = self.fn(n.node)
        if z:
            return False
        if (n.hi is None or n.hi > n.lo) and (follow_empty or _meets(f, follow)):
            return False
        return self.det(n.node, _union(f, follow), follow_empty)

    def split(self, name: str):
        """(core, tail) of a character-only rule: the tail is its trailing nullable items."""
        body = self.rules[name]
        if len(body.alts) != 1:
            return body, []
        items = list(body.alts[0].items)
        k = len(items)
        while k > 0 and self.fn(items[k - 1])[1]:
            k -= 1
        return Seq(items[:k]), items[k:]

    def lexeme_candidates(self) -> dict:
        out = {}
        for name in self.terminal:
            core, tail = self.split(name)
            f, z = self.fn(core)
            if not z and self.det(core, (), True):
                out[name] = (core, tail, f)
        return out


# -- writing llguidance's syntax -------------------------------------------------------------
def _str_char(cp: int) -> str:
    c = chr(cp)
    esc = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c)
    if esc:
        return esc
    if 0x20 <= cp < 0x7F or cp >= 0x80:
        return c
    return f"\\x{cp:02x}"


def _rx_char(cp: int) -> str:
    c = chr(cp)
    return c if c.isascii() and c.isalnum() else f"\\x{{{cp:x}}}"


def _regex(c: CharClass) -> str:
    if c.neg and not c.ranges:
        return "/(?s:.)/"
    rs = _norm(c.ranges)
    # surrogates are no characters (no UTF-8 text has them): keep range ends off them
    rs = _norm([(0xE000 if 0xD800 <= lo <= 0xDFFF else lo, 0xD7FF if 0xD800 <= hi <= 0xDFFF else hi) for lo, hi in rs])
    if not rs:
        if c.neg:
            return "/(?s:.)/"
        raise GGraphError("failed to parse grammar: empty character class []")
    body = "".join(_rx_char(lo) if lo == hi else f"{_rx_char(lo)}-{_rx_char(hi)}" for lo, hi in rs)
    return f"/[{'^' if c.neg else ''}{body}]/"


def _check_scalar(cps) -> None:
    for cp in cps:
        if 0xD800 <= cp <= 0xDFFF:
            raise GGraphError(f"failed to parse grammar: U+{cp:04X} is not a Unicode character")


class _Writer:
    def __init__(self, rules: dict[str, Alt], lexemes: dict):
        self.rules, self.lexemes = rules, lexemes
        self.used: set = {"start"}
        self.rule_names = {"root": "start"}
        self.term_names: dict[str, str] = {}
        self.core_names: dict[str, str] = {}
        self.todo_rules = ["root"]
        self.todo_terms: list[str] = []

    def _fresh(self, base: str) -> str:
        name, k = base, 2
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def rule_name(self, gname: str) -> str:
        if gname not in self.rule_names:
            self.rule_names[gname] = self._fresh("r_" + re.sub(r"[^a-z0-9]", "_", gname.lower()))
            self.todo_rules.append(gname)
        return self.rule_names[gname]

    def term_name(self, gname: str) -> str:
        if gname not in self.term_names:
            self.term_names[gname] = self._fresh("T_" + re.sub(r"[^A-Z0-9]", "_", gname.upper()))
            self.todo_terms.append(gname)
        return self.term_names[gname]

    def core_name(self, gname: str) -> str:
        if gname not in self.core_names:
            self.core_names[gname] = self._fresh("L_" + re.sub(r"[^A-Z0-9]", "_", gname.upper()))
        return self.core_names[gname]

    def emit(self, n, term: bool) -> str:
        if isinstance(n, Chars):
            _check_scalar(n.cps)
            if not n.cps:
                return '""'
            if term:
                return '"' + "".join(_str_char(cp) for cp in n.cps) + '"'
            parts = ['"' + _str_char(cp) + '"' for cp in n.cps]
            return parts[0] if len(parts) == 1 else "(" + " ".join(parts) + ")"
        if isinstance(n, CharClass):
            return _regex(n)
        if isinstance(n, Token):
            return f"<[{'^' if n.neg else ''}{n.id}]>"
        if isinstance(n, Ref):
            return self.term_name(n.name) if term else self.rule_name(n.name)
        if isinstance(n, Seq):
            if not n.items:
                return '""'
            return " ".join(self.emit(x, term) for x in n.items)
        if isinstance(n, Alt):
            if len(n.alts) == 1:
                return "(" + self.emit(n.alts[0], term) + ")"
            return "(" + " | ".join(self.emit(x, term) for x in n.alts) + ")"
        inner = self.emit(n.node, term)
        if isinstance(n.node, Seq):       # every other node is written as one atom
            inner = f"({inner})"
        if n.lo == 0 and n.hi is None:
            return inner + "*"
        if n.lo == 1 and n.hi is None:
            return inner + "+"
        if n.lo == 0 and n.hi == 1:
            return inner + "?"
        return inner + "{" + f"{n.lo},{'' if n.hi is None else n.hi}" + "}"

    def rule_body(self, gname: str) -> str:
        if gname in self.lexemes:
            core, tail, _ = self.lexemes[gname]
            parts = [self.core_name(gname)] + [self.emit(x, False) for x in tail]
            return " ".join(parts)
        body = self.rules[gname]
        return "\n     | ".join(self.emit(x, False) for x in body.alts)

    def write(self) -> str:
        # no_forcing: any tokenization of text the grammar forces, as llama.cpp's grammar sampler allows
        out = ['%llguidance {"no_forcing": true}', ""]
        i = 0
        while i < len(self.todo_rules):
            g = self.todo_rules[i]
            out.append(f"{self.rule_name(g)}: {self.rule_body(g)}")
            i += 1
        cores = [g for g in self.rule_names if g in self.lexemes]
        for g in cores:
            out.append(f"{self.core_name(g)}: {self.emit(self.lexemes[g][0], True)}")
        i = 0
        while i < len(self.todo_terms):
            g = self.todo_terms[i]
            out.append(f"{self.term_names[g]}: {self.emit(self.rules[g], True)}")
            i += 1
        return "\n".join(out) + "\n"


def _rule_lexemes(rules: dict[str, Alt], lexemes: dict) -> list[tuple]:
    """(owner, first characters) of every lexeme the written grammar has: each one-character lexeme
    outside the kept lexemes (owner None) and each kept lexeme (owner: its rule)."""
    out: list[tuple] = []
    seen: set = set()
    todo = ["root"]

    def walk(n):
        if isinstance(n, Chars):
            for cp in n.cps:
                out.append((None, ((cp, cp),)))
        elif isinstance(n, CharClass):
            out.append((None, _class_set(n)))
        elif isinstance(n, Ref):
            if n.name not in seen:
                seen.add(n.name)
                todo.append(n.name)
        elif isinstance(n, Seq):
            for x in n.items:
                walk(x)
        elif isinstance(n, Alt):
            for x in n.alts:
                walk(x)
        elif isinstance(n, Rep):
            walk(n.node)

    seen.add("root")
    while todo:
        g = todo.pop()
        if g in lexemes:
            _, tail, first = lexemes[g]
            out.append((g, first))
            for x in tail:
                walk(x)
        else:
            walk(rules[g])
    return out


def gbnf_to_lark(text: str, tokenize=None) -> str:
    """GBNF -> llguidance's Lark-like syntax with the same language (see the module docstring)."""
    rules = parse_gbnf(text, tokenize)
    an = _Analysis(rules)
    lexemes = an.lexeme_candidates()
    while True:     # keep a lexeme only if no other lexeme can start with one of its first characters
        lex = _rule_lexemes(rules, lexemes)
        bad = [g for g in lexemes
               if any(owner != g and _meets(first, lexemes[g][2]) for owner, first in lex)]
        if not bad:
            break
        for g in bad[:1]:
            del lexemes[g]
    return _Writer(rules, lexemes).write()
