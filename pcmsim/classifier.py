"""Feed-forward spiking classifier: hidden spiking layers of any registered neuron model and a readout.

The network is a :class:`pcmsim.network_config.NetworkConfig` with a per-sequence readout: the
hidden layers come from the neuron registry (:data:`pcmsim.neuron_models.NEURONS`: LIF of
Gerum & Schilling, Neural Comput. 33(10), 2824 (2021); SNU / sSNU of Woźniak et al., Nat. Mach.
Intell. 2, 325 (2020)); the readout (:data:`pcmsim.readouts.READOUTS`) is the non-spiking
integrator (logits = potential at the last step, Gerum & Schilling's output layer) or the spike
counts of a LIF layer (their ``SumEnd``). The synapses come from a
:data:`pcmsim.networks.LinearFactory`, so one builder makes the network in every flavour (``fp32``,
``pcm``, ``aihwkit``, ``hwa``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .network_config import NetworkConfig
from .networks import LinearFactory, hidden_layers, make_linear_factory
from .neuron_models import ReadoutOutput
from .readouts import READOUTS, check_readout_kind


class SpikingClassifier(nn.Module):
    """Feed-forward spiking classifier: hidden layers of a registered neuron model and a readout.

    ``forward(x)`` takes an encoded input ``[T, B, in]`` and returns the readout's
    :class:`ReadoutOutput` (``.logits`` ``[B, classes]`` for cross-entropy).
    """

    def __init__(
        self,
        config: NetworkConfig,
        linear_factory: LinearFactory,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_readout_kind(config.readout, per_step=False, network="classifier (SpikingClassifier)",
                           use="classification")
        self.config = config
        self.hidden = hidden_layers(config, linear_factory, generator=generator)
        n_in, n_out = config.layers[-2], config.layers[-1]
        self.readout = READOUTS[config.readout].build(
            linear_factory(n_in, n_out, False), n_out, {**config.neuron_options(), "generator": generator})

    def forward(self, x: Tensor) -> ReadoutOutput:
        h = x
        for layer in self.hidden:
            h = layer(h).activity
        out: ReadoutOutput = self.readout(h)
        return out

    def hidden_activity(self, x: Tensor) -> list[Tensor]:
        """Outputs (spikes, or sSNU rates) of every hidden layer, each ``[T, B, n]``."""
        acts = []
        h = x
        for layer in self.hidden:
            h = layer(h).activity
            acts.append(h)
        return acts


def build_spiking_classifier(
    config: NetworkConfig,
    flavour: str = "fp32",
    *,
    generator: torch.Generator | None = None,
    **options: object,
) -> SpikingClassifier:
    """Build a spiking classifier in a flavour (``fp32``, ``pcm``, ``aihwkit``, ``hwa``: :mod:`pcmsim.networks`)."""
    return SpikingClassifier(config, make_linear_factory(flavour, **options), generator=generator)
