"""`ggraph perplexity`: llama-perplexity's perplexity and KL-divergence modes (tools/perplexity).

Perplexity: the text is tokenized once (with BOS when the vocab adds one) and cut into chunks of
n_ctx tokens; each chunk is evaluated from an empty cache with its first token replaced by BOS, and
only its second half is scored (each token predicted from at least n_ctx/2 tokens of context). The
running estimate is printed per chunk as `[i]ppl,` and the end as
`Final estimate: PPL = X +/- Y`, with llama.cpp's formulas (Y from the spread of the per-token
negative log-likelihoods).

KL divergence: `--kl-divergence-base FILE` without `--kl-divergence` also saves the scored
positions' log-probabilities in llama.cpp's own file format ("_logits_", n_ctx, n_vocab, n_chunk,
the tokens, then per position a uint16-quantized log-softmax), so a file written by llama-perplexity
or by `--backend llama.cpp` can be the base; with `--kl-divergence` the model is compared against
that file (its tokens): PPL(Q) vs PPL(base), mean KLD with its uncertainty, percentiles, Δp and the
same-top-token rate, printed like llama.cpp.

Sums run in one thread in position order (llama.cpp's worker threads add their partial sums in a
varying order, so its last digits can move from run to run; ours do not).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ggraph.errors import GGraphError

MAGIC = b"_logits_"


# -- backends: token chunk -> float32 logits [n_ctx, n_vocab] ----------------------------------
class GgraphBackend:
    def __init__(self, model, n_ctx: int, n_batch: int, n_threads: int | None):
        self.model = model
        self.ctx = model.new_context(n_ctx=n_ctx, n_batch=n_batch, n_ubatch=min(512, n_batch), n_threads=n_threads)
        self.n_vocab = model.n_vocab

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        self.ctx.reset()
        return self.ctx.decode(tokens, logits_all=True)


class LlamaCppBackend:
    """llama-cpp-python on the same GGUF (the `compare` extra), F16 KV cache, no flash attention."""

    def __init__(self, path: str, n_ctx: int, n_batch: int, n_threads: int | None):
        try:
            import llama_cpp
        except ImportError:
            raise GGraphError('--backend llama.cpp needs llama-cpp-python: pip install "ggraph[compare]"') from None
        self.llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=min(512, n_batch),
                                   logits_all=True, flash_attn=False, verbose=False,
                                   n_threads=n_threads or None)
        self.n_vocab = self.llm.n_vocab()

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(tokens.tolist())
        return np.array(self.llm.scores[: tokens.size], dtype=np.float32)


# -- llama.cpp's per-position maths -------------------------------------------------------------
def _lse_parts(row: np.ndarray):
    """max and log(sum exp(x - max)) as llama.cpp: float32 exps summed in double."""
    mx = np.float32(row.max())
    s = float(np.exp(row - mx, dtype=np.float32).astype(np.float64).sum())
    return mx, s


def _nearest_int(f: np.ndarray) -> np.ndarray:
    v = (np.asarray(f, np.float32) + np.float32(12582912.0)).view(np.int32)
    return (v & 0x007FFFFF) - 0x00400000


def quantized_log_probs(row: np.ndarray, nv: int) -> np.ndarray:
    """llama.cpp's log_softmax(.., uint16_t * log_prob, ..): [scale, min_log_prob] as two floats in the
    first four uint16, then each logit's offset above max(min, max - 16) in 65535 steps."""
    mx, s = _lse_parts(row)
    mn = max(np.float32(row.min()), np.float32(mx - np.float32(16)))
    log_sum_exp = np.float32(math.log(s))
    min_log_prob = np.float32(mn - mx - log_sum_exp)
    scale = np.float32((mx - mn) / np.float32(65535.0))
    out = np.zeros(nv, np.uint16)
    out[:4].view(np.float32)[:] = (scale, min_log_prob)
    if scale:
        inv = np.float32(1) / scale
        q = np.where(row > mn, _nearest_int(inv * (row - mn)), 0)
        out[4:4 + row.size] = q.astype(np.uint16)
    return out


