"""`ggraph serve` (runtime/server/) on the tiny random llama with a ChatML template: OpenAI
completions and chat equal ggraph.Llama's, streams join to the non-stream text and end with
[DONE], llama-server's /completion, /tokenize and /detokenize, 400 bodies naming the field, 401
with --api-key, two slots interleaving with each stream equal to its solo run, a queue with one
slot, a client disconnect freeing its slot (live uvicorn), and the hint without FastAPI."""
import json
import socket
import sys
import threading
import time
import warnings

import pytest

import ggraph
from conftest import load_script

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")          # starlette's note about httpx vs httpx2
    from fastapi.testclient import TestClient

from ggraph.runtime.server.app import create_app      # noqa: E402
from ggraph.runtime.server.engine import Engine       # noqa: E402

SLOT_CTX = 128
PROMPT = "The cat sat on the mat"
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


@pytest.fixture(scope="module")
def chat_path(tiny_chat_path):
    return tiny_chat_path


@pytest.fixture(scope="module")
def model(chat_path):
    return ggraph.load(chat_path)


@pytest.fixture(scope="module")
def solo(chat_path):
    """The reference: ggraph.Llama loading the file itself, one slot's context size."""
    return ggraph.Llama(chat_path, n_ctx=SLOT_CTX, n_threads=2, verbose=False)


def _engine(model, n_parallel):
    eng = Engine(model, n_parallel=n_parallel, n_ctx=SLOT_CTX * n_parallel, n_threads=2)
    assert eng.n_ctx_slot == SLOT_CTX and all(s.llm.model is model for s in eng.slots)   # one set of weights
    return eng


@pytest.fixture(scope="module")
def engine2(model):
    eng = _engine(model, 2)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def client(engine2):
    return TestClient(create_app(engine2, "tiny"))


def ref(solo, fn, *args, **kw):
    solo.reset()
    return fn(*args, **kw)


