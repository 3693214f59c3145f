"""Stop strings matched on the generated text, across token boundaries.

Text is released only when it can no longer be the start of a stop string, so a stream never
shows part of a stop string, and the stop string itself is never returned.
"""
from __future__ import annotations

from ggraph.errors import GGraphError


def normalize_stop(stop) -> list[str]:
    """`stop` as llama-cpp-python takes it (None, a str or a list of str) -> a list of non-empty str."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise GGraphError(f"stop must be a string or a list of strings, got {stop!r}")
    return [s for s in stop if s]     # an empty stop string would end every completion at once


class StopMatcher:
    """push(text) -> (text that is safe to release, stopped?). flush() releases what is held back."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self._held = ""

    def push(self, text: str) -> tuple[str, bool]:
        buf = self._held + text
        if not self.stops:
            self._held = ""
            return buf, False
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._held = ""
            return buf[:min(hits)], True
        keep = self._partial_len(buf)
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep], False

    def flush(self) -> str:
        out, self._held = self._held, ""
        return out

    def _partial_len(self, buf: str) -> int:
        """Length of the longest end of buf that begins some stop string (held back: the next
        tokens may complete it)."""
        best = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), best, -1):
                if buf.endswith(s[:n]):
                    best = n
                    break
        return best
