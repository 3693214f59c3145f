"""Embeddings with llama.cpp's semantics: pooling (llm_graph_context::build_pooling), the default
pooling of a model (llama_context), normalisation (common_embd_normalize) and how several inputs
share a batch (llama-embedding, llama-cpp-python's Llama.embed).

    from ggraph.runtime import embeddings as E
    emb = E.Embedder(model, n_ctx=512, n_batch=512)       # pooling=None: the model's default
    out = emb.embed([ids_a, ids_b], E.MEAN)               # [n_embd] float32 per input
    out = emb.embed([ids_a], E.NONE)                      # [n_tokens, n_embd] per input
    v = E.normalize(out[0], 2)                            # --embd-normalize 2 (euclidean)

Token embeddings are the model's t_embd (result_norm) for every token: `ctx.decode(ids,
embeddings=True)` for one input. llama.cpp decodes the inputs of a batch together (one sequence
each, unified KV cache, cut into ubatches of n_ubatch) and pools each ubatch: MEAN is
ggml_mul_mat(cont(transpose(inp)), inp_mean) over all the ubatch's tokens with 1/n_s in the rows of
sequence s (so its float order depends on the whole ubatch: emulated with the same kernel choice,
tinyBLAS or ggml_vec_dot_f32); CLS takes each sequence's first token, LAST its last (ggml_get_rows:
exact copies). ggraph decodes a batch's inputs together the same way (Context.decode_embeddings_packed:
the same ubatches and cells, masks per input): a token's row depends on its place in the ubatch
(repacked weights: Q4_0, Q4_K, ...) and an input's attention on where its cells sit (softmax and
V sums run in blocks of 16 cells), so anything else would differ in the last bits.
"""
from __future__ import annotations

import math

import numpy as np

from ggraph.errors import GGraphError

# enum llama_pooling_type
UNSPECIFIED, NONE, MEAN, CLS, LAST, RANK = -1, 0, 1, 2, 3, 4
NAMES = {"none": NONE, "mean": MEAN, "cls": CLS, "last": LAST, "rank": RANK}
LLAMA_MAX_SEQ = 256          # llama_max_parallel_sequences()


def pooling_name(p: int) -> str:
    return next((k for k, v in NAMES.items() if v == p), str(p))


def model_pooling(model) -> int:
    """llama_context's default: the GGUF's `<arch>.pooling_type`, else NONE (causal LMs)."""
    v = model.file.get(f"{model.file.arch}.pooling_type")
    if v is None or int(v) == UNSPECIFIED:
        return NONE
    return int(v)


def resolve_pooling(model, pooling=None) -> int:
    """None / -1 / 'unspecified': the model's default; a name or llama_pooling_type value otherwise."""
    if pooling is None:
        pooling = UNSPECIFIED
    if isinstance(pooling, str):
        key = pooling.strip().lower()
        if key == "unspecified":
            pooling = UNSPECIFIED
        elif key not in NAMES:
            raise GGraphError(f"pooling must be one of none, mean, cls, last, got {pooling!r}")
        else:
            pooling = NAMES[key]
    if (not isinstance(pooling, (int, np.integer)) or isinstance(pooling, bool)
            or pooling not in (UNSPECIFIED, *NAMES.values())):
        raise GGraphError(f"pooling must be none, mean, cls, last or -1 (the model's default), got {pooling!r}")
    p = model_pooling(model) if pooling == UNSPECIFIED else int(pooling)
    if p == RANK:
        raise GGraphError("pooling 'rank' needs a reranker's classification head (cls / cls_out tensors): "
                          "not supported by ggraph")
    if p not in (NONE, MEAN, CLS, LAST):
        raise GGraphError(f"{model.path}: unknown pooling type {p}")
    if model.file.get(f"{model.file.arch}.attention.causal") is False:
        raise GGraphError(f"{model.path}: non-causal attention (an encoder) is not supported by ggraph")
    return p


