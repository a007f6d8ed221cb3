"""``AmpOptimWrapper`` where an accelerator is, fp32 ``OptimWrapper`` where none is.

mmengine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device when built, so an mmlk
recipe (AMP, as the papers trained) fails in mmseg's or mmdet's own ``tools/train.py`` on a
CPU, and the obvious ``--cfg-options optim_wrapper.type=OptimWrapper`` fails on the recipe's
``loss_scale``. This wrapper takes ``AmpOptimWrapper``'s arguments, so one override makes any
recipe train on a CPU with the upstream scripts (README "Using mmlk configs from another
project")::

    python tools/train.py CONFIG \
        --cfg-options optim_wrapper.type=mmlk.AmpOptimWrapperWithCPUFallback
"""
from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                             is_npu_available)
from mmengine.logging import MMLogger
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmlk.registry import OPTIM_WRAPPERS

__all__ = ['AmpOptimWrapperWithCPUFallback']

# AmpOptimWrapper's own arguments, which OptimWrapper does not take.
_AMP_ONLY = ('loss_scale', 'dtype', 'use_fsdp')


def _amp_device_available() -> bool:
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapperWithCPUFallback(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (mixed precision, Micikevicius et al., *Mixed Precision
    Training*, ICLR 2018) when an accelerator is available; otherwise, with one warning, a
    plain fp32 ``OptimWrapper`` built from the same arguments (the AMP-only ones dropped)."""

    def __new__(cls, *args, **kwargs):
        if _amp_device_available():
            return super().__new__(cls)
        MMLogger.get_current_instance().warning(
            'No GPU: AmpOptimWrapperWithCPUFallback trains in fp32 with OptimWrapper '
            f'(ignoring {", ".join(k for k in _AMP_ONLY if k in kwargs) or "no AMP argument"})')
        return OptimWrapper(*args, **{k: v for k, v in kwargs.items() if k not in _AMP_ONLY})
