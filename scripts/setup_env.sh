#!/usr/bin/env bash
# Creates (or reuses) the virtual environment with one of mmlk's two tested OpenMMLab stacks.
#
# Why a script and not install_requires: mmcv 2.1.0 publishes no wheel for the torch we must
# use, so it is compiled from the PyPI sdist against the torch that is already installed. The
# built wheel is cached (keyed by mmcv version, Python, torch version and CUDA/CPU) so a second
# environment installs in seconds.
#
# The stacks (README, "Install"):
#   current  Python 3.11, torch 2.14.1 + torchvision 0.29.1, numpy 2   (venv .venv)
#   legacy   Python 3.10, torch 2.1.2  + torchvision 0.16.2, numpy 1   (venv .venv-legacy)
#            the oldest stack OpenMMLab users have: mmcv 2.1.0's own wheels stop at torch 2.1.
# Both use mmcv 2.1.0, mmengine 0.10.7, mmdet 3.3.0, mmseg 1.2.2, mmpretrain 1.2.0.
#
# Environment variables:
#   MMLK_STACK        current (default) or legacy
#   MMLK_VENV         where the venv lives                (default: <repo>/.venv or .venv-legacy)
#   MMLK_WHEEL_CACHE  where the built mmcv wheel is kept  (default: ~/.cache/mmlk/wheels)
#   PYTHON            interpreter used to create the venv (default: python3.11 / python3.10)
#   FORCE_CUDA=1      build mmcv's CUDA ops (needs nvcc and a GPU build of torch)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MMLK_WHEEL_CACHE:-$HOME/.cache/mmlk/wheels}
STACK=${MMLK_STACK:-current}
MMCV_VERSION=2.1.0

# A Python the machine has under another name: pyenv keeps each version in its own folder.
find_python() {
    local want=$1 root
    if command -v "$want" >/dev/null 2>&1 && "$want" -c pass >/dev/null 2>&1; then
        echo "$want"; return
    fi
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for candidate in "$root"/versions/"${want#python}".*/bin/"$want"; do
        if [[ -x "$candidate" ]]; then echo "$candidate"; return; fi
    done
    echo "[setup_env] the $STACK stack needs $want; install it (e.g. pyenv install ${want#python}) or set PYTHON" >&2
    exit 1
}

case "$STACK" in
    current)
        VENV=${MMLK_VENV:-$ROOT/.venv}
        PYTHON=${PYTHON:-$(find_python python3.11)}
        TORCH_VERSION=2.14.1
        TORCHVISION_VERSION=0.29.1
        NUMPY_PIN='numpy>=2,<3'
        # torch 2.14's headers need C++20; mmcv's setup.py hard-codes c++14/c++17.
        MMCV_CXX_STD=c++20
        ;;
    legacy)
        VENV=${MMLK_VENV:-$ROOT/.venv-legacy}
        PYTHON=${PYTHON:-$(find_python python3.10)}
        TORCH_VERSION=2.1.2
        TORCHVISION_VERSION=0.16.2
        # torch 2.1 is compiled against numpy 1.
        NUMPY_PIN='numpy>=1.23,<2'
        MMCV_CXX_STD=  # mmcv's own flags (C++17 for torch 2.1)
        ;;
    *)
        echo "[setup_env] MMLK_STACK=$STACK: expected 'current' or 'legacy'" >&2
        exit 2
        ;;
esac
REQS="$ROOT/requirements/runtime.txt $ROOT/requirements/tests.txt $ROOT/requirements/deploy.txt"

# The stamp changes whenever a pin changes, so an outdated venv is brought up to date.
STAMP_KEY=$( (echo "$STACK"; cat "$0" $REQS "$ROOT/setup.py") | sha1sum | cut -c1-12)
STAMP="$VENV/.mmlk-env-$STAMP_KEY"
if [[ -f "$STAMP" ]]; then
    exit 0
fi

log() { printf '[setup_env] %s\n' "$*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating the $STACK venv at $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

log "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
# mmcv's setup.py imports pkg_resources (gone from setuptools 81).
"${PIP[@]}" install -q "setuptools>=77.0.3,<81" wheel ninja "$NUMPY_PIN"

cuda_tag=cpu
if [[ "${FORCE_CUDA:-0}" == 1 ]]; then cuda_tag=cuda; fi
torch_tag=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.replace("+", "_"))')
py_tag=$("$VENV/bin/python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$torch_tag-$cuda_tag"
WHEEL_GLOB="$WHEEL_DIR/mmcv-$MMCV_VERSION-$py_tag-*.whl"  # the wheel's name carries its Python
if ! ls $WHEEL_GLOB >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION ($cuda_tag ops) from the sdist: about 12 minutes on 2 cores"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$build"
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    if [[ -n $MMCV_CXX_STD ]]; then
        sed -i -E "s/-std=c\\+\\+1[47]/-std=$MMCV_CXX_STD/g" "$src/setup.py"
    fi
    mkdir -p "$WHEEL_DIR"
    # --no-build-isolation: with isolation pip builds against a fresh torch in a throw-away
    # env and mmcv silently ships without its compiled ops.
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} FORCE_CUDA=${FORCE_CUDA:-0} \
        "${PIP[@]}" wheel -q --no-build-isolation --no-deps "$src" -w "$build/out"
    mv "$build"/out/mmcv-*.whl "$WHEEL_DIR"/
fi

log "installing mmcv and the OpenMMLab stack and test tools"
# One resolver run for all of it, so mmcv's own requirements are checked against the pins.
"${PIP[@]}" install -q $WHEEL_GLOB "$NUMPY_PIN" \
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
