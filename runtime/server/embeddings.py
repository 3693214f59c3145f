"""POST /v1/embeddings (also /embeddings): llama-server's OpenAI embeddings endpoint on ggraph.

    {"input": "text" | ["a", "b"] | [ids] | [[ids], [ids]], "encoding_format": "float" | "base64",
     "embd_normalize": 2, "pooling": "mean" | "cls" | "last"}

As llama-server: each input is tokenized with BOS/EOS and special tokens parsed and embedded on its
own; the pooled vector is normalised with common_embd_normalize (embd_normalize, default 2:
euclidean); base64 is the float32 bytes. The pooling is the model's (GGUF <arch>.pooling_type);
a causal LM has none, which OpenAI's shape cannot carry (llama-server then refuses the request):
ggraph takes "pooling" in the request (llama.cpp's names, like its --pooling flag) instead.
The work runs as one step of the engine, between other requests' decodes, on an embedding context
of its own (n_ctx of a slot).
"""
from __future__ import annotations

import base64
import weakref

import numpy as np
from pydantic import Field

from ggraph.errors import GGraphError

from .errors import RequestError, from_engine
from .schemas import _Body

_EMBEDDERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # Model -> Embedder


class EmbeddingRequest(_Body):
    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    encoding_format: str | None = "float"
    embd_normalize: int | None = Field(2, ge=-1)
    pooling: str | None = None           # ggraph: llama.cpp's --pooling, per request
    user: str | None = None

    def check(self) -> None:
        if self.encoding_format not in (None, "float", "base64"):
            raise RequestError("The format to return the embeddings in. Can be either float or base64",
                               "encoding_format")
        if self.pooling not in (None, "none", "mean", "cls", "last"):
            raise RequestError(f"pooling must be one of mean, cls, last, got {self.pooling!r}", "pooling")
        if isinstance(self.input, list) and not self.input:
            raise RequestError('"input" must not be empty', "input")


def _embedder(llm):
    from ..embeddings import Embedder
    e = _EMBEDDERS.get(llm.model)
    if e is None:
        e = Embedder(llm.model, n_ctx=llm.n_ctx(), n_batch=llm.n_batch, n_ubatch=llm.n_batch,
                     n_threads=llm.n_threads)
        _EMBEDDERS[llm.model] = e
    return e


def openai_embeddings(req, model_name: str):
    """A task for a checked EmbeddingRequest: one step, one response."""
    from .. import embeddings as E
    fields = set(type(req).model_fields)

    def task(llm, slot_id):
        try:
            pooling = E.resolve_pooling(llm.model, req.pooling)
        except GGraphError as e:
            raise RequestError(str(e), "pooling") from None
        if pooling == E.NONE:
            raise RequestError("Pooling type 'none' is not OAI compatible. Please use a different pooling type "
                               "(ggraph: send \"pooling\": \"mean\", \"cls\" or \"last\")", "pooling")
        x = req.input
        items = [x] if isinstance(x, str) or (x and isinstance(x[0], int)) else list(x)
        inputs = []
        for i, it in enumerate(items):
            ids = llm.model.tokenize(it, add_special=True, parse_special=True) if isinstance(it, str) else list(it)
            if not ids:
                raise RequestError("Input content cannot be empty", "input")
            bad = [t for t in ids if not 0 <= t < llm.model.n_vocab]
            if bad:
                raise RequestError(f"input[{i}]: token id {bad[0]} is outside the vocabulary "
                                   f"(0..{llm.model.n_vocab - 1})", "input")
            inputs.append(ids)
        emb = _embedder(llm)
        for i, ids in enumerate(inputs):
            if len(ids) > emb.n_ctx:
                raise RequestError(f"input[{i}] has {len(ids)} tokens but a slot's context holds n_ctx={emb.n_ctx}",
                                   "input", code="context_length_exceeded")
        try:
            vecs = emb.embed(inputs, pooling=pooling, n_seq_max=1)     # each input alone, as llama-server
        except GGraphError as e:
            raise from_engine(e, fields, "input") from None
        b64 = req.encoding_format == "base64"
        norm = 2 if req.embd_normalize is None else req.embd_normalize
        data = []
        for i, v in enumerate(vecs):
            v = E.normalize(v, norm)
            if b64:
                data.append({"embedding": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii"),
                             "index": i, "object": "embedding", "encoding_format": "base64"})
            else:
                data.append({"embedding": v.tolist(), "index": i, "object": "embedding"})
        n = sum(len(t) for t in inputs)
        yield {"model": req.model or model_name, "object": "list",
               "usage": {"prompt_tokens": n, "total_tokens": n}, "data": data}
    return task


def decode_base64(s: str) -> np.ndarray:
    """The float32 vector of a base64 embedding."""
    return np.frombuffer(base64.b64decode(s), "<f4")