def sse(lines):
    """data: payloads of a server-sent event stream (JSON decoded; [DONE] kept as the string)."""
    out = []
    for line in lines:
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def post_stream(client, url, body):
    with client.stream("POST", url, json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return sse(r.iter_lines())


def wait_idle(engine, timeout=5.0):
    t = time.monotonic() + timeout
    while engine.stats()["slots_processing"] and time.monotonic() < t:
        time.sleep(0.005)
    return engine.stats()["slots_processing"] == 0


def test_engine_round_robin_queue_cancel_and_errors(model):
    """The scheduler alone (sync iteration, toy tasks): one step per active slot per round, a
    queued job takes the first freed slot, cancel ends a job, a task's error reaches its consumer."""
    from ggraph.errors import GGraphError
    eng = Engine(model, n_parallel=2, n_ctx=2 * SLOT_CTX, n_threads=2, start=False)
    order = []

    def toy(name, n):
        def task(llm, slot_id):
            for i in range(n):
                order.append((name, slot_id))
                yield i if i % 2 == 0 else None           # None: a step with nothing to send
        return task

    def broken(llm, slot_id):
        raise GGraphError("bad value")
        yield

    def endless(llm, slot_id):
        while True:
            yield "tick"

    a, b, c = eng.submit(toy("a", 2)), eng.submit(toy("b", 4)), eng.submit(toy("c", 1))
    eng.start()
    try:
        assert list(a) == [0] and list(b) == [0, 2] and list(c) == [0]
        assert order == [("a", 0), ("b", 1), ("a", 0), ("b", 1), ("b", 1), ("c", 0), ("b", 1)]
        with pytest.raises(GGraphError, match="bad value"):
            list(eng.submit(broken))
        job = eng.submit(endless)
        it = iter(job)
        assert [next(it) for _ in range(3)] == ["tick"] * 3
        job.cancel()
        assert set(it) <= {"tick"} and wait_idle(eng)      # the events made before it, then the end
    finally:
        eng.close()
    with pytest.raises(GGraphError, match="shutting down"):
        eng.submit(endless)


def test_health_and_models(client):
    h = client.get("/health")
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["slots_idle"] == 2
    m = client.get("/v1/models").json()
    assert m["object"] == "list" and [d["id"] for d in m["data"]] == ["tiny"]
    assert m["data"][0]["meta"]["n_ctx_slot"] == SLOT_CTX


@pytest.mark.parametrize("kw", [dict(max_tokens=20, temperature=0), dict(max_tokens=20, temperature=0, logprobs=2),
                                dict(max_tokens=16, temperature=0.9, seed=11, top_k=0, top_p=1.0, min_p=0.0),
                                dict(max_tokens=30, temperature=0, stop=["e", "zz"], echo=True)])
def test_completion_equals_llama(client, solo, kw):
    expect = ref(solo, solo.create_completion, PROMPT, **kw)
    # cache_prompt false: the slot starts from an empty cache, as `expect` did (a fully cached prompt
    # has its last token evaluated alone, whose logits may differ in the last bits: llama-server's caveat)
    out = client.post("/v1/completions", json={"prompt": PROMPT, "model": "whatever", "cache_prompt": False,
                                               **kw}).json()
    assert out["object"] == "text_completion" and out["model"] == "tiny"
    assert out["choices"] == expect["choices"] and out["usage"] == expect["usage"]
    cached = client.post("/v1/completions", json={"prompt": PROMPT, **kw}).json()    # the prefix reused
    assert cached["choices"][0]["text"] == expect["choices"][0]["text"]


def test_stream_joins_to_the_completion_and_ends_with_done(client):
    body = {"prompt": PROMPT, "max_tokens": 24, "temperature": 0, "logprobs": 1}
    whole = client.post("/v1/completions", json=body).json()
    events = post_stream(client, "/v1/completions", {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    usage, chunks = events[-2], events[:-2]
    assert usage["choices"] == [] and usage["usage"] == whole["usage"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert [t for c in chunks[:-1] for t in c["choices"][0]["logprobs"]["token_logprobs"]] == \
        whole["choices"][0]["logprobs"]["token_logprobs"]


def test_chat_completion(client, solo):
    expect = ref(solo, solo.create_chat_completion, MSGS, temperature=0, max_tokens=12)
    out = client.post("/v1/chat/completions", json={"messages": MSGS, "temperature": 0, "max_tokens": 12}).json()
    assert out["object"] == "chat.completion" and out["choices"] == expect["choices"]
    assert out["usage"] == expect["usage"]
    # max_completion_tokens is the newer name of max_tokens
    again = client.post("/v1/chat/completions", json={"messages": MSGS, "temperature": 0,
                                                       "max_completion_tokens": 12}).json()
    assert again["choices"] == expect["choices"]
    events = post_stream(client, "/v1/chat/completions", {"messages": MSGS, "temperature": 0, "max_tokens": 12,
                                                          "stream": True})
    assert events[-1] == "[DONE]" and all(e["object"] == "chat.completion.chunk" for e in events[:-1])
    assert events[0]["choices"][0]["delta"] == {"role": "assistant"}
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == expect["choices"][0]["message"]["content"]
    assert events[-2]["choices"][0]["finish_reason"] == expect["choices"][0]["finish_reason"]
    # logprobs (from an empty cache, as the reference) and a stop string
    kw = dict(temperature=0, max_tokens=12, logprobs=True, top_logprobs=2, stop=["zz"])
    expect = ref(solo, solo.create_chat_completion, MSGS, **kw)
    out = client.post("/v1/chat/completions", json={"messages": MSGS, "cache_prompt": False, **kw}).json()
    assert out["choices"] == expect["choices"] and out["choices"][0]["logprobs"]["content"]


def test_tokenize_detokenize(client, model):
    text = "Hello world, the cat<|endoftext|> sat"
    toks = client.post("/tokenize", json={"content": text}).json()["tokens"]
    assert toks == model.tokenize(text, add_special=False, parse_special=True)
    assert client.post("/detokenize", json={"tokens": toks}).json() == {"content": text}
    with_bos = client.post("/tokenize", json={"content": "Hi", "add_special": True}).json()["tokens"]
    assert with_bos == model.tokenize("Hi", add_special=True, parse_special=True)
    pieces = client.post("/tokenize", json={"content": text, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == toks and "".join(p["piece"] for p in pieces) == text
    parts = client.post("/tokenize", json={"content": "é", "with_pieces": True}).json()["tokens"]
    assert bytes(b for p in parts for b in (p["piece"] if isinstance(p["piece"], list) else p["piece"].encode())) \
        == "é".encode()


def test_llama_server_completion(client, solo):
    expect = ref(solo, solo.create_completion, PROMPT, max_tokens=10, temperature=0)
    out = client.post("/completion", json={"prompt": PROMPT, "n_predict": 10, "temperature": 0}).json()
    assert out["content"] == expect["choices"][0]["text"] and out["stop"] is True
    assert out["tokens_predicted"] == expect["usage"]["completion_tokens"] == 10
    assert out["tokens_evaluated"] == expect["usage"]["prompt_tokens"]
    assert out["stop_type"] == "limit" and out["stopped_limit"] and out["model"] == "tiny" and out["id_slot"] in (0, 1)
    assert out["generation_settings"]["n_predict"] == 10 and out["timings"]["predicted_n"] == 10
    # a stop string: stop_type word and the word; the text stops before it
    word = expect["choices"][0]["text"][3:5]
    cut = client.post("/completion", json={"prompt": PROMPT, "n_predict": 10, "temperature": 0,
                                           "stop": [word]}).json()
    assert cut["content"] == expect["choices"][0]["text"].split(word)[0]
    assert cut["stop_type"] == "word" and cut["stopping_word"] == word and cut["stopped_word"]
    # stream: {content, stop: false} events, then the final one with stop: true; no [DONE] (as llama-server)
    events = post_stream(client, "/completion", {"prompt": PROMPT, "n_predict": 10, "temperature": 0, "stream": True})
    assert all(e["stop"] is False for e in events[:-1]) and events[-1]["stop"] is True
    assert "".join(e["content"] for e in events) == out["content"]
    assert events[-1]["tokens_predicted"] == 10
    assert client.post("/completion", json={"prompt": PROMPT, "n_predict": 0}).json()["tokens_predicted"] == 0


BAD = [
    ("/v1/completions", {"prompt": 3}, "prompt"),
    ("/v1/completions", {"max_tokens": 3}, "prompt"),
    ("/v1/completions", {"prompt": "x", "max_tokens": -1}, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "10"}, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "temperature": "hot"}, "temperature"),
    ("/v1/completions", {"prompt": "x", "top_p": 1.5}, "top_p"),
    ("/v1/completions", {"prompt": "x", "stop": ["a", 1]}, "stop"),
    ("/v1/completions", {"prompt": "x", "echo": "yes"}, "echo"),
    ("/v1/completions", {"prompt": "x", "logit_bias": {"999999": 1.0}}, "logit_bias"),
    ("/v1/completions", {"prompt": "x " * SLOT_CTX}, "prompt"),
    ("/v1/completions", {"prompt": "x " * SLOT_CTX, "stream": True}, "prompt"),
    ("/v1/chat/completions", {}, "messages"),
    ("/v1/chat/completions", {"messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
    ("/v1/chat/completions", {"messages": MSGS, "response_format": {"type": "yaml"}}, "response_format"),
    ("/completion", {"prompt": "x", "n_predict": -2}, "n_predict"),
    ("/tokenize", {"content": 5}, "content"),
    ("/detokenize", {"tokens": [1, 10**6]}, "tokens"),
]


@pytest.mark.parametrize("url,body,param", BAD, ids=[f"{u}-{p}-{i}" for i, (u, _, p) in enumerate(BAD)])
def test_bad_requests_are_400_naming_the_field(client, url, body, param):
    r = client.post(url, json=body)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and param in err["message"]
    if body.get("prompt") == "x " * SLOT_CTX:                 # longer than the slot's context
        assert err["code"] == "context_length_exceeded" and "n_ctx=128" in err["message"]


def test_malformed_json_and_unknown_fields(client):
    r = client.post("/v1/completions", content=b'{"prompt": "x",', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = client.post("/v1/completions", content=b"[1, 2]")
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("the request body must be a JSON object")
    # no content type (curl -d): read as JSON all the same; unknown fields are ignored
    r = client.post("/v1/completions", content=b'{"prompt": "x", "max_tokens": 2, "frobnicate": 1}',
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 2


def test_api_key(engine2):
    c = TestClient(create_app(engine2, "tiny", api_key="s3cret"))
    assert c.get("/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret"}):
        r = c.get("/v1/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert c.post("/v1/completions", json={"prompt": "x"}).status_code == 401
    assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    ok = c.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


def gate(monkeypatch, engine, ready):
    """Hold the engine's rounds until ready(engine) (both requests are in), then log each round's
    busy slots and queue length."""
    rounds, orig, deadline = [], engine.step_all_active_slots, time.monotonic() + 10

    def step():
        if not rounds and not ready(engine) and time.monotonic() < deadline:
            time.sleep(0.001)
            return
        rounds.append(([s.id for s in engine.slots if s.busy], len(engine._queue)))
        orig()
    monkeypatch.setattr(engine, "step_all_active_slots", step)
    return rounds


def concurrent_streams(client, bodies):
    out = [None] * len(bodies)

    def go(i):
        out[i] = post_stream(client, "/v1/completions", bodies[i])
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def joined(events):
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    return ("".join(c["choices"][0]["text"] for c in chunks),
            [x for c in chunks if c["choices"][0]["logprobs"] for x in c["choices"][0]["logprobs"]["token_logprobs"]])


PROMPTS = ["The dog ran in the park", "Once upon a time there was"]


def test_two_streams_interleave_on_two_slots(client, engine2, solo, monkeypatch):
    kw = dict(max_tokens=30, temperature=0, logprobs=1, cache_prompt=False)
    expect = [ref(solo, solo.create_completion, p, **{k: v for k, v in kw.items() if k != "cache_prompt"})["choices"][0]
              for p in PROMPTS]
    rounds = gate(monkeypatch, engine2, lambda e: all(s.busy for s in e.slots))
    b0, t0 = engine2.batcher.n_batches, engine2.batcher.n_batched_tokens
    got = concurrent_streams(client, [{"prompt": p, "stream": True, **kw} for p in PROMPTS])
    # the two slots' next tokens went through one decode_batch per round (continuous batching)
    n_batches, n_tokens = engine2.batcher.n_batches - b0, engine2.batcher.n_batched_tokens - t0
    assert n_tokens >= 2 * 25 and n_tokens - n_batches >= 15, (n_batches, n_tokens)   # >= 15 batches of 2
    for g, e in zip(got, expect):
        text, lps = joined(g)
        assert text == e["text"] and lps == e["logprobs"]["token_logprobs"]      # bit-identical to solo
    both = [r for r, _ in rounds if r == [0, 1]]
    assert rounds[0][0] == [0, 1] and len(both) >= 10        # one token each per round, side by side
    assert wait_idle(engine2)


def test_one_slot_queues_the_second_request(model, solo, monkeypatch):
    eng = _engine(model, 1)
    try:
        c = TestClient(create_app(eng, "tiny"))
        kw = dict(max_tokens=20, temperature=0)
        expect = [ref(solo, solo.create_completion, p, **kw)["choices"][0]["text"] for p in PROMPTS]
        rounds = gate(monkeypatch, eng, lambda e: e.slots[0].busy and len(e._queue) == 1)
        got = concurrent_streams(c, [{"prompt": p, "stream": True, **kw} for p in PROMPTS])
        assert sorted(joined(g)[0] for g in got) == sorted(expect)
        assert rounds[0] == ([0], 1)                       # the second waited in the queue...
        assert rounds[-1][1] == 0                          # ...and ran once the slot was free
        assert c.get("/health").json() == {"status": "ok", "slots_idle": 1, "slots_processing": 0,
                                           "requests_queued": 0}
    finally:
        eng.close()


def test_disconnect_frees_the_slot_live_uvicorn(model, monkeypatch):
    import httpx
    import uvicorn
    eng = _engine(model, 1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(eng, "tiny"), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    orig = eng.step_all_active_slots

    def slow():                        # a slow model: 5 ms per round
        time.sleep(0.005)
        orig()
    monkeypatch.setattr(eng, "step_all_active_slots", slow)
    try:
        t = time.monotonic() + 10
        while not server.started and time.monotonic() < t:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        body = {"prompt": PROMPT, "max_tokens": None, "temperature": 0, "stream": True,   # until the context is full
                "logit_bias": {str(model.vocab.eos_id): -1000.0}}
        with httpx.Client(timeout=10) as h:
            with h.stream("POST", url + "/v1/completions", json=body) as r:
                assert r.status_code == 200
                next(r.iter_lines())
            t0 = time.monotonic()
            assert wait_idle(eng, 2.0)                      # freed long before the ~120 tokens were made
            assert time.monotonic() - t0 < 0.5
            r = h.post(url + "/v1/completions", json={"prompt": PROMPT, "max_tokens": 4, "temperature": 0})
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
    finally:
        server.should_exit = True
        th.join(10)
        eng.close()


def test_serve_without_fastapi_says_how_to_install(monkeypatch, capsys):
    from ggraph.runtime.apps.cli import main
    monkeypatch.setitem(sys.modules, "fastapi", None)      # import fastapi -> ImportError
    assert main(["serve", "-m", "unused.gguf"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "ggraph[server]"' in err[0]


def test_chat_response_format_json(client, solo):
    """response_format json_object constrains the reply to JSON, as ggraph.Llama does (the same text)."""
    body = {"messages": MSGS, "max_tokens": 40, "temperature": 0, "response_format": {"type": "json_object"},
            "cache_prompt": False}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    want = ref(solo, solo.create_chat_completion, MSGS, max_tokens=40, temperature=0,
               response_format={"type": "json_object"})
    got = r.json()["choices"][0]
    assert got["message"]["content"] == want["choices"][0]["message"]["content"]
    if got["finish_reason"] == "stop":
        json.loads(got["message"]["content"])
