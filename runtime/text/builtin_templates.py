"""llama.cpp's built-in chat templates (src/llama-chat.cpp), ported string for string.

    detect(tmpl)            llm_chat_detect_template: a built-in name, or the name a Jinja
                            template's text looks like (its heuristics), or None
    apply(name, msgs, add_ass)  llm_chat_apply_template: the prompt text (no BOS: the tokenizer adds it)
    detect_from_vocab(vocab)    ggraph: a name for a GGUF without tokenizer.chat_template, from the
                            special tokens of its vocabulary (llama.cpp itself falls back to chatml)
    BuiltinTemplate(name)   the ChatTemplate interface (render) over apply()

Messages are {"role", "content"} dicts; `trim` is llama-chat.cpp's (ASCII isspace only).
tests/test_chat_templates.py checks every name against llama.cpp's own output
(scripts/make_chat_template_fixtures.py: llama_chat_apply_template through llama-cpp-python).
"""
from __future__ import annotations

from ggraph.errors import GGraphError

# LLM_CHAT_TEMPLATES, in llama-chat.cpp's order
NAMES = ("chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "mistral-v1", "mistral-v3",
         "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "phi3", "phi4", "falcon3", "zephyr", "monarch",
         "gemma", "orion", "openchat", "vicuna", "vicuna-orca", "deepseek", "deepseek2", "deepseek3",
         "deepseek-ocr", "command-r", "llama3", "chatglm3", "chatglm4", "glmedge", "minicpm", "exaone3", "exaone4",
         "exaone-moe", "rwkv-world", "granite", "granite-4.0", "granite-4.1", "gigachat", "megrez", "yandex",
         "bailing", "bailing-think", "bailing2", "llama4", "smolvlm", "hunyuan-moe", "gpt-oss", "hunyuan-dense",
         "hunyuan-vl", "kimi-k2", "seed_oss", "grok-2", "pangu-embedded", "solar-open")
_DOTS1 = "dots1"          # detected by llama.cpp but not reachable by name

# the text that ends a turn, as a stop string for the completion APIs (the model's EOG tokens stop too)
END_OF_TURN = {"chatml": "<|im_end|>", "phi3": "<|end|>", "phi4": "<|im_end|>", "zephyr": "<|endoftext|>",
               "gemma": "<end_of_turn>", "llama3": "<|eot_id|>", "command-r": "<|END_OF_TURN_TOKEN|>",
               "deepseek": "<|EOT|>", "deepseek2": "<｜end▁of▁sentence｜>", "deepseek3": "<｜end▁of▁sentence｜>",
               "openchat": "<|end_of_turn|>", "granite": "<|end_of_text|>", "granite-4.0": "<|end_of_text|>",
               "granite-4.1": "<|end_of_text|>", "llama4": "<|eot|>", "megrez": "<|turn_end|>",
               "exaone3": "[|endofturn|]", "exaone4": "[|endofturn|]", "exaone-moe": "<|endofturn|>",
               "kimi-k2": "<|im_end|>", "seed_oss": "<seed:eos>", "smolvlm": "<end_of_utterance>",
               "gpt-oss": "<|return|>", "solar-open": "<|end|>", "grok-2": "<|separator|>"}

_WS = " \t\n\v\f\r"


def trim(s: str) -> str:
    return s.strip(_WS)


