"""A lean, validating GGUF (v2/v3) parser over a numpy memmap.

gguf.GGUFReader builds a numpy view for every element of every array field, which takes 3-14 s on
real vocabularies (262k tokens for Gemma-3); this reads the same layout in a fraction of a second.
Format constants (value types, ggml types, block sizes) still come from the gguf package.

It refuses what llama.cpp's ggml/src/gguf.cpp (gguf_init_from_reader) and llama-model-loader.cpp
refuse, before anything is allocated from a header value, and a little more:
  - magic `GGUF`; version 2 or 3 (1 is no longer supported, 0 and byte-swapped versions are bad);
  - tensor and key counts that fit in the file (each entry needs at least a few bytes);
  - keys: not empty, no duplicates, a known value type; strings and arrays no longer than the rest
    of the file (and at most 2**30 bytes / elements, GGUF_MAX_STRING_LENGTH / _ARRAY_ELEMENTS);
    arrays of arrays are refused, as llama.cpp does (so nesting depth is bounded by construction);
  - general.alignment a u32 power of two, and the tensor data section 32-byte aligned (llama.cpp's
    mmap loader asserts TENSOR_ALIGNMENT on the buffer it makes from the file);
  - tensors: names shorter than GGML_MAX_NAME (64) bytes and unique; at most 4 dims, each >= 0, the
    element count representable; a ggml type id llama.cpp and gguf-py both know, with ne0 a whole
    number of blocks; each offset exactly the previous tensor's padded end (gguf.cpp: aligned, in
    order, no overlap and no gap); each tensor's bytes (row size x rows) inside the file;
  - more than llama.cpp: no more than one alignment's worth of bytes after the last tensor (a tensor
    whose type was changed to a smaller one leaves the file longer than its table says).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from .errors import GGraphError

_SCALARS = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i", GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<b",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}
_NP = {GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2",
       GGUFValueType.INT16: "<i2", GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
       GGUFValueType.FLOAT32: "<f4", GGUFValueType.BOOL: "<i1", GGUFValueType.UINT64: "<u8",
       GGUFValueType.INT64: "<i8", GGUFValueType.FLOAT64: "<f8"}
# gguf_type_name() in gguf.cpp
TYPE_NAMES = {GGUFValueType.UINT8: "u8", GGUFValueType.INT8: "i8", GGUFValueType.UINT16: "u16",
              GGUFValueType.INT16: "i16", GGUFValueType.UINT32: "u32", GGUFValueType.INT32: "i32",
              GGUFValueType.FLOAT32: "f32", GGUFValueType.BOOL: "bool", GGUFValueType.STRING: "str",
              GGUFValueType.ARRAY: "arr", GGUFValueType.UINT64: "u64", GGUFValueType.INT64: "i64",
              GGUFValueType.FLOAT64: "f64"}
_VTYPES = {int(t): t for t in GGUFValueType}
_GTYPES = {int(t): t for t in GGMLQuantizationType if t in GGML_QUANT_SIZES}

DEFAULT_ALIGNMENT = 32
GGUF_MAX_STRING_LENGTH = 1 << 30
GGUF_MAX_ARRAY_ELEMENTS = 1 << 30
GGML_MAX_NAME = 64
GGML_MAX_DIMS = 4
TENSOR_ALIGNMENT = 32                # ggml-backend: the CPU buffer made from the mmap must be 32-byte aligned
INT64_MAX = (1 << 63) - 1
_MIN_KV_BYTES = 8 + 1 + 4 + 1        # key length, >= 1 key byte, value type, >= 1 value byte
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8    # name length, n_dims, type, offset


def type_name(vtype: int, sub: int | None = None) -> str:
    """llama.cpp's name of a value type: u32, f32, str, arr[str], ..."""
    name = TYPE_NAMES.get(vtype, f"type {vtype}")
    return f"{name}[{TYPE_NAMES.get(sub, sub)}]" if vtype == GGUFValueType.ARRAY and sub is not None else name


@dataclass
class TensorEntry:
    name: str
    ggml_type: GGMLQuantizationType
    ne: tuple[int, ...]          # as stored (n_dims entries), ggml order
    offset: int                  # absolute file offset of the data
    nbytes: int
    row_bytes: int
    n_rows: int


@dataclass
class GGUFContents:
    version: int
    metadata: dict
    types: dict                  # key -> (value type, array element type or None)
    tensors: list = field(default_factory=list)
    alignment: int = DEFAULT_ALIGNMENT
    data_offset: int = 0
    buf: np.ndarray | None = None


