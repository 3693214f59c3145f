"""phi3 (llama.cpp src/models/phi3.cpp): llama-like with a fused Q/K/V projection (or separate q/k/v),
Q pre-scaled by 1/sqrt(head_dim), a fused [gate; up] ffn_up under SwiGLU, and LongRoPE's short/long
frequency factors chosen by the context size. llama.cpp turns Phi's sliding window off; so does this."""
import math

from ggraph import ops
from ggraph.llm import LLM_FFN_SEQ, LLM_FFN_SWIGLU, LLM_NORM_RMS
from ggraph.model_base import ModelBase
from ggraph.ops import ROPE_TYPE_NEOX


class Phi3Model(ModelBase):
    arch = "phi3"
    rope_type = ROPE_TYPE_NEOX

    def load_arch_hparams(self, f):
        self.hp.f_norm_rms_eps = float(f.require_arch("attention.layer_norm_rms_epsilon"))

    def load_arch_tensors(self):
        hp = self.hp
        n_embd, n_embd_gqa, n_ff = hp.n_embd, hp.n_embd_k_gqa, hp.n_ff
        t = self.create_tensor
        self.tok_embd = t("token_embd.weight", (n_embd, hp.n_vocab))
        self.output_norm = t("output_norm.weight", (n_embd,))
        self.output = t("output.weight", (n_embd, hp.n_vocab), optional=True) or self.tok_embd
        self.output_b = t("output.bias", (hp.n_vocab,), optional=True)
        for i, layer in enumerate(self.layers):
            layer.attn_norm = t(f"blk.{i}.attn_norm.weight", (n_embd,))
            # create_tensor_qkv: the fused tensor, else the three projections
            layer.wqkv = t(f"blk.{i}.attn_qkv.weight", (n_embd, n_embd + 2 * n_embd_gqa), optional=True)
            if layer.wqkv is None:
                layer.wq = t(f"blk.{i}.attn_q.weight", (n_embd, n_embd))
                layer.wk = t(f"blk.{i}.attn_k.weight", (n_embd, n_embd_gqa))
                layer.wv = t(f"blk.{i}.attn_v.weight", (n_embd, n_embd_gqa))
            layer.wo = t(f"blk.{i}.attn_output.weight", (n_embd, n_embd))
            layer.ffn_norm = t(f"blk.{i}.ffn_norm.weight", (n_embd,))
            layer.ffn_down = t(f"blk.{i}.ffn_down.weight", (n_ff, n_embd))
            layer.ffn_up = t(f"blk.{i}.ffn_up.weight", (n_embd, 2 * n_ff))
            layer.rope_long = t("rope_factors_long.weight", (hp.n_rot // 2,), optional=True)
            layer.rope_short = t("rope_factors_short.weight", (hp.n_rot // 2,), optional=True)

    def rope_factors(self, g, layer):
        """llama_model::get_rope_factors: the long factors once the context outgrows the original one."""
        return layer.rope_long if g.cparams.n_ctx > self.hp.n_ctx_orig_yarn else layer.rope_short

    def build_graph(self, g):
        hp = self.hp
        n_embd_head = hp.n_embd_head_v
        inpL = g.build_inp_embd(self.tok_embd)
        inp_pos = g.build_inp_pos()
        inp_attn = g.build_attn_inp_kv()
        inp_out_ids = g.build_inp_out_ids()

        for il, layer in enumerate(self.layers):
            residual = inpL
            rope = (inp_pos, self.rope_factors(g, layer), g.n_rot, g.rope_type, g.n_ctx_orig, g.freq_base,
                    g.freq_scale, g.ext_factor, g.attn_factor, g.beta_fast, g.beta_slow)
            cur = g.cb(g.build_norm(inpL, layer.attn_norm, None, LLM_NORM_RMS, il), "attn_norm", il)
            Qcur, Kcur, Vcur = g.build_qkv(layer, cur, n_embd_head, hp.n_head, hp.n_head_kv, il)
            Qcur = g.cb(ops.rope_ext(Qcur, *rope), "Qcur", il)
            Kcur = g.cb(ops.rope_ext(Kcur, *rope), "Kcur", il)
            g.cb(Vcur, "Vcur", il)
            Qcur = g.cb(ops.scale(Qcur, 1.0 / math.sqrt(n_embd_head)), "Qcur", il)
            cur = g.build_attn(inp_attn, layer.wo, None, Qcur, Kcur, Vcur, None, 1.0, il)
            if il == g.n_layer - 1:
                cur = ops.get_rows(cur, inp_out_ids)
                residual = ops.get_rows(residual, inp_out_ids)
            cur = ops.add(cur, residual)
            residual = cur

            cur = g.cb(g.build_norm(cur, layer.ffn_norm, None, LLM_NORM_RMS, il), "ffn_norm", il)
            cur = g.build_ffn(cur, layer.ffn_up, None, None, None, layer.ffn_down, None,
                              LLM_FFN_SWIGLU, LLM_FFN_SEQ, il)
            g.cb(cur, "ffn_out", il)
            inpL = g.cb(ops.add(residual, cur), "l_out", il)

        cur = g.cb(g.build_norm(inpL, self.output_norm, None, LLM_NORM_RMS, -1), "result_norm")
        g.res.t_embd = cur
        cur = g.build_lora_mm(self.output, cur)
        if self.output_b is not None:
            cur = ops.add(g.cb(cur, "result_output_no_bias"), self.output_b)
        g.res.t_logits = g.cb(cur, "result_output")
