"""Sweep files: a base config, axes over its fields, seeds; expanded into validated points.

A sweep file is a JSON object::

    {
      "name": "jsb-52800-weight-scale",                 optional; default: the file's name
      "description": "...",                             optional free text
      "base": "jsb-52800",                              a named experiment, a config file (relative
                                                        to the sweep file's folder) or a config object
      "overrides": {"epochs": 20},                      optional; dotted paths, applied to every point
      "axes": {"crossbar.weight_scale": [0.03, 0.05]},  dotted paths into the config's JSON
      "mode": "grid",                                   "grid" (every combination) or "zip" (paired)
      "seeds": 5                                        N (seeds 0 … N-1) or a list; default: the base's
    }

An axis named by several comma-separated paths moves them together: ``"update_scheme,crossbar.
devices_per_sign": [["mixed-precision", 1], ["multi-device", 2]]`` (a zip inside a grid).

A *setting* is one combination of axis values; a *point* is a setting with one seed, i.e. one
ordinary run config. Every point's config is built and validated here, before anything runs, and
every error is one line naming the file, the field, the value and what is expected. A point's id is
a hash of its full config, so a point folder is reused exactly when its config is unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcmsim.fileio import read_json
from pcmsim.typedconfig import ConfigError, bad_value, set_path

from .config import RunConfig
from .tasks import TASKS, load_config

FIELDS = ("name", "description", "base", "overrides", "axes", "mode", "seeds")
MODES = ("grid", "zip")
ID_LENGTH = 12


class SweepError(ConfigError):
    """An invalid sweep file (one line: file, field, value, expectation)."""


@dataclass(frozen=True)
class Point:
    """One run of a sweep: a setting (axis values) with one seed.

    Attributes:
        id: the short hash of the point's full config (its folder name under ``points/``).
        setting: the index of the point's setting in :attr:`Sweep.settings`.
        values: axis path → value of the setting.
        seed: the run's seed (its config's ``seed`` field).
        config: the point's validated run config.
    """

    id: str
    setting: int
    values: dict[str, Any]
    seed: int
    config: RunConfig

    def label(self) -> str:
        return setting_label(self.values) + f" seed={self.seed}"


@dataclass(frozen=True)
class Sweep:
    """An expanded sweep file: its settings and its points, every config validated."""

    name: str
    source: str
    description: str
    base: str
    axes: dict[str, list[Any]]
    mode: str
    seeds: list[int]
    task: str
    settings: list[dict[str, Any]]
    points: list[Point] = field(repr=False)

    @property
    def metric(self) -> str:
        return TASKS[self.task].metric

    @property
    def higher_is_better(self) -> bool:
        return TASKS[self.task].higher_is_better

    def manifest(self) -> dict[str, Any]:
        """What ``sweep.json`` holds: everything ``sweep-report`` needs, without the configs."""
        return {
            "name": self.name, "source": self.source, "description": self.description, "base": self.base,
            "axes": self.axes, "mode": self.mode, "seeds": self.seeds, "task": self.task, "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "settings": [{"index": i, "values": v, "label": setting_label(v)} for i, v in enumerate(self.settings)],
            "points": [{"id": p.id, "setting": p.setting, "seed": p.seed} for p in self.points],
        }


def setting_label(values: dict[str, Any]) -> str:
    """``crossbar.weight_scale=0.05 device_model=pcm-joshi2020`` (``base`` when there are no axes)."""
    if not values:
        return "base"
    return " ".join(f"{k}={_short(v)}" for k, v in values.items())


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def point_id(config: RunConfig) -> str:
    """The first 12 hex digits of the SHA-256 of the config's canonical JSON."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def read_sweep_file(path: str | Path) -> dict[str, Any]:
    """The JSON object of a sweep file, or a one-line :class:`SweepError`."""
    p = Path(path)
    data = read_json(p, "sweep file", SweepError)
    if not isinstance(data, dict):
        raise SweepError(f"{p}: expected a JSON object with 'base' and 'axes', got {type(data).__name__}")
    return data


