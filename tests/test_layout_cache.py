"""16-row copies are written once to the cache folder and memory-mapped on the next load."""
import numpy as np

from ggraph.runtime import layout_cache


def test_second_load_maps_the_copy_written_by_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("GGRAPH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GGRAPH_NO_LAYOUT_CACHE", raising=False)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x")
    raw = np.arange(64, dtype=np.uint8).reshape(4, 16)
    calls = []

    def layout(a):
        calls.append(1)
        return a[::-1].copy()

    first = layout_cache.cached_layout(str(gguf), "t", "v1", raw, layout)
    second = layout_cache.cached_layout(str(gguf), "t", "v1", raw, layout)
    assert len(calls) == 1 and isinstance(second, np.memmap)
    assert np.array_equal(first, raw[::-1]) and np.array_equal(second, first)
    layout_cache.cached_layout(str(gguf), "t", "v2", raw, layout)        # another layout version
    assert len(calls) == 2


def test_without_a_file_or_with_the_cache_off_copies_stay_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("GGRAPH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x")
    raw = np.zeros((2, 2), np.uint8)
    monkeypatch.delenv("GGRAPH_NO_LAYOUT_CACHE", raising=False)
    assert layout_cache.cached_layout(None, "t", "v1", raw, lambda a: a + 1).sum() == 4
    monkeypatch.setenv("GGRAPH_NO_LAYOUT_CACHE", "1")
    assert layout_cache.cached_layout(str(gguf), "t", "v1", raw, lambda a: a + 1).sum() == 4
    assert not (tmp_path / "cache" / "layouts").exists()
