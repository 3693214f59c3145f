"""Bad input never gets past the loader (issue 11): every item of the issue, each giving one clear
GGraphError line naming the file / key / value (or the documented llama.cpp behaviour).

Variants of the tiny F32 llama are rewritten field by field with scripts/fuzz_gguf.py's independent
GGUF reader and writer."""
from __future__ import annotations

import logging
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from conftest import load_script

import ggraph
from ggraph.errors import GGraphError

fz = load_script("fuzz_gguf")
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
NAN, INF = float("nan"), float("inf")


# ----------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def base(tiny_llama_path):
    return fz.Mutator(open(tiny_llama_path, "rb").read())


@pytest.fixture
def variant(base, tmp_path):
    """variant(set={key: (vtype, sub, value) or None to delete}, tensors=fn(list) -> list, raw=fn(bytes)
    -> bytes, relayout=False) -> path of the rewritten GGUF."""
    counter = [0]

    def make(set=None, tensors=None, raw=None, relayout=False, align=32):
        kvs = []
        todo = dict(set or {})
        for kv in base.kvs:
            if kv[0] in todo:
                new = todo.pop(kv[0])
                if new is not None:
                    kvs.append((kv[0],) + tuple(new))
            else:
                kvs.append(kv)
        kvs += [(k,) + tuple(v) for k, v in todo.items() if v is not None]
        ts = [dict(t) for t in base.tensors]
        if tensors is not None:
            ts = tensors(ts)
        data = fz.write_gguf(kvs, ts, base.data, align=align, relayout=relayout)
        if raw is not None:
            data = raw(data)
        counter[0] += 1
        p = tmp_path / f"v{counter[0]}.gguf"
        p.write_bytes(data)
        return str(p)
    return make


