"""ggraph: a Python mirror of llama.cpp.

Layers (arrows point down):  ggraph.runtime  ->  ggraph.models  ->  ggraph (builder)
  ggraph          GGUF access, graph data, ggml ops, llm helpers (build_norm, build_attn, ...)
  ggraph.models   one file per architecture
  ggraph.runtime  Numba kernels, executor, KV cache, context, sampling, tokenizer, CLI

    import ggraph
    model = ggraph.load("smollm2")             # or a path to a .gguf file
    ids = model.tokenize("The cat sat")
    ctx = model.new_context(n_ctx=2048, n_threads=2)
    logits = ctx.decode(ids, logits_all=True)
    llm = ggraph.Llama("smollm2")                 # llama-cpp-python's API (ggraph.runtime.api)
"""
from .errors import GGraphError

__version__ = "0.1.0"


def load(path_or_name):
    """Load a model for running (see ggraph.runtime.model.load)."""
    from .runtime.model import load as _load   # the builder layer does not import the runtime eagerly
    return _load(path_or_name)


def register_model(cls, replace: bool = False):
    """Add an architecture: cls subclasses ggraph.model_base.ModelBase and names its `arch`
    (see ggraph.models.register_model and docs/adding-a-model.md)."""
    from .models import register_model as _register
    return _register(cls, replace)


def __getattr__(name):
    # ggraph.Llama is the runtime's: imported on first use, so the builder layer stays runtime-free
    if name == "Llama":
        from .runtime.api import Llama
        return Llama
    raise AttributeError(f"module 'ggraph' has no attribute {name!r}")


__all__ = ["GGraphError", "Llama", "load", "register_model", "__version__"]
