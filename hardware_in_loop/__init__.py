"""hardware_in_loop: training and evaluation with the (simulated) PCM hardware in the loop.

The simulated clock, the update schemes that turn digital weight changes into pulses, the one trainer
with its tasks, the named experiments and sweeps. Imports ``pcmsim`` and ``device_models``; nothing
imports it back. The public names::

    from hardware_in_loop import HardwareInTheLoop, train, run_training, reproduce, run_sweep

- a loop of your own: :class:`HardwareInTheLoop` (``hil.step()`` instead of ``optimizer.step()``; it
  owns the simulated :class:`Clock`);
- your model and data through the one trainer: :func:`train` (:class:`ModelConfig`);
- a config through the one trainer: :func:`load_config`, :func:`run_training`, :class:`Trainer`;
- the paper's experiment and sweeps: :func:`reproduce`, :func:`run_sweep`;
- update schemes: :func:`available_schemes`, :func:`make_scheme`, :func:`scheme_params`.
"""

from __future__ import annotations

import importlib
from typing import Any

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
from .tasks import load_config
from .tasks.model import ModelConfig
from .train_model import train
from .updater import HardwareInTheLoop

_LAZY: dict[str, str] = {
    "Trainer": ".trainer",
    "TrainingInterrupted": ".trainer",
    "reproduce": ".experiments",
    "run_training": ".experiments",
    "run_sweep": ".sweep",
}
"""Public names imported on first use (the trainer and the sweep engine are heavier)."""

__all__ = [
    "Clock",
    "ClockConfig",
    "HardwareInTheLoop",
    "MixedPrecisionParams",
    "ModelConfig",
    "ProgramVerifyParams",
    "RefreshConfig",
    "StochasticPulseParams",
    "UpdateScheme",
    "UpdateStats",
    "available_schemes",
    "load_config",
    "make_scheme",
    "scheme_params",
    "train",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
