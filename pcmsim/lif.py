"""Compatibility shim: LIF layers live in :mod:`pcmsim.neuron_models.lif`, the integrator readout in
:mod:`pcmsim.neuron_models.integrator`, the classifier in :mod:`pcmsim.classifier`.

Kept so that existing ``from pcmsim.lif import ...`` imports keep working; new code imports from
:mod:`pcmsim.neuron_models` and :mod:`pcmsim.classifier`. The step function is
:func:`pcmsim.neuron_models.lif_step` (``step(input_t, state, params)``), the spike function
:func:`pcmsim.neuron_models.spike`, the surrogates :data:`pcmsim.neuron_models.SURROGATES`.
"""

from __future__ import annotations

from .classifier import (
    NEURONS,
    READOUTS,
    SURROGATES,
    SpikeCountReadout,
    SpikingClassifier,
    SpikingClassifierConfig,
    build_spiking_classifier,
)
from .neuron_models.base import ReadoutOutput
from .neuron_models.integrator import IntegratorReadout
from .neuron_models.lif import LIFLayer, LIFOutput, LIFState

__all__ = [
    "NEURONS",
    "READOUTS",
    "SURROGATES",
    "IntegratorReadout",
    "LIFLayer",
    "LIFOutput",
    "LIFState",
    "ReadoutOutput",
    "SpikeCountReadout",
    "SpikingClassifier",
    "SpikingClassifierConfig",
    "build_spiking_classifier",
]
