"""llama.cpp's built-in chat templates (runtime/text/builtin_templates.py) against llama.cpp's own
llama_chat_apply_template output (scripts/make_chat_template_fixtures.py), the template chosen for
a GGUF without tokenizer.chat_template, --chat-template / --chat-template-file, chat_format= in
ggraph.Llama, and a 3-turn `ggraph chat` with Gemma-3 (which has no template: slow)."""
import io
import json
import os
import sys

import pytest

import ggraph
from conftest import FIXTURES
from ggraph.errors import GGraphError
from ggraph.runtime.text import builtin_templates as B
from ggraph.runtime.text.chat_template import ChatTemplate, chat_template_for

FX = json.load(open(os.path.join(FIXTURES, "llamacpp_chat_templates.json"), encoding="utf-8"))
THREE = FX["conversations"]["three_turns"]


def test_names_are_llamacpps():
    assert sorted(FX["names"]) == sorted(B.NAMES)


@pytest.mark.parametrize("name", FX["names"])
def test_formatting_is_llama_chat_apply_template(name):
    for key, ref in FX["formatted"][name].items():
        conv, add = key.split("/")
        assert B.apply(name, FX["conversations"][conv], add == "1") == ref, key
    assert B.detect(name) == name


def test_detection_of_template_texts():
    for key, text in FX["texts"].items():
        name = B.detect(text)
        got = None if name is None else B.apply(name, THREE, True)
        assert got == FX["detected"][key], (key, name)
    assert B.detect(FX["texts"]["gemma_jinja"]) == "gemma" and B.detect(FX["texts"]["unknown"]) is None


@pytest.fixture(scope="module")
def tiny(tiny_llama_path):
    return ggraph.load(tiny_llama_path)


def test_no_gguf_template_falls_back_like_llamacpp(tiny, tmp_path):
    t = chat_template_for(tiny)             # the tiny vocab has no template markers: chatml
    assert t.name == "chatml" and "no tokenizer.chat_template" in t.source and not t.adds_bos
    assert t.render(THREE[:2]) == B.apply("chatml", THREE[:2], True)
    g = chat_template_for(tiny, name="gemma")
    assert g.name == "gemma" and g.eos_token == "<end_of_turn>"
    j = chat_template_for(tiny, name="{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    assert isinstance(j, ChatTemplate) and j.render(THREE[:2], add_generation_prompt=False) == \
        "[You are a helpful assistant.][Hello!]"
    f = tmp_path / "t.jinja"
    f.write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}")
    assert chat_template_for(tiny, path=str(f)).render(THREE[1:2]) == "<user>Hello!"
    with pytest.raises(GGraphError, match="not a built-in template"):
        chat_template_for(tiny, name="nonsense")
    with pytest.raises(GGraphError, match="cannot read"):
        chat_template_for(tiny, path=str(tmp_path / "missing.jinja"))


class _Vocab:
    """The two methods detect_from_vocab reads, over a list of special token texts."""

    def __init__(self, special):
        from ggraph.runtime.text.vocab import ATTR_CONTROL
        self.texts, self.n_vocab, self._a = ["a", "b"] + special, len(special) + 2, ATTR_CONTROL

    def token_attr(self, i):
        return self._a if i >= 2 else 0

    def token_text(self, i):
        return self.texts[i]


@pytest.mark.parametrize("special,name", [
    (["<bos>", "<start_of_turn>", "<end_of_turn>"], "gemma"), (["<|im_start|>", "<|im_end|>"], "chatml"),
    (["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "llama3"),
    (["<|user|>", "<|assistant|>", "<|end|>"], "phi3"), (["[INST]", "[/INST]", "[SYSTEM_PROMPT]"], "mistral-v7"),
    (["<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"], "command-r"), (["<|start_of_role|>"], "granite"),
    (["<s>", "</s>"], "chatml")])
def test_detect_from_vocabulary(special, name):
    assert B.detect_from_vocab(_Vocab(special))[0] == name


def test_llama_chat_format_builtin(tiny):
    llm = ggraph.Llama(tiny.path, n_ctx=256, n_threads=2, chat_format="zephyr", verbose=False)
    msgs = [{"role": "user", "content": "Hi"}]
    out = llm.create_chat_completion(msgs, temperature=0, max_tokens=6)
    prompt = llm.tokenize(B.apply("zephyr", msgs, True).encode(), add_bos=True, special=True)
    assert out["usage"]["prompt_tokens"] == len(prompt)
    llm.reset()
    assert out["choices"][0]["message"]["content"] == llm(prompt, temperature=0, max_tokens=6,
                                                          stop=["<|endoftext|>"])["choices"][0]["text"]
    plain = ggraph.Llama(tiny.path, n_ctx=256, n_threads=2, verbose=False)      # no GGUF template: detected
    assert plain.create_chat_completion(msgs, temperature=0, max_tokens=2)["usage"]["prompt_tokens"] == \
        len(plain.tokenize(B.apply("chatml", msgs, True).encode(), special=True))
    with pytest.raises(GGraphError, match="not built into ggraph"):
        ggraph.Llama(tiny.path, n_ctx=64, chat_format="alpaca", verbose=False).create_chat_completion(msgs)


def test_cli_run_and_chat_with_chat_template(tiny_llama_path, capsys, monkeypatch):
    from ggraph.runtime.apps.cli import main
    assert main(["run", "-m", tiny_llama_path, "-p", "Hi", "-n", "3", "--temp", "0", "--chat-template", "chatml",
                 "-t", "2"]) == 0
    err = capsys.readouterr().err
    assert "built-in 'chatml' template (--chat-template)" in err and "prompt eval time" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\nHow are you?\nBye\n"))
    assert main(["chat", "-m", tiny_llama_path, "-n", "3", "--temp", "0", "--chat-template", "gemma", "-t", "2"]) == 0
    assert capsys.readouterr().err.count("chat template:") == 1


@pytest.mark.slow
def test_gemma3_three_turn_chat(gemma3_path, capsys, monkeypatch):
    """Gemma-3 270M has no tokenizer.chat_template: the gemma template is detected, and each turn's
    prompt is llama.cpp's gemma formatting of the whole conversation (BOS from the tokenizer)."""
    from ggraph.runtime.apps.chat import ChatSession
    from ggraph.runtime.apps.cli import main
    model = ggraph.load(gemma3_path)
    session = ChatSession(model, model.new_context(n_ctx=512, n_threads=2))
    assert isinstance(session.template, B.BuiltinTemplate) and session.template.name == "gemma"
    fed = []
    real = session.ctx.generate

    def spy(ids, **kw):
        fed.append(list(session.tokens))
        return real(ids, **kw)

    session.ctx.generate = spy
    for q in ("Hi! What is the capital of France?", "And of Italy?", "Thanks. One famous dish from there?"):
        assert "".join(session.send(q, n_predict=8)) is not None
    assert [m["role"] for m in session.messages] == ["user", "assistant"] * 3
    want = model.tokenize(B.apply("gemma", session.messages[:5], True), add_special=True, parse_special=True)
    assert fed[-1] == want and want[0] == model.vocab.bos_id
    # the command line, input piped: three turns, the template named once on stderr
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello!\nWhat is 2+2?\nThanks.\n"))
    assert main(["chat", "-m", gemma3_path, "-n", "8", "--temp", "0", "-t", "2", "-c", "512"]) == 0
    out = capsys.readouterr()
    assert "built-in 'gemma' template" in out.err and out.out.count("\n") >= 3
