"""Spiking Neural Units (SNU) and soft SNUs of Woźniak et al., Nat. Mach. Intell. 2, 325 (2020).

One step of an SNU layer (paper, eq. 3–4)::

    s_t = g(W x_t + l(τ) ⊙ s_{t−1} ⊙ (1 − y_{t−1}))        membrane state
    y_t = h(s_t + b)                                         output

``g`` is ReLU (or leaky ReLU), ``l(τ)`` the decay (default 0.8), ``b`` a trainable per-unit bias
that acts as a negative threshold (initialised to −1, the toolkit's threshold of 1), and ``h``
the step function ``1[x > 0]`` for the SNU — in the backward pass a surrogate derivative, by
default the derivative of tanh as in the authors' toolkit (``tanh`` of
:data:`pcmsim.neuron_models.surrogates.SURROGATES`) — or the sigmoid for the soft SNU (sSNU).
An optional recurrent matrix adds ``H y_{t−1}`` inside ``g``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import NeuronLayer, NeuronModel
from .fused import fusable, register_fused, snu_loop
from .surrogates import Surrogate, as_surrogate, spike

Activation = Literal["relu", "leaky_relu"]
ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu")
SOURCE = "Woźniak, Pantazi, Bohnstingl & Eleftheriou, Nat. Mach. Intell. 2, 325 (2020), eq. 3–4"


class SNUState(NamedTuple):
    """State between steps, ``[B, n]`` each: membrane state ``s_{t−1}`` and output ``y_{t−1}``."""

    s: Tensor
    y: Tensor


class SNUParams(NamedTuple):
    """Parameters of an SNU step.

    Attributes:
        decay: ``l(τ)``, scalar or ``[n]``.
        bias: ``b`` (``−threshold`` initially), ``[n]``.
        soft: sigmoid output (sSNU) instead of the step (SNU).
        activation: ``g``, ``relu`` or ``leaky_relu`` (slope 0.01).
        surrogate: the step's surrogate derivative (unused by the sSNU).
        recurrent: ``y ↦ H y`` if the layer is recurrent, else None.
    """

    decay: Tensor | float
    bias: Tensor
    soft: bool = False
    activation: Activation = "relu"
    surrogate: Surrogate = Surrogate("tanh")
    recurrent: Callable[[Tensor], Tensor] | None = None


class SNUOutput(NamedTuple):
    """Output of a step (``[B, n]``) or of a sequence (``[T, B, n]``): ``y`` and its
    pre-activation ``pre = s + b`` (the logit of ``y`` for an sSNU)."""

    y: Tensor
    pre: Tensor

    @property
    def activity(self) -> Tensor:
        """What the next layer receives: ``y``."""
        return self.y


def membrane_activation(x: Tensor, kind: Activation, negative_slope: float = 0.01) -> Tensor:
    """The state nonlinearity ``g``: ReLU or leaky ReLU."""
    if kind == "relu":
        return F.relu(x)
    if kind == "leaky_relu":
        return F.leaky_relu(x, negative_slope)
    raise ValueError(f"unknown membrane activation {kind!r}; expected one of {', '.join(ACTIVATIONS)}")


def snu_step(input_t: Tensor, state: SNUState, params: SNUParams) -> tuple[SNUOutput, SNUState]:
    """One SNU/sSNU time step (a pure function).

    Args:
        input_t: ``W x_t``, ``[B, n]``.
        state: ``s_{t−1}``, ``y_{t−1}``.
        params: see :class:`SNUParams`.

    Returns:
        ``(SNUOutput(y_t, pre_t), SNUState(s_t, y_t))``.
    """
    rec = params.recurrent(state.y) if params.recurrent is not None else None
    drive = input_t + params.decay * state.s * (1.0 - state.y)
    if rec is not None:
        drive = drive + rec
    s = membrane_activation(drive, params.activation)
    pre = s + params.bias
    y = torch.sigmoid(pre) if params.soft else spike(pre, params.surrogate, inclusive=False)
    return SNUOutput(y, pre), SNUState(s, y)


def fused_snu(inputs: Tensor, state: SNUState, params: SNUParams) -> tuple[SNUOutput, SNUState] | None:
    """:func:`snu_step` over all steps of ``inputs`` (``[T, B, n]``) in one compiled kernel
    (:mod:`.fused`); None where it cannot be fused (a recurrent layer, a GPU tensor)."""
    if params.recurrent is not None or not fusable(inputs, state.s, state.y, params.bias):
        return None
    y, pre, s = snu_loop(inputs, state.s, state.y, params.decay, params.bias, soft=params.soft,
                         leaky=params.activation == "leaky_relu", surrogate=params.surrogate)
    return SNUOutput(y, pre), SNUState(s[-1], y[-1])


register_fused(snu_step, fused_snu)


class SNULayer(NeuronLayer[SNUState, SNUParams, SNUOutput]):
    """A layer of SNUs (``soft=False``) or sSNUs (``soft=True``) over any synapse module.

    Args:
        linear: maps ``[N, in] → [N, out]`` (``nn.Linear``, an analog layer, ...). Its bias, if
            any, is used as is; the layer's own ``bias`` is the threshold term ``b``.
        soft: sSNU (sigmoid output) instead of SNU (step output).
        decay: initial ``l(τ)`` (0.8 by default, the paper's JSB setting).
        threshold: initial threshold; ``b`` starts at ``−threshold``.
        train_decay: make the decay a per-unit trainable parameter (default: fixed).
        activation: ``g``.
        recurrent: a module computing ``H y_{t−1}`` (``[B, out] → [B, out]``), or None.
        surrogate, beta, gamma: the step's surrogate derivative (default ``tanh``, the SNU
            toolkit's), a :class:`Surrogate` or a name of the table with its parameters.
    """

    step = staticmethod(snu_step)

    def __init__(
        self,
        linear: nn.Module,
        out_features: int,
        *,
        soft: bool = False,
        decay: float = 0.8,
        threshold: float = 1.0,
        train_decay: bool = False,
        activation: Activation = "relu",
        recurrent: nn.Module | None = None,
        surrogate: Surrogate | str | None = None,
        beta: float = 10.0,
        gamma: float = 1.0,
    ) -> None:
        super().__init__(linear, out_features)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay l(τ)={decay} is out of range; expected 0 ≤ decay ≤ 1")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown membrane activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        self.soft = soft
        self.activation: Activation = activation
        self.surrogate = as_surrogate(surrogate, "tanh", beta, gamma)
        self.recurrent = recurrent
        self.bias = nn.Parameter(torch.full((out_features,), -float(threshold)))
        decay_t = torch.full((out_features,), float(decay))
        if train_decay:
            self.decay = nn.Parameter(decay_t)
        else:
            self.register_buffer("decay", decay_t)

    def initial_state(self, batch: int, like: Tensor) -> SNUState:
        return SNUState(like.new_zeros(batch, self.out_features), like.new_zeros(batch, self.out_features))

    def step_params(self) -> SNUParams:
        return SNUParams(
            decay=self.decay, bias=self.bias, soft=self.soft, activation=self.activation,
            surrogate=self.surrogate, recurrent=self.recurrent,
        )

    def forward(self, x: Tensor, state: SNUState | tuple[Tensor, Tensor] | None = None) -> SNUOutput:
        """Run the layer over a sequence ``x`` of shape ``[T, B, in]`` (from ``state = (s, y)``)."""
        out, _ = self.run(x, SNUState(*state) if state is not None else None)
        return out


_OPTIONS = ("threshold", "decay", "train_decay", "activation")
# The surrogate options are not taken from shared network settings: an SNU layer built through the
# registry keeps the toolkit's tanh′, as the classifier always did (its ``surrogate`` setting is the
# LIF's). SNULayer(surrogate=...) takes any surrogate of the table.
SNU_MODEL = NeuronModel(
    "snu", partial(SNULayer, soft=False), _OPTIONS,
    "spiking neural unit: step output, reset by its own spike", SOURCE,
)
SSNU_MODEL = NeuronModel(
    "ssnu", partial(SNULayer, soft=True), _OPTIONS,
    "soft SNU: sigmoid output (a rate), soft reset", SOURCE,
)
