"""A lean GGUF (v2/v3) parser over a numpy memmap.

gguf.GGUFReader builds a numpy view for every element of every array field, which takes 3-14 s on
real vocabularies (262k tokens for Gemma-3); this reads the same layout in a fraction of a second.
Format constants (value types, ggml types, block sizes) still come from the gguf package.
"""
from __future__ import annotations

import struct

import numpy as np
from gguf import GGUFValueType

from .errors import GGraphError

_SCALARS = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i", GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}
_NP = {GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2",
       GGUFValueType.INT16: "<i2", GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
       GGUFValueType.FLOAT32: "<f4", GGUFValueType.BOOL: "?", GGUFValueType.UINT64: "<u8",
       GGUFValueType.INT64: "<i8", GGUFValueType.FLOAT64: "<f8"}
DEFAULT_ALIGNMENT = 32


class _Cursor:
    def __init__(self, buf: np.ndarray):
        self.buf = buf
        self.mv = memoryview(buf)
        self.pos = 0

    def need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise GGraphError(f"file ends inside the header (needs byte {self.pos + n}, has {len(self.buf)})")

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        self.need(size)
        v = struct.unpack_from(fmt, self.mv, self.pos)[0]
        self.pos += size
        return v

    def string(self) -> str:
        n = self.unpack("<Q")
        self.need(n)
        s = bytes(self.mv[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, vtype: int):
        vtype = GGUFValueType(vtype)
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            sub = GGUFValueType(self.unpack("<I"))
            count = self.unpack("<Q")
            if sub == GGUFValueType.STRING:
                return self._strings(count)
            if sub == GGUFValueType.ARRAY:
                return [self.value(GGUFValueType.ARRAY) for _ in range(count)]
            dt = np.dtype(_NP[sub])
            self.need(count * dt.itemsize)
            arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
            self.pos += count * dt.itemsize
            return arr.tolist()
        return self.unpack(_SCALARS[vtype])

    def _strings(self, count: int) -> list[str]:
        out = []
        mv, unpack = self.mv, struct.unpack_from
        pos, end = self.pos, len(self.buf)
        for _ in range(count):
            if pos + 8 > end:
                raise GGraphError("file ends inside a string array")
            n = unpack("<Q", mv, pos)[0]
            pos += 8
            if pos + n > end:
                raise GGraphError("file ends inside a string array")
            out.append(str(mv[pos:pos + n], "utf-8", "replace"))
            pos += n
        self.pos = pos
        return out


def parse(path: str):
    """Return (metadata dict, [(name, ggml type id, ne tuple, absolute data offset)], memmap)."""
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    c = _Cursor(buf)
    if c.unpack("<4s") != b"GGUF":
        raise GGraphError("not a GGUF file")
    version = c.unpack("<I")
    if version not in (2, 3):
        raise GGraphError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = c.unpack("<Q"), c.unpack("<Q")
    meta = {}
    for _ in range(n_kv):
        key = c.string()
        meta[key] = c.value(c.unpack("<I"))
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        n_dims = c.unpack("<I")
        if n_dims > 4:
            raise GGraphError(f"tensor {name} has {n_dims} dims")
        ne = tuple(c.unpack("<Q") for _ in range(n_dims))
        infos.append((name, c.unpack("<I"), ne, c.unpack("<Q")))
    align = int(meta.get("general.alignment", DEFAULT_ALIGNMENT))
    start = (c.pos + align - 1) // align * align
    return meta, [(n, t, ne, start + off) for n, t, ne, off in infos], buf
