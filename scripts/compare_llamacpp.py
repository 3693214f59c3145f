#!/usr/bin/env python3
"""Live agreement report: ggraph vs llama.cpp, beside llama.cpp vs itself (the table of docs/agreement.md).

For every prompt: llama.cpp evaluates it in one batch (logits at every position) and continues
greedily for N tokens; llama.cpp again, feeding the prompt one token per step (its own legitimate
spread); ggraph like the first. Full-vocabulary KL (llama.cpp batch as P), top-1 agreement and
identical greedy continuations are reported for both pairs.

    python scripts/compare_llamacpp.py MODEL.gguf [--prompts tests/fixtures/prompts.json] [--n-gen 32]

A thin wrapper over runtime/apps/compare.py; `ggraph compare -m MODEL --prompts FILE --self-spread`
gives the same numbers with per-prompt detail.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--prompts", default=os.path.join(HERE, "..", "tests", "fixtures", "prompts.json"))
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import ggraph
    from ggraph.runtime.apps.compare import (INSTALL_HINT, Settings, ggraph_greedy, import_llama_cpp, kl_full,
                                             llamacpp_greedy, llamacpp_tokenize, new_llama)
    llama_cpp = import_llama_cpp()
    if llama_cpp is None:
        sys.exit(INSTALL_HINT)
    prompts = json.load(open(a.prompts))
    st = Settings(a.n_ctx, 512, a.threads, a.n_gen)
    llm = new_llama(llama_cpp, a.model, st)
    model = ggraph.load(a.model)
    ctx = model.new_context(n_ctx=a.n_ctx, n_threads=a.threads)
    rows = {"ggraph": [], "llama.cpp token-by-token": []}
    for text in prompts:
        ids = llamacpp_tokenize(llm, text)
        ref, ref_gen, _ = llamacpp_greedy(llm, ids, a.n_gen)
        tok, tok_gen, _ = llamacpp_greedy(llm, ids, a.n_gen, token_by_token=True)
        ours, our_gen, _ = ggraph_greedy(ctx, ids, a.n_gen)
        for key, lg, gen in (("ggraph", ours, our_gen), ("llama.cpp token-by-token", tok, tok_gen)):
            rows[key].append((kl_full(ref, lg), lg.argmax(1) == ref.argmax(1), gen == ref_gen))
    print(f"model: {os.path.basename(a.model)}; {len(prompts)} prompts; reference: llama.cpp "
          f"{llama_cpp.__version__} (prompt in one batch, F16 KV, flash attention off), {a.threads} threads")
    print("| compared with llama.cpp batch | mean KL | max KL | top-1 | identical continuations |")
    print("|---|---|---|---|---|")
    for key, r in rows.items():
        kl = np.concatenate([x[0] for x in r])
        t1 = np.concatenate([x[1] for x in r]).mean()
        same = sum(x[2] for x in r)
        print(f"| {key} | {kl.mean():.3g} | {kl.max():.3g} | {t1:.4f} | {same}/{len(r)} ({same / len(r):.0%}) |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
