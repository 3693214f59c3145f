"""`ggraph compare`: ggraph against llama.cpp (llama-cpp-python, the `compare` extra) on the same GGUF,
prompt and context settings: F16 KV cache, flash attention off, the prompt in one batch (n_batch =
n_ubatch >= the prompt), the same threads and n_ctx.

Logits mode (default), per prompt: tokenization match (on a mismatch both sides run llama.cpp's
ids), then over the prompt positions (one batch, logits at every position) per-position top-1
agreement, KL divergence (llama.cpp as P, full vocabulary, float64) mean and max, max |logit
difference| and the number of bit-identical logit rows; then both continue greedily for -n tokens
(argmax, one token per step, end-of-generation tokens not special), and the one-token decode steps
whose inputs are still the same on both sides are measured the same way; the continuations are
shown side by side with the first diverging token marked [[like this]].

Tensor mode (--tensors, --decode): runtime/apps/tensors.py.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import numpy as np

from ggraph.errors import GGraphError

INSTALL_HINT = 'ggraph compare needs llama-cpp-python: pip install "ggraph[compare]"'
KV_PAD = 256


def import_llama_cpp():
    """The llama_cpp module, or None when llama-cpp-python is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return None
    return llama_cpp


# -- measures ---------------------------------------------------------------------------------

def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))


def kl_full(ref: np.ndarray, ours: np.ndarray) -> np.ndarray:
    """Per-row KL(P_ref || Q_ours) over the full vocabulary, in float64."""
    lp, lq = log_softmax(ref), log_softmax(ours)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def logit_stats(ref: np.ndarray, ours: np.ndarray) -> dict:
    """Agreement of two [rows, n_vocab] float32 logit arrays, llama.cpp's as ref."""
    ref, ours = np.atleast_2d(ref), np.atleast_2d(ours)
    n = int(ref.shape[0])
    if n == 0:
        return {"n": 0, "top1": None, "n_top1": 0, "mean_kl": None, "max_kl": None, "max_abs_diff": None,
                "identical_rows": 0, "kl": []}
    kl = kl_full(ref, ours)
    top1 = ref.argmax(1) == ours.argmax(1)
    same = (np.ascontiguousarray(ref, np.float32).view(np.uint32) ==
            np.ascontiguousarray(ours, np.float32).view(np.uint32)).all(1)
    return {"n": n, "top1": float(top1.mean()), "n_top1": int(top1.sum()), "mean_kl": float(kl.mean()),
            "max_kl": float(kl.max()), "max_abs_diff": float(np.abs(ref.astype(np.float64) - ours).max()),
            "identical_rows": int(same.sum()), "kl": [float(x) for x in kl]}


def _rows(rows: list, n_vocab: int) -> np.ndarray:
    return np.array(rows, np.float32).reshape(len(rows), n_vocab)


