#!/usr/bin/env python3
"""Write a tiny random llama GGUF (F32 by default) that llama.cpp and ggraph both load.

Deterministic: the same arguments give the same file, so fixtures made from it with llama.cpp
stay valid. The vocabulary is byte-level BPE (256 byte tokens + merges learned from a short
text + <|endoftext|>), pre-tokenizer 'smollm', like SmolLM2's.

    python scripts/make_tiny_llama.py out.gguf [--type F32|F16|BF16|Q4_0|Q4_1|Q5_0|Q5_1|Q8_0] [--seed 0] [--config tiny|wide|moe]

Config 'moe' is a Mixtral-style llama: per layer a router blk.N.ffn_gate_inp.weight (ne [n_embd, n_expert],
always F32 like llama.cpp's converters write it) and 3-D expert tensors ffn_{gate,up}_exps (ne [n_embd, n_ff,
n_expert]) and ffn_down_exps (ne [n_ff, n_embd, n_expert]) instead of ffn_{gate,up,down}; n_ff is the expert
width, keys llama.expert_count / llama.expert_used_count.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, TokenType
from gguf.quants import quantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kquants  # noqa: E402  (scripts/kquants.py, beside this script)

TEXT = """The cat sat on the mat. The dog ran in the park and the bird sang in the tree.
Once upon a time there was a little girl who lived in a village near the forest.
def main():\n    print("hello world")\n    return 0\n
I'll be there at 10:30, don't worry. It's 2024 and we're going to the sea!"""

# formats gguf-py can quantize exactly like llama.cpp (others: scripts/make_quant_models.py)
FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "BF16": 32}

CONFIGS = {
    "tiny": dict(n_embd=64, n_head=4, n_head_kv=2, n_ff=192, n_layer=2, n_ctx_train=512, n_merges=120),
    # rows of 256 so every K-quant / IQ4_XS block size fits (scripts/make_quant_models.py)
    "wide": dict(n_embd=256, n_head=4, n_head_kv=2, n_ff=512, n_layer=2, n_ctx_train=512, n_merges=120),
    # Mixtral-style mixture of experts: n_ff is the width of each expert
    "moe": dict(n_embd=64, n_head=4, n_head_kv=2, n_ff=96, n_layer=2, n_ctx_train=512, n_merges=120,
                n_expert=4, n_expert_used=2),
}
CONFIG = CONFIGS["tiny"]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def learn_merges(text: str, n_merges: int) -> list[tuple[str, str]]:
    """Plain BPE training over space-prefixed words (enough for a valid, deterministic vocab)."""
    b2u = bytes_to_unicode()
    words = collections.Counter()
    for w in text.replace("\n", " ").split(" "):
        if w:
            words[tuple(b2u[b] for b in (" " + w).encode())] += 1
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new = collections.Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    return merges


def build_vocab():
    b2u = bytes_to_unicode()
    tokens = ["<|endoftext|>"] + [b2u[b] for b in range(256)]
    types = [TokenType.CONTROL] + [TokenType.NORMAL] * 256
    merges = learn_merges(TEXT, CONFIG["n_merges"])  # same vocabulary for every config
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
            types.append(TokenType.NORMAL)
    return tokens, types, [f"{a} {b}" for a, b in merges]


def add_tokenizer(w: GGUFWriter, tokens, types, merges) -> None:
    """The tokenizer keys of every tiny model (from build_vocab()): byte-level BPE, pre-tokenizer
    'smollm', <|endoftext|> (id 0) is BOS and EOS, no BOS added."""
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([int(t) for t in types])
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)


def add_weight(w: GGUFWriter, name: str, x: np.ndarray, qtype: GGMLQuantizationType) -> None:
    """A float32 weight in format qtype. numpy shape is reversed ggml ne: (n_out, n_in) = ne [n_in, n_out],
    (n_expert, n_out, n_in) = ne [n_in, n_out, n_expert]. Other formats are quantized per row of n_in
    (each expert's rows in turn, like llama.cpp) with gguf's port of llama.cpp's reference quantizers
    (bit-identical to llama_model_quantize for these formats) and stored with the byte shape
    GGUFWriter expects."""
    if qtype == GGMLQuantizationType.F32:
        w.add_tensor(name, x)
    else:
        rows = x.reshape(-1, x.shape[-1])
        # K-quants: scripts/kquants.py, the numpy port of llama.cpp's *_ref quantizers (gguf-py has none)
        q = kquants.quantize(rows, qtype.name) if qtype.name in kquants.BLOCK_BYTES else quantize(rows, qtype)
        w.add_tensor(name, q.reshape(x.shape[:-1] + q.shape[-1:]), raw_dtype=qtype)


def make(path: str, wtype: str = "F32", seed: int = 0, config: str = "tiny") -> str:
    c = CONFIGS[config]
    rng = np.random.default_rng(seed)
    tokens, types, merges = build_vocab()
    n_vocab, n_embd, n_ff = len(tokens), c["n_embd"], c["n_ff"]
    head_dim = n_embd // c["n_head"]
    n_embd_kv = head_dim * c["n_head_kv"]

    w = GGUFWriter(path, "llama")
    w.add_name(f"ggraph-{config}-llama")
    w.add_context_length(c["n_ctx_train"])
    w.add_embedding_length(n_embd)
    w.add_block_count(c["n_layer"])
    w.add_feed_forward_length(n_ff)
    w.add_head_count(c["n_head"])
    w.add_head_count_kv(c["n_head_kv"])
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    n_expert = c.get("n_expert", 0)
    if n_expert:
        w.add_expert_count(n_expert)
        w.add_expert_used_count(c["n_expert_used"])
    w.add_file_type(FILE_TYPES[wtype])
    add_tokenizer(w, tokens, types, merges)

    qtype = GGMLQuantizationType[wtype]

    def mat(name, n_out, n_in, std):
        add_weight(w, name, (rng.standard_normal((n_out, n_in)) * std).astype(np.float32), qtype)

    def experts(name, n_out, n_in, std):
        add_weight(w, name, (rng.standard_normal((n_expert, n_out, n_in)) * std).astype(np.float32), qtype)

    def vec(name, n, mean=1.0, std=0.1):
        w.add_tensor(name, (mean + rng.standard_normal(n) * std).astype(np.float32))

    # weights large enough that next-token distributions are peaked (top-1 is meaningful);
    # std scaled by 1/sqrt(fan-in) relative to the 64-wide tiny config
    s_in = (64 / n_embd) ** 0.5
    s_ff = (192 / n_ff) ** 0.5
    mat("token_embd.weight", n_vocab, n_embd, 1.0)
    vec("output_norm.weight", n_embd)
    mat("output.weight", n_vocab, n_embd, 0.5 * s_in)
    for i in range(c["n_layer"]):
        vec(f"blk.{i}.attn_norm.weight", n_embd)
        mat(f"blk.{i}.attn_q.weight", n_embd, n_embd, 0.35 * s_in)
        mat(f"blk.{i}.attn_k.weight", n_embd_kv, n_embd, 0.35 * s_in)
        mat(f"blk.{i}.attn_v.weight", n_embd_kv, n_embd, 0.2 * s_in)
        mat(f"blk.{i}.attn_output.weight", n_embd, n_embd, 0.2 * s_in)
        vec(f"blk.{i}.ffn_norm.weight", n_embd)
        if n_expert:
            # router: logits with a spread of a few units across experts (std ~3 on rms-normed
            # inputs), so routing is far from flat; always F32 (llama.cpp's converters and
            # llama-quantize keep ffn_gate_inp in F32)
            router = (rng.standard_normal((n_expert, n_embd)) * (3.0 / n_embd ** 0.5)).astype(np.float32)
            w.add_tensor(f"blk.{i}.ffn_gate_inp.weight", router)
            experts(f"blk.{i}.ffn_gate_exps.weight", n_ff, n_embd, 0.2 * s_in)
            experts(f"blk.{i}.ffn_up_exps.weight", n_ff, n_embd, 0.2 * s_in)
            experts(f"blk.{i}.ffn_down_exps.weight", n_embd, n_ff, 0.15 * s_ff)
        else:
            mat(f"blk.{i}.ffn_gate.weight", n_ff, n_embd, 0.2 * s_in)
            mat(f"blk.{i}.ffn_up.weight", n_ff, n_embd, 0.2 * s_in)
            mat(f"blk.{i}.ffn_down.weight", n_embd, n_ff, 0.15 * s_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--type", default="F32", choices=sorted(FILE_TYPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    a = ap.parse_args()
    print(make(a.out, a.type, a.seed, a.config))
