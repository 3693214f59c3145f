"""One exception type for every user-facing problem (bad file, bad shape, bad argument)."""


class GGraphError(Exception):
    """A problem with the user's input, reported as one clear line (the CLI prints it without a traceback)."""
