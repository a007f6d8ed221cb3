"""mmlk: large-kernel ConvNets (SLaK, RepLKNet, shift-wise conv, KernelWarehouse) for OpenMMLab 2.x.

The pinned OpenMMLab stack (torch, a locally compiled mmcv, mmengine, mmdet, mmseg, mmpretrain)
is installed by ``scripts/setup_env.sh``: mmcv must be built against the torch that is
installed, which ``install_requires`` cannot express.
"""
from setuptools import find_packages, setup

setup(
    name='mmlk',
    version='0.1.0',
    description='Large-kernel ConvNets for OpenMMLab 2.x (SLaK, RepLKNet, shift-wise, KernelWarehouse)',
    packages=find_packages(include=['mmlk', 'mmlk.*']),
    python_requires='>=3.9',
    install_requires=['mmengine>=0.10.0', 'torch>=2.0', 'numpy'],
    license='Apache-2.0',
)