class _Cursor:
    def __init__(self, buf: np.ndarray):
        self.buf = buf
        self.mv = memoryview(buf)
        self.pos = 0
        self.end = len(buf)

    def remaining(self) -> int:
        return self.end - self.pos

    def need(self, n: int, what: str) -> None:
        if n > self.end - self.pos:
            raise GGraphError(f"file ends inside {what} (needs {n} bytes at offset {self.pos}, the file has "
                              f"{self.end}: truncated file?)")

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        self.need(size, what)
        v = struct.unpack_from(fmt, self.mv, self.pos)[0]
        self.pos += size
        return v

    def raw_string(self, what: str) -> bytes:
        n = self.unpack("<Q", what)
        if n > GGUF_MAX_STRING_LENGTH:
            raise GGraphError(f"{what}: string length {n} exceeds the maximum {GGUF_MAX_STRING_LENGTH}")
        self.need(n, what)
        s = bytes(self.mv[self.pos:self.pos + n])
        self.pos += n
        return s

    def string(self, what: str) -> str:
        return self.raw_string(what).decode("utf-8", errors="replace")

    def value(self, vtype: GGUFValueType, what: str):
        if vtype == GGUFValueType.STRING:
            return self.string(what)
        return self.unpack(_SCALARS[vtype], what) if vtype != GGUFValueType.BOOL else \
            self.unpack("<b", what) != 0

    def array(self, sub: GGUFValueType, count: int, what: str):
        if count > GGUF_MAX_ARRAY_ELEMENTS:
            raise GGraphError(f"{what}: array of {count} elements exceeds the maximum {GGUF_MAX_ARRAY_ELEMENTS}")
        if sub == GGUFValueType.STRING:
            if count * 8 > self.remaining():
                raise GGraphError(f"{what}: {count} strings cannot fit in the {self.remaining()} bytes left "
                                  f"in the file (truncated file?)")
            return self._strings(count, what)
        dt = np.dtype(_NP[sub])
        self.need(count * dt.itemsize, what)
        arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
        self.pos += count * dt.itemsize
        if sub == GGUFValueType.BOOL:
            return (arr != 0).tolist()
        return arr.tolist()

    def _strings(self, count: int, what: str) -> list[str]:
        out = []
        mv, unpack = self.mv, struct.unpack_from
        pos, end = self.pos, self.end
        for i in range(count):
            if pos + 8 > end:
                raise GGraphError(f"file ends inside {what}, element {i} (truncated file?)")
            n = unpack("<Q", mv, pos)[0]
            pos += 8
            if n > end - pos:
                raise GGraphError(f"{what}, element {i}: string length {n} exceeds the {end - pos} bytes left "
                                  f"in the file (truncated file?)")
            out.append(str(mv[pos:pos + n], "utf-8", "replace"))
            pos += n
        self.pos = pos
        return out


def show(s: str, n: int = 80) -> str:
    """A key or tensor name as it goes into a message: short and printable."""
    if s.isprintable() and len(s) <= n:
        return s
    r = repr(s)[1:-1]
    return r if len(r) <= n else r[:n - 3] + "..."


