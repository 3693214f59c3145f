"""Generic hyperparameters every architecture reads (llama_model_base::load_hparams)."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import gguf_keys
from .errors import GGraphError
from .gguf_file import GGUFFile

ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")


@dataclass
class HParams:
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_embd_head_k: int
    n_embd_head_v: int
    n_rot: int
    n_vocab: int
    rope_freq_base: float = 10000.0
    rope_freq_scale: float = 1.0
    f_norm_eps: float = 0.0
    f_norm_rms_eps: float = 0.0
    rope_type: int = 0            # set by the architecture (ROPE_TYPE_NORM / NEOX)
    f_attention_scale: float = 0.0   # 0: 1/sqrt(head_dim)
    # sliding-window attention (llama_swa_type STANDARD): layer il attends to the last n_swa positions
    n_swa: int = 0
    swa_layers: list = field(default_factory=list)
    rope_freq_base_swa: float = 10000.0
    rope_freq_scale_swa: float = 1.0
    f_final_logit_softcapping: float = 0.0   # 0: off; else logits = c * tanh(logits / c) (gemma2/3)
    # mixture of experts (<arch>.expert_count / expert_used_count); 0: dense
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0             # expert_feed_forward_length (0: n_ff)
    n_ff_shexp: int = 0           # expert_shared_feed_forward_length (0: no shared expert)
    expert_weights_scale: float = 0.0    # 0 or 1: unscaled
    # rope scaling (llama_model_base::load_hparams); the context derives ext/attn factors from these
    rope_scaling_type: str = "linear"    # none | linear | yarn | longrope
    n_ctx_orig_yarn: int = 0
    rope_attn_factor: float = 1.0
    # per-arch keys, read by the archs that use them as llama.cpp's loaders do (0: off)
    f_attn_logit_softcapping: float = 0.0   # attention logits = c * tanh(kq / c) (gemma2)
    f_embedding_scale: float = 0.0          # granite: token embeddings times this
    f_residual_scale: float = 0.0           # granite: attention / FFN outputs times this before the residual add
    f_logit_scale: float = 0.0              # granite: logits divided by this
    f_clamp_kqv: float = 0.0                # Q, K, V clamped to [-c, c] after the projections
    f_max_alibi_bias: float = 0.0           # ALiBi (attention.max_alibi_bias): the mask holds -|i - j|

    def is_swa(self, il: int) -> bool:
        return self.n_swa > 0 and bool(self.swa_layers) and self.swa_layers[il]

    def set_swa_pattern(self, n_pattern: int, dense_first: bool = False) -> None:
        """llama_hparams::set_swa_pattern: every n_pattern-th layer is dense, the others SWA."""
        if dense_first:
            self.swa_layers = [n_pattern == 0 or il % n_pattern != 0 for il in range(self.n_layer)]
        else:
            self.swa_layers = [n_pattern == 0 or il % n_pattern < n_pattern - 1 for il in range(self.n_layer)]

    @property
    def n_embd_k_gqa(self) -> int:
        return self.n_embd_head_k * self.n_head_kv

    @property
    def n_embd_v_gqa(self) -> int:
        return self.n_embd_head_v * self.n_head_kv

    @property
    def n_gqa(self) -> int:
        return self.n_head // self.n_head_kv


def _fail(f: GGUFFile, msg: str):
    raise GGraphError(f"{f.path}: {msg}")


def _uniform(f: GGUFFile, key: str, value):
    """A per-layer key (scalar or array) as the one value ggraph's architectures use."""
    try:
        return gguf_keys.uniform(f"{f.arch}.{key}", value)
    except GGraphError as e:
        raise GGraphError(f"{f.path}: {e}") from None