def first_difference(a: list, b: list) -> int | None:
    """Index of the first differing element (or of the end of the shorter list), None if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


# -- the two runs -----------------------------------------------------------------------------

@dataclass
class Settings:
    n_ctx: int
    n_ubatch: int
    n_threads: int
    n_predict: int


def settings_for(lengths: list[int], n_predict: int, n_ctx: int | None, n_threads: int | None) -> Settings:
    """n_ctx: given, or the longest prompt plus n_predict rounded up to 256 (at least 512); the
    batch holds the longest prompt (prompt in one batch)."""
    import numba
    longest = max(lengths)
    need = longest + n_predict
    if n_ctx is None:
        n_ctx = max(512, -(-need // KV_PAD) * KV_PAD)
    elif need > n_ctx:
        raise GGraphError(f"the longest prompt ({longest} tokens) plus -n {n_predict} needs {need} positions "
                          f"but -c is {n_ctx}: raise -c or shorten the prompt")
    n_threads = n_threads if n_threads is not None else numba.config.NUMBA_NUM_THREADS
    return Settings(n_ctx, min(n_ctx, max(512, longest)), n_threads, n_predict)


def llamacpp_greedy(llm, ids: list[int], n_gen: int, token_by_token: bool = False):
    """llama.cpp: the prompt (one batch, or one token per step), then n_gen greedy tokens one per
    step. Returns (prompt logits [len(ids), n_vocab], generated ids, logits of the decode steps)."""
    llm.reset()
    if token_by_token:
        for t in ids:
            llm.eval([t])
    else:
        llm.eval(ids)
    logits = np.array(llm.scores[:len(ids)], dtype=np.float32)
    gen, steps = [], []
    row = logits[-1]
    for _ in range(n_gen):
        tok = int(np.argmax(row))
        gen.append(tok)
        if len(gen) == n_gen:
            break
        llm.eval([tok])
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        steps.append(row)
    return logits, gen, steps


def ggraph_greedy(ctx, ids: list[int], n_gen: int):
    """ggraph, the same recipe: prompt in one batch (logits at every position), then greedy."""
    ctx.reset()
    logits = ctx.decode(ids, logits_all=True)
    gen, steps = [], []
    row = logits[-1]
    for _ in range(n_gen):
        tok = int(np.argmax(row))
        gen.append(tok)
        if len(gen) == n_gen:
            break
        row = ctx.decode([tok])
        steps.append(row)
    return logits, gen, steps


def new_llama(llama_cpp, path: str, st: Settings, logits_all: bool = True):
    try:
        return llama_cpp.Llama(model_path=path, n_ctx=st.n_ctx, n_batch=st.n_ubatch, n_ubatch=st.n_ubatch,
                               logits_all=logits_all, flash_attn=False, n_threads=st.n_threads,
                               n_threads_batch=st.n_threads, verbose=False)
    except (ValueError, RuntimeError) as e:
        raise GGraphError(f"llama.cpp could not load {path}: {e}") from None


def llamacpp_tokenize(llm, text: str) -> list[int]:
    return list(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))


def compare_prompt(llm, model, ctx, text: str, n_gen: int, self_spread: bool = False,
                   ids_ref: list[int] | None = None) -> dict:
    """One prompt on both sides; the result dict of `ggraph compare --json` (per prompt)."""
    ours_ids = model.tokenize(text, add_special=True, parse_special=False)
    ref_ids = ids_ref if ids_ref is not None else llamacpp_tokenize(llm, text)
    if not ref_ids:
        raise GGraphError("the prompt is empty (no tokens)")
    tok_diff = first_difference(ours_ids, ref_ids)
    ref, ref_gen, ref_steps = llamacpp_greedy(llm, ref_ids, n_gen)
    ours, our_gen, our_steps = ggraph_greedy(ctx, ref_ids, n_gen)
    div = first_difference(our_gen, ref_gen)
    # decode step i (logits of generated token i + 1) saw the same inputs on both sides while
    # the tokens generated before it agree: steps 0 .. div - 1
    k = len(ref_steps) if div is None else min(div, len(ref_steps))
    res = {
        "prompt": text, "n_tokens": len(ref_ids),
        "tokens": {"match": tok_diff is None, "first_difference": tok_diff, "ggraph": ours_ids,
                   "llama_cpp": ref_ids},
        "prompt_logits": logit_stats(ref, ours),
        "decode_logits": logit_stats(_rows(ref_steps[:k], ref.shape[1]), _rows(our_steps[:k], ref.shape[1])),
        "continuation": {"n": n_gen, "identical": div is None, "first_difference": div,
                         "ggraph": our_gen, "llama_cpp": ref_gen,
                         "ggraph_text": _text(model, our_gen), "llama_cpp_text": _text(model, ref_gen)},
    }
    if self_spread:
        tok, tok_gen, _ = llamacpp_greedy(llm, ref_ids, n_gen, token_by_token=True)
        s = logit_stats(ref, tok)
        s["identical_continuation"] = tok_gen == ref_gen
        res["llama_cpp_token_by_token"] = s
    return res


def summarise(results: list[dict]) -> dict:
    def pool(key):
        kl = [x for r in results for x in r[key]["kl"]]
        n = sum(r[key]["n"] for r in results)
        diffs = [r[key]["max_abs_diff"] for r in results if r[key]["n"]]
        return {"n": n, "top1": (sum(r[key]["n_top1"] for r in results) / n) if n else None,
                "mean_kl": float(np.mean(kl)) if kl else None, "max_kl": float(np.max(kl)) if kl else None,
                "max_abs_diff": max(diffs) if diffs else None,
                "identical_rows": sum(r[key]["identical_rows"] for r in results)}
    out = {"n_prompts": len(results), "tokenization_match": sum(r["tokens"]["match"] for r in results),
           "prompt_logits": pool("prompt_logits"), "decode_logits": pool("decode_logits"),
           "identical_continuations": sum(r["continuation"]["identical"] for r in results)}
    if results and "llama_cpp_token_by_token" in results[0]:
        out["llama_cpp_token_by_token"] = pool("llama_cpp_token_by_token")
        out["llama_cpp_token_by_token"]["identical_continuations"] = sum(
            r["llama_cpp_token_by_token"]["identical_continuation"] for r in results)
    return out


# -- text output --------------------------------------------------------------------------------

def _text(model, ids) -> str:
    return b"".join(model.token_to_piece(int(i)) for i in ids).decode("utf-8", "replace")


def _piece(model, tok: int) -> str:
    """A token's piece as a quoted string, bytes that are not UTF-8 shown as escapes."""
    s = model.token_to_piece(int(tok)).decode("utf-8", "backslashreplace")
    return "'" + s.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "'"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _marked(model, gen: list[int], k: int | None) -> str:
    if k is None:
        return _esc(_text(model, gen))
    if k >= len(gen):
        return _esc(_text(model, gen)) + "[[<end>]]"
    return _esc(_text(model, gen[:k])) + "[[" + _esc(_text(model, gen[k:k + 1])) + "]]" + _esc(_text(model, gen[k + 1:]))


