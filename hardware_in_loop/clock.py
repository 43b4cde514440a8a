"""The simulated wall time of the hardware.

Every read and every programming pulse carries a time from this clock, so the drift of each
device follows from the time since it was last programmed. Durations are parameters
(:class:`ClockConfig`); the defaults describe a prototype-chip experiment driven by a host
computer, where the host's per-batch overhead dominates (as in hardware-in-the-loop runs such as
Woźniak et al. 2020), not the nanosecond-scale analog operations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ClockConfig:
    """Durations of hardware operations, s.

    Attributes:
        t_start_s: time of the first programming (devices are programmed at this time).
        mvm_per_step_s: one time step's matrix-vector products of a whole batch on all tiles.
        pulse_round_s: one round of programming pulses (applied to all selected devices of an
            array in parallel; a step with n rounds takes ``n · pulse_round_s``).
        batch_overhead_s: host-side time per training batch (transfers, the digital BPTT).
        epoch_gap_s: idle time between epochs (validation on the host, logging).
    """

    t_start_s: float = 60.0
    mvm_per_step_s: float = 1e-6
    pulse_round_s: float = 1e-6
    batch_overhead_s: float = 0.5
    epoch_gap_s: float = 10.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"clock.{name}={value!r} is invalid: expected a finite duration ≥ 0 s")


class Clock:
    """Monotonic simulated time, s. ``now`` is the time stamp of the next read or pulse."""

    def __init__(self, config: ClockConfig | None = None, now_s: float | None = None) -> None:
        self.config = config or ClockConfig()
        self.now_s = float(self.config.t_start_s if now_s is None else now_s)

    def advance(self, seconds: float) -> float:
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"clock cannot advance by {seconds!r} s: expected a finite duration ≥ 0")
        self.now_s += float(seconds)
        return self.now_s

    def forward_pass(self, time_steps: int) -> float:
        return self.advance(time_steps * self.config.mvm_per_step_s)

    def pulse_rounds(self, rounds: int) -> float:
        return self.advance(rounds * self.config.pulse_round_s)

    def batch_done(self) -> float:
        return self.advance(self.config.batch_overhead_s)

    def epoch_done(self) -> float:
        return self.advance(self.config.epoch_gap_s)

    def state_dict(self) -> dict[str, float]:
        return {"now_s": self.now_s}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.now_s = float(state["now_s"])