def _pad(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def parse_buffer(buf: np.ndarray) -> GGUFContents:
    """Parse and validate a GGUF held in a uint8 array (a memmap of the file)."""
    c = _Cursor(buf)
    magic = c.unpack("<4s", "the magic")
    if magic != b"GGUF":
        raise GGraphError(f"not a GGUF file (magic {magic!r}, expected b'GGUF')")
    version = c.unpack("<I", "the header")
    if version == 0 or (version & 0xFFFF) == 0:
        raise GGraphError(f"bad GGUF version {version} (a byte-swapped file from a big-endian host?)")
    if version == 1:
        raise GGraphError("GGUF version 1 is no longer supported (llama.cpp refuses it too): re-convert the model")
    if version not in (2, 3):
        raise GGraphError(f"unsupported GGUF version {version} (this reads versions 2 and 3)")
    n_tensors = c.unpack("<q", "the header")
    n_kv = c.unpack("<q", "the header")
    if n_tensors < 0 or n_tensors * _MIN_TENSOR_BYTES > c.remaining():
        raise GGraphError(f"the header says {n_tensors} tensors, which cannot fit in a file of {c.end} bytes")
    if n_kv < 0 or n_kv * _MIN_KV_BYTES > c.remaining():
        raise GGraphError(f"the header says {n_kv} key-value pairs, which cannot fit in a file of {c.end} bytes")

    meta: dict = {}
    types: dict = {}
    seen_raw: set = set()
    for i in range(n_kv):
        raw = c.raw_string(f"key {i}")
        key = raw.decode("utf-8", errors="replace")
        if not raw:
            raise GGraphError(f"key {i} is empty")
        if raw in seen_raw or key in meta:
            raise GGraphError(f"duplicate key '{show(key)}' (key {i})")
        seen_raw.add(raw)
        what = f"the value of key '{show(key)}'"
        t = c.unpack("<i", what)
        vtype = _VTYPES.get(t)
        if vtype is None:
            raise GGraphError(f"key '{show(key)}' has invalid GGUF value type {t}")
        sub = None
        if vtype == GGUFValueType.ARRAY:
            st = c.unpack("<i", what)
            sub = _VTYPES.get(st)
            if sub is None:
                raise GGraphError(f"key '{show(key)}' is an array of invalid GGUF value type {st}")
            if sub == GGUFValueType.ARRAY:
                raise GGraphError(f"key '{show(key)}' is an array of arrays, which GGUF readers do not accept "
                                  f"(llama.cpp refuses it too)")
            count = c.unpack("<Q", what)
            meta[key] = c.array(sub, count, what)
        else:
            meta[key] = c.value(vtype, what)
        types[key] = (vtype, sub)

    align = DEFAULT_ALIGNMENT
    if "general.alignment" in meta:
        if types["general.alignment"][0] != GGUFValueType.UINT32:
            raise GGraphError(f"key 'general.alignment' must be of type u32 but is "
                              f"{type_name(*types['general.alignment'])}")
        align = meta["general.alignment"]
        if align == 0 or align & (align - 1):
            raise GGraphError(f"general.alignment = {align} is not a power of 2")

    entries = []
    seen_names: set = set()
    for i in range(n_tensors):
        raw = c.raw_string(f"the name of tensor {i}")
        if len(raw) >= GGML_MAX_NAME:
            raise GGraphError(f"tensor {i} has a name of {len(raw)} bytes (the limit is {GGML_MAX_NAME - 1})")
        name = raw.decode("utf-8", errors="replace")
        if raw in seen_names:
            raise GGraphError(f"duplicate tensor name '{show(name)}' (tensor {i})")
        seen_names.add(raw)
        what = f"the info of tensor '{show(name)}'"
        n_dims = c.unpack("<I", what)
        if n_dims > GGML_MAX_DIMS:
            raise GGraphError(f"tensor '{show(name)}' has {n_dims} dimensions (at most {GGML_MAX_DIMS})")
        ne = tuple(c.unpack("<q", what) for _ in range(n_dims))
        for j, n in enumerate(ne):
            if n < 0:
                raise GGraphError(f"tensor '{show(name)}' dimension {j} has a negative size {n}")
        n_el = 1
        for n in ne:
            n_el *= n
        if n_el > INT64_MAX:
            raise GGraphError(f"tensor '{show(name)}' shape {list(ne)} has more than 2**63 elements")
        type_id = c.unpack("<i", what)
        gtype = _GTYPES.get(type_id)
        if gtype is None:
            raise GGraphError(f"tensor '{show(name)}' has invalid ggml type {type_id}")
        block, type_size = GGML_QUANT_SIZES[gtype]
        ne0 = ne[0] if ne else 1
        if ne0 % block:
            raise GGraphError(f"tensor '{show(name)}' of type {gtype.name} has {ne0} elements per row, not a multiple "
                              f"of the block size {block}")
        row_bytes = ne0 // block * type_size
        n_rows = n_el // ne0 if ne0 else 0
        if not ne0:
            n_rows = 1
            for n in ne[1:]:
                n_rows *= n
        offset = c.unpack("<Q", what)
        entries.append(TensorEntry(name, gtype, ne, offset, row_bytes * n_rows, row_bytes, n_rows))

    data_offset = c.pos
    if n_tensors > 0:
        data_offset = _pad(c.pos, align)
        if data_offset > c.end:
            raise GGraphError(f"file ends before its tensor data section (offset {data_offset}, the file has "
                              f"{c.end} bytes: truncated file?)")
        if data_offset % TENSOR_ALIGNMENT:
            raise GGraphError(f"the tensor data starts at offset {data_offset}, not a multiple of {TENSOR_ALIGNMENT} "
                              f"(general.alignment = {align}): llama.cpp's mmap loader aborts on such files "
                              f"(buffer pointer must be aligned)")
    expected = 0
    for t in entries:
        if t.offset != expected:
            raise GGraphError(f"tensor '{show(t.name)}' has data offset {t.offset}, expected {expected} (tensor data "
                              f"must follow the table in order, each aligned to {align} bytes, without overlap)")
        start = data_offset + t.offset
        if start + t.nbytes > c.end:
            raise GGraphError(f"tensor '{show(t.name)}' data (bytes {start}..{start + t.nbytes}) is not within the file "
                              f"of {c.end} bytes (truncated file?)")
        t.offset = start
        expected += _pad(t.nbytes, align)
    data_end = data_offset + expected
    if c.end > max(data_end, _pad(data_offset, align)):
        raise GGraphError(f"{c.end - data_end} bytes after the end of the tensor data at offset {data_end} "
                          f"(a tensor table that does not describe the file)")
    return GGUFContents(version, meta, types, entries, align, data_offset, buf)


def parse(path: str) -> GGUFContents:
    """Open `path` as a memmap and parse it (see parse_buffer)."""
    return parse_buffer(np.memmap(path, dtype=np.uint8, mode="r"))
