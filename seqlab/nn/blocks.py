"""Builders of the feed-forward blocks every model here is made of: ``MLP`` and ``ConvStack``.

``MLP`` stacks ``Linear → norm → activation → dropout`` layers from a list of sizes.

``ConvStack`` is the one convolution builder (1-D over time, or 2-D over images /
spectrograms) serving the text CNN, the convolutional autoencoder, DCGAN and the speech
front end. Each layer is a ``ConvLayerSpec``: ``conv (or transposed conv) → norm →
activation → pool → dropout``. Output sizes follow the convolution arithmetic of
Dumoulin & Visin (2016), "A guide to convolution arithmetic for deep learning", eq. (15):

    o = floor((n + 2p − d·(f − 1) − 1) / s) + 1        (= (n + 2p − f)/s + 1 for d = 1)

and, for a transposed convolution (their §4, as torch implements it),

    o = (n − 1)·s − 2p + d·(f − 1) + output_padding + 1.

Padding ``"valid"`` is p = 0; ``"same"`` pads d·(f − 1) in total (the extra one on the
right when that is odd, as torch does), so the output has ceil(n / s) steps for any
stride — and ``n · s`` for a transposed layer. The helpers ``conv_output_length``,
``pool_output_length`` and ``transposed_conv_output_length`` work on ints and on length
tensors alike; ``ConvStack.output_shape`` / ``ConvStack.output_lengths`` apply them layer
by layer, so a model can size a linear layer after the stack, or tell CTC how many frames
a strided front end leaves, without running it.

Variable-length batches: ``ConvStack.forward(x, lengths)`` zeroes the padded steps before
every layer (so a window that reaches past a sequence's end sees the same zeros as the
padding of a lone sequence) and makes global pooling skip them, so a sequence gets the same
output in a padded batch as alone — the tests check it on random stacks. Batch norm in
training mode is the exception: its statistics see the whole padded batch.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.config import check_dropout, check_int, from_dict, suggest
from ..core.errors import ConfigError, InputError
from .activations import activation as make_activation

__all__ = [
    "ConvLayerSpec",
    "ConvStack",
    "ConvStackConfig",
    "MLP",
    "MLPConfig",
    "conv_output_length",
    "pool_output_length",
    "transposed_conv_output_length",
]

NORMS = ("batch", "layer")
POOLS = ("max", "avg", "global_max", "global_avg")

IntOrPair = Union[int, tuple[int, ...]]
Length = Union[int, Tensor]


# -- output-size arithmetic ------------------------------------------------------------------

def _total_padding(padding: str | int, kernel: int, dilation: int, where: str = "padding") -> int:
    """Total padding on one axis (both sides together)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0
        if padding == "same":
            return dilation * (kernel - 1)
        raise ConfigError(f"{where}: {padding!r} is not 'valid', 'same' or a non-negative integer")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"{where}: {padding!r} is not 'valid', 'same' or a non-negative integer")
    return 2 * padding


