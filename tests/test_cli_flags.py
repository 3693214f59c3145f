"""CLI flags that explain and steer a run: --version, -r/--reverse-prompt (llama.cpp's antiprompt,
matched across token boundaries), -v/--verbose."""
import subprocess
import sys

import pytest

import ggraph
from conftest import load_script


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_script("make_tiny_llama").make(str(tmp_path_factory.mktemp("cli") / "tiny.gguf"), "F32", 0, "tiny")


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ggraph", *args], capture_output=True, text=True, timeout=300)


def test_version():
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"ggraph {ggraph.__version__}"


def test_reverse_prompt_stops_across_token_boundaries(tiny):
    model = ggraph.load(tiny)
    ctx = model.new_context(n_ctx=256, n_threads=1)
    toks = list(ctx.generate(model.tokenize("The cat"), n_predict=12))
    pieces = [model.token_to_piece(t).decode("utf-8", "replace") for t in toks]
    full, ends = "", []
    for piece in pieces:
        full += piece
        ends.append(len(full))
    # a 2-character stop whose first occurrence spans the boundary after token i
    i = next(k for k in range(1, len(pieces) - 1) if "\ufffd" not in full[:ends[k + 1]]
             and full.find(full[ends[k] - 1:ends[k] + 1]) == ends[k] - 1)
    stop = full[ends[i] - 1:ends[i] + 1]
    r = _run("run", "-m", tiny, "-p", "The cat", "-n", "12", "--temp", "0", "-r", stop)
    assert r.returncode == 0, r.stderr[-800:]
    assert r.stdout == full[:ends[i + 1]] + "\n"       # up to the token that completes it, nothing after


def test_verbose_reports_model_and_timings(tiny):
    r = _run("run", "-m", tiny, "-p", "The cat", "-n", "3", "--temp", "0", "-v")
    assert r.returncode == 0 and "params" in r.stderr and "total time" in r.stderr
    quiet = _run("run", "-m", tiny, "-p", "The cat", "-n", "3", "--temp", "0")
    assert "params" not in quiet.stderr


def test_every_flag_has_help():
    import argparse
    from ggraph.runtime.apps.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [(name, a.option_strings or a.dest) for name, p in sub.choices.items() for a in p._actions
               if not a.help and not isinstance(a, argparse._HelpAction)]
    assert not missing, missing


def _chat(path, *args, text="hello there\n"):
    return subprocess.run([sys.executable, "-m", "ggraph", "chat", "-m", path, "-n", "16", "--temp", "0", *args],
                          input=text, capture_output=True, text=True, timeout=300)


def test_chat_reverse_prompt_and_verbose(tiny_chat_path):
    full = _chat(tiny_chat_path)
    assert full.returncode == 0, full.stderr[-800:]
    reply = full.stdout.strip("\n")
    assert len(reply) > 6
    stop = reply[3:5]
    cut = _chat(tiny_chat_path, "-r", stop, "-v")
    assert cut.returncode == 0, cut.stderr[-800:]
    out = cut.stdout.strip("\n")
    assert stop in out and reply.startswith(out) and len(out) < len(reply)
    assert out.find(stop) + len(stop) > len(out) - 8       # it ends with the token that completed the stop
    assert "params" in cut.stderr and "prompt eval time" in cut.stderr and "eval time" in cut.stderr
    assert "params" not in full.stderr
