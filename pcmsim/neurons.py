"""Spiking Neural Units (SNU) and soft SNUs of Woźniak et al., Nat. Mach. Intell. 2, 325 (2020).

One step of an SNU layer (paper, eq. 3–4)::

    s_t = g(W x_t + l(τ) ⊙ s_{t−1} ⊙ (1 − y_{t−1}))        membrane state
    y_t = h(s_t + b)                                         output

``g`` is ReLU (or leaky ReLU), ``l(τ)`` the decay (default 0.8), ``b`` a trainable per-unit bias
that acts as a negative threshold (initialised to −1, the toolkit's threshold of 1), and ``h``
the step function for SNU (forward a Heaviside, backward a pseudo-derivative: the derivative of
tanh as in the authors' toolkit) or the sigmoid for the soft SNU (sSNU). An optional recurrent
matrix adds ``H y_{t−1}`` inside ``g``.

The step math is in plain functions (:func:`snu_step`); the modules wrap them. A layer takes
*any* linear module for ``W`` (``nn.Linear``, ``pcmsim.analog.AnalogLinear``, an aihwkit layer),
and applies it to all time steps at once (``[T·B, in]`` in one call), since ``W x_t`` does not
depend on the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Activation = Literal["relu", "leaky_relu"]


class StepPseudoDerivative(torch.autograd.Function):
    """Heaviside step ``y = 1[x > 0]`` forward; ``dy/dx ≈ 1 − tanh²(x)`` backward.

    The pseudo-derivative is that of the authors' SNU toolkit (derivative of tanh).
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad_out * (1.0 - torch.tanh(x) ** 2)


def step_fn(x: Tensor) -> Tensor:
    """Heaviside step with the tanh pseudo-derivative (see :class:`StepPseudoDerivative`)."""
    return StepPseudoDerivative.apply(x)


def membrane_activation(x: Tensor, kind: Activation, negative_slope: float = 0.01) -> Tensor:
    """The state nonlinearity ``g``: ReLU or leaky ReLU."""
    if kind == "relu":
        return F.relu(x)
    if kind == "leaky_relu":
        return F.leaky_relu(x, negative_slope)
    raise ValueError(f"unknown membrane activation {kind!r}; expected 'relu' or 'leaky_relu'")


def snu_step(
    wx: Tensor,
    s_prev: Tensor,
    y_prev: Tensor,
    decay: Tensor | float,
    bias: Tensor,
    *,
    soft: bool,
    activation: Activation = "relu",
    recurrent_input: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One SNU/sSNU time step.

    Args:
        wx: ``W x_t`` for this step, ``[B, n]``.
        s_prev, y_prev: state and output of the previous step, ``[B, n]``.
        decay: ``l(τ)``, scalar or ``[n]``.
        bias: ``b``, ``[n]``.
        soft: sigmoid output (sSNU) instead of the step (SNU).
        recurrent_input: ``H y_{t−1}`` if the layer is recurrent.

    Returns:
        ``(s_t, y_t, pre_t)`` where ``pre_t = s_t + b`` is the output's pre-activation (the
        logit of ``y_t`` for an sSNU).
    """
    drive = wx + decay * s_prev * (1.0 - y_prev)
    if recurrent_input is not None:
        drive = drive + recurrent_input
    s = membrane_activation(drive, activation)
    pre = s + bias
    y = torch.sigmoid(pre) if soft else step_fn(pre)
    return s, y, pre


@dataclass(frozen=True)
class SNUOutput:
    """Outputs of an SNU layer over a sequence: ``y`` and ``pre`` are ``[T, B, n]``."""

    y: Tensor
    pre: Tensor


class SNULayer(nn.Module):
    """A layer of SNUs (``soft=False``) or sSNUs (``soft=True``) over any linear module.

    Args:
        linear: maps ``[N, in] → [N, out]`` (``nn.Linear``, an analog layer, ...). Its bias, if
            any, is used as is; the layer's own ``bias`` is the threshold term ``b``.
        soft: sSNU (sigmoid output) instead of SNU (step output).
        decay: initial ``l(τ)`` (0.8 by default, the paper's JSB setting).
        threshold: initial threshold; ``b`` starts at ``−threshold``.
        train_decay: make the decay a per-unit trainable parameter (default: fixed).
        recurrent: a module computing ``H y_{t−1}`` (``[B, out] → [B, out]``), or None.
    """

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
    ) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay l(τ)={decay} is out of range; expected 0 ≤ decay ≤ 1")
        self.linear = linear
        self.out_features = out_features
        self.soft = soft
        self.activation: Activation = activation
        self.recurrent = recurrent
        self.bias = nn.Parameter(torch.full((out_features,), -float(threshold)))
        decay_t = torch.full((out_features,), float(decay))
        if train_decay:
            self.decay = nn.Parameter(decay_t)
        else:
            self.register_buffer("decay", decay_t)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> SNUOutput:
        """Run the layer over a sequence ``x`` of shape ``[T, B, in]``."""
        steps, batch = x.shape[0], x.shape[1]
        wx_all = self.linear(x.reshape(steps * batch, -1)).reshape(steps, batch, self.out_features)
        if state is None:
            s = wx_all.new_zeros(batch, self.out_features)
            y = wx_all.new_zeros(batch, self.out_features)
        else:
            s, y = state
        ys, pres = [], []
        # unbind: one backward node for all steps (indexing wx_all[t] would zero-fill and add a
        # full [T, B, n] gradient at every step of the backward pass)
        for wx in wx_all.unbind(0):
            rec = self.recurrent(y) if self.recurrent is not None else None
            s, y, pre = snu_step(
                wx, s, y, self.decay, self.bias, soft=self.soft, activation=self.activation,
                recurrent_input=rec,
            )
            ys.append(y)
            pres.append(pre)
        return SNUOutput(y=torch.stack(ys), pre=torch.stack(pres))
