"""-r / --reverse-prompt (llama.cpp's antiprompt): stop once the generated text contains one of the
strings, matched across token boundaries. The text is printed as it is, stop string included."""
from __future__ import annotations


class ReversePrompts:
    def __init__(self, texts):
        self.texts = [t for t in (texts or []) if t]
        self._tail = ""
        self._keep = 2 * max((len(t) for t in self.texts), default=0)

    def hit(self, piece: str) -> bool:
        """Feed the next printed piece; True once the output holds a reverse prompt."""
        if not self.texts:
            return False
        self._tail = (self._tail + piece)[-self._keep:]
        return any(t in self._tail for t in self.texts)

    def reset(self) -> None:
        self._tail = ""


def add_argument(p) -> None:
    p.add_argument("-r", "--reverse-prompt", action="append", default=[], metavar="TEXT",
                   help="stop once the output contains TEXT (printed, as llama.cpp prints it); may be repeated")

