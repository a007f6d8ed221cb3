"""What differs between the torch versions mmlk supports: the one place that knows.

Every other module calls these instead of testing ``torch.__version__`` or ``hasattr`` itself.
torch 2.1 (the newest torch mmcv 2.1.0 publishes wheels for) lacks
``torch.compiler.is_compiling``, the device-generic autocast queries
(``torch.is_autocast_enabled(device)``, ``torch.get_autocast_dtype(device)``) and
``torch.serialization.safe_globals``; newer releases deprecate the spellings 2.1 has.
It also refuses, once, at the first use of anything that builds or loads a model (the ops and
the registry import this module), a stack mmlk does not support: a torch older than the oldest
tested one, or an mmcv that mmdet 3.3 / mmseg 1.2.2 refuse, in one line with the versions found
and the supported ones, instead of a traceback from inside an op.
Leaf module: imports nothing of mmlk and nothing of mmengine.
"""
import importlib.metadata
import re
from typing import Iterable, Optional, Tuple

import torch

__all__ = ['DEFAULT_ONNX_OPSET', 'HAS_CPU_FUSED_OPTIMIZERS', 'HAS_DYNAMO_ONNX_EXPORT',
           'HAS_SAFE_GLOBALS', 'SUPPORTED_STACKS', 'UnsupportedStackError', 'autocast_dtype',
           'check_stack', 'is_autocast_enabled', 'is_capturing', 'is_compiling', 'onnx_export',
           'register_step_post_hook',
           'safe_globals']

# The two stacks CI runs (scripts/setup_env.sh, README "Install"): (python, torch, torchvision).
SUPPORTED_STACKS = (('3.10', '2.1.2', '0.16.2'), ('3.11', '2.14.1', '0.29.1'))
MIN_TORCH = (2, 1)
# mmcv versions mmdet 3.3.0 and mmseg 1.2.2 accept (their __init__ asserts): [2.0.0rc4, 2.2.0).
MMCV_RANGE = ((2, 0, 0), (2, 2, 0))


class UnsupportedStackError(RuntimeError):
    """The installed torch or mmcv is outside what mmlk supports and tests. Not an
    ImportError: mmengine's registry swallows those and reports "mmlk.X is not registered"."""


def _release(version: str) -> Tuple[int, ...]:
    """``'2.1.2+cu121'`` -> ``(2, 1, 2)``; pre-releases count as their release."""
    match = re.match(r'(\d+(?:\.\d+)*)', version)
    return tuple(int(part) for part in match.group(1).split('.')) if match else ()


def _installed(distribution: str) -> Optional[str]:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_stack(torch_version: Optional[str] = None, mmcv_version: Optional[str] = None) -> None:
    """Raise :class:`UnsupportedStackError` naming what was found and what is supported.

    Defaults: the imported torch and the installed mmcv distribution (none installed: only
    torch is checked, mmlk's ops and backbones import mmcv themselves)."""
    torch_version = torch_version or torch.__version__
    mmcv_version = mmcv_version or _installed('mmcv')
    tested = '; '.join(f'Python {py} + torch {tv} + torchvision {vv}'
                       for py, tv, vv in SUPPORTED_STACKS)
    problems = []
    if _release(torch_version)[:2] < MIN_TORCH:
        problems.append(f'torch {torch_version} is older than the oldest supported '
                        f'torch {".".join(map(str, MIN_TORCH))}')
    if mmcv_version is not None:
        low, high = MMCV_RANGE
        if not low <= _release(mmcv_version)[:3] < high:
            problems.append(f'mmcv {mmcv_version} is refused by mmdet 3.3.0 / mmseg 1.2.2 '
                            f'(they accept mmcv >= 2.0.0rc4, < 2.2.0; mmlk pins 2.1.0)')
    if problems:
        raise UnsupportedStackError(
            f'mmlk does not support this environment: {"; ".join(problems)}. Tested stacks: '
            f'{tested}, each with mmcv 2.1.0, mmengine 0.10.7, mmdet 3.3.0, mmseg 1.2.2, '
            'mmpretrain 1.2.0 (scripts/setup_env.sh builds either: MMLK_STACK=current|legacy)')


# torch >= 2.4: an allow-list for torch's own weights-only unpickler.
HAS_SAFE_GLOBALS = hasattr(torch.serialization, 'safe_globals')


_TORCH = _release(torch.__version__)[:2]
# torch >= 2.4: fused Adam/AdamW/SGD for CPU tensors (torch 2.1 has them for GPUs only).
HAS_CPU_FUSED_OPTIMIZERS = _TORCH >= (2, 4)
# torch >= 2.5: torch.onnx.export(..., dynamo=True), the exporter torch 2.14 defaults to.
HAS_DYNAMO_ONNX_EXPORT = _TORCH >= (2, 5)
# The newest opset each exporter writes correctly (torch 2.1's TorchScript exporter stops at 17;
# asked for 18 it writes ReduceMean with an `axes` attribute, which opset 18 moved to an input).
DEFAULT_ONNX_OPSET = 18 if HAS_DYNAMO_ONNX_EXPORT else 17


