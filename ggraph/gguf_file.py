"""GGUF access: memory-mapped metadata and tensor table (parsed and validated by gguf_parse.py).

Shapes are ggml `ne` order (ne[0] fastest). A tensor's bytes are a zero-copy uint8 view of the
mmap, shaped [n_rows, row_bytes] where a row is ne[0] elements (a whole number of blocks).

Every key read goes through a check (ggraph/gguf_keys.py): the GGUF value type llama.cpp's loader
demands and a sensible range, with the key named in the error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType

from . import gguf_keys
from .errors import GGraphError
from .gguf_keys import KeySpec
from .gguf_parse import parse

GGUF_MAGIC = b"GGUF"
_MISSING = object()


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
        n = 1
        for x in self.ne:
            n *= int(x)
        return n


class GGUFFile:
    """A GGUF file opened read-only with numpy memmap, validated as llama.cpp's gguf.cpp does.

    >>> f = GGUFFile("model.gguf")
    >>> f.arch, f.get_arch("block_count"), f.tensors["token_embd.weight"].ne
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise GGraphError(f"{self.path} is a directory, not a GGUF file")
        if not os.path.isfile(self.path):
            raise GGraphError(f"model file not found: {self.path}")
        try:
            with open(self.path, "rb") as fh:
                magic = fh.read(4)
        except OSError as e:
            raise GGraphError(f"{self.path}: cannot read the file ({e.strerror or e})") from None
        if magic != GGUF_MAGIC:
            raise GGraphError(f"{self.path}: not a GGUF file (magic {magic!r}, expected b'GGUF')")
        try:
            c = parse(self.path)
        except GGraphError as e:
            raise GGraphError(f"{self.path}: invalid GGUF file: {e}") from None
        except (OSError, ValueError, OverflowError, MemoryError) as e:
            raise GGraphError(f"{self.path}: cannot read the GGUF file ({type(e).__name__}: {e})") from None
        self._buf = c.buf
        self.version = c.version
        self.alignment = c.alignment
        self.data_offset = c.data_offset
        self.metadata = c.metadata
        self.value_types = c.types
        self.arch = self.metadata.get("general.architecture")
        if "general.architecture" not in self.metadata:
            raise GGraphError(f"{self.path}: missing general.architecture")
        if isinstance(self.arch, str) and not self.arch.isprintable():
            raise GGraphError(f"{self.path}: general.architecture {self.arch!r:.80} is not an architecture name")
        self._checked: dict = {}
        for key in self.metadata:           # every known key present: its type and range, up front
            spec = gguf_keys.spec_for(key, self.arch if isinstance(self.arch, str) else None)
            if spec is not None:
                self._value(key, spec)
        self.tensors: dict[str, TensorInfo] = {}
        for t in c.tensors:
            data = self._buf[t.offset:t.offset + t.nbytes].reshape(t.n_rows, t.row_bytes)
            self.tensors[t.name] = TensorInfo(t.name, t.ggml_type, t.ne, data)

    # -- metadata ---------------------------------------------------------------------------
    def value_type(self, key: str):
        """(GGUF value type, array element type or None) of a key, or None if absent."""
        return self.value_types.get(key)

    def _value(self, key: str, spec: KeySpec | None):
        if spec is None:
            return self.metadata[key]
        n_layer = None
        if spec.kind in ("u32s", "pattern"):
            bc = f"{self.arch}.block_count"
            n_layer = self._value(bc, gguf_keys.spec_for(bc, self.arch)) if bc in self.metadata else None
        cache_key = (key, spec)
        if cache_key not in self._checked:
            try:
                self._checked[cache_key] = gguf_keys.check_value(key, self.metadata[key], self.value_types[key],
                                                                 spec, n_layer)
            except GGraphError as e:
                raise GGraphError(f"{self.path}: {e}") from None
        return self._checked[cache_key]

    def get(self, key: str, default=None):
        """A metadata value, checked against its spec (gguf_keys) or the kind of `default`."""
        if key not in self.metadata:
            return default
        spec = gguf_keys.spec_for(key, self.arch) or gguf_keys.spec_from_default(default)
        return self._value(key, spec)

    def get_arch(self, key: str, default=None):
        """`{arch}.key`, e.g. get_arch("block_count") reads "llama.block_count"."""
        return self.get(f"{self.arch}.{key}", default)

    def require_arch(self, key: str):
        full = f"{self.arch}.{key}"
        if full not in self.metadata:
            raise GGraphError(f"{self.path}: missing hyperparameter {full}")
        return self._value(full, gguf_keys.spec_for(full, self.arch))

    # typed variants: `kind` as in gguf_keys.KeySpec, `check` a range check (gguf_keys.finite_pos, ...)
    def get_typed(self, key: str, kind: str, default=_MISSING, check=None, arch: bool = True):
        """Read a key with an explicit kind and range check; `arch` prefixes the architecture.
        Without a default the key is required."""
        full = f"{self.arch}.{key}" if arch else key
        if full not in self.metadata:
            if default is _MISSING:
                raise GGraphError(f"{self.path}: missing hyperparameter {full}")
            return default
        return self._value(full, KeySpec(kind, check))

    def get_u32(self, key: str, default=_MISSING, check=None, arch: bool = True) -> int:
        return self.get_typed(key, "u32", default, check, arch)

    def get_f32(self, key: str, default=_MISSING, check=gguf_keys.finite, arch: bool = True) -> float:
        return self.get_typed(key, "f32", default, check, arch)

    def get_bool(self, key: str, default=_MISSING, arch: bool = True) -> bool:
        return self.get_typed(key, "bool", default, None, arch)

    def get_str(self, key: str, default=_MISSING, arch: bool = True) -> str:
        return self.get_typed(key, "str", default, None, arch)

    # -- tensors ----------------------------------------------------------------------------
    def tensor(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise GGraphError(f"{self.path}: missing tensor {name}") from None

    @property
    def file_size(self) -> int:
        return os.path.getsize(self.path)
