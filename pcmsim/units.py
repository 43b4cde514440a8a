"""Simulated durations: ``"1h"`` → 3600 s, the labels of drift tables."""

from __future__ import annotations

import math

from .typedconfig import ConfigError

__all__ = ["DRIFT_TIMES_S", "parse_duration_s"]

DRIFT_TIMES_S: dict[str, float] = {
    "1s": 1.0, "1min": 60.0, "1h": 3600.0, "1d": 86400.0, "1w": 7 * 86400.0, "1mo": 30 * 86400.0,
    "1y": 365 * 86400.0,
}


def parse_duration_s(text: str | float) -> float:
    """``"1h"`` → 3600.0; accepts the keys of DRIFT_TIMES_S, a number with s/min/h/d/mo/y, or seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str):
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
    else:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"time {text!r} is invalid: expected e.g. 60, 1min, 1h, 1d, 1mo, 1y (≥ 0)")
    return value
