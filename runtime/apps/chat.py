"""`ggraph chat`: multi-turn conversations that keep the KV cache between turns."""
from __future__ import annotations

import time

from ..text import StreamDecoder
from ..text.chat_template import chat_template_for


class ChatSession:
    """A conversation over one context. Each turn renders the whole conversation, reuses the KV
    cache for the longest token prefix already evaluated, and decodes only the rest."""

    def __init__(self, model, ctx, sampler=None, system: str | None = None, template=None,
                 reverse_prompts=None):
        from .reverse_prompt import ReversePrompts
        self.model, self.ctx, self.sampler = model, ctx, sampler
        self.stops = ReversePrompts(reverse_prompts)     # -r: the reply ends once it holds one
        self.last_stats: dict | None = None              # the last turn's token counts and times (-v)
        # the GGUF's Jinja template, or llama.cpp's built-in one (see chat_template_for; .source says which)
        self.template = template if template is not None else chat_template_for(model)
        self.messages: list[dict] = [{"role": "system", "content": system}] if system else []
        self.tokens: list[int] = []          # tokens whose K/V sit in the cache

    def _prompt_ids(self) -> list[int]:
        text = self.template.render(self.messages, add_generation_prompt=True)
        # a Jinja template writes BOS itself when the model wants it; a built-in one leaves it to the tokenizer
        return self.model.tokenize(text, add_special=not self.template.adds_bos, parse_special=True)

    def send(self, user_text: str, n_predict: int = -1):
        """Yield the reply's text pieces as they complete; the reply joins the conversation."""
        self.messages.append({"role": "user", "content": user_text})
        ids = self._prompt_ids()
        keep = 0
        while keep < min(len(ids), len(self.tokens)) and ids[keep] == self.tokens[keep]:
            keep += 1
        if keep == len(ids):        # never feed zero tokens: re-evaluate the last one
            keep -= 1
        keep = self.ctx.truncate(keep)     # 0 when a window-sized SWA cache cannot keep that much
        self.tokens = ids[:keep]
        new = ids[keep:]
        dec = StreamDecoder(self.model.vocab)
        reply: list[int] = []
        self.tokens += new
        self.stops.reset()
        clock, c0 = time.perf_counter, self.ctx.compile_seconds
        t0 = t1 = clock()
        c1 = c0
        for tok in self.ctx.generate(new, n_predict=n_predict, sampler=self.sampler):
            if not reply:
                t1, c1 = clock(), self.ctx.compile_seconds
            reply.append(tok)
            self.tokens.append(tok)
            piece = dec.push(tok)
            if piece:
                yield piece
            if self.stops.hit(piece):
                break
        tail = dec.flush()
        if tail:
            yield tail
        t2, c2 = clock(), self.ctx.compile_seconds
        self.last_stats = {"n_prompt": len(new), "prompt_ms": (t1 - t0 - (c1 - c0)) * 1000,
                           "n_eval": max(len(reply) - 1, 0), "eval_ms": (t2 - t1 - (c2 - c1)) * 1000,
                           "compile_ms": (c2 - c0) * 1000}
        # the last sampled token was not decoded (generation stopped): it is not in the cache
        if reply and self.ctx.n_past < len(self.tokens):
            self.tokens = self.tokens[: self.ctx.n_past]
        self.messages.append({"role": "assistant", "content": self.model.detokenize(reply)})


def add_template_args(p) -> None:
    """--chat-template / --chat-template-file (llama.cpp's flags) for `ggraph chat` and `ggraph run`."""
    from ..text.builtin_templates import NAMES
    g = p.add_mutually_exclusive_group()
    g.add_argument("--chat-template", metavar="NAME", default=None,
                   help="chat template: one of llama.cpp's built-in names, or a Jinja template text "
                        f"(default: the GGUF's tokenizer.chat_template, else the built-in one its vocabulary "
                        f"matches); built-in: {', '.join(NAMES)}")
    g.add_argument("--chat-template-file", metavar="FILE", default=None,
                   help="read a Jinja chat template from a file (overrides the GGUF's)")


def template_from_args(model, args, announce: bool = True):
    """The template the flags ask for (else the model's); says on stderr which one, once."""
    import sys
    t = chat_template_for(model, name=getattr(args, "chat_template", None),
                          path=getattr(args, "chat_template_file", None))
    if announce:
        note = ""
        if "has no tokenizer.chat_template" in t.source:
            note = " (a GGUF without a chat template is often a base model, not an instruction-tuned one)"
        print(f"ggraph: chat template: {t.source}{note}", file=sys.stderr)
    return t


def single_turn_prompt(template, prompt) -> tuple[str, bool]:
    """`ggraph run --chat-template ...`: the prompt as one user message and the assistant's turn
    opened; (text, add_special for the tokenizer)."""
    if isinstance(prompt, bytes):
        prompt = prompt.decode("utf-8", errors="replace")
    text = template.render([{"role": "user", "content": prompt}], add_generation_prompt=True)
    return text, not template.adds_bos
