"""Hardware-aware training (HWA): software training whose forward passes see the devices' non-idealities.

The method of Rasch et al., Nat. Commun. 14, 5282 (2023) (aihwkit's ``InferenceRPUConfig`` with its
weight modifiers), with the noise taken from a pcmsim device model itself instead of a separate table:
in every training forward pass an :class:`HWALinear` puts its *current* weights on a fresh
:class:`pcmsim.crossbar.Crossbar` of the chosen device model (any registered or fitted model) with
the model's own programming (programming noise; program-and-verify for pulse-level models), reads
it at a random delay after programming (drift), with the chosen drift compensation (the chip's
reference readout right after programming, then α at the delay: :mod:`pcmsim.compensation`), through
the crossbar's periphery (DAC/ADC quantisation and bounds, read and output noise:
:meth:`pcmsim.crossbar.Crossbar.mvm`). The output is the ideal product plus the deviation of that
read, and the backward pass is ideal (straight through)::

    y = x Wᵀ + b + s · (y_crossbar − x Wᵀ).detach()        (s: ``noise_scale``)

In eval mode the layer is an ideal ``nn.Linear``. It *is* an ``nn.Linear`` (a subclass), so
:func:`pcmsim.convert` programs a trained HWA network once, exactly like an FP32 one. Optionally the
weights are clipped to ``±k·std(W)`` (``clip_sigma``, Rasch et al.'s weight clipping). Convolutions:
:mod:`pcmsim.hwa_conv` (through :func:`make_hwa`). The options, the noise of a read and the layer base:
:mod:`pcmsim.hwa_layer`.

Every draw (devices, programming, read noise, the delay) comes from the layer's own
``torch.Generator``; its state travels in the layer's ``state_dict`` (extra state), so a resumed run
continues the same stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import device_models
from device_models import DeviceModel, DeviceParams

from .analog import derive_seed, resolve_crossbar
from .crossbar import CrossbarConfig
from .hwa_layer import DRIFT_DISTRIBUTIONS, HWAConfig, HWAModule, HWANoise

__all__ = ["DRIFT_DISTRIBUTIONS", "HWAConfig", "HWALinear", "HWAModule", "HWANoise", "hwa_linear_factory", "make_hwa"]

class HWALinear(HWAModule, nn.Linear):
    """An ``nn.Linear`` whose training forward passes carry the devices' non-idealities (module docstring).

    Args:
        linear: the layer whose ``weight`` and ``bias`` (parameters, shared) it takes.
        noise: the non-idealities of its forward passes.
    """

    def __init__(self, linear: nn.Linear, noise: HWANoise) -> None:
        nn.Module.__init__(self)
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.noise = noise

    def forward(self, x: Tensor) -> Tensor:
        active = self.hwa_active()
        y = F.linear(x, self.weight, self.bias)
        if not active:
            return y
        return y + self.deviation(x.reshape(-1, self.in_features), y.dtype).reshape(y.shape)


def hwa_linear_factory(
    base: Callable[[int, int, bool], nn.Module],
    config: HWAConfig | None = None,
    *,
    device_model: DeviceModel | str = "pcm-joshi2020",
    device_params: DeviceParams | Mapping[str, Any] | None = None,
    crossbar: CrossbarConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    t_s: float = 0.0,
    device: torch.device | str | None = None,
) -> Callable[[int, int, bool], nn.Module]:
    """A :data:`pcmsim.networks.LinearFactory` of :class:`HWALinear` layers around ``base``'s ``nn.Linear``
    layers (so an HWA network starts from exactly the FP32 network's initial weights).

    Layer i gets the generator seeded ``derive_seed(seed, "hwa", i)`` (pass a seed derived from the run's
    seed); ``crossbar`` is the deployed crossbar (typically ``weight_scale="auto"``, as :func:`pcmsim.convert`
    is used after training); ``t_s``: the time of programming, s.
    """
    cfg = config or HWAConfig()
    model = device_models.resolve(device_model, device_params)
    xb = resolve_crossbar(crossbar)
    counter = [0]

    def factory(in_features: int, out_features: int, bias: bool) -> nn.Module:
        layer = base(in_features, out_features, bias)
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"the base factory made a {type(layer).__name__}: expected an nn.Linear")
        index = counter[0]
        counter[0] += 1
        noise = HWANoise(model, xb, cfg, seed=derive_seed(seed, "hwa", index), t_program_s=t_s, device=device)
        return HWALinear(layer, noise)

    return factory


def make_hwa(
    model: nn.Module,
    device_model: DeviceModel | str = "pcm-joshi2020",
    config: HWAConfig | None = None,
    *,
    device_params: DeviceParams | Mapping[str, Any] | None = None,
    crossbar: CrossbarConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    t_s: float = 0.0,
) -> nn.Module:
    """Your own model, hardware-aware: every ``nn.Linear`` of ``model`` (in place) becomes an
    :class:`HWALinear`, every ``nn.Conv1d`` / ``nn.Conv2d`` an :class:`pcmsim.hwa_conv.HWAConv1d` /
    :class:`~pcmsim.hwa_conv.HWAConv2d`, each holding the same parameters, layer ``name`` drawing from
    ``derive_seed(seed, "hwa", name)``. Train it as before (``hardware_in_loop.train(..., flavour="fp32")``
    or any loop), then program it once with :func:`pcmsim.convert`. Returns ``model``.

    Raises:
        ValueError: the model has no such layer, or a convolution does not map onto one crossbar
            (``groups`` ≠ 1, padding other than zeros; named in the message).
    """
    from .hwa_conv import HWAConv1d, HWAConv2d

    cfg = config or HWAConfig()
    dev_model = device_models.resolve(device_model, device_params)
    xb = resolve_crossbar(crossbar if crossbar is not None else {"weight_scale": "auto"})
    kinds: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
    names = [n for n, m in model.named_modules() if isinstance(m, kinds) and not isinstance(m, HWAModule)]
    if not names:
        raise ValueError(f"the model ({type(model).__name__}) has no nn.Linear, nn.Conv1d or nn.Conv2d layer "
                         "to make hardware-aware")
    for name in names:
        layer = model.get_submodule(name)
        assert isinstance(layer.weight, Tensor)
        noise = HWANoise(dev_model, xb, cfg, seed=derive_seed(seed, "hwa", name), t_program_s=t_s,
                         device=layer.weight.device)
        new: nn.Module
        if isinstance(layer, nn.Conv2d):
            new = HWAConv2d(layer, noise, name or "model")
        elif isinstance(layer, nn.Conv1d):
            new = HWAConv1d(layer, noise, name or "model")
        else:
            assert isinstance(layer, nn.Linear)
            new = HWALinear(layer, noise)
        if not name:
            return new
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, new)
    return model
