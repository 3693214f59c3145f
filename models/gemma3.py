"""gemma3: Gemma 3 (llama.cpp src/models/gemma3.cpp): gemma2's graph (gemma2.py) with per-head Q/K RMS
norms before RoPE, no attention-logit cap, sliding windows on 5 of every 6 layers (those use rope base
10000) and a final-logit cap only when the GGUF gives one."""
from .gemma2 import Gemma2Model


class Gemma3Model(Gemma2Model):
    arch = "gemma3"
    qk_norm = True

    def load_arch_hparams(self, f):
        hp = self.hp
        hp.n_swa = int(f.get_arch("attention.sliding_window", 0))
        if hp.n_swa > 0:
            self.load_swa_pattern(f, 6)
            hp.rope_freq_base_swa = float(f.get_arch("rope.freq_base_swa", 10000.0))
        hp.f_final_logit_softcapping = float(f.get_arch("final_logit_softcapping", 0.0))
        hp.f_norm_rms_eps = float(f.require_arch("attention.layer_norm_rms_epsilon"))
        self.set_attention_scale(62)
