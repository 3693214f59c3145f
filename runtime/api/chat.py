"""Chat completions on top of text completions, as llama-cpp-python's Jinja2ChatFormatter does:
render the messages with the chat template, tokenize with special tokens and no extra BOS, add
the template's EOS text to the stop strings, then reshape the completion into chat.completion
dicts or chat.completion.chunk streams."""
from __future__ import annotations

from ggraph.errors import GGraphError

from ..text.chat_template import ChatTemplate

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def check_messages(messages) -> list[dict]:
    """OpenAI messages -> dicts a template can render (text parts joined); bad ones raise."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise GGraphError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise GGraphError(f"messages[{i}] must be a dict, got {type(m).__name__}")
        role = m.get("role")
        if role not in ROLES:
            raise GGraphError(f"messages[{i}]: unknown role {role!r} (known: {', '.join(ROLES)})")
        content = m.get("content")
        if isinstance(content, (list, tuple)):
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise GGraphError(f"messages[{i}]: only text content parts are supported, got {part!r}")
                texts.append(part["text"])
            content = "".join(texts)
        elif content is None:
            if role not in ("assistant", "tool", "function"):   # an assistant turn may hold only tool_calls
                raise GGraphError(f"messages[{i}] ({role}) has no content")
        elif not isinstance(content, str):
            raise GGraphError(f"messages[{i}]: content must be a string or a list of text parts, got {content!r}")
        out.append({**m, "content": content})
    return out


def template_for(llm):
    """The template of `llm.chat_format`: None / 'chat_template.default' = the GGUF's
    tokenizer.chat_template (a GGUF without one: llama.cpp's built-in template its vocabulary
    matches, text/builtin_templates.py); 'chat_template.NAME' = tokenizer.chat_template.NAME;
    one of llama.cpp's built-in names ('chatml', 'llama2', 'llama3', 'gemma', 'phi3', 'mistral-v7',
    ...) = that template, formatted as llama_chat_apply_template does. llama-cpp-python's own Python
    formatters ('llama-2', 'alpaca', 'functionary', ...) are not built in: pass chat_handler=."""
    from ..text import builtin_templates as B
    from ..text.chat_template import chat_template_for
    fmt = llm.chat_format
    meta = llm.model.file
    if fmt is None or fmt == "chat_template.default":
        return chat_template_for(llm.model)
    if fmt in B.NAMES:
        return chat_template_for(llm.model, name=fmt)
    if not fmt.startswith("chat_template."):
        raise GGraphError(f"chat_format {fmt!r} is not built into ggraph: use one of llama.cpp's built-in "
                          f"templates ({', '.join(B.NAMES)}), the GGUF's own (chat_format=None), or chat_handler=")
    key = "tokenizer." + fmt
    src = meta.get(key)
    if not src:
        raise GGraphError(f"{llm.model_path} has no {key}: give chat_format= or chat_handler=, "
                          "or use create_completion with your own prompt")
    v = llm.model.vocab
    bos = v.token_text(v.bos_id) if v.bos_id >= 0 else ""
    eos = v.token_text(v.eos_id) if v.eos_id >= 0 else ""
    return ChatTemplate(src, bos, eos)


def chat_prompt(llm, messages, tools=None, tool_choice=None) -> tuple[list[int], list[str]]:
    """(prompt tokens, extra stop strings) for the messages."""
    template = template_for(llm)
    extra = {}
    if tools is not None:           # llama-cpp-python hands tools to the template as they are
        extra["tools"] = tools
    if tool_choice is not None:
        extra["tool_choice"] = tool_choice
    text = template.render(check_messages(messages), add_generation_prompt=True, **extra)
    # a Jinja template writes BOS itself when the model wants one; a built-in one leaves it to the tokenizer
    ids = llm.model.tokenize(text, add_special=not template.adds_bos, parse_special=True)
    return ids, ([template.eos_token] if template.eos_token else [])


def _chat_logprobs(lp):
    if lp is None:
        return None
    return {"content": [{"token": t, "bytes": None, "logprob": l,
                         "top_logprobs": [{"token": k, "logprob": v, "bytes": None} for k, v in (top or {}).items()]}
                        for t, l, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"])],
            "refusal": None}


def to_chat(completion: dict) -> dict:
    c = completion["choices"][0]
    return {"id": "chat" + completion["id"], "object": "chat.completion", "created": completion["created"],
            "model": completion["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c["text"]},
                         "logprobs": _chat_logprobs(c["logprobs"]), "finish_reason": c["finish_reason"]}],
            "usage": completion["usage"]}


def to_chat_chunks(chunks):
    """First chunk: delta {role: assistant}; then {content: ...} deltas; the last has finish_reason."""
    for i, chunk in enumerate(chunks):
        head = {"id": "chat" + chunk["id"], "model": chunk["model"], "created": chunk["created"],
                "object": "chat.completion.chunk"}
        if i == 0:
            yield {**head, "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": None,
                                        "finish_reason": None}]}
        c = chunk["choices"][0]
        done = c["finish_reason"] is not None
        yield {**head, "choices": [{"index": 0, "delta": {} if done else {"content": c["text"]},
                                    "logprobs": _chat_logprobs(c["logprobs"]), "finish_reason": c["finish_reason"]}]}