def load_sweep(spec: str | Path | dict[str, Any], *, source: str | None = None,
               overrides: dict[str, Any] | None = None, seeds: int | list[int] | None = None) -> Sweep:
    """Read, check and expand a sweep (a file or its JSON object).

    ``overrides`` (dotted path → value, e.g. from ``--set``) apply to every point after the file's
    own ``overrides`` and before the axes; ``seeds`` replaces the file's ``seeds``. Raises
    :class:`SweepError` (a ``ValueError``) with one line on any invalid field or point.
    """
    if isinstance(spec, (str, Path)):
        src = source or str(spec)
        data, folder = dict(read_sweep_file(spec)), Path(spec).parent
        default_name = Path(spec).stem
    else:
        src = source or "sweep"
        data, folder, default_name = dict(spec), Path.cwd(), "sweep"
        if not isinstance(spec, dict):
            raise SweepError(f"{src}: expected a JSON object with 'base' and 'axes', got {type(spec).__name__}")
    if seeds is not None:
        data["seeds"] = seeds
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise SweepError(f"{src}: unknown field {unknown[0]!r}; valid fields: {', '.join(FIELDS)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise _bad(src, "name", name, "a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _bad(src, "description", description, "a string")
    if "base" not in data:
        raise SweepError(f"{src}: field 'base' is missing: expected a named experiment, a config file or an object")
    base_label, base = _base_config(data["base"], src, folder)
    fixed = _paths(data.get("overrides", {}), src, "overrides", base)
    for key, value in (overrides or {}).items():
        _check_path(key, "--set", "", base)
        fixed[key] = value
    axes = _axes(data.get("axes", {}), src, base)
    clash = sorted({p for key in axes for p in axis_paths(key)} & set(fixed))
    if clash:
        raise _bad(src, f"overrides.{clash[0]}", fixed[clash[0]], "a path that is not also an axis")
    mode = data.get("mode", "grid")
    if mode not in MODES:
        raise _bad(src, "mode", mode, "'grid' or 'zip'")
    seeds = _seeds(data.get("seeds"), src, base)
    settings = _settings(axes, mode, src)
    for key, value in fixed.items():
        base = set_path(base, key, value)
    task = str(base.get("task", "music"))
    points: list[Point] = []
    seen: dict[str, str] = {}
    for index, values in enumerate(settings):
        for seed in seeds:
            data_i = base
            for key, value in values.items():
                data_i = set_path(data_i, key, value)
            data_i = set_path(data_i, "seed", seed)
            where = f"{src} point ({setting_label(values)} seed={seed})"
            config = load_config(data_i, source=where)
            pid = point_id(config)
            if pid in seen:
                raise SweepError(f"{src}: points ({seen[pid]}) and ({setting_label(values)} seed={seed}) have the "
                                 f"same config: expected distinct axis values")
            seen[pid] = f"{setting_label(values)} seed={seed}"
            points.append(Point(pid, index, dict(values), seed, config))
    return Sweep(name=name, source=src, description=description, base=base_label, axes=axes, mode=mode,
                 seeds=seeds, task=task, settings=settings, points=points)


def _bad(source: str, path: str, value: Any, expected: str) -> SweepError:
    return SweepError(str(bad_value(source, path, value, expected)))


def _base_config(base: Any, src: str, folder: Path) -> tuple[str, dict[str, Any]]:
    """The base's label and its full config as JSON data (every field, defaults included)."""
    from .experiments import EXPERIMENTS, experiment_config

    if isinstance(base, dict):
        return "inline config", load_config(base, source=f"{src} base").to_dict()
    if not isinstance(base, str) or not base:
        raise _bad(src, "base", base, "a named experiment, a config file or a config object")
    if base in EXPERIMENTS:
        return base, experiment_config(base).to_dict()
    path = Path(base) if Path(base).is_absolute() else folder / base
    if not path.is_file():
        raise _bad(src, "base", base, f"a named experiment ({', '.join(sorted(EXPERIMENTS))}) or a config file "
                   f"(relative to the sweep file's folder)")
    return base, load_config(path).to_dict()


def _check_path(key: Any, src: str, where: str, base: dict[str, Any]) -> None:
    """A dotted path whose parents are objects of the base config (the last name may be new in a
    free object such as ``device_params``; the config's own check refuses unknown fields)."""
    prefix = f"{where}." if where else ""
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise _bad(src, where or "path", key, "a dotted path into the config such as 'crossbar.weight_scale'")
    parts = key.split(".")
    if parts[0] not in base:
        raise SweepError(f"{src}: field '{prefix}{key}': {parts[0]!r} is not a field of a "
                         f"{base.get('task', 'music')} config; valid fields: {', '.join(sorted(base))}")
    if parts[0] == "seed":
        raise SweepError(f"{src}: field '{prefix}seed': give the seeds in the sweep's 'seeds' field")
    node: Any = base
    for depth, part in enumerate(parts[:-1]):
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise SweepError(f"{src}: field '{prefix}{key}': {'.'.join(parts[: depth + 1])!r} is not an object in "
                             f"the base config")


def _paths(value: Any, src: str, where: str, base: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(src, where, value, "an object of dotted paths and values")
    for key in value:
        _check_path(key, src, where, base)
    return dict(value)


def axis_paths(axis: str) -> list[str]:
    """The config paths of an axis: ``"a,b"`` (a linked axis) moves ``a`` and ``b`` together."""
    return [part.strip() for part in axis.split(",")]


def _axes(value: Any, src: str, base: dict[str, Any]) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        raise _bad(src, "axes", value, "an object of dotted paths and lists of values")
    seen: set[str] = set()
    for key, values in value.items():
        paths = axis_paths(key) if isinstance(key, str) else [key]
        for path in paths:
            _check_path(path, src, "axes", base)
            if path in seen:
                raise _bad(src, f"axes.{key}", values, f"one axis per path ({path!r} is in two axes)")
            seen.add(path)
        if not isinstance(values, list) or not values:
            raise _bad(src, f"axes.{key}", values, "a non-empty list of values")
        if len(paths) > 1 and not all(isinstance(v, list) and len(v) == len(paths) for v in values):
            raise _bad(src, f"axes.{key}", values, f"a list of [{', '.join(paths)}] value lists")
    return dict(value)


def _seeds(value: Any, src: str, base: dict[str, Any]) -> list[int]:
    if value is None:
        return [int(base.get("seed", 0))]
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise _bad(src, "seeds", value, "a number of seeds ≥ 1 or a list of seeds")
        return list(range(value))
    if (isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in value) and len(set(value)) == len(value)):
        return list(value)
    raise _bad(src, "seeds", value, "a number of seeds ≥ 1 or a list of distinct integers ≥ 0")


def _settings(axes: dict[str, list[Any]], mode: str, src: str) -> list[dict[str, Any]]:
    """Every setting as path → value (linked axes spread over their paths)."""
    if not axes:
        return [{}]
    keys = list(axes)
    if mode == "zip":
        lengths = {k: len(v) for k, v in axes.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
            raise SweepError(f"{src}: field 'axes': a zip sweep needs axes of equal lengths, got {shown}")
        combos: Any = zip(*axes.values())
    else:
        for key, values in axes.items():
            texts = [json.dumps(v, sort_keys=True) for v in values]
            if len(set(texts)) != len(texts):
                raise _bad(src, f"axes.{key}", values, "distinct values in a grid sweep")
        combos = itertools.product(*axes.values())
    settings = []
    for combo in combos:
        setting: dict[str, Any] = {}
        for key, value in zip(keys, combo):
            paths = axis_paths(key)
            setting.update(zip(paths, value) if len(paths) > 1 else [(key, value)])
        settings.append(setting)
    return settings
