"""Analog convolutions: a convolution as one crossbar, applied to the unfolded input patches.

A ``Conv2d`` with ``C_in`` input channels, ``C_out`` filters and a ``kh × kw`` kernel is the matrix
``W`` ``[C_out, C_in·kh·kw]`` applied to every input patch (im2col: :func:`torch.nn.functional.unfold`,
the patch entries ordered channel, row, column as ``conv.weight.reshape(C_out, -1)``). The matrix is
one :class:`pcmsim.analog.AnalogLinear` — one crossbar of ``2·C_out·C_in·kh·kw`` devices per pair
per sign — read once per patch: the analog product, drift compensation, the hardware-in-the-loop
updates and the digital bias are the linear layer's. ``Conv1d`` is the ``1 × k`` case.

Only ``groups=1`` and zero padding map this way (one crossbar per convolution);
:func:`check_conv` says why a convolution does not, in one line.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .analog import AnalogLinear

__all__ = ["AnalogConv1d", "AnalogConv2d", "check_conv"]


def _pair(value: int | tuple[int, ...], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if len(value) == 1:
        return (int(value[0]), int(value[0]))
    if len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name}={value!r} is invalid: expected an int or a pair")


def unfold_padding(x4: Tensor, kernel_size: tuple[int, int], dilation: tuple[int, int],
                   padding: tuple[int, int] | str) -> tuple[Tensor, tuple[int, int]]:
    """``x4`` ``[N, C, H, W]`` padded for :func:`torch.nn.functional.unfold` and the padding left to unfold:
    ``"valid"`` none, ``"same"`` PyTorch's own split (the extra pad on the right/bottom), a pair as is."""
    if padding == "valid":
        return x4, (0, 0)
    if padding == "same":
        pads: list[int] = []
        for k, d in zip(reversed(kernel_size), reversed(dilation)):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return F.pad(x4, pads), (0, 0)
    assert isinstance(padding, tuple)
    return x4, padding


def check_conv(conv: nn.Module, name: str) -> None:
    """Raise a one-line ``ValueError`` naming ``name`` unless ``conv`` maps onto one crossbar."""
    kind = type(conv).__name__
    groups = getattr(conv, "groups", 1)
    if groups != 1:
        raise ValueError(f"layer {name!r} ({kind}) cannot map onto a crossbar: groups={groups}; "
                         "expected groups=1 (exclude it to keep it digital)")
    mode = getattr(conv, "padding_mode", "zeros")
    if mode != "zeros":
        raise ValueError(f"layer {name!r} ({kind}) cannot map onto a crossbar: padding_mode={mode!r}; "
                         "expected 'zeros' (exclude it to keep it digital)")


class AnalogConv2d(nn.Module):
    """``nn.Conv2d`` on a crossbar: forward analog per patch, backward digital (:class:`AnalogLinear`).

    Args:
        in_channels: as ``nn.Conv2d``.
        out_channels: as ``nn.Conv2d``.
        kernel_size: as ``nn.Conv2d``.
        stride: as ``nn.Conv2d``.
        padding: as ``nn.Conv2d``, also ``"valid"`` or ``"same"``.
        dilation: as ``nn.Conv2d``.
        bias: a digital bias, as ``nn.Conv2d``'s.
        **analog: options of :class:`pcmsim.analog.AnalogLinear` (``device_model``, ``config``,
            ``seed``, ``t_s``, ``program``, ``backward_weights``, ...).

    Attributes:
        linear: the :class:`AnalogLinear` ``[C_out, C_in·kh·kw]`` holding the crossbar.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        bias: bool = True,
        **analog: Any,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding={padding!r} is invalid: expected 'valid', 'same', an int or a pair")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is invalid with a stride other than 1")
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = _pair(padding, "padding")
        kh, kw = self.kernel_size
        self.linear = AnalogLinear(self.in_channels * kh * kw, self.out_channels, bias, **analog)

    @property
    def weight(self) -> Tensor:
        """The digital estimate of the kernel ``[C_out, C_in, kh, kw]`` (a view of ``linear.weight``)."""
        return self.linear.weight.view(self.out_channels, self.in_channels, *self.kernel_size)

    def read_weights(self, noise: bool = False) -> Tensor:
        """The kernel the devices hold at the layer's time, times its drift compensation,
        ``[C_out, C_in, kh, kw]`` (:meth:`pcmsim.analog.AnalogLinear.read_weights`)."""
        return self.linear.read_weights(noise).view(self.out_channels, self.in_channels, *self.kernel_size)

    @property
    def bias(self) -> Tensor | None:
        return self.linear.bias

    @property
    def n_devices(self) -> int:
        """Devices of the convolution's one crossbar."""
        return int(self.linear.crossbar.n_devices)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[..., C_in, H, W]`` (any leading dims) → ``[..., C_out, H_out, W_out]``."""
        if x.dim() < 3 or x.shape[-3] != self.in_channels:
            raise ValueError(f"input of shape {tuple(x.shape)} is invalid: expected [..., {self.in_channels}, H, W]")
        lead = x.shape[:-3]
        x4 = x.reshape(-1, *x.shape[-3:])
        x4, padding = unfold_padding(x4, self.kernel_size, self.dilation, self.padding)
        h, w = x4.shape[-2:]
        kh, kw = self.kernel_size
        (dh, dw), (sh, sw), (ph, pw) = self.dilation, self.stride, padding
        h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if h_out < 1 or w_out < 1:
            raise ValueError(f"input of shape {tuple(x.shape)} is smaller than the kernel {self.kernel_size}")
        cols = F.unfold(x4, self.kernel_size, dilation=self.dilation, padding=padding, stride=self.stride)
        steps = int(x.shape[0]) if x.dim() >= 5 else 1  # [T, B, C, H, W]: T time steps; [B, C, H, W]: one
        y = self.linear(cols.transpose(1, 2), time_steps=steps)  # [N, L, C_out]
        return y.transpose(1, 2).reshape(*lead, self.out_channels, h_out, w_out)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, devices={self.n_devices}")


class AnalogConv1d(AnalogConv2d):
    """``nn.Conv1d`` on a crossbar: the ``1 × k`` case of :class:`AnalogConv2d`; ``x`` ``[..., C_in, L]``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        bias: bool = True,
        **analog: Any,
    ) -> None:
        def one(v: int | tuple[int, ...]) -> tuple[int, int]:
            return (1, int(v if isinstance(v, int) else v[0]))

        pad: tuple[int, int] | str = padding if isinstance(padding, str) else (0, one(padding)[1])
        super().__init__(in_channels, out_channels, one(kernel_size), one(stride), pad, one(dilation), bias, **analog)

    @property
    def weight(self) -> Tensor:
        """The digital estimate of the kernel ``[C_out, C_in, k]``."""
        return self.linear.weight.view(self.out_channels, self.in_channels, self.kernel_size[1])

    def read_weights(self, noise: bool = False) -> Tensor:
        """The kernel the devices hold at the layer's time, times its drift compensation, ``[C_out, C_in, k]``."""
        return self.linear.read_weights(noise).view(self.out_channels, self.in_channels, self.kernel_size[1])

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[..., C_in, L]`` → ``[..., C_out, L_out]``."""
        if x.dim() < 2:
            raise ValueError(f"input of shape {tuple(x.shape)} is invalid: expected [..., {self.in_channels}, L]")
        return super().forward(x.unsqueeze(-2)).squeeze(-2)
