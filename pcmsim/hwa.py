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
:mod:`pcmsim.hwa_conv` (through :func:`make_hwa`).

Every draw (devices, programming, read noise, the delay) comes from the layer's own
``torch.Generator``; its state travels in the layer's ``state_dict`` (extra state), so a resumed run
continues the same stream.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

import device_models
from device_models import DeviceModel, DeviceParams

from .analog import derive_seed, resolve_crossbar
from .compensation import MODES, column_readout, compensation_factors
from .crossbar import Crossbar, CrossbarConfig
from .periphery import PeripheryConfig
from .typedconfig import check, check_fields, choices, non_negative

__all__ = ["DRIFT_DISTRIBUTIONS", "HWAConfig", "HWALinear", "HWAModule", "HWANoise", "hwa_linear_factory", "make_hwa"]

DRIFT_DISTRIBUTIONS: tuple[str, ...] = ("log-uniform", "uniform", "fixed")
"""How a training forward pass draws its delay after programming: ``log-uniform`` (``log t`` uniform in
``[t_min_s, t_max_s]``: every decade of drift weighs the same), ``uniform``, or ``fixed`` (``t_max_s``)."""

YEAR_S = 365.0 * 86400.0  # one year, s (the longest delay of the deployment study)


@dataclass(frozen=True)
class HWAConfig:
    """The options of hardware-aware training (a run's ``hwa`` field; used by flavour ``hwa`` only).

    Attributes:
        drift: read the devices at a random delay after programming (False: right after programming).
        read_noise: draw the device model's read noise at each read (the crossbar's ``read_noise``).
        periphery: read through the crossbar's DAC/ADC periphery (quantisation, bounds, output noise);
            False: an ideal periphery.
        compensation: drift compensation of each read (``none``, ``global``, ``per-column``), with its
            reference readout right after programming, as the deployed network is compensated.
        noise_scale: ``s``: the deviation of the read from the ideal product is scaled by it (1: the
            device model's own statistics; 0: plain FP32 training).
        drift_distribution: :data:`DRIFT_DISTRIBUTIONS`.
        t_min_s, t_max_s: the range of delays after programming, s (defaults 1 s … 1 year).
        clip_sigma: ``k``: clip each weight matrix to ``±k·std(W)`` (its own std, taken at every clip)
            before every training forward pass and when the layer is put in eval mode, so the trained
            network is programmed with clipped weights (0: no clipping). A few large weights set the
            crossbar's scale (``weight_scale="auto"`` maps ``max|W|`` to ``G_max``), so clipping them
            puts the other weights higher in the conductance range, above the programming noise; it is
            the weight clipping of Rasch et al. 2023 (aihwkit's ``WeightClipType.LAYER_GAUSSIAN``, which
            takes the root mean square instead of the std: the same for zero-mean weights).

    The programming itself is always the device model's own (programming noise, or program-and-verify
    with its pulse statistics): scale it with the run's ``device_params`` where the model has a knob
    (``prog_noise_scale`` of ``pcm-joshi2020``).
    """

    drift: bool = True
    read_noise: bool = True
    periphery: bool = True
    compensation: str = field(default="global", metadata=choices(lambda: MODES))
    noise_scale: float = field(default=1.0, metadata=non_negative())
    drift_distribution: Literal["log-uniform", "uniform", "fixed"] = "log-uniform"
    t_min_s: float = field(default=1.0, metadata=check(lambda v: math.isfinite(v) and v > 0,
                                                         "a finite delay > 0 s"))
    t_max_s: float = field(default=YEAR_S, metadata=check(lambda v: math.isfinite(v) and v > 0,
                                                             "a finite delay > 0 s"))
    clip_sigma: float = field(default=0.0, metadata=non_negative())

    def __post_init__(self) -> None:
        check_fields(self)
        if self.t_max_s < self.t_min_s:
            raise ValueError(f"t_max_s={self.t_max_s!r} is invalid: expected a delay ≥ t_min_s={self.t_min_s!r} s")

    def crossbar_config(self, crossbar: CrossbarConfig) -> CrossbarConfig:
        """``crossbar`` with the read noise and periphery switched as this config says."""
        periphery = crossbar.periphery if self.periphery else PeripheryConfig.ideal()
        return dataclasses.replace(crossbar, read_noise=crossbar.read_noise and self.read_noise,
                                   periphery=periphery)

    def draw_delay_s(self, generator: torch.Generator) -> float:
        """One delay after programming, s (0 without drift), drawn from ``generator``."""
        if not self.drift:
            return 0.0
        if self.drift_distribution == "fixed":
            return float(self.t_max_s)
        u = float(torch.rand((), generator=generator, device=generator.device))
        if self.drift_distribution == "uniform":
            return self.t_min_s + u * (self.t_max_s - self.t_min_s)
        lo, hi = math.log(self.t_min_s), math.log(self.t_max_s)
        return math.exp(lo + u * (hi - lo))


