"""KernelWarehouse dynamic convolution (Li & Yao, "KernelWarehouse: Rethinking the Design of
Dynamic Convolution", ICML 2024).

Every KW layer's kernel is assembled, per sample, as a mix of *cells* ``[c_out, c_in, 1, 1]``
taken from a *warehouse* shared by neighbouring layers. The layer is split into ``m``
mixtures (spatial position x output-channel group x input-channel group); an attention on the
layer's input gives each mixture ``n + 1`` coefficients over the warehouse's ``n`` cells and a
virtual zero cell, normalised by their L1 norm and blended with a fixed one-hot template
``beta`` by the temperature ``tau`` (1 = a static network, annealed to 0 in training).

The life cycle is the official two-phase build, run inside a backbone's constructor:

1. ``manager.reserve(...)`` returns a :class:`KWConv2d` (or 1d/3d/linear) without a weight and
   records its weight shape under an explicit warehouse *key* (any hashable; layers with equal
   keys share a warehouse, warehouses are numbered in first-reserve order);
2. ``manager.store()`` creates one ``Parameter [n, c_out, c_in, 1, 1]`` per warehouse;
3. ``manager.allocate(network)`` visits the KW layers in module order, builds each one's
   :class:`KWAttention`, its ``beta`` template and the kaiming init of the cells it owns.

Parameter and module names equal the official ones (``warehouse_manager.weights.i``,
``<layer>.attention.fc1/norm1/fc2[/fc3/basis_bias]``, ``<layer>.bias``), so official
checkpoints load key for key. ``temp_bias`` (beta) is a non-persistent buffer: rebuilt, never
saved, as upstream.

Execution differs from the official path (batch folded into the groups of one conv) where it
measured faster with the same sums: point-wise layers and deep dense layers run as batched
matmuls on the assembled cells (no kernel permute, no grouped conv), a batch of one runs as a
plain conv; everything else is the official grouped conv (``benchmarks/bench_kernelwarehouse.py``).
"""
import math
from collections import OrderedDict
from functools import reduce
from typing import Hashable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlk.compat import is_autocast_enabled

__all__ = [
    'KWAttention', 'KWConvNd', 'KWConv1d', 'KWConv2d', 'KWConv3d', 'KWLinear',
    'WarehouseManager', 'cell_assignment', 'set_kw_temperature'
]

Ratio = Union[float, Sequence[float]]


def _ntuple(value, n: int, name: str) -> Tuple[int, ...]:
    if isinstance(value, int):
        return (value, ) * n
    value = tuple(value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f'{name} needs 1 or {n} values, got {value}')
    return value


