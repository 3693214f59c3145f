"""olmoe (llama.cpp src/models/olmoe.cpp): llama's graph with NEOX RoPE, RMS norms over the whole Q and K
projections (before the heads are split) and a mixture of experts whose weights are not
renormalised over the selected ones."""
from ggraph import ops
from ggraph.llm import LLM_NORM_RMS
from ggraph.ops import ROPE_TYPE_NEOX

from .llama import LlamaModel


class OlmoeModel(LlamaModel):
    arch = "olmoe"
    rope_type = ROPE_TYPE_NEOX
    moe_norm_w = False

    def load_arch_hparams(self, f):
        super().load_arch_hparams(f)
        self.require_experts(f)
        self.hp.n_ff_exp = 0        # olmoe's experts are n_ff wide (feed_forward_length)
        self.hp.expert_weights_scale = 0.0

    def load_arch_tensors(self):
        super().load_arch_tensors()
        self.create_tensor("output.weight", (self.hp.n_embd, self.hp.n_vocab))    # required: not tied

    def load_layer_attn(self, i, layer):
        super().load_layer_attn(i, layer)
        n_embd = self.hp.n_embd
        layer.attn_q_norm = self.create_tensor(f"blk.{i}.attn_q_norm.weight", (n_embd,))
        layer.attn_k_norm = self.create_tensor(f"blk.{i}.attn_k_norm.weight", (n_embd,))

    def build_layer_qkv(self, g, layer, cur, il):
        hp, hd = self.hp, self.hp.n_embd_head_v
        Qcur, Kcur, Vcur = g.build_qkv(layer, cur, hd, hp.n_head, hp.n_head_kv, il, reshape=False)
        g.cb(Qcur, "Qcur", il)
        g.cb(Kcur, "Kcur", il)
        g.cb(Vcur, "Vcur", il)
        Qcur = g.cb(g.build_norm(Qcur, layer.attn_q_norm, None, LLM_NORM_RMS, il), "Qcur_normed", il)
        Kcur = g.cb(g.build_norm(Kcur, layer.attn_k_norm, None, LLM_NORM_RMS, il), "Kcur_normed", il)
        return (ops.reshape_3d(Qcur, hd, hp.n_head, g.n_tokens), ops.reshape_3d(Kcur, hd, hp.n_head_kv, g.n_tokens),
                ops.reshape_3d(Vcur, hd, hp.n_head_kv, g.n_tokens))
