"""``ideal``: exact conductances, no noise, no drift: the control device.

A SET pulse adds exactly ``delta_g_us`` (clipped to ``[0, g_max_us]``); RESET sets 0;
``program`` writes the target exactly (clipped) in one step.

Update schemes: ε = ``delta_g_us`` (the exact step of a SET pulse); refresh by the
:class:`~device_models.base.DeviceModel` default (aihwkit's ``OneSidedUnitCell`` thresholds, the
larger device above 0.75·G_max and the smaller above 0.25·G_max): a control device has no
source of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import DeviceModel, DeviceParams
from .checks import as_mask, param
from .state import DeviceState, ProgramReport


@dataclass(frozen=True)
class IdealParams(DeviceParams):
    g_max_us: float = param(25.0, gt=0.0)  # same range as pcm-joshi2020's default, µS
    delta_g_us: float = param(0.1, gt=0.0)  # conductance change of one SET pulse, µS


class IdealDevice(DeviceModel):
    """``ideal``: every SET pulse adds exactly ``delta_g_us`` µS up to ``g_max_us``, RESET sets 0 µS, no
    drift, no read noise, programming exact (a reference for the physics of the others)."""

    name = "ideal"
    Params = IdealParams

    def validate(self) -> None:
        pass  # every parameter's range is its field's (param)

    @property
    def g_max_us(self) -> float:
        return self.params.g_max_us

    def init_state(self, shape, *, device=None, generator=None, t_s: float = 0.0) -> DeviceState:
        state = DeviceState.empty(shape, device)
        state.t_prog_s.fill_(t_s)
        return state

    @staticmethod
    def _mask(mask: Tensor | None, state: DeviceState) -> Tensor:
        """The devices a SET or RESET acts on: ``mask`` (any shape that expands), or all of them for ``None``."""
        m = as_mask(mask, state)
        return torch.ones(state.shape, dtype=torch.bool, device=state.device) if m is None else m

    def set_pulse(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        mask = self._mask(mask, state)
        g_new = (state.g_us + self.params.delta_g_us).clamp_(0.0, self.params.g_max_us)
        state.g_us.copy_(torch.where(mask, g_new, state.g_us))
        state.t_prog_s.masked_fill_(mask, t_s)
        state.pulse_count.add_(mask.to(torch.int32))

    def set_pulses(self, state: DeviceState, n_pulses: Tensor, t_s: float, generator) -> None:
        mask = n_pulses > 0
        g_new = (state.g_us + n_pulses.to(state.g_us.dtype) * self.params.delta_g_us).clamp_(0.0, self.params.g_max_us)
        state.g_us.copy_(torch.where(mask, g_new, state.g_us))
        state.t_prog_s.masked_fill_(mask, t_s)
        state.pulse_count.add_(n_pulses.to(torch.int32))

    def reset(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        mask = self._mask(mask, state)
        state.g_us.masked_fill_(mask, 0.0)
        state.t_prog_s.masked_fill_(mask, t_s)
        state.pulse_count.add_(mask.to(torch.int32))

    def drifted(self, state: DeviceState, t_s: float) -> Tensor:
        return state.g_us.clone()

    def read_noise_std(self, state: DeviceState, t_s: float, g_drift_us: Tensor | None = None) -> Tensor:
        return torch.zeros_like(state.g_us)

    def read(self, state: DeviceState, t_s: float, generator=None, *, noise: bool = True) -> Tensor:
        return state.g_us.clone()

    def program(self, state, target_us, t_s, generator, *, tolerance_us=None, max_pulses=None) -> ProgramReport:
        target = target_us.to(state.g_us).clamp(0.0, self.params.g_max_us)
        state.g_us.copy_(target)
        state.t_prog_s.fill_(t_s)
        state.pulse_count.add_(1)
        return ProgramReport(
            pulses=torch.ones(state.shape, dtype=torch.int32, device=state.device),
            error_us=state.g_us - target_us.to(state.g_us),
            converged=torch.ones(state.shape, dtype=torch.bool, device=state.device),
        )

    def mean_set_increment_us(self, g_us=None) -> float:
        return self.params.delta_g_us

    granularity_source = "delta_g_us, the exact step of one SET pulse"