def load_error(path, *needles) -> str:
    with pytest.raises(GGraphError) as e:
        ggraph.load(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(path), msg
    for n in needles:
        assert n in msg, msg
    return msg


def run_cli(*args, stdin=None):
    r = subprocess.run([sys.executable, "-m", "ggraph", *args], capture_output=True, timeout=300, input=stdin)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def assert_one_error_line(code, err, *needles, status=1):
    assert code == status, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def _patch_tensor(data: bytes, base, name: str, index: int, value: float) -> bytes:
    lay = fz.Layout(data)
    t = next(t for t in lay.tensors if t["name"] == name)
    off = lay.data_start + t["offset"] + 4 * index
    return data[:off] + struct.pack("<f", value) + data[off + 4:]


# ----------------------------------------------------------------------------------------- hangs
@pytest.mark.parametrize("value", [2**31, 2**32 - 1, 513, 0])
def test_block_count_out_of_range_is_refused_at_once(variant, value):
    """Hang 1: a block_count of 2**31.. built a list of that many layers; now [1, 512] (LLAMA_MAX_LAYERS)."""
    load_error(variant({"llama.block_count": (U32, None, value)}), "llama.block_count", str(value), "[1, 512]")


def test_block_count_as_u64_is_a_type_error(variant):
    load_error(variant({"llama.block_count": (U64, None, 2**63)}), "llama.block_count", "wrong type u64",
               "expected type u32")


@pytest.mark.parametrize("value", [2, 3, 2**32 - 1])
def test_huge_nextn_predict_layers(variant, value):
    """Hang 2: block_count - nextn_predict_layers went negative or stayed huge."""
    load_error(variant({"llama.nextn_predict_layers": (U32, None, value)}), "nextn_predict_layers")


@pytest.mark.parametrize("block_count, needle", [(3, "no tensors for layer 2"), (1, "tensors of layer 1")])
def test_n_layer_must_match_the_blk_tensors(variant, block_count, needle):
    load_error(variant({"llama.block_count": (U32, None, block_count)}), needle, "block_count")


# ----------------------------------------------------------------------------------------- raw exceptions
@pytest.mark.parametrize("key", ["llama.embedding_length", "llama.context_length", "llama.attention.head_count",
                                 "llama.feed_forward_length", "llama.rope.dimension_count"])
@pytest.mark.parametrize("bad", [(STR, None, "64"), (F32, None, NAN), (F32, None, INF), (ARR, U32, []),
                                 (ARR, STR, ["a"]), (BOOL, None, 1), (I32, None, 64)],
                         ids=["str", "nan", "inf", "empty-array", "str-array", "bool", "i32"])
def test_int_key_of_the_wrong_type(variant, key, bad):
    """Raw 1: a string, NaN, inf or an empty array in an int key was a ValueError / OverflowError /
    TypeError in hparams.py; now llama.cpp's "key ... has wrong type ..." (or a clear array error)."""
    msg = load_error(variant({key: bad}), key)
    assert "type" in msg or "array" in msg, msg


@pytest.mark.parametrize("key", ["llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon"])
@pytest.mark.parametrize("bad", [(STR, None, "1e4"), (U32, None, 10000), (F64, None, 1e4), (ARR, F32, [1.0])],
                         ids=["str", "u32", "f64", "array"])
def test_float_key_of_the_wrong_type(variant, key, bad):
    load_error(variant({key: bad}), key, "wrong type", "expected type f32")


@pytest.mark.parametrize("depth", [1, 1000])
def test_nested_arrays_are_refused(variant, depth):
    """Raw 2: arrays nested 1000 deep were a RecursionError; llama.cpp refuses arrays of arrays."""
    load_error(variant({"general.extra": (ARR, ARR, ("nested", depth, U32, [1, 2]))}), "general.extra",
               "array of arrays")


@pytest.mark.parametrize("value", [0, 3, 48])
def test_alignment_not_a_power_of_two(variant, value):
    """Raw 3 (alignment 0 was a ZeroDivisionError) and silent 5."""
    load_error(variant({"general.alignment": (U32, None, value)}), "general.alignment", "power of 2")


@pytest.mark.parametrize("vt", [U64, I32, F32])
def test_alignment_must_be_u32(variant, vt):
    load_error(variant({"general.alignment": (vt, None, 32)}), "general.alignment", "must be of type u32")


def test_valid_other_alignment_loads(variant):
    m = ggraph.load(variant({"general.alignment": (U32, None, 64)}, relayout=True, align=64))
    assert m.file.alignment == 64


def test_tensor_data_must_start_32_byte_aligned(variant):
    """A power of two below 32 can leave the data section unaligned: llama.cpp's mmap loader asserts
    (buffer pointer must be aligned), so it is refused here."""
    msgs = []
    for pad in range(4):
        extra = {"general.pad": (STR, None, "x" * pad), "general.alignment": (U32, None, 1)}
        try:
            ggraph.load(variant(extra, relayout=True, align=1))
            msgs.append("loaded")
        except GGraphError as e:
            msgs.append(str(e))
    assert any("not a multiple of 32" in m and "must be aligned" in m for m in msgs), msgs


@pytest.mark.parametrize("key, value, needle", [
    ("llama.rope.freq_base", 1.0, "= 1 is not supported"),
    ("llama.rope.dimension_count", 0, "rope.dimension_count"),
])
def test_rope_values_that_divided_by_zero(variant, key, value, needle):
    """Raw 5: rope.freq_base = 1 / dimension_count = 0 were ZeroDivisionErrors in yarn_corr_dims."""
    vt = F32 if isinstance(value, float) else U32
    load_error(variant({key: (vt, None, value)}), key, needle)


def test_context_length_1e30_is_a_type_error(variant):
    """Raw 6: context_length = 1e30 ended in a numba TypingError."""
    load_error(variant({"llama.context_length": (F32, None, 1e30)}), "llama.context_length", "wrong type f32")


def test_missing_context_length_is_refused_like_llama_cpp(variant):
    load_error(variant({"llama.context_length": None}), "missing hyperparameter llama.context_length")


@pytest.mark.parametrize("key, bad, needle", [
    ("tokenizer.ggml.tokens", (ARR, I32, [1, 2, 3]), "invalid gguf type for tokenizer.ggml.tokens"),
    ("tokenizer.ggml.tokens", (STR, None, "hello"), "invalid gguf type for tokenizer.ggml.tokens"),
    ("tokenizer.ggml.token_type", (ARR, STR, ["1"]), "invalid gguf type for tokenizer.ggml.token_type"),
    ("tokenizer.ggml.token_type", (ARR, U32, [1]), "invalid gguf type for tokenizer.ggml.token_type"),
    ("tokenizer.ggml.merges", (ARR, U32, [1, 2]), "invalid gguf type for tokenizer.ggml.merges"),
    ("tokenizer.ggml.scores", (ARR, STR, ["x"]), "invalid gguf type for tokenizer.ggml.scores"),
    ("tokenizer.ggml.model", (U32, None, 2), "tokenizer.ggml.model has wrong type u32"),
    ("tokenizer.ggml.pre", (ARR, STR, ["smollm"]), "tokenizer.ggml.pre has wrong type arr[str]"),
    ("tokenizer.ggml.bos_token_id", (STR, None, "0"), "tokenizer.ggml.bos_token_id has wrong type str"),
    ("tokenizer.ggml.add_bos_token", (U8, None, 1), "tokenizer.ggml.add_bos_token has wrong type u8"),
])
def test_vocabulary_keys_of_the_wrong_type(variant, key, bad, needle):
    """Raw 7: vocabulary arrays of the wrong type were TypeError / AttributeError in the tokenizer."""
    load_error(variant({key: bad}), needle)


def test_vocabulary_values_of_the_wrong_python_type():
    """Vocab.from_gguf also takes plain dicts (tests, tools): the same checks by Python type."""
    from ggraph.runtime.text import Vocab

    class D(dict):
        pass
    base = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "a"]}
    for key, bad, needle in [("tokenizer.ggml.tokens", ["a", 3], "array of strings"),
                             ("tokenizer.ggml.scores", ["x"] * 4, "array of numbers"),
                             ("tokenizer.ggml.token_type", [1.5] * 4, "array of integers"),
                             ("tokenizer.ggml.model", 7, "must be a string"),
                             ("tokenizer.ggml.add_bos_token", "yes", "must be a bool"),
                             ("tokenizer.ggml.bos_token_id", "1", "integer token id")]:
        with pytest.raises(GGraphError, match=needle):
            Vocab.from_gguf(D(base, **{key: bad}))


