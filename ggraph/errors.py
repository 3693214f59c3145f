"""One exception type for every user-facing problem (bad file, bad shape, bad argument)."""

_MAX_CHARS = 2000


def one_line(msg: str) -> str:
    """The message as one printable line: control characters (a newline in a key read from a corrupt
    file, say) become escapes, and a message longer than 2000 characters is cut."""
    if not msg.isprintable():
        msg = "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)
    return msg if len(msg) <= _MAX_CHARS else msg[:_MAX_CHARS - 3] + "..."


class GGraphError(Exception):
    """A problem with the user's input, reported as one clear line (the CLI prints it without a traceback)."""

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (one_line(args[0]),)
        super().__init__(*args)