def detect(tmpl: str) -> str | None:
    """llm_chat_detect_template: the built-in name `tmpl` is, or the one its text looks like; None: unknown."""
    if tmpl in NAMES:
        return tmpl
    c = tmpl.__contains__
    if c("<|im_start|>"):
        return "phi4" if c("<|im_sep|>") else "smolvlm" if c("<end_of_utterance>") else "chatml"
    if tmpl.startswith("mistral") or c("[INST]"):
        if c("[SYSTEM_PROMPT]"):
            return "mistral-v7"
        if c("' [INST] ' + system_message") or c("[AVAILABLE_TOOLS]"):
            if c(" [INST]"):
                return "mistral-v1"
            if c('"[INST]"'):
                return "mistral-v3-tekken"
            return "mistral-v3"
        if c("content.strip()"):
            return "llama2-sys-strip"
        if c("bos_token + '[INST]"):
            return "llama2-sys-bos"
        if c("<<SYS>>"):
            return "llama2-sys"
        return "llama2"
    if c("<|assistant|>") and c("<|end|>"):
        return "phi3"
    if c("[gMASK]<sop>"):
        return "chatglm4"
    if c("<|assistant|>") and c("<|user|>"):
        if c("<|tool_declare|>"):
            return "exaone-moe"
        return "falcon3" if c("</s>") else "glmedge"
    if c("<|{{ item['role'] }}|>") and c("<|begin_of_image|>"):
        return "glmedge"
    if c("<|user|>") and c("<|endoftext|>"):
        return "zephyr"
    if c("bos_token + message['role']"):
        return "monarch"
    if c("<start_of_turn>"):
        return "gemma"
    if c("'\\n\\nAssistant: ' + eos_token"):
        return "orion"
    if c("GPT4 Correct "):
        return "openchat"
    if c("USER: ") and c("ASSISTANT: "):
        return "vicuna-orca" if c("SYSTEM: ") else "vicuna"
    if c("### Instruction:") and c("<|EOT|>"):
        return "deepseek"
    if c("<|START_OF_TURN_TOKEN|>") and c("<|USER_TOKEN|>"):
        return "command-r"
    if c("<|start_header_id|>") and c("<|end_header_id|>"):
        return "llama3"
    if c("[gMASK]sop"):
        return "chatglm3"
    if c("<用户>"):
        return "minicpm"
    if c("'Assistant: ' + message['content'] + eos_token"):
        return "deepseek2"
    if c("<｜Assistant｜>") and c("<｜User｜>") and c("<｜end▁of▁sentence｜>"):
        return "deepseek3"
    if c("[|system|]") and c("[|assistant|]") and c("[|endofturn|]"):
        return "exaone4" if c("[|tool|]") else "exaone3"
    if c("rwkv-world") or c("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"):
        return "rwkv-world"
    if c("<|start_of_role|>"):
        if c("<tool_call>") or c("<tools>"):
            return "granite-4.0" if c("g4_default_system_message") else "granite-4.1"
        return "granite"
    if c("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"):
        return "gigachat"
    if c("<|role_start|>"):
        return "megrez"
    if c(" Ассистент:"):
        return "yandex"
    if c("<role>ASSISTANT</role>") and c("'HUMAN'"):
        return "bailing"
    if c("<role>ASSISTANT</role>") and c('"HUMAN"') and c("<think>"):
        return "bailing-think"
    if c("<role>ASSISTANT</role>") and c("<role>HUMAN</role>") and c("<|role_end|>"):
        return "bailing2"
    if c("<|header_start|>") and c("<|header_end|>"):
        return "llama4"
    if c("<|endofuserprompt|>"):
        return _DOTS1
    if c("<|extra_0|>") and c("<|extra_4|>"):
        return "hunyuan-moe"
    if c("<|start|>") and c("<|channel|>"):
        return "gpt-oss"
    if c("<｜hy_Assistant｜>") and c("<｜hy_begin▁of▁sentence｜>"):
        return "hunyuan-vl"
    if c("<｜hy_Assistant｜>") and c("<｜hy_place▁holder▁no▁3｜>"):
        return "hunyuan-dense"
    if c("<|im_assistant|>assistant<|im_middle|>"):
        return "kimi-k2"
    if c("<seed:bos>"):
        return "seed_oss"
    if c("'Assistant: '  + message['content'] + '<|separator|>"):
        return "grok-2"
    if c("[unused9]系统：[unused10]"):
        return "pangu-embedded"
    if c("<|begin|>") and c("<|end|>") and c("<|content|>"):
        return "solar-open"
    return None