def test_info_on_a_bad_file_is_one_error_line(variant):
    """Raw 8: `ggraph info` printed a traceback."""
    path = variant({"llama.embedding_length": (STR, None, "sixty-four")})
    code, _, err = run_cli("info", path)
    assert_one_error_line(code, err, "llama.embedding_length", "wrong type str")


# ----------------------------------------------------------------------------------------- silently loaded
def _shift(ts, name, delta):
    t = next(t for t in ts if t["name"] == name)
    t["offset"] += delta
    return ts


@pytest.mark.parametrize("edit, needle", [
    (lambda ts: _shift(ts, "output_norm.weight", 4), "expected"),                      # not aligned
    (lambda ts: _shift(ts, "output_norm.weight", 32), "expected"),                     # a gap
    (lambda ts: _shift(ts, "output.weight", -32), "expected"),                         # overlapping
    (lambda ts: [ts[1], ts[0]] + ts[2:], "expected"),                                  # out of order
], ids=["unaligned", "gap", "overlap", "order"])
def test_tensor_offsets_aligned_in_order_without_overlap(variant, edit, needle):
    """Silent 1: offsets not aligned, overlapping or not in order loaded (different logits)."""
    load_error(variant(tensors=edit), "tensor", "data offset", needle)


def test_tensor_type_changed_to_a_smaller_one(variant):
    """Silent 2: a smaller type over the same bytes (the size check only compared with the file length)."""
    def f16(ts):
        next(t for t in ts if t["name"] == "blk.1.ffn_down.weight")["type"] = 1
        return ts
    load_error(variant(tensors=f16), "invalid GGUF file")


def test_last_tensor_type_changed_leaves_bytes_over(variant):
    def f16(ts):
        ts[-1]["type"] = 1
        return ts
    load_error(variant(tensors=f16), "bytes after the end of the tensor data")


def test_duplicate_tensor_names(variant):
    """Silent 3: the last duplicate won."""
    def dup(ts):
        ts[5]["name"] = ts[4]["name"]
        return ts
    load_error(variant(tensors=dup), "duplicate tensor name 'blk.0.attn_q.weight'")


def test_duplicate_and_empty_keys(base, tmp_path):
    """Silent 3: duplicate keys (the last won) and an empty key."""
    dup = list(base.kvs) + [base.kvs[2]]
    p = tmp_path / "dup.gguf"
    p.write_bytes(fz.write_gguf(dup, base.tensors, base.data))
    load_error(str(p), "duplicate key", base.kvs[2][0])
    empty = list(base.kvs) + [("", U32, None, 1)]
    p.write_bytes(fz.write_gguf(empty, base.tensors, base.data))
    load_error(str(p), "is empty")


@pytest.mark.parametrize("value, needle", [(8, "must be even and in [2, head size 16]"), (7, "head size"),
                                           (32, "head size")])
def test_rope_dimension_count_must_fit_the_head(variant, value, needle):
    """Silent 6 (llama also requires n_rot == head size, llama.cpp's "invalid n_rot")."""
    msg = load_error(variant({"llama.rope.dimension_count": (U32, None, value)}), "rope.dimension_count")
    assert "invalid n_rot" in msg or needle in msg


@pytest.mark.parametrize("value", [0.0, -1e-5, NAN, INF, -INF])
def test_rms_epsilon_positive_and_finite(variant, value):
    load_error(variant({"llama.attention.layer_norm_rms_epsilon": (F32, None, value)}),
               "llama.attention.layer_norm_rms_epsilon", "must be finite and > 0")


@pytest.mark.parametrize("value", [0.0, -10000.0, NAN, INF])
def test_freq_base_positive_and_finite(variant, value):
    load_error(variant({"llama.rope.freq_base": (F32, None, value)}), "llama.rope.freq_base",
               "must be finite and > 0")


