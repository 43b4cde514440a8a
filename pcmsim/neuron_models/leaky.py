"""Leaky integrate-and-fire neurons with a reset to ``v_reset``, as NIR and snnTorch define them.

The discrete step of NIR's ``LIF``, ``IF``, ``LI`` and ``I`` nodes (the Neuromorphic Intermediate
Representation: Pedersen et al., "Neuromorphic intermediate representation: a unified instruction
set for interoperable brain-inspired computing", Nat. Commun. 15, 8122 (2024)), and of snnTorch's
``Leaky`` with ``reset_mechanism="zero"`` (the neuron snnTorch's NIR import builds). NIR's
continuous ``τ dv/dt = (v_leak − v) + R·I`` is integrated with one forward-Euler step of ``dt``::

    v_t = decay · v_{t−1} + leak_bias + I_t           decay = 1 − dt/τ, leak_bias = (dt/τ)·v_leak,
                                                      I_t = gain · (W x_t + b), gain = dt·R/τ
    s_t = Θ(v_t − threshold)                          strictly above threshold (NIR: z = 1 if v > v_thr)
    v_t ← v_reset where s_t = 1                       reset in the same step

``IF`` (``dv/dt = R·I``) is ``decay = 1``, ``leak_bias = 0``, ``gain = dt·R``; ``LI`` is the same
update with no spike and no reset; NIR's integrator ``I`` is ``LI`` with ``decay = 1``. snnTorch's
export writes ``τ = dt/(1 − β)`` and ``R = τ/dt`` with ``dt = 10⁻⁴ s``, so ``decay = β`` and
``gain = 1``: ``v_t = β·v_{t−1} + W x_t``, snnTorch's own update.

In the backward pass the spike's Θ gets a surrogate derivative
(:mod:`pcmsim.neuron_models.surrogates`, ``superspike`` by default); the reset decision is
treated as a constant (detached), as in Norse and in :mod:`.lif`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .base import NeuronLayer, NeuronModel
from .surrogates import Surrogate, as_surrogate, spike

SOURCE = "NIR (Pedersen et al., Nat. Commun. 15, 8122, 2024), forward Euler; snnTorch Leaky(reset_mechanism='zero')"

Scalar = float | Tensor
"""A per-unit parameter: one number for all units, or a tensor ``[n]``."""


class LeakyState(NamedTuple):
    """State between steps: the membrane potential ``v_{t−1}``, ``[B, n]``."""

    v: Tensor


class LeakyParams(NamedTuple):
    """Parameters of a leaky step (each a number or a per-unit tensor ``[n]``).

    Attributes:
        decay: ``1 − dt/τ`` (1: no leak, IF and I).
        leak_bias: ``(dt/τ)·v_leak``, added every step.
        threshold: firing threshold; spikes when ``v > threshold``.
        v_reset: the potential after a spike.
        spiking: False for a leaky integrator (``LI``, ``I``): no spike, no reset.
        surrogate: the spike's surrogate derivative.
    """

    decay: Scalar
    leak_bias: Scalar = 0.0
    threshold: Scalar = 1.0
    v_reset: Scalar = 0.0
    spiking: bool = True
    surrogate: Surrogate = Surrogate("superspike")


class LeakyStepOutput(NamedTuple):
    """Output of a step (``[B, n]``) or of a sequence (``[T, B, n]``).

    ``activity``: what the next layer receives (spikes; the potential for a non-spiking layer);
    ``v``: the membrane potential after the reset.
    """

    activity: Tensor
    v: Tensor


def fire_and_reset(v: Tensor, threshold: Scalar, v_reset: Scalar, surrogate: Surrogate) -> tuple[Tensor, Tensor]:
    """``s = Θ(v − threshold)`` (strict) and ``v`` with ``v_reset`` where ``s = 1`` (reset detached)."""
    s = spike(v - threshold, surrogate, inclusive=False)
    fired = s.detach()
    return s, v - fired * (v - v_reset)


def leaky_step(input_t: Tensor, state: LeakyState, params: LeakyParams) -> tuple[LeakyStepOutput, LeakyState]:
    """One forward-Euler step of NIR's LIF / IF / LI / I (a pure function); see the module docstring.

    Args:
        input_t: ``I_t = gain · (W x_t + b)``, ``[B, n]``.
        state: ``v_{t−1}``.
        params: see :class:`LeakyParams`.

    Returns:
        ``(LeakyStepOutput(activity, v_t), LeakyState(v_t))``.
    """
    v = params.decay * state.v + params.leak_bias + input_t
    if not params.spiking:
        return LeakyStepOutput(v, v), LeakyState(v)
    s, v = fire_and_reset(v, params.threshold, params.v_reset, params.surrogate)
    return LeakyStepOutput(s, v), LeakyState(v)


def per_unit(name: str, value: Scalar, n: int) -> Tensor:
    """``value`` as a float32 tensor ``[n]`` (a number is repeated); a one-line error if it does not fit."""
    t = torch.as_tensor(value, dtype=torch.float32).detach().clone()
    if t.numel() == 1:
        return t.reshape(()).expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} values: expected 1 or one per unit ({n})")
    return t.reshape(n)


class LeakyLayer(NeuronLayer[LeakyState, LeakyParams, LeakyStepOutput]):
    """A layer of NIR-style leaky integrate-and-fire units (or leaky integrators) over any synapse.

    ``I_t = gain · (linear(x_t) + b)``; dynamics of :func:`leaky_step`. Every parameter is a number
    or a per-unit tensor ``[n]`` (stored as buffers; ``decay`` is a parameter with ``train_decay``).

    Args:
        linear: the synapse ``[N, in] → [N, out]`` (``nn.Identity()`` when the synapse is a layer of
            its own, as in a NIR graph).
        out_features: number of units ``n``.
        decay: ``1 − dt/τ`` (snnTorch's β).
        gain: ``dt·R/τ`` (``dt·R`` for IF and I).
        leak_bias: ``(dt/τ)·v_leak``.
        threshold, v_reset: firing threshold and reset potential.
        spiking: False: a leaky integrator (``LI``, ``I``), whose activity is its potential.
        train_decay: make ``decay`` a trainable parameter (clamped to ``[0, 1]`` in the forward pass).
        surrogate, beta, gamma: the spike's surrogate derivative (``superspike`` by default).
        bias: add a per-unit digital bias ``b`` (zeros initially) to the synapse output.
    """

    step = staticmethod(leaky_step)
    decay: Tensor  # a buffer, or a parameter with train_decay
    gain: Tensor
    leak_bias: Tensor
    threshold: Tensor
    v_reset: Tensor

    def __init__(
        self,
        linear: nn.Module,
        out_features: int,
        *,
        decay: Scalar = 0.9,
        gain: Scalar = 1.0,
        leak_bias: Scalar = 0.0,
        threshold: Scalar = 1.0,
        v_reset: Scalar = 0.0,
        spiking: bool = True,
        train_decay: bool = False,
        surrogate: Surrogate | str | None = "superspike",
        beta: float = 10.0,
        gamma: float = 1.0,
        bias: bool = False,
    ) -> None:
        super().__init__(linear, out_features)
        n = int(out_features)
        d = per_unit("decay", decay, n)
        if not bool(((d >= 0) & (d <= 1)).all()):
            raise ValueError("decay is invalid: expected 0 ≤ decay ≤ 1 (dt ≤ τ)")
        if train_decay:
            self.decay = nn.Parameter(d)
        else:
            self.register_buffer("decay", d)
        self.register_buffer("gain", per_unit("gain", gain, n))
        self.register_buffer("leak_bias", per_unit("leak_bias", leak_bias, n))
        self.register_buffer("threshold", per_unit("threshold", threshold, n))
        self.register_buffer("v_reset", per_unit("v_reset", v_reset, n))
        self.spiking = bool(spiking)
        self.surrogate = as_surrogate(surrogate, "superspike", beta, gamma)
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def input_current(self, wx: Tensor) -> Tensor:
        """``I_t = gain · (W x_t + b)`` for all steps."""
        if self.bias is not None:
            wx = wx + self.bias
        return self.gain * wx

    def initial_state(self, batch: int, like: Tensor) -> LeakyState:
        return LeakyState(like.new_zeros(batch, self.out_features))

    def step_params(self) -> LeakyParams:
        return LeakyParams(
            decay=self.decay.clamp(0.0, 1.0), leak_bias=self.leak_bias, threshold=self.threshold,
            v_reset=self.v_reset, spiking=self.spiking, surrogate=self.surrogate,
        )

    def forward(self, x: Tensor, state: LeakyState | None = None) -> LeakyStepOutput:
        """Run the layer over ``x`` (``[T, B, in]``): ``.activity`` and ``.v``, each ``[T, B, n]``."""
        return self.run(x, state)[0]


MODEL = NeuronModel(
    "leaky", functools.partial(LeakyLayer, bias=True),
    ("threshold", "decay", "train_decay", "surrogate", "beta", "gamma"),
    "leaky integrate-and-fire as NIR and snnTorch define it: v ← decay·v + I, spike if v > threshold, reset to 0",
    SOURCE,
)
