"""Base class of an architecture file (llama.cpp's llama_model_<arch>).

A model file subclasses ModelBase and writes three methods, as in src/models/<arch>.cpp:
  load_arch_hparams(f)  - arch-specific hyperparameters (generic ones are already in self.hp)
  load_arch_tensors()   - the tensors it needs, by GGUF name, via self.create_tensor
  build_graph(g)        - the graph of one ubatch, with the helpers of ggraph.llm
Weight tensors are leaves of a long-lived `self.weights` graph (like ggml's model context); the
runtime binds them to the GGUF data by name.
"""
from __future__ import annotations

from types import SimpleNamespace

from .errors import GGraphError
from .gguf_file import GGUFFile
from .graph import Graph, Tensor
from .hparams import HParams, load_hparams


class ModelBase:
    arch: str = ""
    rope_type: int = 0

    def __init__(self, f: GGUFFile):
        self.file = f
        self.hp: HParams = load_hparams(f)
        self.hp.rope_type = self.rope_type
        self.weights = Graph()
        self._by_name: dict[str, Tensor] = {}
        self.layers = [SimpleNamespace() for _ in range(self.hp.n_layer)]
        self.load_arch_hparams(f)
        self.load_arch_tensors()

    # -- to override -----------------------------------------------------------------------
    def load_arch_hparams(self, f: GGUFFile) -> None:
        pass

    def load_arch_tensors(self) -> None:
        raise NotImplementedError

    def build_graph(self, g) -> None:
        raise NotImplementedError

    # -- tensor creation (llama_model_loader::create_tensor) ---------------------------------
    def create_tensor(self, name: str, ne: tuple, optional: bool = False) -> Tensor | None:
        """Declare a weight with its expected ne; checks the GGUF has it with that shape."""
        if name in self._by_name:          # duplicated use, e.g. tied output = token_embd
            return self._by_name[name]
        info = self.file.tensors.get(name)
        if info is None:
            if optional:
                return None
            raise GGraphError(f"{self.file.path}: missing tensor '{name}' needed by arch {self.arch}")
        want = tuple(int(x) for x in ne)
        have = info.ne + (1,) * (len(want) - len(info.ne))
        if have[: len(want)] != want or any(x != 1 for x in have[len(want):]):
            raise GGraphError(f"{self.file.path}: tensor '{name}' has shape {list(info.ne)}, "
                              f"expected {list(want)}")
        t = self.weights.weight(name, info.ggml_type, info.ne)
        self._by_name[name] = t
        return t

    def weight_tensors(self) -> list[Tensor]:
        return list(self._by_name.values())
