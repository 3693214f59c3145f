"""One text completion: prompt in, text pieces out, shaped as OpenAI text_completion dicts.

Stream and non-stream share `CompletionRun.pieces()`, so a stream's chunks always join to the
non-stream text. Token bytes go through an incremental UTF-8 decoder (no character is ever split)
and then through the stop matcher (no part of a stop string is ever released).
"""
from __future__ import annotations

import codecs
import time
import uuid

from ..text import StreamDecoder
from .logprobs import as_openai, first_entry, token_entry
from .stop import StopMatcher


class CompletionRun:
    def __init__(self, llm, prompt_tokens: list[int], prompt_text: str, *, max_tokens: int, stops: list[str],
                 n_logprobs: int | None, echo: bool, sampler, logits_processor=None, stopping_criteria=None):
        self.llm, self.prompt_tokens, self.prompt_text = llm, prompt_tokens, prompt_text
        self.max_tokens, self.stops, self.n_logprobs, self.echo = max_tokens, stops, n_logprobs, echo
        self.sampler, self.logits_processor, self.stopping_criteria = sampler, logits_processor, stopping_criteria
        self.tokens: list[int] = []          # generated tokens (an end-of-generation token is not one)
        self.finish_reason: str | None = None

    def pieces(self):
        """Yield (text, logprob entries) as text becomes safe to show; sets finish_reason at the end."""
        llm, vocab = self.llm, self.llm.model.vocab
        want_lp = self.n_logprobs is not None
        prompt_logits = llm._prepare(self.prompt_tokens, all_logits=want_lp and self.echo)
        if self.echo:
            entries = self._echo_entries(prompt_logits) if want_lp else []
            if self.prompt_text or entries:
                yield self.prompt_text, entries
        base = len(self.prompt_text)          # OpenAI text_offset counts from the start of the prompt
        dec, stop = StreamDecoder(vocab), StopMatcher(self.stops)
        pending: list[tuple] = []             # entries of tokens whose text is not released yet
        decoded = released = 0
        hit = False
        finish = "length"
        gen = llm._sample_loop(self.sampler, self.logits_processor, self.stopping_criteria)
        try:
            while True:
                try:
                    tok, logits = next(gen)
                except StopIteration as end:   # stopping criteria ("stop") or a full context ("length")
                    finish = end.value
                    break
                if vocab.is_eog(tok):
                    finish = "stop"
                    break
                self.tokens.append(tok)
                if want_lp:
                    pending.append(token_entry(vocab, logits, tok, self.n_logprobs, base + decoded))
                text = dec.push(tok)
                decoded += len(text)
                out, hit = stop.push(text)
                released += len(out)
                ready = _take(pending, base + released)
                if out or ready:
                    yield out, ready
                if hit:
                    finish = "stop"
                    break
                if len(self.tokens) >= self.max_tokens:
                    break
        finally:
            gen.close()
        if not hit:     # release bytes of an unfinished character and text held back for a stop string
            out, hit = stop.push(dec.flush())
            if hit:
                finish = "stop"
            else:
                out += stop.flush()
            released += len(out)
            ready = _take(pending, base + released) if hit else pending
            if out or ready:
                yield out, ready
        self.finish_reason = finish

    def _echo_entries(self, logits) -> list[tuple]:
        """Entries of the prompt tokens (a leading BOS is not shown); logits[j] predicts token j+1."""
        vocab, toks = self.llm.model.vocab, self.prompt_tokens
        start = 1 if toks and toks[0] == vocab.bos_id else 0
        dec = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        entries, offset = [], 0
        for j in range(start, len(toks)):
            if j == 0:
                entries.append(first_entry(vocab, toks[0]))
            else:
                entries.append(token_entry(vocab, logits[j - 1], toks[j], self.n_logprobs, offset))
            offset += len(dec.decode(vocab.token_to_piece(toks[j])))
        return entries

    def usage(self) -> dict:
        n_p, n_c = len(self.prompt_tokens), len(self.tokens)
        return {"prompt_tokens": n_p, "completion_tokens": n_c, "total_tokens": n_p + n_c}


def _take(pending: list, limit: int) -> list:
    """Remove and return the entries of tokens whose text starts before `limit`."""
    n = 0
    while n < len(pending) and pending[n][1] < limit:
        n += 1
    out = pending[:n]
    del pending[:n]
    return out


def _head(model_name: str) -> dict:
    return {"id": f"cmpl-{uuid.uuid4()}", "object": "text_completion", "created": int(time.time()),
            "model": model_name}


def response(run: CompletionRun, model_name: str) -> dict:
    texts, entries = [], []
    for text, ready in run.pieces():
        texts.append(text)
        entries += ready
    lp = as_openai(entries) if run.n_logprobs is not None else None
    return {**_head(model_name),
            "choices": [{"text": "".join(texts), "index": 0, "logprobs": lp,
                         "finish_reason": run.finish_reason}],
            "usage": run.usage()}


def stream(run: CompletionRun, model_name: str):
    head = _head(model_name)
    for text, ready in run.pieces():
        lp = as_openai(ready) if run.n_logprobs is not None else None
        yield {**head, "choices": [{"text": text, "index": 0, "logprobs": lp, "finish_reason": None}]}
    yield {**head, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": run.finish_reason}]}
