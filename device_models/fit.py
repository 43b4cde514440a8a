"""Fit a complete device model to measurements: ``pcmsim device fit``.

The fitted model is an ``empirical`` device (:class:`~device_models.empirical.EmpiricalDevice`)
whose tables and constants come from up to three measurement files
(:mod:`device_models.measurements`), saved as a JSON file that loads wherever a model name is
accepted (``device_models.get("my-device.json")``, ``--device-model my-device.json``).

**Pulse response** (``device,pulse,g_us``): :mod:`device_models.fit_pulse`, a state-space
likelihood of the reads (latent conductance under SET steps of mean ``M(G)`` and cycle-to-cycle std
``S(G)``, a device-to-device factor and pulse-history terms kept only where a likelihood-ratio test
keeps them; read noise on every read, from the read-noise file when given). RESET: the pulse-0
reads with the read noise taken out. G_max: the saturation level (the clip the reads show, or
where the mean step reaches 0), not the largest read.

**Drift** (``device,t_s,g_us``, ``t_s`` since programming). Two laws, ``onset``
``G(t) = G·max(t/t0, 1)^(−ν)`` (``pcm-nandakumar2018``) and ``shifted`` ``G(t) = G·((t + t0)/t0)^(−ν)``
(``pcm-joshi2020``): for a given ``t0`` each device's ``ν`` and ``log G`` are a linear least-squares
fit of ``log g`` on ``log x(t)``; ``t0`` minimises the total squared residual (a grid, then scipy's
bounded Brent search); the law is chosen by BIC, and where the two are within :data:`BIC_TIE` (no
evidence either way) the one with the smaller extrapolated loss before the first read is kept. A
``t0`` at an end of its search range is a warning (a refusal under ``strict``). ``ν`` is then tabulated
against the programmed conductance (the first read) by deciles: the mean, and the spread with
the per-device estimation variance subtracted.

**Read noise** (``device,t_s,g_us``, repeated reads). Per device the residual variance after a
linear trend in time; pooled in conductance bins; ``σ(G) = b + c·G^p`` fitted with scipy's
``curve_fit`` (weighted by each bin's standard error) and tabulated. Reads that pile up at the
smallest or largest value are taken as clipped there (the model clips its reads the same way);
devices with such reads are left out of the σ fit.

Not fitted: a time dependence of the read noise (σ is taken at the measurement's delay), a
history dependence of drift, and any drift in the pulse-response reads (taken as read right after
each pulse). Every fit is checked (:mod:`.fit_checks`): non-convergence, a parameter at a bound or
a non-physical value raises :class:`FitError`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import fit_checks
from .checks import DeviceParameterError
from .empirical import CSVFormatError, EmpiricalDevice, EmpiricalParams
from .fileio import atomic_write
from .fit_checks import FitError
from .fit_pulse import (  # noqa: F401 - the constants are documented here too
    D2D_LR_THRESHOLD,
    D2D_NODES,
    HISTORY_LR_THRESHOLD,
    READ_FLOOR_US,
    SMOOTHING,
    TIE_MIN_COUNT,
    fit_pulse_response,
)
from .measurements import (
    G_UNITS,
    KINDS,
    T_UNITS,
    PulseData,
    TimeSeriesData,
    read_pulse_csv,
    read_time_series_csv,
)

FORMAT = "pcmsim-device-fit"
FORMAT_VERSION = 1
BIC_TIE = 2.0
"""A BIC difference below this is no evidence for one drift law over the other (Kass & Raftery 1995,
J. Am. Stat. Assoc. 90:773: 0-2 "not worth more than a bare mention")."""
SIM_DEVICES = 20_000
"""Devices the fit report simulates to compare the model with the data (ours)."""


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


# ---- helpers ----------------------------------------------------------------------------------
def _ties(x: np.ndarray, value: float) -> int:
    return int(np.count_nonzero(np.abs(x - value) <= 1e-9 * max(1.0, abs(value))))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- pulse response ---------------------------------------------------------------------------
def fit_pulse(data: PulseData, *, n_knots: int = 16, n_quantiles: int = 101,
              noise_table: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the SET statistics, the history term, the device-to-device part, RESET and G_max under
    read noise on every read (:func:`device_models.fit_pulse.fit_pulse_response`).

    Returns ``(params, quality)``; ``params`` are fields of :class:`EmpiricalParams`."""
    return fit_pulse_response(data, n_knots=n_knots, noise_table=noise_table, n_quantiles=n_quantiles)