def _length(n: Length, kernel: int, stride: int, total_padding: int, dilation: int) -> Length:
    # floor division works the same for Python ints and integer tensors.
    return (n + total_padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_length(n: Length, kernel: int, stride: int = 1, padding: str | int = 0, dilation: int = 1) -> Length:
    """Steps a convolution leaves from ``n``: ``floor((n + 2p − d(f−1) − 1)/s) + 1``.

    ``padding`` is an int p (p on each side), ``"valid"`` (0) or ``"same"`` (d(f−1) in
    total, giving ceil(n/s)). ``n`` may be an int or an integer tensor of lengths. The
    result can be < 1: that input is too short for this layer.

    >>> conv_output_length(32, kernel=5, stride=2, padding=2)
    16
    >>> conv_output_length(10, kernel=3, stride=3, padding="same")
    4
    >>> conv_output_length(torch.tensor([7, 12]), kernel=3, dilation=2)
    tensor([3, 8])
    """
    return _length(n, kernel, stride, _total_padding(padding, kernel, dilation), dilation)


def pool_output_length(n: Length, kernel: int, stride: int | None = None, padding: int = 0, dilation: int = 1) -> Length:
    """Steps a max/avg pooling leaves (the stride defaults to the kernel, as in torch).

    >>> pool_output_length(9, kernel=2)
    4
    """
    return _length(n, kernel, kernel if stride is None else stride, 2 * padding, dilation)


def transposed_conv_output_length(
    n: Length, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1, output_padding: int = 0
) -> Length:
    """Steps a transposed convolution produces: ``(n−1)s − 2p + d(f−1) + output_padding + 1``.

    >>> transposed_conv_output_length(16, kernel=4, stride=2, padding=1)
    32
    """
    return (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _transposed_same(kernel: int, stride: int, dilation: int, where: str) -> tuple[int, int]:
    """(padding, output_padding) for which a transposed conv maps n steps to n·s."""
    excess = dilation * (kernel - 1) + 1 - stride  # = 2p − output_padding must hold
    padding = max(0, math.ceil(excess / 2))
    output_padding = 2 * padding - excess
    if not 0 <= output_padding < max(stride, dilation):
        raise ConfigError(
            f"{where}: padding 'same' for a transposed convolution with kernel {kernel}, stride {stride}, "
            f"dilation {dilation} is impossible (it needs output_padding {output_padding}); use an odd "
            "effective kernel or an integer padding"
        )
    return padding, output_padding


# -- small modules ------------------------------------------------------------------------------

class _ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels at each position of a (B, C, ...) map.

    Per position, so padding never leaks into a sequence's statistics (unlike batch norm).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        last = x.dim() - 1  # non-negative axes: the ONNX exporter writes movedim(1, -1) as an invalid Transpose
        return self.norm(x.movedim(1, last)).movedim(last, 1)


class _FeatureBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the last axis of a (..., F) tensor (statistics over all leading axes)."""

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


def _check_choice(value: Any, choices: Sequence[str], name: str, where: str) -> str | None:
    if value is None or value == "none":
        return None
    if value not in choices:
        raise ConfigError(
            f"{where}: unknown {name} {value!r}{suggest(str(value), list(choices))}; valid: {', '.join(choices)} or none"
        )
    return value


# -- MLP ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class MLPConfig:
    """Settings of an ``MLP``. ``sizes`` = [input, hidden…, output]."""

    sizes: list[int] = dataclasses.field(default_factory=lambda: [128, 128])
    activation: str = "relu"
    activation_params: dict[str, float] = dataclasses.field(default_factory=dict)
    dropout: float = 0.0
    norm: str | None = None
    final_activation: str | None = None
    final_activation_params: dict[str, float] = dataclasses.field(default_factory=dict)
    bias: bool = True

    def validate(self, where: str = "MLP") -> None:
        if not isinstance(self.sizes, (list, tuple)) or len(self.sizes) < 2:
            raise ConfigError(f"{where}: sizes must list at least [input, output], got {self.sizes!r}")
        for i, size in enumerate(self.sizes):
            check_int(size, f"sizes[{i}]", where)
        check_dropout(self.dropout, where)
        _check_choice(self.norm, NORMS, "norm", where)


class MLP(nn.Module):
    """A multi-layer perceptron: ``Linear → norm → activation → dropout`` per hidden layer.

    The last ``Linear`` is followed only by ``final_activation`` (none by default, so the
    output is logits / a linear read-out). Works on ``(..., sizes[0])`` inputs.

    >>> mlp = MLP([4, 8, 2], activation="tanh", dropout=0.1)
    >>> mlp(torch.randn(3, 5, 4)).shape
    torch.Size([3, 5, 2])
    >>> probs = MLP([4, 2], final_activation="softmax")(torch.randn(3, 4))
    >>> torch.allclose(probs.sum(-1), torch.ones(3))
    True
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str | None = None,
        final_activation: str | None = None,
        *,
        activation_params: dict[str, float] | None = None,
        final_activation_params: dict[str, float] | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        config = MLPConfig(
            list(sizes) if isinstance(sizes, (list, tuple)) else sizes, activation, dict(activation_params or {}),
            dropout, norm, final_activation, dict(final_activation_params or {}), bias,
        )
        config.validate(type(self).__name__)
        self.config = config
        sizes = config.sizes
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fan_in, fan_out, bias=bias))
            if i < len(sizes) - 2:
                if config.norm == "batch":
                    layers.append(_FeatureBatchNorm(fan_out))
                elif config.norm == "layer":
                    layers.append(nn.LayerNorm(fan_out))
                layers.append(make_activation(activation, **config.activation_params))
                if config.dropout > 0:
                    layers.append(nn.Dropout(config.dropout))
        if final_activation is not None:
            layers.append(make_activation(final_activation, **config.final_activation_params))
        self.layers = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: MLPConfig | dict) -> "MLP":
        if isinstance(config, dict):
            config = from_dict(MLPConfig, config, where="MLP")
        return cls(
            config.sizes, config.activation, config.dropout, config.norm, config.final_activation,
            activation_params=config.activation_params, final_activation_params=config.final_activation_params,
            bias=config.bias,
        )

    @property
    def input_size(self) -> int:
        return self.config.sizes[0]

    @property
    def output_size(self) -> int:
        return self.config.sizes[-1]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self.input_size:
            raise InputError(
                f"MLP expects inputs (..., {self.input_size}), got shape {tuple(x.shape)}"
            )
        return self.layers(x)


