#!/usr/bin/env python3
"""Seeded mutation fuzzer for ggraph's GGUF loader (and, with --vs-llama-cpp, llama.cpp's).

Mutants are made from tiny random llamas (scripts/make_tiny_llama.py: F32 and Q8_0 with a byte-level
BPE vocabulary, and an F32 one with a SentencePiece vocabulary). Each mutant is loaded, tokenized
(str and raw bytes), decoded (4 generated tokens) and detokenized by ggraph in a child worker with
an address-space limit (RLIMIT_AS) and a timeout; the worker is long-lived (numba's import and the
kernel cache load are paid once) and restarted after a crash or a hang. Outcomes:

  refused    one-line GGraphError                      (fine)
  loaded     everything ran                            (fine if the change is confined to tensor
                                                        data, or llama.cpp accepts the file too)
  raw        any other exception (TypeError, MemoryError, ...)   bug
  multiline  a GGraphError of more than one line               bug
  crash      the worker died (signal, abort)                   bug
  hang       no answer within the timeout                      bug

With --vs-llama-cpp every mutant is also loaded by llama.cpp (llama-cpp-python: load, tokenize,
eval, 4 greedy tokens) in a worker of its own (an abort there counts as "refused"), and a mutant
ggraph loads but llama.cpp refuses ("gap") is a bug unless the mutation only touched tensor data
(GGUF has no checksum: llama.cpp loads those too).

Mutation operators: truncations, byte flips in the header or the data, header fields (version,
counts), KV fields (key length, value type, array type and count, string lengths, scalar bytes),
tensor-table fields (name length, n_dims, ne, type, offset), and structured rewrites: values set to
edge cases per type (0, 2**31, 2**32-1, NaN, inf, ...), keys retyped (incl. arrays nested up to
1000 deep), deleted, duplicated, emptied, renamed, added (general.alignment), tensors renamed,
duplicated, reordered, retyped, reshaped or dropped, and vocabulary damage (duplicate or empty
tokens, short arrays, bad token types, NaN scores, bad merges, huge special ids, other models).

    python scripts/fuzz_gguf.py -n 5000 --seed 0 [--vs-llama-cpp] [--timeout 20] [--mem-gb 4]
                                [--keep DIR] [--json OUT] [--only SEED]

Mutant i of a run with --seed S is fully determined by (S + i); --only reproduces one.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# value types (GGUF)
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B", U64: "<Q",
        I64: "<q", F64: "<d"}
ALIGN = 32


# ------------------------------------------------------------------------------------------ base models
def _spm_vocab():
    """A SentencePiece vocabulary (tokenizer.ggml.model = llama): <unk> <s> </s>, the 256 byte tokens
    and a few scored pieces; ids and types as llama.cpp's SPM loader expects."""
    pieces = ["\u2581", "\u2581the", "\u2581cat", "\u2581sat", "\u2581a", "\u2581t", "th", "he", "at", "in", "er",
              "\u2581H", "\u2581w", "or", "ld", "\u2581wor", "\u2581world", "el", "lo", "ll"]
    pieces += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(pieces))]
    return tokens, types, scores


def make_bases(out_dir: str) -> dict:
    """The base GGUFs: name -> path (deterministic files)."""
    sys.path.insert(0, HERE)
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_tiny_llama", os.path.join(HERE, "make_tiny_llama.py"))
    mtl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mtl)
    os.makedirs(out_dir, exist_ok=True)
    bases = {"bpe-f32": mtl.make(os.path.join(out_dir, "base-bpe-f32.gguf"), "F32", 0),
             "bpe-q8_0": mtl.make(os.path.join(out_dir, "base-bpe-q8_0.gguf"), "Q8_0", 0)}

    def spm_tokenizer(w, tokens, types, scores):
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)

    orig = mtl.build_vocab, mtl.add_tokenizer
    mtl.build_vocab, mtl.add_tokenizer = _spm_vocab, spm_tokenizer
    try:
        bases["spm-f32"] = mtl.make(os.path.join(out_dir, "base-spm-f32.gguf"), "F32", 1)
    finally:
        mtl.build_vocab, mtl.add_tokenizer = orig
    return bases


# ------------------------------------------------------------------------------------------ GGUF layout
class Layout:
    """Where every field of a (valid) GGUF is: an independent reader, so the fuzzer does not trust the
    parser it tests."""

    def __init__(self, b: bytes):
        self.b = b
        p = 8
        self.n_tensors, self.n_kv = struct.unpack_from("<QQ", b, p)
        p += 16
        self.kvs = []           # dict(key, vtype, sub, value, start, end, type_off, value_off, count_off)
        for _ in range(self.n_kv):
            kv = {"start": p}
            n = struct.unpack_from("<Q", b, p)[0]
            kv["key"] = b[p + 8:p + 8 + n].decode()
            p += 8 + n
            kv["type_off"] = p
            vt = struct.unpack_from("<i", b, p)[0]
            p += 4
            kv["vtype"], kv["sub"] = vt, None
            kv["value_off"] = p
            if vt == ARR:
                kv["sub"] = struct.unpack_from("<i", b, p)[0]
                kv["count_off"] = p + 4
                count = struct.unpack_from("<Q", b, p + 4)[0]
                p += 12
                vals, kv["elem_offs"] = [], []
                for _ in range(count):
                    kv["elem_offs"].append(p)
                    v, p = self._scalar(kv["sub"], p)
                    vals.append(v)
                kv["value"] = vals
            else:
                kv["value"], p = self._scalar(vt, p)
            kv["end"] = p
            self.kvs.append(kv)
        self.tensors = []       # dict(name, ne, type, offset, start, ndims_off, ne_off, type_off, offset_off)
        for _ in range(self.n_tensors):
            t = {"start": p}
            n = struct.unpack_from("<Q", b, p)[0]
            t["name"] = b[p + 8:p + 8 + n].decode()
            p += 8 + n
            t["ndims_off"] = p
            nd = struct.unpack_from("<I", b, p)[0]
            p += 4
            t["ne_off"] = p
            t["ne"] = list(struct.unpack_from(f"<{nd}q", b, p))
            p += 8 * nd
            t["type_off"] = p
            t["type"] = struct.unpack_from("<i", b, p)[0]
            p += 4
            t["offset_off"] = p
            t["offset"] = struct.unpack_from("<Q", b, p)[0]
            p += 8
            t["end"] = p
            self.tensors.append(t)
        self.header_end = p
        self.data_start = (p + ALIGN - 1) // ALIGN * ALIGN

    def _scalar(self, vt, p):
        if vt == STR:
            n = struct.unpack_from("<Q", self.b, p)[0]
            return self.b[p + 8:p + 8 + n].decode("utf-8", "replace"), p + 8 + n
        f = _FMT[vt]
        return struct.unpack_from(f, self.b, p)[0], p + struct.calcsize(f)


