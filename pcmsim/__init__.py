"""pcmsim: spiking neural networks on simulated phase-change-memory crossbars.

Crossbar arrays and their periphery, analog layers, neuron models (SNU, sSNU, LIF), networks,
datasets, metrics and plots. Builds on ``device_models``; ``hardware_in_loop`` builds on it.

The public names, each imported on first use (so ``import pcmsim`` stays light)::

    import pcmsim
    analog, report = pcmsim.convert(net, device_model="pcm-joshi2020")   # any PyTorch model
    pcmsim.analog_layers(analog)          # its analog layers; layer.read_weights() what the devices hold
    pcmsim.set_time(analog, 86_400.0)     # a day later (s): the devices have drifted
    rows = pcmsim.evaluate_over_drift(analog, evaluate, ["1h", "1d", "1y"], ("none", "global"))

- networks on crossbars: :func:`convert` (any model's ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d``),
  :mod:`nir` (``pcmsim.nir.load`` / ``pcmsim.nir.export``), :class:`NetworkConfig` (one config for
  every spiking network) with :func:`build_snu_network` and :func:`build_spiking_classifier`,
  :class:`AnalogLinear`, :class:`AnalogConv1d`, :class:`AnalogConv2d`;
- the analog-layer contract over a whole model: :func:`analog_layers`, :func:`set_time`,
  :func:`calibrate`, :func:`compensate`, :func:`evaluate_over_drift`;
- the array: :class:`Crossbar`, :class:`CrossbarConfig`, :class:`PeripheryConfig`;
- data: :func:`load_dataset`, :func:`available_datasets`, :func:`load_digits_data`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "AnalogConv1d": ".analog_conv",
    "AnalogConv2d": ".analog_conv",
    "AnalogLinear": ".analog",
    "Crossbar": ".crossbar",
    "CrossbarConfig": ".crossbar",
    "HWAConfig": ".hwa",
    "HWALinear": ".hwa",
    "NetworkConfig": ".network_config",
    "PeripheryConfig": ".periphery",
    "analog_layers": ".analog",
    "available_datasets": ".data",
    "build_snu_network": ".networks",
    "build_spiking_classifier": ".classifier",
    "calibrate": ".drift",
    "compensate": ".drift",
    "convert": ".conversion",
    "evaluate_over_drift": ".drift",
    "load_dataset": ".data",
    "load_digits_data": ".data",
    "make_hwa": ".hwa",
    "load_snapshots": ".snapshots",
    "set_marginal_output_bias": ".networks",
    "set_time": ".drift",
}
"""Public name → the module that defines it (the one source of ``__all__``)."""

__all__ = ["__version__", "nir", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use."""
    if name == "nir":
        return importlib.import_module(".nir", __name__)
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
