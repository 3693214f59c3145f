"""qwen3 and qwen3moe (llama.cpp src/models/qwen3.cpp, qwen3moe.cpp): llama's graph with NEOX RoPE
and per-head RMS norms of Q and K before RoPE; qwen3moe replaces the FFN with experts whose
weights are renormalised over the selected ones."""
from ggraph.ops import ROPE_TYPE_NEOX

from .llama import LlamaModel


class Qwen3Model(LlamaModel):
    arch = "qwen3"
    rope_type = ROPE_TYPE_NEOX

    def load_layer_attn(self, i, layer):
        super().load_layer_attn(i, layer)
        hd = self.hp.n_embd_head_k
        layer.attn_k_norm = self.create_tensor(f"blk.{i}.attn_k_norm.weight", (hd,))
        layer.attn_q_norm = self.create_tensor(f"blk.{i}.attn_q_norm.weight", (hd,))


class Qwen3MoeModel(Qwen3Model):
    arch = "qwen3moe"
    moe_norm_w = True       # qwen3moe.cpp passes norm_w = true

    def load_arch_hparams(self, f):
        super().load_arch_hparams(f)
        self.require_experts(f)
