"""The one time loop of every neuron layer, in the style of Norse.

A neuron model is a *pure step function* (Norse: ``lif_feed_forward_step``; Pehle & Pedersen,
"Norse — a deep learning library for spiking neural networks", Zenodo 4422025 (2021))::

    step(input_t, state, params) -> (output_t, state)

with its parameters as one typed object and its state as a ``NamedTuple``; it reads its arguments
and returns new values, never changing them. :class:`NeuronLayer` is the thin module around it:

1. the *synapse* — any module mapping ``[N, in] → [N, out]`` (``nn.Linear``,
   :class:`pcmsim.analog.AnalogLinear`, an aihwkit layer) — is applied to all ``T·B`` inputs at
   once (:func:`apply_synapse`), since ``W x_t`` does not depend on the neuron state;
2. the layer turns that into the step's input (:meth:`NeuronLayer.input_current`: bias, ``dt``)
   and reads its parameters once per sequence (:meth:`NeuronLayer.step_params`);
3. :func:`run_steps` loops the step over time on ``unbind(0)`` views (one backward node for all
   steps; indexing ``inputs[t]`` would zero-fill and add a full ``[T, B, n]`` gradient per step)
   and stacks the per-step outputs — or, where the step function has a compiled loop
   (:mod:`.fused`: SNU, LIF, integrator on the CPU) and the layer's :attr:`NeuronLayer.loop` is
   ``"fused"`` (the default), that loop runs all steps at once. The plain loop is the reference
   the fused one is tested against.

The step's output is a tensor or a ``NamedTuple`` of tensors; the stacked output has the same type,
with a leading time axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor, nn

from .fused import NEURON_LOOPS, fused_loop

StateT = TypeVar("StateT")
ParamsT = TypeVar("ParamsT")
OutT = TypeVar("OutT")

StepFn = Callable[[Tensor, StateT, ParamsT], tuple[OutT, StateT]]
"""``step(input_t, state, params) -> (output_t, state)``: one time step of a neuron model."""


def apply_synapse(synapse: nn.Module, x: Tensor, out_features: int) -> Tensor:
    """``synapse`` applied to every step of ``x`` (``[T, B, in]``) in one call: ``[T, B, out]``."""
    steps, batch = x.shape[0], x.shape[1]
    # an analog layer is told how many time steps the call covers (its clock advances by them)
    kw = {"time_steps": steps} if getattr(synapse, "counts_time_steps", False) else {}
    return synapse(x.reshape(steps * batch, -1), **kw).reshape(steps, batch, out_features)


def stack_outputs(outputs: list[Any]) -> Any:
    """Per-step outputs (tensors, or NamedTuples of tensors) stacked along a new time axis 0."""
    first = outputs[0]
    if isinstance(first, Tensor):
        return torch.stack(outputs)
    return type(first)(*(torch.stack(field) for field in zip(*outputs)))


def run_steps(
    step: StepFn[StateT, ParamsT, OutT],
    inputs: Tensor,
    state: StateT,
    params: ParamsT,
) -> tuple[OutT, StateT]:
    """The time loop: ``step`` over ``inputs`` (``[T, B, n]``) from ``state``.

    Returns:
        ``(outputs, final_state)``; ``outputs`` stacks the per-step outputs along axis 0.
    """
    outputs = []
    for input_t in inputs.unbind(0):
        out, state = step(input_t, state, params)
        outputs.append(out)
    return stack_outputs(outputs), state


@dataclass(frozen=True)
class ReadoutOutput:
    """Output of a readout: ``logits`` at the last step ``[B, n]``; ``potential`` ``[T, B, n]``."""

    logits: Tensor
    potential: Tensor

    def probabilities(self) -> Tensor:
        """Softmax over classes of the last-step logits."""
        return torch.softmax(self.logits, dim=-1)


class NeuronLayer(nn.Module, Generic[StateT, ParamsT, OutT]):
    """A layer of neurons of one model over any synapse module: the shared time loop.

    A neuron model subclasses it and supplies :attr:`step` (its pure step function),
    :meth:`step_params`, :meth:`initial_state` and, if its input is not ``W x`` itself,
    :meth:`input_current`. :meth:`run` returns the stacked step outputs and the final state;
    ``forward`` returns the stacked outputs, or a model's own packaging of both. A layer that can
    feed another layer returns an output with ``.activity`` (``[T, B, n]`` spikes or rates).

    Args:
        linear: the synapse, ``[N, in] → [N, out]``; applied to all ``T·B`` inputs at once. Its
            bias, if any, is used as is. (Stored as ``linear``: state-dict keys ``*.linear.*``.)
        out_features: number of units ``n``.
    """

    step: StepFn[StateT, ParamsT, OutT]
    """The model's pure step function (set as ``step = staticmethod(model_step)``)."""

    loop: str = "fused"
    """``"fused"``: the step's compiled loop where there is one and it applies (:mod:`.fused`);
    ``"plain"``: :func:`run_steps` always. Set on a whole network with
    :func:`set_neuron_loop`."""

    def __init__(self, linear: nn.Module, out_features: int) -> None:
        super().__init__()
        self.linear = linear
        self.out_features = out_features

    def input_current(self, wx: Tensor) -> Tensor:
        """The step input from the synapse output ``W x`` (``[T, B, n]``); ``W x`` by default."""
        return wx

    def synaptic_input(self, x: Tensor) -> Tensor:
        """The step inputs for all steps, ``[T, B, n]``, from inputs ``x`` of shape ``[T, B, in]``."""
        return self.input_current(apply_synapse(self.linear, x, self.out_features))

    def initial_state(self, batch: int, like: Tensor) -> StateT:
        """The state before the first step (a ``NamedTuple`` of ``[batch, n]`` tensors like ``like``)."""
        raise NotImplementedError

    def step_params(self) -> ParamsT:
        """The step's parameters, read once per sequence from the layer's parameters and settings."""
        raise NotImplementedError

    def run(self, x: Tensor, state: StateT | None = None) -> tuple[OutT, StateT]:
        """Run the layer over ``x`` (``[T, B, in]``): stacked step outputs and the final state."""
        inputs = self.synaptic_input(x)
        start = state if state is not None else self.initial_state(inputs.shape[1], inputs)
        params = self.step_params()
        if self.loop == "fused":
            fused = fused_loop(type(self).step)
            result = fused(inputs, start, params) if fused is not None else None
            if result is not None:
                return result
        return run_steps(type(self).step, inputs, start, params)

    def forward(self, x: Tensor, state: StateT | None = None) -> Any:
        """The stacked step outputs over ``x`` (``[T, B, in]``); models may package them otherwise."""
        return self.run(x, state)[0]


