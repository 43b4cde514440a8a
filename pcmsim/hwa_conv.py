"""Hardware-aware convolutions: ``nn.Conv1d`` / ``nn.Conv2d`` whose training forward passes carry the devices'
non-idealities, as :class:`pcmsim.hwa.HWALinear` does for ``nn.Linear``.

A convolution is deployed as one crossbar holding ``W`` ``[C_out, C_in·kh·kw]``, read once per unfolded
input patch (:mod:`pcmsim.analog_conv`, the path of :func:`pcmsim.convert`). In a training forward pass
an :class:`HWAConv2d` puts its current kernel on a fresh crossbar of the device model (one crossbar, one
delay for the whole batch), reads every patch through it, and adds the deviation from the ideal patch
products to the ideal convolution (straight-through backward)::

    y = conv(x, W) + b + s · (y_crossbar − patches · Wᵀ).detach()

In eval mode it is the plain ``nn.Conv2d``; it *is* one (a subclass), so :func:`pcmsim.convert` programs
it once like any convolution. Only what maps onto one crossbar is made hardware-aware (``groups=1``, zero
padding: :func:`pcmsim.analog_conv.check_conv`). Built by :func:`pcmsim.hwa.make_hwa`.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .analog_conv import check_conv, unfold_padding
from .hwa_layer import HWAModule, HWANoise

__all__ = ["HWAConv1d", "HWAConv2d"]


def _patches(x4: Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int] | str,
             dilation: tuple[int, int]) -> Tensor:
    """The unfolded patches of ``x4`` ``[N, C, H, W]``: ``[N, C·kh·kw, L]`` (padding as ``nn.Conv2d``'s)."""
    x4, pad = unfold_padding(x4, kernel, dilation, padding)
    return F.unfold(x4, kernel, dilation=dilation, padding=pad, stride=stride)


def _with_deviation(layer: HWAModule, y: Tensor, cols: Tensor, out_channels: int) -> Tensor:
    """``y`` plus the deviation of reading the patches ``cols`` ``[N, K, L]`` through ``layer``'s fresh crossbar."""
    n, k, length = cols.shape
    dev = layer.deviation(cols.transpose(1, 2).reshape(n * length, k), y.dtype)
    return y + dev.reshape(n, length, out_channels).transpose(1, 2).reshape(y.shape)


def _take(target: Any, conv: nn.Module, noise: HWANoise) -> None:
    """Give ``target`` (a bare module) ``conv``'s settings and its parameters (shared), and ``noise``."""
    nn.Module.__init__(target)
    for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "transposed",
                 "output_padding", "groups", "padding_mode", "_reversed_padding_repeated_twice"):
        setattr(target, name, getattr(conv, name))
    target.weight = conv.weight
    target.bias = conv.bias
    target.noise = noise


class HWAConv2d(HWAModule, nn.Conv2d):
    """An ``nn.Conv2d`` whose training forward passes carry the devices' non-idealities (module docstring).

    Args:
        conv: the convolution whose ``weight`` and ``bias`` (parameters, shared) and settings it takes.
        noise: the non-idealities of its forward passes.
        name: the layer's name in refusals.

    Raises:
        ValueError: the convolution does not map onto one crossbar (``groups`` ≠ 1, padding other than zeros).
    """

    def __init__(self, conv: nn.Conv2d, noise: HWANoise, name: str = "conv") -> None:
        check_conv(conv, name)
        _take(self, conv, noise)

    def forward(self, x: Tensor) -> Tensor:
        active = self.hwa_active()
        y = self._conv_forward(x, self.weight, self.bias)
        if not active:
            return y
        x4 = x if x.dim() == 4 else x.unsqueeze(0)
        cols = _patches(x4, self.kernel_size, self.stride, self.padding, self.dilation)  # type: ignore[arg-type]
        return _with_deviation(self, y, cols, self.out_channels)


class HWAConv1d(HWAModule, nn.Conv1d):
    """An ``nn.Conv1d`` whose training forward passes carry the devices' non-idealities: the ``1 × k`` case of
    :class:`HWAConv2d` (same arguments)."""

    def __init__(self, conv: nn.Conv1d, noise: HWANoise, name: str = "conv") -> None:
        check_conv(conv, name)
        _take(self, conv, noise)

    def forward(self, x: Tensor) -> Tensor:
        active = self.hwa_active()
        y = self._conv_forward(x, self.weight, self.bias)
        if not active:
            return y
        x4 = (x if x.dim() == 3 else x.unsqueeze(0)).unsqueeze(-2)  # [N, C, 1, L]
        padding = self.padding if isinstance(self.padding, str) else (0, self.padding[0])
        cols = _patches(x4, (1, self.kernel_size[0]), (1, self.stride[0]), padding, (1, self.dilation[0]))
        return _with_deviation(self, y, cols, self.out_channels)