# -- pooling (one llama.cpp ubatch holding several sequences) -------------------------------------
def pool(rows: list[np.ndarray], pooling: int) -> list[np.ndarray]:
    """The pooled embedding of each sequence of ONE ubatch; rows[s] = float32 [n_s, n_embd] token
    embeddings of sequence s (its tokens in this ubatch), packed in this order. NONE returns the rows."""
    if pooling == NONE:
        return [np.asarray(r, np.float32) for r in rows]
    if pooling in (CLS, LAST):
        return [np.array(r[0 if pooling == CLS else -1], np.float32) for r in rows]
    if pooling != MEAN:
        raise GGraphError(f"pooling type {pooling} is not supported")
    from .kernels.batched_matmul import bmm_f32
    inp = np.concatenate(rows, axis=0).astype(np.float32, copy=False)      # [n_tokens, n_embd]
    n_tokens, n_embd = inp.shape
    mean = np.zeros((len(rows), n_tokens), np.float32)                      # llm_graph_input_mean
    t = 0
    for s, r in enumerate(rows):
        mean[s, t:t + len(r)] = np.float32(1.0) / np.float32(len(r))
        t += len(r)
    src0 = np.ascontiguousarray(inp.T)[None]                                 # cont(transpose(inp))
    out = np.empty((1, len(rows), n_embd), np.float32)
    bmm_f32(src0, mean[None], out, f16=False, src1_contiguous=True)          # ggml_mul_mat(src0, mean)
    return [out[0, s].copy() for s in range(len(rows))]


def pool_batch(rows: list[np.ndarray], pooling: int, n_ubatch: int) -> list[np.ndarray]:
    """Pooled embeddings of the sequences of one batch, packed in order and cut into ubatches of
    n_ubatch tokens as llama.cpp's split_simple does, each ubatch pooled on its own (the float order
    of MEAN spans the whole ubatch). A sequence cut by a ubatch boundary is pooled over all its
    tokens (llama.cpp keeps only its last ubatch's part: ggraph does not copy that)."""
    if pooling == NONE:
        return pool(rows, NONE)
    out: list = [None] * len(rows)
    ends = np.cumsum([len(r) for r in rows])
    starts = ends - np.array([len(r) for r in rows])
    for u0 in range(0, int(ends[-1]), n_ubatch):
        u1 = u0 + n_ubatch
        inside = [i for i in range(len(rows)) if starts[i] < u1 and ends[i] > u0]
        segs = [rows[i][max(u0 - starts[i], 0):min(u1, ends[i]) - starts[i]] for i in inside]
        for i, v in zip(inside, pool(segs, pooling)):
            if starts[i] >= u0 and ends[i] <= u1:
                out[i] = v
    for i, v in enumerate(out):
        if v is None:                           # cut by a ubatch boundary
            out[i] = pool([rows[i]], pooling)[0]
    return out


def batches(lengths: list[int], n_batch: int, n_seq_max: int = LLAMA_MAX_SEQ) -> list[list[int]]:
    """Indices of the inputs decoded together (llama-embedding / Llama.embed: a new batch when the
    next input's tokens would pass n_batch or n_seq_max sequences are in)."""
    out, cur, t = [], [], 0
    for i, n in enumerate(lengths):
        if n > n_batch:
            raise GGraphError(f"input {i} has {n} tokens, more than the batch size {n_batch} "
                              "(raise n_batch / -b, or truncate)")
        if cur and (t + n > n_batch or len(cur) >= n_seq_max):
            out.append(cur)
            cur, t = [], 0
        cur.append(i)
        t += n
    if cur:
        out.append(cur)
    return out


