"""``pcmsim sweep-report DIR``: a sweep's summary as a terminal table and as plots.

The summary is recomputed from the point folders (so a sweep still running, or interrupted, can be
reported) and written to ``summary.json`` / ``summary.csv``. Hardware runs with a cost estimate
add the estimated training energy and inference energy per time step (J, mean ± std over seeds).
Plots (``DIR/plots/``): for a grid sweep, the validation and test metric against each swept axis,
one line per combination of the other axes; for a zip sweep, against the settings. Error bars are
the 95 % t intervals over seeds; the setting chosen on validation is starred.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .checkpoint import read_json
from .sweep_spec import SweepError, axis_paths, setting_label
from .sweep_stats import read_records, summarize, write_summary


def load_summary(out_dir: str | Path) -> dict[str, Any]:
    """Recompute a sweep folder's summary from its points, and write it."""
    out = Path(out_dir)
    if not (out / "sweep.json").is_file():
        raise SweepError(f"{out}: not a sweep folder (no sweep.json): expected the --out folder of `pcmsim sweep`")
    manifest = read_json(out / "sweep.json", "sweep manifest")
    summary = summarize(manifest, read_records(out, manifest))
    write_summary(out, summary)
    return summary


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "—" if value is None else format(value, spec)


def _mean_std(stats: dict[str, Any]) -> str:
    if stats["mean"] is None:
        return "—"
    return _fmt(stats["mean"]) + ("" if stats["std"] is None else f" ± {_fmt(stats['std'], '.2g')}")


