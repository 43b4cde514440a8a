"""Training configuration: one JSON-able dataclass, validated before any training starts.

``TrainConfig.from_dict`` refuses unknown fields and invalid values with one message naming the
field, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import device_models
from pcmsim.networks import FLAVOURS, SNUNetConfig

from .clock import ClockConfig
from .schemes import available_schemes


class ConfigError(ValueError):
    """An invalid training configuration (one line: field, value, expectation)."""


OPTIMIZERS = ("adam", "sgd")
DATASETS_MUSIC = ("jsb", "nottingham", "piano-midi", "musedata")
DRIFT_TIMES_S: dict[str, float] = {
    "1s": 1.0, "1min": 60.0, "1h": 3600.0, "1d": 86400.0, "1w": 7 * 86400.0, "1mo": 30 * 86400.0,
    "1y": 365 * 86400.0,
}


def parse_duration_s(text: str | float) -> float:
    """``"1h"`` → 3600.0; accepts the keys of DRIFT_TIMES_S, a number with s/min/h/d/mo/y, or seconds."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        t = text.strip().lower()
        units = [("min", 60.0), ("mo", 30 * 86400.0), ("s", 1.0), ("h", 3600.0), ("d", 86400.0),
                 ("w", 7 * 86400.0), ("y", 365 * 86400.0)]
        value = math.nan
        for suffix, mult in units:
            if t.endswith(suffix):
                try:
                    value = float(t[: -len(suffix)] or 1) * mult
                except ValueError:
                    value = math.nan
                break
        else:
            try:
                value = float(t)
            except ValueError:
                value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"time {text!r} is invalid: expected e.g. 60, 1min, 1h, 1d, 1mo, 1y (≥ 0)")
    return value


@dataclass(frozen=True)
class TrainConfig:
    """Everything one music-prediction training run needs.

    ``flavour``: ``fp32`` (software), ``pcm`` (pcmsim crossbars, hardware in the loop) or
    ``aihwkit`` (aihwkit analog layers with their own optimiser).
    """

    dataset: str = "jsb"
    data_format: str | None = None
    data_dir: str | None = None
    network: dict[str, Any] = field(default_factory=lambda: {"sizes": [88, 150, 88]})
    flavour: str = "fp32"
    device_model: str = "pcm-nandakumar2018"
    device_params: dict[str, Any] = field(default_factory=dict)
    crossbar: dict[str, Any] = field(default_factory=dict)
    update_scheme: str = "mixed-precision"
    scheme_params: dict[str, Any] = field(default_factory=dict)
    output_bias_init: str = "marginal"
    optimizer: str = "adam"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    grad_clip: float | None = 5.0
    epochs: int = 40
    batch_size: int = 8
    patience: int | None = None
    max_train_sequences: int | None = None
    max_eval_sequences: int | None = None
    seed: int = 0
    clock: dict[str, float] = field(default_factory=dict)
    drift_times: list[str] = field(default_factory=lambda: ["1min", "1h", "1d", "1mo", "1y"])
    compensations: list[str] = field(default_factory=lambda: ["none", "global"])
    snapshot_epochs: list[int] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object of fields, got {type(data).__name__}")
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - valid - {"task", "name"})
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; valid fields: {sorted(valid)}")
        kwargs = {k: v for k, v in data.items() if k in valid}
        if "network" in kwargs and isinstance(kwargs["network"], dict):
            kwargs["network"] = dict(kwargs["network"])
        try:
            cfg = cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        cfg.validate(source)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate("config")
        return cfg

    def net_config(self) -> SNUNetConfig:
        net = dict(self.network)
        if "sizes" in net:
            net["sizes"] = tuple(int(n) for n in net["sizes"])
        return SNUNetConfig(**net)

    def clock_config(self) -> ClockConfig:
        return ClockConfig(**self.clock)

    def drift_times_s(self) -> list[tuple[str, float]]:
        return [(label, parse_duration_s(label)) for label in self.drift_times]

    def validate(self, source: str = "config") -> None:
        def bad(name: str, value: Any, expected: str) -> ConfigError:
            return ConfigError(f"{source}: field {name!r} = {value!r} is invalid: expected {expected}")

        if self.dataset not in DATASETS_MUSIC:
            raise bad("dataset", self.dataset, f"one of {', '.join(DATASETS_MUSIC)}")
        if self.flavour not in FLAVOURS:
            raise bad("flavour", self.flavour, f"one of {', '.join(FLAVOURS)}")
        if self.flavour == "pcm":
            if self.device_model not in device_models.available():
                raise bad("device_model", self.device_model, f"one of {', '.join(device_models.available())}")
            try:
                device_models.get(self.device_model, **self.device_params)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{source}: field 'device_params': {exc}") from None
            if self.update_scheme not in available_schemes():
                raise bad("update_scheme", self.update_scheme, f"one of {', '.join(available_schemes())}")
        if self.output_bias_init not in ("marginal", "threshold"):
            raise bad("output_bias_init", self.output_bias_init, "'marginal' or 'threshold'")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")
        for name in ("lr", "lr_decay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise bad(name, v, "a finite number > 0")
        for name in ("momentum", "weight_decay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise bad(name, v, "a finite number ≥ 0")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise bad("grad_clip", self.grad_clip, "null or a finite number > 0")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise bad(name, v, "an integer ≥ 1")
        for name in ("patience", "max_train_sequences", "max_eval_sequences"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise bad(name, v, "null or an integer ≥ 1")
        try:
            self.net_config()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: field 'network': {exc}") from None
        try:
            self.clock_config()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: field 'clock': {exc}") from None
        for label in self.drift_times:
            try:
                parse_duration_s(label)
            except ConfigError as exc:
                raise ConfigError(f"{source}: field 'drift_times': {exc}") from None
        for mode in self.compensations:
            if mode not in ("none", "global", "per-column"):
                raise bad("compensations", mode, "entries of 'none', 'global', 'per-column'")