def set_neuron_loop(module: nn.Module, loop: str) -> int:
    """Set ``loop`` (``fused`` or ``plain``) on every neuron layer in ``module``; returns how many."""
    if loop not in NEURON_LOOPS:
        raise ValueError(f"neuron loop {loop!r} is invalid; expected one of {', '.join(NEURON_LOOPS)}")
    layers = [m for m in module.modules() if isinstance(m, NeuronLayer)]
    for m in layers:
        m.loop = loop
    return len(layers)


@dataclass(frozen=True)
class NeuronModel:
    """One entry of the neuron registry (:data:`pcmsim.neuron_models.NEURONS`).

    Attributes:
        name: the registry name (``lif``, ``snu``, ...), as configs and the command line spell it.
        layer: builds a layer: ``layer(synapse, out_features, **options) -> nn.Module``.
        options: the keyword options ``layer`` takes from the shared vocabulary of network settings
            (``threshold``, ``decay``, ``train_decay``, ``activation``, ``dt``, ``train_leak``,
            ``refractory``, ``surrogate``, ``beta``, ``gamma``, ``generator``); :meth:`build`
            passes only these.
        summary: one line for help texts.
        source: the paper the dynamics follow.
        hidden: whether the layer's output (``.activity``: spikes or rates) can feed another layer;
            False for readouts.
    """

    name: str
    layer: Callable[..., nn.Module]
    options: tuple[str, ...]
    summary: str
    source: str
    hidden: bool = True

    def build(self, synapse: nn.Module, out_features: int, **options: Any) -> nn.Module:
        """A layer of this model over ``synapse``; options it does not take are left out."""
        return self.layer(synapse, out_features, **{k: v for k, v in options.items() if k in self.options})
