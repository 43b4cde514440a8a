"""Checks of device parameters and masks: one-line :class:`DeviceParameterError` s naming the value and
what is valid."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from .state import DeviceState
from .typedconfig import ConfigError, check, check_fields


class DeviceParameterError(ValueError):
    """An invalid device-model name or parameter; the message lists what is valid."""


def check_finite_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Refuse NaN, infinite, negative (and, unless allowed, zero) parameter values."""
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "≥ 0" if allow_zero else "> 0"
        raise DeviceParameterError(f"parameter {name}={value!r} is invalid: expected a finite number {bound}")


def check_finite(name: str, value: float) -> None:
    """Refuse NaN and infinite parameter values (any sign allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DeviceParameterError(f"parameter {name}={value!r} is invalid: expected a finite number")


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"a finite number in {left}{lo_s}, {hi_s}{right}"


def _in_range(value: Any, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    return ok and not ((lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and (value >= hi if hi_open else value > hi)))


def param(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
          lt: float | None = None, integer: bool = False) -> Any:
    """A device parameter: a dataclass field with ``default`` and its valid range (``ge``/``gt`` the lower
    bound, closed or open, ``le``/``lt`` the upper; ``integer``: an integer ≥ ``ge``) as
    :mod:`device_models.typedconfig` metadata, checked when a model is built (:func:`check_params`) and
    listed on the device models' reference page::

        g_max_us: float = param(12.0, gt=0.0)  # G_max, µS; source
    """
    lo, lo_open = (gt, True) if gt is not None else (ge, False)
    hi, hi_open = (lt, True) if lt is not None else (le, False)
    if integer:
        floor = int(lo if lo is not None else 0)
        return dataclasses.field(default=default, metadata=check(
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= floor, f"an integer ≥ {floor}"))
    return dataclasses.field(default=default, metadata=check(
        lambda v: _in_range(v, lo, hi, lo_open, hi_open), _range_text(lo, hi, lo_open, hi_open)))


def check_params(params: Any) -> None:
    """Check every field of a model's ``Params`` by its type and its :func:`param` range (NaN and infinities
    refused): one-line :class:`DeviceParameterError` ``parameter name=value is invalid: expected …``."""
    try:
        check_fields(params)
    except ConfigError as exc:
        raise DeviceParameterError(f"parameter {exc}") from None


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> None:
    """Refuse a parameter outside ``[lo, hi]`` (or the open ends), NaN and infinities; the message
    states the valid range (for ranges that depend on another parameter: fixed ones are :func:`param`)."""
    if not _in_range(value, lo, hi, lo_open, hi_open):
        raise DeviceParameterError(
            f"parameter {name}={value!r} is invalid: expected {_range_text(lo, hi, lo_open, hi_open)}")


def check_int(name: str, value: int, lo: int = 1) -> None:
    """Refuse a non-integer or an integer below ``lo``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise DeviceParameterError(f"parameter {name}={value!r} is invalid: expected an integer ≥ {lo}")


def check_all_finite(params: Any) -> None:
    """Refuse NaN/inf in every float field of a parameter dataclass (tuples of floats included)."""
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, float):
            check_finite(f.name, value)
        elif isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
            for i, v in enumerate(value):
                check_finite(f"{f.name}[{i}]", v)


def mask_is_all(mask: Tensor | None) -> bool:
    """True when ``mask`` selects every device (``None`` means all)."""
    return mask is None or bool(mask.all())


def as_mask(mask: Tensor | None, state: DeviceState) -> Tensor | None:
    """``mask`` as a bool tensor of the state's shape (broadcast if needed); ``None`` stays ``None``
    (= every device). Raises ValueError naming both shapes when they do not fit."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        mask = mask != 0
    if mask.shape != state.shape:
        try:
            mask = mask.expand(state.shape)
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not fit the device state of shape {tuple(state.shape)}"
            ) from None
    if mask.device != state.device:
        mask = mask.to(state.device)
    return mask
