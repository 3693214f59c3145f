"""ggraph.Llama (llama-cpp-python's API) on the tiny random llama: completions against ctx.generate,
streams, stop strings across tokens, UTF-8 in streams, logprobs against a float64 log-softmax of
ctx.decode logits, KV prefix reuse, chat, and one-line errors."""
import codecs

import numpy as np
import pytest

import ggraph
from conftest import load_script
from ggraph.errors import GGraphError

PROMPT = "The cat sat on the mat"
N_CTX = 128


@pytest.fixture(scope="module")
def llm(tiny_llama_path):
    return ggraph.Llama(tiny_llama_path, n_ctx=N_CTX, n_threads=2, verbose=False)


@pytest.fixture(scope="module")
def model(tiny_llama_path):
    return ggraph.load(tiny_llama_path)


@pytest.fixture(scope="module")
def chat_path(tiny_chat_path):
    return tiny_chat_path


def greedy_ids(model, ids, n):
    ctx = model.new_context(n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, n_threads=2)
    return list(ctx.generate(ids, n_predict=n))


def text_of(model, ids) -> str:
    return b"".join(model.token_to_piece(t) for t in ids).decode("utf-8", "replace")


def offsets_of(model, ids) -> list[int]:
    """Character offset of each token's text (bytes decoded incrementally), plus the total."""
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out, n = [0], 0
    for t in ids:
        n += len(dec.decode(model.token_to_piece(t)))
        out.append(n)
    out[-1] += len(dec.decode(b"", final=True))
    return out


