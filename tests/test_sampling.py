"""Sampler chain (runtime/samplers.py, runtime/sampling.py) against small independent computations."""

import math

import numpy as np
import pytest

from ggraph.errors import GGraphError
from ggraph.runtime.sampling import (
    XTC, Dist, Greedy, LogitBias, MinP, Penalties, SamplerChain, SamplerParams, StdMT19937,
    Temperature, TokenDataArray, TopK, TopNSigma, TopP, Typical,
)

# fixed logits without ties: token 1 is the arg-max, then 5, 2, 0, 4, 7, 3, 6
L = np.array([1.0, 3.0, 2.0, -1.0, 0.5, 2.5, -2.0, 0.0], dtype=np.float32)


def run(sampler, logits=L):
    cur = TokenDataArray.from_logits(logits)
    sampler.apply(cur)
    return cur


def softmax64(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def desc_order(x):
    """Descending by value, ties by position."""
    return np.lexsort((np.arange(len(x)), -np.asarray(x)))


# --- top-k -----------------------------------------------------------------------------------------

def test_top_k_keeps_k_largest_sorted():
    cur = run(TopK(3))
    assert cur.ids.tolist() == [1, 5, 2]
    assert cur.logits.tolist() == [3.0, 2.5, 2.0]
    assert cur.sorted


@pytest.mark.parametrize("k", [0, -1])
def test_top_k_disabled(k):
    cur = run(TopK(k))
    assert cur.ids.tolist() == list(range(8)) and not cur.sorted


def test_top_k_larger_than_vocab_sorts_all():
    assert run(TopK(100)).ids.tolist() == desc_order(L).tolist()


def test_top_k_large_vocab_and_ties():
    x = np.random.default_rng(0).standard_normal(50_000).astype(np.float32)
    x[[10, 20, 30]] = 9.0  # tie at the top: kept in position order
    for k in (1, 3, 40, 300, 20_000):
        assert run(TopK(k), x).ids.tolist() == desc_order(x)[:k].tolist()


# --- top-p -----------------------------------------------------------------------------------------

def top_p_ref(x, p, min_keep=1):
    order = desc_order(x)
    c = np.cumsum(softmax64(x)[order])
    n = next((i + 1 for i in range(len(c)) if c[i] >= p and i + 1 >= min_keep), len(c))
    return order[:n].tolist()


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.8, 0.9, 0.99])
def test_top_p_smallest_prefix_reaching_p(p):
    cur = run(TopP(p))
    assert cur.ids.tolist() == top_p_ref(L, p)
    assert cur.sorted


def test_top_p_min_keep_and_noop():
    assert run(TopP(0.3, min_keep=4)).ids.tolist() == top_p_ref(L, 0.3, 4) == [1, 5, 2, 0]
    cur = run(TopP(1.0))
    assert cur.ids.tolist() == list(range(8)) and not cur.sorted


@pytest.mark.parametrize("scale,p", [(4.0, 0.9), (1.0, 0.5), (0.3, 0.95)])
def test_top_p_large_vocab(scale, p):
    # > 1024 candidates: exercises the top-256 / top-4096 attempts and the full sort
    x = (np.random.default_rng(1).standard_normal(5000) * scale).astype(np.float32)
    assert run(TopP(p), x).ids.tolist() == top_p_ref(x, p)


# --- min-p -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.61, 1.0])
def test_min_p_keeps_relative_probability(p):
    probs = softmax64(L)
    expect = [i for i in range(8) if probs[i] >= p * probs.max()]  # unsorted input keeps its order
    assert run(MinP(p)).ids.tolist() == expect


def test_min_p_min_keep_falls_back_to_sorted():
    cur = run(MinP(0.9, min_keep=3))
    assert cur.ids.tolist() == [1, 5, 2] and cur.sorted
    assert run(MinP(0.0)).ids.tolist() == list(range(8))  # p <= 0: no-op


# --- typical ---------------------------------------------------------------------------------------

def typical_ref(x, p, min_keep=1):
    order = desc_order(x)
    probs = softmax64(x)[order]
    h = -(probs * np.log(probs)).sum()
    score = np.abs(-np.log(probs) - h)
    o2 = np.lexsort((np.arange(len(score)), score))
    c = np.cumsum(probs[o2])
    n = next((i + 1 for i in range(len(c)) if c[i] > p and (min_keep == 0 or i >= min_keep - 1)), len(c))
    return order[o2[:n]].tolist()


@pytest.mark.parametrize("p", [0.1, 0.3, 0.6, 0.9])
def test_typical(p):
    cur = run(Typical(p))
    assert cur.ids.tolist() == typical_ref(L, p)
    assert not cur.sorted