@pytest.mark.parametrize("key, value, needle", [
    ("llama.rope.scaling.factor", NAN, "must be finite and >= 0"),
    ("llama.rope.scaling.factor", -2.0, "must be finite and >= 0"),
    ("llama.rope.scale_linear", INF, "must be finite and >= 0"),
    ("llama.rope.scaling.attn_factor", 0.0, "must be finite and > 0"),
    ("llama.rope.scaling.original_context_length", 0, "must be in [1, 2147483647]"),
])
def test_rope_scaling_values(variant, key, value, needle):
    vt = F32 if isinstance(value, float) else U32
    load_error(variant({key: (vt, None, value)}), key, needle)


@pytest.mark.parametrize("value", [0, 2**31])
def test_context_length_zero_or_beyond_int32(variant, value):
    """0, and above 2**31 - 1 (llama_model_n_ctx_train is an int32: llama-cpp-python fails on those)."""
    load_error(variant({"llama.context_length": (U32, None, value)}), f"llama.context_length = {value} must be in "
               f"[1, 2147483647]")


@pytest.mark.parametrize("key, value, needle", [
    ("llama.attention.head_count", 3, "llama.attention.head_count = 3 is not a multiple of"),
    ("llama.attention.head_count", 0, "head_count = 0 must be >= 1"),
    ("llama.attention.head_count_kv", 3, "not a multiple of llama.attention.head_count_kv = 3"),
    ("llama.attention.head_count_kv", 0, "head_count_kv = 0"),
    ("llama.expert_used_count", 2, "without llama.expert_count"),
    ("llama.vocab_size", 378, "llama.vocab_size = 378 but tokenizer.ggml.tokens has 377 tokens"),
])
def test_head_and_count_relations(variant, key, value, needle):
    load_error(variant({key: (U32, None, value)}), needle)


def test_heads_must_divide_the_embedding(variant):
    load_error(variant({"llama.attention.head_count": (U32, None, 3), "llama.attention.head_count_kv": (U32, None, 1)}),
               "llama.embedding_length = 64 is not a multiple of llama.attention.head_count = 3")


def test_per_layer_arrays(variant):
    """get_key_or_arr: a per-layer array of exactly n_layer elements; ggraph needs them all equal."""
    assert ggraph.load(variant({"llama.feed_forward_length": (ARR, U32, [192, 192])})).hp.n_ff == 192
    load_error(variant({"llama.feed_forward_length": (ARR, U32, [192, 96])}), "different values per layer")
    load_error(variant({"llama.feed_forward_length": (ARR, U32, [192])}),
               "llama.feed_forward_length has wrong array length; expected 2, got 1")


def test_tensor_not_used_by_the_architecture(variant):
    """llama.cpp's "wrong number of tensors": a renamed output.weight must not silently tie embeddings."""
    def rename(ts):
        next(t for t in ts if t["name"] == "output.weight")["name"] = "outpub.weight"
        return ts
    load_error(variant(tensors=rename), "tensor 'outpub.weight'", "not used by arch llama")


def test_byte_token_without_hex_text(variant, base):
    """A token typed BYTE (6) whose text is shorter than <0x: llama.cpp's token_to_byte throws on load."""
    types = list(dict((k, v) for k, _, _, v in base.kvs)["tokenizer.ggml.token_type"])
    types[70] = 6
    load_error(variant({"tokenizer.ggml.token_type": (ARR, I32, types)}), "token 70", "type BYTE")


def test_spm_vocabulary_without_a_byte_token(tmp_path):
    """SPM byte fallback needs <0xXX> (or the raw byte): llama.cpp aborts (token_to_id.at throws) when a
    byte without one must be tokenized; ggraph raises there and tokenizes everything else."""
    from ggraph.runtime.text import Vocab
    tokens, types, scores = fz._spm_vocab()
    i = tokens.index("<0xFF>")
    tokens[i], types[i] = "\u00ff\u00ff", 1
    v = Vocab.from_gguf({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
                         "tokenizer.ggml.token_type": types, "tokenizer.ggml.scores": scores})
    assert v.tokenize("the cat", add_special=False)
    with pytest.raises(GGraphError, match="no token for byte 0xFF"):
        v.tokenize(b"the \xff cat")


def test_duplicate_token_text(variant, base):
    toks = list(dict((k, v) for k, _, _, v in base.kvs)["tokenizer.ggml.tokens"])
    toks[300] = toks[200]
    msg = load_error(variant({"tokenizer.ggml.tokens": (ARR, STR, toks)}), "twice")
    assert "200" in msg and "300" in msg


