"""Feed-forward spiking classifier: hidden spiking layers of any registered neuron model and a readout.

The hidden layers come from the neuron registry (:data:`pcmsim.neuron_models.NEURONS`: LIF of
Gerum & Schilling, Neural Comput. 33(10), 2824 (2021); SNU / sSNU of Woźniak et al., Nat. Mach.
Intell. 2, 325 (2020)); the readout is the non-spiking integrator (logits = potential at the last
step, Gerum & Schilling's output layer) or the spike counts of a LIF layer (their ``SumEnd``).
The synapses come from a :data:`pcmsim.networks.LinearFactory`, so one builder makes the network
in every flavour (``fp32``, ``pcm``, ``aihwkit``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from .networks import LinearFactory, make_linear_factory
from .neuron_models import NEURONS as NEURON_MODELS
from .neuron_models import SURROGATES as SURROGATE_TABLE
from .neuron_models import ReadoutOutput, available, get
from .typedconfig import check, check_fields, choices, loading, positive


class SpikeCountReadout(nn.Module):
    """A spiking output layer read out by its spike counts over all steps (logits = counts).

    In the spirit of Gerum & Schilling's ``SumEnd`` (spikes summed at the end); useful for fully
    spiking networks, though the integrator readout trains more easily with cross-entropy.
    ``lif`` is the spiking layer (any layer whose output has ``.activity``; a LIF layer here).
    """

    def __init__(self, lif: nn.Module) -> None:
        super().__init__()
        self.lif = lif

    def forward(self, x: Tensor) -> ReadoutOutput:
        counts = torch.cumsum(self.lif(x).activity, dim=0)
        return ReadoutOutput(logits=counts[-1], potential=counts)


ReadoutBuilder = Callable[[nn.Module, int, Mapping[str, Any]], nn.Module]
"""``builder(synapse, classes, options) -> readout``; ``options`` as for the neuron models."""

READOUT_BUILDERS: Mapping[str, ReadoutBuilder] = MappingProxyType(
    {
        "integrator": lambda synapse, n, options: get("integrator").build(synapse, n, **options),
        "spike_count": lambda synapse, n, options: SpikeCountReadout(get("lif").build(synapse, n, **options)),
    }
)
"""Readouts by name: the one source of valid readout names."""

NEURONS: tuple[str, ...] = available(hidden=True)
"""Neuron models that can be hidden layers (names of the neuron registry at import; the config
reads the registry itself, so a model registered later is valid too)."""
SURROGATES: tuple[str, ...] = tuple(SURROGATE_TABLE)
"""Surrogate gradients (names of the surrogate table)."""
READOUTS: tuple[str, ...] = tuple(READOUT_BUILDERS)
"""Readouts."""


@dataclass(frozen=True)
class NeuronSettings:
    """The neuron settings of a spiking network's layers, on the neuron registry
    (:mod:`pcmsim.neuron_models`): which model the hidden units are and the options every model picks
    its own from.

    Attributes:
        neuron: hidden units, a name of :data:`NEURONS` (``lif``, ``snu``, ``ssnu``).
        surrogate, beta, gamma: the LIF spike's surrogate derivative (a name of :data:`SURROGATES`).
            SNU layers keep the SNU toolkit's ``tanh`` (their registry entry does not take these
            options; build :class:`pcmsim.neuron_models.SNULayer` with ``surrogate=`` for another).
        readout: ``integrator`` (non-spiking) or ``spike_count`` (LIF spike counts).
        dt, refractory, threshold, train_leak: LIF settings (``threshold`` also sets the SNU bias);
            ``dt`` and ``refractory`` in steps.
        decay: SNU decay ``l(τ)``.
    """

    neuron: str = field(default="lif", metadata=choices(lambda: available(hidden=True)))
    surrogate: str = field(default="flat", metadata=choices(lambda: SURROGATES))
    beta: float = field(default=10.0, metadata=positive())
    gamma: float = field(default=1.0, metadata=positive())
    readout: str = field(default="integrator", metadata=choices(lambda: READOUTS))
    dt: float = field(default=1.0, metadata=positive())
    refractory: int = field(default=0, metadata=check(lambda v: v >= 0, "an integer ≥ 0 (steps)"))
    threshold: float = field(default=1.0, metadata=positive())
    train_leak: bool = True
    decay: float = field(default=0.8, metadata=check(lambda v: 0 <= v <= 1, "0 ≤ decay ≤ 1"))

    def __post_init__(self) -> None:
        if not loading():  # the typed loader checks a loaded config's fields, naming the file
            check_fields(self)

    def neuron_options(self) -> dict[str, Any]:
        """The settings every neuron model picks its options from (see :class:`NeuronModel`)."""
        return {
            "threshold": self.threshold, "decay": self.decay, "dt": self.dt, "train_leak": self.train_leak,
            "refractory": self.refractory, "surrogate": self.surrogate, "beta": self.beta, "gamma": self.gamma,
        }

    def neuron_settings(self) -> dict[str, Any]:
        """The fields of :class:`NeuronSettings` alone (for a config that extends it)."""
        return {f.name: getattr(self, f.name) for f in fields(NeuronSettings)}


@dataclass(frozen=True)
class SpikingClassifierConfig(NeuronSettings):
    """Topology and neuron settings of a feed-forward spiking classifier.

    Attributes:
        sizes: layer widths, input first, classes last (e.g. ``(64, 128, 10)`` for 8×8 digits);
            a keyword argument.
        The neuron settings: :class:`NeuronSettings`.
    """

    sizes: tuple[int, ...] = field(kw_only=True, metadata=check(
        lambda v: len(v) >= 2 and all(n >= 1 for n in v), "≥ 2 positive layer widths"))


class SpikingClassifier(nn.Module):
    """Feed-forward spiking classifier: hidden layers of a registered neuron model and a readout.

    ``forward(x)`` takes an encoded input ``[T, B, in]`` and returns the readout's
    :class:`ReadoutOutput` (``.logits`` ``[B, classes]`` for cross-entropy).
    """

    def __init__(
        self,
        config: SpikingClassifierConfig,
        linear_factory: LinearFactory,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        options = {**config.neuron_options(), "generator": generator}
        model = NEURON_MODELS[config.neuron]
        sizes: Sequence[int] = config.sizes
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
            layers.append(model.build(linear_factory(n_in, n_out, False), n_out, **options))
        self.hidden = nn.ModuleList(layers)
        n_in, n_out = sizes[-2], sizes[-1]
        self.readout = READOUT_BUILDERS[config.readout](linear_factory(n_in, n_out, False), n_out, options)

    def forward(self, x: Tensor) -> ReadoutOutput:
        h = x
        for layer in self.hidden:
            h = layer(h).activity
        return self.readout(h)

    def hidden_activity(self, x: Tensor) -> list[Tensor]:
        """Outputs (spikes, or sSNU rates) of every hidden layer, each ``[T, B, n]``."""
        acts = []
        h = x
        for layer in self.hidden:
            h = layer(h).activity
            acts.append(h)
        return acts


def build_spiking_classifier(
    config: SpikingClassifierConfig,
    flavour: str = "fp32",
    *,
    generator: torch.Generator | None = None,
    **options: object,
) -> SpikingClassifier:
    """Build a spiking classifier in a flavour (``fp32``, ``pcm``, ``aihwkit``: :mod:`pcmsim.networks`)."""
    return SpikingClassifier(config, make_linear_factory(flavour, **options), generator=generator)
