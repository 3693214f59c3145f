#!/usr/bin/env python3
"""Reference logits and greedy continuations from llama.cpp (llama-cpp-python), for the tests.

For each prompt of tests/fixtures/prompts.json: llama.cpp tokenizes it (add_special per the
vocab, no special parsing), evaluates it in one batch with logits for every position (llama.cpp's
default context settings: F16 KV cache, flash attention off), then continues greedily one token
per step. Stored per position: the top-K logits and their ids, and the log-sum-exp of the full
row (so probabilities of the stored ids are exact).
Also stored: llama.cpp against itself when the same prompt is fed token by token (full-vocabulary
KL per position, top-1 agreement, identical continuations): the spread ggraph is measured against.
For a mixture-of-experts llama (GGUF key llama.expert_count), qwen3moe, qwen2moe or olmoe, also stored: layer 0's
routing per prompt position from an independent float64 numpy pass over the GGUF weights (not
llama.cpp's numbers; for F32 weights mostly within ~2e-7 of llama.cpp's ffn_moe_probs-0, at ~1% of
positions up to ~1e-4 (qwen3moe, qwen2moe) where an F16 rounding of Q, K or the attention probabilities
falls the other way; for Q8_0 up to ~0.03 (qwen3moe) / ~0.08 (qwen2moe) as llama.cpp rounds activations
to Q8_0): the router softmax probabilities l0_probs [positions, n_expert]
and the selected experts l0_experts [positions, n_expert_used], best first (near-ties: look at the
gap in l0_probs).

    python scripts/make_llamacpp_fixtures.py MODEL.gguf OUT.npz [--top-k 32] [--n-gen 32] [--threads 2]
        [--model-cmd "COMMAND THAT MADE MODEL"]

--model-cmd: the fixture's source string also names that command and this one (without it, source
is what it always was, so the older fixtures regenerate byte-identically).

The committed fixtures (models from scripts/make_tiny_llama.py, seed 0):
    tests/fixtures/llamacpp_tiny_f32.npz      tiny.gguf (--config tiny), --top-k 64
    tests/fixtures/llamacpp_tiny_moe_f32.npz  tiny-moe-F32.gguf (--config moe), --top-k 32
    tests/fixtures/llamacpp_tiny_moe_q8_0.npz tiny-moe-Q8_0.gguf (--config moe --type Q8_0), --top-k 32
and from scripts/make_tiny_model.py (seed 0), each with --top-k 32 --n-gen 32 --threads 1 and --model-cmd
(their source strings hold both commands), ARCH in qwen2 qwen3 qwen3moe qwen2moe gpt2 phi3 olmoe gemma2
granite, TYPE in F32 Q8_0:
    tests/fixtures/llamacpp_tiny_ARCH_{f32,q8_0}.npz  tiny-ARCH-TYPE.gguf (make_tiny_model.py ARCH --type TYPE)
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROMPTS = os.path.join(HERE, "..", "tests", "fixtures", "prompts.json")


def lse(x):
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def llamacpp_run(llm, ids, n_gen, n_ctx, token_by_token):
    """Prompt (one batch, or one token per step), then greedy continuation one token per step, stopping
    at a full context (ggraph compare's llamacpp_greedy)."""
    from ggraph.runtime.apps.compare import llamacpp_greedy
    logits, gen, _ = llamacpp_greedy(llm, ids, min(n_gen, n_ctx - len(ids)), token_by_token)
    return logits, gen


def _rope(v, c, s):
    """rope NORM mode on [T, H, hd]: adjacent pairs rotate."""
    out = v.copy()
    out[..., 0::2] = v[..., 0::2] * c - v[..., 1::2] * s
    out[..., 1::2] = v[..., 0::2] * s + v[..., 1::2] * c
    return out


def _rope_neox(v, c, s):
    """rope NEOX mode on [T, H, hd]: element i rotates with element i + hd/2."""
    h = v.shape[-1] // 2
    return np.concatenate([v[..., :h] * c - v[..., h:] * s, v[..., :h] * s + v[..., h:] * c], -1)


# archs whose layer 0 moe_layer0_routing knows (llama.cpp's llama_model_rope_type: llama NORM, qwen NEOX)
ROPE_NEOX = {"llama": False, "qwen3moe": True, "qwen2moe": True, "olmoe": True}
# l0_source's note on the attention, per arch (llama: none)
ATTN_NOTE = {"qwen3moe": "; Q/K RMS-normed per head before rope, rope NEOX",
             "qwen2moe": "; Q/K/V biases, rope NEOX (the shared expert does not enter the router)",
             "olmoe": "; Q/K RMS-normed over the whole projection before the head split, rope NEOX"}


def routing_arch(model_path):
    """general.architecture of a GGUF."""
    from gguf import GGUFReader
    return GGUFReader(model_path).fields["general.architecture"].contents()


def moe_layer0_routing(model_path, prompt_ids):
    """Layer 0's router of a MoE GGUF (arch llama with llama.expert_count, qwen3moe or qwen2moe), in float64 from
    the dequantized weights (K, V, Q and the attention probabilities rounded to F16 like llama.cpp's F16
    KV cache, nothing else rounded): softmax probabilities [positions, n_expert] and the top
    n_expert_used experts, best first (ties: lower index first, like llama.cpp's argsort for
    n_expert <= 16). qwen3moe: per-head RMS norms of Q and K before rope, rope NEOX. qwen2moe: Q/K/V
    biases (added before rope), rope NEOX; its shared expert is added after the router and does not
    change it. None for a dense model or another arch."""
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize
    r = GGUFReader(model_path)
    arch = r.fields["general.architecture"].contents()
    if arch not in ROPE_NEOX:
        return None
    m = {k[len(arch) + 1:]: f.contents() for k, f in r.fields.items() if k.startswith(arch + ".")}
    if not m.get("expert_count"):
        return None
    W = {t.name: dequantize(np.asarray(t.data), GGMLQuantizationType(int(t.tensor_type))).astype(np.float64)
         .reshape(tuple(int(x) for x in reversed(t.shape))) for t in r.tensors
         if t.name == "token_embd.weight" or t.name.startswith("blk.0.")}
    n_head, n_kv, k_used = m["attention.head_count"], m["attention.head_count_kv"], m["expert_used_count"]
    eps, base = m["attention.layer_norm_rms_epsilon"], m.get("rope.freq_base", 10000.0)
    rope = _rope_neox if ROPE_NEOX[arch] else _rope
    f16 = lambda a: a.astype(np.float16).astype(np.float64)
    rms = lambda v, w: v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * w
    probs = []
    for ids in prompt_ids:
        x = W["token_embd.weight"][ids]
        T, D = x.shape
        hd = m.get("attention.key_length", D // n_head)
        ang = np.arange(T)[:, None] * base ** (-np.arange(0, hd, 2) / hd)[None, :]
        cs = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        h = rms(x, W["blk.0.attn_norm.weight"])
        proj = lambda n: h @ W[f"blk.0.attn_{n}.weight"].T + W.get(f"blk.0.attn_{n}.bias", 0.0)
        q, k = proj("q"), proj("k")
        if arch == "olmoe":         # norms over the whole projection, before the head split
            q, k = rms(q, W["blk.0.attn_q_norm.weight"]), rms(k, W["blk.0.attn_k_norm.weight"])
        q, k = q.reshape(T, n_head, hd), k.reshape(T, n_kv, hd)
        if "blk.0.attn_q_norm.weight" in W and arch != "olmoe":
            q, k = rms(q, W["blk.0.attn_q_norm.weight"]), rms(k, W["blk.0.attn_k_norm.weight"])
        q, k = rope(q, *cs), rope(k, *cs)
        v = proj("v").reshape(T, n_kv, hd)
        att = np.empty((T, n_head, hd))
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for hh in range(n_head):
            kv = hh // (n_head // n_kv)
            sc = f16(q[:, hh]) @ f16(k[:, kv]).T / np.sqrt(hd) + mask
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            att[:, hh] = f16(sc / sc.sum(-1, keepdims=True)) @ f16(v[:, kv])
        x = x + att.reshape(T, n_head * hd) @ W["blk.0.attn_output.weight"].T
        logits = rms(x, W["blk.0.ffn_norm.weight"]) @ W["blk.0.ffn_gate_inp.weight"].T   # [T, n_expert]
        p = np.exp(logits - logits.max(-1, keepdims=True))
        probs.append(p / p.sum(-1, keepdims=True))
    probs = np.concatenate(probs)
    return probs, np.argsort(-probs, axis=1, kind="stable")[:, :k_used].astype(np.int32)


def run(model_path, out, top_k=32, n_gen=32, n_ctx=512, n_prompts=None, n_threads=2, model_cmd=None):
    """model_cmd: the command that made MODEL; if given, source also names it and this script's command
    (without it, source is as it always was, so fixtures of the older models regenerate identically)."""
    import llama_cpp
    # the thread count does not change llama.cpp's numbers (every output is one full dot product)
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_batch=512, n_ubatch=512, logits_all=True,
                          flash_attn=False, n_threads=n_threads, verbose=False, seed=0)
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
    source = (f"llama-cpp-python {llama_cpp.__version__}, {os.path.basename(model_path)}, "
              f"n_ctx={n_ctx}, F16 KV, flash_attn off, prompt in one batch")
    if model_cmd:
        rel = os.path.relpath(os.path.abspath(out), ROOT)
        cmd = (f"python scripts/make_llamacpp_fixtures.py {os.path.basename(model_path)} "
               f"{out if rel.startswith('..') else rel} --top-k {top_k} --n-gen {n_gen} --threads {n_threads}"
               + (f" --n-prompts {n_prompts}" if n_prompts is not None else ""))
        source += f"; model: {model_cmd}; fixture: {cmd}"
    flat["source"] = np.array(source)
    routing = moe_layer0_routing(model_path, rec["ids"])
    if routing is not None:
        flat["l0_probs"], flat["l0_experts"] = routing
        l0_source = ("layer 0 router, float64 numpy from the dequantized GGUF weights (F16-rounded "
                     "K/V/Q/attention probs), not llama.cpp; l0_experts best first")
        l0_source += ATTN_NOTE.get(routing_arch(model_path), "")
        flat["l0_source"] = np.array(l0_source)
    np.savez_compressed(out, **flat)
    print(f"wrote {out}: {len(prompts)} prompts, {flat['offsets'][-1]} positions, vocab {n_vocab}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--n-prompts", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-cmd", default=None,
                    help="the command that made MODEL, recorded in the fixture's source with this one")
    a = ap.parse_args()
    run(a.model, a.out, a.top_k, a.n_gen, n_prompts=a.n_prompts, n_threads=a.threads, model_cmd=a.model_cmd)
