"""What every hardware-aware layer shares (:mod:`pcmsim.hwa`, :mod:`pcmsim.hwa_conv`): the options
(:class:`HWAConfig`), the noise of one read through a fresh crossbar of the device model
(:class:`HWANoise`) and the layer base with weight clipping and the straight-through deviation
(:class:`HWAModule`). The method and its sources: :mod:`pcmsim.hwa`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

import device_models
from device_models import DeviceModel, DeviceParams

from .analog import resolve_crossbar
from .compensation import MODES, column_readout, compensation_factors
from .crossbar import Crossbar, CrossbarConfig
from .periphery import PeripheryConfig
from .typedconfig import check, check_fields, choices, non_negative

__all__ = ["DRIFT_DISTRIBUTIONS", "YEAR_S", "HWAConfig", "HWAModule", "HWANoise"]

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