@dataclass
class KLStats:
    """llama.cpp's kl_divergence_result, plus the per-position values for the percentiles."""
    sum_nll: float = 0.0
    sum_nll2: float = 0.0
    sum_nll_base: float = 0.0
    sum_nll_base2: float = 0.0
    sum_nll_nll_base: float = 0.0
    sum_kld: float = 0.0
    sum_kld2: float = 0.0
    sum_p_diff: float = 0.0
    sum_p_diff2: float = 0.0
    sum_p_diff4: float = 0.0
    max_p_diff: float = 0.0
    n_same_top: int = 0
    count: int = 0
    kld_values: list = field(default_factory=list)
    p_diff_values: list = field(default_factory=list)

    def add(self, row: np.ndarray, base: np.ndarray, tok: int) -> None:
        """llama.cpp's log_softmax(.., const uint16_t * base_log_prob, ..)."""
        f32 = np.float32
        imax = int(np.argmax(row))
        mx, s = _lse_parts(row)
        log_sum_exp = f32(math.log(s))
        scale, min_log_prob = base[:4].view(np.float32)
        q = base[4:4 + row.size].astype(np.float32)
        nll = f32(mx + log_sum_exp - row[tok])
        self.sum_nll += float(nll)
        self.sum_nll2 += float(nll * nll)
        nll_base = f32(-(scale * q[tok] + min_log_prob))
        self.sum_nll_base += float(nll_base)
        self.sum_nll_base2 += float(nll_base * nll_base)
        self.sum_nll_nll_base += float(nll * nll_base)
        p_log_base = scale * q + min_log_prob
        keep = p_log_base > f32(-16)
        terms = np.exp(p_log_base[keep]) * (p_log_base[keep] - row[keep] + f32(mx + log_sum_exp))
        kld = float(terms.astype(np.float64).sum())
        self.sum_kld += kld
        self.sum_kld2 += kld * kld
        self.count += 1
        self.n_same_top += int(imax == int(np.argmax(p_log_base)))
        p_diff = float(f32(math.exp(-float(nll))) - f32(math.exp(-float(nll_base))))
        self.sum_p_diff += p_diff
        self.sum_p_diff2 += p_diff * p_diff
        self.sum_p_diff4 += p_diff ** 4
        self.max_p_diff = max(self.max_p_diff, abs(p_diff))
        self.kld_values.append(kld)
        self.p_diff_values.append(p_diff)


def mean_and_uncertainty(s: float, s2: float, n: int):
    if n < 1:
        return 0.0, 0.0
    f = s / n
    df = s2 / n - f * f
    return f, (math.sqrt(df / (n - 1)) if df > 0 and n > 10 else 0.0)


def _covariance(a: float, b: float, ab: float, n: int) -> float:
    if n < 10:
        return 0.0
    return (ab / n - (a / n) * (b / n)) / (n - 1)


def _percentile(values: list, fraction: float) -> float:
    if fraction <= 0:
        return values[0]
    if fraction >= 1:
        return values[-1]
    p = fraction * (len(values) - 1)
    ip = int(p)
    p -= ip
    return (1 - p) * values[ip] + p * values[min(ip + 1, len(values) - 1)]


# -- the two modes ----------------------------------------------------------------------------------
def _chunks(tokens: np.ndarray, n_ctx: int, n_chunks: int, bos: int | None):
    n_max = tokens.size // n_ctx
    n = n_max if n_chunks < 0 else min(n_chunks, n_max)
    for i in range(n):
        chunk = tokens[i * n_ctx:(i + 1) * n_ctx].copy()
        if bos is not None:
            chunk[0] = bos
        yield i, n, chunk


