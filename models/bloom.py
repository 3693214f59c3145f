"""bloom (llama.cpp src/models/bloom.cpp): gpt2's layers (LayerNorms with biases, fused Q/K/V with
bias, GELU MLP) without position embeddings: a LayerNorm on the token embeddings, and ALiBi (max bias
8, fixed by llama.cpp) in the attention instead of positions."""
from ggraph.llm import LLM_NORM

from .gpt2 import Gpt2Model


class BloomModel(Gpt2Model):
    arch = "bloom"

    def load_arch_hparams(self, f):
        super().load_arch_hparams(f)
        self.hp.f_max_alibi_bias = 8.0

    def load_input_tensors(self):
        n_embd = self.hp.n_embd
        self.tok_norm = self.create_tensor("token_embd_norm.weight", (n_embd,))
        self.tok_norm_b = self.create_tensor("token_embd_norm.bias", (n_embd,))

    def build_input_layer(self, g, inpL):
        return g.cb(g.build_norm(inpL, self.tok_norm, self.tok_norm_b, LLM_NORM, 0), "inp_norm", 0)