def _interval(stats: dict[str, Any]) -> str:
    if stats["ci95_low"] is None:
        return "—"
    return f"[{_fmt(stats['ci95_low'])}, {_fmt(stats['ci95_high'])}]"


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table: one line per setting, the selected one starred."""
    metric, axes = summary["metric"], summary["paths"]
    v, t = f"valid_{metric}", f"test_{metric}"
    hardware = any(r["pulses_set"]["n"] for r in summary["settings"])
    cost = any(r.get("train_energy_j", {}).get("n") for r in summary["settings"])
    header = [*axes] if axes else ["setting"]
    header += ["seeds", f"{v} mean ± std", "95 % interval", f"{t} mean ± std"]
    header += ["SET pulses", "saturated"] if hardware else []
    header += ["train J mean ± std", "inference J/step mean ± std"] if cost else []
    header += ["wall s"]
    lines = []
    for row in summary["settings"]:
        cells = [setting_label({a: row["values"][a]}).split("=", 1)[1] for a in axes] if axes else ["base"]
        seeds = f"{row['done']}/{row['points']}" + (f" ({row['failed']} failed)" if row["failed"] else "")
        cells += [seeds, _mean_std(row[v]), _interval(row[v]), _mean_std(row[t])]
        if hardware:
            cells += [_fmt(row["pulses_set"]["mean"], ".4g"), _fmt(row["saturated_devices"]["mean"], ".4g")]
        if cost:
            cells += [_mean_std(row["train_energy_j"]), _mean_std(row["inference_energy_j_per_step"])]
        cells += [_fmt(row["wall_time_s"]["mean"], ".3g")]
        lines.append(("* " if row["selected"] else "  ", cells))
    widths = [max(len(header[i]), *(len(c[i]) for _, c in lines)) for i in range(len(header))]
    text = ["  " + "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    text += [mark + "  ".join(c.ljust(w) for c, w in zip(cells, widths)) for mark, cells in lines]
    pts = summary["points"]
    direction = "higher" if summary["higher_is_better"] else "lower"
    head = (f"sweep {summary['name']} ({summary['task']}; {metric}: {direction} is better): {pts['total']} points, "
            f"{pts['done']} done, {pts['failed']} failed, {pts['interrupted'] + pts['pending']} not finished")
    sel = summary["selected"]
    foot = f"selected: {sel['label']} ({summary['selection']})" if sel else f"selected: {summary['selection']}"
    errors = sorted({e for r in summary["settings"] for e in r["errors"]})
    return "\n".join([head, *text, foot, *(f"error: {e}" for e in errors)])


def plot_sweep(out_dir: str | Path, summary: dict[str, Any]) -> list[Path]:
    """The metric plots of a sweep under ``out_dir/plots`` (see the module docstring)."""
    plots = Path(out_dir) / "plots"
    rows = summary["settings"]
    if not summary["axes"] or len(rows) < 2:
        return []
    manifest = read_json(Path(out_dir) / "sweep.json", "sweep manifest")
    if manifest["mode"] == "zip":
        return [_plot(summary, rows, None, plots / "sweep_settings.png")]
    return [_plot(summary, rows, axis, plots / f"sweep_{re.sub(r'[^A-Za-z0-9_.-]', '_', axis)}.png")
            for axis in summary["axes"]]


def _plot(summary: dict[str, Any], rows: list[dict[str, Any]], axis: str | None, path: Path) -> Path:
    from matplotlib.figure import Figure

    from pcmsim.fileio import save_figure

    metric = summary["metric"]
    mine = axis_paths(axis) if axis is not None else []
    others = [p for a in summary["axes"] if a != axis for p in axis_paths(a)]

    def x_key(r: dict[str, Any]) -> str:
        if axis is None:
            return r["label"]
        text = setting_label({p: r["values"][p] for p in mine})
        return text.split("=", 1)[1] if len(mine) == 1 else text

    xs_all = list(dict.fromkeys(x_key(r) for r in rows))
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        label = setting_label({p: r["values"][p] for p in others}) if axis is not None and others else ""
        groups.setdefault(label, []).append(r)
    numeric = len(mine) == 1 and all(isinstance(r["values"][mine[0]], (int, float))
                                     and not isinstance(r["values"][mine[0]], bool) for r in rows)
    fig = Figure(figsize=(11, 4.2))
    panels = fig.subplots(1, 2, sharey=True)
    for split, ax in zip(("valid", "test"), panels):
        name = f"{split}_{metric}"
        for label, members in groups.items():
            pts = []
            for r in members:
                s = r[name]
                if s["mean"] is None:
                    continue
                x = r["values"][mine[0]] if numeric else xs_all.index(x_key(r))
                lo = 0.0 if s["ci95_low"] is None else s["mean"] - s["ci95_low"]
                hi = 0.0 if s["ci95_high"] is None else s["ci95_high"] - s["mean"]
                pts.append((x, s["mean"], lo, hi, r["selected"]))
            if not pts:
                continue
            pts.sort(key=lambda p: p[0])
            yerr = [[p[2] for p in pts], [p[3] for p in pts]]
            line = ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=yerr, marker="o", capsize=3,
                               linestyle="-" if numeric else "none", label=label or None)
            for p in pts:
                if p[4] and split == "valid":
                    ax.plot([p[0]], [p[1]], marker="*", markersize=16, color=line[0].get_color(), zorder=5)
        ax.set_xlabel(axis or "setting")
        ax.set_ylabel(f"{split} {metric} (mean, 95 % interval)")
        ax.set_title(f"{split} {metric}" + (" (★ selected on validation)" if split == "valid" else ""))
        ax.grid(alpha=0.3)
        if not numeric:
            ax.set_xticks(range(len(xs_all)), xs_all, rotation=25, ha="right", fontsize=8)
        if any(groups) and split == "valid":
            ax.legend(fontsize=8)
    fig.suptitle(f"sweep {summary['name']}: {summary['points']['done']} of {summary['points']['total']} points done")
    return save_figure(fig, path, dpi=110)


def report(out_dir: str | Path, *, plots: bool = True) -> tuple[str, list[Path]]:
    """The table of a sweep folder and the paths of its plots (summary files rewritten)."""
    summary = load_summary(out_dir)
    return format_table(summary), (plot_sweep(out_dir, summary) if plots else [])
