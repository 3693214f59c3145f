"""The GGUF keys ggraph (and llama.cpp) read, with the value type llama.cpp's loader demands and the
range that makes sense, so every key read is checked with its name in the message.

llama_model_loader::get_key accepts a key only with exactly the GGUF type of the C++ variable it
fills (uint32_t -> u32, float -> f32, bool -> bool, std::string -> str) and throws "key ... has
wrong type ... but expected type ..." otherwise; get_key_or_arr also takes a per-layer array (u32,
i32 or bool elements) of exactly n_layer elements. GGUFFile.get / get_arch / require_arch apply
these specs; keys not listed are checked against the type of the default the caller passes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from gguf import GGUFValueType as V

from .errors import GGraphError
from .gguf_parse import type_name

_INTS = (V.UINT8, V.INT8, V.UINT16, V.INT16, V.UINT32, V.INT32, V.UINT64, V.INT64)
_FLOATS = (V.FLOAT32, V.FLOAT64)
U32_MAX = (1 << 32) - 1
INT32_MAX = (1 << 31) - 1
LLAMA_MAX_LAYERS = 512      # llama-hparams.h
LLAMA_MAX_EXPERTS = 1024


# -- range checks: value -> None if fine, else what is wrong ---------------------------------------
def finite(v):
    return None if math.isfinite(v) else "must be finite"


def finite_pos(v):
    return None if math.isfinite(v) and v > 0 else "must be finite and > 0"


def finite_nonneg(v):
    return None if math.isfinite(v) and v >= 0 else "must be finite and >= 0"


def at_least(lo):
    return lambda v: None if v >= lo else f"must be >= {lo}"


def between(lo, hi):
    return lambda v: None if lo <= v <= hi else f"must be in [{lo}, {hi}]"


@dataclass(frozen=True)
class KeySpec:
    """kind: u32 | u16 | f32 | bool | str (exact GGUF type), u32s (u32 or a per-layer array of
    n_layer u32/i32/bool), pattern (u32 or an array of <= 512 u32/i32/bool, padded with 0 to n_layer:
    llama.cpp's sliding_window_pattern), arr:str, arr:i32, arr:num (f32 or i32 elements)."""
    kind: str
    check: Callable | None = None


_ARCH = {
    "context_length": KeySpec("u32", between(1, INT32_MAX)),      # llama_model_n_ctx_train is an int32
    "embedding_length": KeySpec("u32", at_least(1)),
    "embedding_length_out": KeySpec("u32"),
    "block_count": KeySpec("u32", between(1, LLAMA_MAX_LAYERS)),
    "nextn_predict_layers": KeySpec("u32"),
    "vocab_size": KeySpec("u32", at_least(1)),
    "feed_forward_length": KeySpec("u32s"),
    "expert_feed_forward_length": KeySpec("u32s"),
    "expert_shared_feed_forward_length": KeySpec("u32"),
    "expert_count": KeySpec("u32", between(0, LLAMA_MAX_EXPERTS)),
    "expert_used_count": KeySpec("u32s"),
    "expert_shared_count": KeySpec("u32"),
    "expert_group_count": KeySpec("u32"),
    "expert_group_used_count": KeySpec("u32"),
    "expert_weights_scale": KeySpec("f32", finite_nonneg),
    "expert_weights_norm": KeySpec("bool"),
    "expert_gating_func": KeySpec("u32"),
    "leading_dense_block_count": KeySpec("u32"),
    "attention.head_count": KeySpec("u32s"),
    "attention.head_count_kv": KeySpec("u32s"),
    "attention.key_length": KeySpec("u32", at_least(1)),
    "attention.value_length": KeySpec("u32", at_least(1)),
    "attention.key_length_swa": KeySpec("u32", at_least(1)),
    "attention.value_length_swa": KeySpec("u32", at_least(1)),
    "attention.layer_norm_epsilon": KeySpec("f32", finite_pos),
    "attention.layer_norm_rms_epsilon": KeySpec("f32", finite_pos),
    "attention.causal": KeySpec("bool"),
    "attention.sliding_window": KeySpec("u32"),
    "attention.sliding_window_pattern": KeySpec("pattern"),
    "attention.scale": KeySpec("f32", finite_nonneg),
    "attention.max_alibi_bias": KeySpec("f32", finite_nonneg),
    "attention.clamp_kqv": KeySpec("f32", finite_nonneg),
    "attn_logit_softcapping": KeySpec("f32", finite_nonneg),
    "final_logit_softcapping": KeySpec("f32", finite_nonneg),
    "logit_scale": KeySpec("f32", finite_pos),
    "residual_scale": KeySpec("f32", finite_nonneg),
    "embedding_scale": KeySpec("f32", finite_nonneg),
    "pooling_type": KeySpec("u32"),
    "rope.dimension_count": KeySpec("u32"),
    "rope.dimension_count_swa": KeySpec("u32"),
    "rope.freq_base": KeySpec("f32", finite_pos),
    "rope.freq_base_swa": KeySpec("f32", finite_pos),
    "rope.scaling.type": KeySpec("str"),
    "rope.scaling.factor": KeySpec("f32", finite_nonneg),
    "rope.scale_linear": KeySpec("f32", finite_nonneg),
    "rope.scaling.attn_factor": KeySpec("f32", finite_pos),
    "rope.scaling.original_context_length": KeySpec("u32", between(1, INT32_MAX)),
    "rope.scaling.finetuned": KeySpec("bool"),
    "rope.scaling.yarn_ext_factor": KeySpec("f32", finite),
    "rope.scaling.yarn_attn_factor": KeySpec("f32", finite),
    "rope.scaling.yarn_beta_fast": KeySpec("f32", finite),
    "rope.scaling.yarn_beta_slow": KeySpec("f32", finite),
    "rope.scaling.alpha": KeySpec("f32", finite),
}

_K = "tokenizer.ggml."
_GLOBAL = {
    "general.architecture": KeySpec("str"),
    "general.name": KeySpec("str"),
    "general.file_type": KeySpec("u32"),
    "general.quantization_version": KeySpec("u32"),
    "general.alignment": KeySpec("u32"),
    "split.count": KeySpec("u16"),
    "split.no": KeySpec("u16"),
    "tokenizer.chat_template": KeySpec("str"),
    _K + "model": KeySpec("str"),
    _K + "pre": KeySpec("str"),
    _K + "tokens": KeySpec("arr:str"),
    _K + "scores": KeySpec("arr:num"),
    _K + "token_type": KeySpec("arr:i32"),
    _K + "token_type_count": KeySpec("u32"),
    _K + "merges": KeySpec("arr:str"),
    _K + "add_bos_token": KeySpec("bool"),
    _K + "add_eos_token": KeySpec("bool"),
    _K + "add_sep_token": KeySpec("bool"),
    _K + "add_space_prefix": KeySpec("bool"),
    _K + "remove_extra_whitespaces": KeySpec("bool"),
}
for _name in ("bos", "eos", "eot", "eom", "unknown", "seperator", "padding", "mask", "cls", "fim_pre", "fim_suf",
              "fim_mid", "fim_pad", "fim_rep", "fim_sep", "prefix", "suffix", "middle"):
    _GLOBAL[f"{_K}{_name}_token_id"] = KeySpec("u32")

_EXACT = {"u32": V.UINT32, "u16": V.UINT16, "f32": V.FLOAT32, "bool": V.BOOL, "str": V.STRING}
_LAYER_ELEMS = (V.UINT32, V.INT32, V.BOOL)       # get_arr into std::array<uint32_t, N>


def spec_for(key: str, arch: str | None) -> KeySpec | None:
    """The spec of a full key (`llama.block_count`, `tokenizer.ggml.tokens`), or None if unknown."""
    spec = _GLOBAL.get(key)
    if spec is None and arch and key.startswith(arch + "."):
        spec = _ARCH.get(key[len(arch) + 1:])
    return spec


def spec_from_default(default) -> KeySpec | None:
    """For a key without a spec: the kind of the caller's default (bool, int, float, str)."""
    if isinstance(default, bool):
        return KeySpec("bool")
    if isinstance(default, int):
        return KeySpec("int")
    if isinstance(default, float):
        return KeySpec("float", finite)
    if isinstance(default, str):
        return KeySpec("str")
    return None


def _wrong(key, vt, want):
    return GGraphError(f"key {key} has wrong type {type_name(*vt)} but expected type {want}")


def _range(key, spec, v, where=""):
    if spec.check is not None:
        why = spec.check(v)
        if why:
            raise GGraphError(f"{key}{where} = {v!r} {why}")


def check_value(key: str, value, vt: tuple, spec: KeySpec, n_layer: int | None = None):
    """Check a value read from the GGUF (vt = (value type, array element type)) against spec;
    returns it as Python int / float / bool / str / list. Raises GGraphError naming the key."""
    vtype, sub = vt
    kind = spec.kind
    if kind in _EXACT:
        if vtype != _EXACT[kind]:
            raise _wrong(key, vt, type_name(_EXACT[kind]))
        _range(key, spec, value)
        return value
    if kind == "int":
        if vtype not in _INTS:
            raise _wrong(key, vt, "an integer")
        _range(key, spec, value)
        return value
    if kind == "float":
        if vtype not in _FLOATS:
            raise _wrong(key, vt, "f32")
        _range(key, spec, value)
        return value
    if kind in ("u32s", "pattern"):
        if vtype == V.UINT32:
            _range(key, spec, value)
            return value
        if vtype != V.ARRAY:
            raise _wrong(key, vt, "u32 or a per-layer array")
        if sub not in _LAYER_ELEMS:
            raise GGraphError(f"key {key} has wrong array element type {type_name(sub)}")
        vals = [int(x) for x in value]
        if any(x < 0 for x in vals):
            raise GGraphError(f"key {key} has a negative element")
        if kind == "u32s":
            if n_layer is not None and len(vals) != n_layer:
                raise GGraphError(f"key {key} has wrong array length; expected {n_layer}, got {len(vals)}")
        else:
            if len(vals) > LLAMA_MAX_LAYERS:
                raise GGraphError(f"array length {len(vals)} for key {key} exceeds max {LLAMA_MAX_LAYERS}")
            if n_layer is not None and len(vals) < n_layer:
                vals = vals + [0] * (n_layer - len(vals))   # llama.cpp leaves the other layers at 0
        for i, x in enumerate(vals):
            _range(key, spec, x, f"[{i}]")
        return vals
    if kind.startswith("arr:"):
        want = {"arr:str": (V.STRING,), "arr:i32": (V.INT32,), "arr:num": (V.FLOAT32, V.INT32)}[kind]
        if vtype != V.ARRAY or sub not in want:
            raise GGraphError(f"invalid gguf type for {key}: {type_name(*vt)}, expected "
                              f"{' or '.join(type_name(V.ARRAY, w) for w in want)}")
        return value
    raise AssertionError(kind)


def uniform(key: str, value) -> int:
    """A per-layer u32s value ggraph needs as one number: the scalar, or an array whose elements are
    all equal (ggraph's architectures have the same shapes in every layer)."""
    if not isinstance(value, list):
        return value
    if not value:
        raise GGraphError(f"key {key} is an empty array")
    if any(x != value[0] for x in value):
        raise GGraphError(f"key {key} has different values per layer ({sorted(set(value))}), which ggraph "
                          f"does not support")
    return value[0]
