"""qwen2moe (llama.cpp src/models/qwen2moe.cpp): qwen2's attention; routed experts (weights not
renormalised) plus a shared expert whose output is scaled by a per-token sigmoid gate, computed as
llama.cpp does as silu(x) / x."""
from ggraph import ops
from ggraph.llm import LLM_FFN_PAR, LLM_FFN_SILU

from .qwen2 import Qwen2Model


class Qwen2MoeModel(Qwen2Model):
    arch = "qwen2moe"
    moe_norm_w = False

    def load_arch_hparams(self, f):
        super().load_arch_hparams(f)
        self.require_experts(f)
        self.n_ff_shexp = int(f.get_arch("expert_shared_feed_forward_length", 0)) or self.hp.n_ff

    def load_layer_moe(self, i, layer):
        super().load_layer_moe(i, layer)
        n_embd, n_ff, t = self.hp.n_embd, self.n_ff_shexp, self.create_tensor
        layer.ffn_gate_inp_shexp = t(f"blk.{i}.ffn_gate_inp_shexp.weight", (n_embd,))
        layer.ffn_gate_shexp = t(f"blk.{i}.ffn_gate_shexp.weight", (n_embd, n_ff))
        layer.ffn_down_shexp = t(f"blk.{i}.ffn_down_shexp.weight", (n_ff, n_embd))
        layer.ffn_up_shexp = t(f"blk.{i}.ffn_up_shexp.weight", (n_embd, n_ff))

    def build_layer_ffn(self, g, layer, cur, il):
        moe_out = g.cb(super().build_layer_ffn(g, layer, cur, il), "ffn_moe_out", il)
        gate_inp = g.cb(g.build_lora_mm(layer.ffn_gate_inp_shexp, cur), "ffn_shexp_gate_inp", il)
        gate = g.cb(ops.div(ops.silu(gate_inp), gate_inp), "ffn_shexp_gate", il)     # sigmoid
        shexp = g.cb(g.build_ffn(cur, layer.ffn_up_shexp, None, layer.ffn_gate_shexp, None,
                                 layer.ffn_down_shexp, None, LLM_FFN_SILU, LLM_FFN_PAR, il), "ffn_shexp", il)
        shexp_out = g.cb(ops.mul(shexp, gate), "ffn_shexp_out", il)
        return ops.add(moe_out, shexp_out)