def _g(x) -> str:
    if x is None:
        return "-"
    return "0" if x == 0 else f"{x:.3g}"


def _stats_line(s: dict) -> str:
    if not s["n"]:
        return "none"
    return (f"top-1 {s['top1']:.4f}, KL mean {_g(s['mean_kl'])} max {_g(s['max_kl'])}, "
            f"max |logit diff| {_g(s['max_abs_diff'])}, bit-identical rows {s['identical_rows']}/{s['n']}")


def format_prompt(model, r: dict) -> list[str]:
    t, c = r["tokens"], r["continuation"]
    if t["match"]:
        tok = f"identical ({r['n_tokens']} tokens)"
    else:
        i = t["first_difference"]
        tok = (f"DIFFERENT from token {i} (ggraph {t['ggraph'][i:i + 3]}, llama.cpp {t['llama_cpp'][i:i + 3]}); "
               f"both sides run llama.cpp's {r['n_tokens']} ids")
    lines = [f"prompt: \"{_esc(r['prompt'][:200])}\"{' ...' if len(r['prompt']) > 200 else ''}",
             f"  tokenization       {tok}",
             f"  prompt logits      {r['prompt_logits']['n']} positions: {_stats_line(r['prompt_logits'])}",
             f"  decode logits      {r['decode_logits']['n']} steps with the same inputs: {_stats_line(r['decode_logits'])}"]
    if "llama_cpp_token_by_token" in r:
        s = r["llama_cpp_token_by_token"]
        lines.append(f"  llama.cpp itself   prompt token by token vs one batch: {_stats_line(s)}, "
                     f"continuation {'identical' if s['identical_continuation'] else 'differs'}")
    if c["n"]:
        k = c["first_difference"]
        head = "identical" if k is None else f"first difference at generated token {k}"
        lines.append(f"  greedy continuation ({c['n']} tokens): {head}")
        lines.append(f"    ggraph   : {_marked(model, c['ggraph'], k)}")
        lines.append(f"    llama.cpp: {_marked(model, c['llama_cpp'], k)}")
        if k is not None and k < min(len(c["ggraph"]), len(c["llama_cpp"])):
            a, b = c["ggraph"][k], c["llama_cpp"][k]
            lines.append(f"    token {k}: ggraph {a} {_piece(model, a)}, llama.cpp {b} {_piece(model, b)}")
    return lines


def format_summary(s: dict) -> list[str]:
    n = s["n_prompts"]
    lines = [f"summary over {n} prompts:",
             f"  tokenization       {s['tokenization_match']}/{n} identical",
             f"  prompt logits      {s['prompt_logits']['n']} positions: {_stats_line(s['prompt_logits'])}",
             f"  decode logits      {s['decode_logits']['n']} steps: {_stats_line(s['decode_logits'])}",
             f"  continuations      {s['identical_continuations']}/{n} identical"]
    if "llama_cpp_token_by_token" in s:
        t = s["llama_cpp_token_by_token"]
        lines.append(f"  llama.cpp itself   (token by token vs one batch) {_stats_line(t)}, "
                     f"continuations {t['identical_continuations']}/{n} identical")
    return lines


