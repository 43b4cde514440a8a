"""The neuron registry: the one source of valid neuron names.

Adding a neuron model is one new file (step function, params, state, a thin
:class:`~pcmsim.neuron_models.base.NeuronLayer` and a
:class:`~pcmsim.neuron_models.base.NeuronModel` entry) plus one line: its entry in :data:`_TABLE`
below (a model shipped with pcmsim), or ``register(MODEL)`` (a model of your own, outside the package).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from torch import nn

from . import cuba_lif, integrator, leaky, lif, snu
from .base import NeuronModel

_TABLE: tuple[NeuronModel, ...] = (
    lif.MODEL,
    snu.SNU_MODEL,
    snu.SSNU_MODEL,
    integrator.MODEL,
    leaky.MODEL,
    cuba_lif.MODEL,
)

_MODELS: dict[str, NeuronModel] = {m.name: m for m in _TABLE}
NEURONS: Mapping[str, NeuronModel] = MappingProxyType(_MODELS)
"""Neuron models by name, in table order (a read-only view: :func:`register` adds to it)."""


def register(model: NeuronModel) -> NeuronModel:
    """Add ``model`` to the registry under ``model.name`` (an existing name is refused)."""
    if model.name in _MODELS:
        raise ValueError(f"neuron model {model.name!r} is registered already")
    _MODELS[model.name] = model
    return model


def available(*, hidden: bool | None = None) -> tuple[str, ...]:
    """Names of the neuron models; ``hidden=True``: those that can feed another layer, ``False``:
    readouts only."""
    return tuple(name for name, m in NEURONS.items() if hidden is None or m.hidden == hidden)


def get(name: str) -> NeuronModel:
    """The model ``name``; a one-line ``ValueError`` listing the valid names otherwise."""
    try:
        return NEURONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown neuron model {name!r}; expected one of {', '.join(NEURONS)}") from None


def build_layer(name: str, synapse: nn.Module, out_features: int, **options: Any) -> nn.Module:
    """A layer of the model ``name`` over ``synapse`` (options it does not take are left out)."""
    return get(name).build(synapse, out_features, **options)
