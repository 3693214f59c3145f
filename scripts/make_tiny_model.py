#!/usr/bin/env python3
"""Write a tiny random GGUF of another llama.cpp arch (qwen2, qwen3, qwen3moe, qwen2moe) that llama.cpp loads.

Deterministic like scripts/make_tiny_llama.py, whose vocabulary (byte-level BPE, pre-tokenizer
'smollm'), tokenizer keys, weight scales and quantization (gguf-py's port of llama.cpp's reference
quantizers) it reuses. Every arch: n_embd 64, 4 heads, 2 KV heads, head_dim 16, 2 layers,
n_ctx_train 512, rope freq base 1e6, rms eps 1e-6; keys under the arch's prefix (qwen3.embedding_length, ...).
1-D tensors (norms, biases) and MoE routers stay F32 in every file type, as llama.cpp's quantizer does.

    python scripts/make_tiny_model.py ARCH OUT.gguf [--type F32|F16|BF16|Q8_0|Q4_0|Q4_1|Q5_0|Q5_1] [--seed 0]

  qwen2     llama's layer plus F32 biases blk.N.attn_{q,k,v}.bias; dense FFN n_ff 96. llama.cpp
            ropes it NEOX-style (halves rotate, not adjacent pairs): implied by the arch, no key.
  qwen3     no biases; per-head RMS norms blk.N.attn_{q,k}_norm.weight (ne [head_dim]) applied to Q and
            K before rope (NEOX); dense FFN n_ff 96; keys attention.key_length / value_length (= head_dim)
            like the converter writes for Qwen3 (its configs name head_dim).
  qwen3moe  qwen3's attention plus a mixture of experts: 4 experts, top 2, expert width 48
            (qwen3moe.expert_feed_forward_length, the key llama.cpp reads for it; feed_forward_length 96
            is written too, like real Qwen3-MoE files, and llama.cpp does not use it when the expert
            width is given); router blk.N.ffn_gate_inp.weight ne [n_embd, n_expert], experts
            ffn_{gate,up}_exps ne [n_embd, n_ff_exp, n_expert], ffn_down_exps ne [n_ff_exp, n_embd, n_expert].
            llama.cpp's qwen3moe graph: softmax over all experts, top-k, the k weights renormalized to
            sum 1 (hard-coded norm_w=true, no GGUF key), no extra scale.
            Rows of 48 are not whole 32-blocks: in the block formats ffn_down_exps is F16, as
            llama.cpp's quantizer makes it (the other tensors get the file's format).
  qwen2moe  qwen2's attention (F32 q/k/v biases, NEOX rope, no key_length / value_length) plus a mixture
            of experts and a shared expert: 4 experts, top 2, expert width 64 (expert_feed_forward_length;
            64 = two 32-blocks, so every expert tensor takes the file's format), router and experts named
            and shaped as qwen3moe's; the shared expert blk.N.ffn_{gate,up}_shexp.weight ne [n_embd,
            n_ff_shexp], ffn_down_shexp ne [n_ff_shexp, n_embd], n_ff_shexp 64
            (qwen2moe.expert_shared_feed_forward_length), and its gate blk.N.ffn_gate_inp_shexp.weight
            ne [n_embd] (1-D, so F32). feed_forward_length 96 is written too (llama.cpp reads it only as
            a fallback for the two widths). llama.cpp's qwen2moe graph: softmax over all experts,
            top-k, the k weights NOT renormalized (hard-coded norm_w=false, no GGUF key; the
            expert_weights_scale it passes stays 0 = no scale, as the loader reads no such key for
            qwen2moe), plus the shared expert's SwiGLU output times sigmoid(ffn_gate_inp_shexp . x)
            (one scalar per token, computed as silu(g)/g), x the same ffn-normed input.

Checked against llama-cpp-python 0.3.36: every --type is, tensor for tensor (type and bytes), what
llama_model_quantize with pure=True makes of the F32 file (Q8_0, F16, BF16 also without pure; without it
Q4_*/Q5_* differ in output.weight only, which llama.cpp's type mix gives another format).

No arch has rope.dimension_count (real Qwen files do not; llama.cpp takes head_dim) or a tied output:
output.weight is its own matrix like make_tiny_llama's.

A new arch is an ARCHS entry (hyperparameters) plus a function listing its tensors (Tensor specs, drawn
in list order from one numpy Generator(seed)).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
from typing import NamedTuple

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tiny_llama = _load_script("make_tiny_llama")
FILE_TYPES = tiny_llama.FILE_TYPES


class Tensor(NamedTuple):
    name: str
    shape: tuple       # numpy shape = reversed ggml ne
    std: float
    mean: float = 0.0
    f32: bool = False  # F32 in every file type (1-D tensors always are)


# --- tensor lists. Scales are make_tiny_llama's: large enough that next-token distributions are peaked,
# std relative to the 64-wide / n_ff 192 tiny llama by 1/sqrt(fan-in).

def _scales(c):
    return (64 / c["n_embd"]) ** 0.5, (192 / c.get("n_ff_exp", c["n_ff"])) ** 0.5


def _outer(c, n_vocab):
    s_in, _ = _scales(c)
    return [Tensor("token_embd.weight", (n_vocab, c["n_embd"]), 1.0),
            Tensor("output_norm.weight", (c["n_embd"],), 0.1, 1.0),
            Tensor("output.weight", (n_vocab, c["n_embd"]), 0.5 * s_in)]


def _attention(c, i, bias=False, qk_norm=False):
    s_in, _ = _scales(c)
    n_embd, hd = c["n_embd"], c["head_dim"]
    n_q, n_kv = hd * c["n_head"], hd * c["n_head_kv"]
    p = f"blk.{i}."
    t = [Tensor(p + "attn_norm.weight", (n_embd,), 0.1, 1.0)]
    for name, n_out, std, b_std in (("attn_q", n_q, 0.35, 0.5), ("attn_k", n_kv, 0.35, 0.5),
                                    ("attn_v", n_kv, 0.2, 0.3)):
        t.append(Tensor(p + name + ".weight", (n_out, n_embd), std * s_in))
        if bias:
            # biases about a fifth of the projections' spread (~2.8 for q, k): they move the logits
            t.append(Tensor(p + name + ".bias", (n_out,), b_std))
    if qk_norm:
        # per-head RMS norm weights (shared by all heads), near 1 with some spread
        t += [Tensor(p + "attn_q_norm.weight", (hd,), 0.2, 1.0),
              Tensor(p + "attn_k_norm.weight", (hd,), 0.2, 1.0)]
    t.append(Tensor(p + "attn_output.weight", (n_embd, n_q), 0.2 * s_in))
    return t


def _ffn(c, i):
    s_in, s_ff = _scales(c)
    n_embd, n_ff, p = c["n_embd"], c["n_ff"], f"blk.{i}."
    return [Tensor(p + "ffn_norm.weight", (n_embd,), 0.1, 1.0),
            Tensor(p + "ffn_gate.weight", (n_ff, n_embd), 0.2 * s_in),
            Tensor(p + "ffn_up.weight", (n_ff, n_embd), 0.2 * s_in),
            Tensor(p + "ffn_down.weight", (n_embd, n_ff), 0.15 * s_ff)]


def _moe_ffn(c, i):
    s_in, s_ff = _scales(c)
    n_embd, n_ff, n_exp, p = c["n_embd"], c["n_ff_exp"], c["n_expert"], f"blk.{i}."
    return [Tensor(p + "ffn_norm.weight", (n_embd,), 0.1, 1.0),
            # router logits with a spread of a few units across experts (std ~3 on rms-normed inputs)
            Tensor(p + "ffn_gate_inp.weight", (n_exp, n_embd), 3.0 / n_embd ** 0.5, f32=True),
            Tensor(p + "ffn_gate_exps.weight", (n_exp, n_ff, n_embd), 0.2 * s_in),
            Tensor(p + "ffn_up_exps.weight", (n_exp, n_ff, n_embd), 0.2 * s_in),
            Tensor(p + "ffn_down_exps.weight", (n_exp, n_embd, n_ff), 0.15 * s_ff)]


def _shared_expert(c, i):
    s_in, _ = _scales(c)
    n_embd, n_ff, p = c["n_embd"], c["n_ff_shexp"], f"blk.{i}."
    s_ff = (192 / n_ff) ** 0.5
    # gate logits ~N(0, 0.7) on rms-normed inputs: sigmoid mostly between ~0.2 and ~0.8
    return [Tensor(p + "ffn_gate_inp_shexp.weight", (n_embd,), 0.7 / n_embd ** 0.5, f32=True),
            Tensor(p + "ffn_gate_shexp.weight", (n_ff, n_embd), 0.2 * s_in),
            Tensor(p + "ffn_up_shexp.weight", (n_ff, n_embd), 0.2 * s_in),
            Tensor(p + "ffn_down_shexp.weight", (n_embd, n_ff), 0.15 * s_ff)]


def qwen2_tensors(c, n_vocab):
    return _outer(c, n_vocab) + [t for i in range(c["n_layer"]) for t in _attention(c, i, bias=True) + _ffn(c, i)]


def qwen3_tensors(c, n_vocab):
    return _outer(c, n_vocab) + [t for i in range(c["n_layer"]) for t in _attention(c, i, qk_norm=True) + _ffn(c, i)]


def qwen3moe_tensors(c, n_vocab):
    return _outer(c, n_vocab) + [t for i in range(c["n_layer"])
                                 for t in _attention(c, i, qk_norm=True) + _moe_ffn(c, i)]


def qwen2moe_tensors(c, n_vocab):
    return _outer(c, n_vocab) + [t for i in range(c["n_layer"])
                                 for t in _attention(c, i, bias=True) + _moe_ffn(c, i) + _shared_expert(c, i)]


_QWEN = dict(n_embd=64, n_head=4, n_head_kv=2, head_dim=16, n_layer=2, n_ctx_train=512, rope_freq_base=1e6,
             rms_eps=1e-6)
ARCHS = {
    "qwen2": dict(_QWEN, n_ff=96, tensors=qwen2_tensors),
    # key_length / value_length: written when the HF config names head_dim (Qwen3 does, Qwen2 does not)
    "qwen3": dict(_QWEN, n_ff=96, head_dim_keys=True, tensors=qwen3_tensors),
    # n_ff: the dense intermediate_size real Qwen3-MoE files carry (= n_expert_used * n_ff_exp there too)
    "qwen3moe": dict(_QWEN, n_ff=96, n_ff_exp=48, n_expert=4, n_expert_used=2, head_dim_keys=True,
                     tensors=qwen3moe_tensors),
    "qwen2moe": dict(_QWEN, n_ff=96, n_ff_exp=64, n_expert=4, n_expert_used=2, n_ff_shexp=64,
                     tensors=qwen2moe_tensors),
}


def make(path: str, arch: str, wtype: str = "F32", seed: int = 0) -> str:
    c = ARCHS[arch]
    rng = np.random.default_rng(seed)
    tokens, types, merges = tiny_llama.build_vocab()

    w = GGUFWriter(path, arch)
    w.add_name(f"ggraph-tiny-{arch}")
    w.add_context_length(c["n_ctx_train"])
    w.add_embedding_length(c["n_embd"])
    w.add_block_count(c["n_layer"])
    w.add_feed_forward_length(c["n_ff"])
    w.add_head_count(c["n_head"])
    w.add_head_count_kv(c["n_head_kv"])
    if c.get("head_dim_keys"):
        w.add_key_length(c["head_dim"])
        w.add_value_length(c["head_dim"])
    w.add_rope_freq_base(c["rope_freq_base"])
    w.add_layer_norm_rms_eps(c["rms_eps"])
    w.add_vocab_size(len(tokens))
    if c.get("n_expert"):
        w.add_expert_count(c["n_expert"])
        w.add_expert_used_count(c["n_expert_used"])
        w.add_expert_feed_forward_length(c["n_ff_exp"])
    if c.get("n_ff_shexp"):
        w.add_expert_shared_feed_forward_length(c["n_ff_shexp"])
    w.add_file_type(FILE_TYPES[wtype])
    tiny_llama.add_tokenizer(w, tokens, types, merges)

    qtype = GGMLQuantizationType[wtype]
    for t in c["tensors"](c, len(tokens)):
        x = (t.mean + rng.standard_normal(t.shape) * t.std).astype(np.float32)
        if t.f32 or x.ndim == 1:
            w.add_tensor(t.name, x)
        elif x.shape[-1] % GGML_QUANT_SIZES[qtype][0]:
            # rows that are not whole blocks (qwen3moe's ffn_down_exps: 48 per row): F16, like
            # llama.cpp's quantizer (tensor_type_fallback: a 32-block type has nothing smaller)
            tiny_llama.add_weight(w, t.name, x, GGMLQuantizationType.F16)
        else:
            tiny_llama.add_weight(w, t.name, x, qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arch", choices=sorted(ARCHS))
    ap.add_argument("out")
    ap.add_argument("--type", default="F32", choices=sorted(FILE_TYPES))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(make(a.out, a.arch, a.type, a.seed))