def test_typical_min_keep_and_noop():
    assert run(Typical(0.01, min_keep=3)).ids.tolist() == typical_ref(L, 0.01, 3)
    assert run(Typical(1.0)).ids.tolist() == list(range(8))


# --- temperature -----------------------------------------------------------------------------------

def test_temperature_scales_logits():
    np.testing.assert_array_equal(run(Temperature(0.5)).logits, L / np.float32(0.5))
    np.testing.assert_array_equal(run(Temperature(1.0)).logits, L)


@pytest.mark.parametrize("t", [0.0, -1.0])
def test_temperature_zero_keeps_only_argmax(t):
    lg = run(Temperature(t)).logits
    assert lg[1] == 3.0 and np.isneginf(np.delete(lg, 1)).all()


def test_dynamic_temperature():
    cur = run(Temperature(1.0, delta=0.5, exponent=1.0))
    probs = softmax64(L)
    h = -(probs * np.log(probs)).sum() / math.log(8)  # normalised entropy
    t = 0.5 + (1.5 - 0.5) * h
    order = desc_order(L)
    assert cur.ids.tolist() == order.tolist()
    np.testing.assert_allclose(cur.logits, L[order] / t, rtol=1e-5)
    np.testing.assert_allclose(cur.p, softmax64(L[order] / t), rtol=1e-5)


# --- penalties -------------------------------------------------------------------------------------

def test_repeat_penalty_positive_and_negative_logits():
    pen = Penalties(last_n=64, repeat=2.0)
    for t in (1, 3, 3):
        pen.accept(t)
    lg = run(pen).logits
    assert lg[1] == 1.5       # positive: divided
    assert lg[3] == -2.0      # negative: multiplied
    np.testing.assert_array_equal(np.delete(lg, [1, 3]), np.delete(L, [1, 3]))


def test_frequency_and_presence_penalties():
    pen = Penalties(last_n=64, repeat=1.0, freq=0.25, present=0.5)
    for t in (0, 2, 2, 2):
        pen.accept(t)
    lg = run(pen).logits
    assert lg[0] == np.float32(1.0 - 1 * 0.25 - 0.5)
    assert lg[2] == np.float32(2.0 - 3 * 0.25 - 0.5)
    np.testing.assert_array_equal(np.delete(lg, [0, 2]), np.delete(L, [0, 2]))


def test_penalty_window_and_reset():
    pen = Penalties(last_n=2, repeat=2.0)
    for t in (1, 2, 4):      # window keeps the last two: 2 and 4
        pen.accept(t)
    assert pen.history == [2, 4]
    lg = run(pen).logits
    assert lg[1] == 3.0 and lg[2] == 1.0 and lg[4] == 0.25
    pen.reset()
    np.testing.assert_array_equal(run(pen).logits, L)


def test_penalty_last_n_zero_and_minus_one():
    off = Penalties(last_n=0, repeat=2.0)
    off.accept(1)
    np.testing.assert_array_equal(run(off).logits, L)
    everything = Penalties(last_n=-1, repeat=2.0)
    for t in [1] + [0] * 500:
        everything.accept(t)
    assert run(everything).logits[1] == 1.5   # still in the window after 500 more tokens


def test_penalties_on_reordered_candidates():
    pen = Penalties(last_n=8, repeat=2.0, freq=0.5)
    pen.accept(5)
    cur = run(TopK(3))               # ids 1, 5, 2 (not the identity any more)
    pen.apply(cur)
    assert cur.ids.tolist() == [1, 5, 2]
    assert cur.logits.tolist() == [3.0, 2.5 / 2 - 0.5, 2.0]
    assert not cur.sorted


# --- top-n-sigma, xtc, logit bias ------------------------------------------------------------------

def test_top_n_sigma():
    lg = run(TopNSigma(1.0)).logits
    keep = L >= L.max() - L.std()
    np.testing.assert_array_equal(lg[keep], L[keep])
    assert np.isneginf(lg[~keep]).all()


def test_xtc_removes_top_choices_but_the_least_probable():
    probs = softmax64(L)
    above = [int(i) for i in desc_order(L) if probs[i] >= 0.1]   # 1, 5, 2, 0
    cur = run(XTC(1.0, 0.1, min_keep=1, seed=3))
    assert cur.ids.tolist() == desc_order(L)[len(above) - 1:].tolist()
    assert run(XTC(1.0, 0.6, seed=3)).ids.tolist() == list(range(8))   # threshold > 0.5: off


def test_logit_bias_bans_token():
    chain = SamplerChain([LogitBias({1: -math.inf, 6: 1.0}), Greedy()], 8)
    cur = chain.apply(L)
    assert cur.token() == 5 and cur.logits[6] == -1.0