# ----------------------------------------------------------------------------------------- GGUF structure
@pytest.mark.parametrize("version, needle", [(1, "version 1 is no longer supported"), (0, "bad GGUF version 0"),
                                             (4, "unsupported GGUF version 4"), (0x03000000, "byte-swapped")])
def test_gguf_version(variant, version, needle):
    load_error(variant(raw=lambda b: b[:4] + struct.pack("<I", version) + b[8:]), needle)


@pytest.mark.parametrize("field, value, needle", [(8, 2**40, "tensors, which cannot fit"),
                                                  (16, 2**62, "key-value pairs, which cannot fit"),
                                                  (8, 2**63, "tensors, which cannot fit")])
def test_counts_bounded_by_the_file_size(variant, field, value, needle):
    load_error(variant(raw=lambda b: b[:field] + struct.pack("<Q", value) + b[field + 8:]), needle)


def test_string_length_beyond_the_file(variant, base):
    lay = fz.Layout(open(variant(), "rb").read())
    kv = next(k for k in lay.kvs if k["key"] == "general.name")
    off = kv["value_off"]
    load_error(variant(raw=lambda b: b[:off] + struct.pack("<Q", 2**40) + b[off + 8:]), "general.name",
               "string length")


def test_unknown_value_type(variant):
    lay = fz.Layout(open(variant(), "rb").read())
    kv = next(k for k in lay.kvs if k["key"] == "general.name")
    off = kv["type_off"]
    load_error(variant(raw=lambda b: b[:off] + struct.pack("<i", 13) + b[off + 4:]), "invalid GGUF value type 13")


@pytest.mark.parametrize("edit, needle", [
    (lambda ts: [dict(ts[0], name="a" * 64)] + ts[1:], "name of 64 bytes"),
    (lambda ts: [dict(ts[0], ne=[64, 377, 1, 1, 1])] + ts[1:], "5 dimensions"),
    (lambda ts: [dict(ts[0], ne=[64, -377])] + ts[1:], "negative size"),
    (lambda ts: [dict(ts[0], type=4)] + ts[1:], "invalid ggml type 4"),
    (lambda ts: [dict(ts[0], type=2**31 - 1)] + ts[1:], "invalid ggml type"),
    (lambda ts: [dict(ts[0], type=10)] + ts[1:], "not a multiple of the block size 256"),
], ids=["long-name", "dims", "negative", "removed-type", "huge-type", "block"])
def test_tensor_table_fields(variant, edit, needle):
    load_error(variant(tensors=edit), needle)


def test_tensor_data_beyond_the_file(variant):
    msg = load_error(variant(raw=lambda b: b[:-100]), "not within the file")
    assert "truncated" in msg


def test_trailing_bytes_after_the_data(variant):
    load_error(variant(raw=lambda b: b + b"\0" * 64), "bytes after the end of the tensor data")


def test_file_is_a_directory(tmp_path):
    with pytest.raises(GGraphError, match="is a directory"):
        ggraph.load(str(tmp_path))
    code, _, err = run_cli("info", str(tmp_path))
    assert_one_error_line(code, err, "is a directory")


def test_control_characters_in_a_key_stay_on_one_line(variant):
    path = variant({"bad\nkey": (U32, None, 1), "general.architecture": (STR, None, "lla\nma")})
    msg = load_error(path)
    assert "\\n" in msg


# ----------------------------------------------------------------------------------------- API values
@pytest.fixture(scope="module")
def tiny(tiny_llama_path):
    return ggraph.load(tiny_llama_path)


def _nan_model(base, tmp_path, name, index):
    data = fz.write_gguf(base.kvs, base.tensors, base.data)
    p = tmp_path / "nan.gguf"
    p.write_bytes(_patch_tensor(data, base, name, index, NAN))
    return ggraph.load(str(p))


def test_nan_logits_raise_naming_the_node(base, tmp_path):
    """API 1: NaN/inf logits never raised (greedy picked a NaN); now the first bad node is named."""
    m = _nan_model(base, tmp_path, "blk.1.ffn_down.weight", 3 * 192)
    ctx = m.new_context(n_ctx=64, n_threads=1)
    with pytest.raises(GGraphError, match=r"NaN/inf logits \(first non-finite values in node ffn_out-1\)"):
        list(ctx.generate(m.tokenize("Hello world"), n_predict=3))
    assert ctx.n_past == 0       # the failed prompt is not left in the cache


def test_all_nan_row_raises(base, tmp_path):
    m = _nan_model(base, tmp_path, "output_norm.weight", 0)
    ctx = m.new_context(n_ctx=64, n_threads=1)
    with pytest.raises(GGraphError, match="377 NaN/inf logits .*node result_norm"):
        next(iter(ctx.generate(m.tokenize("Hello"), n_predict=3)))


