"""`ggraph embed`: llama.cpp's llama-embedding (examples/embedding/embedding.cpp) on ggraph.

    ggraph embed [-m MODEL] (-p TEXT | -f FILE) [--pooling none|mean|cls|last] [--embd-normalize N]
                 [--embd-output-format json|json+|array|raw] [--json] [--embd-separator SEP]

The prompt is split into inputs at each separator (default: a newline); each is tokenized with the
model's BOS/EOS and special tokens parsed (common_tokenize(ctx, prompt, true, true)). Inputs are
decoded together in batches of n_batch tokens (n_batch = n_ctx, as llama-embedding sets it) and
at most 256 inputs; pooling defaults to the model's (GGUF <arch>.pooling_type, else none: one
embedding per token). Each embedding is normalised (--embd-normalize: -1 none, 0 max absolute
int16, 1 taxicab, 2 euclidean (default), >2 p-norm) and printed as llama-embedding prints it:
without a format, "embedding N: " and values (%9.6f; %6.0f when normalised to int16), a cosine
similarity matrix for several pooled inputs; json is OpenAI's list, json+ adds the matrix, array a
JSON array of arrays, raw one embedding per line. Values agree with llama.cpp's bit for bit
(runtime/embeddings.py, docs/embeddings.md).
"""
from __future__ import annotations

import sys

from ggraph.errors import GGraphError


def add_parser(sub, add_model_arg, add_ctx_args) -> None:
    p = sub.add_parser("embed", help="embeddings of a text, one input per line (like llama-embedding)")
    add_model_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-p", "--prompt", help="text to embed; each line (--embd-separator) is one input")
    src.add_argument("-f", "--file", help="read the text from a file ('-': stdin)")
    add_ctx_args(p)
    p.add_argument("--pooling", choices=("none", "mean", "cls", "last"), default=None,
                   help="pooling type for embeddings (default: the model's, GGUF <arch>.pooling_type, else none)")
    p.add_argument("--embd-normalize", type=int, default=2, metavar="N",
                   help="normalisation for embeddings (default: 2) (-1=none, 0=max absolute int16, 1=taxicab, "
                        "2=euclidean, >2=p-norm)")
    p.add_argument("--embd-output-format", default="", metavar="FORMAT", choices=("", "json", "json+", "array", "raw"),
                   help='empty = default, "array" = [[],[]...], "json" = openai style, "json+" = same "json" + '
                        'cosine similarity matrix, "raw" = plain whitespace-delimited output (one embedding per line)')
    p.add_argument("--json", action="store_true", help='same as --embd-output-format json')
    p.add_argument("--embd-separator", default="\n", metavar="STRING",
                   help='separator of inputs (default: a newline), for example "<#sep#>"')


def similarity_cos(a, b) -> float:
    """common_embd_similarity_cos: float products summed in double (in order), returned as float."""
    import math

    import numpy as np
    s = s1 = s2 = 0.0
    for x, y, z in zip((a * b).tolist(), (a * a).tolist(), (b * b).tolist()):
        s += x
        s1 += y
        s2 += z
    if s1 == 0.0 or s2 == 0.0:
        return 1.0 if s1 == 0.0 and s2 == 0.0 else 0.0
    return float(np.float32(s / (math.sqrt(s1) * math.sqrt(s2))))


def _read(args) -> str:
    if args.prompt is not None:
        return args.prompt
    try:
        if args.file == "-":
            return sys.stdin.buffer.read().decode("utf-8", errors="replace")
        with open(args.file, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except OSError as e:
        raise GGraphError(f"cannot read prompt file: {e}") from None


def _fmt(v: float, norm: int) -> str:
    return f"{v:1.0f}" if norm == 0 else f"{v:1.7f}"


def cmd_embed(args, load) -> int:
    import numpy as np

    from .. import embeddings as E
    fmt = "json" if args.json else args.embd_output_format
    if args.embd_normalize < -1:
        raise GGraphError(f"--embd-normalize must be >= -1, got {args.embd_normalize}")
    if not args.embd_separator:
        raise GGraphError("--embd-separator must not be empty")
    text = _read(args)
    model = load(args.model)
    n_ctx = args.ctx_size or model.hp.n_ctx_train
    n_batch = max(args.batch_size, n_ctx)                    # llama-embedding: "utilize the full context"
    emb = E.Embedder(model, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=args.ubatch_size, n_threads=args.threads,
                     pooling=args.pooling)
    prompts = text.split(args.embd_separator)
    inputs = [model.tokenize(p, add_special=True, parse_special=True) for p in prompts]
    for i, ids in enumerate(inputs):
        if not ids:
            raise GGraphError(f"input {i} is empty (and the model adds no BOS)")
        if len(ids) > n_batch:
            raise GGraphError(f"number of tokens in input line ({len(ids)}) exceeds batch size ({n_batch}), "
                              "increase batch size and re-run")
    print(f"ggraph embed: {len(prompts)} input(s), {sum(map(len, inputs))} tokens, pooling "
          f"{E.pooling_name(emb.pooling)}, normalisation {args.embd_normalize}", file=sys.stderr)
    vecs = emb.embed(inputs)
    if emb.pooling == E.NONE:
        rows = [r for v in vecs for r in v]
    else:
        rows = list(vecs)
    out = np.stack([E.normalize(r, args.embd_normalize) for r in rows])
    w = sys.stdout.write
    norm = args.embd_normalize
    n_embd = out.shape[1]
    if fmt == "":
        cell = (lambda x: f"{x:6.0f} ") if norm == 0 else (lambda x: f"{x:9.6f} ")
        w("\n")
        if emb.pooling == E.NONE:
            for j, r in enumerate(out):
                w(f"embedding {j}: " + "".join(cell(x) for x in r[:min(3, n_embd)].tolist()) + " ... "
                  + "".join(cell(x) for x in r[n_embd - 3:].tolist()) + "\n")
        else:
            k = min(16, n_embd) if len(prompts) > 1 else n_embd
            for j, r in enumerate(out):
                w(f"embedding {j}: " + "".join(cell(x) for x in r[:k].tolist()) + "\n")
            if len(prompts) > 1:
                w("\ncosine similarity matrix:\n\n")
                w("".join(f"{p[:6]:>6s} " for p in prompts) + "\n")
                for i in range(len(prompts)):
                    w("".join(f"{similarity_cos(out[i], out[j]):6.2f} " for j in range(len(prompts)))
                      + prompts[i][:10] + "\n")
    elif fmt in ("json", "json+", "array"):
        obj = fmt != "array"
        w("{\n  \"object\": \"list\",\n  \"data\": [\n" if obj else "[")
        for j, r in enumerate(out):
            if obj:
                w(f"    {{\n      \"object\": \"embedding\",\n      \"index\": {j},\n      \"embedding\": ")
            w("[" + ",".join(_fmt(x, norm) for x in r.tolist()) + "]")
            if obj:
                w("\n    }")
            if j + 1 < len(out):
                w(",\n" if obj else ",")
        w("\n  ]" if obj else "]\n")
        if fmt == "json+" and len(prompts) > 1:
            w(",\n  \"cosineSimilarity\": [\n")
            w(",\n".join("    [" + ", ".join(f"{similarity_cos(out[i], out[j]):6.2f}" for j in range(len(out))) + " ]"
                         for i in range(len(out))))
            w("\n  ]")
        if obj:
            w("\n}\n")
    else:                                                  # raw
        for r in out:
            w(" ".join(_fmt(x, norm) for x in r.tolist()) + "\n")
    sys.stdout.flush()
    return 0
