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
import collections
import hashlib
import importlib.util
import json
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
FILE_TYPES = dict(tiny_llama.FILE_TYPES, Q4_K_M=15)     # 15: LLAMA_FTYPE_MOSTLY_Q4_K_M


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


def _norm(name, n, bias=False):
    """A norm weight near 1 (and a LayerNorm bias near 0)."""
    return [Tensor(name + ".weight", (n,), 0.1, 1.0)] + ([Tensor(name + ".bias", (n,), 0.1)] if bias else [])


def _fused_qkv(c, i, bias=False):
    """attn_qkv: the rows of Q, then K, then V in one matrix (gpt2, phi3)."""
    s_in, _ = _scales(c)
    n_embd, hd = c["n_embd"], c["head_dim"]
    n_q, n_kv = hd * c["n_head"], hd * c["n_head_kv"]
    std = np.concatenate([np.full(n_q + n_kv, 0.35), np.full(n_kv, 0.2)]) * s_in     # q, k as _attention's
    p = f"blk.{i}."
    t = [Tensor(p + "attn_qkv.weight", (n_q + 2 * n_kv, n_embd), std[:, None])]
    if bias:
        t.append(Tensor(p + "attn_qkv.bias", (n_q + 2 * n_kv,), 0.5))
    return t + [Tensor(p + "attn_output.weight", (n_embd, n_q), 0.2 * s_in)] + (
        [Tensor(p + "attn_output.bias", (n_embd,), 0.1)] if bias else [])


def gpt2_tensors(c, n_vocab):
    s_in, s_ff = _scales(c)
    n_embd, n_ff = c["n_embd"], c["n_ff"]
    t = [Tensor("token_embd.weight", (n_vocab, n_embd), 1.0),
         Tensor("position_embd.weight", (c["n_ctx_train"], n_embd), 0.5)]
    t += _norm("output_norm", n_embd, bias=True) + [Tensor("output.weight", (n_vocab, n_embd), 0.5 * s_in)]
    for i in range(c["n_layer"]):
        p = f"blk.{i}."
        t += _norm(p + "attn_norm", n_embd, bias=True) + _fused_qkv(c, i, bias=True)
        t += _norm(p + "ffn_norm", n_embd, bias=True)
        t += [Tensor(p + "ffn_up.weight", (n_ff, n_embd), 0.3 * s_in), Tensor(p + "ffn_up.bias", (n_ff,), 0.3),
              Tensor(p + "ffn_down.weight", (n_embd, n_ff), 0.2 * s_ff), Tensor(p + "ffn_down.bias", (n_embd,), 0.1)]
    return t


def bloom_tensors(c, n_vocab):
    """gpt2's tensors with a token-embedding LayerNorm instead of position embeddings."""
    t = gpt2_tensors(c, n_vocab)
    i = next(k for k, x in enumerate(t) if x.name == "position_embd.weight")
    return t[:i] + _norm("token_embd_norm", c["n_embd"], bias=True) + t[i + 1:]


def phi3_tensors(c, n_vocab):
    s_in, s_ff = _scales(c)
    n_embd, n_ff, half = c["n_embd"], c["n_ff"], c["keys"].get("rope.dimension_count", c["head_dim"]) // 2
    # LongRoPE factors (one pair for the model): short ones near 1, long ones well above
    t = _outer(c, n_vocab) + [Tensor("rope_factors_long.weight", (half,), 2.0, 8.0),
                              Tensor("rope_factors_short.weight", (half,), 0.2, 1.2)]
    for i in range(c["n_layer"]):
        p = f"blk.{i}."
        t += _norm(p + "attn_norm", n_embd) + _fused_qkv(c, i)
        t += _norm(p + "ffn_norm", n_embd) + [
            Tensor(p + "ffn_up.weight", (2 * n_ff, n_embd), 0.2 * s_in),      # rows: gate, then up
            Tensor(p + "ffn_down.weight", (n_embd, n_ff), 0.15 * s_ff)]
    return t


def olmoe_tensors(c, n_vocab):
    t = _outer(c, n_vocab)
    for i in range(c["n_layer"]):
        p = f"blk.{i}."
        # q/k norms over the whole projection (n_embd wide, so n_head_kv = n_head)
        t += _attention(c, i) + _norm(p + "attn_q_norm", c["n_embd"]) + _norm(p + "attn_k_norm", c["n_embd"])
        t += _moe_ffn(c, i)
    return t


def gemma2_tensors(c, n_vocab):
    t = _outer(c, n_vocab)[:2]        # tied output, as Gemma files have
    for i in range(c["n_layer"]):
        p = f"blk.{i}."
        t += _attention(c, i) + _norm(p + "post_attention_norm", c["n_embd"]) + _ffn(c, i)
        t += _norm(p + "post_ffw_norm", c["n_embd"])
    return t


def llama_moe_tensors(c, n_vocab):
    return _outer(c, n_vocab) + [t for i in range(c["n_layer"]) for t in _attention(c, i) + _moe_ffn(c, i)]