def simulate_pulses(model: Any, reset_shape: int, n_pulses: int, seed: int = 0, *,
                    read_noise: bool = False) -> np.ndarray:
    """``[n_pulses + 1, devices]`` conductances from RESET over ``n_pulses`` SET pulses (noise-free
    reads, or each read with the model's read noise: the protocol of a measured file)."""
    gen = torch.Generator().manual_seed(seed)
    state = model.init_state((reset_shape,), generator=gen)
    out = [model.read(state, 0.0, gen, noise=read_noise).numpy().copy()]
    for _ in range(n_pulses):
        model.set_pulse(state, None, 0.0, gen)
        out.append(model.read(state, 0.0, gen, noise=read_noise).numpy().copy())
    return np.stack(out)


def programming_curves(traces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std and count of the reads after each pulse number (columns of ``traces``, NaN = absent)."""
    cnt = np.sum(~np.isnan(traces), axis=0)
    return np.nanmean(traces, axis=0), np.nanstd(traces, axis=0, ddof=1), cnt


def pulse_quality(data: PulseData, model: EmpiricalDevice, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Data against the fitted model over the measured protocol (RESET, the same pulses, every read
    with the model's read noise): the programming curve's mean and spread per pulse and a two-sample
    KS test of the read after 1, 5 and the last pulse."""
    import scipy.stats  # noqa: PLC0415

    mean_d, std_d, cnt = programming_curves(data.traces)
    last = int(np.max(np.nonzero(cnt >= max(2, 0.5 * cnt[0]))[0]))
    sim = simulate_pulses(model, max(SIM_DEVICES, 4 * data.traces.shape[0]), last, seed, read_noise=True)
    mean_m, std_m = sim.mean(1), sim.std(1, ddof=1)
    ks = {}
    for k in sorted({1, min(5, last), last}):
        col = data.traces[:, k]
        col = col[~np.isnan(col)].astype(np.float32)  # as the model's float32 (clipped reads tie)
        r = scipy.stats.ks_2samp(col, sim[k].astype(np.float32))
        ks[str(k)] = {"statistic": float(r.statistic), "p_value": float(r.pvalue)}
    ks_ = slice(1, last + 1)
    quality = {
        "pulses_compared": last,
        "mean_curve_max_rel_error": float(np.max(np.abs(mean_m[ks_] - mean_d[ks_]) / np.abs(mean_d[ks_]))),
        "spread_max_rel_error": float(np.max(np.abs(std_m[ks_] - std_d[ks_]) / std_d[ks_])),
        "ks_after_pulses": ks,
    }
    figures = {"k": np.arange(last + 1), "mean_data": mean_d[:last + 1], "std_data": std_d[:last + 1],
               "mean_model": mean_m, "std_model": std_m, "sim": sim}
    return quality, figures


# ---- drift ------------------------------------------------------------------------------------
def _per_device_regression(dev: np.ndarray, x: np.ndarray, y: np.ndarray, nd: int):
    """Per-device least squares ``y = c + b·x``: (b, SSE, Sxx about the mean, n)."""
    bc = lambda w: np.bincount(dev, weights=w, minlength=nd)  # noqa: E731
    cnt = np.bincount(dev, minlength=nd).astype(float)
    sx, sy = bc(x), bc(y)
    sxx = bc(x * x) - sx * sx / cnt
    sxy = bc(x * y) - sx * sy / cnt
    syy = bc(y * y) - sy * sy / cnt
    good = sxx > 1e-12
    b = np.where(good, sxy / np.where(good, sxx, 1.0), 0.0)
    sse = np.clip(syy - b * sxy, 0.0, None)
    return b, sse, sxx, cnt


def _drift_x(form: str, t: np.ndarray, t0: float) -> np.ndarray:
    return np.log(np.maximum(t / t0, 1.0)) if form == "onset" else np.log1p(t / t0)


def fit_drift(data: TimeSeriesData, *, n_bins: int = 10) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Fit t0, the drift law and the ν tables; returns ``(params, quality, figure data)``."""
    import scipy.optimize  # noqa: PLC0415

    nd = data.n_devices
    g, t, dev = data.g_us, data.t_s, data.device
    lo_v, hi_v = float(g.min()), float(g.max())
    keep = g > 0  # a read of 0 has no logarithm (and is a clipped read anyway)
    if _ties(g, lo_v) >= TIE_MIN_COUNT:
        keep &= np.abs(g - lo_v) > 1e-9 * max(1.0, lo_v)
    if _ties(g, hi_v) >= TIE_MIN_COUNT:
        keep &= np.abs(g - hi_v) > 1e-9 * max(1.0, hi_v)
    first = np.r_[0, np.nonzero(np.diff(dev))[0] + 1]  # grouped per device, time increasing
    g_prog = g[first]
    t_first = t[first]
    y = np.log(g[keep])
    tk, dk = t[keep], dev[keep]
    t_pos = tk[tk > 0]
    if t_pos.size == 0:
        raise FitError(f"{data.path}: every read is at t = 0; expected reads at increasing times after programming")
    lo_t, hi_t = math.log(float(t_pos.min()) / 10.0), math.log(float(t_pos.max()))

    def sse(form: str, log_t0: float) -> float:
        return float(_per_device_regression(dk, _drift_x(form, tk, math.exp(log_t0)), y, nd)[1].sum())

    fits = {}
    for form in ("onset", "shifted"):
        grid = np.linspace(lo_t, hi_t, 41)
        vals = [sse(form, v) for v in grid]
        j = int(np.argmin(vals))
        a, b = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
        r = scipy.optimize.minimize_scalar(lambda v, form=form: sse(form, v), bounds=(a, b), method="bounded",
                                           options={"xatol": 1e-4})
        best = (float(r.fun), float(r.x)) if r.fun <= vals[j] else (float(vals[j]), float(grid[j]))
        t_min = float(t_pos.min())
        if form == "onset" and best[1] < math.log(t_min):
            # below the first read the onset law's t0 only shifts log G (every read has t ≥ t0): the
            # data cannot place it, and the largest such t0 extrapolates no loss before the first read
            at_first = sse(form, math.log(t_min))
            if at_first <= best[0] * (1.0 + 1e-9) + 1e-12:
                best = (at_first, math.log(t_min))
        fits[form] = {"sse": best[0], "t0_s": math.exp(best[1])}
    # the law by a penalised criterion (BIC; both laws have t0 and per device ν and log G, so the
    # penalty is equal and ΔBIC = n·log(SSE_1/SSE_2)); a difference under BIC_TIE is no evidence
    # (Kass & Raftery 1995, J. Am. Stat. Assoc. 90:773, "not worth more than a bare mention"): then
    # the law that extrapolates the smaller unmeasured loss before the first read is kept
    n_fit = int(keep.sum())
    t_gap = float(np.median(t_first))
    for form_, f_ in fits.items():
        f_["bic"] = n_fit * math.log(max(f_["sse"], 1e-300) / n_fit) + (2 * nd + 1) * math.log(n_fit)
        nu_f = -_per_device_regression(dk, _drift_x(form_, tk, f_["t0_s"]), y, nd)[0]
        f_["gap_before_first_read"] = float(1.0 - math.exp(-float(np.mean(nu_f)) * float(
            _drift_x(form_, np.array([t_gap]), f_["t0_s"])[0])))
    by_bic = sorted(fits, key=lambda k: fits[k]["bic"])
    if fits[by_bic[1]]["bic"] - fits[by_bic[0]]["bic"] >= BIC_TIE:
        form, reason = by_bic[0], f"BIC lower by {fits[by_bic[1]]['bic'] - fits[by_bic[0]]['bic']:.3g}"
    else:
        form = min(fits, key=lambda k: abs(fits[k]["gap_before_first_read"]))
        reason = (f"BIC within {BIC_TIE:g} (no evidence either way): the law with the smaller extrapolated loss "
                  "before the first read")
    t0 = fits[form]["t0_s"]
    slope, sse_d, sxx, cnt = _per_device_regression(dk, _drift_x(form, tk, t0), y, nd)
    valid = (sxx > 1e-12) & (cnt >= 3) & (g_prog > 0)
    if int(valid.sum()) < 2:
        raise FitError(f"{data.path}: fewer than 2 devices have reads after t0 = {t0:.3g} s; expected reads spanning "
                       "the drift")
    nu_d = -slope
    se2 = np.where(valid, sse_d / np.maximum(cnt - 2, 1) / np.where(valid, sxx, 1.0), np.nan)
    gp, nv, sv = g_prog[valid], nu_d[valid], se2[valid]
    edges = np.quantile(gp, np.linspace(0, 1, n_bins + 1))
    idx = np.clip(np.searchsorted(edges, gp, side="right") - 1, 0, n_bins - 1)
    grid, mean, std, counts = [], [], [], []
    for bi in range(n_bins):
        sel = idx == bi
        if sel.sum() < 2:
            continue
        grid.append(float(gp[sel].mean()))
        mean.append(float(nv[sel].mean()))
        std.append(float(math.sqrt(max(float(nv[sel].var(ddof=1) - sv[sel].mean()), 0.0))))
        counts.append(int(sel.sum()))
    order = np.argsort(grid)
    grid_a = np.array(grid)[order]
    keep_pts = np.r_[True, np.diff(grid_a) > 1e-9]
    params = {
        "t0_s": t0, "drift_form": form, "nu": float(nv.mean()),
        "nu_grid_us": tuple(float(v) for v in grid_a[keep_pts]),
        "nu_mean": tuple(float(np.array(mean)[order][keep_pts][j]) for j in range(int(keep_pts.sum()))),
        "nu_std": tuple(float(np.array(std)[order][keep_pts][j]) for j in range(int(keep_pts.sum()))),
    }
    n_reads = int(keep.sum())
    y_var = float(np.var(y)) * n_reads
    quality = {
        "devices": nd, "reads": n_reads, "law": form, "t0_s": t0,
        "sse_by_law": {k: v["sse"] for k, v in fits.items()},
        "bic_by_law": {k: v["bic"] for k, v in fits.items()}, "law_choice": reason,
        "t0_by_law_s": {k: v["t0_s"] for k, v in fits.items()},
        "t0_search_s": (math.exp(lo_t), math.exp(hi_t)),
        "first_read_s": t_gap, "gap_before_first_read": fits[form]["gap_before_first_read"],
        "rms_log_residual": math.sqrt(float(sse_d.sum()) / max(n_reads - 2 * nd, 1)),
        "r2": 1.0 - float(sse_d.sum()) / y_var if y_var > 0 else 1.0,
        "nu_mean": float(nv.mean()), "nu_std_between_devices": float(nv.std(ddof=1)),
        "nu_bins": [{"g_us": grid[j], "nu_mean": mean[j], "nu_std": std[j], "devices": counts[j]} for j in order],
        "optimizer": "grid over log t0, then scipy minimize_scalar (bounded)",
    }
    # per-decile ratios G(t)/G(t_prog): the data divided by each device's fitted G at programming
    # (the intercept of its log G on x(t), x(t_prog) = 0), so the loss before the first read shows
    x_all = _drift_x(form, tk, t0)
    cnt_k = np.maximum(np.bincount(dk, minlength=nd), 1)
    log_g0 = (np.bincount(dk, weights=y, minlength=nd) - slope * np.bincount(dk, weights=x_all, minlength=nd)) / cnt_k
    deciles = np.clip(np.searchsorted(np.quantile(g_prog, np.linspace(0, 1, 11)), g_prog, side="right") - 1, 0, 9)
    times = np.unique(t)
    ratio = g / np.exp(log_g0)[dev]
    t_model = np.unique(np.r_[np.geomspace(max(min(float(t_pos.min()), t0) / 100.0, 1e-9), float(times.max()), 60),
                              times[times > 0]])
    fig = {"times": times, "t_model": t_model, "form": form, "t0": t0, "first_read_s": t_gap,
           "gap": fits[form]["gap_before_first_read"], "deciles": []}
    model = EmpiricalDevice(EmpiricalParams(**{k: v for k, v in params.items()}))
    for q in range(10):
        sel_dev = np.nonzero(deciles == q)[0]
        if sel_dev.size == 0:
            continue
        in_q = np.isin(dev, sel_dev)
        data_med = np.array([np.nanmedian(ratio[in_q & (t == tt)]) if np.any(in_q & (t == tt)) else np.nan
                             for tt in times])
        nu_q = float(model.nu_stats(torch.tensor(g_prog[sel_dev], dtype=torch.float32))[0].double().mean())
        model_r = np.exp(-nu_q * _drift_x(form, t_model, t0))
        fig["deciles"].append({"g_us": float(g_prog[sel_dev].mean()), "data": data_med, "model": model_r})
    return params, quality, fig


# ---- read noise -------------------------------------------------------------------------------
def _sigma_law(g: np.ndarray, b: float, c: float, p: float) -> np.ndarray:
    return b + c * np.power(np.maximum(g, 0.0), p)


def fit_read_noise(data: TimeSeriesData, *, n_bins: int = 12, g_max_us: float | None = None,
                   n_table: int = 33) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Fit σ(G) of one read; returns ``(params, quality, figure data)``."""
    import scipy.optimize  # noqa: PLC0415

    nd = data.n_devices
    g, t, dev = data.g_us, data.t_s, data.device
    lo_v, hi_v = float(g.min()), float(g.max())
    clip_lo = _ties(g, lo_v) >= TIE_MIN_COUNT
    clip_hi = _ties(g, hi_v) >= TIE_MIN_COUNT
    clipped = np.zeros(g.shape, bool)
    if clip_lo:
        clipped |= np.abs(g - lo_v) <= 1e-9 * max(1.0, lo_v)
    if clip_hi:
        clipped |= np.abs(g - hi_v) <= 1e-9 * max(1.0, hi_v)
    bad_dev = np.bincount(dev, weights=clipped.astype(float), minlength=nd) > 0
    cnt = np.bincount(dev, minlength=nd).astype(float)
    tc = t - (np.bincount(dev, weights=t, minlength=nd) / cnt)[dev]  # time about each device's mean
    slope, sse, sxx, _ = _per_device_regression(dev, tc, g, nd)
    trend = (sxx > 1e-12) & (cnt >= 3)
    dof = np.where(trend, cnt - 2, cnt - 1)
    var_d = sse / np.maximum(dof, 1)
    g_mean = np.bincount(dev, weights=g, minlength=nd) / cnt
    use = ~bad_dev & (dof >= 1)
    if int(use.sum()) < 2:
        raise FitError(f"{data.path}: fewer than 2 devices with unclipped repeated reads; expected reads inside "
                       "the instrument's range")
    gm, vd, df = g_mean[use], var_d[use], dof[use]
    n_b = max(1, min(n_bins, int(use.sum()) // 5))
    edges = np.quantile(gm, np.linspace(0, 1, n_b + 1))
    idx = np.clip(np.searchsorted(edges, gm, side="right") - 1, 0, n_b - 1)
    bins = []
    for bi in range(n_b):
        sel = idx == bi
        if sel.sum() < 2:
            continue
        dof_b = float(df[sel].sum())
        var_b = float((vd[sel] * df[sel]).sum() / dof_b)
        bins.append((float(gm[sel].mean()), math.sqrt(var_b), dof_b, int(sel.sum())))
    bg = np.array([b[0] for b in bins])
    bs = np.array([b[1] for b in bins])
    if not bins or float(bs.max()) <= 0.0:
        raise FitError(f"{data.path}: the repeated reads do not vary (read noise below the instrument's resolution); "
                       "expected reads that scatter")
    # standard error of a pooled std, floored: a bin whose reads do not vary (below the resolution)
    # must not get an infinite weight
    be = np.maximum(bs / np.sqrt(2.0 * np.array([b[2] for b in bins])), 1e-3 * float(bs.max()))
    law = "b + c·G^p"
    if len(bins) >= 3:
        p0 = (float(bs.min()) * 0.5, max(float((bs.max() - bs.min()) / max(bg.max(), 1e-9)), 1e-6), 1.0)
        popt, _ = scipy.optimize.curve_fit(_sigma_law, bg, bs, p0=p0, sigma=be, absolute_sigma=True,
                                           bounds=([0.0, 0.0, 0.05], [np.inf, np.inf, 3.0]), maxfev=20000)
        b_, c_, p_ = (float(v) for v in popt)
    else:  # too few bins for three parameters: a constant σ
        law = "constant"
        b_, c_, p_ = float(np.average(bs, weights=1 / be**2)), 0.0, 1.0
    g_top = max(g_max_us or 0.0, hi_v)
    grid = np.linspace(0.0, g_top, n_table)
    table = _sigma_law(grid, b_, c_, p_)
    resid = (bs - _sigma_law(bg, b_, c_, p_)) / be
    clip = (lo_v if clip_lo else 0.0, hi_v if clip_hi else 1e6) if (clip_lo or clip_hi) else ()
    params = {"read_noise_g_us": tuple(float(v) for v in grid), "read_noise_sigma_us": tuple(float(v) for v in table),
              "read_clip_range_us": tuple(float(v) for v in clip)}
    quality = {
        "devices": nd, "devices_used": int(use.sum()), "reads": int(g.size), "law": law,
        "sigma_law": {"b_us": b_, "c": c_, "p": p_},
        "max_rel_deviation_of_bins": float(np.max(np.abs(bs - _sigma_law(bg, b_, c_, p_)) / bs)),
        "chi2_per_dof": float(np.sum(resid**2) / max(len(bins) - 3, 1)),
        "clipped_low_us": lo_v if clip_lo else None, "clipped_high_us": hi_v if clip_hi else None,
        "delay_s": float(np.median(t)),
        "bins": [{"g_us": b[0], "sigma_us": b[1], "devices": b[3]} for b in bins],
        "optimizer": "scipy curve_fit (trust region reflective), weighted by each bin's standard error",
    }
    fig = {"g": bg, "sigma": bs, "se": be, "grid": grid, "table": table, "dev_g": gm, "dev_sigma": np.sqrt(vd)}
    return params, quality, fig


# ---- everything -------------------------------------------------------------------------------
def classify(spec: str) -> tuple[str, str]:
    """``KIND=PATH`` or ``PATH`` → (kind, path); a plain path's kind comes from its header (a
    ``pulse`` column: pulse response; drift and read noise share their columns and need the kind)."""
    kind, sep, rest = spec.partition("=")
    if sep and kind in KINDS:
        return kind, rest
    if sep and not Path(spec).exists() and kind and not any(c in kind for c in "/\\.") :
        raise FitError(f"{spec}: measurement kind {kind!r} is unknown; expected PATH or KIND=PATH with KIND one of "
                       f"{', '.join(KINDS)}")
    path = spec
    p = Path(path)
    if p.is_dir():
        raise CSVFormatError(f"{path}: a folder; expected a measurement CSV file")
    if not p.is_file():
        raise CSVFormatError(f"{path}: no such file (expected a measurement CSV, or KIND=PATH with KIND one of "
                             f"{', '.join(KINDS)})")
    try:
        with p.open(encoding="utf-8-sig") as fh:  # -sig: a byte-order mark (as spreadsheets write) is no column
            line = fh.readline()
    except UnicodeDecodeError:
        raise CSVFormatError(f"{path}:1: not a text CSV; expected a header line") from None
    header = [h.strip() for h in line.split(",")]
    if not line.strip():
        raise CSVFormatError(f"{path}:1: empty file; expected a header line device,pulse,g_us (pulse response) "
                             "or device,t_s,g_us (drift, read noise)")
    if "pulse" in header:
        return "pulse", path
    if len(header) == 1 and any(sep_ in line for sep_ in ";\t"):
        which = "semicolons" if ";" in line else "tabs"
        raise CSVFormatError(f"{path}:1: header {line.strip()!r} is separated by {which}; expected commas "
                             "(device,pulse,g_us or device,t_s,g_us)")
    has_t = any(u in header for u in T_UNITS)
    has_g = any(u in header for u in G_UNITS)
    if "device" in header and has_t and has_g:
        raise CSVFormatError(f"{path}:1: header {','.join(header)!r} has no 'pulse' column, so it is a drift or "
                             f"a read-noise file; expected drift={path} or read-noise={path}")
    raise CSVFormatError(f"{path}:1: header {','.join(header)!r} is neither a pulse response (device,pulse,g_us) nor "
                         "a drift or read-noise file (device,t_s,g_us); expected one of these headers")


def fit_measurements(specs: list[str] | dict[str, str], *, n_knots: int = 16, seed: int = 0,
                     base: dict[str, Any] | None = None, strict: bool = False) -> FitResult:
    """Read and fit up to one file of each kind (``["pulses.csv", "drift=d.csv", "read-noise=r.csv"]``
    or ``{"pulse": …, "drift": …, "read-noise": …}``); fields not fitted keep the ``empirical``
    defaults (or ``base``).

    Raises :class:`FitError` (one line naming the file and the quantity) when an optimiser does not
    converge, a parameter sits at a bound or a value is not physical (:mod:`.fit_checks`); with
    ``strict`` also on any warning (``quality["warnings"]``)."""
    pairs = list(specs.items()) if isinstance(specs, dict) else [classify(s) for s in specs]
    for kind, path in pairs:
        if kind not in KINDS:
            raise FitError(f"{path}: measurement kind {kind!r} is unknown; expected one of {', '.join(KINDS)}")
    if not pairs:
        raise FitError("no measurement files; expected at least one of: pulse response, drift=…, read-noise=…")
    by_kind: dict[str, str] = {}
    for kind, path in pairs:
        if kind in by_kind:
            raise FitError(f"two {kind} files ({by_kind[kind]}, {path}); expected at most one of each kind")
        by_kind[kind] = path
    params: dict[str, Any] = {f.name: getattr(EmpiricalParams(), f.name) for f in dataclasses.fields(EmpiricalParams)}
    params.update(base or {})
    params["csv_path"] = None
    quality: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    files = []
    # read every file first: a bad one fails before any fitting
    pulse = read_pulse_csv(by_kind["pulse"]) if "pulse" in by_kind else None
    drift = read_time_series_csv(by_kind["drift"], "drift") if "drift" in by_kind else None
    noise = read_time_series_csv(by_kind["read-noise"], "read-noise") if "read-noise" in by_kind else None
    warnings: list[str] = []
    noise_table = None
    if noise is not None:
        g_top = float(np.nanmax(pulse.traces)) if pulse is not None else None
        p, q, fig = fit_read_noise(noise, g_max_us=g_top)
        fit_checks.check_read_noise(noise.path, p)
        params.update(p)
        params["read_noise_rel"], params["read_noise_std_us"] = 0.0, 0.0
        quality["read_noise"] = q
        figures["read_noise"] = fig
        files.append(("read-noise", noise.path, noise.n_devices, int(noise.g_us.size)))
        noise_table = (np.asarray(p["read_noise_g_us"]), np.asarray(p["read_noise_sigma_us"]))
    if pulse is not None:
        p, q = fit_pulse(pulse, n_knots=n_knots, noise_table=noise_table)
        fit_checks.check_pulse(pulse.path, p, q)
        params.update(p)
        law = q.get("read_noise_in_pulse_fit")
        if noise is None and law is not None and (law["b_us"] > 2 * READ_FLOOR_US or law["c"] > 1e-6):
            # no read-noise file: the pulse fit's σ_r = b + c·G (none where the reads are noise-free)
            params["read_noise_std_us"], params["read_noise_rel"] = law["b_us"], law["c"]
        quality["pulse_response"] = q
        files.append(("pulse", pulse.path, pulse.n_devices, int(pulse.g_before.size + pulse.traces.shape[0])))
    if drift is not None:
        p, q, fig = fit_drift(drift)
        fit_checks.check_drift(drift.path, p, q, warnings)
        params.update(p)
        quality["drift"] = q
        figures["drift"] = fig
        files.append(("drift", drift.path, drift.n_devices, int(drift.g_us.size)))
    if strict and warnings:
        raise FitError(f"{warnings[0]} (refused under --strict)")
    quality["warnings"] = warnings
    try:
        model = EmpiricalDevice(EmpiricalParams(**params))
    except DeviceParameterError as exc:
        raise FitError(f"the fitted parameters are not a valid device: {exc}") from None
    if pulse is not None:
        q, fig = pulse_quality(pulse, model, seed)
        quality["pulse_response"].update(q)
        figures["pulse"] = fig
        figures["pulse_data"] = pulse
    provenance = {
        "files": [{"kind": k, "path": path, "sha256": _sha256(path), "devices": d, "rows": r}
                  for k, path, d, r in files],
        "fitted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fitter": "device_models.fit (pcmsim device fit)",
        "n_knots": n_knots,
        "not_measured": [k for k in KINDS if k not in by_kind],
    }
    return FitResult(params=params, quality=quality, provenance=provenance, figures=figures)


# ---- the JSON file ------------------------------------------------------------------------------
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
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in doc["params"].items()}
    try:
        return EmpiricalDevice(EmpiricalParams(**values), **overrides)
    except DeviceParameterError as exc:
        raise DeviceParameterError(f"{p}: {exc}") from None
    except TypeError as exc:
        raise DeviceParameterError(f"{p}: {exc}") from None
