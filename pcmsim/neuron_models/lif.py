"""Leaky integrate-and-fire (LIF) neurons of Gerum & Schilling, trainable with a surrogate gradient.

R. C. Gerum and A. Schilling, "Integration of leaky-integrate-and-fire neurons in deep learning
architectures", Neural Computation 33(10), 2824–2848 (2021), arXiv:2004.13532. Their Keras
package (``tf_spiking``) runs, for every unit and time step, the discrete update::

    V_t = ReLU(I_t + (1 − leak) · V_{t−1} · Θ(1 − V_{t−1}))          membrane potential
    s_t = Θ(V_t − 1)                                                  spike (threshold 1)

with ``I_t = dt · (W x_t + b)`` (their ``w_input = dt``) and a trainable per-unit ``leak``
initialised uniformly in ``(0, 0.1·dt)``. ``Θ`` is the Heaviside step; in the backward pass the
spike's ``Θ`` gets a *surrogate* derivative (:mod:`pcmsim.neuron_models.surrogates`; ``flat`` by
default, as in the paper), while the reset factor ``Θ(1 − V_{t−1})`` is treated as a constant
(their ``theta_forget`` has a zero gradient), so the gradient flows through ``V_{t−1}`` and
``leak`` but not through the reset decision.

Conventions of this module (where the paper's code leaves a choice):

- a spike is emitted when ``V_t ≥ threshold`` (their ``Θ(x) = 1[x ≥ 0]``), and a neuron that
  spiked at ``t−1`` starts step ``t`` from 0 (reset when ``V_{t−1} ≥ threshold``; their code resets
  only when ``V_{t−1} > 1`` and so differs only for ``V_{t−1}`` exactly at threshold);
- ``leak`` is clamped to ``[0, 1]`` in the forward pass (a trained leak cannot make the
  potential grow or change sign);
- an optional absolute *refractory period* of ``R`` steps (an extension; the paper's layer has
  none): after a spike at step ``t`` the neuron is silent at steps ``t+1 … t+R`` — its potential
  is held at 0, input current is discarded and it cannot spike — and it integrates again from
  ``V = 0`` at step ``t+R+1``. ``R = 0`` is the plain reset above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import NeuronLayer, NeuronModel
from .fused import fusable, lif_loop, register_fused
from .surrogates import Surrogate, as_surrogate, spike

SOURCE = "Gerum & Schilling, Neural Comput. 33(10), 2824 (2021), arXiv:2004.13532"


class LIFState(NamedTuple):
    """State between steps, all ``[B, n]``.

    ``v``: membrane potential ``V_{t−1}``; ``refractory``: remaining refractory steps (integer
    counts stored as floats, 0 = free to integrate).
    """

    v: Tensor
    refractory: Tensor


class LIFParams(NamedTuple):
    """Parameters of a LIF step.

    Attributes:
        leak: per-unit leak in ``[0, 1]`` (scalar or ``[n]``).
        threshold: firing threshold (1 in the paper).
        surrogate: the spike's surrogate derivative.
        refractory_steps: ``R``, steps of silence after each spike (0: none).
    """

    leak: Tensor | float
    threshold: float = 1.0
    surrogate: Surrogate = Surrogate("flat")
    refractory_steps: int = 0


class LIFStepOutput(NamedTuple):
    """Output of a step (``[B, n]``) or of a sequence (``[T, B, n]``): spikes and potentials ``V``."""

    spikes: Tensor
    v: Tensor


def lif_step(input_t: Tensor, state: LIFState, params: LIFParams) -> tuple[LIFStepOutput, LIFState]:
    """One LIF time step of Gerum & Schilling (2021) (a pure function).

    ``V_t = ReLU(I_t + (1 − leak) · V_{t−1} · 1[V_{t−1} < threshold])``, ``s_t = Θ(V_t − threshold)``;
    while a refractory count is running, ``V_t = 0`` and ``s_t = 0``.

    Args:
        input_t: the current ``I_t``, ``[B, n]``.
        state: ``V_{t−1}`` and the refractory counters.
        params: see :class:`LIFParams`.

    Returns:
        ``(LIFStepOutput(s_t, V_t), LIFState(V_t, counters))``.
    """
    v_prev = state.v
    threshold = params.threshold
    keep = (v_prev < threshold).to(v_prev.dtype)  # reset factor Θ(1 − V_{t−1}); no gradient
    v = F.relu(input_t + (1.0 - params.leak) * v_prev * keep)
    refractory_steps = params.refractory_steps
    if refractory_steps > 0:
        free = (state.refractory <= 0).to(v.dtype)
        v = v * free
    s = spike(v - threshold, params.surrogate)
    if refractory_steps > 0:
        counter = torch.where(
            s.detach() > 0,
            torch.full_like(state.refractory, float(refractory_steps)),
            torch.clamp(state.refractory - 1.0, min=0.0),
        )
    else:
        counter = state.refractory
    return LIFStepOutput(s, v), LIFState(v, counter)


def fused_lif(inputs: Tensor, state: LIFState, params: LIFParams) -> tuple[LIFStepOutput, LIFState] | None:
    """:func:`lif_step` over all steps of ``inputs`` (``[T, B, n]``) in one compiled kernel
    (:mod:`.fused`); None where it cannot be fused (a GPU tensor)."""
    if not fusable(inputs, state.v, state.refractory):
        return None
    spikes, v, r = lif_loop(inputs, state.v, state.refractory, params.leak, threshold=params.threshold,
                            refractory=params.refractory_steps, surrogate=params.surrogate)
    return LIFStepOutput(spikes, v), LIFState(v[-1], r[-1].to(state.refractory.dtype))


register_fused(lif_step, fused_lif)


@dataclass(frozen=True)
class LIFOutput:
    """Outputs of a LIF layer over a sequence: ``spikes`` and potentials ``v`` ``[T, B, n]``, and the
    final ``state``."""

    spikes: Tensor
    v: Tensor
    state: LIFState

    @property
    def activity(self) -> Tensor:
        """What the next layer receives: the spikes."""
        return self.spikes


def uniform_leak(n: int, high: float, generator: torch.Generator | None) -> Tensor:
    """``n`` leaks uniform in ``(0, high]``: ``torch.rand`` draws in ``[0, 1)``, reflected to ``(0, 1]``."""
    u = 1.0 - torch.rand(n, generator=generator)
    return u * high


class LIFLayer(NeuronLayer[LIFState, LIFParams, LIFStepOutput]):
    """A layer of LIF units (Gerum & Schilling 2021) over any synapse module.

    ``I_t = dt · (linear(x_t) + bias)``; dynamics of :func:`lif_step`.

    Args:
        linear: maps ``[N, in] → [N, out]``; applied to all ``T·B`` inputs at once.
        out_features: number of units ``n``.
        dt: time step; scales the input current (their ``w_input = dt``) and the leak's initial
            range ``(0, 0.1·dt)``.
        leak_init_max: upper end of the leak's uniform initialisation (default ``0.1·dt``).
        train_leak: make the per-unit leak a trainable parameter (the paper's choice; default).
        threshold: firing threshold (1).
        surrogate, beta, gamma: the spike's surrogate derivative (``flat`` by default, as in the
            paper), a :class:`Surrogate` or a name of the table with its parameters.
        refractory: refractory period in steps (0: none), see the module docstring.
        bias: add a per-unit digital bias ``b`` (zeros initially) to the current.
        generator: draws the initial leaks.
    """

    step = staticmethod(lif_step)

    def __init__(
        self,
        linear: nn.Module,
        out_features: int,
        *,
        dt: float = 1.0,
        leak_init_max: float | None = None,
        train_leak: bool = True,
        threshold: float = 1.0,
        surrogate: Surrogate | str | None = "flat",
        beta: float = 10.0,
        gamma: float = 1.0,
        refractory: int = 0,
        bias: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(linear, out_features)
        self.surrogate = as_surrogate(surrogate, "flat", beta, gamma)
        if dt <= 0:
            raise ValueError(f"dt={dt} is invalid; expected dt > 0")
        if int(refractory) != refractory or refractory < 0:
            raise ValueError(f"refractory={refractory!r} is invalid; expected an integer number of steps ≥ 0")
        if threshold <= 0:
            raise ValueError(f"threshold={threshold} is invalid; expected threshold > 0")
        high = 0.1 * dt if leak_init_max is None else float(leak_init_max)
        if not 0.0 < high <= 1.0:
            raise ValueError(f"leak_init_max={high} is invalid; expected 0 < leak_init_max ≤ 1")
        self.dt = float(dt)
        self.threshold = float(threshold)
        self.refractory = int(refractory)
        leak = uniform_leak(out_features, high, generator)
        if train_leak:
            self.leak = nn.Parameter(leak)
        else:
            self.register_buffer("leak", leak)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def input_current(self, wx: Tensor) -> Tensor:
        """``I_t = dt · (W x_t + b)`` for all steps."""
        if self.bias is not None:
            wx = wx + self.bias
        return self.dt * wx

    def currents(self, x: Tensor) -> Tensor:
        """``I_t`` for all steps, ``[T, B, n]``, from inputs ``[T, B, in]``."""
        return self.synaptic_input(x)

    def initial_state(self, batch: int, like: Tensor) -> LIFState:
        zeros = like.new_zeros(batch, self.out_features)
        return LIFState(v=zeros, refractory=zeros.clone())

    def step_params(self) -> LIFParams:
        return LIFParams(
            leak=self.leak.clamp(0.0, 1.0), threshold=self.threshold, surrogate=self.surrogate,
            refractory_steps=self.refractory,
        )

    def forward(self, x: Tensor, state: LIFState | None = None) -> LIFOutput:
        """Run the layer over a sequence ``x`` of shape ``[T, B, in]``."""
        out, final = self.run(x, state)
        return LIFOutput(spikes=out.spikes, v=out.v, state=final)


MODEL = NeuronModel(
    "lif", LIFLayer,
    ("threshold", "dt", "train_leak", "refractory", "surrogate", "beta", "gamma", "generator"),
    "leaky integrate-and-fire: trainable leak, reset to 0, optional refractory period", SOURCE,
)
