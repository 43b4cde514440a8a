"""Name → device model. ``get("pcm-joshi2020", g_max_us=20.0)`` builds one with overrides."""

from __future__ import annotations

from typing import Any

from .base import DeviceModel, DeviceParameterError

_REGISTRY: dict[str, type[DeviceModel]] = {}


def register(cls: type[DeviceModel]) -> type[DeviceModel]:
    """Register a DeviceModel subclass under ``cls.name`` (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of the registered device models, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **overrides: Any) -> DeviceModel:
    """Build the device model registered as ``name``, with parameters overridden field by field.

    Raises DeviceParameterError naming the valid models or parameters.
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise DeviceParameterError(f"unknown device model {name!r}; available: {', '.join(available())}") from None
    return cls(**overrides)
