"""SentencePiece-style BPE by score over one raw-text fragment (llm_tokenizer_spm_session)."""
from __future__ import annotations

import heapq


class SpmModel:
    def __init__(self, token_to_id: dict[str, int], scores: list[float], unk_id: int):
        self.token_to_id = token_to_id
        self.scores = scores
        self.unk_id = unk_id
        self._byte_ids = [self._byte_token(b) for b in range(256)]

    def _byte_token(self, b: int):
        # <0xXX> first, then the raw single-byte text (byte_to_token); neither -> unk (llama.cpp throws)
        t2i = self.token_to_id
        tid = t2i.get(f"<0x{b:02X}>")
        if tid is None and b < 0x80:
            tid = t2i.get(chr(b))
        if tid is None and self.unk_id >= 0:
            tid = self.unk_id
        return tid

    def tokenize(self, text: str) -> list[int]:
        """`text` already has ' ' escaped to U+2581 and any space prefix added."""
        n = len(text)
        if n == 0:
            return []
        t2i, scores = self.token_to_id, self.scores
        sym = list(text)             # symbol text, "" once merged into its left neighbour
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
                for b in s.encode("utf-8", "surrogatepass"):
                    bt = self._byte_ids[b]
                    if bt is not None:
                        out.append(bt)
            i = nxt[i]
        return out
