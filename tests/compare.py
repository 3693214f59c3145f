"""Agreement with llama.cpp: replay a reference fixture (scripts/make_llamacpp_fixtures.py) through
ggraph and measure it the way the project reports it.

KL divergence uses llama.cpp as P. Fixtures keep llama.cpp's top-K logits and the log-sum-exp of
each full row, so P is exact on those K ids; the remaining mass is lumped into one "rest" bin for
both P and Q. Lumping can only lower KL (coarse-graining), so with K=32-64 it is a close lower bound;
scripts/compare_llamacpp.py measures the full-vocabulary KL live.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))


def kl_topk(ref_ids: np.ndarray, ref_logits: np.ndarray, ref_lse: np.ndarray, ours: np.ndarray) -> np.ndarray:
    """Per-row KL(P_ref || Q_ours) with P known on ref_ids [rows, K] plus a lumped rest bin."""
    lp = ref_logits.astype(np.float64) - ref_lse[:, None]
    lq_all = log_softmax(ours)
    lq = np.take_along_axis(lq_all, ref_ids.astype(np.int64), 1)
    p, q = np.exp(lp), np.exp(lq)
    p_rest = np.clip(1.0 - p.sum(1), 1e-300, 1.0)
    q_rest = np.clip(1.0 - q.sum(1), 1e-300, 1.0)
    return (p * (lp - lq)).sum(1) + p_rest * np.log(p_rest / q_rest)


def kl_full(ref: np.ndarray, ours: np.ndarray) -> np.ndarray:
    lp, lq = log_softmax(ref), log_softmax(ours)
    return (np.exp(lp) * (lp - lq)).sum(-1)


@dataclass
class Agreement:
    mean_kl: float
    max_kl: float
    top1: float
    same_continuations: int
    n_prompts: int
    n_positions: int

    @property
    def frac_same(self) -> float:
        return self.same_continuations / self.n_prompts

    def __str__(self) -> str:
        return (f"mean KL {self.mean_kl:.3g} (max {self.max_kl:.3g}), top-1 {self.top1:.4f} over "
                f"{self.n_positions} positions, identical greedy continuations {self.same_continuations}/"
                f"{self.n_prompts}")


def prompt_then_greedy(ctx, ids, n_gen: int):
    """The fixtures' recipe on ggraph: prompt in one batch (logits at every position), then
    n_gen greedy tokens one per step. Returns (logits [len(ids), n_vocab], generated ids)."""
    ctx.reset()
    logits = ctx.decode(ids, logits_all=True)
    gen, tok = [], int(logits[-1].argmax())
    for _ in range(n_gen):
        gen.append(tok)
        if len(gen) == n_gen:
            break
        tok = int(ctx.decode([tok]).argmax())
    return logits, gen


def replay_fixture(model, fixture_path: str, n_prompts: int | None = None, n_ctx: int = 512,
                   n_threads: int | None = None) -> Agreement:
    """Feed each fixture prompt in one batch (logits for all positions), then continue greedily one
    token per step, exactly as the fixture was made with llama.cpp."""
    fx = np.load(fixture_path)
    off, goff = fx["offsets"], fx["gen_offsets"]
    n = len(off) - 1 if n_prompts is None else min(n_prompts, len(off) - 1)
    ctx = model.new_context(n_ctx=n_ctx, n_threads=n_threads)
    kls, top1, same = [], [], 0
    for i in range(n):
        a, b = off[i], off[i + 1]
        ref_gen = fx["gen"][goff[i]:goff[i + 1]].tolist()
        logits, gen = prompt_then_greedy(ctx, fx["ids"][a:b], len(ref_gen))
        kls.append(kl_topk(fx["top_ids"][a:b], fx["top_logits"][a:b], fx["lse"][a:b], logits))
        top1.append(logits.argmax(1) == fx["top_ids"][a:b, 0])
        same += gen == ref_gen
    kl = np.concatenate(kls)
    return Agreement(float(kl.mean()), float(kl.max()), float(np.concatenate(top1).mean()), same, n, int(kl.size))


def assert_bit_exact_with_fixture(model, fixture_path: str, n_threads: int = 2) -> None:
    """Every prompt of the fixture: our logits at llama.cpp's top-k ids equal its logits bit for bit,
    and the greedy continuations are the same tokens."""
    fx = np.load(fixture_path)
    ctx = model.new_context(n_ctx=512, n_threads=n_threads)
    off, goff = fx["offsets"], fx["gen_offsets"]
    for i in range(len(off) - 1):
        a, b = off[i], off[i + 1]
        ref_gen = fx["gen"][goff[i]:goff[i + 1]].tolist()
        logits, gen = prompt_then_greedy(ctx, fx["ids"][a:b], len(ref_gen))
        ours = np.take_along_axis(logits, fx["top_ids"][a:b].astype(np.int64), axis=1)
        assert np.array_equal(ours, fx["top_logits"][a:b]), f"{fixture_path}: prompt {i}: logits differ"
        assert gen == ref_gen, f"{fixture_path}: prompt {i}: continuation differs"


def llamacpp_self_spread(fixture_path: str) -> Agreement:
    """llama.cpp against itself, recorded in the fixture: the same prompts fed token by token
    instead of in one batch (full-vocabulary KL with the batch run as P, top-1, continuations)."""
    fx = np.load(fixture_path)
    kl = fx["self_kl"]
    same = int(fx["self_same"].sum())
    return Agreement(float(kl.mean()), float(kl.max()), float(fx["self_top1"].mean()), same,
                     int(fx["self_same"].size), int(kl.size))


def assert_routing_matches_fixture(model_path: str, fixture_path: str, quantized: bool, every: int = 3) -> int:
    """Layer 0's selected experts (ffn_moe_topk-0, best first) against the independent float64 numpy
    routing stored in the fixture (l0_experts / l0_probs), on every `every`-th prompt; for quantized
    weights, whose activations llama.cpp rounds to 8 bits first, only where the 1st, 2nd and 3rd
    experts are each more than 0.05 apart. Returns the number of positions checked."""
    from conftest import load_script
    fx = np.load(fixture_path)
    dump = load_script("llamacpp_dump")
    off, k = fx["offsets"], fx["l0_experts"].shape[1]
    checked = 0
    for i in range(0, len(off) - 1, every):
        a, b = off[i], off[i + 1]
        nodes = dump.ggraph_nodes(model_path, fx["ids"][a:b].tolist())
        ours = np.asarray(nodes["ffn_moe_topk-0"]).reshape(b - a, k)
        ref, probs = fx["l0_experts"][a:b], np.sort(fx["l0_probs"][a:b], axis=1)[:, ::-1]
        gaps = -np.diff(probs[:, :3], axis=1)
        keep = (gaps > 0.05).all(axis=1) if quantized else np.ones(b - a, bool)
        assert np.array_equal(ours[keep], ref[keep]), f"{fixture_path}: prompt {i}: experts differ"
        checked += int(keep.sum())
    return checked
