"""The fit report of ``pcmsim device fit``: ``NAME.report.md`` next to the fitted model's JSON,
with its figures in ``NAME.report/`` (data against model for every fitted quantity).

Figures are drawn on matplotlib's Agg canvas (no pyplot, no display) and written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .fileio import atomic_write
from .fit import FitResult
from .fit_series import read_noise_law_text

HIST_PULSES = (1, 5)
"""Pulse numbers whose conductance histograms the report shows, with the last measured one (ours)."""


def _figure(width: float = 6.4, height: float = 4.2):  # noqa: ANN202 - a matplotlib Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100, bbox_inches="tight"), binary=True,
                        fsync=False)


C2C_LAW_TEXT = {"additive": "additive: std `S(G)`", "multiplicative": r"multiplicative: std `S + κ·\|f·M(G)\|`",
                "combined": r"combined: std `S(G) + κ·\|f·M(G)\|`"}
r"""The cycle-to-cycle laws as the report's table gives them (``\|``: a pipe inside a table cell)."""


def se_text(qp: dict, name: str) -> str:
    """`` ± se`` of a fitted constant where its standard error was found, else ``""``."""
    se = (qp.get("standard_errors") or {}).get(name)
    return f" ± {se:.2g}" if se is not None else ""


def _c2c_text(p: dict, qp: dict) -> str:
    """The cycle-to-cycle law, κ with its standard error, and κ's correlation with the device factor."""
    law = qp["c2c_law"]["law"]
    text = C2C_LAW_TEXT[law]
    if law != "additive":
        text += f", κ = {p['c2c_rel_std']:.4g}{se_text(qp, 'c2c_rel_std')}"
    if "d2d_kappa_correlation" in qp:
        text += f" (correlation with the device factor's std {qp['d2d_kappa_correlation']:.2f})"
    return text


def _c2c_shape_text(p: dict, qp: dict) -> str:
    """The shape of the law's multiplicative part and the log-likelihoods it was chosen by."""
    if qp["c2c_law"]["law"] == "additive":
        return "(no multiplicative part)"
    ll = (qp.get("c2c_shape") or {}).get("loglik") or {}
    text = ("log-normal: the step `f·M·L + S·ξ`, `L` of mean 1 and std κ" if p.get("c2c_shape") == "lognormal"
            else "normal: the step normal with that std")
    if len(ll) == 2:
        text += f" (log-likelihood normal {ll['normal']:.1f}, log-normal {ll['lognormal']:.1f}: the likelier)"
    else:
        text += " (not compared)"
    return text


def _tail_text(p: dict, qp: dict) -> str:
    """The mean step above the top knot and the log-likelihoods it was chosen by."""
    rec = qp.get("mean_step_above_data") or {}
    ll = rec.get("loglik") or {}
    text = ("the top segment continued" if p.get("dg_mean_above") == "linear"
            else "held at the top knot's value")
    if len(ll) == 2:
        return text + (f" (log-likelihood held {ll['hold']:.1f}, continued {ll['linear']:.1f}: the top segment "
                       "restores, so continued unless held is likelier by more than "
                       f"{rec['margin']:g})")
    return text + " (not compared: the top segment's mean steps are not both below 0)"


def _d2d_law_text(p: dict, qp: dict) -> str:
    """The device factor's law and the log-likelihoods it was chosen by."""
    law = qp.get("d2d_law", {})
    ll = law.get("loglik", {})
    if not qp.get("d2d_kept") or len(ll) < 2:
        return f"{p.get('d2d_law', 'normal')} (not compared)"
    return (f"{p['d2d_law']} (log-likelihood normal {ll['normal']:.1f}, log-normal {ll['lognormal']:.1f}: "
            "the likelier)")


def _decay_note(qp: dict) -> str:
    """Where the history's decay sat at, or was not told from, the bound of its search range (half the
    train's length)."""
    if not qp.get("history_decay_at_bound"):
        return ""
    lr = qp.get("history_decay_lr_vs_bound")
    told = "at" if lr is None else f"not told from (likelihood ratio {lr:.3g} against it held at)"
    return (f"; its decay {told} the bound, {qp['history_decay_bound_pulses']:.3g} pulses: slower than the train "
            "shows, not told from M(G), so not kept")


def _clip_d2d_text(p: dict, qp: dict) -> str:
    """The report's cell for the clip per device."""
    if not qp.get("clip_d2d_tested"):
        return "0 (not tested: the reads show no clip, no mean step reaching 0, no devices stopping at levels)"
    verdict = "kept" if qp["clip_d2d_kept"] else "not significant, 0"
    return (f"{p['g_max_rel_std']:.4g} (fitted {qp['clip_d2d_std']:.3g}, likelihood ratio "
            f"{qp['clip_d2d_lr_statistic']:.3g}: {verdict})")