def apply(name: str, messages: list[dict], add_ass: bool = True) -> str:
    """llm_chat_apply_template for the built-in `name`."""
    chat = [(str(m.get("role", "")), "" if m.get("content") is None else str(m["content"])) for m in messages]
    out: list[str] = []
    w = out.append
    t = name
    if t == "chatml":
        for role, content in chat:
            w(f"<|im_start|>{role}\n{content}<|im_end|>\n")
        if add_ass:
            w("<|im_start|>assistant\n")
    elif t in ("mistral-v7", "mistral-v7-tekken"):
        sp = " " if t == "mistral-v7" else ""
        for role, content in chat:
            if role == "system":
                w(f"[SYSTEM_PROMPT]{sp}{content}[/SYSTEM_PROMPT]")
            elif role == "user":
                w(f"[INST]{sp}{content}[/INST]")
            else:
                w(f"{sp}{content}</s>")
    elif t in ("mistral-v1", "mistral-v3", "mistral-v3-tekken"):
        lead = " " if t == "mistral-v1" else ""
        trail = "" if t == "mistral-v3-tekken" else " "
        trim_ass = t == "mistral-v3"
        inside = False
        for role, content in chat:
            if not inside:
                w(f"{lead}[INST]{trail}")
                inside = True
            if role == "system":
                w(content + "\n\n")
            elif role == "user":
                w(f"{content}{lead}[/INST]")
            else:
                w(f"{trail}{trim(content) if trim_ass else content}</s>")
                inside = False
    elif t in ("llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip"):
        sys_ok = t != "llama2"
        bos_inside = t == "llama2-sys-bos"
        strip = t == "llama2-sys-strip"
        inside = True
        w("[INST] ")
        for role, content in chat:
            content = trim(content) if strip else content
            if not inside:
                inside = True
                w("<s>[INST] " if bos_inside else "[INST] ")
            if role == "system":
                w(f"<<SYS>>\n{content}\n<</SYS>>\n\n" if sys_ok else content + "\n")
            elif role == "user":
                w(content + " [/INST]")
            else:
                w(content + "</s>")
                inside = False
    elif t == "phi3":
        for role, content in chat:
            w(f"<|{role}|>\n{content}<|end|>\n")
        if add_ass:
            w("<|assistant|>\n")
    elif t == "phi4":
        for role, content in chat:
            w(f"<|im_start|>{role}<|im_sep|>{content}<|im_end|>")
        if add_ass:
            w("<|im_start|>assistant<|im_sep|>")
    elif t == "falcon3":
        for role, content in chat:
            w(f"<|{role}|>\n{content}\n")
        if add_ass:
            w("<|assistant|>\n")
    elif t == "zephyr":
        for role, content in chat:
            w(f"<|{role}|>\n{content}<|endoftext|>\n")
        if add_ass:
            w("<|assistant|>\n")
    elif t == "monarch":
        for i, (role, content) in enumerate(chat):
            w(("" if i == 0 else "<s>") + f"{role}\n{content}</s>\n")
        if add_ass:
            w("<s>assistant\n")
    elif t == "gemma":
        system = ""
        for role, content in chat:
            if role == "system":
                system += trim(content)
                continue
            role = "model" if role == "assistant" else role
            w(f"<start_of_turn>{role}\n")
            if system and role != "model":
                w(system + "\n\n")
                system = ""
            w(trim(content) + "<end_of_turn>\n")
        if add_ass:
            w("<start_of_turn>model\n")
    elif t == "orion":
        system = ""
        for role, content in chat:
            if role == "system":
                system += content
                continue
            if role == "user":
                w("Human: ")
                if system:
                    w(system + "\n\n")
                    system = ""
                w(content + "\n\nAssistant: </s>")
            else:
                w(content + "</s>")
    elif t == "openchat":
        for role, content in chat:
            if role == "system":
                w(content + "<|end_of_turn|>")
            else:
                r = _upper(role[:1]) + role[1:]           # role[0] = toupper(role[0])
                w(f"GPT4 Correct {r}: {content}<|end_of_turn|>")
        if add_ass:
            w("GPT4 Correct Assistant:")
    elif t in ("vicuna", "vicuna-orca"):
        for role, content in chat:
            if role == "system":
                w(f"SYSTEM: {content}\n" if t == "vicuna-orca" else content + "\n\n")
            elif role == "user":
                w(f"USER: {content}\n")
            elif role == "assistant":
                w(f"ASSISTANT: {content}</s>\n")
        if add_ass:
            w("ASSISTANT:")
    elif t == "deepseek":
        for role, content in chat:
            if role == "system":
                w(content)
            elif role == "user":
                w(f"### Instruction:\n{content}\n")
            elif role == "assistant":
                w(f"### Response:\n{content}\n<|EOT|>\n")
        if add_ass:
            w("### Response:\n")
    elif t == "command-r":
        tok = {"system": "<|SYSTEM_TOKEN|>", "user": "<|USER_TOKEN|>", "assistant": "<|CHATBOT_TOKEN|>"}
        for role, content in chat:
            if role in tok:
                w(f"<|START_OF_TURN_TOKEN|>{tok[role]}{trim(content)}<|END_OF_TURN_TOKEN|>")
        if add_ass:
            w("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>")
    elif t == "llama3":
        for role, content in chat:
            w(f"<|start_header_id|>{role}<|end_header_id|>\n\n{trim(content)}<|eot_id|>")
        if add_ass:
            w("<|start_header_id|>assistant<|end_header_id|>\n\n")
    elif t == "chatglm3":
        w("[gMASK]sop")
        for role, content in chat:
            w(f"<|{role}|>\n {content}")
        if add_ass:
            w("<|assistant|>")
    elif t == "chatglm4":
        w("[gMASK]<sop>")
        for role, content in chat:
            w(f"<|{role}|>\n{content}")
        if add_ass:
            w("<|assistant|>\n")
    elif t == "glmedge":
        for role, content in chat:
            w(f"<|{role}|>\n{content}")
        if add_ass:
            w("<|assistant|>")
    elif t == "minicpm":
        for role, content in chat:
            w(f"<用户>{trim(content)}<AI>" if role == "user" else trim(content))
    elif t == "deepseek2":
        for role, content in chat:
            if role == "system":
                w(content + "\n\n")
            elif role == "user":
                w(f"User: {content}\n\n")
            elif role == "assistant":
                w(f"Assistant: {content}<｜end▁of▁sentence｜>")
        if add_ass:
            w("Assistant:")
    elif t == "deepseek3":
        for role, content in chat:
            if role == "system":
                w(content + "\n\n")
            elif role == "user":
                w("<｜User｜>" + content)
            elif role == "assistant":
                w(f"<｜Assistant｜>{content}<｜end▁of▁sentence｜>")
        if add_ass:
            w("<｜Assistant｜>")
    elif t == "deepseek-ocr":
        for role, content in chat:
            w(content)
    elif t in ("exaone3", "exaone4"):
        for role, content in chat:
            if role == "system":
                w(f"[|system|]{trim(content)}[|endofturn|]\n")
            elif role == "user":
                w(f"[|user|]{trim(content)}\n")
            elif role == "assistant":
                w(f"[|assistant|]{trim(content)}[|endofturn|]\n")
            elif role == "tool" and t == "exaone4":
                w(f"[|tool|]{trim(content)}[|endofturn|]\n")
        if add_ass:
            w("[|assistant|]")
    elif t == "exaone-moe":
        for role, content in chat:
            if role in ("system", "user", "assistant", "tool"):
                w(f"<|{role}|>\n{trim(content)}<|endofturn|>\n")
        if add_ass:
            w("<|assistant|>\n")
    elif t == "rwkv-world":
        for i, (role, content) in enumerate(chat):
            if role == "system":
                w(f"System: {trim(content)}\n\n")
            elif role == "user":
                w(f"User: {trim(content)}\n\n")
                if i == len(chat) - 1:
                    w("Assistant:")
            elif role == "assistant":
                w(f"Assistant: {trim(content)}\n\n")
    elif t == "granite":
        for role, content in chat:
            w(f"<|start_of_role|>{role}<|end_of_role|>")
            if role == "assistant_tool_call":
                w("<|tool_call|>")
            w(content + "<|end_of_text|>\n")
        if add_ass:
            w("<|start_of_role|>assistant<|end_of_role|>")
    elif t in ("granite-4.0", "granite-4.1"):
        for role, content in chat:
            if role == "assistant_tool_call":
                w("<|start_of_role|>assistant<|end_of_role|><|tool_call|>")
            else:
                w(f"<|start_of_role|>{role}<|end_of_role|>")
            w(content + "<|end_of_text|>\n")
        if add_ass:
            w("<|start_of_role|>assistant<|end_of_role|>")
    elif t == "gigachat":
        has_sys = bool(chat) and chat[0][0] == "system"
        w(f"<s>{chat[0][1]}<|message_sep|>" if has_sys else "<s>")
        for role, content in chat[1 if has_sys else 0:]:
            if role == "user":
                w(f"user<|role_sep|>{content}<|message_sep|>available functions<|role_sep|>[]<|message_sep|>")
            elif role == "assistant":
                w(f"assistant<|role_sep|>{content}<|message_sep|>")
        if add_ass:
            w("assistant<|role_sep|>")
    elif t == "megrez":
        for role, content in chat:
            w(f"<|role_start|>{role}<|role_end|>{content}<|turn_end|>")
        if add_ass:
            w("<|role_start|>assistant<|role_end|>")
    elif t == "yandex":
        for role, content in chat:
            if role == "user":
                w(f" Пользователь: {content}\n\n")
            elif role == "assistant":
                w(f" Ассистент: {content}\n\n")
        if add_ass:
            w(" Ассистент:[SEP]")
    elif t in ("bailing", "bailing-think"):
        for role, content in chat:
            w(f"<role>{'HUMAN' if role == 'user' else _upper(role)}</role>{content}")
        if add_ass:
            w("<role>ASSISTANT</role>" + ("<think>" if t == "bailing-think" else ""))
    elif t == "bailing2":
        if not (chat and chat[0][0] == "system"):
            w("<role>SYSTEM</role>detailed thinking off<|role_end|>")
        for role, content in chat:
            w(f"<role>{'HUMAN' if role == 'user' else _upper(role)}</role>{content}<|role_end|>")
        if add_ass:
            w("<role>ASSISTANT</role>")
    elif t == "llama4":
        for role, content in chat:
            w(f"<|header_start|>{role}<|header_end|>\n\n{trim(content)}<|eot|>")
        if add_ass:
            w("<|header_start|>assistant<|header_end|>\n\n")
    elif t == "smolvlm":
        w("<|im_start|>")
        for role, content in chat:
            if role == "system":
                w(content + "\n\n")
            elif role == "user":
                w(f"User: {content}<end_of_utterance>\n")
            else:
                w(f"Assistant: {content}<end_of_utterance>\n")
        if add_ass:
            w("Assistant:")
    elif t == _DOTS1:
        for role, content in chat:
            if role == "system":
                w(f"<|system|>{content}<|endofsystem|>")
            elif role == "user":
                w(f"<|userprompt|>{content}<|endofuserprompt|>")
            else:
                w(f"<|response|>{content}<|endofresponse|>")
        if add_ass:
            w("<|response|>")
    elif t == "hunyuan-moe":
        for role, content in chat:
            if role == "system":
                w(f"<|startoftext|>{content}<|extra_4|>")
            elif role == "assistant":
                w(content + "<|eos|>")
            else:
                w(f"<|startoftext|>{content}<|extra_0|>")
    elif t == "gpt-oss":
        for role, content in chat:
            w(f"<|start|>{role}<|message|>{content}" + ("<|return|>" if role == "assistant" else "<|end|>"))
        if add_ass:
            w("<|start|>assistant")
    elif t == "hunyuan-dense":
        for i, (role, content) in enumerate(chat):
            if i == 0 and role == "system":
                w(content + "<｜hy_place▁holder▁no▁3｜>")
            if role == "assistant":
                w(f"<｜hy_Assistant｜>{content}<｜hy_place▁holder▁no▁2｜>")
            elif role == "user":
                w(f"<｜hy_User｜>{content}<｜hy_Assistant｜>")
    elif t == "hunyuan-vl":
        w("<｜hy_begin▁of▁sentence｜>")
        for i, (role, content) in enumerate(chat):
            if i == 0 and role == "system":
                w(content + "<｜hy_place▁holder▁no▁3｜>")
                continue
            if role == "user":
                w(content + "<｜hy_User｜>")
            elif role == "assistant":
                w(content + "<｜hy_Assistant｜>")
    elif t == "kimi-k2":
        head = {"system": "<|im_system|>system<|im_middle|>", "user": "<|im_user|>user<|im_middle|>",
                "assistant": "<|im_assistant|>assistant<|im_middle|>", "tool": "<|im_system|>tool<|im_middle|>"}
        for role, content in chat:
            w(head.get(role, "") + content + "<|im_end|>")
        if add_ass:
            w("<|im_assistant|>assistant<|im_middle|>")
    elif t == "seed_oss":
        for role, content in chat:
            w(f"<seed:bos>{role}\n{trim(content) if role == 'assistant' else content}<seed:eos>")
        if add_ass:
            w("<seed:bos>assistant\n")
    elif t == "grok-2":
        for role, content in chat:
            if role == "system":
                w(f"System: {trim(content)}<|separator|>\n\n")
            elif role == "user":
                w(f"Human: {trim(content)}<|separator|>\n\n")
            elif role == "assistant":
                w(f"Assistant: {content}<|separator|>\n\n")
        if add_ass:
            w("Assistant:")
    elif t == "pangu-embedded":
        names = {"system": "系统", "user": "用户", "assistant": "助手", "tool": "工具", "function": "方法"}
        for i, (role, content) in enumerate(chat):
            if i == 0 and role != "system":
                w("[unused9]系统：[unused10]")
            if role in names:
                w(f"[unused9]{names[role]}：{content}[unused10]")
        if add_ass:
            w("[unused9]助手：")
    elif t == "solar-open":
        for role, content in chat:
            w(f"<|begin|>{role}<|content|>{content}<|end|>")
        if add_ass:
            w("<|begin|>assistant")
    else:
        raise GGraphError(f"unknown built-in chat template {name!r} (known: {', '.join(NAMES)})")
    return "".join(out)


