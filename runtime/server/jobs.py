"""What one request runs on a slot: task(llm, slot_id) generators for Engine.submit.

Every task drives the slot's ggraph.Llama through its stream (create_completion(stream=True)),
one step per next(), so non-stream requests interleave with streams too: a non-stream task yields
None at each step and the whole response at the end; a stream task yields each chunk. A
StoppingCriteria that never stops records the prompt and the sampled tokens, for `usage` and
llama-server's token counts. GGraphErrors become RequestErrors naming the request field.

    openai_completion  /v1/completions        text_completion dicts / chunks (ggraph.Llama's)
    openai_chat        /v1/chat/completions   chat.completion dicts / chunks (as create_chat_completion)
    llama_completion   /completion            llama-server's {content, stop, tokens_predicted, ...}
"""
from __future__ import annotations

import time

from ggraph.errors import GGraphError

from ..api import chat
from ..api.stop import normalize_stop
from .errors import from_engine


class TokenLog:
    """StoppingCriteria that never stops: the prompt tokens and every sampled token, with times."""

    def __init__(self, llm):
        self.vocab = llm.model.vocab
        self.prompt: list[int] | None = None
        self.sampled: list[int] = []
        self.t_start = time.perf_counter()
        self.t_first = self.t_last = None

    def __call__(self, input_ids, logits) -> bool:
        now = time.perf_counter()
        if self.prompt is None:           # input_ids = the evaluated tokens + the one just sampled
            self.prompt, self.t_first = [int(t) for t in input_ids[:-1]], now
        self.sampled.append(int(input_ids[-1]))
        self.t_last = now
        return False

    @property
    def eog(self) -> bool:
        return bool(self.sampled) and self.vocab.is_eog(self.sampled[-1])

    @property
    def generated(self) -> list[int]:
        """The completion's tokens (an end-of-generation token is sampled but not part of it)."""
        return self.sampled[:-1] if self.eog else self.sampled

    def usage(self) -> dict:
        n_p, n_c = len(self.prompt or ()), len(self.generated)
        return {"prompt_tokens": n_p, "completion_tokens": n_c, "total_tokens": n_p + n_c}


def _guarded(gen, fields, prompt_field: str):
    try:
        yield from gen
    except GGraphError as e:
        raise from_engine(e, fields, prompt_field) from None


def _merge_completion(chunks: list[dict], want_logprobs: bool, usage: dict) -> dict:
    """Stream chunks -> the text_completion dict create_completion(stream=False) returns."""
    head = chunks[0]
    lp = {"tokens": [], "text_offset": [], "token_logprobs": [], "top_logprobs": []} if want_logprobs else None
    for c in chunks:
        part = c["choices"][0]["logprobs"]
        if lp is not None and part is not None:
            for k in lp:
                lp[k] += part[k]
    return {"id": head["id"], "object": "text_completion", "created": head["created"], "model": head["model"],
            "choices": [{"text": "".join(c["choices"][0]["text"] for c in chunks), "index": 0, "logprobs": lp,
                         "finish_reason": chunks[-1]["choices"][0]["finish_reason"]}],
            "usage": usage}


def _usage_chunk(last: dict, usage: dict) -> dict:
    """stream_options.include_usage: OpenAI's extra last chunk, with no choices."""
    return {"id": last["id"], "object": last["object"], "created": last["created"], "model": last["model"],
            "choices": [], "usage": usage}


def _run(chunks, log: TokenLog, *, stream: bool, include_usage: bool, want_logprobs: bool, to_chat: bool):
    if stream:
        last = None
        for chunk in (chat.to_chat_chunks(chunks) if to_chat else chunks):
            last = chunk
            yield chunk
        if include_usage and last is not None:
            yield _usage_chunk(last, log.usage())
        return
    got = []
    for chunk in chunks:
        got.append(chunk)
        yield None
    out = _merge_completion(got, want_logprobs, log.usage())
    yield chat.to_chat(out) if to_chat else out


def openai_completion(req, model_name: str):
    """A task for a checked CompletionRequest."""
    from .schemas import SAMPLING
    args = req.given(*SAMPLING, "max_tokens", "logprobs", "echo", "suffix", "stop")
    if req.max_tokens is None and "max_tokens" in req.model_fields_set:
        args["max_tokens"] = None            # null: until the end of generation or a full context
    stream = bool(req.stream)
    fields = set(type(req).model_fields)

    def task(llm, slot_id):
        def steps():
            if req.cache_prompt is False:
                llm.reset()
            log = TokenLog(llm)
            chunks = llm.create_completion(req.prompt, stream=True, stopping_criteria=log, model=model_name, **args)
            yield from _run(chunks, log, stream=stream, include_usage=req.include_usage,
                            want_logprobs=args.get("logprobs") is not None, to_chat=False)
        return _guarded(steps(), fields, "prompt")
    return task