def cell_assignment(num_mixtures: int, start: int,
                    cell_num_ratio: float) -> Tuple[List[Optional[int]], int]:
    """The ``beta`` template of one layer: which warehouse cell each mixture equals at tau=1.

    b >= 1: mixture i takes cell ``start + i * int(b)`` (the others are spare cells). b < 1
    (k = int(1/b)): mixture i is live iff ``i % k == (i // k) % k`` and takes the next cell;
    the others point at the zero cell (``None``). Returns the list and the next free cell.
    """
    if cell_num_ratio >= 1:
        step = int(cell_num_ratio)
        return [start + i * step for i in range(num_mixtures)], start + num_mixtures * step
    per_cell = int(round(1.0 / cell_num_ratio))
    if num_mixtures % per_cell:
        raise ValueError(f'a layer with {num_mixtures} mixtures cannot share cells 1 in '
                         f'{per_cell} (cell_num_ratio={cell_num_ratio}): the mixtures must be a '
                         'multiple; halve the cells with cell_inplane/outplane_ratio=0.5')
    cells: List[Optional[int]] = []
    for i in range(num_mixtures):
        if i % per_cell == (i // per_cell) % per_cell:
            cells.append(start)
            start += 1
        else:
            cells.append(None)
    return cells, start


class KWAttention(nn.Module):
    """KernelWarehouse's contrasting-driven attention (CAF): per-sample mixing coefficients
    ``a = (1 - tau) * z / (sum |z| + 1e-3) + tau * beta`` over ``n`` cells plus a zero cell.

    Args:
        in_channels: channels of the layer's input (global-average-pooled).
        num_cells: cells ``n`` of the layer's warehouse.
        num_mixtures: mixtures ``m`` of the layer.
        reduction: hidden width ``max(int(in_channels * reduction), 16)``.
        norm: ``'bn'`` (BatchNorm1d, ResNet/MobileNetV2) or ``'ln'`` (LayerNorm, ConvNeXt).
        cell_num_ratio: the budget b (cells the layer owns in the non-local basis variant).
        nonlocal_basis_ratio: < 1 enables the non-local basis: logits for other layers' cells
            come from a smaller shared basis (``fc3``), as in KW-ResNet50 1/2x.
        start_cell: the layer's first owned cell (for the non-local layout).

    A training batch of one sample cannot be batch-normalised (upstream fails there); it uses
    the running statistics instead, without updating them.
    """

    def __init__(self,
                 in_channels: int,
                 num_cells: int,
                 num_mixtures: int,
                 reduction: float = 1 / 16,
                 norm: str = 'bn',
                 cell_num_ratio: float = 1.0,
                 nonlocal_basis_ratio: float = 1.0,
                 start_cell: int = 0) -> None:
        super().__init__()
        if norm not in ('bn', 'ln'):
            raise ValueError(f"KWAttention norm must be 'bn' or 'ln', got {norm!r}")
        hidden = max(int(in_channels * reduction), 16)
        self.num_cells, self.num_mixtures = num_cells, num_mixtures
        self.slots = num_cells + 1  # the last slot is the zero cell
        self.fc1 = nn.Linear(in_channels, hidden, bias=norm == 'ln')
        self.norm1 = nn.BatchNorm1d(hidden) if norm == 'bn' else nn.LayerNorm(hidden)
        self.act1 = nn.ReLU(inplace=True)
        self.nonlocal_basis = nonlocal_basis_ratio < 1.0
        if self.nonlocal_basis:
            self.num_local = int(cell_num_ratio * num_mixtures)
            self.num_nonlocal = num_cells - self.num_local
            self.num_basis = max(int(self.num_nonlocal * nonlocal_basis_ratio), 16)
            self.start_cell = start_cell
            self.fc2 = nn.Linear(hidden, (self.num_local + self.num_basis + 1) * num_mixtures,
                                 bias=False)
            self.fc3 = nn.Linear(self.num_basis, self.num_nonlocal, bias=False)
            self.basis_bias = nn.Parameter(torch.zeros(num_mixtures * self.slots))
        else:
            self.fc2 = nn.Linear(hidden, num_mixtures * self.slots)
        self.register_buffer('temp_bias', torch.zeros(num_mixtures, self.slots), persistent=False)
        self.temperature = 0.0
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def init_template(self, start: int, cell_num_ratio: float) -> int:
        """Fill ``beta`` from :func:`cell_assignment`; returns the next free cell."""
        cells, end = cell_assignment(self.num_mixtures, start, cell_num_ratio)
        template = torch.zeros(self.num_mixtures, self.slots)
        for i, cell in enumerate(cells):
            template[i, self.num_cells if cell is None else cell] = 1.0
        self.temp_bias.copy_(template)
        return end

    def update_temperature(self, temperature: float) -> None:
        self.temperature = float(temperature)

    def _normalise_hidden(self, h: Tensor) -> Tensor:
        norm = self.norm1
        if isinstance(norm, nn.BatchNorm1d) and norm.training and h.shape[0] == 1:
            return F.batch_norm(h, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                                False, 0.0, norm.eps)
        return norm(h)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, C, *spatial] -> [B, m, n]`` mixing coefficients (zero cell dropped)."""
        batch = x.shape[0]
        pooled = x.reshape(batch, x.shape[1], -1).mean(-1)
        logits = self.fc2(self.act1(self._normalise_hidden(self.fc1(pooled))))
        if self.nonlocal_basis:
            logits = logits.reshape(-1, self.num_local + self.num_basis + 1)
            local = logits[:, :self.num_local]
            nonlocal_ = self.fc3(logits[:, self.num_local:-1])
            logits = torch.cat([nonlocal_[:, :self.start_cell], local,
                                nonlocal_[:, self.start_cell:], logits[:, -1:]], dim=1)
            logits = logits.reshape(batch, -1) + self.basis_bias
        z = logits.reshape(batch, self.num_mixtures, self.slots)
        z = z / (z.abs().sum(-1, keepdim=True) + 1e-3)
        if self.temperature != 0:
            z = (1.0 - self.temperature) * z + self.temperature * self.temp_bias.to(z.dtype)
        return z[..., :-1]


class KWConvNd(nn.Module):
    """A KernelWarehouse convolution: its kernel is mixed per sample from warehouse cells.

    Built by :meth:`WarehouseManager.reserve` (not directly); usable after the manager's
    ``allocate``. Forward is exact against the official assembly + grouped-conv path.
    """

    dimension = 2

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Sequence[int]],
                 stride: Union[int, Sequence[int]] = 1,
                 padding: Union[int, Sequence[int]] = 0,
                 dilation: Union[int, Sequence[int]] = 1,
                 groups: int = 1,
                 bias: bool = False,
                 warehouse_id: int = 0,
                 manager: Optional['WarehouseManager'] = None) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'{type(self).__name__}: in_channels={in_channels} and '
                             f'out_channels={out_channels} must both divide by groups={groups}')
        d = self.dimension
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _ntuple(kernel_size, d, 'kernel_size')
        self.stride = _ntuple(stride, d, 'stride')
        self.padding = _ntuple(padding, d, 'padding')
        self.dilation = _ntuple(dilation, d, 'dilation')
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.warehouse_id = warehouse_id
        # A list, so that the manager is not registered again as a child of every layer.
        self._manager = [manager]
        self.attention: Optional[KWAttention] = None

    @property
    def weight_shape(self) -> List[int]:
        return [self.out_channels, self.in_channels // self.groups, *self.kernel_size]

    def init_attention(self, cell_shape: Sequence[int], num_cells: int, start: int,
                       reduction: float, cell_num_ratio: float, norm: str,
                       nonlocal_basis_ratio: float) -> int:
        """Build the attention for a warehouse of ``num_cells`` cells of ``cell_shape``
        (``[c_out, c_in]``); returns the next free cell after the ones this layer owns."""
        cell_out, cell_in = cell_shape
        in_per_group = self.in_channels // self.groups
        if self.out_channels % cell_out or in_per_group % cell_in:
            raise ValueError(f'cells of {cell_out}x{cell_in} channels do not tile the '
                             f'{self.weight_shape} weight of this KW layer')
        self.groups_out = self.out_channels // cell_out
        self.groups_in = in_per_group // cell_in
        self.groups_spatial = math.prod(self.kernel_size)
        self.cell_shape = (cell_out, cell_in)
        num_mixtures = self.groups_out * self.groups_in * self.groups_spatial
        self.attention = KWAttention(self.in_channels, num_cells, num_mixtures, reduction, norm,
                                     cell_num_ratio, nonlocal_basis_ratio, start_cell=start)
        return self.attention.init_template(start, cell_num_ratio)

    def update_temperature(self, temperature: float) -> None:
        self.attention.update_temperature(temperature)

    def assemble_cells(self, mix: Tensor) -> Tensor:
        """``mix [B, m, n] -> [B, S, G_out, G_in, c_out, c_in]``: every mixture's cell, per
        sample (one matmul with the warehouse). Mixture ``j = (s * G_out + o) * G_in + i``
        (spatial position s in raster order, output group o, input group i), the official
        layout."""
        warehouse = self._manager[0].weights[self.warehouse_id]
        cells = warehouse.reshape(warehouse.shape[0], -1).to(mix.dtype)
        return (mix.reshape(-1, mix.shape[-1]) @ cells).reshape(
            mix.shape[0], self.groups_spatial, self.groups_out, self.groups_in, *self.cell_shape)

    def assemble_kernel(self, mix: Tensor) -> Tensor:
        """``mix [B, m, n] -> [B, C_out, C_in/groups, *k]``: the per-sample conv kernels."""
        kernel = self.assemble_cells(mix).permute(0, 2, 4, 3, 5, 1)  # [B, Go, co, Gi, ci, S]
        return kernel.reshape(mix.shape[0], self.out_channels, self.in_channels // self.groups,
                              *self.kernel_size)

    def _conv(self, x: Tensor, weight: Tensor, groups: int) -> Tensor:
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.dimension - 1]
        return conv(x, weight, None, self.stride, self.padding, self.dilation, groups)

    def _output_size(self, size: Sequence[int]) -> List[int]:
        return [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(
            size, self.padding, self.dilation, self.kernel_size, self.stride)]

    def uses_matmul(self, x: Tensor) -> bool:
        """Run as per-position batched matmuls instead of the grouped conv?

        Both compute the same sums. The conv path copies the permuted per-sample kernels
        (``B * C_out * C_in * S``) and runs ``groups = B`` convs; the matmul path copies the
        input once per kernel position (``B * C_in * L * S``, L = output positions) and
        multiplies the assembled cells where they are. So: point-wise layers always, dense
        2-D layers when the kernel outweighs the output map (``C_out >= L``, deep stages).
        """
        if self.groups != 1:
            return False
        if self.is_pointwise:
            return True
        return self.dimension == 2 and self.out_channels >= math.prod(
            self._output_size(x.shape[2:]))

    @property
    def is_pointwise(self) -> bool:
        return (self.groups == 1 and all(k == 1 for k in self.kernel_size)
                and all(p == 0 for p in self.padding))

    def _matmul_forward(self, x: Tensor, cells: Tensor) -> Tensor:
        """``sum_{s, i} cells[b, s, o, i] @ x_s[b, i]`` with ``x_s`` the input seen by kernel
        position s (a strided view of the padded input)."""
        batch = x.shape[0]
        go, gi = self.groups_out, self.groups_in
        cout, cin = self.cell_shape
        out_size = self._output_size(x.shape[2:])
        length = math.prod(out_size)
        if any(p for p in self.padding):
            pads = [p for p in reversed(self.padding) for _ in (0, 1)]
            x = F.pad(x, pads)
        inputs = []  # [B, c_in, L] per (position, input group)
        for s in range(self.groups_spatial):
            offsets, rest = [], s
            for k in reversed(self.kernel_size):
                rest, offset = divmod(rest, k)
                offsets.insert(0, offset)
            index = (slice(None), slice(None)) + tuple(
                slice(o * d, o * d + st * (n - 1) + 1, st)
                for o, d, st, n in zip(offsets, self.dilation, self.stride, out_size))
            x_s = x[index].reshape(batch, gi, cin, length).to(cells.dtype)
            inputs.append([x_s[:, i] for i in range(gi)])
        if gi == 1:  # all output groups in one matmul per position (a contiguous reshape)
            kernels = [[cells[:, s].reshape(batch, go * cout, cin)] for s in range(len(inputs))]
            groups = [(kernels, 1)]
        else:  # one accumulator per output group
            groups = [([[cells[:, s, o, i] for i in range(gi)] for s in range(len(inputs))], gi)
                      for o in range(go)]
        blocks = []
        for kernels, count in groups:
            acc = None
            for s in range(len(inputs)):
                for i in range(count):
                    k, x_i = kernels[s][i], inputs[s][i]
                    acc = torch.bmm(k, x_i) if acc is None else acc.baddbmm_(k, x_i)
            blocks.append(acc)
        out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
        return out.reshape(batch, self.out_channels, *out_size)

    def _mix(self, x: Tensor) -> Tensor:
        if self.attention is None:
            raise RuntimeError(
                f'{type(self).__name__} has no attention yet: its WarehouseManager must store() '
                'and allocate(network) after every layer is reserved (KW backbones do this in '
                'their constructor)')
        mix = self.attention(x)
        if mix.dtype != x.dtype and not is_autocast_enabled('cuda'):
            mix = mix.to(x.dtype)
        return mix

    def forward(self, x: Tensor) -> Tensor:
        mix = self._mix(x)
        if self.uses_matmul(x):
            out = self._matmul_forward(x, self.assemble_cells(mix))
        else:
            out = self._grouped_conv(x, self.assemble_kernel(mix))
        return self._add_bias(out)

    def forward_official(self, x: Tensor) -> Tensor:
        """The official execution, kept as the reference of tests and benchmarks: assemble the
        per-sample kernels, then one conv with the batch folded into its groups."""
        kernel = self.assemble_kernel(self._mix(x))
        batch = x.shape[0]
        out = self._conv(x.reshape(1, -1, *x.shape[2:]), kernel.reshape(-1, *kernel.shape[2:]),
                         self.groups * batch)
        return self._add_bias(out.reshape(batch, self.out_channels, *out.shape[2:]))

    def _grouped_conv(self, x: Tensor, kernel: Tensor) -> Tensor:
        batch = x.shape[0]
        if batch == 1:
            return self._conv(x, kernel[0], self.groups)
        out = self._conv(x.reshape(1, -1, *x.shape[2:]), kernel.reshape(-1, *kernel.shape[2:]),
                         self.groups * batch)
        return out.reshape(batch, self.out_channels, *out.shape[2:])

    def _add_bias(self, out: Tensor) -> Tensor:
        if self.bias is None:
            return out
        return out + self.bias.reshape(1, -1, *([1] * self.dimension)).to(out.dtype)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, groups={self.groups}, '
                f'warehouse={self.warehouse_id}')


class KWConv1d(KWConvNd):
    """1-D KernelWarehouse convolution (see :class:`KWConvNd`)."""
    dimension = 1


class KWConv2d(KWConvNd):
    """2-D KernelWarehouse convolution (see :class:`KWConvNd`)."""
    dimension = 2


class KWConv3d(KWConvNd):
    """3-D KernelWarehouse convolution (see :class:`KWConvNd`)."""
    dimension = 3


class KWLinear(nn.Module):
    """A KernelWarehouse linear layer: a 1x1 :class:`KWConv1d` over ``[*, C]`` inputs (stored
    as ``.conv``, the official name)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 warehouse_id: int = 0, manager: Optional['WarehouseManager'] = None) -> None:
        super().__init__()
        self.conv = KWConv1d(in_features, out_features, 1, bias=bias,
                             warehouse_id=warehouse_id, manager=manager)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        out = self.conv(x.reshape(shape[0], -1, shape[-1]).transpose(1, 2))
        return out.transpose(1, 2).reshape(*shape[:-1], -1)


