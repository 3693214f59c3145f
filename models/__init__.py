"""Architecture registry: general.architecture -> model class (one file per architecture)."""
from ggraph.errors import GGraphError

from .gemma3 import Gemma3Model
from .llama import LlamaModel

ARCHITECTURES = {cls.arch: cls for cls in (LlamaModel, Gemma3Model)}


def model_class(arch: str):
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise GGraphError(f"unknown model architecture '{arch}' (known: {known})") from None
