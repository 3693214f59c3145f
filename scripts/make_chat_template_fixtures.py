#!/usr/bin/env python3
"""llama.cpp's own formatting of chat conversations with its built-in templates, for
tests/test_chat_templates.py.

For every name llama_chat_builtin_templates() lists, llama_chat_apply_template(name, messages,
n_msg, add_ass, buf, length) (the low-level binding of llama-cpp-python 0.3.36, no model needed)
formats each conversation of CONVERSATIONS (a 3-turn chat with a system message; the same without
it; contents with spaces to trim and non-ASCII text), with add_ass true and false. Also stored:
what llama.cpp makes of template TEXTS (its llm_chat_detect_template heuristics; -1 = unknown),
formatted with the 3-turn chat.

    python scripts/make_chat_template_fixtures.py [OUT.json]      (default tests/fixtures/llamacpp_chat_templates.json)
"""
from __future__ import annotations

import ctypes
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "llamacpp_chat_templates.json")

THREE_TURNS = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi there. How can I help?"},
    {"role": "user", "content": "  What is 2+2?  "},
    {"role": "assistant", "content": " It is 4. "},
    {"role": "user", "content": "Thanks, and in French: quatre, c'est ça ?"},
]
CONVERSATIONS = {
    "three_turns": THREE_TURNS,
    "no_system": THREE_TURNS[1:],
    "one_user": [{"role": "user", "content": "Tell me a joke.\n"}],
}
# template texts (snippets of real templates) for llama.cpp's detection
TEXTS = {
    "chatml_jinja": "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>'}}{% endfor %}",
    "gemma_jinja": "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ role }}\n{% endfor %}",
    "llama3_jinja": "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' %}",
    "llama2_sys": "{% if messages[0]['role'] == 'system' %}<<SYS>>\\n{% endif %}[INST] {{ content }} [/INST]",
    "llama2_strip": "[INST] {{ message['content'].strip() }} [/INST] content.strip()",
    "mistral_v7": "[SYSTEM_PROMPT]{{ m }}[/SYSTEM_PROMPT][INST]",
    "phi3_jinja": "{{'<|user|>' + '\\n' + message['content'] + '<|end|>'}}{{ '<|assistant|>' }}",
    "zephyr_jinja": "{{ '<|user|>\\n' + message['content'] + '<|endoftext|>' }}",
    "command_r": "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
    "deepseek_coder": "### Instruction:\\n{{ m }}\\n<|EOT|>",
    "vicuna": "USER: {{ m }} ASSISTANT: ",
    "vicuna_orca": "SYSTEM: x USER: {{ m }} ASSISTANT: ",
    "openchat": "GPT4 Correct User: {{ m }}<|end_of_turn|>",
    "granite": "<|start_of_role|>user<|end_of_role|>",
    "deepseek3": "<｜User｜>{{ m }}<｜Assistant｜>{{ a }}<｜end▁of▁sentence｜>",
    "monarch": "{{ bos_token + message['role'] + '\\n' + message['content'] + eos_token }}",
    "unknown": "{{ messages[0]['content'] }}",
}


def apply(llama_cpp, tmpl: str, messages, add_ass: bool):
    arr = (llama_cpp.llama_chat_message * len(messages))()
    keep = []
    for i, m in enumerate(messages):
        r, c = m["role"].encode(), m["content"].encode()
        keep += [r, c]
        arr[i].role, arr[i].content = r, c
    n = llama_cpp.llama_chat_apply_template(tmpl.encode(), arr, len(messages), add_ass, None, 0)
    if n < 0:
        return None
    buf = ctypes.create_string_buffer(n + 1)
    llama_cpp.llama_chat_apply_template(tmpl.encode(), arr, len(messages), add_ass, buf, n + 1)
    return buf.raw[:n].decode("utf-8")


def builtin_names(llama_cpp) -> list[str]:
    n = llama_cpp.llama_chat_builtin_templates(None, 0)
    out = (ctypes.c_char_p * n)()
    llama_cpp.llama_chat_builtin_templates(out, n)
    return [x.decode() for x in out]


def main():
    import llama_cpp
    path = sys.argv[1] if len(sys.argv) > 1 else OUT
    names = builtin_names(llama_cpp)
    fx = {"source": f"llama-cpp-python {llama_cpp.__version__}: llama_chat_apply_template "
                    "(scripts/make_chat_template_fixtures.py)",
          "conversations": CONVERSATIONS, "names": names, "formatted": {}, "texts": TEXTS, "detected": {}}
    for name in names:
        fx["formatted"][name] = {f"{conv}/{int(add)}": apply(llama_cpp, name, msgs, add)
                                 for conv, msgs in CONVERSATIONS.items() for add in (True, False)}
    for key, text in TEXTS.items():
        fx["detected"][key] = apply(llama_cpp, text, THREE_TURNS, True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(fx, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    print(path, len(names), "templates")


if __name__ == "__main__":
    main()