# --- greedy and the chain at temp 0 ----------------------------------------------------------------

def test_greedy_is_argmax():
    rng = np.random.default_rng(2)
    chain = SamplerChain.greedy()
    for _ in range(20):
        x = rng.standard_normal(3000).astype(np.float32)
        assert chain.sample(x) == int(np.argmax(x))
    assert chain.sample(np.array([0.0, 2.0, 2.0], np.float32)) == 1   # first of equal maxima


def test_temp_zero_chain_is_argmax_and_input_untouched():
    rng = np.random.default_rng(3)
    chain = SamplerChain.from_params(SamplerParams(temp=0.0, seed=7), 5000)
    for _ in range(20):
        x = (rng.standard_normal(5000) * 3).astype(np.float32)
        before = x.copy()
        assert chain.sample(x) == int(np.argmax(x))
        np.testing.assert_array_equal(x, before)


def test_penalties_in_chain_after_accept():
    chain = SamplerChain.from_params(SamplerParams(temp=0.0, repeat_penalty=4.0, seed=1), 8)
    assert chain.sample(L) == 1
    chain.accept(1)                  # 3.0 / 4 = 0.75 < 2.5
    assert chain.sample(L) == 5
    chain.reset()
    assert chain.sample(L) == 1


# --- dist and the RNG ------------------------------------------------------------------------------

class PyMT19937:
    """Textbook MT19937 (Matsumoto & Nishimura, init_genrand) written out independently of numpy."""

    def __init__(self, seed):
        self.mt = [seed & 0xFFFFFFFF]
        for i in range(1, 624):
            self.mt.append((1812433253 * (self.mt[-1] ^ (self.mt[-1] >> 30)) + i) & 0xFFFFFFFF)
        self.i = 624

    def __call__(self):
        if self.i >= 624:
            for k in range(624):
                y = (self.mt[k] & 0x80000000) | (self.mt[(k + 1) % 624] & 0x7FFFFFFF)
                self.mt[k] = self.mt[(k + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            self.i = 0
        y = self.mt[self.i]
        self.i += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        return y ^ (y >> 18)


def test_mt19937_matches_the_standard_engine():
    # C++ [rand.predef]: the 10000th output of a default-constructed std::mt19937 (seed 5489) is 4123659995
    assert int(StdMT19937(5489).next_u32(10000)[-1]) == 4123659995
    for seed in (0, 1, 1234, 0xFFFFFFFE):
        ref = PyMT19937(seed)
        assert StdMT19937(seed).next_u32(700).tolist() == [ref() for _ in range(700)]


def test_uniform_double_is_libstdcxx_generate_canonical():
    # libstdc++ generate_canonical<double, 53> with a 32-bit engine uses two outputs a, b:
    # u = double(a + b * 2^32) / 2^64. std::mt19937(1234) starts 822569775, 2137449171, 2671936806,
    # 3512589365, 1880026316, 2629000564 (PyMT19937 above), so u1..u3 are:
    rng = StdMT19937(1234)
    assert rng.uniform_double() == (822569775 + 2137449171 * 2.0**32) / 2.0**64 == 0.49766366630595166
    assert rng.uniform_double() == (2671936806 + 3512589365 * 2.0**32) / 2.0**64 == 0.8178384428895332
    assert rng.uniform_double() == (1880026316 + 2629000564 * 2.0**32) / 2.0**64 == 0.6121118935844228
    # uniform_real_distribution<float>: one output, float(a) / 2^32
    assert StdMT19937(1234).uniform_float() == np.float32(822569775) / np.float32(2.0**32)


def test_dist_picks_first_running_sum_reaching_u_times_total():
    # p = 0.1, 0.2, 0.3, 0.4 in candidate order -> running sums 0.1, 0.3, 0.6, 1.0.
    # seed 1234 draws u = 0.4977, 0.8178, 0.6121 (test above) -> tokens 2, 3, 3.
    x = np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    chain = SamplerChain([Dist(1234)], 4)
    assert [chain.sample(x) for _ in range(3)] == [2, 3, 3]
    chain.reset()                                             # a fixed seed restarts its sequence
    assert chain.sample(x) == 2
    np.testing.assert_allclose(chain.last.p, [0.1, 0.2, 0.3, 0.4], rtol=1e-6)


def test_dist_single_candidate_still_draws():
    d = Dist(1234)
    cur = run(TopK(1))
    d.apply(cur)
    assert cur.token() == 1
    cur = TokenDataArray.from_logits(np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32)))
    d.apply(cur)
    assert cur.token() == 3          # second draw u = 0.8178


