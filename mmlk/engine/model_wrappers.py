"""The model a hook works on, whatever wrapper the Runner put around it."""
from mmengine.model import is_model_wrapper
from torch import nn

__all__ = ['unwrap_model']


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a model wrapper (mmengine's DDP/FSDP wrappers, torch's DDP), or
    ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
