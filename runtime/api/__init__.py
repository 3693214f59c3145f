"""llama-cpp-python's API on ggraph's runtime (`ggraph.Llama`; usage in llama.py's docstring).

    llama.py       the Llama class: model + one context, prefix reuse, completions, chat
    completion.py  one completion: tokens -> released text pieces -> OpenAI dicts / chunks
    chat.py        chat template rendering, message checks, chat.completion(.chunk) shapes
    sampler.py     llama-cpp-python's sampling arguments -> SamplerChain
    stop.py        stop strings on text across token boundaries (nothing partial released)
    detok.py       ids -> bytes as llama-cpp-python shows them
    logprobs.py    OpenAI completion logprobs (float64 log-softmax of the raw logits)
    hooks.py       LogitsProcessorList, StoppingCriteriaList
"""
from ..sampling import LLAMA_DEFAULT_SEED
from .hooks import LogitsProcessorList, StoppingCriteriaList
from .llama import Llama

__all__ = ["Llama", "LLAMA_DEFAULT_SEED", "LogitsProcessorList", "StoppingCriteriaList"]
