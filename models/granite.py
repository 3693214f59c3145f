"""granite (llama.cpp src/models/granite.cpp): llama's graph with IBM Granite's scales: token embeddings
times embedding_scale, attention and FFN outputs times residual_scale before each residual add, logits
divided by logit_scale, the attention scale from the GGUF, and RoPE only when rope.scaling.finetuned
(default true)."""
from .llama import LlamaModel


class GraniteModel(LlamaModel):
    arch = "granite"

    def load_arch_hparams(self, f):
        super().load_arch_hparams(f)
        hp = self.hp
        hp.f_logit_scale = float(f.require_arch("logit_scale"))
        hp.f_residual_scale = float(f.get_arch("residual_scale", 0.0))
        hp.f_embedding_scale = float(f.get_arch("embedding_scale", 0.0))
        hp.f_attention_scale = float(f.get_arch("attention.scale", 0.0))
        self.use_rope = bool(f.get_arch("rope.scaling.finetuned", True))
