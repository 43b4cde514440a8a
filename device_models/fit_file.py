"""The fitted model's JSON file (``pcmsim device fit --out NAME.json``): the result of a fit, its
writer and its reader (``device_models.get("NAME.json")``)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checks import DeviceParameterError
from .empirical import EmpiricalDevice, EmpiricalParams
from .fileio import atomic_write

FORMAT = "pcmsim-device-fit"
FORMAT_VERSION = 1


@dataclass
class FitResult:
    """What :func:`fit_measurements` found: the model's parameters, and for the report the data
    summaries, the fit quality per quantity and the provenance."""

    params: dict[str, Any]
    quality: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)  # data for the report's figures

    def model(self) -> EmpiricalDevice:
        return EmpiricalDevice(EmpiricalParams(**self.params))



def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def save_fitted(result: FitResult, path: str | os.PathLike) -> Path:
    """Write the fitted model's JSON (atomically): format, model kind, parameters, provenance, quality."""
    params = {k: v for k, v in result.params.items() if k != "csv_path"}
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "model": EmpiricalDevice.name,
           "params": _jsonable(params), "provenance": _jsonable(result.provenance),
           "quality": _jsonable(result.quality)}
    text = json.dumps(doc, indent=1, allow_nan=False)
    return atomic_write(path, lambda fh: fh.write(text + "\n"))


def is_fitted_file(name: str) -> bool:
    """Whether ``name`` names a fitted model's file (ends in ``.json``) rather than a registry name."""
    return isinstance(name, str) and name.lower().endswith(".json")


def load_fitted(path: str | os.PathLike, **overrides: Any) -> EmpiricalDevice:
    """The device model of a fitted JSON file, with parameters overridden field by field.

    Raises :class:`~device_models.checks.DeviceParameterError` with one line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise DeviceParameterError(f"{p}: no such fitted device file (expected the JSON written by "
                                   "`pcmsim device fit`)")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceParameterError(f"{p}: cannot read ({exc.__class__.__name__}); expected a fitted device JSON") \
            from None
    except json.JSONDecodeError as exc:
        raise DeviceParameterError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg}); expected a fitted device file") \
            from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DeviceParameterError(f"{p}: not a fitted device file; expected \"format\": \"{FORMAT}\"")
    if doc.get("version") != FORMAT_VERSION:
        raise DeviceParameterError(f"{p}: version {doc.get('version')!r}; expected {FORMAT_VERSION}")
    if doc.get("model") != EmpiricalDevice.name or not isinstance(doc.get("params"), dict):
        raise DeviceParameterError(f"{p}: model {doc.get('model')!r}; expected {EmpiricalDevice.name!r} with params")
    fields = {f.name: f for f in dataclasses.fields(EmpiricalParams)}
    unknown = sorted(set(doc["params"]) - set(fields))
    if unknown:
        raise DeviceParameterError(f"{p}: unknown parameter(s) {unknown}; expected fields of EmpiricalParams")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc["params"].items()}
    try:
        return EmpiricalDevice(EmpiricalParams(**values), **overrides)
    except DeviceParameterError as exc:
        raise DeviceParameterError(f"{p}: {exc}") from None
    except TypeError as exc:
        raise DeviceParameterError(f"{p}: {exc}") from None