def _upper(s: str) -> str:
    """std::transform(::toupper): ASCII letters only."""
    return "".join(ch.upper() if "a" <= ch <= "z" else ch for ch in s)


# -- a template for a GGUF without one ----------------------------------------------------------------
# (name, tokens that must all be special tokens of the vocabulary), in llm_chat_detect_template's order
_VOCAB_RULES = (
    ("phi4", ("<|im_start|>", "<|im_sep|>")), ("smolvlm", ("<|im_start|>", "<end_of_utterance>")),
    ("chatml", ("<|im_start|>",)),
    ("mistral-v7", ("[INST]", "[SYSTEM_PROMPT]")), ("mistral-v3", ("[INST]", "[AVAILABLE_TOOLS]")),
    ("phi3", ("<|assistant|>", "<|end|>")), ("chatglm4", ("[gMASK]", "<sop>")),
    ("exaone-moe", ("<|assistant|>", "<|user|>", "<|tool_declare|>")), ("glmedge", ("<|assistant|>", "<|user|>")),
    ("zephyr", ("<|user|>", "<|endoftext|>")), ("gemma", ("<start_of_turn>", "<end_of_turn>")),
    ("openchat", ("<|end_of_turn|>",)), ("deepseek", ("<|EOT|>",)),
    ("command-r", ("<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>")),
    ("llama3", ("<|start_header_id|>", "<|end_header_id|>")),
    ("deepseek3", ("<｜Assistant｜>", "<｜User｜>", "<｜end▁of▁sentence｜>")),
    ("exaone4", ("[|system|]", "[|assistant|]", "[|endofturn|]", "[|tool|]")),
    ("exaone3", ("[|system|]", "[|assistant|]", "[|endofturn|]")),
    ("granite", ("<|start_of_role|>",)), ("megrez", ("<|role_start|>",)),
    ("llama4", ("<|header_start|>", "<|header_end|>")), ("hunyuan-moe", ("<|extra_0|>", "<|extra_4|>")),
    ("gpt-oss", ("<|start|>", "<|channel|>")), ("kimi-k2", ("<|im_assistant|>", "<|im_middle|>")),
    ("seed_oss", ("<seed:bos>",)), ("solar-open", ("<|begin|>", "<|end|>", "<|content|>")),
)


