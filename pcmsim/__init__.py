"""pcmsim: spiking neural networks on simulated phase-change-memory crossbars.

Crossbar arrays and their periphery, analog layers, neuron models (SNU, sSNU, LIF), networks,
datasets, metrics and plots. Builds on ``device_models``; ``hardware_in_loop`` builds on it.

Bring your own network: :func:`pcmsim.convert` puts any PyTorch model's ``nn.Linear`` /
``nn.Conv1d`` / ``nn.Conv2d`` layers on crossbars (:mod:`pcmsim.conversion`); :mod:`pcmsim.nir`
reads and writes NIR graphs (``pcmsim.nir.load``, ``pcmsim.nir.export``). Both are imported on
first use, so ``import pcmsim`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "convert", "evaluate_over_drift", "nir"]


def __getattr__(name: str) -> Any:
    """``pcmsim.convert``, ``pcmsim.evaluate_over_drift`` and ``pcmsim.nir``, imported on first use."""
    if name in ("convert", "evaluate_over_drift"):
        from . import conversion

        return getattr(conversion, name)
    if name == "nir":
        return importlib.import_module(".nir", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
