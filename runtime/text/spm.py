"""SentencePiece-style BPE by score over one raw-text fragment (llm_tokenizer_spm_session)."""
from __future__ import annotations

import heapq
import logging
import re

from ggraph.errors import GGraphError

log = logging.getLogger("ggraph.text")
_ESCAPED = re.compile("[\udc80-\udcff]")      # raw bytes of tokenize(bytes) that are not valid UTF-8
_LEN_UTF8 = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4)   # unicode_len_utf8, by the high 4 bits


def _byte_symbols(text: str) -> list[str]:
    """llama.cpp's SPM symbols over raw bytes: unicode_len_utf8(first byte) bytes each, whatever
    follows; a symbol that is not valid UTF-8 keeps its bytes as surrogate escapes (never a token)."""
    data = _raw_bytes(text)
    out, i, n = [], 0, len(data)
    while i < n:
        k = min(_LEN_UTF8[data[i] >> 4], n - i)
        chunk = data[i:i + k]
        try:
            out.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(chunk.decode("utf-8", "surrogateescape"))
        i += k
    return out


def _raw_bytes(s: str) -> bytes:
    """The bytes a symbol stands for: surrogate escapes are raw bytes, other surrogates pass."""
    try:
        return s.encode("utf-8", "surrogatepass") if not _ESCAPED.search(s) else s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return b"".join(bytes([ord(c) - 0xDC00]) if "\udc80" <= c <= "\udcff" else c.encode("utf-8", "surrogatepass")
                        for c in s)


class SpmModel:
    def __init__(self, token_to_id: dict[str, int], scores: list[float], unk_id: int):
        self.token_to_id = token_to_id
        self.scores = scores
        self.unk_id = unk_id
        self._byte_ids = [self._byte_token(b) for b in range(256)]

    def _byte_token(self, b: int):
        # <0xXX> first, then the raw single-byte text (byte_to_token); neither -> None: llama.cpp's
        # token_to_id.at() throws there and the process aborts, ggraph raises GGraphError when such a byte
        # has to be tokenized (a vocabulary without byte fallback still loads and tokenizes other text)
        t2i = self.token_to_id
        tid = t2i.get(f"<0x{b:02X}>")
        if tid is None and b < 0x80:
            tid = t2i.get(chr(b))
        return tid

    def tokenize(self, text: str) -> list[int]:
        """`text` already has ' ' escaped to U+2581 and any space prefix added. Surrogate escapes
        (\\udc80-\\udcff) are raw bytes from tokenize(bytes), grouped as llama.cpp groups bytes."""
        if not text:
            return []
        t2i, scores = self.token_to_id, self.scores
        # symbol text, "" once merged into its left neighbour
        sym = _byte_symbols(text) if _ESCAPED.search(text) else list(text)
        n = len(sym)
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[-1] = -1

        def pair(left, right):
            # max score first; ties -> leftmost. size guards against stale pairs
            s = sym[left] + sym[right]
            tid = t2i.get(s)
            return None if tid is None else (-scores[tid], left, right, len(s))

        heap = [p for p in (pair(i, i + 1) for i in range(n - 1)) if p is not None]
        heapq.heapify(heap)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            ls, rs = sym[left], sym[right]
            if not ls or not rs or len(ls) + len(rs) != size:
                continue
            sym[left] = ls + rs
            sym[right] = ""
            nr = nxt[right]
            nxt[left] = nr
            if nr >= 0:
                prev[nr] = left
            for p in (pair(prev[left], left) if prev[left] >= 0 else None,
                      pair(left, nr) if nr >= 0 else None):
                if p is not None:
                    heapq.heappush(heap, p)

        out = []
        i = 0
        while i != -1:
            s = sym[i]
            tid = t2i.get(s)
            if tid is not None:
                out.append(tid)
            else:
                # only single code points can be unknown here (every merge forms a vocab token)
                for b in _raw_bytes(s):
                    bt = self._byte_ids[b]
                    if bt is None:
                        raise GGraphError(f"the SentencePiece vocabulary has no token for byte 0x{b:02X} (no <0x{b:02X}> "
                                          f"byte-fallback token) needed by {s!r:.40}: llama.cpp aborts on this input too")
                    out.append(bt)
            i = nxt[i]
        return out
