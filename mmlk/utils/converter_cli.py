"""The command-line part every ``tools/model_converters/*_to_mmlk.py`` shares.

Each converter only says how to build the backbone a checkpoint should fit; reading the file,
the strict check, the report of dropped keys and the output format are the same for all.
"""
import argparse
import os
import os.path as osp
from typing import Callable, Dict, Mapping, Optional

import torch
from torch import Tensor, nn

__all__ = ['converter_parser', 'run_converter']

BuildBackbone = Callable[[Dict[str, Tensor], bool], nn.Module]


def converter_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with ``src``, ``dst`` and ``--use-ema``; add the arch options."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output mmlk checkpoint')
    parser.add_argument('--use-ema', action='store_true', help='convert model_ema if present')
    return parser


def run_converter(args: argparse.Namespace, build_backbone: BuildBackbone, what: str,
                  meta: dict, head_renames: Optional[Mapping[str, str]] = None,
                  prepare: Optional[Callable[[Dict[str, Tensor]], Dict[str, Tensor]]] = None
                  ) -> None:
    """Convert ``args.src`` to ``args.dst`` or exit with the reason; ``what`` names the expected
    model in messages (e.g. ``'RepLKNet-31B'``) and ``meta`` is stored beside the weights.
    ``head_renames`` maps the classifier's key prefixes (default ``head.`` -> ``head.fc.``);
    ``prepare`` rewrites the unwrapped state dict first (keys that move between modules)."""
    from mmlk.models.utils import (CheckpointMismatchError, convert_to_mmlk, load_checkpoint_file,
                                   unwrap_state_dict)
    renames = {} if head_renames is None else dict(head_renames=head_renames)
    try:
        checkpoint = load_checkpoint_file(args.src)
        if prepare is not None:
            checkpoint = prepare(unwrap_state_dict(checkpoint, use_ema=args.use_ema))
        state, unused = convert_to_mmlk(checkpoint, build_backbone, use_ema=args.use_ema,
                                        **renames)
    except CheckpointMismatchError as err:
        raise SystemExit(f'error: {args.src} is not an official {what} checkpoint:\n{err}')
    if unused:
        print(f'warning: {len(unused)} checkpoint key(s) have no place in {what} and were '
              f'dropped: {", ".join(sorted(unused)[:12])}')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=state, meta=dict(meta, converted_from=osp.basename(args.src))),
               args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}')
