"""The seeded fuzz runs of scripts/fuzz_gguf.py that CI can afford (issue 11).

GGUF: a few hundred mutants of the tiny F32 / Q8_0 / SPM llamas, each loaded, tokenized, decoded and
detokenized in a long-lived worker with a 4 GiB address-space limit and a timeout: zero raw (non
GGraphError) exceptions, zero multi-line errors, zero crashes, zero hangs. The >= 5,000-mutant
campaign against llama.cpp is in docs/reliability.md.

Tokenizer: random str and bytes through the BPE and SPM vocabularies in a child process with a
memory limit and a timeout: no exception, ids in range, deterministic, byte round trips."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import numpy as np

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "fuzz_gguf.py")
N_MUTANTS = 300
SEED = 20261203


def test_seeded_gguf_fuzz(tmp_path):
    out = tmp_path / "fuzz.json"
    r = subprocess.run([sys.executable, SCRIPT, "-n", str(N_MUTANTS), "--seed", str(SEED), "--timeout", "20",
                        "--mem-gb", "4", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode in (0, 1) and out.exists(), r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["n"] == N_MUTANTS
    assert not res["bugs"], json.dumps(res["bugs"][:5], indent=1)
    counts = res["counts"]
    # the run exercises both sides: most mutants are refused, some still load (header edits that keep the
    # file valid, like a changed name or token text, and changes confined to tensor data)
    assert counts.get("refused", 0) > N_MUTANTS // 2, counts
    assert counts.get("loaded-header", 0) > 0 and counts.get("loaded-data", 0) > 0, counts
    assert set(counts) <= {"refused", "loaded-header", "loaded-data"}, counts


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_tokenizer_fuzz():
    r = subprocess.run([sys.executable, SCRIPT, "--tokenizer", "3000",
                        "--seed", str(SEED)], capture_output=True, text=True, timeout=180, preexec_fn=_limit)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["n_failures"] == 0, json.dumps(res["failures"][:5], indent=1)
    assert res["counts"] == {"bpe-f32 ok": 3000, "spm-f32 ok": 3000}


BAD_VALUES = [None, "x", b"x", 1.5, float("nan"), float("inf"), -1, 0, 2**31, 2**63, -2**63, [], [[1]], [1.5], [None],
              {}, {1: 2}, object(), True, np.float32(1.0), np.int64(3), np.array([[1, 2]]), np.array([1.5]),
              range(3), (1, 2), [2**40], [-5]]


def _api_calls(model):
    ctx = model.new_context(n_ctx=32, n_threads=1)
    return {
        "new_context(n_ctx)": lambda v: model.new_context(n_ctx=v, n_threads=1),
        "new_context(n_batch)": lambda v: model.new_context(n_ctx=16, n_batch=v, n_threads=1),
        "new_context(n_ubatch)": lambda v: model.new_context(n_ctx=16, n_ubatch=v, n_threads=1),
        "new_context(n_threads)": lambda v: model.new_context(n_ctx=16, n_threads=v),
        "decode(ids)": lambda v: (ctx.reset(), ctx.decode(v)),
        "decode([id])": lambda v: (ctx.reset(), ctx.decode([v])),
        "decode(logits_all)": lambda v: (ctx.reset(), ctx.decode([1], logits_all=v)),
        "decode(cb_eval)": lambda v: (ctx.reset(), ctx.decode([1], cb_eval=v)),
        "generate(ids)": lambda v: (ctx.reset(), list(ctx.generate(v, n_predict=2))),
        "generate(n_predict)": lambda v: (ctx.reset(), list(ctx.generate([1], n_predict=v))),
        "generate(sampler)": lambda v: (ctx.reset(), list(ctx.generate([1], n_predict=2, sampler=v))),
        "truncate(n_keep)": lambda v: (ctx.reset(), ctx.decode([1, 2]), ctx.truncate(v)),
        "tokenize(text)": lambda v: model.tokenize(v),
        "tokenize(add_special)": lambda v: model.tokenize("hi", add_special=v),
        "tokenize(parse_special)": lambda v: model.tokenize("hi", parse_special=v),
        "detokenize(ids)": lambda v: model.detokenize(v),
        "detokenize([id])": lambda v: model.detokenize([v]),
        "detokenize(remove_special)": lambda v: model.detokenize([1], remove_special=v),
        "token_to_piece(tok)": lambda v: model.token_to_piece(v),
        "token_to_piece(special)": lambda v: model.token_to_piece(1, special=v),
        "apply_chat_template(messages)": lambda v: model.apply_chat_template(v),
    }


def test_api_values_fuzz(tiny_llama_path):
    """Every public API argument with values of every wrong kind: each call either works (the value is
    valid there, e.g. -1 for n_predict) or raises one-line GGraphError; nothing else, ever."""
    import ggraph
    from ggraph.errors import GGraphError
    model = ggraph.load(tiny_llama_path)
    calls = _api_calls(model)
    raw, n = [], 0
    for name, call in calls.items():
        for v in BAD_VALUES:
            n += 1
            try:
                call(v)
            except GGraphError as e:
                assert "\n" not in str(e), (name, v, str(e))
            except Exception as e:      # noqa: BLE001 - the point of the test
                raw.append(f"{name} {v!r:.30}: {type(e).__name__}: {e}")
    assert n == len(calls) * len(BAD_VALUES) >= 500
    assert not raw, "\n".join(raw[:20])
