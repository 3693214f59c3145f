"""LLM graph helpers, mirroring llama.cpp's llm_graph_context (src/llama-graph.cpp).

A model file's build_graph(g) receives an LLMGraphContext `g` for one ubatch and calls these
helpers. Inputs (tokens, positions, mask, KV cells, output ids) are GraphInput objects, each owning
its leaves and filling them from the ubatch (llama.cpp's llm_graph_input_*::set_input); the runtime
only loops over g.inputs. The KV cache is a set of long-lived leaves (KVCacheLayout); the tensors a
caller reads back are g.res.t_embd / g.res.t_logits (llm_graph_result).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import ops
from .errors import GGraphError
from .graph import F16, F32, I32, Graph, Tensor, row_size

# llm_norm_type
LLM_NORM = "norm"
LLM_NORM_RMS = "rms"
# llm_ffn_op_type / llm_ffn_gate_type
LLM_FFN_SILU = "silu"
LLM_FFN_GELU = "gelu"
LLM_FFN_RELU = "relu"
LLM_FFN_RELU_SQR = "relu_sqr"
LLM_FFN_SWIGLU = "swiglu"     # one tensor whose rows are [gate; up] (phi3's fused ffn_up)
LLM_FFN_GEGLU = "geglu"
LLM_FFN_REGLU = "reglu"
LLM_FFN_SEQ = "seq"
LLM_FFN_PAR = "par"
# type_op -> (gated op and its node name) for a parallel gate
_GLU = {LLM_FFN_SILU: (ops.swiglu_split, "swiglu"), LLM_FFN_GELU: (ops.geglu_split, "geglu"),
        LLM_FFN_RELU: (ops.reglu_split, "reglu")}
# type_op -> the activation alone, as a chain of (op, node name)
_ACT = {LLM_FFN_SILU: ((ops.silu, "silu"),), LLM_FFN_GELU: ((ops.gelu, "gelu"),),
        LLM_FFN_RELU: ((ops.relu, "relu"),), LLM_FFN_RELU_SQR: ((ops.relu, "relu"), (ops.sqr, "sqr(relu)")),
        LLM_FFN_SWIGLU: ((ops.swiglu, "swiglu"),), LLM_FFN_GEGLU: ((ops.geglu, "geglu"),),
        LLM_FFN_REGLU: ((ops.reglu, "reglu"),)}


def _glu(helper: str, type_op: str):
    """The gated activation of type_op: (gate, up) -> act(gate) * up, and its node name."""
    if type_op not in _GLU:
        raise GGraphError(f"{helper}: unsupported op {type_op!r} with a parallel gate")
    return _GLU[type_op]


def _activation(helper: str, type_op: str):
    if type_op not in _ACT:
        raise GGraphError(f"{helper}: unsupported op {type_op!r}")
    return _ACT[type_op]


# expert gating (llama_expert_gating_func_type)
LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX = 1
LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID = 2


class KVCacheLayout:
    """The KV cache as graph leaves: per layer K [n_embd_k_gqa, size * n_stream] and V stored
    transposed [size * n_stream, n_embd_v_gqa] (llama.cpp's layout without flash attention), both
    F16. Stream s (one sequence each, llama.cpp's non-unified cache) owns cells [s*size, (s+1)*size):
    a sequence's attention reads only its own stream, laid out as if it were alone."""

    def __init__(self, hp, size: int, type_k=F16, type_v=F16, n_stream: int = 1, size_swa: int | None = None):
        self.size, self.n_stream = size, n_stream
        # size_swa: the sliding-window layers' own smaller cache (llama.cpp's iswa, swa_full = false),
        # size_swa cells per stream placed by runtime/kv_cells.py; None: every layer has size cells
        self.size_swa = size_swa if size_swa is not None and size_swa < size else None
        self.graph = Graph()
        self.k, self.v = [], []
        for il in range(hp.n_layer):
            cells = self.layer_size(hp, il) * n_stream
            self.k.append(self.graph.cache(f"cache_k_l{il}", type_k, (hp.n_embd_k_gqa, cells)))
            self.v.append(self.graph.cache(f"cache_v_l{il}", type_v, (cells, hp.n_embd_v_gqa)))

    def windowed(self, hp, il: int) -> bool:
        """Layer il reads the window-sized cache."""
        return self.size_swa is not None and hp.is_swa(il)

    def layer_size(self, hp, il: int) -> int:
        return self.size_swa if self.windowed(hp, il) else self.size


@dataclass(frozen=True)
class StreamSlice:
    """The tokens [t0, t1) of a ubatch that belong to the sequence in KV stream `stream`, which
    attends over the first n_kv cells of its stream."""
    stream: int
    t0: int
    t1: int
    n_kv: int
    swa_skip: int = 0      # leading cells every token's sliding window has left (a multiple of 64)
    n_kv_swa: int = 0      # cells of the window-sized cache read (KVCacheLayout.size_swa; else unused)


@dataclass
class UBatch:
    """One physical batch (llama_ubatch). The shape fields size the graph; the arrays are what the
    graph inputs are filled from before each run (None while only building)."""
    n_tokens: int
    n_outputs: int
    n_kv: int                             # cache cells the attention reads (a multiple of 256, or kv size)
    tokens: np.ndarray | None = None      # int32 [n_tokens]
    pos: np.ndarray | None = None         # int32 [n_tokens] position of each token
    out_ids: np.ndarray | None = None     # int32 [n_outputs] rows whose logits are computed
    kv_cells: np.ndarray | None = None    # int32 [n_tokens] cache cell each token's K/V is written to
    kv_pos: np.ndarray | None = None      # int32 [n_kv] position held by each cell read (-1: empty)
    # several sequences (each in its own KV stream, tokens grouped by sequence): their slices, and
    # per slice the positions its cells hold (kv_pos then unused); None: one sequence in stream 0
    streams: tuple | None = None          # tuple[StreamSlice, ...]
    stream_kv_pos: list | None = None     # [int32 [n_kv] per slice]
    # rows computed as if each token were alone (weight products row by row with the one-token
    # kernels): a decode step of several sequences then gives each one's solo logits, bit for bit
    independent_rows: bool = False
    swa_skip: int = 0                     # one sequence: StreamSlice.swa_skip of stream 0
    n_kv_swa: int = 0                     # one sequence: StreamSlice.n_kv_swa of stream 0
    # the window-sized cache (KVCacheLayout.size_swa): cell of each token, and per slice the
    # positions its first n_kv_swa cells hold (-1: empty), in cell order
    kv_cells_swa: np.ndarray | None = None
    kv_pos_swa: list | None = None

    def slices(self) -> tuple:
        if self.streams is not None:
            return self.streams
        return (StreamSlice(0, 0, self.n_tokens, self.n_kv, self.swa_skip, self.n_kv_swa),)

    def slice_kv_pos(self, i: int) -> np.ndarray:
        return self.kv_pos if self.streams is None else self.stream_kv_pos[i]


@dataclass
class ContextParams:
    n_ctx: int
    freq_base: float
    freq_scale: float
    n_ctx_orig: int
    ext_factor: float = 0.0
    attn_factor: float = 1.0
    beta_fast: float = 32.0
    beta_slow: float = 1.0


def context_params(hp, n_ctx: int) -> ContextParams:
    """The rope parameters llama_context derives from the model's (no user overrides yet): no
    scaling for type 'none', YaRN's extrapolation mix and its attention factor for 'yarn' (the
    rope kernel multiplies by 1 + 0.1 ln(1/freq_scale) itself, which llama.cpp cancels here)."""
    f32 = np.float32
    freq_scale = 1.0 if hp.rope_scaling_type == "none" else hp.rope_freq_scale
    ext_factor = 1.0 if hp.rope_scaling_type == "yarn" else 0.0
    attn_factor = f32(1.0)
    if ext_factor != 0.0:
        factor = f32(1.0) / f32(freq_scale)
        mscale = f32(1.0) if factor <= 1.0 else f32(0.1) * np.log(factor) + f32(1.0)
        attn_factor = mscale * (f32(1.0) / (f32(1.0) + f32(0.1) * np.log(factor)))
    attn_factor = f32(attn_factor * f32(hp.rope_attn_factor))
    return ContextParams(n_ctx=n_ctx, freq_base=hp.rope_freq_base, freq_scale=freq_scale,
                         n_ctx_orig=hp.n_ctx_orig_yarn or hp.n_ctx_train, ext_factor=ext_factor,
                         attn_factor=float(attn_factor))


# -- graph inputs (llm_graph_input_*): each owns its leaves and fills them from the ubatch --------
class GraphInput:
    """llm_graph_input_i. set_input(ub, arr) writes this input's leaves, where arr(t) is the flat
    array the runtime planned for leaf t. A model needing a new input adds a class here."""

    def set_input(self, ub: UBatch, arr) -> None:
        raise NotImplementedError


class InputEmbd(GraphInput):
    """llm_graph_input_embd: the token ids."""

    def __init__(self, g: "LLMGraphContext"):
        self.tokens = g.gf.input("inp_tokens", I32, (g.n_tokens,))

    def set_input(self, ub, arr):
        arr(self.tokens)[:] = ub.tokens


class InputPos(GraphInput):
    """llm_graph_input_pos: one position per token."""

    def __init__(self, g: "LLMGraphContext"):
        self.pos = g.gf.input("inp_pos", I32, (g.n_tokens,))

    def set_input(self, ub, arr):
        arr(self.pos)[:] = ub.pos


class InputOutIds(GraphInput):
    """llm_graph_input_out_ids: the rows kept for the last layer and the logits."""

    def __init__(self, g: "LLMGraphContext"):
        self.out_ids = g.gf.input("inp_out_ids", I32, (g.n_outputs,))

    def set_input(self, ub, arr):
        arr(self.out_ids)[:] = ub.out_ids


def kq_mask(ub: UBatch, n_swa: int = 0, alibi: bool = False) -> np.ndarray:
    """llama_kv_cache::set_input_kq_mask for one sequence: 0 where token i may attend to cell j
    (causal: the cell holds a position <= the token's), -inf elsewhere; [n_tokens, n_kv].
    n_swa > 0 also masks cells n_swa or more positions back (llama_hparams::is_masked_swa, STANDARD).
    alibi: visible cells hold -|p_i - p_j| instead of 0 (soft_max_ext scales it per head)."""
    p, cp = ub.pos[:, None], ub.kv_pos[None, :]
    visible = (cp >= 0) & (cp <= p)
    if n_swa > 0:
        visible &= p - cp < n_swa
    inside = -np.abs(p - cp).astype(np.float32) if alibi else np.float32(0.0)
    return np.where(visible, inside, np.float32(-np.inf)).astype(np.float32)


class InputAttnKV(GraphInput):
    """llm_graph_input_attn_kv(_iswa): cache cells to write K/V to, the causal mask and, for
    models with sliding-window layers, the window mask (one cache holds every layer here)."""

    def __init__(self, g: "LLMGraphContext", swa: bool = False):
        self.hp = g.hp       # read at set_input time, as llama.cpp's input keeps its hparams
        self.k_idxs = g.gf.input("k_idxs", I32, (g.n_tokens,))
        self.v_idxs = g.gf.input("v_idxs", I32, (g.n_tokens,))
        self.slices = g.ubatch.slices()
        self.runs = stream_runs(self.slices)
        # the sliding-window layers' own window-sized cache (llama.cpp's iswa): its cells and masks
        self.windowed = swa and g.kv.size_swa is not None
        if self.windowed:
            self.k_idxs_swa = g.gf.input("k_idxs_swa", I32, (g.n_tokens,))
            self.v_idxs_swa = g.gf.input("v_idxs_swa", I32, (g.n_tokens,))
        # one mask per run of slices [n_kv, tokens per slice, 1, slices] (one slice: llama.cpp's kq_mask)
        suffix = [""] if len(self.runs) == 1 else [f"_s{self.slices[i0].stream}" for i0, _ in self.runs]

        def shape(i0, i1, n_kv):
            sl = self.slices[i0]
            return (n_kv, sl.t1 - sl.t0) + ((1, i1 - i0) if i1 - i0 > 1 else ())
        self.masks = [g.gf.input("kq_mask" + x, F32, shape(i0, i1, self.slices[i0].n_kv))
                      for x, (i0, i1) in zip(suffix, self.runs)]
        # the window mask: over the window-sized cache, or over the full one leaving out the leading
        # cells no token of the slice can see (swa_skip)
        self.masks_swa = [g.gf.input("kq_mask_swa" + x, F32, shape(i0, i1, self.n_kv_swa(self.slices[i0])))
                          for x, (i0, i1) in zip(suffix, self.runs)] if swa else None
        self.kq_mask = self.masks[0]
        self.kq_mask_swa = self.masks_swa[0] if swa else None

    def n_kv_swa(self, sl) -> int:
        """Cells a sliding-window layer reads for slice sl."""
        return sl.n_kv_swa if self.windowed else sl.n_kv - sl.swa_skip

    def get_kq_mask(self, hp, il: int, r: int = 0) -> Tensor:
        """The mask of run r (stream_runs) for layer il."""
        return self.masks_swa[r] if (self.masks_swa is not None and hp.is_swa(il)) else self.masks[r]

    def set_input(self, ub, arr):
        arr(self.k_idxs)[:] = ub.kv_cells
        arr(self.v_idxs)[:] = ub.kv_cells
        if self.windowed:
            arr(self.k_idxs_swa)[:] = ub.kv_cells_swa
            arr(self.v_idxs_swa)[:] = ub.kv_cells_swa
        alibi = self.hp.f_max_alibi_bias > 0.0
        for r, (i0, i1) in enumerate(self.runs):
            # a run's mask planes: slice after slice (ggml's dim 3, one per stream)
            mask = arr(self.masks[r]).reshape(i1 - i0, -1)
            mask_swa = None if self.masks_swa is None else arr(self.masks_swa[r]).reshape(i1 - i0, -1)
            for j, i in enumerate(range(i0, i1)):
                sl = self.slices[i]
                part = UBatch(sl.t1 - sl.t0, 0, sl.n_kv, pos=ub.pos[sl.t0:sl.t1], kv_pos=ub.slice_kv_pos(i))
                mask[j] = kq_mask(part, 0, alibi).reshape(-1)
                if mask_swa is not None and self.windowed:
                    part = UBatch(sl.t1 - sl.t0, 0, sl.n_kv_swa, pos=ub.pos[sl.t0:sl.t1], kv_pos=ub.kv_pos_swa[i])
                    mask_swa[j] = kq_mask(part, self.hp.n_swa, alibi).reshape(-1)
                elif mask_swa is not None:
                    mask_swa[j] = kq_mask(part, self.hp.n_swa, alibi)[:, sl.swa_skip:].reshape(-1)


def stream_runs(slices) -> list:
    """Index ranges [i0, i1) of ubatch slices attended by ONE 4-D product each (llama.cpp's KV
    streams in dim 3): consecutive streams with the same token count, n_kv and swa_skip."""
    runs = []
    for i, sl in enumerate(slices):
        if runs:
            i0, i1 = runs[-1]
            prev, first = slices[i1 - 1], slices[i0]
            if (sl.stream == prev.stream + 1 and sl.t0 == prev.t1 and sl.t1 - sl.t0 == first.t1 - first.t0
                    and sl.n_kv == first.n_kv and sl.swa_skip == first.swa_skip and sl.n_kv_swa == first.n_kv_swa):
                runs[-1] = (i0, i + 1)
                continue
        runs.append((i, i + 1))
    return runs


class GraphResult:
    """llm_graph_result: the tensors read after a run. Setting one marks it as a graph output
    under its node name ('result_norm', 'result_output')."""

    def __init__(self, gf: Graph):
        self._gf = gf
        self._embd: Tensor | None = None
        self._logits: Tensor | None = None

    @property
    def t_embd(self) -> Tensor | None:
        return self._embd

    @t_embd.setter
    def t_embd(self, t: Tensor) -> None:
        self._embd = t
        self._gf.set_output(t)

    @property
    def t_logits(self) -> Tensor | None:
        return self._logits

    @t_logits.setter
    def t_logits(self, t: Tensor) -> None:
        self._logits = t
        self._gf.set_output(t)


class LLMGraphContext:
    def __init__(self, model, cparams: ContextParams, ubatch: UBatch, kv: KVCacheLayout):
        hp = model.hp
        self.model, self.hp, self.cparams, self.ubatch, self.kv = model, hp, cparams, ubatch, kv
        self.gf = Graph()
        self.n_embd, self.n_layer, self.n_rot = hp.n_embd, hp.n_layer, hp.n_rot
        self.n_head, self.n_head_kv = hp.n_head, hp.n_head_kv
        self.n_embd_head_k, self.n_embd_head_v = hp.n_embd_head_k, hp.n_embd_head_v
        self.n_tokens, self.n_outputs, self.n_kv = ubatch.n_tokens, ubatch.n_outputs, ubatch.n_kv
        self.norm_eps, self.norm_rms_eps = hp.f_norm_eps, hp.f_norm_rms_eps
        self.rope_type = hp.rope_type
        self.freq_base, self.freq_scale = cparams.freq_base, cparams.freq_scale
        self.n_ctx_orig = cparams.n_ctx_orig
        self.ext_factor, self.attn_factor = cparams.ext_factor, cparams.attn_factor
        self.beta_fast, self.beta_slow = cparams.beta_fast, cparams.beta_slow
        self.inputs: list[GraphInput] = []   # filled by the runtime before each run, in this order
        self.res = GraphResult(self.gf)

    # -- naming (llama_context::graph_get_cb) ------------------------------------------------
    def cb(self, t: Tensor, name: str, il: int = -1) -> Tensor:
        t.name = f"{name}-{il}" if il >= 0 else name
        return t

    def add_input(self, inp: GraphInput) -> GraphInput:
        self.inputs.append(inp)
        return inp

    # -- inputs ------------------------------------------------------------------------------
    def build_inp_embd(self, tok_embd: Tensor) -> Tensor:
        inp = self.add_input(InputEmbd(self))
        cur = self.cb(ops.get_rows(tok_embd, inp.tokens), "inp_embd")
        if self.hp.f_embedding_scale:      # granite
            cur = self.cb(ops.scale(cur, self.hp.f_embedding_scale), "embd")
        return cur

    def build_inp_pos(self) -> Tensor:
        return self.add_input(InputPos(self)).pos

    def build_inp_out_ids(self) -> Tensor:
        return self.add_input(InputOutIds(self)).out_ids

    def build_attn_inp_kv(self) -> InputAttnKV:
        return self.add_input(InputAttnKV(self))

    def build_attn_inp_kv_iswa(self) -> InputAttnKV:
        """Like build_attn_inp_kv plus a sliding-window mask for the SWA layers (one cache holds
        every layer here; llama.cpp keeps a smaller ring cache for SWA layers, same values)."""
        return self.add_input(InputAttnKV(self, swa=True))

    # -- per-layer rope parameters (llama_model::get_rope_freq_base/scale) -------------------
    def rope_freq_base(self, il: int) -> float:
        return self.hp.rope_freq_base_swa if self.hp.is_swa(il) else self.freq_base

    def rope_freq_scale(self, il: int) -> float:
        return self.hp.rope_freq_scale_swa if self.hp.is_swa(il) else self.freq_scale

    # -- building blocks --------------------------------------------------------------------
    def build_lora_mm(self, w: Tensor, cur: Tensor) -> Tensor:
        t = ops.mul_mat(w, cur)
        if self.ubatch.independent_rows:
            t.params["independent_rows"] = True
        return t

    def build_lora_mm_id(self, w: Tensor, cur: Tensor, ids: Tensor) -> Tensor:
        t = ops.mul_mat_id(w, cur, ids)
        if self.ubatch.independent_rows:
            t.params["independent_rows"] = True
        return t

    def build_norm(self, cur: Tensor, w: Tensor | None, b: Tensor | None, type: str, il: int) -> Tensor:
        if type == LLM_NORM_RMS:
            cur = ops.rms_norm(cur, self.norm_rms_eps)
        elif type == LLM_NORM:
            cur = ops.norm(cur, self.norm_eps)
        else:
            raise GGraphError(f"build_norm: unknown norm type {type!r}")
        if w is not None:
            cur = self.cb(ops.mul(cur, w), "norm_w", il)
        if b is not None:
            cur = self.cb(ops.add(cur, b), "norm_b", il)
        return cur

    def build_qkv(self, layer, cur: Tensor, n_embd_head: int, n_head: int, n_head_kv: int, il: int,
                  reshape: bool = True):
        """Q, K, V projections: fused layer.wqkv (+ wqkv_b) split by views, or separate wq / wk / wv
        (+ biases); with reshape, [head_dim, n_heads, n_tokens] (the fused split is then a strided
        view, read in place), without it contiguous [n_heads * head_dim, n_tokens] (olmoe norms the
        whole projection before splitting heads)."""
        n_q, n_k, n_v = n_embd_head * n_head, n_embd_head * n_head_kv, n_embd_head * n_head_kv
        clamp = self.hp.f_clamp_kqv if reshape else 0.0
        if getattr(layer, "wqkv", None) is not None:
            qkv = self.cb(self.build_lora_mm(layer.wqkv, cur), "wqkv", il)
            if getattr(layer, "wqkv_b", None) is not None:
                qkv = self.cb(ops.add(qkv, layer.wqkv_b), "wqkv_b", il)
            if clamp > 0.0:
                qkv = self.cb(ops.clamp(qkv, -clamp, clamp), "wqkv_clamped", il)
            esz, nb1 = row_size(qkv.type, 1), qkv.nb[1]
            if reshape:
                out = [ops.view_3d(qkv, n_embd_head, nh, self.n_tokens, esz * n_embd_head, nb1, esz * off)
                       for nh, off in ((n_head, 0), (n_head_kv, n_q), (n_head_kv, n_q + n_k))]
            else:
                out = [ops.cont(ops.view_2d(qkv, n, self.n_tokens, nb1, esz * off))
                       for n, off in ((n_q, 0), (n_k, n_q), (n_v, n_q + n_k))]
        else:
            out = []
            for w_name, b_name, nh, label in (("wq", "bq", n_head, "Qcur"), ("wk", "bk", n_head_kv, "Kcur"),
                                              ("wv", "bv", n_head_kv, "Vcur")):
                t = self.build_lora_mm(getattr(layer, w_name), cur)
                if reshape:
                    self.cb(t, label, il)
                b = getattr(layer, b_name, None)
                if b is not None:
                    t = ops.add(t, b)
                    if reshape:
                        self.cb(t, label, il)
                if clamp > 0.0:
                    t = self.cb(ops.clamp(t, -clamp, clamp), f"{label}_clamped", il)
                out.append(ops.reshape_3d(t, n_embd_head, nh, self.n_tokens) if reshape else t)
        if reshape:
            for t, label in zip(out, ("Qcur", "Kcur", "Vcur")):
                self.cb(t, label, il)
        return tuple(out)

    def build_attn(self, inp: InputAttnKV, wo: Tensor | None, wo_b: Tensor | None, q_cur: Tensor,
                   k_cur: Tensor, v_cur: Tensor, kq_b: Tensor | None, kq_scale: float, il: int) -> Tensor:
        """Write K/V of this ubatch into the cache, attend over the first n_kv cells, project."""
        kv, hp, n_tokens, n_kv = self.kv, self.hp, self.n_tokens, self.n_kv
        # cache writes (set_rows into cells k_idxs / v_idxs), from views when the heads of a token are
        # adjacent (llama_kv_cache::cpy_k / cpy_v: a fused QKV's split is not contiguous per token)
        k_2d = ops.view_2d(k_cur, hp.n_embd_k_gqa, n_tokens, k_cur.nb[2], 0)
        if v_cur.nb[2] == row_size(v_cur.type, hp.n_embd_v_gqa):
            v_2d = ops.reshape_2d(v_cur, hp.n_embd_v_gqa, n_tokens)
        else:
            v_2d = ops.cont_2d(v_cur, hp.n_embd_v_gqa, n_tokens)
        # a sliding-window layer of an iswa cache writes and reads its own window-sized cache
        windowed = kv.windowed(hp, il)
        if windowed and not inp.windowed:
            raise GGraphError(f"layer {il}: a window-sized SWA cache needs the graph input of build_attn_inp_kv_iswa")
        size = kv.layer_size(hp, il)
        k_idxs, v_idxs = (inp.k_idxs_swa, inp.v_idxs_swa) if windowed else (inp.k_idxs, inp.v_idxs)
        k_w = ops.set_rows(kv.k[il], k_2d, k_idxs)
        v_w = ops.set_rows(ops.transpose(kv.v[il]), v_2d, v_idxs)
        # cache reads, as views over the written storage: per sequence slice, its stream's first n_kv
        # cells (one slice: the whole ubatch over stream 0)
        hk, hv = self.n_embd_head_k, self.n_embd_head_v
        esz_k, row_k = row_size(kv.k[il].type, 1), row_size(kv.k[il].type, hp.n_embd_k_gqa)
        esz_v, cells = row_size(kv.v[il].type, 1), size * kv.n_stream
        outs = []
        slices = inp.slices
        for r, (i0, i1) in enumerate(inp.runs):
            # a run of S streams with T tokens each is one 4-D attention (streams in dim 3, as llama.cpp
            # attends a ubatch over several KV streams); a sliding-window layer skips the leading
            # cells out of every token's window: whole blocks of 256 masked to -inf add exact zeros
            # in ggml's sums, so the result is the same bits
            sl, n_s = slices[i0], i1 - i0
            n_t = sl.t1 - sl.t0
            skip = sl.swa_skip if (hp.is_swa(il) and inp.masks_swa is not None and not windowed) else 0
            c0 = sl.stream * size + skip
            n_kv_l = sl.n_kv_swa if windowed else sl.n_kv - skip
            many = (n_s,) if n_s > 1 else ()
            k = ops.view(k_w, (hk, hp.n_head_kv, n_kv_l) + many, (esz_k * hk, row_k, row_k * size)[:2 + len(many)],
                         c0 * row_k)
            v = ops.view(v_w, (n_kv_l, hv, hp.n_head_kv) + many,
                         (esz_v * cells, esz_v * cells * hv, esz_v * size)[:2 + len(many)], c0 * esz_v)
            q = q_cur
            if n_s > 1 or (sl.t0, sl.t1) != (0, n_tokens):
                q = ops.view(q_cur, (q_cur.ne[0], q_cur.ne[1], n_t) + many,
                             (q_cur.nb[1], q_cur.nb[2], q_cur.nb[2] * n_t)[:2 + len(many)], sl.t0 * q_cur.nb[2])
            outs.append(self.build_attn_mha(q, k, v, kq_b, inp.get_kq_mask(hp, il, r), kq_scale, il))
        cur = outs[0]
        for part in outs[1:]:
            cur = ops.concat(cur, part, 1)
        self.cb(cur, "kqv_out", il)
        if wo is not None:
            cur = self.build_lora_mm(wo, cur)
        if wo_b is not None:
            cur = ops.add(cur, wo_b)
        return cur

    def build_attn_mha(self, q: Tensor, k: Tensor, v: Tensor, kq_b: Tensor | None, kq_mask: Tensor,
                       kq_scale: float, il: int) -> Tensor:
        """q [hd, n_head, n_tokens], k [hd, n_head_kv, n_kv], v [n_kv, hd_v, n_head_kv] (transposed);
        attention-logit softcap (gemma2) and kq_b added before the masked softmax (ALiBi in it)."""
        q = ops.permute(q, 0, 2, 1, 3)                    # [hd, n_tokens, n_head]
        k = ops.permute(k, 0, 2, 1, 3)                    # [hd, n_kv, n_head_kv]
        kq = self.cb(ops.mul_mat(k, q), "kq", il)         # [n_kv, n_tokens, n_head]
        n_tokens = q.ne[1]
        cap = self.hp.f_attn_logit_softcapping
        if cap:
            kq = self.cb(ops.scale(kq, 1.0 / cap), "kq_scaled_1", il)
            kq = self.cb(ops.tanh(kq), "kq_tanh", il)
            kq = self.cb(ops.scale(kq, cap), "kq_scaled_2", il)
        if kq_b is not None:
            kq = self.cb(ops.add(kq, kq_b), "kq_plus_kq_b", il)
        kq = self.cb(ops.soft_max_ext(kq, kq_mask, kq_scale, self.hp.f_max_alibi_bias), "kq_soft_max", il)
        kqv = self.cb(ops.mul_mat(v, kq), "kqv", il)      # [hd_v, n_tokens, n_head]
        cur = ops.permute(kqv, 0, 2, 1, 3)                # [hd_v, n_head, n_tokens, n_stream]
        return ops.cont_2d(cur, cur.ne[0] * self.n_head, n_tokens * q.ne[3])

    def build_ffn(self, cur: Tensor, up: Tensor | None, up_b: Tensor | None, gate: Tensor | None,
                  gate_b: Tensor | None, down: Tensor | None, down_b: Tensor | None, type_op: str,
                  type_gate: str, il: int) -> Tensor:
        """llama-graph.cpp build_ffn: up (+ bias); a gate read from the input (PAR: act(gate) * up,
        one fused op) or from up's output (SEQ: act(gate(up))); the activation; down (+ bias)."""
        tmp = self.cb(self.build_lora_mm(up, cur) if up is not None else cur, "ffn_up", il)
        if up_b is not None:
            tmp = self.cb(ops.add(tmp, up_b), "ffn_up_b", il)
        if gate is not None:
            cur = self.cb(self.build_lora_mm(gate, tmp if type_gate == LLM_FFN_SEQ else cur), "ffn_gate", il)
            if gate_b is not None:
                cur = self.cb(ops.add(cur, gate_b), "ffn_gate_b", il)
        else:
            cur = tmp
        if gate is not None and type_gate == LLM_FFN_PAR:
            fn, name = _glu("build_ffn", type_op)
            cur = self.cb(fn(cur, tmp), f"ffn_{name}", il)
        else:
            for fn, name in _activation("build_ffn", type_op):
                cur = self.cb(fn(cur), f"ffn_{name}", il)
        if down is not None:
            cur = self.build_lora_mm(down, cur)
        if down_b is not None:
            cur = self.cb(cur, "ffn_down", il)
            cur = ops.add(cur, down_b)
        return cur

    def build_moe_ffn(self, cur: Tensor, gate_inp: Tensor, up_exps: Tensor, gate_exps: Tensor | None,
                      down_exps: Tensor, n_expert: int, n_expert_used: int, type_op: str, norm_w: bool,
                      w_scale: float, gating_op: int, il: int) -> Tensor:
        """Mixture of experts (llama-graph.cpp build_moe_ffn): route each token to its n_expert_used
        best experts, run only those (mul_mat_id), weight and sum their outputs in slot order."""
        n_embd, n_tokens = cur.ne[0], cur.ne[1]
        logits = self.cb(self.build_lora_mm(gate_inp, cur), "ffn_moe_logits", il)     # [n_expert, n_tokens]
        if gating_op == LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX:
            probs = ops.soft_max_ext(logits, None, 1.0)
        elif gating_op == LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID:
            probs = ops.sigmoid(logits)
        else:
            raise GGraphError(f"build_moe_ffn: unsupported gating function {gating_op}")
        self.cb(probs, "ffn_moe_probs", il)
        selected = self.cb(ops.argsort_top_k(probs, n_expert_used), "ffn_moe_topk", il)   # [k, n_tokens]
        weights = ops.get_rows(ops.reshape_3d(probs, 1, n_expert, n_tokens), selected)    # [1, k, n_tokens]
        self.cb(weights, "ffn_moe_weights", il)
        if norm_w:
            w2 = ops.reshape_2d(weights, n_expert_used, n_tokens)
            s = self.cb(ops.sum_rows(w2), "ffn_moe_weights_sum", il)
            s = self.cb(ops.clamp(s, 6.103515625e-5, float("inf")), "ffn_moe_weights_sum_clamped", il)
            w2 = self.cb(ops.div(w2, s), "ffn_moe_weights_norm", il)
            weights = ops.reshape_3d(w2, 1, n_expert_used, n_tokens)
        if w_scale and w_scale != 1.0:
            weights = self.cb(ops.scale(weights, w_scale), "ffn_moe_weights_scaled", il)

        x = ops.reshape_3d(cur, n_embd, 1, n_tokens)
        mmid = self.build_lora_mm_id
        up = self.cb(mmid(up_exps, x, selected), "ffn_moe_up", il)               # [n_ff, k, n_tokens]
        if gate_exps is not None:
            gate = self.cb(mmid(gate_exps, x, selected), "ffn_moe_gate", il)
            fn, name = _glu("build_moe_ffn", type_op)
            act = self.cb(fn(gate, up), f"ffn_moe_{name}", il)
        else:
            act = up
            for fn, name in _activation("build_moe_ffn", type_op):
                act = self.cb(fn(act), f"ffn_moe_{name}", il)
        experts = self.cb(mmid(down_exps, act, selected), "ffn_moe_down", il)    # [n_embd, k, n_tokens]
        experts = self.cb(ops.mul(experts, weights), "ffn_moe_weighted", il)

        # slot i of every token, summed in slot order (best expert first), as llama.cpp's adds
        nb = experts.nb
        views = [ops.view(experts, (n_embd, n_tokens), (nb[2],), i * nb[1]) for i in range(n_expert_used)]
        moe_out = views[0]
        for v in views[1:]:
            moe_out = ops.add(moe_out, v)
        if n_expert_used == 1:
            moe_out = ops.cont(moe_out)
        return self.cb(moe_out, "ffn_moe_out", il)

    def default_kq_scale(self) -> float:
        if self.hp.f_attention_scale:
            return self.hp.f_attention_scale
        return 1.0 / math.sqrt(float(self.n_embd_head_k))
