"""llama: the Llama architecture (llama.cpp src/models/llama.cpp), dense (SmolLM2) or with Mixtral's
mixture of experts (ffn_gate_inp + ffn_{gate,up,down}_exps instead of the dense FFN)."""
from ggraph import ops
from ggraph.errors import GGraphError
from ggraph.llm import LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX, LLM_FFN_PAR, LLM_FFN_SILU, LLM_NORM_RMS
from ggraph.model_base import ModelBase
from ggraph.ops import ROPE_TYPE_NORM


class LlamaModel(ModelBase):
    arch = "llama"
    rope_type = ROPE_TYPE_NORM
    moe_norm_w = True       # Mixtral: expert weights renormalised over the selected experts
    use_rope = True         # granite can switch RoPE off

    def load_arch_hparams(self, f):
        self.hp.f_norm_rms_eps = float(f.require_arch("attention.layer_norm_rms_epsilon"))

    def require_experts(self, f):
        """For the MoE-only archs: the expert keys are required, and the expert FFN width defaults
        to n_ff / n_expert_used as llama.cpp's qwen MoE loaders have it."""
        for key in ("expert_count", "expert_used_count"):
            f.require_arch(key)
        if self.hp.n_expert == 0:
            raise GGraphError(f"{f.path}: {f.arch}.expert_count must be positive for arch {self.arch}")
        self.hp.n_ff_exp = self.hp.n_ff_exp or self.hp.n_ff // self.hp.n_expert_used

    def load_arch_tensors(self):
        hp = self.hp
        n_embd, n_vocab = hp.n_embd, hp.n_vocab
        t = self.create_tensor
        self.tok_embd = t("token_embd.weight", (n_embd, n_vocab))
        self.output_norm = t("output_norm.weight", (n_embd,))
        # tied embeddings: reuse token_embd when output.weight is absent
        self.output = t("output.weight", (n_embd, n_vocab), optional=True) or self.tok_embd
        self.output_b = None
        for i, layer in enumerate(self.layers):
            layer.attn_norm = t(f"blk.{i}.attn_norm.weight", (n_embd,))
            self.load_layer_attn(i, layer)
            layer.ffn_norm = t(f"blk.{i}.ffn_norm.weight", (n_embd,))
            if hp.n_expert == 0:
                self.load_layer_ffn(i, layer)
            else:
                self.load_layer_moe(i, layer)

    def load_layer_attn(self, i, layer):
        hp, t = self.hp, self.create_tensor
        n_q = hp.n_embd_head_k * hp.n_head
        layer.wq = t(f"blk.{i}.attn_q.weight", (hp.n_embd, n_q))
        layer.wk = t(f"blk.{i}.attn_k.weight", (hp.n_embd, hp.n_embd_k_gqa))
        layer.wv = t(f"blk.{i}.attn_v.weight", (hp.n_embd, hp.n_embd_v_gqa))
        layer.bq = t(f"blk.{i}.attn_q.bias", (n_q,), optional=True)
        layer.bk = t(f"blk.{i}.attn_k.bias", (hp.n_embd_k_gqa,), optional=True)
        layer.bv = t(f"blk.{i}.attn_v.bias", (hp.n_embd_v_gqa,), optional=True)
        layer.wo = t(f"blk.{i}.attn_output.weight", (n_q, hp.n_embd))
        layer.wo_b = t(f"blk.{i}.attn_output.bias", (hp.n_embd,), optional=True)
        layer.rope_freqs = t("rope_freqs.weight", (hp.n_rot // 2,), optional=True)
        layer.attn_q_norm = layer.attn_k_norm = None     # qwen3 and others: per-head Q/K RMS norms

    def load_layer_ffn(self, i, layer):
        n_embd, n_ff, t = self.hp.n_embd, self.hp.n_ff, self.create_tensor
        layer.ffn_gate = t(f"blk.{i}.ffn_gate.weight", (n_embd, n_ff))
        layer.ffn_down = t(f"blk.{i}.ffn_down.weight", (n_ff, n_embd))
        layer.ffn_up = t(f"blk.{i}.ffn_up.weight", (n_embd, n_ff))
        layer.ffn_gate_b = t(f"blk.{i}.ffn_gate.bias", (n_ff,), optional=True)
        layer.ffn_down_b = t(f"blk.{i}.ffn_down.bias", (n_embd,), optional=True)
        layer.ffn_up_b = t(f"blk.{i}.ffn_up.bias", (n_ff,), optional=True)

    def load_layer_moe(self, i, layer):
        hp, t = self.hp, self.create_tensor
        n_embd, n_expert, n_ff = hp.n_embd, hp.n_expert, hp.n_ff_exp or hp.n_ff
        layer.ffn_gate_inp = t(f"blk.{i}.ffn_gate_inp.weight", (n_embd, n_expert))
        layer.ffn_gate_exps = t(f"blk.{i}.ffn_gate_exps.weight", (n_embd, n_ff, n_expert), optional=True)
        layer.ffn_down_exps = t(f"blk.{i}.ffn_down_exps.weight", (n_ff, n_embd, n_expert))
        layer.ffn_up_exps = t(f"blk.{i}.ffn_up_exps.weight", (n_embd, n_ff, n_expert))

    def build_graph(self, g):
        hp = self.hp
        inpL = g.build_inp_embd(self.tok_embd)
        inp_pos = g.build_inp_pos()
        inp_attn = g.build_attn_inp_kv()
        kq_scale = g.default_kq_scale()
        inp_out_ids = g.build_inp_out_ids()

        for il, layer in enumerate(self.layers):
            inpSA = inpL
            cur = g.cb(g.build_norm(inpL, layer.attn_norm, None, LLM_NORM_RMS, il), "attn_norm", il)

            Qcur, Kcur, Vcur = self.build_layer_qkv(g, layer, cur, il)
            if self.use_rope:
                rope = (inp_pos, layer.rope_freqs, g.n_rot, g.rope_type, g.n_ctx_orig, g.freq_base, g.freq_scale,
                        g.ext_factor, g.attn_factor, g.beta_fast, g.beta_slow)
                Qcur = ops.rope_ext(Qcur, *rope)
                Kcur = ops.rope_ext(Kcur, *rope)
            g.cb(Qcur, "Qcur", il)
            g.cb(Kcur, "Kcur", il)
            g.cb(Vcur, "Vcur", il)

            cur = g.build_attn(inp_attn, layer.wo, layer.wo_b, Qcur, Kcur, Vcur, None, kq_scale, il)
            g.cb(cur, "attn_out", il)
            if il == g.n_layer - 1:
                cur = ops.get_rows(cur, inp_out_ids)
                inpSA = ops.get_rows(inpSA, inp_out_ids)
            if hp.f_residual_scale:     # granite
                cur = ops.scale(cur, hp.f_residual_scale)
            ffn_inp = g.cb(ops.add(cur, inpSA), "ffn_inp", il)

            cur = g.cb(g.build_norm(ffn_inp, layer.ffn_norm, None, LLM_NORM_RMS, il), "ffn_norm", il)
            cur = g.cb(self.build_layer_ffn(g, layer, cur, il), "ffn_out", il)
            if hp.f_residual_scale:
                cur = ops.scale(cur, hp.f_residual_scale)
            cur = g.cb(ops.add(cur, ffn_inp), "l_out", il)
            inpL = cur

        cur = g.cb(g.build_norm(inpL, self.output_norm, None, LLM_NORM_RMS, -1), "result_norm")
        g.res.t_embd = cur
        cur = g.build_lora_mm(self.output, cur)
        if self.output_b is not None:
            cur = ops.add(cur, self.output_b)
        if hp.f_logit_scale:            # granite
            cur = ops.scale(cur, 1.0 / hp.f_logit_scale)
        cur = g.cb(cur, "result_output")
        g.res.t_logits = cur

    def build_layer_qkv(self, g, layer, cur, il):
        """Q, K, V [head_dim, n_heads, n_tokens] before RoPE: the projections, then the optional per-head
        Q/K norms (qwen3). olmoe overrides it to norm the whole projections first."""
        hp = self.hp
        Qcur, Kcur, Vcur = g.build_qkv(layer, cur, hp.n_embd_head_v, hp.n_head, hp.n_head_kv, il)
        if layer.attn_q_norm is not None:
            Qcur = g.cb(g.build_norm(Qcur, layer.attn_q_norm, None, LLM_NORM_RMS, il), "Qcur_normed", il)
            Kcur = g.cb(g.build_norm(Kcur, layer.attn_k_norm, None, LLM_NORM_RMS, il), "Kcur_normed", il)
        return Qcur, Kcur, Vcur

    def build_layer_ffn(self, g, layer, cur, il):
        hp = self.hp
        if hp.n_expert == 0:
            return g.build_ffn(cur, layer.ffn_up, layer.ffn_up_b, layer.ffn_gate, layer.ffn_gate_b,
                               layer.ffn_down, layer.ffn_down_b, LLM_FFN_SILU, LLM_FFN_PAR, il)
        return g.build_moe_ffn(cur, layer.ffn_gate_inp, layer.ffn_up_exps, layer.ffn_gate_exps,   # MoE branch
                               layer.ffn_down_exps, hp.n_expert, hp.n_expert_used, LLM_FFN_SILU,
                               self.moe_norm_w, hp.expert_weights_scale, LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX, il)
