"""`ggraph chat`: multi-turn conversations that keep the KV cache between turns."""
from __future__ import annotations

from ..text import StreamDecoder
from ..text.chat_template import chat_template_for


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
