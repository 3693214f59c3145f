"""llama.cpp's logits with a window-sized SWA cache (swa_full=False) on tests/test_swa_window.py's tiny
gemma2 (a 160-token window, 32-token ubatches, 700 prompt tokens, then 20 greedy steps): the top-32
logits of the last 60 prompt rows and of every step, for the suite to check without llama-cpp-python.

    python scripts/make_swa_window_fixture.py      # writes tests/fixtures/llamacpp_swa_window.npz
"""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

N_CTX, N_UBATCH, WINDOW, N_PROMPT, N_ROWS, N_STEPS, TOP = 1024, 32, 160, 700, 60, 20, 32


def make_model(path):
    from conftest import load_script
    return load_script("make_tiny_model").make(path, "gemma2", "F32", 0, keys={"attention.sliding_window": WINDOW})


def prompt(n_vocab):
    return np.random.default_rng(0).integers(1, n_vocab, N_PROMPT)


def top(rows):
    idx = np.argsort(-rows, axis=1, kind="stable")[:, :TOP].astype(np.int32)
    return idx, np.take_along_axis(rows, idx, axis=1).astype(np.float32)


def main():
    import tempfile

    import llama_cpp
    path = make_model(os.path.join(tempfile.mkdtemp(), "g2w.gguf"))
    llm = llama_cpp.Llama(model_path=path, n_ctx=N_CTX, n_batch=512, n_ubatch=N_UBATCH, swa_full=False,
                          logits_all=True, verbose=False, n_threads=2, flash_attn=False)
    ids = prompt(llm.n_vocab()).tolist()
    llm.eval(ids)
    rows = [np.array(llm.scores[N_PROMPT - N_ROWS:N_PROMPT])]
    toks, tok = [], int(np.argmax(llm.scores[N_PROMPT - 1]))
    for _ in range(N_STEPS):
        toks.append(tok)
        llm.eval([tok])
        row = np.array(llm.scores[llm.n_tokens - 1])
        rows.append(row[None])
        tok = int(row.argmax())
    idx, val = top(np.concatenate(rows))
    out = os.path.join(ROOT, "tests", "fixtures", "llamacpp_swa_window.npz")
    np.savez_compressed(out, steps=np.array(toks, np.int32), top_idx=idx, top_val=val,
                        source=np.array(f"llama-cpp-python {llama_cpp.__version__}, swa_full=False"))
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
