"""What every mmlk backbone shares: the downstream API of mmpretrain/mmdet/mmseg backbones.

``out_indices`` validation, ``frozen_stages`` + ``norm_eval`` applied on every ``train()``,
``switch_to_deploy`` for re-parameterisable blocks, and a ``Pretrained`` init that reads
official checkpoint containers and refuses checkpoints that do not fit (mmengine's own
``Pretrained`` init loads with ``strict=False`` and would load an official ``{'model': ...}``
file as nothing but a warning).
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmlk.ops import switch_to_deploy
from mmlk.core.validation import check_range
from mmlk.core.checkpoint_io import (CheckpointMismatchError, CheckpointReadError,
                                load_checkpoint_file, load_state_dict_checked, strip_prefix,
                                unwrap_state_dict)

__all__ = ['LargeKernelBackbone', 'require_upstream_value', 'init_cfg_from_pretrained']


def require_upstream_value(owner: str, name: str, value, accepted: Sequence,
                           meaning: str) -> None:
    """Refuse a value of an upstream (mmdet/mmpretrain) argument that this backbone cannot
    honour: a ValueError naming the argument, what it means and the accepted values, instead of
    silently building another network."""
    normalised = tuple(value) if isinstance(value, list) else value
    if not any(normalised == a and type(normalised) is type(a) for a in accepted):
        raise ValueError(f'{owner}: {name}={value!r} is not supported ({meaning}); accepted: '
                         f'{", ".join(repr(a) for a in accepted)}')


def init_cfg_from_pretrained(owner: str, pretrained: Optional[str],
                             init_cfg: Optional[Union[dict, List[dict]]]):
    """mmdet/mmseg's deprecated ``pretrained=PATH`` argument as the ``init_cfg`` it stands for
    (``dict(type='Pretrained', checkpoint=PATH)``), as their own backbones convert it."""
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, str):
        raise TypeError(f'{owner}: pretrained must be a checkpoint path (str) or None, got '
                        f'{type(pretrained).__name__}')
    if init_cfg is not None:
        raise ValueError(f'{owner}: pass either pretrained={pretrained!r} or init_cfg, not both '
                         "(pretrained is the deprecated spelling of init_cfg=dict("
                         "type='Pretrained', checkpoint=...))")
    return dict(type='Pretrained', checkpoint=pretrained)


class LargeKernelBackbone(BaseModule):
    """Base class of mmlk's backbones (not registered; subclasses build the network).

    Subclasses set ``num_stages``, call :meth:`_check_out_indices` in their constructor, and
    override:

    * :meth:`_freeze_stages` — put the frozen part in eval mode without gradients;
    * :meth:`_default_init` — the official initialisation when ``init_cfg`` is None;
    * :meth:`convert_official_keys`, :meth:`_may_miss` and :meth:`_may_ignore` — how an
      official checkpoint's keys map onto the module, which module tensors a checkpoint may
      lack (kept at their initialisation) and which checkpoint tensors have no place here.
    """

    # The tool that turns this family's official checkpoints into mmlk ones (named in errors).
    converter: Optional[str] = None
    num_stages = 4

    def __init__(self, init_cfg: Optional[Union[dict, List[dict]]] = None,
                 pretrained: Optional[str] = None) -> None:
        # mmseg/mmdet's deprecated ``pretrained=PATH`` (EncoderDecoder passes it on) is the
        # Pretrained init_cfg, for every backbone.
        super().__init__(init_cfg=init_cfg_from_pretrained(type(self).__name__, pretrained,
                                                           init_cfg))
        self.norm_eval = False

    # ------------------------------------------------------------------ construction helpers
    def refuse_unknown_arguments(self, unknown: dict, internal: Sequence[str] = ()) -> None:
        """A TypeError naming the registered type (``mmlk.SLaK``) and the arguments it
        accepts (those of every constructor in its chain, less the ``internal`` ones a
        subclass fills in itself), for keyword arguments no constructor took."""
        if not unknown:
            return
        import inspect
        accepted = set()
        for klass in type(self).__mro__:
            init = klass.__dict__.get('__init__')
            if init is not None:
                accepted |= {n for n, p in inspect.signature(init).parameters.items()
                             if n != 'self' and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        accepted -= set(internal) if type(self).__name__ not in internal else set()
        raise TypeError(f'mmlk.{type(self).__name__} got unexpected argument(s) '
                        f'{sorted(unknown)}; it accepts {sorted(accepted)}')

    def _check_out_indices(self, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int) and not isinstance(out_indices, bool):
            out_indices = [out_indices]
        if isinstance(out_indices, range):  # mmdet's tests and configs pass ranges
            out_indices = list(out_indices)
        if not isinstance(out_indices, (list, tuple)) or not out_indices or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
            raise TypeError(f'out_indices must be an int or a non-empty list/tuple of ints (stage '
                            f'indices 0..{self.num_stages - 1}, negative allowed), got '
                            f'{out_indices!r}')
        resolved = []
        for index in out_indices:
            if not -self.num_stages <= index < self.num_stages:
                raise ValueError(f'out_indices entry {index} is out of range: the backbone has '
                                 f'{self.num_stages} stages (valid: 0..{self.num_stages - 1} or '
                                 f'-{self.num_stages}..-1)')
            resolved.append(index % self.num_stages)
        return tuple(sorted(set(resolved)))

    @staticmethod
    def _check_frozen_stages(frozen_stages: int, highest: int) -> int:
        """``frozen_stages`` in mmlk's one convention (mmpretrain's ResNet/RepLKNet one, for
        every backbone): -1 freezes nothing, 0 the stem, n the stem and stages 0..n-1; else a
        TypeError/ValueError naming the accepted range ``[-1, highest]``."""
        return check_range(frozen_stages, 'frozen_stages (-1: nothing, 0: the stem, n: the stem '
                           'and stages 0..n-1)', -1, highest, integer=True)

    @staticmethod
    def _check_drop_path_rate(rate: float) -> float:
        return check_range(rate, 'drop_path_rate', 0, 1, high_open=True)

    # ------------------------------------------------------------------ train state
    def _freeze_stages(self) -> None:
        """Set the frozen part to eval mode and stop its gradients (nothing by default)."""

    def train(self, mode: bool = True) -> 'LargeKernelBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The stage outputs of ``out_indices``, each NCHW-contiguous (or ``(N, C)``).

        The large-kernel layers compute in channels-last memory (:func:`mmlk.ops.
        to_depthwise_layout`), and convolutions propagate that layout through the neck. mmcv's
        compiled ops index ``data_ptr`` as NCHW without checking the strides (``RoIAlign``
        pools scrambled features, ``DeformConv2d`` raises), so the layout the backbone computes
        in stops here: outputs are copied to the default layout (a no-op for NCHW ones).
        """
        return tuple(out.contiguous() for out in self.forward_stages(x))

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        """The outputs of the ``out_indices`` stages, in whatever memory layout the
        network computes in (subclasses implement it; :meth:`forward` fixes the layout)."""
        raise NotImplementedError

    def switch_to_deploy(self) -> None:
        """Re-parameterise every reparameterisable block into its inference form (exact in
        eval mode); the backbone's ``deploy`` flag then says so, for saving a deploy config."""
        switch_to_deploy(self)
        if hasattr(self, 'deploy'):
            self.deploy = True

    # ------------------------------------------------------------------ initialisation
    def init_weights(self) -> None:
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(
                self.init_cfg['checkpoint'], prefix=self.init_cfg.get('prefix', 'backbone.'),
                ignore_keys=self.init_cfg.get('ignore_keys', ()),
                load_classification_norm=self.init_cfg.get('load_classification_norm', False),
                trust_checkpoint=self.init_cfg.get('trust_checkpoint', False))
            self._is_init = True
            return
        if self.init_cfg is not None:
            super().init_weights()
            return
        self._default_init()

    def _default_init(self) -> None:
        """The official initialisation, used when ``init_cfg`` is None (PyTorch's defaults)."""

    def convert_official_keys(self, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Rename an official checkpoint's keys to this module's (identity by default)."""
        return state_dict

    def _may_miss(self, key: str) -> bool:
        """True for module tensors a compatible checkpoint may lack (e.g. output norms)."""
        return False

    def _may_ignore(self, key: str) -> bool:
        """True for checkpoint tensors a backbone has no place for (e.g. a classifier head)."""
        return key.startswith('head.')

    def _classification_norm_prefix(self) -> Optional[str]:
        """Where an mmlk/mmpretrain *classification* checkpoint keeps its final norm (the one
        applied before the classifier) when this backbone is a dense-prediction one whose
        module of that name is an output norm the official downstream code creates fresh;
        None when the name means the same in both (e.g. a classification backbone)."""
        return None

    def load_pretrained(self, checkpoint: str, prefix: str = 'backbone.',
                        ignore_keys: Sequence[str] = (),
                        load_classification_norm: bool = False,
                        trust_checkpoint: bool = False) -> None:
        """Load an official or mmlk checkpoint into this backbone, strictly.

        Every backbone tensor must be present with the right shape, except those
        :meth:`_may_miss` allows, and every checkpoint tensor must have a place here, except
        those :meth:`_may_ignore` names (a classifier) and those matching a regular expression
        of ``ignore_keys`` (``init_cfg=dict(type='Pretrained', ..., ignore_keys=[...])``: the
        explicit way to drop part of a checkpoint). A shape mismatch (another arch or kernel
        size), a missing tensor or a left-over one (another arch, e.g. more blocks) raises
        before anything is loaded.

        A classification checkpoint (one with a ``head.*`` classifier) holds the final norm of
        the classifier, which an mmlk/mmpretrain classification backbone stores under the name
        of the last output norm (``norm3`` for ConvNeXt-style nets, ``stages.3.norm`` for
        RepLKNet). The official downstream backbones of SLaK, shift-wise, KernelWarehouse and
        RepLKNet never load it: their output norms start at weight 1, bias 0 (the official
        file calls it ``norm``, which they drop). So it is dropped here too, with a log line,
        whether the file is official or converted; ``load_classification_norm=True`` (in
        ``init_cfg``) loads it into that output norm instead, mmpretrain -> mmdet/mmseg's
        convention.

        The file is read without running code (an allow-list unpickler, or ``.safetensors``);
        ``trust_checkpoint=True`` (in ``init_cfg``) is the explicit opt-in to plain
        ``torch.load`` for a file you trust that holds other objects.
        """
        if trust_checkpoint is not True and trust_checkpoint is not False:
            raise TypeError(f'init_cfg trust_checkpoint must be True or False, got '
                            f'{trust_checkpoint!r}')
        if isinstance(ignore_keys, str):
            ignore_keys = [ignore_keys]
        ignore_patterns = [re.compile(p) for p in ignore_keys]

        def may_ignore(key: str) -> bool:
            return self._may_ignore(key) or any(p.search(key) for p in ignore_patterns)

        logger = MMLogger.get_current_instance()
        try:
            loaded = load_checkpoint_file(checkpoint, trust=trust_checkpoint or None)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'{err}. {type(self).__name__} init_cfg asks for pretrained weights: download the '
                'official ImageNet checkpoint (README, "Model zoo") to that path, or set '
                'model.backbone.init_cfg=None to train from scratch.') from None
        except CheckpointReadError as err:
            raise type(err)(f'{type(self).__name__} init_cfg: {err}') from None
        state = unwrap_state_dict(loaded)
        classification = any(k.startswith('head.') for k in state)
        state = self.convert_official_keys(strip_prefix(state, prefix))
        logger.info(f'{type(self).__name__}: loading {checkpoint}')
        norm_prefix = self._classification_norm_prefix()
        if classification and norm_prefix and not load_classification_norm:
            dropped = [k for k in state if k.startswith(norm_prefix)]
            if dropped:
                state = {k: v for k, v in state.items() if not k.startswith(norm_prefix)}
                logger.info(
                    f'{type(self).__name__}: {norm_prefix}* of this classification checkpoint is '
                    "the classifier's final norm: not loaded into the output norm, which starts "
                    'at weight 1, bias 0 as in the official downstream backbones '
                    '(init_cfg.load_classification_norm=True loads it)')
        try:
            load_state_dict_checked(self, state, allowed_missing=self._may_miss,
                                    ignored_unexpected=may_ignore, logger=logger)
        except CheckpointMismatchError as err:
            if getattr(self, 'deploy', False):
                raise CheckpointMismatchError(
                    f'{err}\n{type(self).__name__} is built with deploy=True (merged kernels); a '
                    'training-form checkpoint loads with deploy=False, and tools/reparameterize.py '
                    'turns it into a deploy checkpoint.') from None
            raise
