"""Checks of a finished fit (``pcmsim device fit``): what makes it fail loudly, what makes it warn.

A fit is refused (:class:`FitError`, one line naming the file and the quantity)
when an optimiser did not converge, when a fitted parameter sits at a bound of its search range
where that bound is no physical limit, or when a value is not physical:

- G_max ≤ 0 µS or > :data:`G_MAX_LIMIT_US`;
- a tabulated mean SET step larger than G_max in size (the reads cannot hold such steps);
- a drift exponent ν < 0 or > 1 anywhere in the ν tables;
- a read-noise σ larger than the conductance it is read at (the spread exceeds the signal) at any
  tabulated G ≥ 10 % of the largest.

Warnings (kept in the quality record and the report; a refusal under ``strict``): a drift
reference time t0 at an end of its search range; a fitted model that, simulated through the
measured protocol with its read noise, misses the data's mean programming curve or its spread by
more than the tolerance (:data:`device_models.fit.GOF_MEAN_TOLERANCE`, ``GOF_SPREAD_TOLERANCE``,
or more standard errors of the comparison than ``GOF_STANDARD_ERRORS`` on a small file): a law the
model does not have; pulse-response reads that reach more than :data:`READ_RANGE_MARGIN` times the
top of the read-noise file's range (its law extrapolated there).
"""

from __future__ import annotations

from typing import Any

from .checks import DeviceParameterError


class FitError(DeviceParameterError):
    """Measurements that cannot be fitted (one line, naming the file)."""


G_MAX_LIMIT_US = 1000.0
"""Largest physical G_max, µS (1 mS; issue 23's bound: PCM cells are read at 0.1–100 µS, e.g.
Nandakumar et al. 2018 G_max = 12 µS, Joshi et al. 2020 G_max = 25 µS)."""
READ_RANGE_MARGIN = 1.25
"""The read-noise law is extrapolated over at most this factor above the read-noise file's most
conductive device before the fit warns, judged at the 99th percentile of the pulse-response reads
(ours: a quarter of the range; a file over 5–90 % of G_max, as ``pcmsim device measure`` writes, covers
a device that saturates at G_max)."""
READ_RANGE_QUANTILE = 0.99
"""The quantile of the pulse-response reads compared with the read-noise file's range (ours: a few
outlying reads do not warn)."""
SIGNAL_FRACTION = 0.1
"""The read spread is compared with the signal above this fraction of the table's largest G (ours:
near 0 µS any σ exceeds G)."""


def _error(path: str, text: str) -> Exception:
    return FitError(f"{path}: {text}")


def check_pulse(path: str, params: dict[str, Any], quality: dict[str, Any]) -> None:
    """Convergence, bounds and physical values of the pulse-response fit (raises on the first)."""
    for step in quality.get("optimizer_runs", []):
        if not step["converged"]:
            raise _error(path, f"pulse-response fit ({step['name']}) did not converge: {step['message']}; expected "
                               "reads in one unit and no outliers (check the file's largest and smallest reads)")
        for name in step.get("at_bound", []):
            raise _error(path, f"pulse-response fit ({step['name']}): {name} at the bound of its search range; "
                               "expected an interior value (the data do not determine it)")
    g_max = float(params["g_max_us"])
    if not 0.0 < g_max <= G_MAX_LIMIT_US:
        raise _error(path, f"fitted g_max_us = {g_max:.6g} µS is not physical; expected 0 < G_max ≤ "
                           f"{G_MAX_LIMIT_US:g} µS (a read in another unit, or an outlier: the largest read is "
                           f"{quality.get('largest_read_us', float('nan')):.6g} µS)")
    big = max(abs(float(v)) for v in params["dg_mean_us"])
    if big > g_max:
        raise _error(path, f"fitted mean SET step {big:.6g} µS is larger than G_max = {g_max:.6g} µS; expected "
                           "steps within the conductance range (reads in mixed units?)")


def check_drift(path: str, params: dict[str, Any], quality: dict[str, Any], warnings: list[str]) -> None:
    """ν in [0, 1] everywhere; t0 at an end of its search range is a warning."""
    for v in (*params.get("nu_mean", ()), params.get("nu", 0.0)):
        if not 0.0 <= float(v) <= 1.0:
            raise _error(path, f"fitted drift exponent ν = {float(v):.6g} is not physical; expected 0 ≤ ν ≤ 1 "
                               "(times in another unit, or reads that rise with time?)")
    lo, hi = quality["t0_search_s"]
    t0 = float(quality["t0_s"])
    if t0 <= lo * 1.01 or t0 >= hi * 0.99:
        warnings.append(f"{path}: drift t0 = {t0:.4g} s is at the end of its search range [{lo:.3g}, {hi:.3g}] s; "
                        "the data do not determine it (reads from earlier times would)")


def check_pulse_quality(path: str, quality: dict[str, Any], warnings: list[str]) -> None:
    """The model against the data through the measured protocol: a warning per curve (mean, spread)
    whose largest error exceeds its tolerance."""
    for name, c in quality["curve_checks"].items():
        if c["error"] > c["tolerance"]:
            what = "mean programming curve" if name == "mean" else "spread (std) of G"
            warnings.append(f"{path}: the fitted model's {what} is {c['error']:.1%} off the data's after pulse "
                            f"{c['pulse']}; expected within {c['tolerance']:.1%} (the data follow a law the "
                            "model does not have: see the report's figures)")


def refuse_warnings(strict: bool, warnings: list[str]) -> None:
    """Under ``strict``, the first warning as a :class:`FitError`."""
    if strict and warnings:
        raise FitError(f"{warnings[0]} (refused under --strict)")


def check_read_noise(path: str, params: dict[str, Any]) -> None:
    """σ(G) ≤ G over the measured signal range."""
    g, s = params["read_noise_g_us"], params["read_noise_sigma_us"]
    top = max(g) if g else 0.0
    for gi, si in zip(g, s):
        if gi >= SIGNAL_FRACTION * top and si > gi:
            raise _error(path, f"fitted read-noise σ = {si:.6g} µS at G = {gi:.6g} µS is larger than the signal; "
                               "expected σ < G (reads of different devices mixed under one id?)")


def check_read_noise_range(path: str, quality: dict[str, Any], g_pulse_us: float, warnings: list[str]) -> None:
    """A warning where the pulse-response reads (their :data:`READ_RANGE_QUANTILE` quantile,
    ``g_pulse_us``) lie above :data:`READ_RANGE_MARGIN` times the read-noise file's most conductive device."""
    top = quality["g_range_us"][1]
    if g_pulse_us > READ_RANGE_MARGIN * top:
        warnings.append(f"{path}: the read noise is measured on devices up to {top:.4g} µS and 1 % of the "
                        f"pulse-response reads lie above {g_pulse_us:.4g} µS: the read-noise law is extrapolated "
                        f"there; expected read-noise devices over the whole range (up to ≥ "
                        f"{g_pulse_us / READ_RANGE_MARGIN:.4g} µS)")
