"""Model: a GGUF file loaded for running (weights bound, vocabulary ready)."""
from __future__ import annotations

import os

from ggraph.errors import GGraphError
from ggraph.gguf_file import GGUFFile
from ggraph.models import model_class

from .weights import prepare_weights


class Model:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.file = GGUFFile(self.path)
        self.arch_model = model_class(self.file.arch)(self.file)
        self.hp = self.arch_model.hp
        self._vocab = None
        try:
            _ = self.vocab              # the vocabulary is checked at load time, as llama.cpp's loader does
        except GGraphError as e:
            raise GGraphError(str(e) if str(e).startswith(self.path) else f"{self.path}: {e}") from None
        self.weights = prepare_weights(self.arch_model)

    # -- vocabulary -------------------------------------------------------------------------
    @property
    def vocab(self):
        if self._vocab is None:
            from .text import Vocab
            self._vocab = Vocab.from_gguf(self.file)
        return self._vocab

    @property
    def n_vocab(self) -> int:
        return self.hp.n_vocab

    def tokenize(self, text: str | bytes, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """llama_tokenize. `text` is a str or raw bytes (bytes that are not valid UTF-8 are read as
        llama.cpp reads them: see runtime/text/vocab.py)."""
        return self.vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, ids, remove_special: bool = False, unparse_special: bool = False,
                   as_bytes: bool = False) -> str | bytes:
        """llama_detokenize: a str (invalid UTF-8 replaced by U+FFFD), or the raw bytes with as_bytes=True."""
        if as_bytes:
            return self.vocab.detokenize_bytes(ids, remove_special=remove_special, unparse_special=unparse_special)
        return self.vocab.detokenize(ids, remove_special=remove_special, unparse_special=unparse_special)

    def detokenize_bytes(self, ids, remove_special: bool = False, unparse_special: bool = False) -> bytes:
        return self.vocab.detokenize_bytes(ids, remove_special=remove_special, unparse_special=unparse_special)

    def token_to_piece(self, tok: int, special: bool = False) -> bytes:
        return self.vocab.token_to_piece(tok, special=special)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Render `tokenizer.chat_template` from the GGUF with jinja2 (llama.cpp's --jinja path)."""
        from .text.chat_template import chat_template_for
        return chat_template_for(self).render(messages, add_generation_prompt=add_generation_prompt)

    # -- contexts -----------------------------------------------------------------------------
    def new_context(self, n_ctx: int = 4096, n_batch: int = 2048, n_ubatch: int = 512, n_threads: int | None = None,
                    n_seq_max: int = 1, swa_full: bool = True):
        """A context (llama_context) with llama.cpp's defaults: -c 4096, -b 2048, -ub 512; n_seq_max
        sequences share it, n_ctx / n_seq_max cells each (decode(..., seq_id=), decode_batch).
        swa_full=False gives sliding-window layers a window-sized cache (llama-cli's default; True is
        llama_context_default_params', which llama-cpp-python keeps)."""
        from .context import Context
        return Context(self, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch, n_threads=n_threads,
                       n_seq_max=n_seq_max, swa_full=swa_full)

    def info(self) -> dict:
        hp = self.hp
        types: dict[str, int] = {}
        for t in self.file.tensors.values():
            types[t.type_name] = types.get(t.type_name, 0) + 1
        return {
            "path": self.path, "architecture": self.file.arch, "name": self.file.get("general.name"),
            "n_vocab": hp.n_vocab, "n_ctx_train": hp.n_ctx_train, "n_embd": hp.n_embd, "n_layer": hp.n_layer,
            "n_head": hp.n_head, "n_head_kv": hp.n_head_kv, "n_ff": hp.n_ff, "n_rot": hp.n_rot,
            "rope_freq_base": hp.rope_freq_base, "n_expert": hp.n_expert, "n_expert_used": hp.n_expert_used,
            "n_params": sum(t.n_elements for t in self.file.tensors.values()),
            "tensor_types": types, "file_size": self.file.file_size,
        }


def load(path_or_name: str | os.PathLike) -> Model:
    """Load a GGUF file, or a default model by name ('smollm2', 'gemma3'), pulling it if needed."""
    p = os.fspath(path_or_name)
    if not os.path.exists(p):
        from .apps.pull import KNOWN_MODELS, pull
        if p in KNOWN_MODELS:
            p = pull(p)
        elif not p.endswith(".gguf") and os.sep not in p:
            raise GGraphError(f"unknown model '{p}': give a .gguf path or one of {', '.join(KNOWN_MODELS)}")
    return Model(p)
