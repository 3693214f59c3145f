#!/usr/bin/env python3
"""Reference embeddings from llama.cpp (llama-cpp-python 0.3.36), for tests/test_embeddings.py.

For 3 short texts, llama-cpp-python's Llama(MODEL, embedding=True, pooling_type=P) (defaults:
n_ctx 512, n_batch 512, flash attention off, 2 threads):
    none_<i>          embed(text_i) with pooling none: [n_tokens, n_embd], each text alone
    none_packed       the three texts in ONE batch (sequences 0, 1, 2, as Llama.embed packs them),
                      every token's llama_get_embeddings_ith row [sum n_tokens, n_embd] (not
                      embed(texts): llama-cpp-python 0.3.36 mis-indexes that for texts after the first)
    <pool>_packed     embed(texts) for pool in mean, cls, last: [3, n_embd] (one batch of 3 sequences)
    <pool>_alone      embed(text_i) for each text alone: [3, n_embd]
    mean_packed_l2    embed(texts, normalize=True) with mean pooling: float64 [3, n_embd]
    many_<pool>       embed(MANY) for pool in mean, last: 24 short texts in one batch, so that inputs
                      sit at cell offsets that are not multiples of 16 (llama.cpp's softmax and V sums
                      run in 16-cell blocks) and share ubatch rows with many others: [24, n_embd]
    norm_<m>          llama.cpp's common_embd_normalize(mean_packed[i], m) for m in -1, 0, 1, 2, 3
                      (the function's source is taken from the sdist's vendor/llama.cpp/common/common.cpp
                      and compiled with g++ -O2), float32 [3, n_embd]
    tokens_<i>        the token ids llama.cpp used

    python scripts/make_embedding_fixtures.py MODEL.gguf OUT.npz [--sdist DIR]

Committed: tests/fixtures/llamacpp_embd_smollm2_q4_1.npz (SmolLM2-135M-Instruct.Q4_1.gguf),
tests/fixtures/llamacpp_embd_gemma3_q4_k_m.npz (gemma-3-270m-q4_k_m.gguf) and
tests/fixtures/llamacpp_embd_tiny_f32.npz (scripts/make_tiny_llama.py OUT.gguf: F32, seed 0, tiny).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import re
import subprocess
import tempfile

import numpy as np

TEXTS = ["The cat sat on the mat.", "Hello world", "Embeddings map text to vectors of numbers."]
MANY = [f"Short sentence number {i} about embeddings." for i in range(24)]
POOL = {"none": 0, "mean": 1, "cls": 2, "last": 3}
SDIST = "/tmp/lcp/llama_cpp_python-0.3.36"


def common_embd_normalize_lib(sdist: str):
    """common_embd_normalize compiled from llama.cpp's own source."""
    src = open(os.path.join(sdist, "vendor/llama.cpp/common/common.cpp")).read()
    m = re.search(r"void common_embd_normalize\(.*?\n}\n", src, re.S)
    if not m:
        raise SystemExit("common_embd_normalize not found in common.cpp")
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "n.cpp"), "w") as f:
        f.write('#include <cmath>\n#include <cstdlib>\nextern "C" ' + m.group(0))
    so = os.path.join(d, "n.so")
    subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-o", so, os.path.join(d, "n.cpp")], check=True)
    lib = ctypes.CDLL(so)
    lib.common_embd_normalize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    return lib


def packed_token_embeddings(llm, toks):
    import llama_cpp
    llm._ctx.kv_cache_clear()
    llm._batch.reset()
    for i, t in enumerate(toks):
        llm._batch.add_sequence(t, i, True)
    llm._ctx.decode(llm._batch)
    n, n_embd = sum(len(t) for t in toks), llm.n_embd()
    rows = [np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_ith(llm._ctx.ctx, i), shape=(n_embd,)).copy()
            for i in range(n)]
    llm._ctx.kv_cache_clear()
    llm.reset()
    return np.stack(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--sdist", default=SDIST, help="the unpacked llama-cpp-python sdist (for common.cpp)")
    args = ap.parse_args()
    import llama_cpp
    out = {"texts": np.array(TEXTS), "many": np.array(MANY)}
    for name, p in POOL.items():
        llm = llama_cpp.Llama(args.model, embedding=True, pooling_type=p, n_threads=2, verbose=False)
        if name == "none":
            toks = [llm.tokenize(t.encode()) for t in TEXTS]
            for i, t in enumerate(toks):
                out[f"tokens_{i}"] = np.array(t, np.int32)
                out[f"none_{i}"] = np.array(llm.embed(TEXTS[i]), np.float32)
            out["none_packed"] = packed_token_embeddings(llm, toks)
        else:
            out[f"{name}_packed"] = np.array(llm.embed(TEXTS), np.float32)
            out[f"{name}_alone"] = np.array([llm.embed(t) for t in TEXTS], np.float32)
            if name == "mean":
                out["mean_packed_l2"] = np.array(llm.embed(TEXTS, normalize=True), np.float64)
            if name in ("mean", "last"):
                out[f"many_{name}"] = np.array(llm.embed(MANY), np.float32)
        del llm
    lib = common_embd_normalize_lib(args.sdist)
    for mode in (-1, 0, 1, 2, 3):
        rows = []
        for v in out["mean_packed"]:
            v = np.ascontiguousarray(v, np.float32)
            r = np.empty_like(v)
            lib.common_embd_normalize(v.ctypes.data, r.ctypes.data, v.size, mode)
            rows.append(r)
        out[f"norm_{mode}"] = np.stack(rows)
    out["source"] = np.array(f"llama-cpp-python {llama_cpp.__version__}: scripts/make_embedding_fixtures.py "
                             f"{os.path.basename(args.model)}")
    np.savez_compressed(args.out, **out)
    print(args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    main()
