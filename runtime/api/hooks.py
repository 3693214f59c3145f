"""llama-cpp-python's callback lists: logits processors and stopping criteria."""
from __future__ import annotations

from ggraph.errors import GGraphError


class LogitsProcessorList(list):
    """Callables f(input_ids, scores) -> scores, applied in order to a copy of the raw logits."""

    def __call__(self, input_ids, scores):
        for f in self:
            scores = f(input_ids, scores)
        return scores


class StoppingCriteriaList(list):
    """Callables f(input_ids, logits) -> bool; generation stops when any is true."""

    def __call__(self, input_ids, logits) -> bool:
        return any(f(input_ids, logits) for f in self)


def as_hook(value, kind, name: str):
    """None, one callable or a list of callables -> one callable (or None)."""
    if value is None or isinstance(value, kind):
        return value
    if callable(value):
        return kind([value])
    if isinstance(value, (list, tuple)) and all(callable(f) for f in value):
        return kind(value)
    raise GGraphError(f"{name} must be a callable or a list of callables, got {value!r}")
