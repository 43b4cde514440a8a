"""Encoders from intensities in [0, 1] to input sequences ``[T, B, ...]`` for spiking networks.

- :func:`poisson_encode`: rate coding; at each step an input spikes with probability
  ``p = x · max_rate · dt`` (Bernoulli draws, the discrete-time Poisson process; Gerum &
  Schilling's ``IntensityToPoissonSpiking``, Neural Computation 33(10), 2021).
- :func:`tile_encode`: constant current; the intensity itself is fed at every step.
- :func:`latency_encode`: time to first spike; a single spike at ``t = round((1 − x)·(T − 1))``
  (bright inputs spike early), none for ``x = 0`` unless configured.

Every random draw takes a ``torch.Generator`` (on the device of the data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor

from .typedconfig import bad_value, check_fields, load, loading, positive

ENCODERS: tuple[str, ...] = ("poisson", "tile", "latency")


class EncoderParams:
    """The base of each encoder's options (a frozen dataclass; a classification config's
    ``encoder_params``, chosen by its ``encoder``: :func:`encoder_params`)."""

    __slots__ = ()
    if TYPE_CHECKING:  # every subclass is a dataclass (for dataclasses.fields)
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


@dataclass(frozen=True)
class PoissonParams(EncoderParams):
    """``poisson``: ``max_rate``, the rate at intensity 1 (in 1/the unit of ``dt``); ``dt``, the step
    length. ``max_rate · dt`` is a spike probability per step (≤ 1)."""

    max_rate: float = field(default=1.0, metadata=positive())
    dt: float = field(default=1.0, metadata=positive())

    def __post_init__(self) -> None:
        if not loading():
            check_fields(self)
            self.validate()

    def validate(self, source: str = "encoder options", path: str = "") -> None:
        if self.max_rate * self.dt > 1.0:
            raise bad_value(source, path or "max_rate·dt", {"max_rate": self.max_rate, "dt": self.dt},
                            "max_rate·dt ≤ 1 (a spike probability per step)")


@dataclass(frozen=True)
class TileParams(EncoderParams):
    """``tile``: no options."""


@dataclass(frozen=True)
class LatencyParams(EncoderParams):
    """``latency``: ``zero``: ``"none"`` (an intensity 0 does not spike) or ``"last"`` (it spikes at the
    last step)."""

    zero: Literal["none", "last"] = "none"

    def __post_init__(self) -> None:
        if not loading():
            check_fields(self)


ENCODER_PARAMS: dict[str, type[EncoderParams]] = {"poisson": PoissonParams, "tile": TileParams,
                                                  "latency": LatencyParams}
"""Each encoder's options class."""


def encoder_params(name: str, params: EncoderParams | Mapping[str, Any] | None = None, *,
                   source: str = "encoder options", path: str = "encoder_params") -> EncoderParams:
    """The typed options of encoder ``name`` from a mapping of its fields (or an instance), checked by
    :func:`pcmsim.typedconfig.load`: one line naming the field path."""
    cls = ENCODER_PARAMS[name]
    if isinstance(params, EncoderParams):
        if not isinstance(params, cls):
            raise bad_value(source, path, params, f"the options of encoder {name!r} ({cls.__name__})")
        return params
    data = dict(params or {})
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in allowed:
            raise bad_value(source, f"{path}.{key}", data[key],
                            f"an option of encoder {name!r}: {', '.join(allowed) or 'none'}")
    return load(cls, data, source=source, path=path)


def _check_inputs(x: Tensor, steps: int) -> None:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps!r} is invalid; expected an integer ≥ 1")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(
            f"intensities out of range [{float(x.min()):g}, {float(x.max()):g}]; expected values in [0, 1]"
        )


def poisson_encode(
    x: Tensor,
    steps: int,
    *,
    max_rate: float = 1.0,
    dt: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Bernoulli/Poisson rate code: ``out[t] ~ Bernoulli(x · max_rate · dt)`` independently per step.

    Args:
        x: intensities in [0, 1], ``[B, ...]``.
        steps: ``T``.
        max_rate: rate at intensity 1 (e.g. in Hz when ``dt`` is in s).
        dt: step length (same time unit as ``1/max_rate``). ``max_rate · dt`` must be ≤ 1.
        generator: random stream (on ``x``'s device).

    Returns:
        spikes ``{0, 1}`` of shape ``[T, B, ...]`` in ``x``'s dtype.
    """
    _check_inputs(x, steps)
    p_max = max_rate * dt
    if not 0.0 <= p_max <= 1.0:
        raise ValueError(
            f"max_rate·dt = {max_rate}·{dt} = {p_max:g} is not a spike probability per step; "
            f"expected 0 ≤ max_rate·dt ≤ 1"
        )
    p = x * p_max
    u = torch.rand((steps, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < p).to(x.dtype)


def tile_encode(x: Tensor, steps: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Constant current: ``out[t] = x`` for every step, ``[T, B, ...]`` (``generator`` is unused)."""
    _check_inputs(x, steps)
    return x.unsqueeze(0).expand(steps, *x.shape).contiguous()


def latency_encode(
    x: Tensor,
    steps: int,
    *,
    zero: Literal["none", "last"] = "none",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Time-to-first-spike code: one spike at ``t = round((1 − x)·(T − 1))`` (halves round up).

    ``x = 1`` spikes at ``t = 0``; ``x = 0`` does not spike (``zero="none"``) or spikes at
    ``t = T − 1`` (``zero="last"``). ``generator`` is unused (the code is deterministic).
    """
    _check_inputs(x, steps)
    if zero not in ("none", "last"):
        raise ValueError(f"zero={zero!r} is invalid; expected 'none' or 'last'")
    t_spike = torch.floor((1.0 - x.double()) * (steps - 1) + 0.5).long()
    times = torch.arange(steps, device=x.device).view(steps, *([1] * x.dim()))
    out = (times == t_spike.unsqueeze(0)).to(x.dtype)
    if zero == "none":
        out = out * (x > 0).to(x.dtype).unsqueeze(0)
    return out


_FUNCS: dict[str, Callable[..., Tensor]] = {
    "poisson": poisson_encode,
    "tile": tile_encode,
    "latency": latency_encode,
}

ENCODER_OPTIONS: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in ENCODER_PARAMS.items()
}
"""The keyword options each encoder accepts (besides ``steps`` and ``generator``): its params' fields."""


def encode(
    name: str, x: Tensor, steps: int, *, generator: torch.Generator | None = None, **options: Any
) -> Tensor:
    """Encode ``x`` with the encoder called ``name`` (``poisson``, ``tile``, ``latency``)."""
    if name not in _FUNCS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {', '.join(ENCODERS)}")
    unknown = sorted(set(options) - set(ENCODER_OPTIONS[name]))
    if unknown:
        allowed = ", ".join(ENCODER_OPTIONS[name]) or "none"
        raise ValueError(
            f"encoder {name!r} does not take option(s) {', '.join(unknown)}; it takes: {allowed}"
        )
    return _FUNCS[name](x, steps, generator=generator, **options)
