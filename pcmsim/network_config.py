"""One config for every feed-forward spiking network: layer widths, neuron model, readout.

The hidden units come from the neuron registry (:data:`pcmsim.neuron_models.NEURONS`: LIF of Gerum &
Schilling, Neural Comput. 33(10), 2824 (2021); SNU / sSNU of Woźniak et al., Nat. Mach. Intell. 2,
325 (2020); NIR's leaky and current-based LIF), the readout from :data:`pcmsim.readouts.READOUTS`.
Every neuron model picks its own options from the shared settings (:meth:`NetworkConfig.neuron_options`).
Music prediction (:class:`pcmsim.networks.SNUNetwork`) and classification
(:class:`pcmsim.classifier.SpikingClassifier`) both read it; each task has its own default network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .neuron_models import SURROGATES as SURROGATE_TABLE
from .neuron_models import Activation, available
from .readouts import READOUTS
from .typedconfig import ConfigError, check, check_fields, choices, load, loading, positive

SURROGATES: tuple[str, ...] = tuple(SURROGATE_TABLE)
"""Surrogate gradients (names of the surrogate table)."""

RENAMED: dict[str, str] = {"sizes": "layers", "hidden": "neuron", "output": "readout"}
"""Keys of the music network's earlier config (``SNUNetConfig``) and their names now; a file or a
run folder that uses them still loads."""


def _layers_ok(layers: Any) -> bool:
    return len(layers) >= 2 and all(n >= 1 for n in layers)


@dataclass(frozen=True)
class NetworkConfig:
    """A feed-forward spiking network: layer widths, the hidden units' neuron model, the readout and
    the neuron settings every model picks its own options from.

    The defaults are the 52,800-device network of Woźniak et al. (2020): 88 inputs, 150 SNUs and 88
    sSNU outputs (per-key probabilities). A classifier is e.g.
    ``NetworkConfig(layers=(64, 128, 10), neuron="lif", readout="integrator")``.

    Attributes:
        layers: layer widths, input first, outputs (keys, classes) last.
        neuron: hidden units, a neuron-registry name that can feed another layer (``lif``, ``snu``,
            ``ssnu``, ``leaky``, ``cuba-lif``).
        readout: the output layer (:data:`pcmsim.readouts.READOUTS`): per step (``ssnu``,
            ``sigmoid``: sequence prediction) or per sequence (``integrator``, ``spike_count``:
            classification).
        threshold: the hidden units' threshold (SNU: ``b`` starts at ``−threshold``).
        output_threshold: the ``ssnu`` readout's initial threshold.
        decay: SNU / leaky decay ``l(τ)``; train_decay: make it a trainable per-unit parameter.
        activation: the SNU membrane activation ``g`` (``relu``, ``leaky_relu``).
        dt, refractory, train_leak: LIF settings (``dt`` and ``refractory`` in steps; a trainable leak).
        surrogate, beta, gamma: the LIF / leaky spike's surrogate derivative (a name of
            :data:`SURROGATES`); SNU layers keep the SNU toolkit's ``tanh``.
        init_scale: multiplies the ``U(±1/√fan_in)`` initial weights.
    """

    layers: tuple[int, ...] = field(default=(88, 150, 88), metadata=check(
        _layers_ok, "a list of ≥ 2 positive layer widths, input first, outputs last"))
    neuron: str = field(default="snu", metadata=choices(lambda: available(hidden=True)))
    readout: str = field(default="ssnu", metadata=choices(lambda: tuple(READOUTS)))
    threshold: float = field(default=1.0, metadata=positive())
    output_threshold: float = field(default=1.0, metadata=positive())
    decay: float = field(default=0.8, metadata=check(lambda v: 0 <= v <= 1, "0 ≤ decay ≤ 1"))
    train_decay: bool = False
    activation: Activation = "relu"
    dt: float = field(default=1.0, metadata=positive())
    refractory: int = field(default=0, metadata=check(lambda v: v >= 0, "an integer ≥ 0 (steps)"))
    train_leak: bool = True
    surrogate: str = field(default="flat", metadata=choices(lambda: SURROGATES))
    beta: float = field(default=10.0, metadata=positive())
    gamma: float = field(default=1.0, metadata=positive())
    init_scale: float = field(default=1.0, metadata=positive(
        "a finite number > 0 (multiplies the U(±1/√fan_in) initial weights)"))

    def __post_init__(self) -> None:
        if not loading():  # the typed loader checks a loaded config's fields, naming the file
            check_fields(self)

    def neuron_options(self) -> dict[str, Any]:
        """The settings every neuron model (and readout) picks its options from."""
        return {
            "threshold": self.threshold, "output_threshold": self.output_threshold, "decay": self.decay,
            "train_decay": self.train_decay, "activation": self.activation, "dt": self.dt,
            "train_leak": self.train_leak, "refractory": self.refractory, "surrogate": self.surrogate,
            "beta": self.beta, "gamma": self.gamma,
        }


def network_block(default: Callable[[], NetworkConfig]) -> dict[str, Any]:
    """Field metadata of a run config's ``network``: a file's block is read over the task's
    ``default`` network (keys it leaves out keep the task's values), and the earlier music keys
    (:data:`RENAMED`) are read as their new names."""

    def load_block(value: Any, source: str, path: str) -> NetworkConfig:
        if isinstance(value, NetworkConfig):
            return value
        if isinstance(value, dict):
            value = dict(value)
            for old, new in RENAMED.items():
                if old in value:
                    if new in value:
                        raise ConfigError(f"{source}: field '{path}.{old}' is the earlier name of "
                                          f"'{path}.{new}'; give one of them")
                    value[new] = value.pop(old)
        return load(NetworkConfig, value, source=source, path=path, base=default())

    return {"load": load_block, "expected": "an object of network settings (pcmsim.NetworkConfig)"}

