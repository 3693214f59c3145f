#!/usr/bin/env python3
"""Reference logits and greedy continuations from llama.cpp (llama-cpp-python), for the tests.

For each prompt of tests/fixtures/prompts.json: llama.cpp tokenizes it (add_special per the
vocab, no special parsing), evaluates it in one batch with logits for every position (llama.cpp's
default context settings: F16 KV cache, flash attention off), then continues greedily one token
per step. Stored per position: the top-K logits and their ids, and the log-sum-exp of the full
row (so probabilities of the stored ids are exact).
Also stored: llama.cpp against itself when the same prompt is fed token by token (full-vocabulary
KL per position, top-1 agreement, identical continuations): the spread ggraph is measured against.

    python scripts/make_llamacpp_fixtures.py MODEL.gguf OUT.npz [--top-k 32] [--n-gen 32]
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = os.path.join(HERE, "..", "tests", "fixtures", "prompts.json")


def lse(x):
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def llamacpp_run(llm, ids, n_gen, n_ctx, token_by_token):
    """Prompt (one batch, or one token per step), then greedy continuation one token per step."""
    llm.reset()
    if token_by_token:
        for t in ids:
            llm.eval([t])
    else:
        llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
    gen = []
    for _ in range(n_gen):
        if llm.n_tokens >= n_ctx:
            break
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        gen.append(tok)
        if len(gen) < n_gen:
            llm.eval([tok])
    return logits, gen


def run(model_path, out, top_k=32, n_gen=32, n_ctx=512, n_prompts=None):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_batch=512, n_ubatch=512, logits_all=True,
                          flash_attn=False, n_threads=2, verbose=False, seed=0)
    prompts = json.load(open(PROMPTS))[:n_prompts]
    n_vocab = llm.n_vocab()
    rec = {"ids": [], "gen": [], "top_ids": [], "top_logits": [], "lse": [], "self_kl": [], "self_top1": [],
           "self_same": []}
    for text in prompts:
        ids = llm.tokenize(text.encode(), add_bos=True, special=False)
        logits, gen = llamacpp_run(llm, ids, n_gen, n_ctx, token_by_token=False)
        # the same prompt, one token per step: llama.cpp's own spread (full-vocabulary KL, batch as P)
        tok_logits, tok_gen = llamacpp_run(llm, ids, n_gen, n_ctx, token_by_token=True)
        lp = logits.astype(np.float64) - lse(logits.astype(np.float64))[:, None]
        lq = tok_logits.astype(np.float64) - lse(tok_logits.astype(np.float64))[:, None]
        rec["self_kl"].append((np.exp(lp) * (lp - lq)).sum(1))
        rec["self_top1"].append(logits.argmax(1) == tok_logits.argmax(1))
        rec["self_same"].append(np.array([gen == tok_gen]))
        order = np.argsort(-logits, axis=1, kind="stable")[:, :top_k]
        rec["top_ids"].append(order.astype(np.int32))
        rec["top_logits"].append(np.take_along_axis(logits, order, 1))
        rec["lse"].append(lse(logits.astype(np.float64)))
        rec["ids"].append(np.array(ids, np.int32))
        rec["gen"].append(np.array(gen, np.int32))
    flat = {k: np.concatenate(v) for k, v in rec.items()}
    flat["offsets"] = np.cumsum([0] + [len(x) for x in rec["ids"]]).astype(np.int32)
    flat["gen_offsets"] = np.cumsum([0] + [len(x) for x in rec["gen"]]).astype(np.int32)
    flat["source"] = np.array(f"llama-cpp-python {llama_cpp.__version__}, {os.path.basename(model_path)}, "
                              f"n_ctx={n_ctx}, F16 KV, flash_attn off, prompt in one batch")
    np.savez_compressed(out, **flat)
    print(f"wrote {out}: {len(prompts)} prompts, {flat['offsets'][-1]} positions, vocab {n_vocab}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--n-prompts", type=int, default=None)
    a = ap.parse_args()
    run(a.model, a.out, a.top_k, a.n_gen, n_prompts=a.n_prompts)
