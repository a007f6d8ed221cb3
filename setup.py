"""mmlk: large-kernel ConvNets (SLaK, RepLKNet, shift-wise, KernelWarehouse) for OpenMMLab 2.x.

The pinned OpenMMLab stack (torch, a locally compiled mmcv, mmengine, mmdet, mmseg, mmpretrain)
is installed by ``scripts/setup_env.sh``: mmcv must be built against the torch that is
installed, which ``install_requires`` cannot express.

What an install ships besides the ``mmlk`` package (README, "Using mmlk configs from another
project"):

* ``mmlk/.mim/{configs,tools,model-index.yml}``: symlinks to the repository's folders in a
  checkout (so an editable install sees every change), copied as real files into a wheel (so
  ``pip install .`` ships configs, tools and the model index, the mim convention);
* ``mmlk-config-prefix.pth`` in site-packages: installs :mod:`mmlk.config_prefix` at
  interpreter start-up, so ``_base_ = ['mmlk::...']`` works in any script, ``mim`` included.
"""
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
STARTUP_PTH = 'mmlk-config-prefix.pth'


def read_version() -> str:
    """``mmlk/version.py``'s ``__version__``, read without importing mmlk (or torch)."""
    namespace = {}
    with open(os.path.join(HERE, 'mmlk', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


class BuildPyWithStartupHook(build_py):
    """A wheel puts ``mmlk-config-prefix.pth`` at the root of site-packages."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.copy_file(os.path.join(HERE, STARTUP_PTH),
                           os.path.join(self.build_lib, STARTUP_PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=1):
        extra = [] if self.editable_mode else [os.path.join(self.build_lib, STARTUP_PTH)]
        return super().get_outputs(include_bytecode) + extra


class EditableWheelWithStartupHook(editable_wheel):
    """An editable install gets the same ``.pth`` (setuptools' hook for extra wheel files)."""

    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copyfile(os.path.join(HERE, STARTUP_PTH),
                        os.path.join(installation_dir, STARTUP_PTH))


setup(
    name='mmlk',
    version=read_version(),
    description=('Large-kernel ConvNets for OpenMMLab 2.x '
                 '(SLaK, RepLKNet, shift-wise, KernelWarehouse)'),
    packages=find_packages(include=['mmlk', 'mmlk.*']),
    # the CPU kernel's source, compiled on first use (mmlk/ops/depthwise/cpu_kernel.py)
    package_data={'mmlk': ['ops/depthwise/csrc/*.cpp', '.mim/model-index.yml',
                           '.mim/configs/**/*.py', '.mim/configs/**/*.yml',
                           '.mim/tools/**/*.py', '.mim/tools/*.sh']},
    cmdclass={'build_py': BuildPyWithStartupHook, 'editable_wheel': EditableWheelWithStartupHook},
    # What CI tests (scripts/setup_env.sh, mmlk/compat.py): Python 3.10 + torch 2.1.2 and
    # Python 3.11 + torch 2.14.1; mmcv 2.1.0 is compiled by setup_env.sh, not required here.
    python_requires='>=3.10',
    install_requires=['mmengine>=0.10.0', 'torch>=2.1', 'numpy', 'safetensors'],
    license='Apache-2.0',
)