def test_same_seed_same_sequence_different_seed_differs():
    rng = np.random.default_rng(4)
    xs = [(rng.standard_normal(1000) * 2).astype(np.float32) for _ in range(100)]

    def seq(seed):
        chain = SamplerChain.from_params(SamplerParams(seed=seed, top_k=0, min_p=0.0, top_p=1.0), 1000)
        out = []
        for x in xs:
            out.append(chain.sample(x))
            chain.accept(out[-1])
        return out

    a = seq(42)
    assert a == seq(42)
    assert a != seq(43)
    chain = SamplerChain.from_params(SamplerParams(seed=None), 1000)
    assert 0 <= chain.seed <= 0xFFFFFFFF


def test_random_seed_values():
    for s in (None, -1, 0xFFFFFFFF):
        chain = SamplerChain.from_params(SamplerParams(seed=s), 8)
        assert isinstance(chain.seed, int)


def test_dist_frequencies_match_softmax():
    x = np.array([0.0, 1.0, 2.0, -0.5, 1.5], np.float32)
    chain = SamplerChain([Dist(99)], 5)
    n = 40_000
    counts = np.bincount([chain.sample(x) for _ in range(n)], minlength=5)
    p = softmax64(x)
    np.testing.assert_allclose(counts / n, p, atol=4 * np.sqrt(p * (1 - p) / n).max())


def test_chain_frequencies_after_top_k_and_temperature():
    p_ = SamplerParams(top_k=3, top_p=1.0, min_p=0.0, temp=0.5, seed=5)
    chain = SamplerChain.from_params(p_, 8)
    n = 20_000
    counts = np.bincount([chain.sample(L) for _ in range(n)], minlength=8)
    expect = np.zeros(8)
    expect[[1, 5, 2]] = softmax64(L[[1, 5, 2]] / 0.5)
    np.testing.assert_allclose(counts / n, expect, atol=0.015)


# --- chain construction, accept, validation --------------------------------------------------------

def test_default_chain_order():
    assert repr(SamplerChain.from_params(SamplerParams(), 8)) == "logits -> top-k -> top-p -> min-p -> temp -> dist"
    p = SamplerParams(repeat_penalty=1.1, typical_p=0.9, top_n_sigma=1.0, xtc_probability=0.5, temp=1.0)
    assert repr(SamplerChain.from_params(p, 8)) == (
        "logits -> penalties -> top-n-sigma -> top-k -> typical -> top-p -> min-p -> xtc -> dist")
    p = SamplerParams(samplers="temp;top_k", seed=1)
    assert repr(SamplerChain.from_params(p, 8)) == "logits -> temp -> top-k -> dist"


def test_sample_checks_logits_and_accept_checks_tokens():
    chain = SamplerChain.from_params(SamplerParams(), 8)
    with pytest.raises(GGraphError, match="vocabulary has 8"):
        chain.sample(np.zeros(9, np.float32))
    with pytest.raises(GGraphError, match="1-D"):
        chain.sample(np.zeros((2, 8), np.float32))
    for bad in (8, -1, 1.5):
        with pytest.raises(GGraphError, match="token"):
            chain.accept(bad)
    with pytest.raises(GGraphError, match="Dist or Greedy"):
        SamplerChain([TopK(2)], 8).sample(L)


def test_llama_cpp_disabled_values_are_valid():
    SamplerParams(top_k=-1, top_p=1.0, min_p=0.0, temp=-1.0, repeat_last_n=-1, top_n_sigma=-1.0,
                  seed=0xFFFFFFFF, xtc_threshold=0.9).validate()


@pytest.mark.parametrize("name,value", [
    ("temp", float("nan")), ("temp", float("inf")), ("top_p", 1.5), ("top_p", -0.1), ("min_p", 2.0),
    ("typical_p", float("nan")), ("repeat_penalty", 0.0), ("repeat_penalty", -1.0),
    ("repeat_last_n", -2), ("top_k", 1.5), ("seed", -2), ("seed", 2**32), ("frequency_penalty", float("inf")),
    ("presence_penalty", "x"), ("min_keep", -1), ("xtc_probability", 1.5), ("samplers", ["top_k", "foo"]),
    ("samplers", "mirostat"), ("logit_bias", {8: 1.0}), ("logit_bias", {1: float("nan")}),
])
def test_bad_values_raise_naming_the_parameter(name, value):
    p = SamplerParams(**{name: value})
    with pytest.raises(GGraphError, match=name) as e:
        SamplerChain.from_params(p, 8)
    assert "\n" not in str(e.value)


def test_clone_keeps_state():
    chain = SamplerChain.from_params(SamplerParams(seed=11, repeat_penalty=1.5), 8)
    chain.accept(1)
    twin = chain.clone()
    assert [chain.sample(L) for _ in range(10)] == [twin.sample(L) for _ in range(10)]
