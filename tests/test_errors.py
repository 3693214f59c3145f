"""Bad input gives one clear error line naming the problem: from the API a GGraphError, from the
CLI `error: ...` on stderr with exit status 1 and no traceback."""
import os
import subprocess
import sys

import pytest
from gguf import GGUFWriter

import ggraph
from ggraph.errors import GGraphError


def run_cli(*args):
    r = subprocess.run([sys.executable, "-m", "ggraph", *args], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def assert_one_error_line(code, err, *needles):
    assert code == 1, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture
def truncated(tiny_llama_path, tmp_path):
    data = open(tiny_llama_path, "rb").read()
    p = tmp_path / "truncated.gguf"
    p.write_bytes(data[: len(data) // 2])
    return str(p)


@pytest.fixture
def not_gguf(tmp_path):
    p = tmp_path / "notes.gguf"
    p.write_text("this is not a model\n" * 10)
    return str(p)


@pytest.fixture
def unknown_arch(tmp_path):
    p = str(tmp_path / "mamba9.gguf")
    w = GGUFWriter(p, "mamba9")
    w.add_block_count(1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p


def test_truncated_gguf(truncated):
    with pytest.raises(GGraphError, match="truncated"):
        ggraph.load(truncated)
    code, _, err = run_cli("info", truncated)
    assert_one_error_line(code, err, "truncated")


def test_not_a_gguf(not_gguf):
    with pytest.raises(GGraphError, match="not a GGUF file"):
        ggraph.load(not_gguf)
    code, _, err = run_cli("info", not_gguf)
    assert_one_error_line(code, err, "not a GGUF file")


def test_missing_file(tmp_path):
    code, _, err = run_cli("info", str(tmp_path / "nope.gguf"))
    assert_one_error_line(code, err, "not found")


def test_unknown_architecture(unknown_arch):
    with pytest.raises(GGraphError, match="unknown model architecture 'mamba9'.*llama"):
        ggraph.load(unknown_arch)
    code, _, err = run_cli("info", unknown_arch)
    assert_one_error_line(code, err, "mamba9", "known: ")


def test_prompt_longer_than_context(tiny_llama_path):
    m = ggraph.load(tiny_llama_path)
    ctx = m.new_context(n_ctx=8, n_threads=1)
    with pytest.raises(GGraphError, match="n_ctx=8"):
        ctx.decode(list(range(20)))
    code, _, err = run_cli("run", "-m", tiny_llama_path, "-c", "8", "-n", "4", "-p", "a long prompt " * 10)
    assert_one_error_line(code, err, "n_ctx=8", "prompt")


def test_bad_threads_and_context_values(tiny_llama_path):
    m = ggraph.load(tiny_llama_path)
    with pytest.raises(GGraphError, match="n_threads must be between 1 and"):
        m.new_context(n_ctx=16, n_threads=0)
    with pytest.raises(GGraphError, match="n_ctx must be a positive"):
        m.new_context(n_ctx=0)
    code, _, err = run_cli("run", "-m", tiny_llama_path, "-t", "0", "-n", "2", "-p", "hi")
    assert_one_error_line(code, err, "n_threads")


def test_bad_sampler_value(tiny_llama_path):
    code, _, err = run_cli("run", "-m", tiny_llama_path, "--top-p", "1.5", "-n", "2", "-p", "hi")
    assert_one_error_line(code, err, "top_p")


def test_token_id_outside_vocab(tiny_llama_path):
    m = ggraph.load(tiny_llama_path)
    ctx = m.new_context(n_ctx=16, n_threads=1)
    with pytest.raises(GGraphError, match="outside the vocabulary"):
        ctx.decode([1, m.n_vocab + 5])
    assert os.path.exists(tiny_llama_path)


@pytest.mark.parametrize("args, needle", [(("-r", "0"), "repetitions"), (("-p", "0", "-n", "0"), "not both 0"),
                                          (("-d", "-5"), "n-depth")])
def test_bench_rejects_bad_arguments(tiny_llama_path, args, needle):
    code, _, err = run_cli("bench", "-m", tiny_llama_path, *args)
    assert_one_error_line(code, err, needle)


def test_bench_table_rows_and_depth(tiny_llama_path):
    """llama-bench's table: one row per test, depth tests marked '@ d<D>', mean +- std of positive t/s."""
    import io

    from ggraph.runtime.apps.bench import bench
    out = io.StringIO()
    rows = bench(ggraph.load(tiny_llama_path), n_prompt=8, n_gen=4, reps=2, n_threads=1, depths=(0, 20),
                 out=out, progress=None)
    assert [r["test"] for r in rows] == ["pp8", "tg4", "pp8 @ d20", "tg4 @ d20"]
    assert all(len(r["samples_ts"]) == 2 and min(r["samples_ts"]) > 0 for r in rows)
    lines = out.getvalue().strip().splitlines()
    assert lines[0] == "| model | size | params | backend | threads | test | t/s |" and len(lines) == 6
    assert "| pp8 @ d20 |" in lines[4] and "±" in lines[4]


def test_bench_profile_counts_every_op_of_a_step(tiny_llama_path):
    """--profile: per token of tg, each layer's ops appear once per layer (the tiny llama's n_layer),
    the attention products by name, and the op times stay within the measured step time."""
    import io

    from ggraph.runtime.apps.bench import bench
    m = ggraph.load(tiny_llama_path)
    out = io.StringIO()
    rows = bench(m, n_prompt=0, n_gen=4, reps=2, n_threads=1, out=out, progress=None, profile=True)
    prof = rows[0]["profile"]
    n_layer = m.hp.n_layer
    # attn_norm, ffn_norm per layer, output norm: each rms_norm fused with its weight (runtime/fusion.py)
    assert prof["rms_norm_mul"][1] == n_layer * 2 + 1 and "rms_norm" not in prof
    assert prof["mul_mat kq"][1] == n_layer and prof["mul_mat kqv"][1] == n_layer
    assert sum(ms for ms, _ in prof.values()) <= 1e3 / min(rows[0]["samples_ts"]) * 1.05
    assert "profile tg4 (ggraph)" in out.getvalue() and "| mul_mat kq |" in out.getvalue()