def format_table_row(i: int, r: dict) -> str:
    p, c = r["prompt_logits"], r["continuation"]
    cont = "identical" if c["identical"] else f"differs at {c['first_difference']}"
    return (f"| {i} | {r['n_tokens']} | {'yes' if r['tokens']['match'] else 'NO'} | {p['top1']:.4f} | "
            f"{_g(p['mean_kl'])} | {_g(p['max_kl'])} | {_g(p['max_abs_diff'])} | {p['identical_rows']}/{p['n']} | {cont} |")


# -- the command --------------------------------------------------------------------------------

def load_ggraph(name):
    """The ggraph model of -m (a path or a default model name); tests replace it."""
    from ..model import load
    from .pull import DEFAULT_MODEL
    return load(name or DEFAULT_MODEL)


def read_prompts(args) -> list[str]:
    if args.prompts:
        try:
            with open(args.prompts, encoding="utf-8") as f:
                prompts = json.load(f)
        except OSError as e:
            raise GGraphError(f"cannot read --prompts file: {e}") from None
        except json.JSONDecodeError as e:
            raise GGraphError(f"--prompts {args.prompts}: not JSON ({e})") from None
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise GGraphError(f"--prompts {args.prompts}: expected a non-empty JSON list of strings")
        return prompts
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                return [f.read()]
        except (OSError, UnicodeDecodeError) as e:
            raise GGraphError(f"cannot read prompt file: {e}") from None
    return [args.prompt]


def header(model, llama_cpp, st: Settings, mode: str, batching: str = "prompt in one batch") -> str:
    info = model.info()
    return (f"ggraph compare ({mode}): {os.path.basename(model.path)} ({info['architecture']}, "
            f"{info['n_layer']} layers, n_vocab {info['n_vocab']}) vs llama.cpp (llama-cpp-python "
            f"{getattr(llama_cpp, '__version__', '?')}); n_ctx {st.n_ctx}, n_ubatch {st.n_ubatch}, F16 KV cache, "
            f"flash attention off, {batching}, {st.n_threads} threads")


def check_args(args) -> None:
    if args.n_predict < 0:
        raise GGraphError(f"-n must be >= 0, got {args.n_predict}")
    if args.ctx_size is not None and args.ctx_size < 1:
        raise GGraphError(f"-c must be a positive integer, got {args.ctx_size}")
    if args.threads is not None:
        from ..context import check_threads
        check_threads(args.threads)
    if not args.threshold >= 0:
        raise GGraphError(f"--threshold must be >= 0, got {args.threshold}")
    if args.tensors and args.prompts:
        raise GGraphError("--tensors compares one prompt: give -p or -f, not --prompts")


def cmd_compare(args) -> int:
    if args.decode:
        args.tensors = True
    check_args(args)
    prompts = read_prompts(args)
    llama_cpp = import_llama_cpp()
    if llama_cpp is None:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        return 2
    model = load_ggraph(args.model)
    if args.tensors:
        return _cmd_tensors(args, llama_cpp, model, prompts[0])
    lengths = [max(1, len(model.tokenize(p, add_special=True, parse_special=False))) for p in prompts]
    st = settings_for(lengths, args.n_predict, args.ctx_size, args.threads)
    llm = new_llama(llama_cpp, model.path, st)
    ctx = model.new_context(n_ctx=st.n_ctx, n_batch=st.n_ubatch, n_ubatch=st.n_ubatch, n_threads=st.n_threads)
    results = []
    for i, text in enumerate(prompts):
        if len(prompts) > 1:
            print(f"compare: prompt {i + 1}/{len(prompts)}", file=sys.stderr, flush=True)
        ids = llamacpp_tokenize(llm, text)
        if len(ids) + args.n_predict > st.n_ctx:
            raise GGraphError(f"prompt {i + 1}: {len(ids)} tokens (llama.cpp's tokenizer) plus -n {args.n_predict} "
                              f"do not fit in n_ctx {st.n_ctx}: raise -c")
        results.append(compare_prompt(llm, model, ctx, text, args.n_predict, self_spread=args.self_spread,
                                      ids_ref=ids))
    summary = summarise(results)
    if args.json:
        for r in results:
            for k in ("prompt_logits", "decode_logits", "llama_cpp_token_by_token"):
                if k in r:
                    r[k].pop("kl", None)
        print(json.dumps({"model": model.path, "llama_cpp_version": getattr(llama_cpp, "__version__", None),
                          "settings": st.__dict__, "prompts": results, "summary": summary}, indent=1))
        return 0
    out = [header(model, llama_cpp, st, "logits")]
    if len(prompts) == 1:
        out += format_prompt(model, results[0])
    else:
        out += ["| # | tokens | same tokens | top-1 | mean KL | max KL | max abs diff | identical rows | continuation |",
                "|---|---|---|---|---|---|---|---|---|"]
        out += [format_table_row(i + 1, r) for i, r in enumerate(results)]
        out += format_summary(summary)
        firsts = [(i, r) for i, r in enumerate(results) if not r["continuation"]["identical"]]
        if firsts:
            i, r = firsts[0]
            out.append(f"first prompt whose continuation differs: #{i + 1}")
            out += format_prompt(model, r)
    print("\n".join(out))
    return 0


