"""hardware_in_loop: training and evaluation with the (simulated) PCM hardware in the loop.

The simulated clock, the update schemes that turn digital weight changes into pulses, the trainer
and the named experiments. Imports ``pcmsim`` and ``device_models``; nothing imports it back.
"""

from .clock import Clock, ClockConfig
from .schemes import (
    MixedPrecisionParams,
    ProgramVerifyParams,
    RefreshConfig,
    StochasticPulseParams,
    UpdateScheme,
    UpdateStats,
    available_schemes,
    make_scheme,
    scheme_params,
)

__all__ = [
    "Clock",
    "ClockConfig",
    "MixedPrecisionParams",
    "ProgramVerifyParams",
    "RefreshConfig",
    "StochasticPulseParams",
    "UpdateScheme",
    "UpdateStats",
    "available_schemes",
    "make_scheme",
    "scheme_params",
]
