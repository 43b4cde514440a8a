"""Compatibility shim: the SNU layer now lives in :mod:`pcmsim.neuron_models.snu`.

Kept so that existing ``from pcmsim.neurons import SNULayer`` imports keep working; new code
imports from :mod:`pcmsim.neuron_models`. The step function is
:func:`pcmsim.neuron_models.snu_step` (``step(input_t, state, params)``), the spike function
:func:`pcmsim.neuron_models.spike` with the ``tanh`` surrogate.
"""

from __future__ import annotations

from .neuron_models.snu import Activation, SNULayer, SNUOutput, membrane_activation

__all__ = ["Activation", "SNULayer", "SNUOutput", "membrane_activation"]