def onnx_export(model: torch.nn.Module, args: tuple, path: str, dynamic_hw: int = 0,
                **kwargs) -> None:
    """``torch.onnx.export`` to one self-contained file: torch's dynamo exporter where it
    exists (torch >= 2.5, weights inside the file), the TorchScript exporter on older torch
    (which writes one file below protobuf's 2 GB). ``dynamic_hw=S`` exports the input's height
    and width as free multiples of ``S`` (the network's total stride), the output sizes
    following; 0 fixes them to the example input's."""
    if HAS_DYNAMO_ONNX_EXPORT:
        if dynamic_hw:
            from torch.export import Dim
            blocks = (Dim('height_blocks', min=1, max=1024), Dim('width_blocks', min=1, max=1024))
            kwargs['dynamic_shapes'] = ({2: dynamic_hw * blocks[0], 3: dynamic_hw * blocks[1]}, )
        torch.onnx.export(model, args, path, dynamo=True, external_data=False, **kwargs)
    else:
        if dynamic_hw:
            names = list(kwargs.get('input_names', [])) + list(kwargs.get('output_names', []))
            kwargs['dynamic_axes'] = {name: {2: f'{name}_height', 3: f'{name}_width'}
                                      for name in names}
        torch.onnx.export(model, args, path, **kwargs)


# Resolved once: torch 2.1's dynamo cannot trace the attribute probes that would pick it per call.
if hasattr(getattr(torch, 'compiler', None), 'is_compiling'):
    _dynamo_is_compiling = torch.compiler.is_compiling
else:  # torch < 2.3 (0.3 s to import, paid on that stack only)
    from torch._dynamo import is_compiling as _dynamo_is_compiling


def is_compiling() -> bool:
    """True while torch.compile / dynamo (torch.export included) traces the caller."""
    return bool(_dynamo_is_compiling())


def is_capturing() -> bool:
    """True while the caller is being captured into a graph rather than run: torch.compile,
    torch.export, torch.jit tracing/scripting, ONNX export. Such graphs get the plain aten ops
    (no custom autograd functions, no activation checkpointing: no backward will come)."""
    return (is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.onnx.is_in_onnx_export())


# torch 2.1: the first torch.compile/torch.export in a process (dynamo's TorchPatcher) strips
# from every optimizer class the step wrapper that runs step hooks, so hooks registered with
# register_step_post_hook silently stop firing (the sparse engine's masks would then never be
# applied again). Fixed upstream by torch 2.2 (not reproduced on 2.14).
STEP_HOOKS_CAN_BE_STRIPPED = _TORCH < (2, 2)


def _class_step_runs_hooks(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the class's ``step`` is still torch's hook-running wrapper (functools.wraps
    copies the name, not the code: the code is ``wrapper`` in torch/optim/optimizer.py)."""
    code = getattr(type(optimizer).step, '__code__', None)
    return (code is not None and code.co_name == 'wrapper'
            and code.co_filename.replace('\\', '/').endswith('torch/optim/optimizer.py'))


def register_step_post_hook(optimizer: torch.optim.Optimizer, hook):
    """``optimizer.register_step_post_hook(hook)`` that keeps firing on torch 2.1 after a
    dynamo capture anywhere in the process: there the optimizer's ``step`` (whatever wraps it
    now, e.g. the LR schedulers' call counters) is wrapped once per instance by a function
    that runs the step hooks itself whenever the class no longer does (never both)."""
    handle = optimizer.register_step_post_hook(hook)
    if not STEP_HOOKS_CAN_BE_STRIPPED or getattr(optimizer, '_mmlk_keeps_step_hooks', False):
        return handle
    from itertools import chain

    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks
    inner = optimizer.step

    def step(*args, **kwargs):
        if _class_step_runs_hooks(optimizer):
            return inner(*args, **kwargs)
        hook_args = (optimizer, *args)
        for pre_hook in chain(_global_optimizer_pre_hooks.values(),
                              optimizer._optimizer_step_pre_hooks.values()):
            result = pre_hook(optimizer, hook_args, kwargs)
            if result is not None:
                hook_args, kwargs = result
        out = inner(*hook_args[1:], **kwargs)
        for post_hook in chain(optimizer._optimizer_step_post_hooks.values(),
                               _global_optimizer_post_hooks.values()):
            post_hook(optimizer, hook_args, kwargs)
        return out

    optimizer.step = step
    optimizer._mmlk_keeps_step_hooks = True
    return handle


def is_autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` ('cpu', 'cuda', ...)."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4: no device argument
        if device_type == 'cpu':
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())


def autocast_dtype(device_type: str) -> torch.dtype:
    """The dtype autocast casts to on ``device_type``."""
    if hasattr(torch, 'get_autocast_dtype'):
        return torch.get_autocast_dtype(device_type)
    if device_type == 'cpu':  # torch < 2.4
        return torch.get_autocast_cpu_dtype()
    return torch.get_autocast_gpu_dtype()


def safe_globals(objects: Iterable):
    """Context manager allowing ``objects`` in torch's weights-only unpickler (torch >= 2.4;
    callers use a restricted pickle module on older torch, see ``mmlk.core.safe_load``)."""
    if not HAS_SAFE_GLOBALS:
        raise RuntimeError('torch.serialization.safe_globals needs torch >= 2.4')
    return torch.serialization.safe_globals(list(objects))


check_stack()  # at the first import: before any op or model of mmlk runs