def load_hparams(f: GGUFFile) -> HParams:
    """llama_model_base::load_hparams: every key read with the type llama.cpp demands (gguf_keys.py),
    then the checks that need several keys, each naming the keys involved."""
    a = f.arch
    n_layer_all = f.require_arch("block_count")          # u32 in [1, 512]
    n_nextn = f.get_arch("nextn_predict_layers", 0)
    if n_nextn >= n_layer_all:
        _fail(f, f"{a}.nextn_predict_layers = {n_nextn} must be below {a}.block_count = {n_layer_all}")
    n_layer = n_layer_all - n_nextn
    n_ctx_train = f.require_arch("context_length")       # llama.cpp requires it too
    n_embd = f.require_arch("embedding_length")
    n_head = _uniform(f, "attention.head_count", f.require_arch("attention.head_count"))
    if n_head < 1:
        _fail(f, f"{a}.attention.head_count = {n_head} must be >= 1")
    n_head_kv = _uniform(f, "attention.head_count_kv", f.get_arch("attention.head_count_kv", n_head))
    if n_head_kv < 1 or n_head % n_head_kv:
        _fail(f, f"{a}.attention.head_count = {n_head} is not a multiple of {a}.attention.head_count_kv = {n_head_kv}")
    derived = f.get_arch("attention.key_length") is None or f.get_arch("attention.value_length") is None
    if derived and n_embd % n_head:
        _fail(f, f"{a}.embedding_length = {n_embd} is not a multiple of {a}.attention.head_count = {n_head} "
                 f"(and no attention.key_length / value_length gives the head size)")
    head_k = f.get_arch("attention.key_length", n_embd // n_head)
    head_v = f.get_arch("attention.value_length", n_embd // n_head)
    if head_k < 1 or head_v < 1:
        _fail(f, f"{a}.embedding_length = {n_embd} / head_count = {n_head} gives a head size of 0")
    n_rot = f.get_arch("rope.dimension_count", head_k)
    if a == "llama" and n_rot != head_k:       # llama-model.cpp: "invalid n_rot"
        _fail(f, f"invalid n_rot: {a}.rope.dimension_count = {n_rot}, expected the head size {head_k}")
    if not 2 <= n_rot <= head_k or n_rot % 2:
        _fail(f, f"{a}.rope.dimension_count = {n_rot} must be even and in [2, head size {head_k}]")
    tokens = f.get("tokenizer.ggml.tokens")
    n_vocab = len(tokens) if tokens else f.get_arch("vocab_size", 0)
    vocab_size = f.get_arch("vocab_size")
    if tokens and vocab_size is not None and vocab_size != len(tokens):
        _fail(f, f"{a}.vocab_size = {vocab_size} but tokenizer.ggml.tokens has {len(tokens)} tokens")
    if n_vocab < 1:
        _fail(f, f"no vocabulary size: neither tokenizer.ggml.tokens nor {a}.vocab_size")
    scale = f.get_arch("rope.scaling.factor", 0.0) or f.get_arch("rope.scale_linear", 0.0) or 0.0
    rope_scaling = f.get_arch("rope.scaling.type", "linear")
    if rope_scaling not in ROPE_SCALING_TYPES:
        _fail(f, f"{a}.rope.scaling.type {rope_scaling!r} is not one of {', '.join(ROPE_SCALING_TYPES)}")
    freq_base = f.get_arch("rope.freq_base", 10000.0)      # finite and > 0 (gguf_keys)
    for key in ("rope.freq_base", "rope.freq_base_swa"):
        if f.get_arch(key, 10000.0) == 1.0:
            _fail(f, f"{a}.{key} = 1 is not supported (the YaRN correction dims divide by log(freq_base))")
    n_expert = f.get_arch("expert_count", 0)
    n_expert_used = _uniform(f, "expert_used_count", f.get_arch("expert_used_count", 0))
    if n_expert and not 0 < n_expert_used <= n_expert:
        _fail(f, f"{a}.expert_used_count {n_expert_used} must be in [1, expert_count {n_expert}]")
    if not n_expert and n_expert_used:
        _fail(f, f"{a}.expert_used_count = {n_expert_used} without {a}.expert_count")
    n_ff = _uniform(f, "feed_forward_length", f.get_arch("feed_forward_length", 0))
    n_ff_exp = _uniform(f, "expert_feed_forward_length", f.get_arch("expert_feed_forward_length", 0))
    return HParams(
        n_ctx_train=n_ctx_train,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=n_ff,
        n_embd_head_k=head_k,
        n_embd_head_v=head_v,
        n_rot=n_rot,
        n_vocab=n_vocab,
        rope_freq_base=freq_base,
        rope_freq_scale=1.0 / float(scale) if scale else 1.0,
        f_norm_eps=f.get_arch("attention.layer_norm_epsilon", 0.0),
        f_norm_rms_eps=f.get_arch("attention.layer_norm_rms_epsilon", 0.0),
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        n_ff_exp=n_ff_exp,
        rope_scaling_type=rope_scaling,
        n_ctx_orig_yarn=f.get_arch("rope.scaling.original_context_length", n_ctx_train),
        rope_attn_factor=f.get_arch("rope.scaling.attn_factor", 1.0),
    )
