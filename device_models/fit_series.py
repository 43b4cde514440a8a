"""The time-series fits of ``pcmsim device fit``: drift (``device,t_s,g_us`` since programming)
and read noise (repeated reads); see :mod:`device_models.fit` for the laws and their choice.

**Drift.** Two laws, ``onset`` ``G(t) = G·max(t/t0, 1)^(−ν)`` (``pcm-nandakumar2018``) and ``shifted``
``G(t) = G·((t + t0)/t0)^(−ν)`` (``pcm-joshi2020``); ``t0`` by a grid and scipy's bounded Brent
search, the law by BIC, ν tabulated against the programmed G by deciles.

**Read noise.** Per device the residual variance after a linear trend in time, pooled in
conductance bins; ``σ(G) = b + c·G`` by scipy's ``curve_fit`` (weighted by each bin's standard
error), the power ``σ(G) = b + c·G^p`` instead where it lowers the χ² by more than
:data:`READ_POWER_CHI2`; tabulated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .empirical import EmpiricalDevice, EmpiricalParams
from .fit_checks import FitError
from .fit_pulse import TIE_MIN_COUNT
from .measurements import TimeSeriesData

BIC_TIE = 2.0
"""A BIC difference below this is no evidence for one drift law over the other (Kass & Raftery 1995,
J. Am. Stat. Assoc. 90:773: 0-2 "not worth more than a bare mention")."""
READ_POWER_CHI2 = 9.0
"""χ² gain above which the read-noise law's power ``p`` is fitted instead of 1: 3 standard errors'
worth for one parameter (ours). The pulse-response fit reads σ(G) where the read-noise file has
no devices (the RESET level, the top of the range): a power fitted to the noise of the bins
extrapolates there badly. On a ``power-sat`` read-noise file (1500 devices × 20 reads in
0.75–14.25 µS, the true law linear) a free power of 1.06 put σ 5.4 % high at 0 µS; the linear law
(χ² 3.1 higher) is within 1.6 % over 0–16 µS."""


def _ties(x: np.ndarray, value: float) -> int:
    return int(np.count_nonzero(np.abs(x - value) <= 1e-9 * max(1.0, abs(value))))


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
        t_grid = np.linspace(lo_t, hi_t, 41)
        vals = [sse(form, v) for v in t_grid]
        j = int(np.argmin(vals))
        a, b = t_grid[max(j - 1, 0)], t_grid[min(j + 1, t_grid.size - 1)]
        r = scipy.optimize.minimize_scalar(lambda v, form=form: sse(form, v), bounds=(a, b), method="bounded",
                                           options={"xatol": 1e-4})
        best = (float(r.fun), float(r.x)) if r.fun <= vals[j] else (float(vals[j]), float(t_grid[j]))
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
    grid: list[float] = []
    nu_means: list[float] = []
    nu_stds: list[float] = []
    counts: list[int] = []
    for bi in range(n_bins):
        sel = idx == bi
        if sel.sum() < 2:
            continue
        grid.append(float(gp[sel].mean()))
        nu_means.append(float(nv[sel].mean()))
        nu_stds.append(float(math.sqrt(max(float(nv[sel].var(ddof=1) - sv[sel].mean()), 0.0))))
        counts.append(int(sel.sum()))
    order = np.argsort(grid)
    grid_a = np.array(grid)[order]
    keep_pts = np.r_[True, np.diff(grid_a) > 1e-9]
    params: dict[str, Any] = {
        "t0_s": t0, "drift_form": form, "nu": float(nv.mean()),
        "nu_grid_us": tuple(float(v) for v in grid_a[keep_pts]),
        "nu_mean": tuple(float(np.array(nu_means)[order][keep_pts][j]) for j in range(int(keep_pts.sum()))),
        "nu_std": tuple(float(np.array(nu_stds)[order][keep_pts][j]) for j in range(int(keep_pts.sum()))),
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
        "nu_bins": [{"g_us": grid[j], "nu_mean": nu_means[j], "nu_std": nu_stds[j], "devices": counts[j]}
                    for j in order],
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
    fig: dict[str, Any] = {"times": times, "t_model": t_model, "form": form, "t0": t0, "first_read_s": t_gap,
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


def read_noise_law_text(law: dict[str, float]) -> str:
    """The fitted read-noise law of ``quality["read_noise"]["sigma_law"]`` as text, e.g. ``0.1 µS + 0.02·G``."""
    if law["c"] == 0.0:
        return f"{law['b_us']:.4g} µS"
    power = "" if law["p"] == 1.0 else f"^{law['p']:.3g}"
    return f"{law['b_us']:.4g} µS + {law['c']:.4g}·G{power}"


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
    def chi2(b: float, c: float, p: float) -> float:
        return float(np.sum(((bs - _sigma_law(bg, b, c, p)) / be) ** 2))

    chi2_gain = None
    if len(bins) >= 3:  # the linear law; the power where the bins call for it (READ_POWER_CHI2)
        p0 = (float(bs.min()) * 0.5, max(float((bs.max() - bs.min()) / max(bg.max(), 1e-9)), 1e-6))
        lin = lambda g, b, c: _sigma_law(g, b, c, 1.0)  # noqa: E731
        popt, _ = scipy.optimize.curve_fit(lin, bg, bs, p0=p0, sigma=be, absolute_sigma=True,
                                           bounds=([0.0, 0.0], [np.inf, np.inf]), maxfev=20000)
        b_, c_, p_ = float(popt[0]), float(popt[1]), 1.0
        law, n_par = "b + c·G", 2
        if len(bins) > 3:
            popt, _ = scipy.optimize.curve_fit(_sigma_law, bg, bs, p0=(b_, max(c_, 1e-6), 1.0), sigma=be,
                                               absolute_sigma=True, bounds=([0.0, 0.0, 0.05], [np.inf, np.inf, 3.0]),
                                               maxfev=20000)
            chi2_gain = chi2(b_, c_, p_) - chi2(*(float(v) for v in popt))
            if chi2_gain > READ_POWER_CHI2:
                b_, c_, p_ = (float(v) for v in popt)
                law, n_par = "b + c·G^p", 3
    else:  # too few bins for two parameters: a constant σ
        law, n_par = "constant", 1
        b_, c_, p_ = float(np.average(bs, weights=1 / be**2)), 0.0, 1.0
    g_top = max(g_max_us or 0.0, hi_v)
    grid = np.linspace(0.0, g_top, n_table)
    table = _sigma_law(grid, b_, c_, p_)
    clip = (lo_v if clip_lo else 0.0, hi_v if clip_hi else 1e6) if (clip_lo or clip_hi) else ()
    params = {"read_noise_g_us": tuple(float(v) for v in grid), "read_noise_sigma_us": tuple(float(v) for v in table),
              "read_clip_range_us": tuple(float(v) for v in clip)}
    quality = {
        "devices": nd, "devices_used": int(use.sum()), "reads": int(g.size), "law": law,
        "sigma_law": {"b_us": b_, "c": c_, "p": p_}, "power_chi2_gain": chi2_gain,
        "max_rel_deviation_of_bins": float(np.max(np.abs(bs - _sigma_law(bg, b_, c_, p_)) / bs)),
        "chi2_per_dof": chi2(b_, c_, p_) / max(len(bins) - n_par, 1),
        "clipped_low_us": lo_v if clip_lo else None, "clipped_high_us": hi_v if clip_hi else None,
        "delay_s": float(np.median(t)), "g_range_us": (float(gm.min()), float(gm.max())),
        "bins": [{"g_us": b[0], "sigma_us": b[1], "devices": b[3]} for b in bins],
        "optimizer": "scipy curve_fit (trust region reflective), weighted by each bin's standard error",
    }
    fig = {"g": bg, "sigma": bs, "se": be, "grid": grid, "table": table, "dev_g": gm, "dev_sigma": np.sqrt(vd)}
    return params, quality, fig