def detect_from_vocab(vocab, pre: str | None = None) -> tuple[str, str]:
    """(name, why) for a GGUF without tokenizer.chat_template: the first of llm_chat_detect_template's
    marker rules whose tokens are all special tokens of the vocabulary; else chatml, llama.cpp's
    fallback for such a file (common_chat_templates_init)."""
    from .vocab import ATTR_CONTROL, ATTR_USER_DEFINED
    special = set()
    for i in range(vocab.n_vocab):
        if vocab.token_attr(i) & (ATTR_CONTROL | ATTR_USER_DEFINED):
            special.add(vocab.token_text(i))
    for name, toks in _VOCAB_RULES:
        if all(t in special for t in toks):
            if name.startswith("mistral") and pre == "tekken":      # tokenizer.ggml.pre
                name += "-tekken"
            return name, "the vocabulary has " + ", ".join(toks)
    return "chatml", "no template marker among the special tokens: llama.cpp's fallback"


class BuiltinTemplate:
    """A built-in template with ChatTemplate's interface. Its text holds no BOS: tokenize it with
    add_special=True (as llama.cpp does with llama_chat_apply_template's output)."""
    adds_bos = False

    def __init__(self, name: str, bos_token: str = "", eos_token: str = ""):
        if name not in NAMES and name != _DOTS1:
            raise GGraphError(f"unknown built-in chat template {name!r} (known: {', '.join(NAMES)})")
        self.name, self.bos_token = name, bos_token
        self.eos_token = END_OF_TURN.get(name, eos_token)      # the stop string of the completion APIs

    def render(self, messages: list[dict], add_generation_prompt: bool = True, **extra) -> str:
        if not isinstance(messages, (list, tuple)):
            raise GGraphError(f"chat messages must be a list of dicts, got {type(messages).__name__}")
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise GGraphError(f"chat messages need 'role' and 'content', got {m!r}")
        return apply(self.name, list(messages), bool(add_generation_prompt))

    def __repr__(self) -> str:
        return f"BuiltinTemplate({self.name!r})"
