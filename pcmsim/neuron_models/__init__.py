"""Neuron models as pure step functions, one time loop, one table of surrogate gradients.

In the style of Norse (https://github.com/norse/norse): each model is a step function
``step(input_t, state, params) -> (output_t, state)`` with typed parameters and state
(``NamedTuple``), wrapped by a thin :class:`NeuronLayer` that applies the synapse module to all
``T·B`` inputs at once and loops the step over time.

- :mod:`.base`: :class:`NeuronLayer` (the time loop), :func:`apply_synapse`, :class:`NeuronModel`;
- :mod:`.surrogates`: :data:`SURROGATES` (``flat``, ``superspike``, ``sigmoid``, ``esser``, ``tanh``),
  :class:`Surrogate`, :func:`spike`;
- :mod:`.snu`: SNU / sSNU (Woźniak et al. 2020); :mod:`.lif`: LIF (Gerum & Schilling 2021);
  :mod:`.integrator`: the non-spiking integrator readout;
  :mod:`.leaky` (LIF, IF, LI, I) and :mod:`.cuba_lif` (CubaLIF): the neurons of NIR and snnTorch,
  reset to ``v_reset``, NIR's continuous time by forward Euler;
- :mod:`.registry`: :data:`NEURONS`, :func:`available`, :func:`get`, :func:`build_layer`.
"""

from __future__ import annotations

from .base import NeuronLayer, NeuronModel, ReadoutOutput, apply_synapse, run_steps, stack_outputs
from .cuba_lif import CubaLIFLayer, CubaLIFParams, CubaLIFState, CubaLIFStepOutput, cuba_lif_step
from .integrator import IntegratorParams, IntegratorReadout, IntegratorState, integrator_step
from .leaky import LeakyLayer, LeakyParams, LeakyState, LeakyStepOutput, leaky_step
from .lif import LIFLayer, LIFOutput, LIFParams, LIFState, LIFStepOutput, lif_step
from .registry import NEURONS, available, build_layer, get, register
from .snu import Activation, SNULayer, SNUOutput, SNUParams, SNUState, membrane_activation, snu_step
from .surrogates import SURROGATES, Surrogate, SurrogateGradient, SurrogateSpike, spike, surrogate_gradient

__all__ = [
    "NEURONS",
    "SURROGATES",
    "Activation",
    "CubaLIFLayer",
    "CubaLIFParams",
    "CubaLIFState",
    "CubaLIFStepOutput",
    "IntegratorParams",
    "IntegratorReadout",
    "IntegratorState",
    "LIFLayer",
    "LIFOutput",
    "LIFParams",
    "LIFState",
    "LIFStepOutput",
    "LeakyLayer",
    "LeakyParams",
    "LeakyState",
    "LeakyStepOutput",
    "NeuronLayer",
    "NeuronModel",
    "ReadoutOutput",
    "SNULayer",
    "SNUOutput",
    "SNUParams",
    "SNUState",
    "Surrogate",
    "SurrogateGradient",
    "SurrogateSpike",
    "apply_synapse",
    "available",
    "build_layer",
    "cuba_lif_step",
    "get",
    "integrator_step",
    "leaky_step",
    "lif_step",
    "membrane_activation",
    "register",
    "run_steps",
    "snu_step",
    "spike",
    "stack_outputs",
    "surrogate_gradient",
]
