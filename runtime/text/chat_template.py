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
    adds_bos = True     # the template writes BOS itself: tokenize its text with add_special=False
    source = "a Jinja template"

    def __init__(self, source: str, bos_token: str = "", eos_token: str = ""):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
        if not isinstance(source, str):
            raise GGraphError(f"tokenizer.chat_template must be a string, got {type(source).__name__}")
        try:
            self.template = env.from_string(source)
        except (TemplateError, RecursionError, ValueError) as e:
            raise GGraphError(f"the model's chat template does not parse: {e}") from None
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict], add_generation_prompt: bool = True, **extra) -> str:
        if not isinstance(messages, (list, tuple)):
            raise GGraphError(f"chat messages must be a list of dicts, got {type(messages).__name__}")
        if not isinstance(add_generation_prompt, bool):
            raise GGraphError(f"add_generation_prompt must be True or False, got {add_generation_prompt!r}")
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
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError, OverflowError,
                RecursionError) as e:     # the template is code from the GGUF: its failures are the file's
            raise GGraphError(f"chat template failed: {type(e).__name__}: {e}") from None


def _special_texts(model) -> tuple[str, str]:
    v = model.vocab
    return (v.token_text(v.bos_id) if v.bos_id >= 0 else "", v.token_text(v.eos_id) if v.eos_id >= 0 else "")


def chat_template_for(model, name: str | None = None, path: str | None = None):
    """The chat template `ggraph chat` / `run` use, with `.source` saying where it came from:
    path: a Jinja file (--chat-template-file); name: one of llama.cpp's built-in names or a Jinja
    template text (--chat-template); else the GGUF's tokenizer.chat_template; else the built-in
    template detected from the vocabulary (text/builtin_templates.py: llama.cpp's formatting)."""
    from . import builtin_templates as B
    bos, eos = _special_texts(model)
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                src = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise GGraphError(f"cannot read the chat template file: {e}") from None
        t = ChatTemplate(src, bos, eos)
        t.source = f"the Jinja template of {path}"
        return t
    if name is not None:
        if name in B.NAMES:
            t = B.BuiltinTemplate(name, bos, eos)
            t.source = f"llama.cpp's built-in '{name}' template (--chat-template)"
            return t
        if "{{" in name or "{%" in name:
            t = ChatTemplate(name, bos, eos)
            t.source = "the Jinja template given with --chat-template"
            return t
        raise GGraphError(f"--chat-template {name!r}: not a built-in template (known: {', '.join(B.NAMES)}) "
                          "nor a Jinja template; use --chat-template-file for a file")
    src = model.file.get("tokenizer.chat_template")
    if src:
        t = ChatTemplate(src, bos, eos)
        t.source = "the GGUF's tokenizer.chat_template"
        return t
    picked, why = B.detect_from_vocab(model.vocab, model.file.get("tokenizer.ggml.pre"))
    t = B.BuiltinTemplate(picked, bos, eos)
    t.source = (f"llama.cpp's built-in '{picked}' template ({model.path} has no tokenizer.chat_template; "
                f"{why})")
    return t
