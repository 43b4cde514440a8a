"""Name → device model. ``get("pcm-joshi2020", g_max_us=20.0)`` builds one with overrides;
``get("my-device.json")`` loads a fitted model's file (``pcmsim device fit``)."""

from __future__ import annotations

from pathlib import Path
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


def is_model(name: object) -> bool:
    """Whether ``name`` can be given to :func:`get`: a registered name, or a path ending in ``.json``
    to an existing file (a fitted model; :func:`get` checks its contents). For config validation."""
    from .fit import is_fitted_file

    if not isinstance(name, str):
        return False
    return name in _REGISTRY or (is_fitted_file(name) and Path(name).is_file())


def describe_valid() -> str:
    """What :func:`get` accepts, in words (for error messages and help)."""
    return f"one of {', '.join(available())}, or a fitted device's JSON file (pcmsim device fit)"


def get(name: str, **overrides: Any) -> DeviceModel:
    """Build the device model registered as ``name``, with parameters overridden field by field;
    a ``name`` ending in ``.json`` is a fitted model's file (:func:`device_models.fit.load_fitted`).

    Raises DeviceParameterError naming the valid models or parameters.
    """
    from .fit import is_fitted_file, load_fitted

    if is_fitted_file(name):
        return load_fitted(name, **overrides)
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise DeviceParameterError(
            f"unknown device model {name!r}; available: {', '.join(available())} (or a fitted device's .json file)"
        ) from None
    return cls(**overrides)
