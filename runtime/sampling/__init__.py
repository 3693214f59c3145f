"""Sampling: logits -> chosen token, as llama.cpp's sampler chain.

    chain.py       SamplerParams (common_params_sampling) and SamplerChain (common_sampler)
    samplers.py    the individual samplers of src/llama-sampler.cpp, one class each
    candidates.py  TokenDataArray (llama_token_data_array) and its stable sorts
    kernels.py     Numba loops over the whole vocabulary
    rng.py         seeds and std::mt19937 draws
"""
from .candidates import TokenDataArray
from .chain import DEFAULT_SAMPLERS, SamplerChain, SamplerParams
from .rng import LLAMA_DEFAULT_SEED, StdMT19937, resolve_seed
from .samplers import XTC, Dist, Greedy, LogitBias, MinP, Penalties, Sampler, Temperature, TopK, TopNSigma, TopP, Typical

__all__ = [
    "SamplerParams", "SamplerChain", "DEFAULT_SAMPLERS", "LLAMA_DEFAULT_SEED", "TokenDataArray",
    "Sampler", "Greedy", "Dist", "TopK", "TopP", "MinP", "Typical", "Temperature", "Penalties",
    "TopNSigma", "XTC", "LogitBias", "StdMT19937", "resolve_seed",
]
