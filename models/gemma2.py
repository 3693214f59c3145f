"""gemma2 (llama.cpp src/models/gemma2.cpp): embeddings scaled by sqrt(n_embd), NEOX RoPE, sliding-window
attention on every other layer (window 4096 unless the GGUF says), attention-logit and final-logit
softcaps (50 and 30 by default), post-attention and post-FFN norms, a GELU-gated FFN. Norm weights
already hold 1 + w. Gemma 3 (gemma3.py) is this graph with per-head Q/K norms and no attention cap."""
import math

from ggraph import ops
from ggraph.llm import LLM_FFN_GELU, LLM_FFN_PAR, LLM_NORM_RMS
from ggraph.model_base import ModelBase
from ggraph.ops import ROPE_TYPE_NEOX


class Gemma2Model(ModelBase):
    arch = "gemma2"
    rope_type = ROPE_TYPE_NEOX
    qk_norm = False

    def load_arch_hparams(self, f):
        hp = self.hp
        hp.n_swa = int(f.get_arch("attention.sliding_window", 4096))
        self.load_swa_pattern(f, 2)
        hp.rope_freq_base_swa = float(f.get_arch("rope.freq_base_swa", hp.rope_freq_base))
        hp.rope_freq_scale_swa = hp.rope_freq_scale
        hp.f_norm_rms_eps = float(f.require_arch("attention.layer_norm_rms_epsilon"))
        hp.f_attn_logit_softcapping = float(f.get_arch("attn_logit_softcapping", 50.0))
        hp.f_final_logit_softcapping = float(f.get_arch("final_logit_softcapping", 30.0))
        self.set_attention_scale(46)

    def load_swa_pattern(self, f, n_pattern):
        """llama_model_base::load_swa_pattern: a per-layer array, or every n-th layer dense."""
        pattern = f.get_arch("attention.sliding_window_pattern", n_pattern)
        if isinstance(pattern, list):
            self.hp.swa_layers = [bool(x) for x in pattern]
        else:
            self.hp.set_swa_pattern(int(pattern))

    def set_attention_scale(self, n_layer_27b):
        """gemma_pytorch: the 27B model scales by n_embd / n_head, the others by the head size."""
        hp = self.hp
        d = hp.n_embd / hp.n_head if hp.n_layer == n_layer_27b else hp.n_embd_head_k
        hp.f_attention_scale = 1.0 / math.sqrt(d)

    def load_arch_tensors(self):
        hp = self.hp
        n_embd, n_ff, n_q = hp.n_embd, hp.n_ff, hp.n_embd_head_k * hp.n_head
        t = self.create_tensor
        self.tok_embd = t("token_embd.weight", (n_embd, hp.n_vocab))
        self.output_norm = t("output_norm.weight", (n_embd,))
        self.output = t("output.weight", (n_embd, hp.n_vocab), optional=True) or self.tok_embd
        for i, layer in enumerate(self.layers):
            layer.attn_norm = t(f"blk.{i}.attn_norm.weight", (n_embd,))
            layer.wq = t(f"blk.{i}.attn_q.weight", (n_embd, n_q))
            layer.wk = t(f"blk.{i}.attn_k.weight", (n_embd, hp.n_embd_k_gqa))
            layer.wv = t(f"blk.{i}.attn_v.weight", (n_embd, hp.n_embd_v_gqa))
            layer.wo = t(f"blk.{i}.attn_output.weight", (n_q, n_embd))
            layer.attn_post_norm = t(f"blk.{i}.post_attention_norm.weight", (n_embd,))
            if self.qk_norm:
                layer.attn_k_norm = t(f"blk.{i}.attn_k_norm.weight", (hp.n_embd_head_k,))
                layer.attn_q_norm = t(f"blk.{i}.attn_q_norm.weight", (hp.n_embd_head_k,))
            layer.ffn_norm = t(f"blk.{i}.ffn_norm.weight", (n_embd,))
            layer.ffn_gate = t(f"blk.{i}.ffn_gate.weight", (n_embd, n_ff))
            layer.ffn_up = t(f"blk.{i}.ffn_up.weight", (n_embd, n_ff))
            layer.ffn_down = t(f"blk.{i}.ffn_down.weight", (n_ff, n_embd))
            layer.ffn_post_norm = t(f"blk.{i}.post_ffw_norm.weight", (n_embd,))

    def build_graph(self, g):
        hp = self.hp
        hd = hp.n_embd_head_k
        inpL = g.build_inp_embd(self.tok_embd)
        inpL = g.cb(ops.scale(inpL, math.sqrt(hp.n_embd)), "inp_scaled")
        inp_pos = g.build_inp_pos()
        inp_attn = g.build_attn_inp_kv_iswa() if hp.n_swa > 0 else g.build_attn_inp_kv()
        inp_out_ids = g.build_inp_out_ids()

        for il, layer in enumerate(self.layers):
            rope = (inp_pos, None, g.n_rot, g.rope_type, g.n_ctx_orig, g.rope_freq_base(il), g.rope_freq_scale(il),
                    g.ext_factor, g.attn_factor, g.beta_fast, g.beta_slow)
            cur = g.cb(g.build_norm(inpL, layer.attn_norm, None, LLM_NORM_RMS, il), "attn_norm", il)

            Qcur, Kcur, Vcur = g.build_qkv(layer, cur, hd, hp.n_head, hp.n_head_kv, il)
            if self.qk_norm:
                Qcur = g.cb(g.build_norm(Qcur, layer.attn_q_norm, None, LLM_NORM_RMS, il), "Qcur_normed", il)
                Kcur = g.cb(g.build_norm(Kcur, layer.attn_k_norm, None, LLM_NORM_RMS, il), "Kcur_normed", il)
            Qcur = g.cb(ops.rope_ext(Qcur, *rope), "Qcur", il)
            Kcur = g.cb(ops.rope_ext(Kcur, *rope), "Kcur", il)
            g.cb(Vcur, "Vcur", il)
            Qcur = ops.scale(Qcur, hp.f_attention_scale)

            cur = g.build_attn(inp_attn, layer.wo, None, Qcur, Kcur, Vcur, None, 1.0, il)
            if il == g.n_layer - 1:
                cur = ops.get_rows(cur, inp_out_ids)
                inpL = ops.get_rows(inpL, inp_out_ids)
            cur = g.cb(g.build_norm(cur, layer.attn_post_norm, None, LLM_NORM_RMS, il), "attn_post_norm", il)
            sa_out = g.cb(ops.add(cur, inpL), "sa_out", il)

            cur = g.cb(g.build_norm(sa_out, layer.ffn_norm, None, LLM_NORM_RMS, il), "ffn_norm", il)
            cur = g.build_ffn(cur, layer.ffn_up, None, layer.ffn_gate, None, layer.ffn_down, None,
                              LLM_FFN_GELU, LLM_FFN_PAR, il)
            g.cb(cur, "ffn_out", il)
            cur = g.cb(g.build_norm(cur, layer.ffn_post_norm, None, LLM_NORM_RMS, -1), "ffn_post_norm", il)
            inpL = g.cb(ops.add(cur, sa_out), "l_out", il)

        cur = g.cb(g.build_norm(inpL, self.output_norm, None, LLM_NORM_RMS, -1), "result_norm")
        g.res.t_embd = cur
        cur = g.build_lora_mm(self.output, cur)
        if hp.f_final_logit_softcapping:
            cap = hp.f_final_logit_softcapping
            cur = ops.scale(ops.tanh(ops.scale(cur, 1.0 / cap)), cap)
        g.res.t_logits = g.cb(cur, "result_output")