def granite_tensors(c, n_vocab):
    return _outer(c, n_vocab) + [t for i in range(c["n_layer"]) for t in _attention(c, i) + _ffn(c, i)]


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
    # llama with Mixtral's experts (make_tiny_llama.py --config moe is the 64-wide one with its own fixtures;
    # this entry gives the wide Q4_K_M one): experts n_ff wide, no expert_feed_forward_length key
    "llama": dict(_QWEN, n_ff=96, n_ff_exp=96, n_expert=4, n_expert_used=2, no_exp_ff_key=True,
                  rope_freq_base=1e4, rms_eps=1e-5, tensors=llama_moe_tensors),
    "gpt2": dict(_QWEN, n_ff=128, rope_freq_base=None, rms_eps=None, norm_eps=1e-5, tensors=gpt2_tensors),
    # bloom: ALiBi (llama.cpp fixes max_bias 8), MHA as real BLOOM files
    "bloom": dict(_QWEN, n_head_kv=4, n_ff=128, rope_freq_base=None, rms_eps=None, norm_eps=1e-5,
                  tensors=bloom_tensors),
    # phi3: the short LongRoPE factors apply while n_ctx <= 512 (the original context)
    # (a name with "phi3" in it makes llama.cpp's vocab look for Phi-3's </s>, which this vocab lacks)
    "phi3": dict(_QWEN, n_ff=96, name="ggraph-tiny-phi-three", rope_freq_base=1e4, rms_eps=1e-5, tensors=phi3_tensors,
                 keys={"rope.scaling.attn_factor": 1.19, "rope.scaling.original_context_length": 512}),
    "olmoe": dict(_QWEN, n_head_kv=4, n_ff=64, n_ff_exp=64, n_expert=4, n_expert_used=2, no_exp_ff_key=True,
                  rope_freq_base=1e4, rms_eps=1e-5, tensors=olmoe_tensors),
    # gemma2: a window of 24 (prompts are longer), every other layer; caps low enough to bend the values
    "gemma2": dict(_QWEN, n_ff=96, head_dim_keys=True, rope_freq_base=1e4, tensors=gemma2_tensors,
                   keys={"attention.sliding_window": 24, "attn_logit_softcapping": 20.0,
                         "final_logit_softcapping": 15.0}),
    "granite": dict(_QWEN, n_ff=96, rope_freq_base=1e4, tensors=granite_tensors,
                    keys={"logit_scale": 2.0, "residual_scale": 0.5, "embedding_scale": 3.0,
                          "attention.scale": 0.3}),
}


# --wide: rows of 256 (n_embd, head_dim 64, every FFN width), so K-quant blocks fit and Q4_K_M is what
# llama.cpp's quantizer makes of a real model (on 64-wide rows it falls back to Q5_0 / Q8_0)
WIDE = dict(n_embd=256, head_dim=64, n_ff=256)
Q4_K_M_TYPES = os.path.join(HERE, "..", "tests", "fixtures", "tiny_q4_k_m_types.json")


def config(arch: str, wide: bool = False) -> dict:
    c = dict(ARCHS[arch])
    if wide:
        c.update(WIDE)
        for key in ("n_ff_exp", "n_ff_shexp"):
            if key in c:
                c[key] = WIDE["n_ff"]
    return c


def q4_k_m_types(arch: str) -> dict:
    """Tensor name -> type of llama.cpp's Q4_K_M mix for the wide tiny ARCH (recorded by --record-q4-k-m)."""
    table = json.load(open(Q4_K_M_TYPES)) if os.path.exists(Q4_K_M_TYPES) else {}
    if arch not in table:
        raise SystemExit(f"no Q4_K_M type mix recorded for {arch}: run scripts/make_tiny_model.py {arch} OUT "
                         f"--record-q4-k-m (needs llama-cpp-python)")
    return table[arch]["types"]


def tensor_data_sha256(path: str) -> str:
    """sha256 over every tensor's name, type and bytes, by name (llama.cpp's quantizer writes the tensors
    in its own order)."""
    h = hashlib.sha256()
    for name, (typ, data) in sorted(tensor_bytes(path).items()):
        h.update(f"{name}:{typ}:".encode() + data)
    return h.hexdigest()


