"""Name → device model. ``get("pcm-joshi2020", g_max_us=20.0)`` builds one with overrides;
``get("my-device.json")`` loads a fitted model's file (``pcmsim device fit``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .base import DeviceModel, DeviceParams
from .checks import DeviceParameterError
from .typedconfig import did_you_mean

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
    return _model_class(name)(**overrides)


def resolve(model: DeviceModel | str, params: DeviceParams | Mapping[str, Any] | None = None) -> DeviceModel:
    """The one way to get a device model from what a user gives: a registered name or a fitted model's
    file with parameters ``params`` (overrides by field name, or the model's whole ``Params``, e.g. a run
    config's ``device_params``), or a :class:`DeviceModel` instance as is.

    Raises:
        DeviceParameterError: an unknown name or parameter; parameters given with an instance, or a
            ``Params`` of another model.
        TypeError: anything else.
    """
    if isinstance(model, str):
        if isinstance(params, DeviceParams):
            cls, base = _class_and_defaults(model)
            _check_params_type(model, params, type(base))
            return cls(params)
        return get(model, **dict(params or {}))
    if not isinstance(model, DeviceModel):
        raise TypeError(f"device model {model!r} is invalid: expected a DeviceModel, {describe_valid()}")
    if params:
        raise DeviceParameterError(f"device parameters {sorted(_names(params))} are only taken with a device model "
                                   f"name or file; got a {type(model).__name__} instance (build it with them)")
    return model


def _names(params: DeviceParams | Mapping[str, Any]) -> list[str]:
    return list(params) if isinstance(params, Mapping) else [f.name for f in dataclasses.fields(params)]


def _class_and_defaults(name: str) -> tuple[type[DeviceModel], DeviceParams]:
    """The model class of ``name`` and its own parameters (a class's defaults, a fitted file's values)."""
    load = _file_loader(name)
    if load is not None:
        model = load(name)
        return type(model), model.params
    cls = _model_class(name)
    return cls, cls.Params()


def _check_params_type(name: str, params: DeviceParams, expected: type) -> None:
    if type(params) is not expected:
        raise DeviceParameterError(f"device parameters {type(params).__name__} are not those of device model "
                                   f"{name!r}: expected {expected.__name__}")


def _model_class(name: str) -> type[DeviceModel]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DeviceParameterError(
            f"unknown device model {name!r}; available: {', '.join(available())} (or a fitted device's .json file)"
            + did_you_mean(name, available())
        ) from None


def params_for(name: str, params: DeviceParams | Mapping[str, Any] | None = None) -> DeviceParams:
    """The typed, checked parameters of device model ``name`` (a registered name or a fitted file) with
    ``params`` (overrides by field name, or a ``Params`` instance of that model): the ``Params``
    dataclass a run config's ``device_params`` holds. A registered model is not built for this
    (:meth:`DeviceModel.make_params`: no state, and ``empirical``'s ``csv_path`` is fitted when the model
    is built, not here). Raises :class:`DeviceParameterError` in one line."""
    load = _file_loader(name)
    if load is not None:
        return resolve(name, params).params
    cls = _model_class(name)
    if isinstance(params, DeviceParams):
        _check_params_type(name, params, cls.Params)
        return cls.make_params(params)
    return cls.make_params(None, **dict(params or {}))


def param_overrides(name: str, params: DeviceParams) -> dict[str, Any]:
    """The fields of ``params`` that differ from device model ``name``'s own (its defaults, or a fitted
    file's values), as JSON data: what a config file holds of ``device_params``."""
    base = _class_and_defaults(name)[1]
    out: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if value != getattr(base, f.name):
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
