"""Chat templates (jinja2) and multi-turn sessions that reuse the KV cache."""
import numpy as np
import pytest

from ggraph.errors import GGraphError
from ggraph.runtime.apps.chat import ChatSession
from ggraph.runtime.text.chat_template import ChatTemplate

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def test_render_chatml_and_generation_prompt():
    t = ChatTemplate(CHATML)
    msgs = [{"role": "user", "content": "Hi"}]
    assert t.render(msgs) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert t.render(msgs, add_generation_prompt=False) == "<|im_start|>user\nHi<|im_end|>\n"


def test_bos_eos_variables_and_raise_exception():
    t = ChatTemplate("{{ bos_token }}{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}"
                     "{% endif %}{{ messages[0]['content'] }}{{ eos_token }}", bos_token="<s>", eos_token="</s>")
    assert t.render([{"role": "user", "content": "x"}]) == "<s>x</s>"
    with pytest.raises(GGraphError, match="first must be user"):
        t.render([{"role": "assistant", "content": "x"}])
    with pytest.raises(GGraphError, match="does not parse"):
        ChatTemplate("{% for %}")
    with pytest.raises(GGraphError, match="role"):
        t.render([{"content": "no role"}])


@pytest.mark.slow
def test_smollm2_template_from_gguf(smollm2_model):
    text = smollm2_model.apply_chat_template([{"role": "user", "content": "Hello"}])
    # SmolLM2's template adds its default system message when none is given
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow
def test_three_turns_reuse_cache_and_match_fresh_context(smollm2_model):
    m = smollm2_model
    session = ChatSession(m, m.new_context(n_ctx=1024, n_threads=2))
    replies = []
    for q in ("What is the capital of France?", "And of Italy?", "Name a dish from each."):
        replies.append("".join(session.send(q, n_predict=24)))
        # what the cache holds is exactly the conversation's tokens so far
        assert session.ctx.n_past == len(session.tokens)
    assert all(r.strip() for r in replies)
    assert len(session.messages) == 6 and session.messages[-1]["role"] == "assistant"
    # the next turn's logits over the reused cache equal a fresh evaluation of the whole prompt
    session.messages.append({"role": "user", "content": "Thanks!"})
    ids = session._prompt_ids()
    keep = 0
    while keep < min(len(ids), len(session.tokens)) and ids[keep] == session.tokens[keep]:
        keep += 1
    assert keep > len(ids) // 2
    session.ctx.truncate(keep)
    reused = session.ctx.decode(ids[keep:])
    fresh_ctx = m.new_context(n_ctx=1024, n_threads=2)
    fresh = fresh_ctx.decode(ids)
    assert reused.argmax() == fresh.argmax()
    np.testing.assert_allclose(reused, fresh, atol=0.05 * np.abs(fresh).max())
