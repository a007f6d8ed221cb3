"""Parameter and FLOP counts that see sparsity (mmengine's complexity tools count dense)."""
from typing import Dict, Sequence

import torch
from torch import nn

__all__ = ['sparse_complexity']

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def sparse_complexity(module: nn.Module, input_shape: Sequence[int]) -> Dict:
    """Dense and non-zero parameter counts, per-layer sparsity, and MACs of one forward of
    ``module`` on a ``(1, *input_shape)`` tensor, dense and with each conv/linear layer's MACs
    scaled by the density of its weight (the papers' "sparse FLOPs")."""
    from mmengine.analysis import FlopAnalyzer
    params = sum(p.numel() for p in module.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in module.parameters())
    layers = {}
    for name, m in module.named_modules():
        if isinstance(m, _WEIGHTED):
            layers[name] = float(torch.count_nonzero(m.weight)) / m.weight.numel()
    was_training = module.training
    module.eval()
    analyzer = FlopAnalyzer(module, (torch.zeros(1, *input_shape), ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    dense_macs = analyzer.total()
    by_module = analyzer.by_module()
    saved = sum(by_module.get(name, 0) * (1 - density) for name, density in layers.items())
    module.train(was_training)
    return dict(params=params, nonzero_params=nonzero, sparsity=1 - nonzero / max(params, 1),
                layer_density=layers, dense_macs=dense_macs, sparse_macs=dense_macs - saved)