# -- ConvStack ---------------------------------------------------------------------------------

@dataclasses.dataclass
class ConvLayerSpec:
    """One layer of a ``ConvStack``: conv (or transposed conv) → norm → activation → pool → dropout.

    Sizes are ints, or (height, width) pairs for 2-D stacks. ``padding`` is ``"valid"``,
    ``"same"`` or an int / pair. ``pool`` is ``"max"``, ``"avg"`` (window ``pool_kernel``,
    stride ``pool_stride`` defaulting to the window), ``"global_max"`` / ``"global_avg"``
    (one value per channel; padding skipped when lengths are given), or None.
    ``output_padding`` only applies to transposed layers.
    """

    channels: int = 32
    kernel: IntOrPair = 3
    stride: IntOrPair = 1
    padding: Union[str, int, tuple[Union[str, int], ...]] = "valid"
    dilation: IntOrPair = 1
    transposed: bool = False
    output_padding: IntOrPair = 0
    activation: str | None = "relu"
    activation_params: dict[str, float] = dataclasses.field(default_factory=dict)
    norm: str | None = None
    dropout: float = 0.0
    pool: str | None = None
    pool_kernel: IntOrPair = 2
    pool_stride: IntOrPair | None = None
    bias: bool = True


@dataclasses.dataclass
class ConvStackConfig:
    """A whole stack: input channels, 1 or 2 spatial dimensions, and the layers in order."""

    in_channels: int = 1
    dims: int = 1
    layers: list[ConvLayerSpec] = dataclasses.field(default_factory=lambda: [ConvLayerSpec()])

    def validate(self, where: str = "ConvStack") -> None:
        check_int(self.in_channels, "in_channels", where)
        if self.dims not in (1, 2):
            raise ConfigError(f"{where}: dims must be 1 or 2, got {self.dims!r}")
        if not self.layers:
            raise ConfigError(f"{where}: layers is empty; give at least one layer spec")


def _per_axis(value: Any, dims: int, name: str, where: str, minimum: int) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,) * dims
    if len(values) != dims:
        raise ConfigError(f"{where}: {name} {value!r} must be one int or {dims} ints for a {dims}-D stack")
    for v in values:
        check_int(v, name, where, minimum)
    return values