def test_n_ctx_bounded_by_available_memory(tiny):
    """API 2: n_ctx=10**9 was a raw MemoryError; 10**6 silently allocated gigabytes."""
    with pytest.raises(GGraphError, match=r"n_ctx=1000000000 needs .* GiB of KV cache .* available"):
        tiny.new_context(n_ctx=10**9)


def test_n_ctx_against_a_small_memory(tiny, monkeypatch):
    from ggraph.runtime import checks
    monkeypatch.setattr(checks, "available_memory", lambda: 1 << 19)
    with pytest.raises(GGraphError, match=r"n_ctx=4096 needs 1.0 MiB of KV cache .* only 0.5 MiB"):
        tiny.new_context(n_ctx=4096)


def test_n_ctx_above_n_ctx_train_warns(tiny, caplog):
    with caplog.at_level(logging.WARNING, logger="ggraph"):
        tiny.new_context(n_ctx=1024, n_threads=1)
    assert "n_ctx (1024) > n_ctx_train (512)" in caplog.text


@pytest.mark.parametrize("ids, needle", [
    ([2**63], "token id 9223372036854775808 is outside the vocabulary"),
    ([1.5], "token ids must be integers, got float 1.5"),
    ([[1, 2], [3, 4]], "token ids must be integers, got list"),
    (np.array([[1, 2], [3, 4]]), "flat (1-D) sequence"),
    (np.array([1.0, 2.0]), "dtype float64"),
    ("hello", "must be a list of ints, got str"),
    ([True], "got bool"),
    ([], "no tokens given"),
    ([-1], "token id -1"),
], ids=["huge", "float", "nested", "2d-array", "float-array", "str", "bool", "empty", "negative"])
def test_decode_token_ids(tiny, ids, needle):
    """API 3: decode([2**63]) was an OverflowError, [1.5] decoded token 1, [[1,2],[3,4]] was flattened."""
    ctx = tiny.new_context(n_ctx=16, n_threads=1)
    with pytest.raises(GGraphError) as e:
        ctx.decode(ids)
    assert needle in str(e.value)
    assert ctx.n_past == 0


def test_decode_other_arguments(tiny):
    ctx = tiny.new_context(n_ctx=16, n_threads=1)
    with pytest.raises(GGraphError, match="logits_all must be True or False"):
        ctx.decode([1], logits_all="yes")
    with pytest.raises(GGraphError, match="cb_eval must be callable"):
        ctx.decode([1], cb_eval=3)
    assert ctx.decode(np.array([1, 2], dtype=np.int32)).shape == (tiny.n_vocab,)


@pytest.mark.parametrize("n_predict, needle", [(None, "got NoneType None"), (1.5, "got float 1.5"),
                                               (-3, "n_predict must be >= -2, got -3"), (True, "got bool")])
def test_generate_n_predict(tiny, n_predict, needle):
    """API 4: n_predict=None was a TypeError and 1.5 gave 2 tokens."""
    ctx = tiny.new_context(n_ctx=16, n_threads=1)
    with pytest.raises(GGraphError) as e:
        ctx.generate([1, 2], n_predict=n_predict)
    assert needle in str(e.value)


def test_generate_n_predict_minus_two_fills_the_context(tiny):
    """-2: until the context is full (llama.cpp's -n -2); -1 too, since ggraph has no context shift."""
    for n in (-1, -2):
        ctx = tiny.new_context(n_ctx=12, n_threads=1)
        toks = list(ctx.generate([1, 2, 3], n_predict=n))
        assert ctx.n_past == 12 or tiny.vocab.is_eog(toks[-1] if toks else 0)


def test_generate_sampler_must_be_a_sampler(tiny):
    with pytest.raises(GGraphError, match="sampler must have sample"):
        tiny.new_context(n_ctx=16, n_threads=1).generate([1], sampler="greedy")


@pytest.mark.parametrize("n_keep, needle", [(1.5, "got float 1.5"), (-1, "must be [0, 2]"), (3, "must be [0, 2]"),
                                            (None, "NoneType")])
def test_truncate(tiny, n_keep, needle):
    """API 5: truncate(1.5) left n_past = 1.5."""
    ctx = tiny.new_context(n_ctx=16, n_threads=1)
    ctx.decode([1, 2])
    with pytest.raises(GGraphError) as e:
        ctx.truncate(n_keep)
    assert needle in str(e.value) and ctx.n_past == 2


