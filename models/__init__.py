"""Architecture registry: general.architecture -> model class (one file per architecture).

Other packages add architectures with `ggraph.register_model(cls)`, or without being imported by
declaring an entry point in the group "ggraph.models" (name: the arch, value: "module:Class");
docs/adding-a-model.md walks through one."""
from importlib.metadata import entry_points

from ggraph.errors import GGraphError
from ggraph.model_base import ModelBase

from .bloom import BloomModel
from .gemma2 import Gemma2Model
from .gemma3 import Gemma3Model
from .gpt2 import Gpt2Model
from .granite import GraniteModel
from .llama import LlamaModel
from .olmoe import OlmoeModel
from .phi3 import Phi3Model
from .qwen2 import Qwen2Model
from .qwen2moe import Qwen2MoeModel
from .qwen3 import Qwen3Model, Qwen3MoeModel

ARCHITECTURES = {cls.arch: cls for cls in (LlamaModel, BloomModel, Gemma2Model, Gemma3Model, Gpt2Model, GraniteModel, OlmoeModel,
                                               Phi3Model, Qwen2Model, Qwen2MoeModel, Qwen3Model, Qwen3MoeModel)}
ENTRY_POINT_GROUP = "ggraph.models"


def register_model(cls, replace: bool = False):
    """Make cls (a ModelBase subclass with a non-empty `arch`) the model class of its architecture.
    Returns cls, so it works as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, ModelBase)) or not getattr(cls, "arch", ""):
        raise GGraphError(f"register_model: {cls!r} is not a ModelBase subclass with an `arch` name")
    if cls.arch in ARCHITECTURES and ARCHITECTURES[cls.arch] is not cls and not replace:
        raise GGraphError(f"register_model: architecture '{cls.arch}' is already registered "
                          f"({ARCHITECTURES[cls.arch].__name__}); pass replace=True to override it")
    ARCHITECTURES[cls.arch] = cls
    return cls


def _from_entry_points(arch: str):
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == arch:
            try:
                cls = ep.load()
            except Exception as e:     # a broken plugin: say which
                raise GGraphError(f"architecture '{arch}': entry point {ep.value} failed to load: {e}") from e
            return register_model(cls)
    return None


def model_class(arch: str):
    cls = ARCHITECTURES.get(arch) or _from_entry_points(arch)
    if cls is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise GGraphError(f"unknown model architecture '{arch}' (known: {known}; others can be added "
                          f"with ggraph.register_model)")
    return cls