_KW_TYPES = {'conv1d': KWConv1d, 'conv2d': KWConv2d, 'conv3d': KWConv3d}
_PLAIN_TYPES = {'conv1d': nn.Conv1d, 'conv2d': nn.Conv2d, 'conv3d': nn.Conv3d}


def _per_warehouse(value: Ratio, count: int, name: str) -> List[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * count
    value = [float(v) for v in value]
    if len(value) == 1:
        return value * count
    if len(value) != count:
        raise ValueError(f'{name} has {len(value)} entries but the network has {count} '
                         'warehouses; give one value or one per warehouse')
    return value


class WarehouseManager(nn.Module):
    """Owns the warehouses of one network and runs KernelWarehouse's two-phase build.

    Args:
        reduction: hidden-width ratio of every attention (1/16; per warehouse allowed).
        cell_num_ratio: the parameter budget b: cells ``n = int(b * M)`` for a warehouse whose
            layers have ``M`` mixtures in total (per warehouse allowed).
        cell_inplane_ratio / cell_outplane_ratio: cell channels as a fraction of the gcd of the
            member layers' input / output channels (0.5 for the released b < 1 models).
        nonlocal_basis_ratio: < 1 enables the attention's non-local basis (ResNet50 1/2x).
        norm: the attention's norm, ``'bn'`` or ``'ln'``.

    Warehouses are numbered in the order their key is first reserved; ``weights.i`` is the
    official parameter name. :attr:`warehouse_table` describes them (cell, mixtures, n).
    """

    def __init__(self,
                 reduction: Ratio = 1 / 16,
                 cell_num_ratio: Ratio = 1.0,
                 cell_inplane_ratio: Ratio = 1.0,
                 cell_outplane_ratio: Ratio = 1.0,
                 nonlocal_basis_ratio: float = 1.0,
                 norm: str = 'bn') -> None:
        super().__init__()
        if norm not in ('bn', 'ln'):
            raise ValueError(f"WarehouseManager norm must be 'bn' or 'ln', got {norm!r}")
        self._ratios = dict(reduction=reduction, cell_num_ratio=cell_num_ratio,
                            cell_inplane_ratio=cell_inplane_ratio,
                            cell_outplane_ratio=cell_outplane_ratio)
        self.nonlocal_basis_ratio = nonlocal_basis_ratio
        self.norm = norm
        self._shapes: 'OrderedDict[Hashable, List[List[int]]]' = OrderedDict()
        self._layers: 'OrderedDict[Hashable, int]' = OrderedDict()
        self.weights: Optional[nn.ParameterList] = None
        self.allocated = False

    # ------------------------------------------------------------------ phase 1: reserve
    def reserve(self,
                in_channels: int,
                out_channels: int,
                kernel_size: Union[int, Sequence[int]] = 1,
                stride: Union[int, Sequence[int]] = 1,
                padding: Union[int, Sequence[int]] = 0,
                dilation: Union[int, Sequence[int]] = 1,
                groups: int = 1,
                bias: bool = False,
                key: Hashable = 'default',
                enabled: bool = True,
                layer_type: str = 'conv2d') -> nn.Module:
        """A KW layer whose weight lives in warehouse ``key`` or, with ``enabled=False``, the
        plain PyTorch layer (``nn.ConvNd``/``nn.Linear``)."""
        if layer_type not in (*_KW_TYPES, 'linear'):
            raise ValueError(f'unknown layer_type {layer_type!r}; use one of '
                             f"{[*_KW_TYPES, 'linear']}")
        if not enabled:
            if layer_type == 'linear':
                return nn.Linear(in_channels, out_channels, bias=bias)
            return _PLAIN_TYPES[layer_type](in_channels, out_channels, kernel_size, stride,
                                            padding, dilation, groups, bias)
        if self.weights is not None:
            raise RuntimeError('WarehouseManager.reserve() after store(): every KW layer must '
                               'be reserved before the warehouses are created')
        if key not in self._shapes:
            self._shapes[key] = []
        warehouse_id = list(self._shapes).index(key)
        if layer_type == 'linear':
            layer = KWLinear(in_channels, out_channels, bias, warehouse_id, self)
            shape = layer.conv.weight_shape
        else:
            layer = _KW_TYPES[layer_type](in_channels, out_channels, kernel_size, stride,
                                          padding, dilation, groups, bias, warehouse_id, self)
            shape = layer.weight_shape
        self._shapes[key].append(shape)
        return layer

    # ------------------------------------------------------------------ phase 2: store
    @property
    def keys(self) -> List[Hashable]:
        return list(self._shapes)

    def _ratio(self, name: str) -> List[float]:
        return _per_warehouse(self._ratios[name], len(self._shapes), name)

    def store(self) -> None:
        """Create the warehouses: cells of gcd x ratio channels, ``n = int(b * M)`` each."""
        if self.weights is not None:
            raise RuntimeError('WarehouseManager.store() was already called')
        if not self._shapes:
            raise RuntimeError('WarehouseManager.store(): no KW layer was reserved')
        num_ratio = self._ratio('cell_num_ratio')
        in_ratio, out_ratio = self._ratio('cell_inplane_ratio'), self._ratio('cell_outplane_ratio')
        self.cell_shapes, self.mixtures, self.num_cells = [], [], []
        weights = []
        for i, shapes in enumerate(self._shapes.values()):
            out_gcd = reduce(math.gcd, [s[0] for s in shapes])
            in_gcd = reduce(math.gcd, [s[1] for s in shapes])
            cell = (max(int(out_gcd * out_ratio[i]), 1), max(int(in_gcd * in_ratio[i]), 1))
            total = sum((s[0] // cell[0]) * (s[1] // cell[1]) * math.prod(s[2:]) for s in shapes)
            n = max(int(total * num_ratio[i]), 1)
            dims = len(shapes[0]) - 2
            self.cell_shapes.append(cell)
            self.mixtures.append(total)
            self.num_cells.append(n)
            weights.append(nn.Parameter(torch.randn(n, *cell, *([1] * dims))))
        self.weights = nn.ParameterList(weights)

    # ------------------------------------------------------------------ phase 3: allocate
    def allocate(self, network: nn.Module) -> None:
        """Build every KW layer's attention (module order) and kaiming-init its own cells."""
        if self.weights is None:
            raise RuntimeError('WarehouseManager.allocate() before store()')
        if self.allocated:
            raise RuntimeError('WarehouseManager.allocate() was already called')
        reduction, num_ratio = self._ratio('reduction'), self._ratio('cell_num_ratio')
        ends = [0] * len(self.weights)
        for layer in network.modules():
            if not isinstance(layer, KWConvNd) or layer._manager[0] is not self:
                continue
            w = layer.warehouse_id
            start = ends[w]
            end = layer.init_attention(self.cell_shapes[w], self.num_cells[w], start,
                                       reduction[w], num_ratio[w], self.norm,
                                       self.nonlocal_basis_ratio)
            owned = self.weights[w].data[start:end]
            if owned.numel():
                nn.init.kaiming_normal_(owned.reshape(-1, *owned.shape[2:]), mode='fan_out',
                                        nonlinearity='relu')
            ends[w] = end
        for w, end in enumerate(ends):
            if end != self.num_cells[w]:
                raise RuntimeError(
                    f'warehouse {w} ({self.keys[w]!r}) has {self.num_cells[w]} cells but its '
                    f'layers own {end}: every reserved layer must be a sub-module of the network '
                    'passed to allocate(), and cell_num_ratio must fit the cell ratios (b >= 1 '
                    'with full cells, or 1/b mixtures per cell with halved cells)')
        self.allocated = True

    @property
    def warehouse_table(self) -> List[dict]:
        """One row per warehouse: key, cell shape, total mixtures, cells n, parameters, layers
        (the reference's ``warehouse_tables.txt`` columns)."""
        if self.weights is None:
            raise RuntimeError('warehouse_table is known after store()')
        return [
            dict(key=key, cell=tuple(self.weights[i].shape[1:]), m_total=self.mixtures[i],
                 n=self.num_cells[i], params=self.weights[i].numel(), nlayers=len(shapes))
            for i, (key, shapes) in enumerate(self._shapes.items())
        ]


def set_kw_temperature(model: nn.Module, temperature: float) -> int:
    """Set tau on every :class:`KWAttention` in ``model``; returns how many were set."""
    count = 0
    for module in model.modules():
        if isinstance(module, KWAttention):
            module.update_temperature(temperature)
            count += 1
    return count