@pytest.mark.parametrize("call, needle", [
    (lambda m: m.detokenize([1.5]), "detokenize: token ids must be integers, got float 1.5"),
    (lambda m: m.detokenize(7), "ids must be a sequence"),
    (lambda m: m.detokenize([10**6]), "token id 1000000 out of range"),
    (lambda m: m.token_to_piece(1.5), "token_to_piece: token ids must be integers"),
    (lambda m: m.token_to_piece(None), "token_to_piece: token ids must be integers"),
    (lambda m: m.tokenize(["a"]), "takes a str or bytes, got list"),
    (lambda m: m.tokenize("a", add_special="no"), "add_special must be True or False"),
], ids=["float", "int", "range", "piece-float", "piece-none", "tokenize-list", "flag"])
def test_token_api_values(tiny, call, needle):
    """API 6: detokenize([1.5]) and token_to_piece(1.5) were TypeErrors."""
    with pytest.raises(GGraphError) as e:
        call(tiny)
    assert needle in str(e.value)


def test_numpy_token_ids_are_accepted(tiny):
    ids = np.array(tiny.tokenize("The cat sat"), dtype=np.int32)
    assert tiny.detokenize(ids) == tiny.detokenize(list(ids)) == "The cat sat"
    assert tiny.token_to_piece(np.int64(ids[0])) == tiny.token_to_piece(int(ids[0]))


@pytest.mark.parametrize("kw, needle", [({"n_ctx": 2.5}, "n_ctx must be a positive integer"),
                                        ({"n_ctx": 2**31}, "n_ctx must be [1, 2147483647]"),
                                        ({"n_batch": 0}, "n_batch must be a positive integer"),
                                        ({"n_ubatch": "8"}, "n_ubatch must be a positive integer"),
                                        ({"n_threads": 1.0}, "n_threads must be an integer")])
def test_context_arguments(tiny, kw, needle):
    with pytest.raises(GGraphError) as e:
        tiny.new_context(**kw)
    assert needle in str(e.value)


def test_past_context_error_for_one_generated_token(tiny):
    """API 7: a single token past a full context said "prompt too long"."""
    ctx = tiny.new_context(n_ctx=8, n_threads=1)
    ctx.decode(list(range(8)))
    with pytest.raises(GGraphError, match="the context is full .*n_ctx=8"):
        ctx.decode([1])
    ctx.reset()
    with pytest.raises(GGraphError, match="the prompt needs 9 positions .*n_ctx=8 .*prompt too long"):
        ctx.decode(list(range(9)))


# ----------------------------------------------------------------------------------------- CLI
def test_cli_prompt_file_is_read_as_bytes(tiny_llama_path, tmp_path):
    """CLI 1: -f on a file that is not valid UTF-8 was a UnicodeDecodeError traceback."""
    p = tmp_path / "prompt.txt"
    p.write_bytes(b"The cat \xff\xfe sat \xc3")
    code, out, err = run_cli("run", "-m", tiny_llama_path, "-f", str(p), "-n", "3", "-c", "64", "-t", "1")
    assert code == 0 and "Traceback" not in err, err


def test_cli_prompt_from_stdin(tiny_llama_path, tiny):
    """CLI 2: `-f -` reads the prompt from stdin."""
    code, out, err = run_cli("run", "-m", tiny_llama_path, "-f", "-", "-n", "3", "-c", "64", "-t", "1",
                             stdin=b"The cat sat")
    assert code == 0, err
    assert f"/ {len(tiny.tokenize('The cat sat')):5d} tokens" in err      # the prompt eval line


def test_cli_bench_zero_repetitions(tiny_llama_path):
    """CLI 3: bench -r 0 was a StatisticsError traceback."""
    code, _, err = run_cli("bench", "-m", tiny_llama_path, "-r", "0")
    assert_one_error_line(code, err, "repetitions")


def test_cli_n_predict_semantics(tiny_llama_path):
    """CLI 4: -n -5 ran forever; llama.cpp: -1 infinite, -2 until the context is full."""
    code, _, err = run_cli("run", "-m", tiny_llama_path, "-p", "hi", "-n", "-5")
    assert_one_error_line(code, err, "-n/--n-predict must be >= -2", "got -5")
    code, _, err = run_cli("run", "-m", tiny_llama_path, "-p", "The cat", "-n", "-2", "-c", "24", "-t", "1")
    assert code == 0, err


def test_cli_usage_error_is_one_line():
    code, _, err = run_cli("info", "x.gguf", "--no-such-flag")
    assert_one_error_line(code, err, "unrecognized arguments", status=2)
    assert "usage:" not in err


