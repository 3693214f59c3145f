"""Chat: render the GGUF's `tokenizer.chat_template` with jinja2 (as llama.cpp's --jinja path and
HF transformers do) and run multi-turn conversations that keep the KV cache between turns."""
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


class ChatSession:
    """A conversation over one context. Each turn renders the whole conversation, reuses the KV
    cache for the longest token prefix already evaluated, and decodes only the rest."""

    def __init__(self, model, ctx, sampler=None, system: str | None = None):
        self.model, self.ctx, self.sampler = model, ctx, sampler
        self.template = chat_template_for(model)
        self.messages: list[dict] = [{"role": "system", "content": system}] if system else []
        self.tokens: list[int] = []          # tokens whose K/V sit in the cache

    def _prompt_ids(self) -> list[int]:
        text = self.template.render(self.messages, add_generation_prompt=True)
        # the template writes BOS itself when the model wants it: do not add another
        return self.model.tokenize(text, add_special=False, parse_special=True)

    def send(self, user_text: str, n_predict: int = -1):
        """Yield the reply's text pieces as they complete; the reply joins the conversation."""
        from .tokenizer import StreamDecoder
        self.messages.append({"role": "user", "content": user_text})
        ids = self._prompt_ids()
        keep = 0
        while keep < min(len(ids), len(self.tokens)) and ids[keep] == self.tokens[keep]:
            keep += 1
        if keep == len(ids):        # never feed zero tokens: re-evaluate the last one
            keep -= 1
        self.ctx.truncate(keep)
        self.tokens = ids[:keep]
        new = ids[keep:]
        dec = StreamDecoder(self.model.vocab)
        reply: list[int] = []
        self.tokens += new
        for tok in self.ctx.generate(new, n_predict=n_predict, sampler=self.sampler):
            reply.append(tok)
            self.tokens.append(tok)
            piece = dec.push(tok)
            if piece:
                yield piece
        tail = dec.flush()
        if tail:
            yield tail
        # the last sampled token was not decoded (generation stopped): it is not in the cache
        if reply and self.ctx.n_past < len(self.tokens):
            self.tokens = self.tokens[: self.ctx.n_past]
        self.messages.append({"role": "assistant", "content": self.model.detokenize(reply)})