def openai_chat(req, model_name: str):
    """A task for a checked ChatCompletionRequest: Llama.create_chat_completion's steps (template,
    its EOS text as a stop string, text completion, chat shapes) with a token log for usage."""
    from .schemas import SAMPLING
    args = {"temperature": 0.2, "max_tokens": None, **req.given(*SAMPLING)}   # create_chat_completion's defaults
    if req.max_completion_tokens is not None:
        args["max_tokens"] = req.max_completion_tokens
    if req.max_tokens is not None:
        args["max_tokens"] = req.max_tokens
    if req.logprobs:
        args["logprobs"] = req.top_logprobs or 0
    tools, tool_choice = req.tools, req.tool_choice
    if req.functions is not None:              # legacy functions -> tools, as llama-cpp-python converts them
        tools = [{"type": "function", "function": f} for f in req.functions]
    if req.function_call is not None:
        tool_choice = req.function_call
    stops = normalize_stop(req.stop)
    stream = bool(req.stream)
    fields = set(type(req).model_fields)
    from ..sampling.grammar import response_format_grammar
    grammar = response_format_grammar(req.response_format)     # json_object / json_schema -> a JSON grammar
    if grammar is not None:
        args["grammar"] = grammar

    def task(llm, slot_id):
        def steps():
            if req.cache_prompt is False:
                llm.reset()
            log = TokenLog(llm)
            ids, template_stops = chat.chat_prompt(llm, req.messages, tools, tool_choice)
            chunks = llm.create_completion(ids, stop=stops + template_stops, stream=True, stopping_criteria=log,
                                           model=model_name, **args)
            yield from _run(chunks, log, stream=stream, include_usage=req.include_usage,
                            want_logprobs="logprobs" in args, to_chat=True)
        return _guarded(steps(), fields, "messages")
    return task


def llama_completion(req, model_name: str):
    """A task for llama-server's /completion."""
    stops = normalize_stop(req.stop)
    n_predict = -1 if req.n_predict is None else req.n_predict
    temp = 0.8 if req.temperature is None else max(float(req.temperature), 0.0)   # <= 0: greedy
    d = type(req).model_fields
    val = {k: (getattr(req, k) if getattr(req, k) is not None else d[k].default)
           for k in ("top_k", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty",
                     "frequency_penalty", "seed")}
    stream = bool(req.stream)
    fields = set(d) | {"temperature"}

    def task(llm, slot_id):
        def steps():
            if req.cache_prompt is False:
                llm.reset()
            before = llm.input_ids.tolist()
            log = TokenLog(llm)
            settings = {"n_ctx": llm.n_ctx(), "n_predict": n_predict, "temperature": temp, **val,
                        "stop": stops, "stream": stream, "cache_prompt": req.cache_prompt is not False}
            if n_predict == 0:                 # evaluate nothing: llama-server answers with no tokens
                log.prompt = (llm.tokenize(req.prompt.encode(), add_bos=True, special=True)
                              if isinstance(req.prompt, str) else list(req.prompt))
                yield _llama_final(llm, log, req, "", [], "limit", slot_id, model_name, settings, before)
                return
            chunks = llm.create_completion(req.prompt, max_tokens=None if n_predict < 0 else n_predict,
                                           temperature=temp, stop=stops, stream=True, stopping_criteria=log,
                                           model=model_name, **val)
            texts, finish = [], None
            for chunk in chunks:
                c = chunk["choices"][0]
                if c["finish_reason"] is not None:
                    finish = c["finish_reason"]
                    break
                texts.append(c["text"])
                if stream:
                    yield {"index": 0, "content": c["text"], "tokens": [], "stop": False, "id_slot": slot_id,
                           "tokens_predicted": len(log.generated), "tokens_evaluated": len(log.prompt or ())}
                else:
                    yield None
            content = "".join(texts)
            kind = "eos" if log.eog else ("limit" if finish == "length" else "word")
            yield _llama_final(llm, log, req, "" if stream else content, stops if kind == "word" else [],
                               kind, slot_id, model_name, settings, before, content)
        return _guarded(steps(), fields, "prompt")
    return task


def _stopping_word(llm, log: TokenLog, content: str, stops: list[str]) -> str:
    """Which stop string ended the text: the one at the end of the released content."""
    full = llm.detokenize(log.generated).decode("utf-8", errors="replace")
    return next((s for s in stops if full.startswith(s, len(content))), next(iter(stops), ""))


def _llama_final(llm, log, req, content, stops, kind, slot_id, model_name, settings, before, full=None):
    prompt = log.prompt or []
    n_cached = 0
    for a, b in zip(before, prompt):
        if a != b:
            break
        n_cached += 1
    n_cached = min(n_cached, max(len(prompt) - 1, 0))     # the last prompt token is always evaluated again
    n_gen = len(log.generated)
    t_end = time.perf_counter()
    t_first = log.t_first or t_end
    prompt_ms, pred_ms = (t_first - log.t_start) * 1000, (t_end - t_first) * 1000
    n_eval = len(prompt) - n_cached
    word = _stopping_word(llm, log, content if full is None else full, stops) if kind == "word" else ""
    text = req.prompt if isinstance(req.prompt, str) else llm.detokenize(prompt).decode("utf-8", "replace")
    return {"index": 0, "content": content, "tokens": [], "id_slot": slot_id, "stop": True, "model": model_name,
            "tokens_predicted": n_gen, "tokens_evaluated": len(prompt), "tokens_cached": len(prompt) + n_gen,
            "generation_settings": settings, "prompt": text, "has_new_line": "\n" in (content if full is None else full),
            "truncated": False, "stop_type": kind, "stopping_word": word, "stopped_eos": kind == "eos",
            "stopped_limit": kind == "limit", "stopped_word": kind == "word",
            "timings": {"prompt_n": n_eval, "prompt_ms": prompt_ms,
                        "prompt_per_token_ms": prompt_ms / n_eval if n_eval else 0.0,
                        "prompt_per_second": 1000 * n_eval / prompt_ms if prompt_ms > 0 else 0.0,
                        "predicted_n": n_gen, "predicted_ms": pred_ms,
                        "predicted_per_token_ms": pred_ms / n_gen if n_gen else 0.0,
                        "predicted_per_second": 1000 * n_gen / pred_ms if pred_ms > 0 else 0.0}}