def test_cli_unexpected_exception_is_one_line(monkeypatch, capsys):
    from ggraph.runtime.apps import cli

    def boom(args):
        raise ValueError("something\nbroke")
    monkeypatch.setitem(cli.COMMANDS, "info", boom)
    monkeypatch.delenv("GGRAPH_DEBUG", raising=False)
    assert cli.main(["info", "x.gguf"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: internal error: ValueError: something broke")


# ----------------------------------------------------------------------------------------- bytes
def test_tokenize_bytes_like_str(tiny):
    """Bytes 1: tokenize refused bytes; valid UTF-8 bytes now tokenize as their str."""
    for s in ("The cat sat", "caf\u00e9 \U0001f600", "", " two  spaces"):
        assert tiny.tokenize(s.encode()) == tiny.tokenize(s)
        assert tiny.tokenize(bytearray(s.encode()), add_special=False) == tiny.tokenize(s, add_special=False)


def test_bpe_invalid_utf8_is_read_as_llama_cpp(tiny):
    """unicode_cpts_from_utf8: a byte that starts no well-formed sequence is one U+FFFD; surrogates and
    overlong forms are kept as code points (measured against llama.cpp 0.3.36's tokenizer)."""
    v = tiny.vocab
    assert v.tokenize(b"a\xffb", add_special=False) == v.tokenize("a\ufffdb", add_special=False)
    assert v.tokenize(b"\xe2\x82x", add_special=False) == v.tokenize("\ufffd\ufffdx", add_special=False)
    assert tiny.detokenize(tiny.tokenize(b"\xed\xa0\x80x"), as_bytes=True) == b"\xed\xa0\x80x"
    assert tiny.detokenize(tiny.tokenize(b"\xc0\x80"), as_bytes=True) == b"\x00"
    assert tiny.detokenize(tiny.tokenize(b"\xf7\xbf\xbf\xbf"), as_bytes=True) == "\ufffd".encode()   # llama.cpp aborts


def test_spm_bytes_round_trip_through_byte_fallback(tmp_path):
    """SPM keeps raw bytes (unicode_len_utf8 symbols, <0xXX> byte fallback): any bytes round-trip."""
    from ggraph.gguf_file import GGUFFile
    from ggraph.runtime.text import Vocab
    path = fz.make_bases(str(tmp_path))["spm-f32"]
    v = Vocab.from_gguf(GGUFFile(path))
    for data in (b"the cat\xff\xfe", b"\xe2(\xc3\xa9", b"\xed\xa0\x80", b"a\x80b\xc3", b"x \x80 y", bytes(range(256))):
        ids = v.tokenize(data, add_special=False)
        assert v.detokenize_bytes(ids) == data
    assert v.detokenize(v.tokenize(b"\xffx", add_special=False)) == "\ufffdx"


def test_detokenize_can_return_bytes(tiny):
    ids = tiny.tokenize(b"caf\xc3\xa9", add_special=False)
    piece = tiny.token_to_piece(ids[-1])
    assert isinstance(piece, bytes)
    assert tiny.detokenize(ids, as_bytes=True) == tiny.detokenize_bytes(ids) == b"caf\xc3\xa9"
    assert tiny.detokenize(ids) == "caf\u00e9"


def test_bytes_without_a_token_are_dropped_with_a_debug_log(caplog):
    """SmolLM2's vocabulary has no token for 21 bytes: llama.cpp drops them, so does ggraph, and says so."""
    from ggraph.runtime.text import Vocab
    from ggraph.runtime.text.pretokenize import bytes_to_unicode
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256) if b != 0x01]
    v = Vocab.from_gguf({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.tokens": tokens,
                         "tokenizer.ggml.token_type": [1] * len(tokens), "tokenizer.ggml.merges": []})
    with caplog.at_level(logging.DEBUG, logger="ggraph.text"):
        ids = v.tokenize(b"a\x01b", add_special=False)
    assert v.detokenize_bytes(ids) == b"ab"
    assert "no token for bytes 01" in caplog.text and "dropped" in caplog.text


@pytest.mark.parametrize("kind", ["bpe", "spm"])
def test_tokenize_matches_llama_cpp_on_invalid_bytes(tiny_llama_path, tmp_path, kind):
    """The same ids as llama.cpp for bytes that are not UTF-8 (BPE: lenient decoding; SPM: raw bytes,
    where a lead byte swallows what follows, spaces included)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from ggraph.gguf_file import GGUFFile
    from ggraph.runtime.text import Vocab
    path = tiny_llama_path if kind == "bpe" else fz.make_bases(str(tmp_path))["spm-f32"]
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    v = Vocab.from_gguf(GGUFFile(path))
    for data in (b"\xff\xfeab", b"a\x80b", b"caf\xc3", b"\xe2\x82x\xc3(\xa9", b"\xed\xa0\x80x", b"\xc0\x80z",
                 b"the cat \xff\xfe sat", b"\xf0 the", bytes(range(128, 256))):
        assert v.tokenize(data, add_special=False) == llm.tokenize(data, add_bos=False, special=False), data
