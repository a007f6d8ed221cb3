"""The command-line part every ``tools/model_converters/*_to_mmlk.py`` shares.

Each converter only says how to build the backbone a checkpoint should fit; reading the file,
the strict check (every tensor placed, none left over), the arch inference, the output format
and the atomic write are the same for all.
"""
import argparse
import contextlib
import os.path as osp
from typing import Callable, Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from mmlk.core.checkpoint_io import (CheckpointMismatchError, CheckpointReadError,
                                     convert_to_mmlk, load_checkpoint_file,
                                     save_checkpoint_file, state_dict_container,
                                     unwrap_state_dict)

from .cli import add_trust_argument

__all__ = ['add_arch_argument', 'check_output_format', 'converter_parser', 'run_converter']

# build(backbone_state, is_classifier, arch) -> the mmlk backbone the checkpoint should fit
BuildBackbone = Callable[[Dict[str, Tensor], bool, str], nn.Module]


def converter_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with ``src``, ``dst`` and ``--use-ema``; add the arch options."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output mmlk checkpoint')
    parser.add_argument('--use-ema', action='store_true',
                        help='convert model_ema instead of model (refused if the file has none)')
    parser.add_argument('--format', choices=['pth', 'safetensors'], default=None,
                        help='output format (default: from the extension of dst); safetensors '
                        'files hold tensors only, so loading them can never run code')
    add_trust_argument(parser)
    return parser


def check_output_format(path: str, fmt: Optional[str]) -> None:
    """``--format`` and the output's extension must agree (a ``.pth`` full of safetensors
    bytes would be refused by every loader)."""
    is_safetensors = str(path).endswith('.safetensors')
    if fmt is not None and (fmt == 'safetensors') != is_safetensors:
        raise SystemExit(f'error: --format {fmt} needs an output file ending in '
                         f'{".safetensors" if fmt == "safetensors" else ".pth"}, got {path}')


def add_arch_argument(parser: argparse.ArgumentParser, archs: Sequence[str]) -> None:
    """``--arch``, optional: without it the converter tries every arch and keeps the one whose
    tensors all fit (the depths and widths are in the shapes); with it, that arch is checked."""
    parser.add_argument('--arch', default=None, choices=sorted(archs),
                        help='the checkpoint\'s arch; default: inferred from its tensors')


def run_converter(args: argparse.Namespace, build_backbone: BuildBackbone, what: str,
                  meta: dict, head_renames: Optional[Mapping[str, str]] = None,
                  prepare: Optional[Callable[[Dict[str, Tensor]], Dict[str, Tensor]]] = None,
                  archs: Sequence[str] = ('', ),
                  postprocess: Optional[Callable[[Dict[str, Tensor], str], Dict[str, Tensor]]]
                  = None) -> None:
    """Convert ``args.src`` to ``args.dst`` or exit with the reason, writing nothing.

    ``what`` names the expected model in messages, with ``{arch}`` standing for the arch
    (e.g. ``'SLaK-{arch}'``); ``meta`` is stored beside the weights (with ``arch``).
    ``head_renames`` maps the classifier's key prefixes (default ``head.`` -> ``head.fc.``);
    ``prepare`` rewrites the unwrapped state dict first (keys that move between modules);
    ``postprocess(converted, arch)`` rewrites the converted state dict (another model form).
    ``archs`` are the candidates tried when ``args.arch`` is None (one empty name: the
    converter has no arch choice).
    """
    renames = {} if head_renames is None else dict(head_renames=head_renames)
    check_output_format(args.dst, getattr(args, 'format', None))
    try:
        checkpoint = load_checkpoint_file(args.src, trust=getattr(args, 'trust_checkpoint', None)
                                          or None)
    except (FileNotFoundError, CheckpointReadError) as err:
        raise SystemExit(f'error: {err}')
    if args.use_ema and not (isinstance(checkpoint, Mapping) and 'model_ema' in checkpoint):
        raise SystemExit(f'error: --use-ema: {args.src} has no model_ema (top-level keys: '
                         f'{sorted(checkpoint)[:10] if isinstance(checkpoint, Mapping) else "-"})')
    source = state_dict_container(checkpoint, use_ema=args.use_ema) or 'the top level'
    if prepare is not None:
        checkpoint = prepare(unwrap_state_dict(checkpoint, use_ema=args.use_ema))

    def convert(arch: str, device: Optional[str] = None):
        with torch.device(device) if device else contextlib.nullcontext():
            return convert_to_mmlk(checkpoint, lambda s, c: build_backbone(s, c, arch),
                                   use_ema=args.use_ema, **renames)

    chosen = getattr(args, 'arch', None)
    if chosen is None and len(archs) > 1:
        chosen = _infer_arch(convert, archs, what)
        print(f'inferred --arch {chosen}: the only arch whose every tensor fits the checkpoint')
    chosen = chosen or archs[0]
    try:
        state = convert(chosen)
    except CheckpointMismatchError as err:
        fits = [a for a in archs if a != chosen and _fits(convert, a)]
        hint = f'\nThe checkpoint fits --arch {fits[0]}.' if fits else ''
        raise SystemExit(f'error: {args.src} is not an official {what.format(arch=chosen)} '
                         f'checkpoint:\n{err}{hint}')
    if postprocess is not None:
        state = postprocess(state, chosen)
    meta = dict(meta, **({'arch': chosen} if chosen else {}), converted_from=osp.basename(args.src),
                converted_tensors=source)
    save_checkpoint_file(dict(state_dict=state, meta=meta), args.dst)
    print(f'converted {source} of {args.src}; wrote {len(state)} tensors to {args.dst}')


def _fits(convert, arch: str) -> bool:
    try:
        convert(arch, device='meta')
        return True
    except CheckpointMismatchError:
        return False


def _infer_arch(convert, archs: Sequence[str], what: str) -> str:
    """The one arch the checkpoint fits (built on the meta device: shapes only, no memory)."""
    errors = {}
    for arch in archs:
        try:
            convert(arch, device='meta')
        except CheckpointMismatchError as err:
            errors[arch] = err
    fits = [a for a in archs if a not in errors]
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise SystemExit(f'error: the checkpoint fits several archs ({", ".join(fits)}); '
                         'pass --arch')
    closest = min(errors, key=lambda a: errors[a].num_problems)
    raise SystemExit(f'error: the checkpoint fits none of the archs {list(archs)}; the closest is '
                     f'{what.format(arch=closest)}:\n{errors[closest]}')