def make(path: str, arch: str, wtype: str = "F32", seed: int = 0, wide: bool = False, keys=None) -> str:
    """wtype: a FILE_TYPES format for every matrix, or Q4_K_M (--wide only): llama.cpp's per-tensor mix,
    quantized here with scripts/kquants.py. keys: extra ARCH.* GGUF keys (--set), e.g. rope scaling."""
    c = config(arch, wide)
    c["keys"] = dict(c.get("keys", {}), **(keys or {}))
    types = q4_k_m_types(arch) if wtype == "Q4_K_M" else None
    rng = np.random.default_rng(seed)
    tokens, tok_types, merges = tiny_llama.build_vocab()

    w = GGUFWriter(path, arch)
    w.add_name(c.get("name", f"ggraph-tiny-{arch}"))
    w.add_context_length(c["n_ctx_train"])
    w.add_embedding_length(c["n_embd"])
    w.add_block_count(c["n_layer"])
    w.add_feed_forward_length(c["n_ff"])
    w.add_head_count(c["n_head"])
    w.add_head_count_kv(c["n_head_kv"])
    if c.get("head_dim_keys"):
        w.add_key_length(c["head_dim"])
        w.add_value_length(c["head_dim"])
    if c["rope_freq_base"] is not None:
        w.add_rope_freq_base(c["rope_freq_base"])
    if c["rms_eps"] is not None:
        w.add_layer_norm_rms_eps(c["rms_eps"])
    if c.get("norm_eps"):
        w.add_layer_norm_eps(c["norm_eps"])
    w.add_vocab_size(len(tokens))
    if c.get("n_expert"):
        w.add_expert_count(c["n_expert"])
        w.add_expert_used_count(c["n_expert_used"])
        if not c.get("no_exp_ff_key"):
            w.add_expert_feed_forward_length(c["n_ff_exp"])
    for key, value in c.get("keys", {}).items():
        if isinstance(value, float):
            w.add_float32(f"{arch}.{key}", value)
        elif isinstance(value, str):
            w.add_string(f"{arch}.{key}", value)
        else:
            w.add_uint32(f"{arch}.{key}", value)
    if c.get("n_ff_shexp"):
        w.add_expert_shared_feed_forward_length(c["n_ff_shexp"])
    w.add_file_type(FILE_TYPES[wtype])
    tiny_llama.add_tokenizer(w, tokens, tok_types, merges)

    qtype = GGMLQuantizationType[wtype] if types is None else None
    for t in c["tensors"](c, len(tokens)):
        x = (t.mean + rng.standard_normal(t.shape) * t.std).astype(np.float32)   # std may vary per row
        if types is not None:
            tiny_llama.add_weight(w, t.name, x, GGMLQuantizationType[types[t.name]])
        elif t.f32 or x.ndim == 1:
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


def parse_keys(items) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = float(value) if "." in value else int(value)
        except ValueError:
            out[key] = value
    return out


def tensor_bytes(path: str) -> dict:
    from gguf import GGUFReader
    return {t.name: (t.tensor_type.name, np.asarray(t.data).tobytes()) for t in GGUFReader(path).tensors}


def record_q4_k_m(arch: str, out: str, seed: int = 0) -> str:
    """Quantize the wide F32 model with llama.cpp (llama_model_quantize, Q4_K_M, no imatrix), record its
    per-tensor types, write OUT with this script's quantizers and check every tensor is byte-identical."""
    import llama_cpp as lc
    src, ref = out + ".f32.tmp", out + ".llamacpp.tmp"
    make(src, arch, "F32", seed, wide=True)
    params = lc.llama_model_quantize_default_params()
    params.ftype = lc.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = 2
    if lc.llama_model_quantize(src.encode(), ref.encode(), params) != 0:
        raise SystemExit("llama_model_quantize failed")
    theirs = tensor_bytes(ref)
    table = json.load(open(Q4_K_M_TYPES)) if os.path.exists(Q4_K_M_TYPES) else {}
    table[arch] = {"types": {name: typ for name, (typ, _) in theirs.items()},
                   "sha256": tensor_data_sha256(ref)}       # of llama.cpp's file: tests check ours against it
    with open(Q4_K_M_TYPES, "w") as fh:
        json.dump(table, fh, indent=1, sort_keys=True)
    make(out, arch, "Q4_K_M", seed, wide=True)
    ours = tensor_bytes(out)
    bad = [n for n in theirs if ours.get(n) != theirs[n]]
    os.remove(src)
    os.remove(ref)
    if bad:
        raise SystemExit(f"{arch}: {len(bad)} tensors differ from llama.cpp's Q4_K_M: {bad[:5]}")
    mix = collections.Counter(typ for typ, _ in theirs.values())
    print(f"{arch}: Q4_K_M mix {dict(mix)} recorded; all {len(theirs)} tensors byte-identical to llama.cpp's")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arch", choices=sorted(ARCHS))
    ap.add_argument("out")
    ap.add_argument("--type", default="F32", choices=sorted(FILE_TYPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wide", action="store_true", help="rows of 256 (K-quant blocks fit); implied by Q4_K_M")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra ARCH.KEY (int, float with a '.', else string), e.g. rope.scaling.type=yarn")
    ap.add_argument("--record-q4-k-m", action="store_true",
                    help="make the wide Q4_K_M model with llama.cpp's quantizer, record its type mix in "
                         "tests/fixtures/tiny_q4_k_m_types.json and check this script reproduces it")
    a = ap.parse_args()
    if a.record_q4_k_m:
        print(record_q4_k_m(a.arch, a.out, a.seed))
    else:
        print(make(a.out, a.arch, a.type, a.seed, wide=a.wide or a.type == "Q4_K_M", keys=parse_keys(a.set)))
