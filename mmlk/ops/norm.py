"""Layer norm over the channel axis of NCHW tensors (ConvNeXt's ``channels_first`` LN)."""
import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over C of an ``(N, C, H, W)`` tensor; parameters ``weight``/``bias`` of shape (C,).

    Same keys and maths as the official ConvNeXt/SLaK ``LayerNorm(data_format='channels_first')``
    and mmpretrain's ``LN2d``; implemented with ``F.layer_norm`` on a channels-last view.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f'LayerNorm2d expects an (N, C, H, W) tensor, got shape '
                             f'{tuple(x.shape)}')
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