class Embedder:
    """Embeddings of token lists on one model (what Llama.embed, `ggraph embed` and the server use).

    ctx: the context the inputs are decoded on (sequence 0, cleared before and after each batch; a
    new one if None). The inputs of one batch are decoded together (Context.decode_embeddings_packed),
    as llama.cpp does."""

    def __init__(self, model, ctx=None, n_ctx: int = 512, n_batch: int = 512, n_ubatch: int = 512,
                 n_threads: int | None = None, pooling=None):
        self.model = model
        self.pooling = resolve_pooling(model, pooling)
        self.ctx = ctx if ctx is not None else model.new_context(n_ctx=n_ctx, n_batch=n_batch,
                                                                 n_ubatch=min(n_ubatch, n_batch), n_threads=n_threads)
        self.n_ctx, self.n_batch, self.n_ubatch = self.ctx.n_ctx_seq, n_batch, self.ctx.n_ubatch
        self.n_threads = self.ctx.n_threads

    @property
    def n_embd(self) -> int:
        return self.model.hp.n_embd

    def token_embeddings(self, group: list) -> list:
        """t_embd rows of the inputs of ONE llama.cpp batch."""
        if len(group) > 1 and sum(len(x) for x in group) <= self.ctx.n_ctx_seq:
            return self.ctx.decode_embeddings_packed(group)
        out = []
        for ids in group:                       # alone, each from an empty sequence
            self.ctx.reset(0)
            try:
                out.append(self.ctx.decode(list(ids), embeddings=True))
            finally:
                self.ctx.reset(0)
        return out

    def embed(self, inputs: list, pooling=None, n_seq_max: int = LLAMA_MAX_SEQ) -> list:
        """Embeddings of token lists: [n_embd] float32 each when pooled, [n_tokens, n_embd] with
        pooling none; grouped into batches as llama.cpp does (n_seq_max=1: each input alone)."""
        p = self.pooling if pooling is None else resolve_pooling(self.model, pooling)
        for i, ids in enumerate(inputs):
            if len(ids) == 0:
                raise GGraphError(f"input {i} has no tokens")
            if len(ids) > self.n_ctx:
                raise GGraphError(f"input {i} has {len(ids)} tokens but the context holds n_ctx={self.n_ctx} "
                                  "(raise n_ctx / -c)")
        out: list = [None] * len(inputs)
        for group in batches([len(x) for x in inputs], self.n_batch, n_seq_max):
            rows = self.token_embeddings([inputs[i] for i in group])
            for i, v in zip(group, pool_batch(rows, p, self.n_ubatch)):
                out[i] = v
        return out


def embed_tokens(ctx, inputs: list, pooling, n_batch: int | None = None, n_seq_max: int = LLAMA_MAX_SEQ) -> list:
    """Embeddings of token lists on ctx (see Embedder.embed)."""
    e = Embedder(ctx.model, ctx, n_batch=n_batch or ctx.n_batch, n_ubatch=ctx.n_ubatch, pooling=pooling)
    return e.embed(inputs, n_seq_max=n_seq_max)


# -- normalisation ----------------------------------------------------------------------------------
def normalize(v: np.ndarray, embd_norm: int = 2) -> np.ndarray:
    """common_embd_normalize: -1 none, 0 max absolute (int16 range), 1 taxicab, 2 euclidean,
    > 2 p-norm; the sum in double, the factor rounded to float, float32 out. Rows of a 2-D array
    are normalised one by one."""
    if not isinstance(embd_norm, (int, np.integer)) or isinstance(embd_norm, bool) or embd_norm < -1:
        raise GGraphError(f"embd_normalize must be an integer >= -1, got {embd_norm!r}")
    v = np.asarray(v, np.float32)
    if v.ndim == 2:
        return np.stack([normalize(r, embd_norm) for r in v]) if len(v) else v.copy()
    if embd_norm == -1:
        s = 1.0
    elif embd_norm == 0:
        s = float(np.abs(v).max(initial=0.0)) / 32760.0
    elif embd_norm == 2:
        sq = (v * v).astype(np.float64)               # inp[i] * inp[i] in float, summed in double
        s = 0.0
        for x in sq.tolist():                          # in order, as the C loop
            s += x
        s = math.sqrt(s)
    else:
        s = 0.0
        p = float(embd_norm)
        for x in np.abs(v).astype(np.float64).tolist():
            s += math.pow(x, p)                        # std::pow(double, double), as glibc's
        s = math.pow(s, 1.0 / p)
    norm = np.float32(1.0 / s) if s > 0.0 else np.float32(0.0)
    return v * norm


def normalize_like_llama_cpp_python(e):
    """llama-cpp-python's internals.normalize_embedding: Python floats divided by numpy's norm."""
    norm = float(np.linalg.norm(e))
    if norm == 0.0:
        return list(e)
    return [x / norm for x in e]
