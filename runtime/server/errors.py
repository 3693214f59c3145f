"""OpenAI-style error bodies: {"error": {"message", "type", "param", "code"}}.

A bad request is a RequestError (HTTP 400 unless told otherwise) naming the field at fault; a
ggraph.GGraphError raised by the engine for a request becomes one too, its field guessed from the
start of its one-line message ("temperature must be ...", "messages[0]: ...", "the prompt has ...").
"""
from __future__ import annotations

import re

from ggraph.errors import GGraphError

# SamplerParams' names for llama-cpp-python's arguments
_ALIASES = {"temp": "temperature", "repeat_last_n": "last_n_tokens_size"}
_LEAD = re.compile(r"^(?:invalid sampling parameter )?([A-Za-z_]+)")


class RequestError(GGraphError):
    def __init__(self, message: str, param: str | None = None, *, code: str | None = None, status: int = 400,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.type = message, param, code, status, type

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def from_engine(e: GGraphError, fields, prompt_field: str = "prompt") -> RequestError:
    """A GGraphError raised for a request -> RequestError naming the request field it is about
    (fields: the names the request has; prompt_field: where a too-long prompt came from)."""
    if isinstance(e, RequestError):
        return e
    msg = str(e)
    if msg.startswith("the prompt "):
        code = "context_length_exceeded" if "context holds" in msg else None
        return RequestError(msg, prompt_field, code=code)
    m = _LEAD.match(msg)
    name = _ALIASES.get(m.group(1), m.group(1)) if m else None
    return RequestError(msg, name if name in fields else None)


def server_error(message: str) -> dict:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
