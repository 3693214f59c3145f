"""Independent float64 numpy forward pass of a dense llama GGUF (no ggraph code): the reference
the runtime's model tests compare against, besides llama.cpp's fixtures."""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize


def _weights(path):
    r = GGUFReader(path)
    W = {}
    for t in r.tensors:
        a = dequantize(np.asarray(t.data), GGMLQuantizationType(int(t.tensor_type)))
        W[t.name] = a.astype(np.float64).reshape(tuple(int(x) for x in reversed(t.shape)))
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith(("tokenizer.", "GGUF."))}
    return W, meta


def _f16(x, on):
    return x.astype(np.float16).astype(np.float64) if on else x


def llama_forward(path: str, ids: list[int], f16_kv: bool = False) -> np.ndarray:
    """Logits [len(ids), n_vocab] for the tokens at positions 0..n-1 (causal, rope NORM mode).
    f16_kv rounds what llama.cpp stores or converts to F16 in attention (K, V, Q and the softmax
    probabilities), as its default F16 KV cache does; everything else stays float64."""
    W, m = _weights(path)
    n_head, n_kv = m["llama.attention.head_count"], m["llama.attention.head_count_kv"]
    eps, base = m["llama.attention.layer_norm_rms_epsilon"], m.get("llama.rope.freq_base", 10000.0)
    n_layer = m["llama.block_count"]
    x = W["token_embd.weight"][ids]
    T, D = x.shape
    hd = D // n_head
    pos = np.arange(T)

    def rms(v, w):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * w

    def rope(v):  # v [T, H, hd], adjacent pairs rotate
        inv = base ** (-np.arange(0, hd, 2) / hd)
        ang = pos[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        out = v.copy()
        out[..., 0::2] = v[..., 0::2] * c - v[..., 1::2] * s
        out[..., 1::2] = v[..., 0::2] * s + v[..., 1::2] * c
        return out

    mask = np.triu(np.full((T, T), -np.inf), 1)
    for il in range(n_layer):
        p = f"blk.{il}."
        h = rms(x, W[p + "attn_norm.weight"])
        q = rope((h @ W[p + "attn_q.weight"].T).reshape(T, n_head, hd))
        k = rope((h @ W[p + "attn_k.weight"].T).reshape(T, n_kv, hd))
        v = (h @ W[p + "attn_v.weight"].T).reshape(T, n_kv, hd)
        out = np.empty((T, n_head, hd))
        for hh in range(n_head):
            kv = hh // (n_head // n_kv)
            s = _f16(q[:, hh], f16_kv) @ _f16(k[:, kv], f16_kv).T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            out[:, hh] = _f16(s, f16_kv) @ _f16(v[:, kv], f16_kv)
        x = x + out.reshape(T, D) @ W[p + "attn_output.weight"].T
        h = rms(x, W[p + "ffn_norm.weight"])
        g = h @ W[p + "ffn_gate.weight"].T
        u = h @ W[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "ffn_down.weight"].T
    x = rms(x, W["output_norm.weight"])
    out_w = W.get("output.weight", W["token_embd.weight"])
    return x @ out_w.T
