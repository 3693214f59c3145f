"""Byte-level BPE over one raw-text fragment (llm_tokenizer_bpe_session in llama.cpp)."""
from __future__ import annotations

import heapq
import logging

from .pretokenize import PreType, Splitter, bytes_to_unicode

_WORD_CACHE_MAX = 1 << 16
log = logging.getLogger("ggraph.text")


class BpeModel:
    def __init__(self, token_to_id: dict[str, int], merges: list[str], pre: PreType):
        self.token_to_id = token_to_id
        self.pre = pre
        self.splitter = Splitter(pre.family)
        self.byte_encode = not pre.escape_whitespaces
        self._byte_chars = bytes_to_unicode()
        # rank = index in merges; the first occurrence wins (std::unordered_map::emplace)
        self.ranks: dict[tuple[str, str], int] = {}
        for i, m in enumerate(merges):
            p = m.find(" ", 1)
            pair = (m[:p], m[p + 1:]) if p >= 0 else ("", "")
            self.ranks.setdefault(pair, i)
        self._cache: dict[str, list[int]] = {}

    def tokenize(self, text: str) -> list[int]:
        out: list[int] = []
        for word in self.splitter.split(text):
            if self.byte_encode:
                word = "".join(self._byte_chars[b] for b in word.encode("utf-8", "surrogatepass"))
            ids = self._cache.get(word)
            if ids is None:
                ids = self._word_ids(word)
                if len(self._cache) >= _WORD_CACHE_MAX:
                    self._cache.clear()
                self._cache[word] = ids
            out.extend(ids)
        return out

    def _word_ids(self, word: str) -> list[int]:
        t2i = self.token_to_id
        whole = t2i.get(word)
        if whole is not None and (self.pre.ignore_merges or (self.pre.gemma4 and word.strip("\n") == "")):
            return [whole]
        ids = []
        for sym in self._merge(word):
            tid = t2i.get(sym)
            if tid is not None:
                ids.append(tid)
                continue
            # symbol not in vocab: fall back to one token per byte (missing ones are dropped)
            dropped = False
            for b in sym.encode("utf-8", "surrogatepass"):
                key = chr(b) if self.byte_encode else f"<0x{b:02X}>"
                if self.byte_encode and b >= 0x80:
                    dropped = True
                    continue  # a lone byte >= 0x80 is never valid UTF-8 token text
                tid = t2i.get(key)
                if tid is not None:
                    ids.append(tid)
                else:
                    dropped = True
            if dropped and log.isEnabledFor(logging.DEBUG):
                self._log_dropped(sym)
        return ids

    def _log_dropped(self, sym: str) -> None:
        if self.byte_encode:
            unbyte = {c: b for b, c in self._byte_chars.items()}
            raw = bytes(unbyte.get(c, 0x3F) for c in sym)
        else:
            raw = sym.encode("utf-8", "surrogatepass")
        log.debug("no token for bytes %s (symbol %r): dropped, as llama.cpp does", raw.hex(" "), sym)

    def _merge(self, word: str) -> list[str]:
        """Lowest-rank adjacent pair first (ties: leftmost), until no ranked pair remains."""
        n = len(word)
        if n <= 1:
            return [word] if n else []
        ranks = self.ranks
        text = list(word)            # symbol text, "" once merged away
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        heap = []
        for i in range(n - 1):
            r = ranks.get((text[i], text[i + 1]))
            if r is not None:
                heap.append((r, i, i + 1, text[i] + text[i + 1]))
        heapq.heapify(heap)
        while heap:
            r, left, right, merged = heapq.heappop(heap)
            lt, rt = text[left], text[right]
            if not lt or not rt or lt + rt != merged:
                continue  # stale pair
            text[left] = merged
            text[right] = ""
            nr = nxt[right]
            nxt[left] = nr
            if nr >= 0:
                prev[nr] = left
            pl = prev[left]
            if pl >= 0:
                r2 = ranks.get((text[pl], merged))
                if r2 is not None:
                    heapq.heappush(heap, (r2, pl, left, text[pl] + merged))
            if nr >= 0:
                r2 = ranks.get((merged, text[nr]))
                if r2 is not None:
                    heapq.heappush(heap, (r2, left, nr, merged + text[nr]))
        return [t for t in text if t]
