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


CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="session")
def tiny_chat_path(tmp_path_factory) -> str:
    """The tiny llama with a ChatML tokenizer.chat_template (make_tiny_llama writes none)."""
    mod = load_script("make_tiny_llama")
    plain = mod.add_tokenizer

    def with_template(w, *args):
        plain(w, *args)
        w.add_chat_template(CHATML)

    mod.add_tokenizer = with_template
    return mod.make(str(tmp_path_factory.mktemp("tiny_chat") / "tiny-chat.gguf"), "F32", 0, "tiny")
