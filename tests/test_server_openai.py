"""The official `openai` client against a live `ggraph serve` (uvicorn on a free port of 127.0.0.1,
4 slots): models, completion, chat completion, streamed chat, the text at temperature 0 equal to
`ggraph run`'s greedy output; and 8 concurrent streamed requests on the 4 slots, each getting
exactly the text it gets alone."""
import socket
import subprocess
import sys
import threading
import time

import pytest

import ggraph

openai = pytest.importorskip("openai")
pytest.importorskip("uvicorn")

from ggraph.runtime.server.app import create_app      # noqa: E402
from ggraph.runtime.server.engine import Engine       # noqa: E402
from test_server import MSGS, chat_path              # noqa: E402,F401  (the tiny ChatML model fixture)

SLOT_CTX = 128
PROMPTS = ["The cat sat on the mat", "Once upon a time", "The dog ran", "Hello world", "A little bird",
           "The sun rose over", "In the morning", "She opened the door"]


@pytest.fixture(scope="module")
def server(chat_path):
    import uvicorn
    model = ggraph.load(chat_path)
    eng = Engine(model, n_parallel=4, n_ctx=4 * SLOT_CTX, n_threads=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(eng, "tiny"), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t = time.monotonic() + 20
    while not srv.started and time.monotonic() < t:
        time.sleep(0.01)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=60)
    yield client, eng
    srv.should_exit = True
    th.join(10)
    eng.close()


def _ggraph_run(path, prompt, n):
    r = subprocess.run([sys.executable, "-m", "ggraph", "run", "-m", path, "-p", prompt, "-n", str(n), "--temp", "0",
                        "-c", str(SLOT_CTX)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1500:]
    return r.stdout


def test_models_completion_and_chat_with_the_openai_client(server, chat_path):
    client, _ = server
    assert [m.id for m in client.models.list().data] == ["tiny"]
    out = client.completions.create(model="tiny", prompt=PROMPTS[0], max_tokens=12, temperature=0)
    text = out.choices[0].text
    assert out.usage.completion_tokens == 12 and len(text) > 0
    assert _ggraph_run(chat_path, PROMPTS[0], 12) == text + "\n"      # ggraph run prints the generated text
    chat = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=10, temperature=0)
    assert chat.choices[0].message.role == "assistant"
    streamed = client.chat.completions.create(model="tiny", messages=MSGS, max_tokens=10, temperature=0, stream=True)
    parts = [c.choices[0].delta.content or "" for c in streamed if c.choices]
    assert "".join(parts) == chat.choices[0].message.content


def test_eight_concurrent_streams_on_four_slots_each_get_their_solo_text(server):
    client, eng = server
    solo = {}
    for p in PROMPTS:                                      # one at a time first: the reference
        solo[p] = client.completions.create(model="tiny", prompt=p, max_tokens=20, temperature=0,
                                            extra_body={"cache_prompt": False}).choices[0].text
    got = {}

    def go(p):
        s = client.completions.create(model="tiny", prompt=p, max_tokens=20, temperature=0, stream=True,
                                      extra_body={"cache_prompt": False})
        got[p] = "".join(c.choices[0].text for c in s)
    b0 = eng.batcher.n_batched_tokens - eng.batcher.n_batches
    threads = [threading.Thread(target=go, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == solo                                     # no mixed, lost or changed tokens
    assert eng.batcher.n_batched_tokens - eng.batcher.n_batches - b0 > 20   # and they were batched
