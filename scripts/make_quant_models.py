#!/usr/bin/env python3
"""Quantize the 'wide' tiny llama (scripts/make_tiny_llama.py --config wide, rows of 256) into every
weight format with llama.cpp's own quantizer (llama-cpp-python's llama_model_quantize, --pure so
every matrix gets the format), then write llama.cpp reference fixtures for each.

    python scripts/make_quant_models.py OUT_DIR [--formats Q4_K Q6_K ...] [--fixtures tests/fixtures/quant]
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

FORMATS = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
           "IQ4_NL", "IQ4_XS"]
FTYPE_NAME = {"Q2_K": "Q2_K", "Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}   # pure => one type


def quantize(src: str, dst: str, fmt: str) -> str:
    import llama_cpp as lc
    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{FTYPE_NAME.get(fmt, fmt)}")
    params.pure = True
    params.nthread = 2
    if lc.llama_model_quantize(src.encode(), dst.encode(), params) != 0:
        raise RuntimeError(f"llama_model_quantize failed for {fmt}")
    return dst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--formats", nargs="*", default=FORMATS)
    ap.add_argument("--fixtures", default=None, help="also write llama.cpp fixtures here")
    ap.add_argument("--commit-models", default=None,
                    help="copy the formats gguf-py cannot quantize (K-quants, IQ4) here, for tests")
    a = ap.parse_args()
    from make_llamacpp_fixtures import run as make_fixture
    from make_tiny_llama import FILE_TYPES, make
    os.makedirs(a.out_dir, exist_ok=True)
    src = make(os.path.join(a.out_dir, "wide-F32.gguf"), "F32", 0, "wide")
    for fmt in a.formats:
        dst = quantize(src, os.path.join(a.out_dir, f"wide-{fmt}.gguf"), fmt)
        print(f"{fmt}: {dst} ({os.path.getsize(dst) / 1e6:.2f} MB)")
        if a.commit_models and fmt not in FILE_TYPES:     # not reproducible in Python: keep the file
            import shutil
            os.makedirs(a.commit_models, exist_ok=True)
            shutil.copy(dst, os.path.join(a.commit_models, os.path.basename(dst)))
        if a.fixtures:
            os.makedirs(a.fixtures, exist_ok=True)
            make_fixture(dst, os.path.join(a.fixtures, f"llamacpp_wide_{fmt}.npz"), top_k=16, n_gen=16, n_prompts=8)


if __name__ == "__main__":
    main()
