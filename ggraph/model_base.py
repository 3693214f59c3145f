"""Base class of an architecture file (llama.cpp's llama_model_<arch>).

A model file subclasses ModelBase and writes three methods, as in src/models/<arch>.cpp:
  load_arch_hparams(f)  - arch-specific hyperparameters (generic ones are already in self.hp)
  load_arch_tensors()   - the tensors it needs, by GGUF name, via self.create_tensor
  build_graph(g)        - the graph of one ubatch, with the helpers of ggraph.llm
Weight tensors are leaves of a long-lived `self.weights` graph (like ggml's model context); the
runtime binds them to the GGUF data by name.
"""
from __future__ import annotations

import re
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
        check_layer_tensors(f, self.hp.n_layer)      # before anything is sized by n_layer
        self.layers = [SimpleNamespace() for _ in range(self.hp.n_layer)]
        self.load_arch_hparams(f)
        self.load_arch_tensors()
        self.check_all_tensors_used()

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

    def check_all_tensors_used(self) -> None:
        """llama_model_loader::done_getting_tensors: a tensor the architecture does not use means the
        file is not what its metadata says (a renamed or extra tensor); llama.cpp refuses it with
        "wrong number of tensors"."""
        unused = [name for name in self.file.tensors if name not in self._by_name]
        if unused:
            more = f" and {len(unused) - 1} more" if len(unused) > 1 else ""
            raise GGraphError(f"{self.file.path}: tensor '{unused[0]}'{more} not used by arch {self.arch} "
                              f"(wrong number of tensors: the file has {len(self.file.tensors)}, the model "
                              f"uses {len(self._by_name)})")


_BLK = re.compile(r"blk\.(\d+)\.")


def check_layer_tensors(f: GGUFFile, n_layer: int) -> None:
    """blk.N tensors must exist for every layer N < n_layer and for no other N (block_count minus
    nextn_predict_layers), checked before a list of n_layer layers is built."""
    layers = set()
    for name in f.tensors:
        m = _BLK.match(name)
        if m:
            layers.add(int(m.group(1)))
    if not layers:
        raise GGraphError(f"{f.path}: no blk.N.* layer tensors (block_count says {n_layer} layers)")
    bad = [n for n in layers if n >= n_layer]
    if bad:
        raise GGraphError(f"{f.path}: tensors of layer {min(bad)} (blk.{min(bad)}.*) but {f.arch}.block_count "
                          f"gives {n_layer} layers")
    if len(layers) != n_layer:
        missing = min(set(range(n_layer)) - layers)
        raise GGraphError(f"{f.path}: {f.arch}.block_count gives {n_layer} layers but the file has no tensors "
                          f"for layer {missing} (blk.{missing}.*)")
