"""Chat templates: render the GGUF's `tokenizer.chat_template` with jinja2 (as llama.cpp's --jinja
path and HF transformers do). jinja2's sandbox runs the model's template code safely."""
from __future__ import annotations

import datetime
import json

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ggraph.errors import GGraphError


class _TemplateRaise(Exception):
    pass


def _raise_exception(message):
    raise _TemplateRaise(message)


def _tojson(value, indent=None, ensure_ascii=False, sort_keys=False):
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)


class ChatTemplate:
    def __init__(self, source: str, bos_token: str = "", eos_token: str = ""):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
        try:
            self.template = env.from_string(source)
        except TemplateError as e:
            raise GGraphError(f"the model's chat template does not parse: {e}") from None
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict], add_generation_prompt: bool = True, **extra) -> str:
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise GGraphError(f"chat messages need 'role' and 'content', got {m!r}")
        try:
            return self.template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                        bos_token=self.bos_token, eos_token=self.eos_token, **extra)
        except _TemplateRaise as e:
            raise GGraphError(f"chat template: {e}") from None
        except TemplateError as e:
            raise GGraphError(f"chat template failed: {e}") from None


def chat_template_for(model) -> ChatTemplate:
    src = model.file.get("tokenizer.chat_template")
    if not src:
        raise GGraphError(f"{model.path} has no tokenizer.chat_template")
    v = model.vocab
    bos = v.token_text(v.bos_id) if v.bos_id >= 0 else ""
    eos = v.token_text(v.eos_id) if v.eos_id >= 0 else ""
    return ChatTemplate(src, bos, eos)
