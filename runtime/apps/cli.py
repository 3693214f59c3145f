"""`ggraph` command line: run, tokenize, info, pull, bench (llama.cpp's flag names and defaults).

Generated text goes to stdout; logs and timings go to stderr. Any GGraphError becomes one
`error: ...` line and exit status 1, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ggraph.errors import GGraphError


def _add_model_arg(p, required=False):
    p.add_argument("-m", "--model", required=required, default=None,
                   help="GGUF file, or a default model name (smollm2, gemma3); default: smollm2, pulled on first use")


def _add_swa_full(p):
    p.add_argument("--swa-full", action="store_true",
                   help="full-size cache for sliding-window layers (default: off: a window-sized one, as llama.cpp's)")


def _add_ctx_args(p):
    p.add_argument("-c", "--ctx-size", type=int, default=4096, help="context size (default: 4096)")
    p.add_argument("-b", "--batch-size", type=int, default=2048, help="logical batch size (default: 2048)")
    p.add_argument("-ub", "--ubatch-size", type=int, default=512, help="physical batch size (default: 512)")
    p.add_argument("-t", "--threads", type=int, default=None, help="threads (default: all cores)")


def _add_sampling_args(p):
    from ..sampling import LLAMA_DEFAULT_SEED, SamplerParams
    d = SamplerParams()    # one place for llama.cpp's defaults (common_params_sampling)
    p.add_argument("-n", "--n-predict", type=int, default=-1, help="tokens to predict (default: -1 = until end of generation or full context; -2 = until the context is full)")
    p.add_argument("--temp", type=float, default=d.temp, help=f"temperature (default: {d.temp}; <= 0: greedy)")
    p.add_argument("--top-k", type=int, default=d.top_k, help=f"top-k sampling (default: {d.top_k}, 0 = disabled)")
    p.add_argument("--top-p", type=float, default=d.top_p, help=f"top-p sampling (default: {d.top_p}, 1.0 = disabled)")
    p.add_argument("--min-p", type=float, default=d.min_p, help=f"min-p sampling (default: {d.min_p}, 0.0 = disabled)")
    p.add_argument("--typical", type=float, default=d.typical_p, help=f"locally typical sampling (default: {d.typical_p}, 1.0 = disabled)")
    p.add_argument("--repeat-penalty", type=float, default=d.repeat_penalty,
                   help=f"penalize repeated tokens (default: {d.repeat_penalty}, 1.0 = disabled)")
    p.add_argument("--repeat-last-n", type=int, default=d.repeat_last_n,
                   help=f"last n tokens the penalties look at (default: {d.repeat_last_n}, 0 = disabled, -1 = all)")
    p.add_argument("--presence-penalty", type=float, default=d.presence_penalty,
                   help=f"presence penalty (default: {d.presence_penalty}, 0.0 = disabled)")
    p.add_argument("--frequency-penalty", type=float, default=d.frequency_penalty,
                   help=f"frequency penalty (default: {d.frequency_penalty}, 0.0 = disabled)")
    p.add_argument("-s", "--seed", type=int, default=LLAMA_DEFAULT_SEED, help="RNG seed (default: -1, random)")


def _add_reverse_verbose(p):
    from .reverse_prompt import add_argument
    add_argument(p)                            # -r / --reverse-prompt
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the model, context and per-phase timings on stderr (default: quiet)")


def _verbose_header(model, ctx) -> str:
    """-v: the model and context, one line."""
    info = model.info()
    return (f"ggraph: model {model.path}: {info['architecture']}, {info['n_params'] / 1e6:.1f} M params, "
            f"{info['file_size'] / 2**20:.1f} MiB; n_ctx {ctx.n_ctx}, n_batch {ctx.n_batch}, "
            f"n_ubatch {ctx.n_ubatch}, {ctx.n_threads} threads; KV cache {ctx.kv.nbytes / 2**20:.1f} MiB"
            + ("" if ctx.kv.size_swa is None else f" (sliding-window layers: {ctx.kv.size_swa} cells)"))


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one `error: ...` line (exit status 2), like every other failure."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="ggraph", description="Run GGUF models on the CPU, the llama.cpp way, in Python.")
    from ggraph import __version__
    ap.add_argument("--version", action="version", version=f"ggraph {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("run", help="generate text from a prompt (like llama-completion)")
    _add_model_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-p", "--prompt", help="the prompt text")
    src.add_argument("-f", "--file", help="read the prompt from a file, as bytes ('-': stdin)")
    _add_ctx_args(p)
    _add_sampling_args(p)
    p.add_argument("--no-special", action="store_true", help="do not parse special-token text in the prompt")
    _add_reverse_verbose(p)
    _add_swa_full(p)
    from .chat import add_template_args
    add_template_args(p)                       # given: the prompt is one user turn of that template
    gr = p.add_mutually_exclusive_group()      # constrained output (docs/grammars.md), llama.cpp's flags
    gr.add_argument("--grammar", metavar="GRAMMAR", help="BNF-like grammar (GBNF, as in llama.cpp's grammars/) to constrain generations")
    gr.add_argument("--grammar-file", metavar="FNAME", help="file to read the grammar from")
    gr.add_argument("-j", "--json-schema", metavar="SCHEMA", help='JSON schema to constrain generations, e.g. \'{"type": "object"}\'')
    gr.add_argument("-jf", "--json-schema-file", metavar="FILE", help="file containing a JSON schema to constrain generations")

    p = sub.add_parser("chat", help="interactive multi-turn chat with the model's chat template")
    _add_model_arg(p)
    _add_ctx_args(p)
    _add_sampling_args(p)
    p.add_argument("-sys", "--system-prompt", default=None, help="system message")
    _add_reverse_verbose(p)
    _add_swa_full(p)
    from .chat import add_template_args
    add_template_args(p)                       # --chat-template NAME / --chat-template-file FILE

    p = sub.add_parser("tokenize", help="show the token ids (and pieces) of a text")
    _add_model_arg(p)
    p.add_argument("text", help="the text to tokenize")
    p.add_argument("--ids", action="store_true", help="print only the ids, as a Python list")
    p.add_argument("--no-bos", action="store_true", help="do not add BOS/EOS (add_special=False)")
    p.add_argument("--no-parse-special", action="store_true", help="treat special-token text as plain text")

    p = sub.add_parser("info", help="architecture, hyperparameters, tensor formats, size")
    p.add_argument("model", help="GGUF file, or a default model name (smollm2, gemma3)")
    p.add_argument("--json", action="store_true", help="print the information as JSON")

    p = sub.add_parser("pull", help="download a default model into the cache")
    p.add_argument("name", nargs="?", default="smollm2", help="smollm2 or gemma3 (default: smollm2)")

    p = sub.add_parser("bench", help="prompt (pp) and generation (tg) tokens/s, like llama-bench")
    _add_model_arg(p)
    p.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens (default: 512, 0 = no pp test)")
    p.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens (default: 128, 0 = no tg test)")
    p.add_argument("-d", "--n-depth", type=_int_list, default=[0],
                   help="tokens already in the context, comma-separated list (default: 0)")
    p.add_argument("-r", "--repetitions", type=int, default=5, help="repetitions per test (default: 5)")
    p.add_argument("-t", "--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--vs-llama-cpp", action="store_true",
                   help="also run llama.cpp (llama-cpp-python) alternating with ggraph, with a ratio column")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--profile", action="store_true",
                   help="also time every op of ggraph's plans: a per-op table (ms and calls per token) per test")
    p.add_argument("--parallel", type=_int_list, default=None, metavar="N,N,...",
                   help="instead: aggregate generation t/s with N sequences decoding together (e.g. 1,2,4,8)")

    from .compare import add_arguments as compare_arguments
    compare_arguments(sub.add_parser("compare", help="ggraph vs llama.cpp on the same GGUF: logits, continuations, every tensor"))
    from .perplexity import add_parser as perplexity_parser
    perplexity_parser(sub, _add_model_arg)
    from .embed import add_parser as embed_parser
    embed_parser(sub, _add_model_arg, _add_ctx_args)
    from .graph_view import add_arguments as graph_arguments
    graph_arguments(sub.add_parser("graph", help="the compute graph of one ubatch: nodes, ops, shapes, bytes; Graphviz DOT"))

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server with parallel slots (like llama-server)")
    _add_model_arg(p)
    _add_ctx_args(p)
    _add_swa_full(p)
    from ..server.serve import add_arguments as serve_arguments
    serve_arguments(p)
    return ap


def _load(name):
    from ..model import load
    from .pull import DEFAULT_MODEL
    return load(name or DEFAULT_MODEL)


def _sampler(args, n_vocab):
    from ..sampling import SamplerChain, SamplerParams
    params = SamplerParams(temp=args.temp, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                           typical_p=args.typical, repeat_penalty=args.repeat_penalty,
                           repeat_last_n=args.repeat_last_n, frequency_penalty=args.frequency_penalty,
                           presence_penalty=args.presence_penalty, seed=args.seed)
    params.validate()
    if getattr(args, "n_predict", -1) < -2:
        raise GGraphError(f"-n/--n-predict must be >= -2 (-1: until end of generation, -2: until the context "
                          f"is full), got {args.n_predict}")
    return SamplerChain.from_params(params, n_vocab)


def _perf_line(label: str, ms: float, n: int, unit: str) -> str:
    per = ms / n if n else 0.0
    tps = 1000.0 * n / ms if ms > 0 else 0.0
    return f"ggraph: {label:>17s} = {ms:10.2f} ms / {n:5d} {unit} ({per:8.2f} ms per token, {tps:8.2f} tokens per second)"


def cmd_run(args) -> int:
    from ..text import StreamDecoder
    if args.file:      # bytes, as llama.cpp reads them (tokenize takes bytes); "-" is stdin
        try:
            if args.file == "-":
                prompt = sys.stdin.buffer.read()
            else:
                with open(args.file, "rb") as f:
                    prompt = f.read()
        except OSError as e:
            raise GGraphError(f"cannot read prompt file: {e}") from None
    else:
        prompt = args.prompt
    t0 = time.perf_counter()
    model = _load(args.model)
    sampler = _sampler(args, model.n_vocab)
    from ..sampling.grammar import grammar_from_args
    sampler.grammar = grammar_from_args(args, model.vocab)      # --grammar / --grammar-file / -j / -jf
    ctx = model.new_context(n_ctx=args.ctx_size, n_batch=args.batch_size, n_ubatch=args.ubatch_size, n_threads=args.threads,
                            swa_full=args.swa_full)
    add_special = True
    if args.chat_template or args.chat_template_file:     # the prompt as one user turn of that template
        from .chat import single_turn_prompt, template_from_args
        prompt, add_special = single_turn_prompt(template_from_args(model, args), prompt)
    ids = model.tokenize(prompt, add_special=add_special, parse_special=not args.no_special)
    if not ids:
        raise GGraphError("the prompt is empty")
    t_load = time.perf_counter() - t0
    dec = StreamDecoder(model.vocab)
    out = sys.stdout
    n_gen = 0
    from .reverse_prompt import ReversePrompts
    if args.verbose:
        print(f"{_verbose_header(model, ctx)}; prompt {len(ids)} tokens", file=sys.stderr)
    stops = ReversePrompts(args.reverse_prompt)
    t1, c1 = time.perf_counter(), ctx.compile_seconds
    t_prompt = None
    for tok in ctx.generate(ids, n_predict=args.n_predict, sampler=sampler):
        if t_prompt is None:
            t_prompt, c_prompt = time.perf_counter() - t1, ctx.compile_seconds - c1
            t2 = time.perf_counter()
        piece = dec.push(tok)
        out.write(piece)
        out.flush()
        n_gen += 1
        if stops.hit(piece):     # -r: llama.cpp's antiprompt, matched on the text across token boundaries
            break
    out.write(dec.flush())
    out.write("\n")
    out.flush()
    t_end = time.perf_counter()
    if t_prompt is None:
        t_prompt, c_prompt, t2 = t_end - t1, ctx.compile_seconds - c1, t_end
    c_eval = ctx.compile_seconds - c1 - c_prompt
    print(f"ggraph: load time = {t_load * 1000:10.2f} ms", file=sys.stderr)
    if c_prompt + c_eval > 0:    # a first run: compiling is not prompt or generation time
        print(f"ggraph:      compile time = {(c_prompt + c_eval) * 1000:10.2f} ms (first run only: "
              f"kernels compiled and cached)", file=sys.stderr)
    print(_perf_line("prompt eval time", (t_prompt - c_prompt) * 1000, len(ids), "tokens"), file=sys.stderr)
    # the first sampled token comes with the prompt; later ones each cost one decode step
    print(_perf_line("eval time", (t_end - t2 - c_eval) * 1000, max(n_gen - 1, 0), "runs  "), file=sys.stderr)
    if args.verbose:
        print(f"ggraph: total time = {(t_end - t0) * 1000:10.2f} ms", file=sys.stderr)
    return 0


def cmd_chat(args) -> int:
    from .chat import ChatSession
    model = _load(args.model)
    sampler = _sampler(args, model.n_vocab)
    ctx = model.new_context(n_ctx=args.ctx_size, n_batch=args.batch_size, n_ubatch=args.ubatch_size, n_threads=args.threads,
                            swa_full=args.swa_full)
    from .chat import template_from_args
    session = ChatSession(model, ctx, sampler=sampler, system=args.system_prompt, template=template_from_args(model, args),
                          reverse_prompts=args.reverse_prompt)
    if args.verbose:
        print(_verbose_header(model, ctx), file=sys.stderr)
    interactive = sys.stdin.isatty()
    if interactive:
        print("ggraph chat: type a message, /exit or Ctrl-D to quit.", file=sys.stderr)
    while True:
        if interactive:
            sys.stdout.write("\n> ")
            sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            break
        line = line.rstrip("\n")
        if line.strip() in ("/exit", "/quit"):
            break
        if not line.strip():
            continue
        try:
            for piece in session.send(line, n_predict=args.n_predict):
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        sys.stdout.write("\n")
        sys.stdout.flush()
        if args.verbose and session.last_stats:
            st = session.last_stats
            print(_perf_line("prompt eval time", st["prompt_ms"], st["n_prompt"], "tokens"), file=sys.stderr)
            print(_perf_line("eval time", st["eval_ms"], st["n_eval"], "runs  "), file=sys.stderr)
            if st["compile_ms"] > 0:
                print(f"ggraph:      compile time = {st['compile_ms']:10.2f} ms (first run only, apart from the above)",
                      file=sys.stderr)
    return 0


def cmd_tokenize(args) -> int:
    model = _load(args.model)
    ids = model.tokenize(args.text, add_special=not args.no_bos, parse_special=not args.no_parse_special)
    if args.ids:
        print(ids)
    else:
        for i in ids:
            piece = model.token_to_piece(i, special=True).decode("utf-8", errors="replace")
            print(f"{i:6d} -> '{piece}'")
    return 0


def cmd_info(args) -> int:
    model = _load(args.model)
    info = model.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for k, v in info.items():
        if k == "tensor_types":
            v = ", ".join(f"{t}: {n}" for t, n in sorted(v.items()))
        elif k == "file_size":
            v = f"{v / 2**20:.1f} MiB"
        elif k == "n_params":
            v = f"{v / 1e6:.1f} M"
        print(f"{k:14s} {v}")
    return 0


def cmd_pull(args) -> int:
    from .pull import pull
    print(pull(args.name))
    return 0


def cmd_bench(args) -> int:
    from .bench import bench, check_args
    check_args(args.n_prompt, args.n_gen, args.repetitions, args.n_depth)
    model = _load(args.model)
    if args.parallel:
        from .bench_parallel import bench_parallel
        bench_parallel(model, n_seqs=args.parallel, n_gen=args.n_gen, reps=args.repetitions,
                       n_threads=args.threads, vs_llama_cpp=args.vs_llama_cpp)
        return 0
    bench(model, n_prompt=args.n_prompt, n_gen=args.n_gen, reps=args.repetitions, n_threads=args.threads,
          depths=args.n_depth, vs_llama_cpp=args.vs_llama_cpp, as_json=args.json, profile=args.profile)
    return 0


COMMANDS = {"run": cmd_run, "chat": cmd_chat, "tokenize": cmd_tokenize, "info": cmd_info, "pull": cmd_pull, "bench": cmd_bench}


def cmd_compare(args) -> int:
    from .compare import cmd_compare
    return cmd_compare(args)


COMMANDS["compare"] = cmd_compare


def cmd_graph(args) -> int:
    from .graph_view import cmd_graph
    return cmd_graph(args)


COMMANDS["graph"] = cmd_graph


def cmd_perplexity(args) -> int:
    from .perplexity import cmd_perplexity
    return cmd_perplexity(args, _load)


COMMANDS["perplexity"] = cmd_perplexity


def cmd_embed(args) -> int:
    from .embed import cmd_embed
    return cmd_embed(args, _load)


COMMANDS["embed"] = cmd_embed


def cmd_serve(args) -> int:
    from ..server.serve import serve
    return serve(args)


COMMANDS["serve"] = cmd_serve


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.cmd](args)
    except GGraphError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os._exit(0)
    except MemoryError:
        print("error: out of memory (lower -c/--ctx-size or use a smaller model)", file=sys.stderr)
        return 1
    except Exception as e:      # a bug, not bad input: still one line (GGRAPH_DEBUG=1 shows the traceback)
        if os.environ.get("GGRAPH_DEBUG"):
            raise
        msg = " ".join(str(e).split())
        print(f"error: internal error: {type(e).__name__}: {msg[:300]} (GGRAPH_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