def perplexity(backend, tokens: np.ndarray, n_ctx: int, n_chunks: int = -1, bos: int | None = None,
               base_out: str | None = None, out=sys.stdout, err=sys.stderr) -> dict:
    """llama.cpp's perplexity(): returns {"ppl", "uncertainty", "chunks": [running ppl per chunk]}."""
    if tokens.size < 2 * n_ctx:
        raise GGraphError(f"you need at least {2 * n_ctx} tokens to evaluate perplexity with a context of "
                          f"{n_ctx} (the text tokenizes to only {tokens.size})")
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    running = []
    n_vocab = backend.n_vocab
    nv = 2 * ((n_vocab + 1) // 2) + 4
    fh = open(base_out, "wb") if base_out else None
    try:
        for i, n_chunk, chunk in _chunks(tokens, n_ctx, n_chunks, bos):
            if fh is not None and i == 0:
                fh.write(MAGIC + np.array([n_ctx, n_vocab, n_chunk], np.int32).tobytes())
                fh.write(tokens[:n_chunk * n_ctx].astype(np.int32).tobytes())
            t0 = time.perf_counter()
            logits = backend.logits(chunk)
            if i == 0:
                eta = (time.perf_counter() - t0) * n_chunk
                print(f"perplexity: {time.perf_counter() - t0:.2f} seconds per pass - ETA {eta / 60:.2f} minutes",
                      file=err)
            target = tokens[i * n_ctx:(i + 1) * n_ctx]
            for j in range(first, n_ctx - 1):
                row = logits[j]
                if fh is not None:
                    fh.write(quantized_log_probs(row, nv).tobytes())
                mx, s = _lse_parts(row)
                v = float(mx) + math.log(s) - float(row[target[j + 1]])      # -log_softmax, in double
                nll += v
                nll2 += v * v
            count += n_ctx - first - 1
            running.append(math.exp(nll / count))
            print(f"[{i + 1}]{running[-1]:.4f},", end="", file=out, flush=True)
    finally:
        if fh is not None:
            fh.close()
    print(file=out)
    nll /= count
    nll2 = nll2 / count - nll * nll
    ppl = math.exp(nll)
    unc = math.sqrt(nll2 / (count - 1)) * ppl if nll2 > 0 else float("nan")
    print(f"Final estimate: PPL = {ppl:.4f} +/- {unc:.5f}", file=out)
    return {"ppl": ppl, "uncertainty": unc, "chunks": running, "count": count}


def read_base(path: str):
    """A llama.cpp log-probability file: (n_ctx, n_vocab, n_chunk, tokens, reader of per-chunk rows)."""
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise GGraphError(f"{path}: cannot open the KL-divergence base file ({e.strerror})") from None
    if fh.read(8) != MAGIC:
        raise GGraphError(f"{path} does not look like a file containing log-probabilities")
    head = np.frombuffer(fh.read(12), np.int32)
    if head.size != 3 or (head <= 0).any():
        raise GGraphError(f"{path}: bad header (n_ctx, n_vocab, n_chunk)")
    n_ctx, n_vocab, n_chunk = (int(x) for x in head)
    tokens = np.frombuffer(fh.read(4 * n_ctx * n_chunk), np.int32)
    if tokens.size != n_ctx * n_chunk:
        raise GGraphError(f"{path}: failed reading evaluation tokens")
    return n_ctx, n_vocab, n_chunk, tokens.astype(np.int64), fh


def kl_divergence(backend, base_path: str, n_chunks: int = -1, bos: int | None = None, out=sys.stdout,
                  err=sys.stderr) -> dict:
    """llama.cpp's kl_divergence(): the model against a base file's log-probabilities."""
    n_ctx, n_vocab, n_chunk, tokens, fh = read_base(base_path)
    if n_vocab != backend.n_vocab:
        fh.close()
        raise GGraphError(f"inconsistent vocabulary ({n_vocab} in {base_path} vs {backend.n_vocab})")
    first = n_ctx // 2
    nv = 2 * ((n_vocab + 1) // 2) + 4
    per_chunk = n_ctx - 1 - first
    st = KLStats()
    rows = []
    with fh:
        for i, _, chunk in _chunks(tokens, n_ctx, n_chunks if n_chunks >= 0 else n_chunk, bos):
            base = np.frombuffer(fh.read(2 * nv * per_chunk), np.uint16)
            if base.size != nv * per_chunk:
                raise GGraphError(f"{base_path}: failed reading log-probs for chunk {i}")
            base = base.reshape(per_chunk, nv)
            logits = backend.logits(chunk)
            target = tokens[i * n_ctx:(i + 1) * n_ctx]
            for k, j in enumerate(range(first, n_ctx - 1)):
                st.add(logits[j], base[k], int(target[j + 1]))
            if i == 0:
                print("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence"
                      "              Δp RMS            Same top p", file=out)
            rows.append(_chunk_line(i + 1, st, out))
    _summary(st, out)
    lp, _ = mean_and_uncertainty(st.sum_nll, st.sum_nll2, st.count)
    kl, kl_unc = mean_and_uncertainty(st.sum_kld, st.sum_kld2, st.count)
    return {"ppl": math.exp(lp), "mean_kld": kl, "kld_uncertainty": kl_unc,
            "same_top": st.n_same_top / st.count, "max_kld": max(st.kld_values), "count": st.count}


def _chunk_line(i: int, st: KLStats, out) -> str:
    lp, lp_unc = mean_and_uncertainty(st.sum_nll, st.sum_nll2, st.count)
    lb, lb_unc = mean_and_uncertainty(st.sum_nll_base, st.sum_nll_base2, st.count)
    cov = _covariance(st.sum_nll, st.sum_nll_base, st.sum_nll_nll_base, st.count)
    ratio_unc = math.sqrt(max(lp_unc ** 2 + lb_unc ** 2 - 2 * cov, 0.0))
    kl, kl_unc = mean_and_uncertainty(st.sum_kld, st.sum_kld2, st.count)
    mse, mse_unc = mean_and_uncertainty(st.sum_p_diff2, st.sum_p_diff4, st.count)
    rms = math.sqrt(mse)
    rms_unc = 0.5 / rms * mse_unc if rms > 0 else 0.0
    top = st.n_same_top / st.count
    top_unc = math.sqrt(top * (1 - top) / (st.count - 1)) if st.count > 1 else 0.0
    line = (f"{i:4d}    {math.exp(lp):9.4f} ± {math.exp(lp) * lp_unc:9.4f}    {lp - lb:10.5f} ± {ratio_unc:10.5f}"
            f"    {kl:10.5f} ± {kl_unc:10.5f}    {100 * rms:6.3f} ± {100 * rms_unc:6.3f} %"
            f"    {100 * top:6.3f} ± {100 * top_unc:6.3f} %")
    print(line, file=out, flush=True)
    return line


def _summary(st: KLStats, out) -> None:
    if st.count < 100:        # llama.cpp: no statistics on so few values
        return
    kv, pd = sorted(st.kld_values), sorted(st.p_diff_values)
    lp, lp_unc = mean_and_uncertainty(st.sum_nll, st.sum_nll2, st.count)
    lb, lb_unc = mean_and_uncertainty(st.sum_nll_base, st.sum_nll_base2, st.count)
    ppl, ppl_b = math.exp(lp), math.exp(lb)
    cov = _covariance(st.sum_nll, st.sum_nll_base, st.sum_nll_nll_base, st.count)
    cor = cov / (lp_unc * lb_unc) if lp_unc * lb_unc else float("nan")
    ratio_unc = math.sqrt(max(lp_unc ** 2 + lb_unc ** 2 - 2 * cov, 0.0))
    diff_unc = math.sqrt(max((ppl * lp_unc) ** 2 + (ppl_b * lb_unc) ** 2 - 2 * ppl * ppl_b * cov, 0.0))
    p = lambda *a: print(*a, file=out)
    p("====== Perplexity statistics ======")
    p(f"Mean PPL(Q)                   : {ppl:10.6f} ± {ppl * lp_unc:10.6f}")
    p(f"Mean PPL(base)                : {ppl_b:10.6f} ± {ppl_b * lb_unc:10.6f}")
    p(f"Cor(ln(PPL(Q)), ln(PPL(base))): {100 * cor:6.2f}%")
    p(f"Mean ln(PPL(Q)/PPL(base))     : {lp - lb:10.6f} ± {ratio_unc:10.6f}")
    p(f"Mean PPL(Q)/PPL(base)         : {math.exp(lp - lb):10.6f} ± {math.exp(lp - lb) * ratio_unc:10.6f}")
    p(f"Mean PPL(Q)-PPL(base)         : {ppl - ppl_b:10.6f} ± {diff_unc:10.6f}")
    p("")
    p("====== KL divergence statistics ======")
    kl, kl_unc = mean_and_uncertainty(st.sum_kld, st.sum_kld2, st.count)
    p(f"Mean    KLD: {kl:10.6f} ± {kl_unc:10.6f}")
    median = lambda v: 0.5 * (v[len(v) // 2] + v[len(v) // 2 - 1]) if len(v) % 2 == 0 else v[len(v) // 2]
    p(f"Maximum KLD: {kv[-1]:10.6f}")
    for label, f in (("99.9%", .999), ("99.0%", .99), ("95.0%", .95), ("90.0%", .9)):
        p(f"{label}   KLD: {_percentile(kv, f):10.6f}")
    p(f"Median  KLD: {median(kv):10.6f}")
    for label, f in (("10.0%", .1), (" 5.0%", .05), (" 1.0%", .01), (" 0.1%", .001)):
        p(f"{label}   KLD: {_percentile(kv, f):10.6f}")
    p(f"Minimum KLD: {kv[0]:10.6f}")
    p("")
    p("====== Token probability statistics ======")
    m, m_unc = mean_and_uncertainty(st.sum_p_diff, st.sum_p_diff2, st.count)
    p(f"Mean    Δp: {100 * m:6.3f} ± {100 * m_unc:5.3f} %")
    p(f"Maximum Δp: {100 * pd[-1]:6.3f}%")
    for label, f in (("99.9%", .999), ("99.0%", .99), ("95.0%", .95), ("90.0%", .9), ("75.0%", .75)):
        p(f"{label}   Δp: {100 * _percentile(pd, f):6.3f}%")
    p(f"Median  Δp: {100 * median(pd):6.3f}%")
    for label, f in (("25.0%", .25), ("10.0%", .1), (" 5.0%", .05), (" 1.0%", .01), (" 0.1%", .001)):
        p(f"{label}   Δp: {100 * _percentile(pd, f):6.3f}%")
    p(f"Minimum Δp: {100 * pd[0]:6.3f}%")
    mse, mse_unc = mean_and_uncertainty(st.sum_p_diff2, st.sum_p_diff4, st.count)
    rms = math.sqrt(mse)
    p(f"RMS Δp    : {100 * rms:6.3f} ± {100 * (0.5 / rms * mse_unc if rms else 0.0):5.3f} %")
    top = st.n_same_top / st.count
    p(f"Same top p: {100 * top:6.3f} ± {100 * math.sqrt(top * (1 - top) / (st.count - 1)):5.3f} %")


# -- CLI ------------------------------------------------------------------------------------------
def add_parser(sub, add_model_arg) -> None:
    p = sub.add_parser("perplexity", help="perplexity of a text, or KL divergence against a base (like "
                                          "llama-perplexity)")
    add_model_arg(p)
    p.add_argument("-f", "--file", help="text file to score (perplexity mode)")
    p.add_argument("-c", "--ctx-size", type=int, default=512, help="tokens per chunk (default 512, as llama-perplexity)")
    p.add_argument("-b", "--batch-size", type=int, default=2048, help="logical batch size (default 2048)")
    p.add_argument("-t", "--threads", type=int, default=None, help="threads (default: all)")
    p.add_argument("--chunks", type=int, default=-1, help="score at most this many chunks (default: all)")
    p.add_argument("--kl-divergence-base", metavar="FILE",
                   help="perplexity mode: also save the log-probabilities here (llama.cpp's format); "
                        "with --kl-divergence: the base to compare against")
    p.add_argument("--kl-divergence", action="store_true",
                   help="compare the model against --kl-divergence-base (its tokens; -f not needed)")
    p.add_argument("--json", action="store_true", help="the results as JSON on stdout (the running output goes to stderr)")
    p.add_argument("--backend", choices=("ggraph", "llama.cpp"), default="ggraph",
                   help="who computes the logits (llama.cpp: llama-cpp-python on the same GGUF; default ggraph)")


def cmd_perplexity(args, load_model) -> int:
    model = load_model(args.model)
    vocab = model.vocab
    bos = vocab.bos_id if getattr(vocab, "add_bos", False) else None
    for name in ("ctx_size", "batch_size"):
        if getattr(args, name) < 1:
            raise GGraphError(f"--{name.replace('_', '-')} must be positive")
    if args.kl_divergence:
        if not args.kl_divergence_base:
            raise GGraphError("--kl-divergence needs --kl-divergence-base FILE (the base log-probabilities)")
        n_ctx, *_, fh = read_base(args.kl_divergence_base)
        fh.close()
        backend = _backend(args, model, n_ctx)
        res = kl_divergence(backend, args.kl_divergence_base, args.chunks, bos, out=sys.stderr if args.json else sys.stdout)
        _print_json(args, res)
        return 0
    if not args.file:
        raise GGraphError("perplexity needs -f FILE (or --kl-divergence with --kl-divergence-base)")
    try:
        data = open(args.file, "rb").read()
    except OSError as e:
        raise GGraphError(f"{args.file}: {e.strerror}") from None
    tokens = np.asarray(model.tokenize(data.decode("utf-8", errors="replace")), np.int64)
    backend = _backend(args, model, args.ctx_size)
    res = perplexity(backend, tokens, args.ctx_size, args.chunks, bos, args.kl_divergence_base,
                     out=sys.stderr if args.json else sys.stdout)
    _print_json(args, res)
    return 0


def _print_json(args, res: dict) -> None:
    if args.json:
        import json
        print(json.dumps(dict(res, model=args.model, backend=args.backend), indent=2))


def _backend(args, model, n_ctx: int):
    n_batch = min(args.batch_size, n_ctx)
    if args.backend == "llama.cpp":
        return LlamaCppBackend(str(model.path), n_ctx, n_batch, args.threads)
    return GgraphBackend(model, n_ctx, n_batch, args.threads)
