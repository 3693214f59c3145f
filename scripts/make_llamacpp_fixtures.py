#!/usr/bin/env python3
"""Reference logits and greedy continuations from llama.cpp (llama-cpp-python), for the tests.

For each prompt of tests/fixtures/prompts.json: llama.cpp tokenizes it (add_special per the
vocab, no special parsing), evaluates it in one batch with logits for every position (llama.cpp's
default context settings: F16 KV cache, flash attention off), then continues greedily one token
per step. Stored per position: the top-K logits and their ids, and the log-sum-exp of the full
row (so probabilities of the stored ids are exact).
Also stored: the same prompt fed token by token (llama.cpp's own spread, for the report).

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


def run(model_path, out, top_k=32, n_gen=32, n_ctx=512, full_vocab_max=0):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_batch=512, n_ubatch=512, logits_all=True,
                          flash_attn=False, n_threads=2, verbose=False, seed=0)
    prompts = json.load(open(PROMPTS))
    n_vocab = llm.n_vocab()
    rec = {"ids": [], "gen": [], "top_ids": [], "top_logits": [], "lse": [], "full": [], "tok_full": [],
           "tok_top_ids": [], "tok_top_logits": [], "tok_lse": []}
    for text in prompts:
        ids = llm.tokenize(text.encode(), add_bos=True, special=False)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
        gen = []
        for _ in range(n_gen):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if llm.n_tokens >= n_ctx:
                break
            gen.append(tok)
            llm.eval([tok])
        # the same prompt, one token per step: llama.cpp's own spread
        llm.reset()
        for t in ids:
            llm.eval([t])
        tok_logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
        for key, lg in (("", logits), ("tok_", tok_logits)):
            order = np.argsort(-lg, axis=1, kind="stable")[:, :top_k]
            rec[key + "top_ids"].append(order.astype(np.int32))
            rec[key + "top_logits"].append(np.take_along_axis(lg, order, 1))
            rec[key + "lse"].append(lse(lg.astype(np.float64)).astype(np.float64))
            if n_vocab <= full_vocab_max:
                rec[key + "full"].append(lg)
        rec["ids"].append(np.array(ids, np.int32))
        rec["gen"].append(np.array(gen, np.int32))
    flat = {}
    for k, v in rec.items():
        if v:
            flat[k] = np.concatenate(v)
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
    a = ap.parse_args()
    run(a.model, a.out, a.top_k, a.n_gen)
