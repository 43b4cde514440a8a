"""Name → device model. ``get("pcm-joshi2020", g_max_us=20.0)`` builds one with overrides;
``get("my-device.json")`` loads a fitted model's file (``pcmsim device fit``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import DeviceModel, DeviceParameterError

_REGISTRY: dict[str, type[DeviceModel]] = {}
_FILE_LOADERS: list[tuple[Callable[[str], bool], Callable[..., DeviceModel]]] = []


def register_file_loader(matches: Callable[[str], bool], load: Callable[..., DeviceModel]) -> None:
    """Let :func:`get` build a model from a file: ``load(path, **overrides)`` for every name that
    ``matches`` (the package registers the fitted models' JSON files of :mod:`device_models.fit`)."""
    _FILE_LOADERS.append((matches, load))


def _file_loader(name: str) -> Callable[..., DeviceModel] | None:
    return next((load for matches, load in _FILE_LOADERS if matches(name)), None)


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
    if not isinstance(name, str):
        return False
    return name in _REGISTRY or (_file_loader(name) is not None and Path(name).is_file())


def describe_valid() -> str:
    """What :func:`get` accepts, in words (for error messages and help)."""
    return f"one of {', '.join(available())}, or a fitted device's JSON file (pcmsim device fit)"


def get(name: str, **overrides: Any) -> DeviceModel:
    """Build the device model registered as ``name``, with parameters overridden field by field;
    a ``name`` ending in ``.json`` is a fitted model's file (:func:`device_models.fit.load_fitted`).

    Raises DeviceParameterError naming the valid models or parameters.
    """
    load = _file_loader(name)
    if load is not None:
        return load(name, **overrides)
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise DeviceParameterError(
            f"unknown device model {name!r}; available: {', '.join(available())} (or a fitted device's .json file)"
        ) from None
    return cls(**overrides)
