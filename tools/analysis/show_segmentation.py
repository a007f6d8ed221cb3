"""Write one picture of a segmentation model's prediction: the image, its ground truth and the
prediction side by side, coloured with the dataset's palette (``make demo`` ends with it).

    python tools/analysis/show_segmentation.py CONFIG CHECKPOINT IMAGE --gt LABEL_PNG --out OUT.png

The label map is read as the config's test pipeline reads it (``reduce_zero_label``: 0 is
"other", shown black like the pixels a model is never scored on).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported
from mmlk.utils import (add_trust_argument, apply_trust, read_config,  # noqa: E402
                        install_safe_checkpoint_loader, user_errors_as_messages)

install_safe_checkpoint_loader()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('image')
    parser.add_argument('--gt', help='the ground-truth label map (PNG) of the image')
    parser.add_argument('--out', required=True, help='the picture to write (PNG)')
    add_trust_argument(parser)
    return parser.parse_args()


def colourise(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class indices -> RGB; indices outside the palette (ignored pixels, 255) are black."""
    rgb = np.zeros(labels.shape + (3, ), np.uint8)
    valid = (labels >= 0) & (labels < len(palette))
    rgb[valid] = palette[labels[valid]]
    return rgb


def main() -> None:
    args = parse_args()
    cfg = read_config(args.config)
    apply_trust(args, cfg)
    # read before inference: mmseg's inference_model removes LoadAnnotations from the config
    reduce_zero_label = any(step.get('reduce_zero_label') for step in cfg.test_pipeline
                            if step.get('type') == 'LoadAnnotations')
    from mmseg.apis import inference_model, init_model
    model = init_model(cfg, args.checkpoint, device='cpu')
    palette = np.asarray(model.dataset_meta['palette'], np.uint8)
    image = np.asarray(Image.open(args.image).convert('RGB'))
    prediction = inference_model(model, args.image).pred_sem_seg.data[0].cpu().numpy()
    panels = [image, colourise(prediction, palette)]
    if args.gt:
        labels = np.asarray(Image.open(args.gt)).astype(np.int64)
        if reduce_zero_label:  # as mmseg's LoadAnnotations: 0 -> 255 (ignored), k -> k - 1
            labels = np.where(labels == 0, 255, labels - 1)
        panels.insert(1, colourise(labels, palette))
    gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
    strip = np.concatenate(sum(([panel, gap] for panel in panels), [])[:-1], axis=1)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    Image.fromarray(strip).save(args.out)
    names = 'image | ground truth | prediction' if args.gt else 'image | prediction'
    print(f'wrote {args.out} ({names})')


if __name__ == '__main__':
    with user_errors_as_messages():  # a missing config or checkpoint: one line
        main()
