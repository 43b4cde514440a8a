"""The state of a population of devices (one tensor entry per device) and the report of programming it.

The state is the hardware: operations that program devices update it in place; reads return new
tensors. Units: conductance in µS, time in s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor


@dataclass
class DeviceState:
    """State of a population of devices; every tensor has the population's shape.

    20 bytes per device: four float32 and one int32.

    Attributes:
        g_us: conductance as last programmed (before drift), µS.
        t_prog_s: simulated time of the last programming event (SET, RESET or program), s.
        nu: drift exponent of each device (dimensionless).
        aux: one model-specific float per device (the pulse-history term P of
            ``pcm-nandakumar2018``; a device-to-device factor or unused, per model).
        pulse_count: programming pulses (SET and RESET) each device has received (endurance).
    """

    g_us: Tensor
    t_prog_s: Tensor
    nu: Tensor
    aux: Tensor
    pulse_count: Tensor

    FIELDS: ClassVar[tuple[str, ...]] = ("g_us", "t_prog_s", "nu", "aux", "pulse_count")

    @classmethod
    def empty(cls, shape: tuple[int, ...] | torch.Size, device: torch.device | str | None = None) -> DeviceState:
        def f32() -> Tensor:
            return torch.zeros(shape, dtype=torch.float32, device=device)

        return cls(
            g_us=f32(),
            t_prog_s=f32(),
            nu=f32(),
            aux=f32(),
            pulse_count=torch.zeros(shape, dtype=torch.int32, device=device),
        )

    @property
    def shape(self) -> torch.Size:
        return self.g_us.shape

    @property
    def device(self) -> torch.device:
        return self.g_us.device

    @property
    def bytes_per_device(self) -> int:
        return sum(getattr(self, f).element_size() for f in self.FIELDS)

    def state_dict(self) -> dict[str, Tensor]:
        return {f: getattr(self, f) for f in self.FIELDS}

    @classmethod
    def from_state_dict(cls, d: dict[str, Tensor]) -> DeviceState:
        missing = [f for f in cls.FIELDS if f not in d]
        if missing:
            raise ValueError(f"device state is missing field(s) {missing}; expected {list(cls.FIELDS)}")
        return cls(**{f: d[f] for f in cls.FIELDS})

    def clone(self) -> DeviceState:
        return DeviceState(**{f: getattr(self, f).clone() for f in self.FIELDS})

    def index(self, idx: Any) -> DeviceState:
        """A view of a part of the population (``state.index((slice(0, 4), ...))``)."""
        return DeviceState(**{f: getattr(self, f)[idx] for f in self.FIELDS})

    def to(self, device: torch.device | str) -> DeviceState:
        return DeviceState(**{f: getattr(self, f).to(device) for f in self.FIELDS})


@dataclass(frozen=True)
class ProgramReport:
    """Outcome of :meth:`DeviceModel.program`.

    Attributes:
        pulses: programming pulses each device received (SET and RESET), int32.
        error_us: programmed conductance minus target, µS (read without noise at the end).
        converged: devices within tolerance at the end.
        verified: devices that the program-and-verify loop accepted on a (noisy) verify read, or
            None for models that do not verify. A verified device can still sit outside the
            tolerance by the read noise of that read (``converged`` is the noise-free truth).
    """

    pulses: Tensor
    error_us: Tensor
    converged: Tensor
    verified: Tensor | None = None
