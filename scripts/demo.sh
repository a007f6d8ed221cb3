#!/usr/bin/env bash
# The main job: build the environment if missing, write the embedded ADE20K-format data, train
# configs/upernet_slak_t_ade20k.py (demo overrides: configs/demo/) through tools/train.py on the
# CPU, evaluate the model before and after training, and write a picture of one validation
# image with its ground truth and the trained model's prediction.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup_env.sh
PY=${MMLK_VENV:-$ROOT/.venv}/bin/python
CONFIG=configs/demo/upernet_slak_t_ade20k_demo.py
WORK=work_dirs/demo_upernet_slak_t_ade20k

"$PY" tools/make_demo_data.py ade20k --out data/demo
rm -rf "$WORK"
"$PY" tools/test.py "$CONFIG" --work-dir "$WORK/untrained"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK"
"$PY" tools/test.py "$CONFIG" "$WORK/iter_300.pth" --work-dir "$WORK/trained"
"$PY" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
before = json.load(open(f'{work}/untrained/metrics.json'))['mIoU']
after = json.load(open(f'{work}/trained/metrics.json'))['mIoU']
print(f'\nSLaK-T + UperNet on the embedded ADE20K data (validation split):')
print(f'  mIoU before training: {before:6.2f}')
print(f'  mIoU after  training: {after:6.2f}')
if after < before + 10:
    sys.exit('the model did not learn: mIoU rose by less than 10 points')
PY
# one validation image: image | ground truth | prediction
IMAGE=$(ls data/demo/ade/ADEChallengeData2016/images/validation/*.jpg | head -n 1)
LABEL=data/demo/ade/ADEChallengeData2016/annotations/validation/$(basename "${IMAGE%.jpg}").png
"$PY" tools/analysis/show_segmentation.py "$CONFIG" "$WORK/iter_300.pth" "$IMAGE" --gt "$LABEL" \
    --out "$WORK/prediction.png"
