"""Small layers that backbones share or that other backbones would reuse (mmpretrain keeps
its SE layer, make_divisible and friends in ``models/utils`` too)."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['GRN', 'SEBlock', 'make_divisible']


class GRN(nn.Module):
    """Global response normalisation on NHWC tensors (ConvNeXt V2, Woo et al. 2023), as
    UniRepLKNet and ShiftwiseConv use it: ``x + gamma * (x * Nx) + beta``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class SEBlock(nn.Module):
    """Squeeze-and-excitation with 1x1 convs ``down``/``up`` (UniRepLKNet's, names kept)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 1)
        self.up = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        w = torch.sigmoid(self.up(F.relu(self.down(F.adaptive_avg_pool2d(x, 1)))))
        return x * w


def make_divisible(value: float, divisor: int = 8) -> int:
    """The TF/torchvision MobileNet channel rounding (never more than 10% down)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new