class _ConvLayer(nn.Module):
    """One resolved ``ConvLayerSpec``: the torch modules plus the size arithmetic."""

    def __init__(self, spec: ConvLayerSpec, in_channels: int, dims: int, index: int) -> None:
        super().__init__()
        where = f"ConvStack layer {index}"
        self.index, self.dims, self.spec = index, dims, spec
        self.in_channels = in_channels
        self.out_channels = check_int(spec.channels, "channels", where)
        self.kernel = _per_axis(spec.kernel, dims, "kernel", where, 1)
        self.stride = _per_axis(spec.stride, dims, "stride", where, 1)
        self.dilation = _per_axis(spec.dilation, dims, "dilation", where, 1)
        self.transposed = bool(spec.transposed)
        pads = spec.padding if isinstance(spec.padding, (list, tuple)) else (spec.padding,) * dims
        if len(pads) != dims:
            raise ConfigError(f"{where}: padding {spec.padding!r} must be one value or {dims} for a {dims}-D stack")
        if self.transposed:
            self.output_padding = list(_per_axis(spec.output_padding, dims, "output_padding", where, 0))
            self.padding = []
            for axis, pad in enumerate(pads):
                f, s, d = self.kernel[axis], self.stride[axis], self.dilation[axis]
                if pad == "same":
                    p, op = _transposed_same(f, s, d, where)
                    self.output_padding[axis] = op
                else:
                    p = _total_padding(pad, f, d, f"{where}: padding") // 2
                self.padding.append(p)
                if self.output_padding[axis] >= max(s, d):
                    raise ConfigError(
                        f"{where}: output_padding {self.output_padding[axis]} must be smaller than the stride "
                        f"({s}) or the dilation ({d})"
                    )
            self.totals = tuple(2 * p for p in self.padding)
            conv_cls = nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d
            self.conv = conv_cls(
                in_channels, self.out_channels, self.kernel, self.stride, tuple(self.padding),
                tuple(self.output_padding), bias=spec.bias, dilation=self.dilation,
            )
            self.explicit_pad = None
        else:
            if any(p != 0 for p in _per_axis(spec.output_padding, dims, "output_padding", where, 0)):
                raise ConfigError(f"{where}: output_padding applies only to transposed layers (transposed: true)")
            self.totals = tuple(
                _total_padding(p, self.kernel[a], self.dilation[a], f"{where}: padding") for a, p in enumerate(pads)
            )
            if all(t % 2 == 0 for t in self.totals):
                self.explicit_pad = None
                conv_padding = tuple(t // 2 for t in self.totals)
            else:
                # Odd total ("same" with an even kernel): pad explicitly, the extra step on the right.
                self.explicit_pad = []
                for t in reversed(self.totals):  # F.pad lists the last axis first
                    self.explicit_pad += [t // 2, t - t // 2]
                conv_padding = (0,) * dims
            conv_cls = nn.Conv1d if dims == 1 else nn.Conv2d
            self.conv = conv_cls(
                in_channels, self.out_channels, self.kernel, self.stride, conv_padding,
                self.dilation, bias=spec.bias,
            )
        norm = _check_choice(spec.norm, NORMS, "norm", where)
        if norm == "batch":
            self.norm = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(self.out_channels)
        elif norm == "layer":
            self.norm = _ChannelLayerNorm(self.out_channels)
        else:
            self.norm = nn.Identity()
        self.act = make_activation(spec.activation, **dict(spec.activation_params))
        self.pool_kind = _check_choice(spec.pool, POOLS, "pool", where)
        self.pool_kernel = _per_axis(spec.pool_kernel, dims, "pool_kernel", where, 1)
        self.pool_stride = (
            self.pool_kernel if spec.pool_stride is None
            else _per_axis(spec.pool_stride, dims, "pool_stride", where, 1)
        )
        self.dropout = nn.Dropout(check_dropout(spec.dropout, where)) if spec.dropout else nn.Identity()

    # -- arithmetic ------------------------------------------------------------------------
    def conv_size(self, n: Length, axis: int) -> Length:
        if self.transposed:
            return transposed_conv_output_length(
                n, self.kernel[axis], self.stride[axis], self.padding[axis], self.dilation[axis],
                self.output_padding[axis],
            )
        return _length(n, self.kernel[axis], self.stride[axis], self.totals[axis], self.dilation[axis])

    def pool_size(self, n: Length, axis: int) -> Length:
        if self.pool_kind in ("max", "avg"):
            return pool_output_length(n, self.pool_kernel[axis], self.pool_stride[axis])
        if self.pool_kind is not None:  # global
            return n * 0 + 1
        return n

    def describe(self) -> str:
        kind = "transposed conv" if self.transposed else "conv"
        text = (
            f"{kind} {self.in_channels}→{self.out_channels} kernel {_fmt(self.kernel)}, stride {_fmt(self.stride)}, "
            f"padding {self.spec.padding!r}, dilation {_fmt(self.dilation)}"
        )
        if self.pool_kind in ("max", "avg"):
            text += f", {self.pool_kind} pool {_fmt(self.pool_kernel)}/{_fmt(self.pool_stride)}"
        elif self.pool_kind:
            text += f", {self.pool_kind} pool"
        return text

    def output_sizes(self, sizes: tuple[int, ...], input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = []
        for axis, n in enumerate(sizes):
            conv = self.conv_size(n, axis)
            pooled = self.pool_size(conv, axis) if conv >= 1 else conv
            if conv < 1 or pooled < 1:
                stage = "convolution" if conv < 1 else "pooling"
                got = conv if conv < 1 else pooled
                raise InputError(
                    f"ConvStack layer {self.index} ({self.describe()}) cannot take its input of spatial size "
                    f"{tuple(sizes)} (stack input shape {input_shape}): the {stage} would leave {got} step(s) "
                    f"on spatial axis {axis}; the input is too small for this layer"
                )
            out.append(int(pooled))
        return tuple(out)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if lengths is not None:
            x = _mask_last_axis(x, lengths, 0.0)
        if self.explicit_pad is not None:
            x = F.pad(x, self.explicit_pad)
        x = self.act(self.norm(self.conv(x)))
        if lengths is not None:
            lengths = self.conv_size(lengths, self.dims - 1)
        if self.pool_kind is not None:
            x, lengths = self._pool(x, lengths)
        return self.dropout(x), lengths

    def _pool(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        kind = self.pool_kind
        # Local pooling needs no mask: the windows of the floor((L − k)/s) + 1 valid outputs
        # all end before step L, so they never reach the padding.
        if kind == "max":
            pool = F.max_pool1d if self.dims == 1 else F.max_pool2d
            x = pool(x, self.pool_kernel, self.pool_stride)
        elif kind == "avg":
            pool = F.avg_pool1d if self.dims == 1 else F.avg_pool2d
            x = pool(x, self.pool_kernel, self.pool_stride)
        else:
            axes = tuple(range(2, x.dim()))
            if lengths is None:
                x = x.amax(dim=axes, keepdim=True) if kind == "global_max" else x.mean(dim=axes, keepdim=True)
            elif kind == "global_max":
                x = _mask_last_axis(x, lengths, float("-inf")).amax(dim=axes, keepdim=True)
            else:
                other = math.prod(x.shape[2:-1])
                total = _mask_last_axis(x, lengths, 0.0).sum(dim=axes, keepdim=True)
                count = (lengths.to(x.dtype) * other).clamp(min=1).view(-1, *([1] * (x.dim() - 1)))
                x = total / count
        if lengths is not None:
            lengths = self.pool_size(lengths, self.dims - 1)
        return x, lengths


def _fmt(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "×".join(map(str, values))


def _mask_last_axis(x: Tensor, lengths: Tensor, value: float) -> Tensor:
    """Set positions ``>= lengths[b]`` on the last axis of ``x`` to ``value``."""
    steps = torch.arange(x.shape[-1], device=x.device)
    keep = steps.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)  # (B, T)
    keep = keep.view(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1])
    return x.masked_fill(~keep, value)


class ConvStack(nn.Module):
    """A stack of 1-D or 2-D (transposed) convolution layers built from layer specs.

    Input ``(B, C, T)`` for ``dims=1``, ``(B, C, H, W)`` for ``dims=2``. Build it from
    ``(in_channels, layers, dims)`` — ``layers`` being ``ConvLayerSpec``s or plain dicts of
    their fields — or from one ``ConvStackConfig`` (or its dict form). ``forward(x)`` returns the output;
    ``forward(x, lengths)`` (lengths along the last axis) returns ``(output, out_lengths)``
    and keeps padding out of every result (see the module docstring).

    >>> stack = ConvStack(1, [{"channels": 4, "kernel": 3, "stride": 2, "padding": 1},
    ...                       {"channels": 8, "kernel": 3, "pool": "max"}])
    >>> stack.output_shape((1, 50))
    (8, 11)
    >>> stack(torch.randn(2, 1, 50)).shape
    torch.Size([2, 8, 11])
    >>> y, n = stack(torch.randn(2, 1, 50), torch.tensor([50, 20]))
    >>> n
    tensor([11,  4])
    >>> up = ConvStack(8, [ConvLayerSpec(channels=1, kernel=4, stride=2, padding=1, transposed=True)], dims=2)
    >>> up.output_shape((8, 7, 16))
    (1, 14, 32)
    """

    def __init__(
        self,
        in_channels: int | ConvStackConfig | dict,
        layers: Sequence[ConvLayerSpec | dict] | None = None,
        dims: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, (ConvStackConfig, dict)):  # ConvStack(config)
            if layers is not None:
                raise ConfigError("ConvStack: give either a config or (in_channels, layers), not both")
            config = in_channels if isinstance(in_channels, ConvStackConfig) else from_dict(ConvStackConfig, in_channels, where="ConvStack")
            in_channels, layers, dims = config.in_channels, config.layers, config.dims
        if layers is None:
            raise ConfigError("ConvStack: layers is missing; give a list of layer specs")
        specs = []
        for i, layer in enumerate(layers):
            if isinstance(layer, dict):
                layer = from_dict(ConvLayerSpec, layer, where=f"ConvStack layer {i}")
            elif not isinstance(layer, ConvLayerSpec):
                raise ConfigError(f"ConvStack layer {i}: expected a ConvLayerSpec or a dict, got {type(layer).__name__}")
            specs.append(layer)
        self.config = ConvStackConfig(in_channels, dims, specs)
        self.config.validate()
        self.dims = dims
        built = []
        channels = in_channels
        for i, spec in enumerate(specs):
            built.append(_ConvLayer(spec, channels, dims, i))
            channels = built[-1].out_channels
        self.layers = nn.ModuleList(built)

    @classmethod
    def from_config(cls, config: ConvStackConfig | dict) -> "ConvStack":
        """Build from a ``ConvStackConfig`` or its plain-data form (a YAML recipe section)."""
        return cls(config)

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    @property
    def out_channels(self) -> int:
        return self.layers[-1].out_channels

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the output for an input of ``input_shape`` — ``(C, *spatial)``, or with
        the batch axis first, which is then kept — without running the stack.

        Raises ``InputError`` naming the layer and shapes when the input is too small or has
        the wrong number of channels.
        """
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (self.dims + 1, self.dims + 2):
            raise InputError(
                f"ConvStack ({self.dims}-D) expects a shape (C, {'T' if self.dims == 1 else 'H, W'}) or with a batch "
                f"axis first, got {shape}"
            )
        batch = shape[:1] if len(shape) == self.dims + 2 else ()
        channels, sizes = shape[len(batch)], shape[len(batch) + 1:]
        if channels != self.in_channels:
            raise InputError(
                f"ConvStack layer 0 expects {self.in_channels} input channel(s), got {channels} (input shape {shape})"
            )
        for layer in self.layers:
            sizes = layer.output_sizes(sizes, shape)
        return (*batch, self.out_channels, *sizes)

    def output_lengths(self, lengths: Length) -> Length:
        """Lengths along the last axis after the stack (e.g. frames left for CTC).

        ``lengths`` is an int or a ``(B,)`` integer tensor. A length that leaves no output
        step at some layer is an ``InputError`` naming the example, the layer and the length.

        >>> ConvStack(13, [{"channels": 8, "kernel": 3, "stride": 2, "padding": 1}] * 2).output_lengths(torch.tensor([100, 37]))
        tensor([25, 10])
        """
        is_int = not isinstance(lengths, Tensor)
        current = torch.as_tensor(lengths).reshape(-1) if is_int else lengths
        if current.dtype.is_floating_point:
            raise InputError(f"ConvStack.output_lengths: expected integer lengths, got dtype {current.dtype}")
        original = current
        axis = self.dims - 1
        for layer in self.layers:
            conv = layer.conv_size(current, axis)
            out = layer.pool_size(conv, axis)
            bad = (conv < 1) | (out < 1)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                raise InputError(
                    f"ConvStack layer {layer.index} ({layer.describe()}): example {i} of length "
                    f"{int(original[i])} is too short; it has {int(current[i])} step(s) at this layer's input "
                    f"and would leave {int(conv[i] if conv[i] < 1 else out[i])}"
                )
            current = out
        return int(current[0]) if is_int else current

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        if x.dim() != self.dims + 2:
            raise InputError(
                f"ConvStack ({self.dims}-D) expects input (B, C, {'T' if self.dims == 1 else 'H, W'}), "
                f"got shape {tuple(x.shape)}"
            )
        self.output_shape(x.shape)  # clear errors (layer, shapes) before torch's own
        if lengths is None:
            for layer in self.layers:
                x, _ = layer(x)
            return x
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.dim() != 1 or lengths.shape[0] != x.shape[0]:
            raise InputError(f"ConvStack: lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > x.shape[-1]):
            raise InputError(
                f"ConvStack: lengths must lie in [1, {x.shape[-1]}] (the padded length), got min "
                f"{int(lengths.min())}, max {int(lengths.max())}"
            )
        out_lengths = self.output_lengths(lengths)
        lengths = lengths.to(x.device)
        for layer in self.layers:
            x, lengths = layer(x, lengths)
        if self.layers[-1].pool_kind not in ("global_max", "global_avg"):
            x = _mask_last_axis(x, lengths, 0.0)
        return x, out_lengths