def _check_text(c: dict[str, Any]) -> str:
    """The goodness-of-fit check of one curve: against its tolerance at the pulse where it is worst."""
    verdict = "within" if c["error"] <= c["tolerance"] else "**beyond**"
    return (f"each pulse against its tolerance, the worst after pulse {c['pulse']}: {c['error']:.1%} {verdict} "
            f"{c['tolerance']:.1%}")


def _fig_programming(fig_data: dict[str, Any], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    k = fig_data["k"]
    md, sd, mm, sm = fig_data["mean_data"], fig_data["std_data"], fig_data["mean_model"], fig_data["std_model"]
    ax.fill_between(k, mm - sm, mm + sm, color="tab:orange", alpha=0.25, label="model mean ± std")
    ax.plot(k, mm, color="tab:orange")
    ax.errorbar(k, md, yerr=sd, fmt="o", ms=3, color="tab:blue", capsize=2, label="data mean ± std")
    ax.set_xlabel("SET pulses since RESET")
    ax.set_ylabel("G (µS)")
    ax.set_title("programming curve")
    ax.legend(loc="lower right")
    return _save(fig, path)


def _binned(gb: np.ndarray, d: np.ndarray, edges: np.ndarray, what: str, min_count: int = 20) -> np.ndarray:
    n = edges.size - 1
    b = np.clip(np.searchsorted(edges, gb, side="right") - 1, 0, n - 1)
    cnt = np.bincount(b, minlength=n)
    return np.array([(d[b == i].mean() if what == "mean" else d[b == i].std(ddof=1)) if cnt[i] >= min_count
                     else np.nan for i in range(n)])


def _fig_dg(result: FitResult, path: Path) -> Path:
    """Mean and std of the measured ΔG (read after minus read before) against G read before, per group
    of pulse numbers: the data, and the model simulated over the same protocol (RESET, the same
    pulses, every read with the model's read noise), binned the same way."""
    data = result.figures["pulse_data"]
    sim = result.figures["pulse"]["sim"]  # [pulses + 1, devices], reads with read noise
    last = sim.shape[0] - 1
    n_sim = np.broadcast_to(np.arange(1, last + 1)[:, None], (last, sim.shape[1])).reshape(-1)
    gb_sim, dg_sim = sim[:-1].reshape(-1), np.diff(sim, axis=0).reshape(-1)
    fig = _figure(9.6, 4.2)
    groups = [("pulse 1", lambda n: n == 1), ("pulse 2", lambda n: n == 2),
              ("pulses 3-5", lambda n: (n >= 3) & (n <= 5)), ("pulses ≥ 6", lambda n: n >= 6)]
    dg = data.g_after - data.g_before
    for col, what in enumerate(("mean", "std")):
        ax = fig.add_subplot(1, 2, col + 1)
        for j, (label, pick) in enumerate(groups):
            sel, sel_m = pick(data.n) & (data.n <= last), pick(n_sim)
            if not np.any(sel) or not np.any(sel_m):
                continue
            edges = np.linspace(data.g_before[sel].min(), data.g_before[sel].max() + 1e-9, 21)
            centres = 0.5 * (edges[1:] + edges[:-1])
            color = f"C{j}"
            ax.plot(centres, _binned(data.g_before[sel], dg[sel], edges, what), "o", ms=3, color=color,
                    label=f"data, {label}")
            ax.plot(centres, _binned(gb_sim[sel_m], dg_sim[sel_m], edges, what), "-", color=color)
        ax.set_xlabel("G read before the pulse (µS)")
        ax.set_ylabel(f"{what} of measured ΔG (µS)")
        ax.set_title(f"{what} of ΔG vs G (lines: model through the same protocol, with read noise)")
        ax.title.set_fontsize(8)
        if col == 0:
            ax.legend(fontsize=7)
    return _save(fig, path)


def _fig_hist(result: FitResult, path: Path) -> Path:
    data = result.figures["pulse_data"]
    f = result.figures["pulse"]
    last = int(f["k"][-1])
    ks = sorted({k for k in (*HIST_PULSES, last) if k <= last})
    fig = _figure(3.2 * len(ks), 3.4)
    for j, k in enumerate(ks):
        ax = fig.add_subplot(1, len(ks), j + 1)
        col = data.traces[:, k]
        col = col[~np.isnan(col)]
        bins = np.linspace(min(col.min(), f["sim"][k].min()), max(col.max(), f["sim"][k].max()), 40)
        ax.hist(col, bins=bins, density=True, alpha=0.5, color="tab:blue", label="data")
        ax.hist(f["sim"][k], bins=bins, density=True, histtype="step", color="tab:orange", label="model")
        ax.set_title(f"after {k} pulse(s)")
        ax.set_xlabel("G (µS)")
        if j == 0:
            ax.legend(fontsize=7)
    return _save(fig, path)


def _fig_drift(fd: dict[str, Any], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    t = fd["times"]
    pos = t > 0
    for j, d in enumerate(fd["deciles"]):
        c = f"C{j % 10}"
        ax.plot(t[pos], d["data"][pos], "o", ms=2.5, color=c)
        ax.plot(fd["t_model"], d["model"], "-", color=c, label=f"{d['g_us']:.2g} µS")
    ax.axvline(fd["first_read_s"], color="0.5", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("time since programming (s)")
    ax.set_ylabel("G(t) / G(t_prog)")
    ax.set_title(f"drift per decile of programmed G (dots: data median over each device's fitted G(t_prog); "
                 f"lines: model, {fd['form']}, t0 = {fd['t0']:.3g} s; dashed: first read, "
                 f"{fd['gap']:.1%} lost before it)")
    ax.title.set_fontsize(7)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def _fig_read_noise(fr: dict[str, Any], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fr["dev_g"], fr["dev_sigma"], ".", ms=1.5, color="0.7", label="devices")
    ax.errorbar(fr["g"], fr["sigma"], yerr=fr["se"], fmt="o", ms=3, color="tab:blue", label="data, pooled per bin")
    ax.plot(fr["grid"], fr["table"], "-", color="tab:orange", label="model")
    ax.set_xlabel("G (µS)")
    ax.set_ylabel("σ of one read (µS)")
    ax.set_title("read noise")
    ax.set_ylim(0, max(float(np.max(fr["sigma"])) * 1.6, 1e-6))
    ax.legend()
    return _save(fig, path)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(result: FitResult, json_path: str | Path) -> Path:
    """Write ``NAME.report.md`` and the figures in ``NAME.report/`` next to ``json_path``; returns the
    report's path."""
    json_path = Path(json_path)
    stem = json_path.name[:-5] if json_path.name.lower().endswith(".json") else json_path.name
    fig_dir = json_path.with_name(f"{stem}.report")
    report = json_path.with_name(f"{stem}.report.md")
    q, p, prov = result.quality, result.params, result.provenance
    lines = [f"# Fitted device model `{json_path.name}`", "",
             f"Fitted {prov['fitted']} by {prov['fitter']}. Load it with "
             f"`device_models.get(\"{json_path.name}\")` or `--device-model {json_path.name}`.", "",
             "| kind | file | devices | rows | sha256 |", "|---|---|---|---|---|"]
    for f in prov["files"]:
        lines.append(f"| {f['kind']} | `{f['path']}` | {f['devices']} | {f['rows']} | `{f['sha256'][:12]}…` |")
    if q.get("warnings"):
        lines += ["", "**Warnings**:", ""] + [f"- {w}" for w in q["warnings"]]
    if prov["not_measured"]:
        lines += ["", f"Not measured (the `empirical` defaults stand): {', '.join(prov['not_measured'])}."]
    figs = {}
    if "pulse_response" in q:
        qp = q["pulse_response"]
        figs["programming"] = _fig_programming(result.figures["pulse"], fig_dir / "programming_curve.png")
        figs["dg"] = _fig_dg(result, fig_dir / "dg_vs_g.png")
        figs["hist"] = _fig_hist(result, fig_dir / "histograms.png")
        ks = "; ".join(f"after {k}: D = {v['statistic']:.3f} (p = {v['p_value']:.2g})"
                       for k, v in qp["ks_after_pulses"].items())
        lines += ["", "## Pulse response", "",
                  "ΔG of the n-th SET pulse since RESET at conductance G: normal with mean "
                  "`M(G) + A_μ·P` and std `S(G) + A_σ·P`, `P = exp(−n/a)`, times the device's own factor "
                  "on the mean; clipped to `[floor, G_max]`; every read with read noise. Method: "
                  f"{qp['method']}. G_max: {qp['saturation']} (largest read {qp['largest_read_us']:.4g} µS).", "",
                  "| quantity | value |", "|---|---|",
                  f"| pulse-history terms | {'kept' if qp['history_kept'] else 'dropped (0)'} (likelihood ratio "
                  f"{qp['history_lr_statistic']:.3g}{_decay_note(qp)}) |",
                  f"| A_μ (history, mean) | {p['hist_mean_us']:.4g} µS |",
                  f"| A_σ (history, std) | {p['hist_std_us']:.4g} µS |",
                  f"| a (history decay) | {p['hist_pulses']:.4g} pulses |",
                  f"| cycle-to-cycle law | {_c2c_text(p, qp)} |",
                  f"| shape of its multiplicative part | {_c2c_shape_text(p, qp)} |",
                  f"| device-to-device std of the mean step | {p['d2d_rel_std']:.4g}"
                  f"{se_text(qp, 'd2d_rel_std') if qp['d2d_kept'] else ''} (fitted {qp['d2d_std']:.3g}, "
                  f"likelihood ratio {qp['d2d_lr_statistic']:.3g}: "
                  f"{'kept' if qp['d2d_kept'] else 'not significant, 0'}) |",
                  f"| its law | {_d2d_law_text(p, qp)} |",
                  f"| floor / G_max | {p['set_min_us']:.4g} / {p['g_max_us']:.4g} µS |",
                  f"| device-to-device std of the clip (G_max) | {_clip_d2d_text(p, qp)} |",
                  f"| M, S on {len(p['dg_mean_us'])} knots | {p['grid_start_us']:.4g} µS + "
                  f"k·{p['grid_step_us']:.4g} µS |",
                  f"| M above the top knot | {_tail_text(p, qp)} |",
                  f"| reads after a pulse / cycles / devices | {qp['reads']} / {qp['cycles']} / {qp['devices']} |",
                  f"| floor / clip seen in the reads | {qp['floor_us']} / {qp['clip_in_reads_us']} µS |",
                  f"| optimiser | {qp['optimizer']} |", "",
                  "Goodness of fit (data against the model simulated over the same protocol):", "",
                  "| quantity | value |", "|---|---|",
                  f"| mean programming curve, largest relative error over pulses 1–{qp['pulses_compared']} | "
                  f"{qp['mean_curve_max_rel_error']:.2%} ({_check_text(qp['curve_checks']['mean'])}) |",
                  f"| spread (std) of G, largest relative error | {qp['spread_max_rel_error']:.2%} "
                  f"({_check_text(qp['curve_checks']['spread'])}) |",
                  f"| two-sample KS of G | {ks} |",
                  f"| negative log-likelihood per read | {qp['nll_per_read']:.4f} |", "",
                  f"![programming curve]({fig_dir.name}/programming_curve.png)", "",
                  f"![ΔG vs G]({fig_dir.name}/dg_vs_g.png)", "",
                  f"![histograms]({fig_dir.name}/histograms.png)"]
    if "drift" in q:
        qd = q["drift"]
        figs["drift"] = _fig_drift(result.figures["drift"], fig_dir / "drift.png")
        law_text = "`G·max(t/t0, 1)^(−ν)`" if qd["law"] == "onset" else "`G·((t + t0)/t0)^(−ν)`"
        lines += ["", "## Drift", "",
                  f"Law `{qd['law']}` ({law_text}), t0 = {qd['t0_s']:.4g} s, chosen by {qd['law_choice']}; BIC by "
                  "law: " + ", ".join(f"{k} {v:.6g}" for k, v in qd["bic_by_law"].items()) + "; residual sum of "
                  "squares of log G: " + ", ".join(f"{k} {v:.6g}" for k, v in qd["sse_by_law"].items()) + ". "
                  f"The model loses {qd['gap_before_first_read']:.2%} between programming and the first read "
                  f"({qd['first_read_s']:.3g} s), which the data cannot show.", "",
                  "| quantity | value |", "|---|---|",
                  f"| ν, mean over devices | {qd['nu_mean']:.4f} |",
                  f"| R² of log G | {qd['r2']:.4f} |",
                  f"| rms residual of log G | {qd['rms_log_residual']:.4g} |", "",
                  "| programmed G (µS) | ν mean | ν std (device-to-device) | devices |", "|---|---|---|---|"]
        lines += [f"| {b['g_us']:.3g} | {b['nu_mean']:.4f} | {b['nu_std']:.4f} | {b['devices']} |"
                  for b in qd["nu_bins"]]
        lines += ["", f"![drift]({fig_dir.name}/drift.png)"]
    if "read_noise" in q:
        qr = q["read_noise"]
        law = qr["sigma_law"]
        figs["read_noise"] = _fig_read_noise(result.figures["read_noise"], fig_dir / "read_noise.png")
        clip = p.get("read_clip_range_us") or ()
        lines += ["", "## Read noise", "",
                  f"σ(G) = {read_noise_law_text(law)} (law `{qr['law']}`), measured "
                  f"{qr['delay_s']:.3g} s after programming (no time dependence fitted)"
                  + (f"; reads clipped to [{clip[0]:.4g}, {clip[1]:.4g}] µS" if clip else "") + ".", "",
                  "| quantity | value |", "|---|---|",
                  f"| devices used / in file | {qr['devices_used']} / {qr['devices']} |",
                  f"| largest relative deviation of a bin from the law | {qr['max_rel_deviation_of_bins']:.2%} |",
                  f"| χ² per degree of freedom | {qr['chi2_per_dof']:.3g} |", "",
                  f"![read noise]({fig_dir.name}/read_noise.png)"]
    text = "\n".join(lines) + "\n"
    atomic_write(report, lambda fh: fh.write(text))
    return report
