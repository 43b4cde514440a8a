"""The one table of surrogate gradients, and the spike function that uses it.

A spiking neuron emits ``Θ(x)`` (a Heaviside step of ``x``, e.g. ``x = V − threshold``) in the
forward pass; since ``dΘ/dx`` is zero almost everywhere, the backward pass replaces it by a
*surrogate* derivative ``σ'(x)`` (Neftci, Mostafa & Zenke, IEEE Signal Process. Mag. 36(6), 51–63
(2019)). Every neuron model of :mod:`pcmsim.neuron_models` draws its surrogate from
:data:`SURROGATES`, by name, with the parameters of a :class:`Surrogate`:

==============  ==========================================  ===============================
name            ``σ'(x)``                                   parameters
==============  ==========================================  ===============================
``flat``        ``1``                                       —
``superspike``  ``1 / (1 + β|x|)²``                         ``beta`` (β)
``sigmoid``     ``β σ(βx) (1 − σ(βx))``                     ``beta`` (β)
``esser``       ``γ · max(0, 1 − |x|)``                     ``gamma`` (γ)
``tanh``        ``1 − tanh²(x)``                            —
==============  ==========================================  ===============================

Adding a surrogate is one function and one row of :data:`SURROGATES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from torch import Tensor

DerivativeFn = Callable[[Tensor, float, float], Tensor]
"""``derivative(x, beta, gamma) -> σ'(x)``; a surrogate reads the parameters it names."""


@dataclass(frozen=True)
class SurrogateGradient:
    """One row of the table: a surrogate derivative, the parameters it reads and its source."""

    name: str
    derivative: DerivativeFn
    parameters: tuple[str, ...]
    formula: str
    source: str


def _flat(x: Tensor, beta: float, gamma: float) -> Tensor:
    return torch.ones_like(x)


def _superspike(x: Tensor, beta: float, gamma: float) -> Tensor:
    return 1.0 / (1.0 + beta * x.abs()) ** 2


def _sigmoid(x: Tensor, beta: float, gamma: float) -> Tensor:
    sig = torch.sigmoid(beta * x)
    return beta * sig * (1.0 - sig)


def _esser(x: Tensor, beta: float, gamma: float) -> Tensor:
    return gamma * torch.clamp(1.0 - x.abs(), min=0.0)


def _tanh(x: Tensor, beta: float, gamma: float) -> Tensor:
    return 1.0 - torch.tanh(x) ** 2


SURROGATES: Mapping[str, SurrogateGradient] = MappingProxyType(
    {
        s.name: s
        for s in (
            SurrogateGradient(
                "flat", _flat, (), "1",
                "straight-through: Gerum & Schilling, Neural Comput. 33(10), 2824 (2021), their "
                "theta_flat (passes the incoming gradient unchanged); the LIF default",
            ),
            SurrogateGradient(
                "superspike", _superspike, ("beta",), "1 / (1 + β|x|)²",
                "fast sigmoid: Zenke & Ganguli, Neural Comput. 30(6), 1514 (2018) (SuperSpike), β = 10",
            ),
            SurrogateGradient(
                "sigmoid", _sigmoid, ("beta",), "β σ(βx)(1 − σ(βx))",
                "derivative of σ(βx): Neftci, Mostafa & Zenke, IEEE Signal Process. Mag. 36(6), 51 "
                "(2019) (Gerum & Schilling's code omits the factor β)",
            ),
            SurrogateGradient(
                "esser", _esser, ("gamma",), "γ · max(0, 1 − |x|)",
                "triangular / piecewise linear: Esser et al., PNAS 113(41), 11441 (2016); Bellec et "
                "al., NeurIPS 2018 use γ = 0.3 (Gerum & Schilling's code: max(0, 1 − β|x|))",
            ),
            SurrogateGradient(
                "tanh", _tanh, (), "1 − tanh²(x)",
                "pseudo-derivative of the SNU toolkit: Woźniak et al., Nat. Mach. Intell. 2, 325 "
                "(2020); the SNU default",
            ),
        )
    }
)
"""Surrogate gradients by name: the one source of valid surrogate names."""


def available() -> tuple[str, ...]:
    """Names of the surrogate gradients, in table order."""
    return tuple(SURROGATES)


def surrogate_gradient(name: str) -> SurrogateGradient:
    """The table row ``name``; a one-line ``ValueError`` listing the valid names otherwise."""
    try:
        return SURROGATES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown surrogate {name!r}; expected one of {', '.join(SURROGATES)}") from None


@dataclass(frozen=True)
class Surrogate:
    """A surrogate gradient with its parameters: a row of :data:`SURROGATES` by ``name``.

    Attributes:
        name: a key of :data:`SURROGATES`.
        beta: sharpness β of ``superspike`` and ``sigmoid`` (10, as Zenke & Ganguli's code).
        gamma: height γ of ``esser`` (1; Bellec et al. 2018 use 0.3).
    """

    name: str = "flat"
    beta: float = 10.0
    gamma: float = 1.0
    _derivative: DerivativeFn = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        row = surrogate_gradient(self.name)
        for key in ("beta", "gamma"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"surrogate {key}={value!r} is invalid; expected a finite number > 0")
            object.__setattr__(self, key, float(value))
        object.__setattr__(self, "_derivative", row.derivative)

    def derivative(self, x: Tensor) -> Tensor:
        """``σ'(x)``, the surrogate of ``dΘ/dx`` at ``x``."""
        return self._derivative(x, self.beta, self.gamma)


def as_surrogate(surrogate: Surrogate | str | None, default: str, beta: float = 10.0, gamma: float = 1.0) -> Surrogate:
    """A :class:`Surrogate` from an instance, a name (with ``beta``, ``gamma``) or None (``default``)."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    return Surrogate(default if surrogate is None else surrogate, beta, gamma)


class _SpikeContext(torch.autograd.function.FunctionCtx):
    """What :class:`SurrogateSpike`'s forward keeps for the backward pass (for the type checker)."""

    saved_tensors: tuple[Tensor, ...]
    surrogate: Surrogate


class SurrogateSpike(torch.autograd.Function):
    """Heaviside step forward; ``grad_out · σ'(x)`` backward, ``σ'`` from a :class:`Surrogate`."""

    @staticmethod
    def forward(ctx: _SpikeContext, x: Tensor, surrogate: Surrogate, inclusive: bool) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype) if inclusive else (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: _SpikeContext, grad_out: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.derivative(x), None, None


def spike(x: Tensor, surrogate: Surrogate, *, inclusive: bool = True) -> Tensor:
    """The spike ``Θ(x)`` with a surrogate derivative.

    Args:
        x: distance to threshold (``V − threshold``, or the SNU's ``s + b``).
        surrogate: the backward pass's ``σ'``.
        inclusive: ``Θ(0) = 1`` (``1[x ≥ 0]``, Gerum & Schilling's LIF) or, if False, ``Θ(0) = 0``
            (``1[x > 0]``, the SNU's step).
    """
    return SurrogateSpike.apply(x, surrogate, inclusive)
