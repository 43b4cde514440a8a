"""Readouts of the feed-forward spiking networks: the one source of valid readout names.

A network's last layer turns the activity of its hidden layers into logits. Two kinds:

- **per step** (sequence prediction, :class:`pcmsim.networks.SNUNetwork`): logits ``[T, B, out]``,
  one vector per time step, e.g. the next piano-roll frame's keys (Woźniak et al., Nat. Mach.
  Intell. 2, 325 (2020): an sSNU output layer, or a stateless linear layer with a sigmoid);
- **per sequence** (classification, :class:`pcmsim.classifier.SpikingClassifier`): one logit vector
  ``[B, classes]`` per example, e.g. the non-spiking integrator's potential at the last step
  (Gerum & Schilling, Neural Comput. 33(10), 2824 (2021)) or a LIF layer's spike counts (their
  ``SumEnd``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from .neuron_models import ReadoutOutput, get


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
"""``builder(synapse, out_features, options) -> module``; ``options`` are the network's neuron
options (:meth:`pcmsim.network_config.NetworkConfig.neuron_options`), of which each readout takes its own."""


@dataclass(frozen=True)
class Readout:
    """One readout: its name, its kind and how it is built.

    Attributes:
        name: as configs spell it (``network.readout``).
        per_step: logits at every step ``[T, B, out]`` (sequence prediction), else one vector per
            sequence ``[B, out]`` (classification).
        build: makes the output module over the last synapse. A per-step readout whose module is
            the synapse itself (``sigmoid``) gets its bias from the network.
        summary: one line for help texts.
    """

    name: str
    per_step: bool
    build: ReadoutBuilder
    summary: str


def _ssnu(synapse: nn.Module, n: int, options: Mapping[str, Any]) -> nn.Module:
    return get("ssnu").build(synapse, n, **{**options, "threshold": options["output_threshold"]})


_TABLE: tuple[Readout, ...] = (
    Readout("integrator", False, lambda synapse, n, options: get("integrator").build(synapse, n, **options),
            "non-spiking integrator; logits = its potential at the last step"),
    Readout("spike_count", False,
            lambda synapse, n, options: SpikeCountReadout(get("lif").build(synapse, n, **options)),
            "LIF layer; logits = its spike counts over all steps"),
    Readout("ssnu", True, _ssnu, "sSNU layer; logits = s + b at every step (threshold: output_threshold)"),
    Readout("sigmoid", True, lambda synapse, n, options: synapse,
            "stateless linear layer with a bias; probabilities = sigmoid(logits) at every step"),
)

READOUTS: Mapping[str, Readout] = MappingProxyType({r.name: r for r in _TABLE})
"""Readouts by name: the one source of valid readout names."""


def readout_names(*, per_step: bool | None = None) -> tuple[str, ...]:
    """Names of the readouts; ``per_step=True`` / ``False``: those of one kind only."""
    return tuple(name for name, r in READOUTS.items() if per_step is None or r.per_step == per_step)


def readout_mismatch(name: str, *, per_step: bool, use: str) -> str | None:
    """None when readout ``name`` is of the kind ``use`` needs (per step, or one vector per example);
    else what is expected instead (``"a per-step readout for music prediction: ssnu, sigmoid"``): the
    one rule behind the task configs' and the networks' refusals."""
    if READOUTS[name].per_step == per_step:
        return None
    kind = "per-step" if per_step else "per-example"
    return f"a {kind} readout for {use}: {', '.join(readout_names(per_step=per_step))}"


def check_readout_kind(name: str, *, per_step: bool, network: str, use: str) -> None:
    """Refuse in one line a readout of the other kind than ``network`` needs (for ``use``)."""
    expected = readout_mismatch(name, per_step=per_step, use=use)
    if expected is not None:
        raise ValueError(f"readout {name!r} does not fit a {network}: expected {expected}")
