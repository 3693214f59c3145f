"""Llama.embed / Llama.create_embedding, as llama-cpp-python 0.3.x does them (llama_cpp/llama.py).

    llm = ggraph.Llama("smollm2", embedding=True, pooling_type=1)   # 1 = mean; -1 = the model's default
    v = llm.embed("Hello")                     # pooled: a list of n_embd floats; pooling none: one per token
    vs = llm.embed(["a", "b"], normalize=True) # euclidean, as llama-cpp-python's normalize_embedding
    r = llm.create_embedding(["a", "b"])       # {"object": "list", "data": [{"object": "embedding", ...}], ...}

Each text is tokenized with BOS and no special-token parsing (tokenize(text.encode())), truncated
to n_batch tokens when truncate=True; texts are grouped into batches of at most n_batch tokens and
256 sequences and each batch is decoded together (runtime/embeddings.py), so the values are
llama-cpp-python's bit for bit. One difference: with pooling none and several texts, llama-cpp-python
0.3.36 reads the rows of every text after the first at a wrong offset (`ptr[pos + j * n_embd]`
with pos counting tokens); ggraph returns each text's own token embeddings (llama_get_embeddings_ith's).
"""
from __future__ import annotations

import numpy as np

from ggraph.errors import GGraphError

from .. import embeddings as E


def _embedder(llm) -> E.Embedder:
    e = getattr(llm, "_embedder", None)
    if e is None:
        from ..context import Context
        ctx = llm.ctx if isinstance(llm.ctx, Context) else None   # a server slot's view: a context of its own
        e = E.Embedder(llm.model, ctx, n_ctx=llm.n_ctx(), n_batch=llm.n_batch,
                       n_ubatch=getattr(llm.ctx, "n_ubatch", llm.n_batch), n_threads=llm.n_threads,
                       pooling=llm._pooling_type)
        llm._embedder = e
    return e


def _inputs(llm, input) -> tuple[list[list[int]], bool]:
    """(token lists, single): a str, a list of str, or (ggraph) token-id lists."""
    if isinstance(input, str):
        items, single = [input], True
    elif isinstance(input, (list, tuple)) and input and all(isinstance(t, (int, np.integer)) for t in input):
        items, single = [list(input)], True
    elif isinstance(input, (list, tuple)):
        items, single = list(input), False
    else:
        raise GGraphError(f"embed: input must be a string or a list of strings, got {type(input).__name__}")
    out = []
    for i, x in enumerate(items):
        if isinstance(x, str):
            out.append(llm.tokenize(x.encode("utf-8")))
        elif isinstance(x, (list, tuple)):
            out.append(llm._check_ids(list(x), f"embed: input[{i}]"))
        else:
            raise GGraphError(f"embed: input[{i}] must be a string, got {type(x).__name__}")
    return out, single


def embed(llm, input, normalize: bool = False, truncate: bool = True, return_count: bool = False):
    if not llm._embedding:
        raise GGraphError("Llama model must be created with embedding=True to call this method")
    for name, v in (("normalize", normalize), ("truncate", truncate), ("return_count", return_count)):
        if not isinstance(v, (bool, np.bool_)):
            raise GGraphError(f"embed: {name} must be True or False, got {v!r}")
    if isinstance(input, (list, tuple)) and not input:
        return ([], 0) if return_count else []
    e = _embedder(llm)
    tokens, single = _inputs(llm, input)
    if truncate:
        tokens = [t[:llm.n_batch] for t in tokens]
    for i, t in enumerate(tokens):
        if not t:
            raise GGraphError(f"embed: input {i} has no tokens (and the model adds no BOS)")
        if len(t) > llm.n_batch:
            raise GGraphError(f"Requested tokens ({len(t)}) exceed batch size of {llm.n_batch}")
    llm.reset()                                # llama-cpp-python clears the KV cache for embeddings
    try:
        vecs = e.embed(tokens, n_seq_max=min(llm.n_batch, E.LLAMA_MAX_SEQ))
    finally:
        llm.reset()
    data = []
    for v in vecs:
        if v.ndim == 2:                        # pooling none: one embedding per token
            rows = [r.tolist() for r in v]
            data.append([E.normalize_like_llama_cpp_python(r) for r in rows] if normalize else rows)
        else:
            data.append(E.normalize_like_llama_cpp_python(v.tolist()) if normalize else v.tolist())
    out = data[0] if single else data
    total = sum(len(t) for t in tokens)
    return (out, total) if return_count else out


def create_embedding(llm, input, model: str | None = None) -> dict:
    if model is not None and not isinstance(model, str):
        raise GGraphError(f"model must be a string, got {model!r}")
    items = input if isinstance(input, list) and not (input and all(isinstance(t, (int, np.integer)) for t in input)) \
        else [input]
    embeds, total = embed(llm, items, return_count=True)
    return {"object": "list",
            "data": [{"object": "embedding", "embedding": emb, "index": i} for i, emb in enumerate(embeds)],
            "model": model if model is not None else llm.model_path,
            "usage": {"prompt_tokens": total, "total_tokens": total}}
