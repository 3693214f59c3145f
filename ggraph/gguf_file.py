"""GGUF access: memory-mapped metadata and tensor table (built on gguf.GGUFReader).

Shapes are ggml `ne` order (ne[0] fastest). A tensor's bytes are a zero-copy uint8 view of the
mmap, shaped [n_rows, row_bytes] where a row is ne[0] elements (a whole number of blocks).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType

from .errors import GGraphError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_type: GGMLQuantizationType
    ne: tuple[int, ...]          # ggml order, ne[0] contiguous
    data: np.ndarray             # uint8 [n_rows, row_bytes], zero-copy view of the file

    @property
    def type_name(self) -> str:
        return self.ggml_type.name

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.ne))


class GGUFFile:
    """A GGUF file opened read-only with numpy memmap.

    >>> f = GGUFFile("model.gguf")
    >>> f.arch, f.get_arch("block_count"), f.tensors["token_embd.weight"].ne
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise GGraphError(f"model file not found: {self.path}")
        with open(self.path, "rb") as fh:
            magic = fh.read(4)
        if magic != GGUF_MAGIC:
            raise GGraphError(f"{self.path}: not a GGUF file (magic {magic!r}, expected b'GGUF')")
        try:
            self._reader = GGUFReader(self.path, "r")
        except GGraphError:
            raise
        except Exception as e:  # gguf raises ValueError/IndexError/struct errors on bad files
            raise GGraphError(f"{self.path}: corrupt or truncated GGUF file ({type(e).__name__}: {e})") from None
        self.metadata = {k: self._field_value(f) for k, f in self._reader.fields.items()
                         if not k.startswith("GGUF.")}
        self.tensors: dict[str, TensorInfo] = {}
        for t in self._reader.tensors:
            self.tensors[t.name] = self._tensor_info(t)
        self.arch = self.metadata.get("general.architecture")
        if not isinstance(self.arch, str):
            raise GGraphError(f"{self.path}: missing general.architecture")

    # -- metadata ---------------------------------------------------------------------------
    @staticmethod
    def _field_value(field):
        types = field.types
        if not types:
            return None
        if types[0] == GGUFValueType.ARRAY:
            sub = types[-1]
            if sub == GGUFValueType.STRING:
                return [bytes(field.parts[i]).decode("utf-8", errors="replace") for i in field.data]
            if len(field.data) == 0:
                return []
            return np.concatenate([field.parts[i] for i in field.data]).tolist()
        if types[0] == GGUFValueType.STRING:
            return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")
        v = field.parts[field.data[0]][0]
        if types[0] == GGUFValueType.BOOL:
            return bool(v)
        return v.item()

    def get(self, key: str, default=None):
        return self.metadata.get(key, default)

    def get_arch(self, key: str, default=None):
        """`{arch}.key`, e.g. get_arch("block_count") reads "llama.block_count"."""
        return self.metadata.get(f"{self.arch}.{key}", default)

    def require_arch(self, key: str):
        full = f"{self.arch}.{key}"
        if full not in self.metadata:
            raise GGraphError(f"{self.path}: missing hyperparameter {full}")
        return self.metadata[full]

    # -- tensors ----------------------------------------------------------------------------
    def _tensor_info(self, t) -> TensorInfo:
        try:
            gtype = GGMLQuantizationType(int(t.tensor_type))
        except ValueError:
            raise GGraphError(f"{self.path}: tensor {t.name} has unknown ggml type id {int(t.tensor_type)}") from None
        ne = tuple(int(x) for x in t.shape)
        block, type_size = GGML_QUANT_SIZES[gtype]
        if ne[0] % block:
            raise GGraphError(f"{self.path}: tensor {t.name} ne0={ne[0]} is not a multiple of the "
                              f"{gtype.name} block size {block}")
        row_bytes = ne[0] // block * type_size
        n_rows = int(np.prod(ne[1:])) if len(ne) > 1 else 1
        raw = np.asarray(t.data)
        if raw.nbytes != n_rows * row_bytes:
            raise GGraphError(f"{self.path}: tensor {t.name} holds {raw.nbytes} bytes, expected "
                              f"{n_rows * row_bytes} (truncated file?)")
        data = raw.reshape(-1).view(np.uint8).reshape(n_rows, row_bytes)
        return TensorInfo(t.name, gtype, ne, data)

    def tensor(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise GGraphError(f"{self.path}: missing tensor {name}") from None

    @property
    def file_size(self) -> int:
        return os.path.getsize(self.path)