class HWANoise:
    """The device model's non-idealities for one layer: a fresh crossbar per draw (see the module docstring).

    Args:
        device_model: the device model (or its registry name / fitted file, with ``device_params``).
        crossbar: the layout and periphery of the crossbar the weights are programmed onto (the deployed
            one: ``weight_scale="auto"`` maps ``max|W|`` to ``G_max`` at every draw).
        config: the HWA options.
        seed: the seed of the generator of every draw.
        t_program_s: the simulated time of programming, s (reads at ``t_program_s + delay``).
        device: the torch device of the draws.
    """

    def __init__(self, device_model: DeviceModel | str, crossbar: CrossbarConfig | Mapping[str, Any] | None,
                 config: HWAConfig, *, seed: int, t_program_s: float = 0.0,
                 device_params: DeviceParams | Mapping[str, Any] | None = None,
                 device: torch.device | str | None = None) -> None:
        self.device_model = device_models.resolve(device_model, device_params)
        self.crossbar_config = config.crossbar_config(resolve_crossbar(crossbar))
        self.config = config
        self.t_program_s = float(t_program_s)
        self.generator = torch.Generator(device=torch.device(device) if device is not None else "cpu")
        self.generator.manual_seed(int(seed))
        self.last_delay_s: float | None = None
        self.last_crossbar: Crossbar | None = None

    def program(self, weight: Tensor) -> Crossbar:
        """A fresh crossbar with ``weight`` ``[out, in]`` programmed at ``t_program_s`` (the model's own
        programming; its devices drawn from this generator)."""
        xb = Crossbar(weight.shape[0], weight.shape[1], self.device_model, self.crossbar_config,
                      generator=self.generator, device=weight.device, t_s=self.t_program_s)
        xb.program_weights(weight.detach().to(torch.float32), self.t_program_s)
        return xb

    @torch.no_grad()
    def product(self, x: Tensor, weight: Tensor) -> Tensor:
        """``x`` ``[N, in]`` through ``weight`` as the devices give it: programmed, drifted to a random
        delay, compensated and read through the periphery; ``[N, out]`` (no bias)."""
        xb = self.program(weight)
        cfg = self.config
        delay = cfg.draw_delay_s(self.generator)
        t = self.t_program_s + delay
        reference = column_readout(xb, self.t_program_s) if cfg.compensation != "none" else None
        y = xb.mvm(x.to(torch.float32), t)
        if reference is not None:
            y = y * compensation_factors(cfg.compensation, reference, column_readout(xb, t))
        self.last_delay_s, self.last_crossbar = delay, xb
        return y

    def to(self, device: torch.device) -> None:
        """Move the generator to ``device`` (same state where the devices share a kind)."""
        if self.generator.device.type != device.type:
            state_seed = int(torch.randint(0, 2**62, (), generator=self.generator))
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(state_seed)


class HWAModule(nn.Module):
    """What every hardware-aware layer shares (:class:`HWALinear`, :class:`pcmsim.hwa_conv.HWAConv1d`,
    :class:`~pcmsim.hwa_conv.HWAConv2d`): its :class:`HWANoise`, weight clipping, the deviation of a read
    and the generator's state in the ``state_dict``. Mixed in before the ``nn`` layer class."""

    weight: Tensor
    noise: HWANoise

    @torch.no_grad()
    def clip_weights(self) -> None:
        """Clip ``weight`` in place to ``±clip_sigma·std(weight)`` (nothing when ``clip_sigma`` is 0)."""
        k = self.noise.config.clip_sigma
        if k > 0.0 and self.weight.numel() > 1:
            bound = k * float(self.weight.std())
            self.weight.clamp_(-bound, bound)

    def train(self, mode: bool = True) -> HWAModule:
        if not mode:
            self.clip_weights()  # the network evaluated and programmed is the clipped one
        super().train(mode)
        return self

    def hwa_active(self) -> bool:
        """Whether this forward pass carries the devices' deviation (training with autograd; clips first)."""
        if not (self.training and torch.is_grad_enabled()):
            return False
        self.clip_weights()
        return self.noise.config.noise_scale != 0.0

    @torch.no_grad()
    def deviation(self, x2: Tensor, dtype: torch.dtype) -> Tensor:
        """``s·(y_crossbar − x2 Wᵀ)`` for the rows ``x2`` ``[N, in]`` and the matrix ``weight.reshape(out, -1)``."""
        w = self.weight.detach().reshape(self.weight.shape[0], -1)
        x2 = x2.detach()
        return (self.noise.product(x2, w).to(dtype) - x2.to(w.dtype) @ w.t()) * self.noise.config.noise_scale

    def get_extra_state(self) -> dict[str, Tensor]:
        return {"hwa_generator": self.noise.generator.get_state()}

    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        if "hwa_generator" in state:
            self.noise.generator.set_state(state["hwa_generator"])

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> HWAModule:
        super()._apply(fn, recurse)
        self.noise.to(self.weight.device)
        return self

    def extra_repr(self) -> str:
        c = self.noise.config
        return (f"{super().extra_repr()}, device_model={self.noise.device_model.name!r}, drift={c.drift}, "
                f"compensation={c.compensation!r}, noise_scale={c.noise_scale:g}, clip_sigma={c.clip_sigma:g}")


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
