"""Shared fixtures: a tiny random llama GGUF made by the committed script, and the real default
models (pulled into the cache on first use; those tests are marked slow)."""
from __future__ import annotations

import importlib.util
import os

import pytest

# No compile helper processes beside the suite's own compiling (test_compile_helper.py runs one).
os.environ.setdefault("GGRAPH_NO_COMPILE_HELPER", "1")
# The many temporary tiny models would each leave 16-row weight copies in the user's cache folder.
os.environ.setdefault("GGRAPH_NO_LAYOUT_CACHE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory) -> str:
    """The tiny F32 llama of scripts/make_tiny_llama.py (deterministic: the llama.cpp fixture
    tests/fixtures/llamacpp_tiny_f32.npz was made from the same file)."""
    path = str(tmp_path_factory.mktemp("tiny") / "tiny-f32.gguf")
    return load_script("make_tiny_llama").make(path, "F32", 0)


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    from ggraph.runtime.apps.pull import pull
    return pull("smollm2", quiet=True)


@pytest.fixture(scope="session")
def gemma3_path() -> str:
    from ggraph.runtime.apps.pull import pull
    return pull("gemma3", quiet=True)


@pytest.fixture(scope="session")
def smollm2_model(smollm2_path):
    import ggraph
    return ggraph.load(smollm2_path)
