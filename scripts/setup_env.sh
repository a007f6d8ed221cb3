#!/usr/bin/env bash
# Creates (or reuses) the virtual environment with mmlk's pinned OpenMMLab stack.
#
# Why a script and not install_requires: mmcv 2.1.0 publishes no wheel for the torch we must
# use, so it is compiled from the PyPI sdist against the torch that is already installed. The
# built wheel is cached (keyed by mmcv version, torch version and CUDA/CPU) so a second
# environment installs in seconds.
#
# Environment variables:
#   MMLK_VENV         where the venv lives                (default: <repo>/.venv)
#   MMLK_WHEEL_CACHE  where the built mmcv wheel is kept  (default: ~/.cache/mmlk/wheels)
#   PYTHON            interpreter used to create the venv (default: python3.11)
#   FORCE_CUDA=1      build mmcv's CUDA ops (needs nvcc and a GPU build of torch)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMLK_VENV:-$ROOT/.venv}
CACHE=${MMLK_WHEEL_CACHE:-$HOME/.cache/mmlk/wheels}
PYTHON=${PYTHON:-python3.11}

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
REQS="$ROOT/requirements/runtime.txt $ROOT/requirements/tests.txt $ROOT/requirements/deploy.txt"

# The stamp changes whenever a pin changes, so an outdated venv is brought up to date.
STAMP_KEY=$(cat "$0" $REQS "$ROOT/setup.py" | sha1sum | cut -c1-12)
STAMP="$VENV/.mmlk-env-$STAMP_KEY"
if [[ -f "$STAMP" ]]; then
    exit 0
fi

log() { printf '[setup_env] %s\n' "$*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv at $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

log "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
# mmcv's setup.py imports pkg_resources (gone from setuptools 81).
"${PIP[@]}" install -q "setuptools>=77.0.3,<81" wheel ninja "numpy>=2,<3"

cuda_tag=cpu
if [[ "${FORCE_CUDA:-0}" == 1 ]]; then cuda_tag=cuda; fi
torch_tag=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.replace("+", "_"))')
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$torch_tag-$cuda_tag"
if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION ($cuda_tag ops) from the sdist: about 12 minutes on 2 cores"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$build"
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    # torch 2.14 headers need C++20; mmcv's setup.py hard-codes c++14/c++17.
    sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$src/setup.py"
    mkdir -p "$WHEEL_DIR"
    # --no-build-isolation: with isolation pip builds against a fresh torch in a throw-away
    # env and mmcv silently ships without its compiled ops.
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} FORCE_CUDA=${FORCE_CUDA:-0} \
        "${PIP[@]}" wheel -q --no-build-isolation --no-deps "$src" -w "$build/out"
    mv "$build"/out/mmcv-*.whl "$WHEEL_DIR"/
fi

log "installing mmcv and the OpenMMLab stack and test tools"
# One resolver run for all of it, so mmcv's own requirements are checked against the pins.
"${PIP[@]}" install -q "$WHEEL_DIR"/mmcv-*.whl \
    -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" \
    -r "$ROOT/requirements/deploy.txt"
# mim without its dataset-download dependency, which pins setuptools 60 (runtime.txt).
"${PIP[@]}" install -q --no-deps openmim==0.3.9
# Editable: mmlk/.mim links the repository's configs and tools; setup.py also installs
# mmlk-config-prefix.pth, which makes `mmlk::` configs work in any script (config_prefix.py).
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

"$VENV/bin/python" - <<'PY'
import mmcv, mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models  # noqa: F401
import torch
from mmcv.ops import nms
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)[1]
assert keep.tolist() == [0], keep
print(f'[setup_env] ok: torch {torch.__version__}, mmcv {mmcv.__version__} with compiled ops')
PY
rm -f "$VENV"/.mmlk-env-*
touch "$STAMP"
