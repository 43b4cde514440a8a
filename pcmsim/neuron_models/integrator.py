"""The non-spiking integrator readout of Gerum & Schilling (2021).

A leak-free integrator of its input current, ``V_t = V_{t−1} + dt · (W x_t + b)``, read out at the
last step: ``V_T`` are the logits of a softmax / cross-entropy loss (R. C. Gerum and A. Schilling,
Neural Computation 33(10), 2824–2848 (2021): the non-spiking output layer of their classifiers).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .base import NeuronLayer, NeuronModel, ReadoutOutput
from .fused import register_fused

SOURCE = "Gerum & Schilling, Neural Comput. 33(10), 2824 (2021): the non-spiking output layer"


class IntegratorState(NamedTuple):
    """State between steps: the potential ``V_{t−1}``, ``[B, n]``."""

    v: Tensor


class IntegratorParams(NamedTuple):
    """The integrator has no parameters of its own (``dt`` and ``b`` enter the input current)."""


def integrator_step(
    input_t: Tensor, state: IntegratorState, params: IntegratorParams
) -> tuple[Tensor, IntegratorState]:
    """One step of a non-spiking, non-leaky integrator (a pure function): ``V_t = V_{t−1} + I_t``.

    Returns:
        ``(V_t, IntegratorState(V_t))``.
    """
    v = state.v + input_t
    return v, IntegratorState(v)


def fused_integrator(
    inputs: Tensor, state: IntegratorState, params: IntegratorParams
) -> tuple[Tensor, IntegratorState]:
    """:func:`integrator_step` over all steps at once: a cumulative sum (torch's own, any device;
    it accumulates in higher precision than the plain loop's float32 additions)."""
    v = torch.cumsum(torch.cat([(state.v + inputs[0]).unsqueeze(0), inputs[1:]]), dim=0)
    return v, IntegratorState(v[-1])


register_fused(integrator_step, fused_integrator)


class IntegratorReadout(NeuronLayer[IntegratorState, IntegratorParams, Tensor]):
    """Non-spiking readout: a leak-free integrator of its input current (Gerum & Schilling 2021).

    ``V_t = V_{t−1} + dt · (linear(x_t) + b)``; the output is ``V_T`` (the LAST step), used as the
    logits of a softmax / cross-entropy loss.

    Args:
        linear: the synapse, ``[N, in] → [N, out]``.
        out_features: number of units (classes).
        dt: scales the input current.
        bias: add a per-unit digital bias ``b`` (zeros initially) to the current.
    """

    step = staticmethod(integrator_step)

    def __init__(self, linear: nn.Module, out_features: int, *, dt: float = 1.0, bias: bool = True) -> None:
        super().__init__(linear, out_features)
        if dt <= 0:
            raise ValueError(f"dt={dt} is invalid; expected dt > 0")
        self.dt = float(dt)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def input_current(self, wx: Tensor) -> Tensor:
        """``I_t = dt · (W x_t + b)`` for all steps."""
        if self.bias is not None:
            wx = wx + self.bias
        return self.dt * wx

    def initial_state(self, batch: int, like: Tensor) -> IntegratorState:
        return IntegratorState(like.new_zeros(batch, self.out_features))

    def step_params(self) -> IntegratorParams:
        return IntegratorParams()

    def forward(self, x: Tensor, state: IntegratorState | None = None) -> ReadoutOutput:
        """Integrate ``x`` (``[T, B, in]``); logits are the last step's potential."""
        potential, _ = self.run(x, state)
        return ReadoutOutput(logits=potential[-1], potential=potential)


MODEL = NeuronModel(
    "integrator", IntegratorReadout, ("dt",),
    "non-spiking leak-free integrator; logits = potential at the last step", SOURCE, hidden=False,
)
