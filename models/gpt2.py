"""gpt2 (llama.cpp src/models/gpt2.cpp): learned position embeddings, LayerNorm with biases, one fused
Q/K/V projection with bias (split by views), no RoPE, a GELU MLP with biases."""
import math

from ggraph import ops
from ggraph.llm import LLM_FFN_GELU, LLM_FFN_SEQ, LLM_NORM
from ggraph.model_base import ModelBase
from ggraph.ops import ROPE_TYPE_NONE


class Gpt2Model(ModelBase):
    arch = "gpt2"
    rope_type = ROPE_TYPE_NONE

    def load_arch_hparams(self, f):
        self.hp.f_norm_eps = float(f.require_arch("attention.layer_norm_epsilon"))

    def load_arch_tensors(self):
        hp = self.hp
        n_embd, n_embd_gqa, n_ff = hp.n_embd, hp.n_embd_k_gqa, hp.n_ff
        t = self.create_tensor
        self.tok_embd = t("token_embd.weight", (n_embd, hp.n_vocab))
        self.load_input_tensors()
        self.output_norm = t("output_norm.weight", (n_embd,))
        self.output_norm_b = t("output_norm.bias", (n_embd,))
        self.output = t("output.weight", (n_embd, hp.n_vocab), optional=True) or self.tok_embd
        for i, layer in enumerate(self.layers):
            layer.attn_norm = t(f"blk.{i}.attn_norm.weight", (n_embd,))
            layer.attn_norm_b = t(f"blk.{i}.attn_norm.bias", (n_embd,))
            layer.wqkv = t(f"blk.{i}.attn_qkv.weight", (n_embd, n_embd + 2 * n_embd_gqa))
            layer.wqkv_b = t(f"blk.{i}.attn_qkv.bias", (n_embd + 2 * n_embd_gqa,))
            layer.wo = t(f"blk.{i}.attn_output.weight", (n_embd, n_embd))
            layer.wo_b = t(f"blk.{i}.attn_output.bias", (n_embd,))
            layer.ffn_norm = t(f"blk.{i}.ffn_norm.weight", (n_embd,))
            layer.ffn_norm_b = t(f"blk.{i}.ffn_norm.bias", (n_embd,))
            layer.ffn_down = t(f"blk.{i}.ffn_down.weight", (n_ff, n_embd))
            layer.ffn_down_b = t(f"blk.{i}.ffn_down.bias", (n_embd,))
            layer.ffn_up = t(f"blk.{i}.ffn_up.weight", (n_embd, n_ff))
            layer.ffn_up_b = t(f"blk.{i}.ffn_up.bias", (n_ff,))

    def load_input_tensors(self):
        self.pos_embd = self.create_tensor("position_embd.weight", (self.hp.n_embd, self.hp.n_ctx_train))

    def build_graph(self, g):
        hp = self.hp
        n_embd_head = hp.n_embd_head_v
        inpL = self.build_input_layer(g, g.build_inp_embd(self.tok_embd))
        inp_attn = g.build_attn_inp_kv()
        inp_out_ids = g.build_inp_out_ids()

        for il, layer in enumerate(self.layers):
            cur = g.cb(g.build_norm(inpL, layer.attn_norm, layer.attn_norm_b, LLM_NORM, il), "attn_norm", il)
            Qcur, Kcur, Vcur = g.build_qkv(layer, cur, n_embd_head, hp.n_head, hp.n_head_kv, il)
            cur = g.build_attn(inp_attn, layer.wo, layer.wo_b, Qcur, Kcur, Vcur, None,
                               1.0 / math.sqrt(n_embd_head), il)
            if il == g.n_layer - 1:
                cur = ops.get_rows(cur, inp_out_ids)
                inpL = ops.get_rows(inpL, inp_out_ids)
            ffn_inp = g.cb(ops.add(cur, inpL), "ffn_inp", il)

            cur = g.cb(g.build_norm(ffn_inp, layer.ffn_norm, layer.ffn_norm_b, LLM_NORM, il), "ffn_norm", il)
            cur = g.build_ffn(cur, layer.ffn_up, layer.ffn_up_b, None, None, layer.ffn_down, layer.ffn_down_b,
                              LLM_FFN_GELU, LLM_FFN_SEQ, il)
            g.cb(cur, "ffn_out", il)
            inpL = g.cb(ops.add(cur, ffn_inp), "l_out", il)

        cur = g.cb(g.build_norm(inpL, self.output_norm, self.output_norm_b, LLM_NORM, -1), "result_norm")
        g.res.t_embd = cur
        g.res.t_logits = g.cb(g.build_lora_mm(self.output, cur), "result_output")

    def build_input_layer(self, g, inpL):
        """gpt2: plus the learned position embeddings (bloom: a LayerNorm instead)."""
        pos = g.cb(ops.get_rows(self.pos_embd, g.build_inp_pos()), "pos_embd")
        return g.cb(ops.add(inpL, pos), "inpL")