def _cmd_tensors(args, llama_cpp, model, text: str) -> int:
    from .llamacpp_eval import llamacpp_nodes
    from .llamacpp_eval import quiet
    from .tensors import Differ, format_report, ggraph_nodes
    ours_ids = model.tokenize(text, add_special=True, parse_special=False)
    try:
        with quiet():
            vocab = llama_cpp.Llama(model_path=model.path, vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as e:
        raise GGraphError(f"llama.cpp could not load {model.path}: {e}") from None
    ids = llamacpp_tokenize(vocab, text)
    del vocab
    if not ids:
        raise GGraphError("the prompt is empty (no tokens)")
    tok_diff = first_difference(ours_ids, ids)
    st = settings_for([len(ids)], 0, args.ctx_size, args.threads)
    try:
        ref, _ = llamacpp_nodes(model.path, ids, n_ctx=st.n_ctx, decode=args.decode, n_threads=st.n_threads,
                                n_ubatch=st.n_ubatch)
    except RuntimeError as e:
        raise GGraphError(str(e)) from None
    differ = Differ(ref, args.threshold)        # measures ggraph's nodes as they are computed
    ggraph_nodes(model, ids, n_ctx=st.n_ctx, decode=args.decode, n_threads=st.n_threads, logits_all=False,
                 n_ubatch=st.n_ubatch, on_node=differ.add)
    rep = differ.report()
    path = "token by token, the last token's nodes" if args.decode else f"one batch of {len(ids)} tokens"
    if args.json:
        d = rep.as_dict()
        d.update({"model": model.path, "llama_cpp_version": getattr(llama_cpp, "__version__", None),
                  "settings": st.__dict__, "decode": bool(args.decode), "prompt": text, "n_tokens": len(ids),
                  "tokens_match": tok_diff is None})
        print(json.dumps(d, indent=1))
        return 0
    out = [header(model, llama_cpp, st, "tensors", "prompt token by token" if args.decode else "prompt in one batch"),
           f"prompt: \"{_esc(text[:200])}\" ({path})",
           "tokenization: " + ("identical" if tok_diff is None else
                               f"DIFFERENT from token {tok_diff}; both sides run llama.cpp's ids")]
    out += format_report(rep)
    print("\n".join(out))
    return 0


def add_arguments(p) -> None:
    """`ggraph compare`'s flags (runtime/apps/cli.py registers the subcommand)."""
    p.add_argument("-m", "--model", default=None,
                   help="GGUF file, or a default model name (smollm2, gemma3); default: smollm2")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-p", "--prompt", help="the prompt text")
    src.add_argument("-f", "--file", help="read the prompt from a file")
    src.add_argument("--prompts", help="a JSON file holding a list of prompts: compare each, then summarise")
    p.add_argument("-n", "--n-predict", type=int, default=32, help="greedy tokens to continue (default: 32)")
    p.add_argument("-c", "--ctx-size", type=int, default=None,
                   help="context size (default: the longest prompt + n, rounded up to 256, at least 512)")
    p.add_argument("-t", "--threads", type=int, default=None, help="threads, both sides (default: all cores)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--self-spread", action="store_true",
                   help="also compare llama.cpp fed token by token against llama.cpp in one batch (its own spread)")
    p.add_argument("--tensors", action="store_true",
                   help="diff every named intermediate tensor (attn_norm-0, Qcur-0, ..., result_output) of the prompt")
    p.add_argument("--decode", action="store_true",
                   help="with --tensors: feed the prompt token by token and diff the last token's tensors")
    p.add_argument("--threshold", type=float, default=1e-6,
                   help="--tensors: name the first tensor whose normalised error exceeds this (default: 1e-6)")
