"""Request bodies of the server's endpoints (pydantic, strict types) and their validation errors.

Unknown fields are ignored; a wrong type or an out-of-range value is a 400 naming the field.
Defaults are the ones ggraph.Llama (llama-cpp-python) uses for the OpenAI endpoints and
llama-server's for its own /completion; a JSON null means "the default".
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import RequestError

SEED_MAX = 0xFFFFFFFF


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    def given(self, *names: str) -> dict:
        """The fields the client set to something other than null (all fields if no names)."""
        d = self.model_dump(exclude_unset=True)
        return {k: v for k, v in d.items() if v is not None and (not names or k in names)}

    def check(self) -> None:
        """Checks across fields or beyond types (RequestError)."""


# the Llama arguments of the OpenAI endpoints' sampling fields
SAMPLING = ("temperature", "top_p", "top_k", "min_p", "typical_p", "repeat_penalty", "presence_penalty",
            "frequency_penalty", "seed", "logit_bias")


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    """Sampling fields shared by the OpenAI endpoints (llama-cpp-python's server adds top_k, min_p,
    typical_p, repeat_penalty to OpenAI's)."""
    model: str | None = None             # llama-server ignores it: one model is served
    top_p: float | None = Field(0.95, ge=0, le=1)
    top_k: int | None = Field(40, ge=0)
    min_p: float | None = Field(0.05, ge=0, le=1)
    typical_p: float | None = Field(1.0, ge=0, le=1)
    repeat_penalty: float | None = Field(1.0, gt=0)
    presence_penalty: float | None = Field(0.0, ge=-2, le=2)
    frequency_penalty: float | None = Field(0.0, ge=-2, le=2)
    seed: int | None = Field(None, ge=-1, le=SEED_MAX)
    stop: str | list[str] | None = None
    logit_bias: dict[str, float] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = 1
    cache_prompt: bool | None = True     # llama-server's: keep the slot's common prefix in its KV cache

    def check(self) -> None:
        if self.n not in (None, 1):
            raise RequestError(f"n={self.n}: only one choice per request is supported (n=1)", "n")

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_Sampling):
    """POST /v1/completions"""
    prompt: str | list[int] | list[str]
    suffix: str | None = None
    max_tokens: int | None = Field(16, ge=0)
    temperature: float | None = Field(0.8, ge=0)
    logprobs: int | None = Field(None, ge=0)
    echo: bool | None = False

    def check(self) -> None:
        super().check()
        if isinstance(self.prompt, list) and self.prompt and isinstance(self.prompt[0], str):
            if len(self.prompt) != 1:
                raise RequestError("prompt: several prompts in one request are not supported: send one per request",
                                   "prompt")
            self.prompt = self.prompt[0]


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions"""
    messages: list[dict[str, Any]]
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    temperature: float | None = Field(0.2, ge=0)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None

    def check(self) -> None:
        super().check()
        from ggraph.errors import GGraphError

        from ..api.chat import check_messages
        try:
            check_messages(self.messages)
        except GGraphError as e:
            raise RequestError(str(e), "messages") from None
        rf = self.response_format
        if rf is not None:
            if rf.get("type") not in ("text", "json_object", "json_schema"):
                raise RequestError("response_format must be {'type': 'text' | 'json_object' | 'json_schema'}",
                                   "response_format")
            from ..sampling.grammar import response_format_grammar
            try:
                response_format_grammar(rf)         # a schema that does not compile is the request's fault
            except GGraphError as e:
                raise RequestError(str(e), "response_format") from None
        if isinstance(self.tool_choice, dict) or isinstance(self.function_call, dict):
            param = "tool_choice" if isinstance(self.tool_choice, dict) else "function_call"
            raise RequestError(f"{param} naming a function needs grammar-constrained sampling: not supported yet",
                               param)


class LlamaCompletionRequest(_Body):
    """POST /completion (llama-server's fields and defaults)"""
    prompt: str | list[int]
    n_predict: int | None = Field(-1, ge=-1)
    temperature: float | None = 0.8      # <= 0: greedy, as llama.cpp
    top_k: int | None = 40
    top_p: float | None = Field(0.95, ge=0, le=1)
    min_p: float | None = Field(0.05, ge=0, le=1)
    typical_p: float | None = Field(1.0, ge=0, le=1)
    repeat_penalty: float | None = Field(1.0, gt=0)
    presence_penalty: float | None = 0.0
    frequency_penalty: float | None = 0.0
    seed: int | None = Field(-1, ge=-1, le=SEED_MAX)
    stop: list[str] | str | None = None
    stream: bool | None = False
    cache_prompt: bool | None = True


class TokenizeRequest(_Body):
    """POST /tokenize"""
    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False


class DetokenizeRequest(_Body):
    """POST /detokenize"""
    tokens: list[int]


# what a field that takes one of several types expects, for the error message
_EXPECTED = {"prompt": "a string or a list of token ids", "stop": "a string or a list of strings",
             "tool_choice": "a string or an object", "function_call": "a string or an object"}


def _short(v) -> str:
    try:
        s = json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def request_error(errors) -> RequestError:
    """pydantic validation errors -> one RequestError naming the first bad field."""
    errors = list(errors)
    e = errors[0]
    loc = list(e.get("loc", ()))
    if loc[:1] == ["body"]:
        loc = loc[1:]
    if not loc or not isinstance(loc[0], str):
        return RequestError(f"the request body must be a JSON object, got {_short(e.get('input'))}")
    field = loc[0]
    if e.get("type") == "missing" and len(loc) == 1:
        return RequestError(f"missing required parameter: '{field}'", field)
    same = [x for x in errors if [y for y in x.get("loc", ()) if y != "body"][:1] == [field]]
    if len(same) > 1 and field in _EXPECTED:
        value = same[0].get("input")
        return RequestError(f"'{field}' must be {_EXPECTED[field]}, got {_short(value)}", field)
    where = field + "".join(f"[{x}]" if isinstance(x, int) else "" for x in loc[1:])
    return RequestError(f"'{where}': {e.get('msg', 'invalid value')}, got {_short(e.get('input'))}", field)
