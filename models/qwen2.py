"""qwen2 (llama.cpp src/models/qwen2.cpp): llama's graph with Q/K/V biases and NEOX RoPE."""
from ggraph.ops import ROPE_TYPE_NEOX

from .llama import LlamaModel


class Qwen2Model(LlamaModel):
    arch = "qwen2"
    rope_type = ROPE_TYPE_NEOX

    def load_arch_tensors(self):
        super().load_arch_tensors()
        self.output_b = self.create_tensor("output.bias", (self.hp.n_vocab,), optional=True)
