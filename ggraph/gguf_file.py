"""GGUF access: memory-mapped metadata and tensor table (parsed by gguf_parse.py).

Shapes are ggml `ne` order (ne[0] fastest). A tensor's bytes are a zero-copy uint8 view of the
mmap, shaped [n_rows, row_bytes] where a row is ne[0] elements (a whole number of blocks).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from .errors import GGraphError
from .gguf_parse import parse

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
            meta, infos, self._buf = parse(self.path)
        except GGraphError as e:
            raise GGraphError(f"{self.path}: corrupt or truncated GGUF file ({e})") from None
        except (ValueError, struct.error, OverflowError, MemoryError) as e:
            raise GGraphError(f"{self.path}: corrupt or truncated GGUF file ({type(e).__name__}: {e})") from None
        self.metadata = meta
        self.tensors: dict[str, TensorInfo] = {}
        for name, type_id, ne, offset in infos:
            self.tensors[name] = self._tensor_info(name, type_id, ne, offset)
        self.arch = self.metadata.get("general.architecture")
        if not isinstance(self.arch, str):
            raise GGraphError(f"{self.path}: missing general.architecture")

    # -- metadata ---------------------------------------------------------------------------
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
    def _tensor_info(self, name: str, type_id: int, ne: tuple, offset: int) -> TensorInfo:
        try:
            gtype = GGMLQuantizationType(type_id)
        except ValueError:
            raise GGraphError(f"{self.path}: tensor {name} has unknown ggml type id {type_id}") from None
        block, type_size = GGML_QUANT_SIZES[gtype]
        if not ne or ne[0] % block:
            raise GGraphError(f"{self.path}: tensor {name} ne0={ne[0] if ne else None} is not a multiple of the "
                              f"{gtype.name} block size {block}")
        row_bytes = ne[0] // block * type_size
        n_rows = int(np.prod(ne[1:])) if len(ne) > 1 else 1
        end = offset + n_rows * row_bytes
        if end > len(self._buf):
            raise GGraphError(f"{self.path}: tensor {name} needs bytes up to {end} but the file has "
                              f"{len(self._buf)} (truncated file?)")
        data = self._buf[offset:end].reshape(n_rows, row_bytes)
        return TensorInfo(name, gtype, ne, data)

    def tensor(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise GGraphError(f"{self.path}: missing tensor {name}") from None

    @property
    def file_size(self) -> int:
        return os.path.getsize(self.path)