def stream_texts(chunks):
    chunks = list(chunks)
    assert all(c["object"] == "text_completion" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    return [c["choices"][0]["text"] for c in chunks[:-1]], chunks[-1]["choices"][0]["finish_reason"]


def log_softmax64(x):
    x = np.asarray(x, np.float64)
    return x - x.max() - np.log(np.exp(x - x.max()).sum())


def test_greedy_completion_equals_ctx_generate(llm, model):
    ids = model.tokenize(PROMPT)
    expect = greedy_ids(model, ids, 24)
    llm.reset()
    out = llm(PROMPT, max_tokens=24, temperature=0)
    c = out["choices"][0]
    assert out["object"] == "text_completion" and out["id"].startswith("cmpl-") and out["model"] == llm.model_path
    assert c["text"] == text_of(model, expect) and c["index"] == 0 and c["logprobs"] is None
    assert c["finish_reason"] == ("length" if len(expect) == 24 else "stop")
    assert out["usage"] == {"prompt_tokens": len(ids), "completion_tokens": len(expect),
                            "total_tokens": len(ids) + len(expect)}
    # the same through a list-of-ids prompt, create_completion and generate()
    assert llm.create_completion(ids, max_tokens=24, temperature=0)["choices"][0]["text"] == c["text"]
    gen = llm.generate(ids, temp=0)
    assert [next(gen) for _ in expect] == expect
    gen.close()


@pytest.mark.parametrize("kw", [dict(temperature=0), dict(temperature=0.8, seed=7, top_k=0, top_p=1.0),
                                dict(temperature=0, stop=["e"]), dict(temperature=0, echo=True)])
def test_stream_joins_to_the_completion(llm, kw):
    llm.reset()
    out = llm(PROMPT, max_tokens=30, **kw)["choices"][0]
    llm.reset()
    texts, finish = stream_texts(llm(PROMPT, max_tokens=30, stream=True, **kw))
    assert "".join(texts) == out["text"] and finish == out["finish_reason"]
    assert all(texts)


def test_stop_string_across_token_boundary_never_leaks(llm, model):
    ids = model.tokenize(PROMPT)
    gen = greedy_ids(model, ids, 40)
    full, offs = text_of(model, gen), offsets_of(model, gen)
    # a stop string made of the last character of one token and the first of the next, whose
    # first occurrence in the greedy text is exactly there
    for i in range(2, len(gen) - 1):
        b = offs[i + 1]
        if offs[i] < b < offs[i + 2] and full[b - 1:b + 1].isprintable():
            stop = full[b - 1:b + 1]
            if full.find(stop) == b - 1:
                break
    else:
        pytest.fail("no stop candidate in the greedy text")
    llm.reset()
    out = llm(PROMPT, max_tokens=40, temperature=0, stop=[stop, "never-there"])["choices"][0]
    assert out["text"] == full[:b - 1] and out["finish_reason"] == "stop"
    texts, finish = stream_texts(llm(PROMPT, max_tokens=40, temperature=0, stop=stop, stream=True))
    assert "".join(texts) == full[:b - 1] and finish == "stop"
    # a stop string whose start appears but which never completes: held back, then released
    texts, finish = stream_texts(llm(PROMPT, max_tokens=40, temperature=0, stop=[full[b - 1] + "\x00\x00"],
                                     stream=True))
    assert "".join(texts) == full and finish == ("length" if len(gen) == 40 else "stop")


def test_stop_matcher_holds_back_overlapping_prefixes():
    from ggraph.runtime.api.stop import StopMatcher
    m = StopMatcher(["aab", "xyz"])
    assert [m.push(t) for t in ("a", "a", "a", "b")] == [("", False), ("", False), ("a", False), ("", True)]
    m = StopMatcher(["aab"])
    assert m.push("xa") == ("x", False) and m.push("ac") == ("aac", False) and m.flush() == ""
    assert m.push("za") == ("z", False) and m.flush() == "a"


def byte_token(model, b: int) -> int:
    return next(t for t in range(model.n_vocab) if model.token_to_piece(t) == bytes([b]))


def forcing(tokens, n_prompt):
    """A logits processor that makes the model write `tokens` (one byte token per step)."""
    def proc(input_ids, scores):
        scores[:] = -np.inf
        scores[tokens[len(input_ids) - n_prompt]] = 0.0
        return scores
    return proc


def test_stream_never_splits_a_utf8_character(llm, model):
    text = "é€😀ok"
    forced = [byte_token(model, b) for b in text.encode("utf-8")]
    n_prompt = len(model.tokenize(PROMPT))
    llm.reset()
    texts, finish = stream_texts(llm(PROMPT, max_tokens=len(forced), temperature=0, stream=True,
                                     logits_processor=forcing(forced, n_prompt)))
    # one chunk per completed character, none with a replacement character
    assert texts == ["é", "€", "😀", "o", "k"] and finish == "length"
    out = llm(PROMPT, max_tokens=len(forced), temperature=0, logits_processor=forcing(forced, n_prompt), stop="😀")
    assert out["choices"][0]["text"] == "é€" and out["choices"][0]["finish_reason"] == "stop"
    # an unfinished character at max_tokens comes out as U+FFFD at the end, as detokenize shows it
    out = llm(PROMPT, max_tokens=4, temperature=0, logits_processor=forcing(forced, n_prompt))
    assert out["choices"][0]["text"] == "é\ufffd"


def test_logprobs_match_float64_log_softmax_of_decode_logits(llm, model):
    ids = model.tokenize(PROMPT)
    llm.reset()
    out = llm(PROMPT, max_tokens=8, temperature=0, logprobs=3)["choices"][0]
    lp = out["logprobs"]
    gen = greedy_ids(model, ids, 8)
    assert len(lp["tokens"]) == len(gen) and lp["tokens"] == [model.token_to_piece(t).decode("utf-8", "ignore")
                                                              for t in gen]
    ctx = model.new_context(n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, n_threads=2)
    logits = ctx.decode(ids)
    for k, tok in enumerate(gen):
        ref = log_softmax64(logits)
        assert abs(lp["token_logprobs"][k] - ref[tok]) < 1e-9
        top = np.argsort(-ref, kind="stable")[:3]
        expect = {model.token_to_piece(int(t)).decode("utf-8", "ignore"): ref[t] for t in top}
        expect[lp["tokens"][k]] = ref[tok]
        assert lp["top_logprobs"][k].keys() == expect.keys()
        np.testing.assert_allclose([lp["top_logprobs"][k][s] for s in expect], list(expect.values()), rtol=0, atol=1e-9)
        logits = ctx.decode([tok])
    offs = offsets_of(model, gen)
    assert lp["text_offset"] == [len(PROMPT) + o for o in offs[:-1]]
    # echo: the prompt's tokens too, from decode(..., logits_all=True); the first has none
    llm.reset()
    echo = llm(PROMPT, max_tokens=3, temperature=0, logprobs=1, echo=True)["choices"][0]
    assert echo["text"].startswith(PROMPT)
    elp = echo["logprobs"]
    assert elp["token_logprobs"][0] is None and elp["top_logprobs"][0] is None and elp["text_offset"][0] == 0
    all_logits = model.new_context(n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, n_threads=2).decode(ids, logits_all=True)
    for j in range(1, len(ids)):
        assert abs(elp["token_logprobs"][j] - log_softmax64(all_logits[j - 1])[ids[j]]) < 1e-9
    assert len(elp["tokens"]) == len(ids) + 3
    # a stream carries the same entries, chunk by chunk
    llm.reset()
    chunks = list(llm(PROMPT, max_tokens=8, temperature=0, logprobs=3, stream=True))
    joined = [t for c in chunks[:-1] for t in c["choices"][0]["logprobs"]["tokens"]]
    assert joined == lp["tokens"]


def test_prefix_reuse_gives_identical_output(llm, monkeypatch):
    decoded = []
    real = llm.ctx.decode

    def counting(ids, logits_all=False):
        decoded.append(len(ids))
        return real(ids, logits_all)

    monkeypatch.setattr(llm.ctx, "decode", counting)
    longer = PROMPT + " and the dog ran"
    llm.reset()
    first = llm(PROMPT, max_tokens=10, temperature=0)["choices"][0]["text"]
    n_prompt = len(llm.tokenize(PROMPT.encode()))
    assert sum(decoded) == n_prompt + 9        # the last sampled token is never decoded
    decoded.clear()
    reused = llm(longer, max_tokens=10, temperature=0)["choices"][0]["text"]
    n_longer = len(llm.tokenize(longer.encode()))
    assert decoded[0] == n_longer - n_prompt     # only the new part of the prompt
    decoded.clear()
    again = llm(PROMPT, max_tokens=10, temperature=0)["choices"][0]["text"]
    assert decoded[0] == 1                       # the whole prompt cached: its last token re-evaluated
    llm.reset()
    fresh = llm(longer, max_tokens=10, temperature=0)["choices"][0]["text"]
    assert reused == fresh and again == first


def test_paused_stream_cannot_resume_after_another_call(tiny_llama_path):
    llm = ggraph.Llama(tiny_llama_path, n_ctx=N_CTX, n_threads=2, verbose=False)
    stream = llm(PROMPT, max_tokens=10, temperature=0, stream=True)
    next(stream)
    llm(PROMPT, max_tokens=2, temperature=0)
    with pytest.raises(GGraphError, match="paused"):
        list(stream)
    llm.close()
    with pytest.raises(GGraphError, match="closed"):
        llm(PROMPT)


def test_sampling_arguments(llm, model):
    llm.reset()
    a = llm(PROMPT, max_tokens=12, temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=3)["choices"][0]["text"]
    b = llm(PROMPT, max_tokens=12, temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=3)["choices"][0]["text"]
    c = llm(PROMPT, max_tokens=12, temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=4)["choices"][0]["text"]
    assert a == b and a != c
    # logit_bias (JSON-style string keys too) and presence penalty, in llama.cpp's sampler semantics
    tok = model.tokenize(" cat")[0]
    out = llm(PROMPT, max_tokens=5, temperature=0, logit_bias={str(tok): 100.0})["choices"][0]["text"]
    assert out == " cat" * 5
    ids = model.tokenize(PROMPT)
    gen = llm.generate(ids, temp=0, presence_penalty=100.0)
    toks = [next(gen) for _ in range(20)]
    gen.close()
    assert len(set(toks)) == 20
    # eval + sample is greedy generation one step at a time
    llm.reset()
    llm.eval(ids)
    assert llm.n_tokens == len(ids) and llm.sample(temp=0) == greedy_ids(model, ids, 1)[0]


def test_chat_completion_with_the_gguf_template(chat_path, llm):
    chat_llm = ggraph.Llama(chat_path, n_ctx=N_CTX, n_threads=2, verbose=False)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    out = chat_llm.create_chat_completion(msgs, temperature=0, max_tokens=12)
    c = out["choices"][0]
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert c["message"]["role"] == "assistant" and c["finish_reason"] in ("stop", "length")
    prompt = chat_llm.tokenize(b"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                               b"<|im_start|>assistant\n", add_bos=False, special=True)
    chat_llm.reset()
    plain = chat_llm(prompt, temperature=0, max_tokens=12)["choices"][0]["text"]
    assert c["message"]["content"] == plain and out["usage"]["prompt_tokens"] == len(prompt)
    chunks = list(chat_llm.create_chat_completion(msgs, temperature=0, max_tokens=12, stream=True))
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == plain
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == c["finish_reason"]
    assert all(ch["choices"][0]["finish_reason"] is None for ch in chunks[:-1])
    with pytest.raises(GGraphError, match="unknown role"):
        chat_llm.create_chat_completion([{"role": "wizard", "content": "x"}])
    import json
    as_json = chat_llm.create_chat_completion(msgs, temperature=0, max_tokens=40, response_format={"type": "json_object"})
    if as_json["choices"][0]["finish_reason"] == "stop":      # complete: the grammar only lets JSON end it
        json.loads(as_json["choices"][0]["message"]["content"])
    with pytest.raises(GGraphError, match="response_format"):
        chat_llm.create_chat_completion(msgs, response_format={"type": "xml"})
    # a GGUF without tokenizer.chat_template: llama.cpp's built-in template its vocabulary matches (chatml here)
    bare = llm.create_chat_completion(msgs, temperature=0, max_tokens=12)
    assert bare["choices"][0]["message"]["content"] == c["message"]["content"]


def test_tokenizer_and_model_facts(llm, model):
    ids = llm.tokenize(PROMPT.encode())
    assert ids == model.tokenize(PROMPT) and llm.detokenize(ids) == PROMPT.encode()
    assert llm.tokenize("<|endoftext|>".encode(), special=True) == [0]
    assert llm.tokenize("<|endoftext|>".encode(), special=False) != [0]
    assert llm.detokenize([0]) == b"" and llm.detokenize([0], special=True) == b"<|endoftext|>"
    assert (llm.n_ctx(), llm.n_vocab(), llm.token_bos(), llm.token_eos()) == (N_CTX, model.n_vocab, 0, 0)
    assert llm.metadata["general.architecture"] == "llama"
    assert ggraph.Llama(llm.model_path, n_gpu_layers=99, flash_attn=True, use_mlock=True, verbose=False).n_ctx() == 512


BAD_CALLS = [
    dict(temperature=-1), dict(top_p=1.5), dict(min_p=-0.1), dict(typical_p=2.0), dict(top_k=1.5),
    dict(max_tokens="10"), dict(max_tokens=2.5), dict(stop=5), dict(stop=["a", 3]), dict(logprobs=-1),
    dict(logprobs=True), dict(seed=-5), dict(seed="x"), dict(repeat_penalty=0.0), dict(logit_bias={"x": 1.0}),
    dict(logit_bias={10**6: 1.0}), dict(echo="yes"), dict(suffix="x"), dict(mirostat_mode=2), dict(grammar="root ::= x"),
    dict(prompt=3.5), dict(prompt=[1, 2, 10**6]), dict(prompt=list(range(1, N_CTX + 1))),
]


@pytest.mark.parametrize("kw", BAD_CALLS, ids=[next(iter(k)) + "=" + repr(next(iter(k.values())))[:12] for k in BAD_CALLS])
def test_bad_values_raise_one_line(llm, kw):
    kw = {"prompt": PROMPT, **kw}
    with pytest.raises(GGraphError) as e:
        llm.create_completion(**kw)
    assert "\n" not in str(e.value) and str(e.value)


@pytest.mark.parametrize("kw", [dict(n_ctx=-1), dict(n_batch=0), dict(lora_path="x.gguf"), dict(rope_freq_base=1e6),
                                dict(embedding=True, pooling_type=4)])
def test_bad_constructor_arguments(tiny_llama_path, kw):
    with pytest.raises(GGraphError) as e:
        ggraph.Llama(tiny_llama_path, verbose=False, **kw)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_smollm2_chat_equals_greedy_generate(smollm2_path, smollm2_model):
    llm = ggraph.Llama(smollm2_path, n_ctx=512, n_threads=2, verbose=False)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    out = llm.create_chat_completion(msgs, temperature=0, max_tokens=24)
    ids = smollm2_model.tokenize(smollm2_model.apply_chat_template(msgs), add_special=False, parse_special=True)
    ctx = smollm2_model.new_context(n_ctx=512, n_batch=512, n_threads=2)
    expect = list(ctx.generate(ids, n_predict=24))
    assert out["choices"][0]["message"]["content"] == text_of(smollm2_model, expect)
    assert out["choices"][0]["message"]["content"].strip() and out["usage"]["prompt_tokens"] == len(ids)
    chunks = list(llm.create_chat_completion(msgs, temperature=0, max_tokens=24, stream=True))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == out["choices"][0]["message"]["content"]