# ------------------------------------------------------------------------------------------ writer
def enc_scalar(vt: int, v) -> bytes:
    if vt == STR:
        raw = v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogatepass")
        return struct.pack("<Q", len(raw)) + raw
    if vt == BOOL:
        return struct.pack("<B", int(v) & 0xFF)
    f = _FMT[vt]
    if vt in (F32, F64):
        return struct.pack(f, float(v))
    bits = struct.calcsize(f) * 8
    v = int(v)
    if f[1].isupper():
        v &= (1 << bits) - 1
    else:
        v = (v + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
    return struct.pack(f, v)


def enc_value(vt: int, v, sub=None) -> bytes:
    """Type field + value. Arrays: v is a list of sub values, or ("nested", depth, inner_sub, inner_list)."""
    if vt != ARR:
        return struct.pack("<i", vt) + enc_scalar(vt, v)
    if isinstance(v, tuple) and v and v[0] == "nested":
        _, depth, isub, ivals = v
        out = struct.pack("<iQ", isub, len(ivals)) + b"".join(enc_scalar(isub, x) for x in ivals)
        for _ in range(depth):
            out = struct.pack("<iQ", ARR, 1) + out
        return struct.pack("<i", ARR) + out
    return struct.pack("<iiQ", ARR, sub, len(v)) + b"".join(enc_scalar(sub, x) for x in v)


def write_gguf(kvs, tensors, data: bytes, align=ALIGN, version=3, relayout=False) -> bytes:
    """kvs: [(key, vtype, sub, value)]; tensors: [dict(name, ne, type, offset)]; data: the tensor data
    section. relayout=True recomputes offsets and re-pads data for `align` (a valid file); False keeps
    the given offsets and data as they are."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)))
    for key, vt, sub, v in kvs:
        raw = key if isinstance(key, bytes) else key.encode()
        out += struct.pack("<Q", len(raw)) + raw + enc_value(vt, v, sub)
    chunks = []
    if relayout:
        off = 0
        for t in tensors:
            chunk = data[t["offset"]:t["offset"] + t["nbytes"]]
            t = dict(t, offset=off)
            chunks.append((t, chunk))
            off += (len(chunk) + align - 1) // align * align
        tensors = [t for t, _ in chunks]
    for t in tensors:
        raw = t["name"] if isinstance(t["name"], bytes) else t["name"].encode()
        out += struct.pack("<Q", len(raw)) + raw + struct.pack("<I", len(t["ne"]))
        out += struct.pack(f"<{len(t['ne'])}q", *t["ne"]) + struct.pack("<iQ", t["type"], t["offset"])
    out += b"\0" * ((-len(out)) % align)
    if relayout:
        for t, chunk in chunks:
            out += chunk + b"\0" * ((-len(chunk)) % align)
    else:
        out += data
    return bytes(out)


# ------------------------------------------------------------------------------------------ mutations
U32S = [0, 1, 2, 3, 4, 7, 8, 31, 32, 33, 64, 255, 256, 4096, 65535, 2**31 - 1, 2**31, 2**32 - 1]
U64S = [0, 1, 2, 255, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]
F32S = [0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 1e-30, 1e-45, 3.4e38,
        0.5, 2.0, 1e-5, 10000.0]
STRS = ["", "x", "llama", "gpt2", "qwen2", "bogus-arch", "\x00", "a" * 300, "none", "no_vocab", "linear", "yarn",
        "smollm", "unknown-pre", "\u2581", "<s>"]
TYPE_IDS = list(range(13)) + [13, 100, -1, 2**31 - 1]
GTYPE_IDS = list(range(45)) + [-1, 2**31 - 1, 255]


def _interesting_u(rng, orig=None, bits=32):
    vals = U32S if bits == 32 else U64S
    if orig is not None and rng.random() < 0.4:
        return max(0, rng.choice([orig - 1, orig + 1, orig * 2, orig // 2, orig * 1000, orig + 2**31]))
    return rng.choice(vals)


class Mutator:
    def __init__(self, base_bytes: bytes):
        self.b = base_bytes
        self.L = Layout(base_bytes)
        self.data = base_bytes[self.L.data_start:]
        self.kvs = [(k["key"], k["vtype"], k["sub"], k["value"]) for k in self.L.kvs]
        self.tensors = []
        for i, t in enumerate(self.L.tensors):
            nxt = self.L.tensors[i + 1]["offset"] if i + 1 < len(self.L.tensors) else len(self.data)
            self.tensors.append({"name": t["name"], "ne": list(t["ne"]), "type": t["type"], "offset": t["offset"],
                                 "nbytes": self._nbytes(t, nxt)})
        self.ops = [
            (self.truncate, 6), (self.flip_header, 8), (self.flip_data, 5), (self.header_field, 5),
            (self.kv_field, 12), (self.tensor_field, 10), (self.append_bytes, 1),
            (self.set_value, 18), (self.retype, 10), (self.key_ops, 8), (self.alignment, 4),
            (self.tensor_table, 10), (self.vocab, 10),
        ]

    def _nbytes(self, t, nxt):
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(t["type"])]
        n = 1
        for x in t["ne"]:
            n *= x
        return n // block * size

    def mutate(self, rng: random.Random):
        ops, weights = zip(*self.ops)
        op = rng.choices(ops, weights)[0]
        data, tag, data_only = op(rng)
        return data, f"{op.__name__}:{tag}", data_only

    # -- raw bytes -------------------------------------------------------------------------------
    def _patch(self, off, raw):
        b = bytearray(self.b)
        b[off:off + len(raw)] = raw
        return bytes(b)

    def truncate(self, rng):
        if rng.random() < 0.6:
            n = rng.randrange(0, self.L.data_start + 1)
        else:
            n = rng.randrange(0, len(self.b))
        return self.b[:n], f"at {n}", False

    def flip_header(self, rng):
        b = bytearray(self.b)
        k = rng.choice([1, 1, 1, 2, 4, 16])
        for _ in range(k):
            i = rng.randrange(0, self.L.header_end)
            b[i] = b[i] ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256)
        return bytes(b), f"{k} bytes", False

    def flip_data(self, rng):
        b = bytearray(self.b)
        k = rng.choice([1, 4, 64])
        for _ in range(k):
            i = rng.randrange(self.L.data_start, len(b))
            b[i] = rng.choice([0xFF, 0x7F, 0x80, 0x00, rng.randrange(256)])
        return bytes(b), f"{k} bytes", True

    def header_field(self, rng):
        which = rng.choice(["version", "n_tensors", "n_kv", "magic"])
        if which == "version":
            v = rng.choice([0, 1, 2, 4, 0x03000000, 2**32 - 1])
            return self._patch(4, struct.pack("<I", v)), f"version={v}", False
        if which == "magic":
            return self._patch(0, rng.choice([b"GGUG", b"FUGG", b"\0\0\0\0", b"GGML"])), "magic", False
        off = 8 if which == "n_tensors" else 16
        orig = self.L.n_tensors if which == "n_tensors" else self.L.n_kv
        v = _interesting_u(rng, orig, 64)
        return self._patch(off, struct.pack("<Q", v)), f"{which}={v}", False

    def kv_field(self, rng):
        kv = rng.choice(self.L.kvs)
        choice = rng.choice(["keylen", "vtype", "value"] + (["sub", "count"] if kv["vtype"] == ARR else []))
        if choice == "keylen":
            v = _interesting_u(rng, len(kv["key"]), 64)
            return self._patch(kv["start"], struct.pack("<Q", v)), f"{kv['key']} keylen={v}", False
        if choice == "vtype":
            v = rng.choice(TYPE_IDS)
            return self._patch(kv["type_off"], struct.pack("<i", v)), f"{kv['key']} vtype={v}", False
        if choice == "sub":
            v = rng.choice(TYPE_IDS)
            return self._patch(kv["value_off"], struct.pack("<i", v)), f"{kv['key']} sub={v}", False
        if choice == "count":
            v = _interesting_u(rng, len(kv["value"]), 64)
            return self._patch(kv["count_off"], struct.pack("<Q", v)), f"{kv['key']} count={v}", False
        # value bytes
        if kv["vtype"] == ARR:
            if not kv["elem_offs"]:
                return self.b, "empty array", False
            i = rng.randrange(len(kv["elem_offs"]))
            off, vt = kv["elem_offs"][i], kv["sub"]
            tag = f"{kv['key']}[{i}]"
        else:
            off, vt, tag = kv["value_off"], kv["vtype"], kv["key"]
        if vt == STR:
            v = _interesting_u(rng, None, 64)
            return self._patch(off, struct.pack("<Q", v)), f"{tag} strlen={v}", False
        size = struct.calcsize(_FMT[vt])
        raw = bytes(rng.randrange(256) for _ in range(size))
        return self._patch(off, raw), f"{tag} bytes={raw.hex()}", False

    def tensor_field(self, rng):
        t = rng.choice(self.L.tensors)
        choice = rng.choice(["namelen", "ndims", "ne", "type", "offset"])
        if choice == "namelen":
            v = _interesting_u(rng, len(t["name"]), 64)
            return self._patch(t["start"], struct.pack("<Q", v)), f"{t['name']} namelen={v}", False
        if choice == "ndims":
            v = rng.choice([0, 1, 2, 3, 4, 5, 8, 2**31, 2**32 - 1])
            return self._patch(t["ndims_off"], struct.pack("<I", v)), f"{t['name']} ndims={v}", False
        if choice == "ne":
            if not t["ne"]:
                return self.b, "no dims", False
            j = rng.randrange(len(t["ne"]))
            v = rng.choice([0, 1, -1, t["ne"][j] * 2, t["ne"][j] // 2, t["ne"][j] + 1, 2**31, 2**62, -2**63, 2**63 - 1])
            return self._patch(t["ne_off"] + 8 * j, struct.pack("<q", v)), f"{t['name']} ne[{j}]={v}", False
        if choice == "type":
            v = rng.choice(GTYPE_IDS)
            return self._patch(t["type_off"], struct.pack("<i", v)), f"{t['name']} type={v}", False
        others = [x["offset"] for x in self.L.tensors if x is not t]
        v = rng.choice([0, t["offset"] + 1, t["offset"] - 1, t["offset"] + 32, max(0, t["offset"] - 32),
                        rng.choice(others) if others else 0, 2**63, 2**64 - 1, len(self.b)])
        return self._patch(t["offset_off"], struct.pack("<Q", v % 2**64)), f"{t['name']} offset={v}", False

    def append_bytes(self, rng):
        n = rng.choice([1, 31, 32, 4096])
        return self.b + bytes(rng.randrange(256) for _ in range(n)), f"+{n}", False

    # -- structured rewrites -----------------------------------------------------------------------
    def _write(self, kvs=None, tensors=None, **kw):
        return write_gguf(self.kvs if kvs is None else kvs, self.tensors if tensors is None else tensors,
                          self.data, **kw)

    def _edge(self, rng, vt, v):
        if vt in (U8, I8, U16, I16, U32, I32):
            return _interesting_u(rng, v if isinstance(v, int) else None) - (rng.random() < 0.1) * 2**31
        if vt in (U64, I64):
            return _interesting_u(rng, v if isinstance(v, int) else None, 64)
        if vt in (F32, F64):
            return rng.choice(F32S)
        if vt == BOOL:
            return rng.choice([0, 1, 2, 255])
        if vt == STR:
            return rng.choice(STRS)
        raise AssertionError(vt)

    def set_value(self, rng):
        kvs = list(self.kvs)
        i = rng.randrange(len(kvs))
        key, vt, sub, v = kvs[i]
        if vt == ARR:
            v = list(v)
            action = rng.choice(["empty", "shorter", "longer", "element"])
            if action == "empty":
                v = []
            elif action == "shorter":
                v = v[:rng.randrange(len(v))] if v else v
            elif action == "longer":
                v = v + [v[-1] if v else self._edge(rng, sub, None)] * rng.choice([1, 100])
            elif v:
                j = rng.randrange(len(v))
                v[j] = self._edge(rng, sub, v[j])
            kvs[i] = (key, vt, sub, v)
            return self._write(kvs), f"{key} {action}", False
        nv = self._edge(rng, vt, v)
        kvs[i] = (key, vt, sub, nv)
        return self._write(kvs), f"{key}={nv!r:.40}", False

    def retype(self, rng):
        kvs = list(self.kvs)
        i = rng.randrange(len(kvs))
        key, vt, sub, v = kvs[i]
        scalar = v[0] if isinstance(v, list) and v else (0 if isinstance(v, list) else v)
        new = rng.choice([U8, I8, U16, I16, U32, I32, F32, BOOL, STR, U64, I64, F64, "arr", "nested"])
        if new == "nested":
            depth = rng.choice([1, 2, 10, 1000])
            nv = ("nested", depth, U32, [2, 2])
            kvs[i] = (key, ARR, ARR, nv)
            return self._write(kvs), f"{key} nested depth {depth}", False
        if new == "arr":
            nsub = rng.choice([U32, I32, F32, STR, BOOL, U8])
            vals = v if isinstance(v, list) else [scalar] * rng.choice([0, 1, 2, 3])
            conv = [self._conv(nsub, x) for x in vals[:2000]]
            kvs[i] = (key, ARR, nsub, conv)
            return self._write(kvs), f"{key} as arr[{nsub}] of {len(conv)}", False
        kvs[i] = (key, new, None, self._conv(new, scalar))
        return self._write(kvs), f"{key} as type {new}", False

    @staticmethod
    def _conv(vt, x):
        if vt == STR:
            return str(x)
        if vt in (F32, F64):
            try:
                return float(x)
            except (TypeError, ValueError):
                return 0.0
        try:
            return int(float(x)) if not (isinstance(x, float) and not math.isfinite(x)) else 0
        except (TypeError, ValueError):
            return 1

    def key_ops(self, rng):
        kvs = list(self.kvs)
        i = rng.randrange(len(kvs))
        key = kvs[i][0]
        action = rng.choice(["delete", "duplicate", "empty", "rename", "flipchar", "add"])
        if action == "delete":
            del kvs[i]
        elif action == "duplicate":
            kvs.insert(rng.randrange(len(kvs) + 1), kvs[i])
        elif action == "empty":
            kvs[i] = ("",) + kvs[i][1:]
        elif action == "rename":
            kvs[i] = (rng.choice(kvs)[0],) + kvs[i][1:]
        elif action == "flipchar":
            raw = bytearray(key.encode())
            j = rng.randrange(len(raw))
            raw[j] = rng.choice([ord("x"), 0, 0xFF, raw[j] ^ 1])
            kvs[i] = (bytes(raw),) + kvs[i][1:]
        else:
            arch = dict((k, v) for k, _, _, v in self.kvs)["general.architecture"]
            extra = rng.choice([
                (f"{arch}.nextn_predict_layers", U32, None, rng.choice([1, 2, 3, 2**32 - 1])),
                (f"{arch}.rope.scaling.type", STR, None, rng.choice(STRS)),
                (f"{arch}.rope.scaling.factor", F32, None, rng.choice(F32S)),
                (f"{arch}.rope.scaling.attn_factor", F32, None, rng.choice(F32S)),
                (f"{arch}.rope.scaling.original_context_length", U32, None, rng.choice(U32S)),
                (f"{arch}.attention.key_length", U32, None, rng.choice(U32S)),
                (f"{arch}.attention.value_length", U32, None, rng.choice(U32S)),
                (f"{arch}.expert_count", U32, None, rng.choice(U32S)),
                (f"{arch}.expert_used_count", U32, None, rng.choice(U32S)),
                (f"{arch}.feed_forward_length", ARR, U32, [192] * rng.choice([1, 2, 3])),
                (f"{arch}.attention.head_count", ARR, I32, [4, rng.choice([4, 2])]),
                ("split.count", rng.choice([U16, U32]), None, rng.choice([0, 1, 2])),
                ("tokenizer.ggml.add_eos_token", rng.choice([BOOL, U8]), None, 1),
                ("general.random.key", STR, None, "hello"),
            ])
            kvs.insert(rng.randrange(len(kvs) + 1), extra)
            key = extra[0]
        return self._write(kvs), f"{action} {key!r:.50}", False

    def alignment(self, rng):
        kvs = [kv for kv in self.kvs if kv[0] != "general.alignment"]
        val = rng.choice([0, 1, 3, 8, 16, 24, 64, 4096, 2**31, 2**32 - 1])
        vt = rng.choice([U32, U32, U32, U64, I32, F32])
        kvs.insert(rng.randrange(len(kvs) + 1), ("general.alignment", vt, None, val))
        valid = vt == U32 and val and not val & (val - 1) and val <= 4096
        relayout = bool(valid) and rng.random() < 0.7
        if relayout:
            return write_gguf(kvs, self.tensors, self.data, align=val, relayout=True), f"{val} relaid", False
        return self._write(kvs), f"{val} type {vt}", False

    def tensor_table(self, rng):
        ts = [dict(t) for t in self.tensors]
        i = rng.randrange(len(ts))
        action = rng.choice(["rename", "duplicate", "reorder", "retype", "reshape", "drop", "add", "blk"])
        if action == "rename":
            ts[i]["name"] = rng.choice(["outpub.weight", "output.weight", "token_embd.weight", "x", "",
                                        "blk.0.attn_q.weight", "a" * 64, "a" * 63, ts[i]["name"] + "_"])
        elif action == "duplicate":
            j = rng.randrange(len(ts))
            ts[j]["name"] = ts[i]["name"]
        elif action == "reorder":
            rng.shuffle(ts)
        elif action == "retype":
            ts[i]["type"] = rng.choice([0, 1, 2, 3, 6, 7, 8, 10, 12, 14, 20, 24, 26, 28, 30])
        elif action == "reshape":
            ne = ts[i]["ne"]
            if len(ne) >= 2 and rng.random() < 0.5:
                ts[i]["ne"] = [ne[1], ne[0]] + ne[2:]
            else:
                ts[i]["ne"] = ne + [rng.choice([1, 2])]
        elif action == "drop":
            del ts[i]
        elif action == "add":
            ts.append({"name": "extra.weight", "ne": [8], "type": 0, "offset": ts[-1]["offset"]})
        else:       # a layer beyond block_count, or a layer missing
            name = ts[i]["name"]
            ts[i]["name"] = "blk.7." + name.split(".", 2)[-1] if name.startswith("blk.") else "blk.2.attn_norm.weight"
        return self._write(tensors=ts), action, False

    def vocab(self, rng):
        kvs = list(self.kvs)
        idx = {k: i for i, (k, _, _, _) in enumerate(kvs)}
        action = rng.choice(["dup_token", "empty_token", "short_tokens", "token_type", "scores", "merges",
                             "special_id", "model", "pre", "drop_merges", "long_token"])
        k = "tokenizer.ggml."
        if action in ("dup_token", "empty_token", "short_tokens", "long_token"):
            i = idx[k + "tokens"]
            toks = list(kvs[i][3])
            j = rng.randrange(len(toks))
            if action == "dup_token":
                toks[j] = toks[rng.randrange(len(toks))]
            elif action == "empty_token":
                toks[j] = ""
            elif action == "long_token":
                toks[j] = "z" * rng.choice([300, 70000])
            else:
                toks = toks[:rng.randrange(len(toks))]
            kvs[i] = kvs[i][:3] + (toks,)
        elif action == "token_type":
            i = idx[k + "token_type"]
            tt = list(kvs[i][3])
            for _ in range(rng.choice([1, 10])):
                tt[rng.randrange(len(tt))] = rng.choice([-1, 0, 1, 2, 3, 4, 5, 6, 7, 100, 2**31 - 1])
            kvs[i] = kvs[i][:3] + (tt,)
        elif action == "scores":
            if k + "scores" in idx:
                i = idx[k + "scores"]
                sc = list(kvs[i][3])
                for _ in range(rng.choice([1, 10])):
                    sc[rng.randrange(len(sc))] = rng.choice(F32S)
                kvs[i] = kvs[i][:3] + (sc,)
            else:
                kvs.append((k + "scores", ARR, F32, [rng.choice(F32S)] * rng.choice([1, 1000])))
        elif action == "merges":
            if k + "merges" in idx:
                i = idx[k + "merges"]
                m = list(kvs[i][3])
                for _ in range(rng.choice([1, 10])):
                    m[rng.randrange(len(m))] = rng.choice(["", " ", "a", "a b c", "\u0120 ", "zz yy", "\x00 \x00"])
                kvs[i] = kvs[i][:3] + (m,)
            else:
                kvs.append((k + "merges", ARR, STR, ["a b", "", " "]))
        elif action == "special_id":
            key = k + rng.choice(["bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id",
                                  "eot_token_id"])
            kvs = [kv for kv in kvs if kv[0] != key] + [(key, U32, None, rng.choice(U32S))]
        elif action == "model":
            i = idx[k + "model"]
            kvs[i] = kvs[i][:3] + (rng.choice(["llama", "gpt2", "bert", "gemma4", "no_vocab", "", "t5"]),)
        elif action == "pre":
            val = rng.choice(["", "default", "llama3", "qwen2", "gpt-2", "nope", "deepseek-llm"])
            kvs = [kv for kv in kvs if kv[0] != k + "pre"] + [(k + "pre", STR, None, val)]
        else:
            kvs = [kv for kv in kvs if kv[0] != k + "merges"]
        return self._write(kvs), action, False


# ------------------------------------------------------------------------------------------ workers
def _limit_memory(mem_bytes):
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))


TEXTS = ("Hello world, the cat sat.", "<|endoftext|>x<s> \u2581 caf\u00e9 \U0001f600", "")
RAW = (b"\xff\xfe raw \xc3 bytes \xed\xa0\x80", b"caf\xc3\xa9 ok")


def _ggraph_case(path):
    from ggraph.errors import GGraphError
    import ggraph
    stage = "load"
    try:
        m = ggraph.load(path)
        stage = "tokenize"
        ids = m.tokenize(TEXTS[0], add_special=True, parse_special=True)
        for t in TEXTS[1:]:
            m.tokenize(t, add_special=True, parse_special=True)
            m.tokenize(t, add_special=False, parse_special=False)
        for t in RAW:
            m.tokenize(t)
        stage = "context"
        ctx = m.new_context(n_ctx=64, n_threads=1)
        stage = "generate"
        toks = list(ctx.generate((ids or [0])[:32], n_predict=4))
        stage = "detokenize"
        m.detokenize(ids)
        m.detokenize(toks, as_bytes=True)
        for t in toks:
            m.token_to_piece(t, special=True)
        return {"outcome": "loaded", "stage": "done"}
    except GGraphError as e:
        msg = str(e)
        return {"outcome": "multiline" if "\n" in msg.strip() else "refused", "stage": stage, "msg": msg[:400]}
    except RecursionError as e:
        return {"outcome": "raw", "stage": stage, "exc": "RecursionError", "msg": str(e)[:200], "where": _where()}
    except Exception as e:
        return {"outcome": "raw", "stage": stage, "exc": type(e).__name__, "msg": str(e)[:400], "where": _where()}


def _where():
    tb = traceback.extract_tb(sys.exc_info()[2])
    frames = [f for f in tb if "fuzz_gguf" not in f.filename] or tb
    return " <- ".join(f"{os.path.relpath(f.filename, ROOT)}:{f.lineno}" for f in frames[-3:][::-1])


def ggraph_worker(conn, mem_bytes, warm):
    import logging
    import warnings
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    for p in warm:                  # numba import, kernels from the cache: before the limit
        _ggraph_case(p)
    _limit_memory(mem_bytes)
    conn.send("ready")
    while True:
        path = conn.recv()
        if path is None:
            return
        r = _ggraph_case(path)
        import gc
        gc.collect()
        conn.send(r)


def _lcpp_case(path):
    import llama_cpp
    import numpy as np
    try:
        llm = llama_cpp.Llama(model_path=path, n_ctx=64, n_batch=64, n_threads=1, n_threads_batch=1,
                              verbose=False)
        ids = llm.tokenize(TEXTS[0].encode(), add_bos=True, special=True)
        for t in TEXTS[1:]:
            llm.tokenize(t.encode(), add_bos=True, special=True)
        for t in RAW:
            llm.tokenize(t, add_bos=False, special=False)
        llm.eval((ids or [0])[:32])
        for _ in range(3):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([tok])
        llm.detokenize(ids)
        del llm
        return {"outcome": "loaded"}
    except Exception as e:
        return {"outcome": "refused", "msg": f"{type(e).__name__}: {e}"[:300]}


def lcpp_worker(conn, mem_bytes, warm):
    os.environ["GGML_NO_BACKTRACE"] = "1"
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    import llama_cpp
    for p in warm:
        _lcpp_case(p)
    _limit_memory(mem_bytes)
    conn.send("ready")
    while True:
        path = conn.recv()
        if path is None:
            return
        conn.send(_lcpp_case(path))


class Worker:
    """A long-lived child running one kind of case; restarted after a crash or a timeout."""

    def __init__(self, target, mem_bytes, warm, timeout, start_timeout=300):
        self.target, self.mem, self.warm, self.timeout, self.start_timeout = target, mem_bytes, warm, timeout, start_timeout
        self.proc = None
        self.restarts = 0

    def _start(self):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=self.target, args=(child, self.mem, self.warm), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(self.start_timeout) or self.conn.recv() != "ready":
            raise RuntimeError(f"worker {self.target.__name__} did not start")

    def _kill(self):
        if self.proc is not None:
            self.proc.kill()         # our own child, by its handle
            self.proc.join(10)
            self.proc = None
            self.restarts += 1

    def run(self, path):
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send(path)
        t = time.perf_counter()
        try:
            ready = self.conn.poll(self.timeout)
        except (EOFError, OSError):
            ready = True
        if not ready:
            self._kill()
            return {"outcome": "hang", "seconds": round(time.perf_counter() - t, 1)}
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            code = self.proc.exitcode
            self._kill()
            return {"outcome": "crash", "exitcode": code}

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (OSError, BrokenPipeError):
                pass
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)


BUGS = ("raw", "multiline", "crash", "hang")


def _env_for_children():
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ["GGRAPH_NO_COMPILE_HELPER"] = "1"
    os.environ["GGRAPH_NO_LAYOUT_CACHE"] = "1"
    os.environ["GGML_NO_BACKTRACE"] = "1"


def run(n: int, seed: int = 0, timeout: float = 20.0, mem_gb: float = 4.0, vs_llama_cpp: bool = False,
        keep: str | None = None, only: int | None = None, bases_dir: str | None = None, progress=None) -> dict:
    """Run n seeded mutants (or just seed `only`); returns the summary dict (see --json)."""
    _env_for_children()
    work = tempfile.mkdtemp(prefix="ggraph-fuzz-")
    try:
        bases = make_bases(bases_dir or os.path.join(work, "bases"))
        names = sorted(bases)
        mutators = {nm: Mutator(open(bases[nm], "rb").read()) for nm in names}
        mem = int(mem_gb * 2**30)
        gw = Worker(ggraph_worker, mem, [bases[nm] for nm in names], timeout)
        lw = Worker(lcpp_worker, mem, [bases[names[0]]], timeout) if vs_llama_cpp else None
        counts = collections.Counter()
        by_op = collections.defaultdict(collections.Counter)
        pairs = collections.Counter()
        bugs, gaps, stricter = [], [], []
        seeds = [only] if only is not None else [seed + i for i in range(n)]
        t0 = time.perf_counter()
        for k, s in enumerate(seeds):
            rng = random.Random(s)
            base = names[s % len(names)]
            data, tag, data_only = mutators[base].mutate(rng)
            path = os.path.join(work, f"mutant-{s}.gguf")
            with open(path, "wb") as fh:
                fh.write(data)
            r = gw.run(path)
            out = r["outcome"]
            if out == "loaded" and data_only:
                out = "loaded-data"
            elif out == "loaded":
                out = "loaded-header"
            counts[out] += 1
            by_op[tag.split(":")[0]][out] += 1
            rec = {"seed": s, "base": base, "mutation": tag, **r}
            if vs_llama_cpp:
                lr = lw.run(path)
                lo = "loaded" if lr["outcome"] == "loaded" else "refused"
                if lr.get("msg", "").startswith("MemoryError"):
                    lo = "out of memory"     # llama-cpp-python's own buffers under the limit, not a refusal
                elif lr["outcome"] == "hang":
                    lo = "timed out"         # (its tokenize allocates n_ctx_train tokens per call)
                rec["llama_cpp"] = lr
                g = "loaded" if r["outcome"] == "loaded" else ("refused" if r["outcome"] == "refused" else "bug")
                pairs[f"ggraph {g} / llama.cpp {lo}"] += 1
                if g == "loaded" and lo == "refused" and not data_only:
                    gaps.append(rec)
                if g == "refused" and lo == "loaded":
                    stricter.append({"seed": s, "mutation": tag, "msg": r.get("msg", "")[:200]})
            if r["outcome"] in BUGS:
                bugs.append(rec)
            if keep and (r["outcome"] in BUGS or rec in gaps):
                os.makedirs(keep, exist_ok=True)
                shutil.copy(path, os.path.join(keep, f"mutant-{s}.gguf"))
            os.unlink(path)
            if progress and (k + 1) % 250 == 0:
                print(f"{k + 1}/{len(seeds)} {dict(counts)} ({time.perf_counter() - t0:.0f} s)", file=progress,
                      flush=True)
        gw.close()
        if lw:
            lw.close()
        return {"n": len(seeds), "seed": seed, "seconds": round(time.perf_counter() - t0, 1), "counts": dict(counts),
                "by_operator": {k: dict(v) for k, v in sorted(by_op.items())}, "vs_llama_cpp": dict(pairs),
                "bugs": bugs, "gaps": gaps, "stricter": stricter, "worker_restarts": {"ggraph": gw.restarts, "llama.cpp": lw.restarts if lw else 0},
                "timeout": timeout, "mem_gb": mem_gb}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------ tokenizer fuzz
_ATOMS = ["<|endoftext|>", "<s>", "</s>", "<unk>", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "'s", "'LL", "'re",
          "123", "4567", "The", " cat", "sat", "\u2581", "\u00e9", "e\u0301", "\u4e2d\u6587", "\U0001f600", "\u200d",
          "\ufffd", "\x00", "\x7f", "\ud800", "\udfff", "\u017f", "\u0130", "\u03a3", "\u00a0", "\u3000", "\u0645",
          "https://x.y/z?a=1", "!!", "...", "\u2028", "\ufeff", "<0x41>", "\U0010ffff"]
_BYTE_ATOMS = [b"\xff", b"\xfe", b"\xc3", b"\xa9", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80",
               b"\xf7\xbf\xbf\xbf", b"\x80", b"\xf0\x9f", b"\xe2\x96\x81"]


def _rand_text(rng) -> str:
    parts = []
    for _ in range(rng.choice([0, 1, 3, 8, 20, 60])):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(_ATOMS))
        elif r < 0.7:
            parts.append(chr(rng.randrange(0x20, 0x7F)) * rng.choice([1, 1, 2, 5]))
        else:
            lo, hi = rng.choice([(0, 0x80), (0x80, 0x800), (0x800, 0x10000), (0x10000, 0x110000)])
            parts.append(chr(rng.randrange(lo, hi)))
    if rng.random() < 0.02:
        parts.append(rng.choice(_ATOMS) * 2000)
    return "".join(parts)


def _rand_bytes(rng) -> bytes:
    r = rng.random()
    if r < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 16, 100])))
    parts = []
    for _ in range(rng.choice([1, 3, 10, 30])):
        parts.append(rng.choice(_BYTE_ATOMS) if rng.random() < 0.4 else
                     _rand_text(rng)[:8].encode("utf-8", "surrogatepass"))
    return b"".join(parts)


def fuzz_tokenizer(paths: dict, n: int, seed: int = 0) -> dict:
    """Random str and bytes through each vocabulary's tokenize / detokenize: no exception but
    GGraphError ever; ids in range; the same ids twice; round trips where they must hold (byte-level
    BPE: every input; SPM with full byte fallback: str inputs and bytes without spaces)."""
    import warnings
    warnings.simplefilter("ignore")
    from ggraph.gguf_file import GGUFFile
    from ggraph.runtime.text import Vocab
    from ggraph.runtime.text.vocab import utf8_like_llamacpp
    counts, failures = collections.Counter(), []
    for name, path in sorted(paths.items()):
        v = Vocab.from_gguf(GGUFFile(path))
        byte_level = v.type == "bpe" and not v.escape_whitespaces and not v.clean_spaces and \
            all(ch in v.token_to_id for ch in __import__("ggraph.runtime.text.pretokenize",
                                                              fromlist=["x"]).bytes_to_unicode().values())
        full_fallback = v.type == "spm" and all(f"<0x{b:02X}>" in v.token_to_id for b in range(256))
        rng = random.Random(f"{seed}-{name}")
        for i in range(n):
            x = _rand_text(rng) if i % 2 == 0 else _rand_bytes(rng)
            try:
                for add, special in ((True, True), (False, False)):
                    ids = v.tokenize(x, add_special=add, parse_special=special)
                    if not all(type(t) is int and 0 <= t < v.n_vocab for t in ids):
                        raise AssertionError(f"ids out of range: {ids[:10]}")
                    v.detokenize(ids)
                    v.detokenize(ids, remove_special=True, unparse_special=True)
                again = v.tokenize(x, add_special=False, parse_special=False)
                if again != ids:
                    raise AssertionError("not deterministic")
                got = v.detokenize_bytes(ids)
                if isinstance(x, str):
                    raw = x.encode("utf-8", "surrogatepass")
                    if byte_level:
                        want = raw
                    elif full_fallback:
                        want = x.replace("\u2581", " ").encode("utf-8", "surrogatepass") if not \
                            any("\udc80" <= c <= "\udcff" for c in x) else None
                    else:
                        want = None
                else:
                    if byte_level:
                        want = utf8_like_llamacpp(x).encode("utf-8", "surrogatepass")
                    elif full_fallback and b" " not in x and b"\xe2\x96\x81" not in x:
                        want = x
                    else:
                        want = None
                if want is not None and got != want:
                    raise AssertionError(f"round trip: got {got[:60]!r}, want {want[:60]!r}")
                counts[f"{name} ok"] += 1
            except Exception as e:
                from ggraph.errors import GGraphError
                kind = "GGraphError" if isinstance(e, GGraphError) else type(e).__name__
                counts[f"{name} {kind}"] += 1
                failures.append({"vocab": name, "input": repr(x)[:200], "error": f"{kind}: {e}"[:300]})
    return {"n": n, "seed": seed, "counts": dict(counts), "failures": failures[:100], "n_failures": len(failures)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=500, help="mutants (default 500)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", type=int, default=None, help="run only this seed (reproduce one mutant)")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per mutant (default 20)")
    ap.add_argument("--mem-gb", type=float, default=4.0, help="address-space limit of the workers (default 4)")
    ap.add_argument("--vs-llama-cpp", action="store_true", help="also load every mutant with llama.cpp")
    ap.add_argument("--keep", default=None, help="copy mutants that found a bug or a gap into this folder")
    ap.add_argument("--json", default=None, help="write the summary (with every bug) to this file")
    ap.add_argument("--tokenizer", type=int, default=None, metavar="N",
                    help="instead: N random str/bytes inputs per vocabulary through tokenize/detokenize "
                         "(the base vocabularies, plus --vocab files)")
    ap.add_argument("--vocab", action="append", default=[], help="another GGUF whose vocabulary --tokenizer fuzzes")
    a = ap.parse_args(argv)
    if a.tokenizer is not None:
        with tempfile.TemporaryDirectory(prefix="ggraph-fuzz-tok-") as d:
            paths = make_bases(d)
            paths.pop("bpe-q8_0")             # the same vocabulary as bpe-f32
            paths.update({os.path.basename(p): p for p in a.vocab})
            res = fuzz_tokenizer(paths, a.tokenizer, a.seed)
        out = json.dumps(res, indent=1)
        if a.json:
            with open(a.json, "w") as fh:
                fh.write(out)
        print(out)
        return 1 if res["n_failures"] else 0
    res = run(a.n, a.seed, a.timeout, a.mem_gb, a.vs_llama_cpp, a.keep, a.only, progress=sys.stderr)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    print(f"{res['n']} mutants in {res['seconds']} s: {res['counts']}")
    for op, c in res["by_operator"].items():
        print(f"  {op:14s} {c}")
    if res["vs_llama_cpp"]:
        for k, v in sorted(res["vs_llama_cpp"].items()):
            print(f"  {k}: {v}")
    for b in res["bugs"][:50]:
        print("BUG", json.dumps(b)[:400])
    for g in res["gaps"][:50]:
        print("GAP", json.dumps(g)[:400])
    return 1 if res["bugs"] or res["gaps"] else 0


if __name__ == "__main__":
    sys.exit(main())
