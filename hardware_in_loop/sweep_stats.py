"""A sweep's statistics: one row per setting over its seeds, and the setting chosen on validation.

For each setting and each quantity (the task's validation and test metric, SET pulses, RESETs,
saturated devices, the estimated energy of training and of inference per time step on the
simulated chip (``results.json`` → ``cost``, :mod:`pcmsim.cost`; hardware runs), wall times of the
whole point and of its training) over the seeds that finished:
the number of values, the mean, the sample standard deviation and the 95 % interval of the mean from Student's t
distribution (``mean ± t₀.₉₇₅,ₙ₋₁ · std / √n``; none for one seed). The selected setting has the
best mean **validation** metric among the settings whose every seed finished; the test metric
never takes part in the choice.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from pcmsim.fileio import atomic_write

from .checkpoint import write_json
from .sweep_point import COST_QUANTITIES, QUANTITIES, point_record
from .sweep_spec import axis_paths

STATS = ("n", "mean", "std", "ci95_low", "ci95_high")
def describe(values: list[float]) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``std`` (ddof 1) and the t-distribution 95 % interval of the mean."""
    vals = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95_low": None, "ci95_high": None}
    mean = math.fsum(vals) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci95_low": None, "ci95_high": None}
    from scipy.stats import t

    std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


def quantities(metric: str) -> list[str]:
    return [f"valid_{metric}", f"test_{metric}", *QUANTITIES, *COST_QUANTITIES, "wall_time_s", "train_wall_time_s"]


def read_records(out_dir: str | Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every point's record (state and numbers) from its folder under ``out_dir/points``."""
    points = Path(out_dir) / "points"
    records = {}
    for p in manifest["points"]:
        records[p["id"]] = point_record(points / p["id"], manifest["metric"])
    return records


def summarize(manifest: dict[str, Any], records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The summary of a sweep (``sweep.json``'s manifest) from its point records."""
    metric, higher = manifest["metric"], bool(manifest["higher_is_better"])
    names = quantities(metric)
    rows: list[dict[str, Any]] = []
    for setting in manifest["settings"]:
        mine = [records[p["id"]] for p in manifest["points"] if p["setting"] == setting["index"]]
        done = [r for r in mine if r["status"] == "done"]
        row: dict[str, Any] = {
            "setting": setting["index"], "label": setting["label"], "values": setting["values"],
            "points": len(mine), "done": len(done), "failed": sum(r["status"] == "failed" for r in mine),
            "pending": sum(r["status"] in ("pending", "interrupted") for r in mine),
            "errors": sorted({str(r["error"]) for r in mine if r["status"] == "failed"}), "selected": False,
        }
        for name in names:
            row[name] = describe([r[name] for r in done if name in r])
        rows.append(row)
    key = f"valid_{metric}"
    eligible = [r for r in rows if r["done"] == r["points"] and r[key]["mean"] is not None]
    selected = None
    if eligible:
        best = (max if higher else min)(eligible, key=lambda r: r[key]["mean"])
        best["selected"] = True
        selected = {"setting": best["setting"], "label": best["label"], "values": best["values"],
                    key: best[key]["mean"], f"test_{metric}": best[f"test_{metric}"]["mean"]}
    if selected is not None:
        note = f"lowest mean {key}" if not higher else f"highest mean {key}"
        note += " among settings whose every seed finished (the test metric is never used)"
    elif not any(r[key]["n"] for r in rows):
        note = f"none: the runs report no {key} (the task config has no validation split)"
    else:
        note = "none yet: no setting has finished every seed"
    counts = {state: sum(r["status"] == state for r in records.values())
              for state in ("done", "failed", "interrupted", "pending")}
    return {
        "name": manifest["name"], "source": manifest["source"], "task": manifest["task"], "metric": metric,
        "higher_is_better": higher, "axes": list(manifest["axes"]),
        "paths": [p for axis in manifest["axes"] for p in axis_paths(axis)], "seeds": manifest["seeds"],
        "points": {"total": len(records), **counts}, "selected": selected, "selection": note,
        "quantities": names, "settings": rows,
    }


def csv_text(summary: dict[str, Any]) -> str:
    """``summary.csv``: one row per setting, the axis values, counts and every statistic."""
    axes, names = summary["paths"], summary["quantities"]
    header = ["setting", *axes, "points", "done", "failed", "pending", "selected"]
    header += [f"{q}_{s}" for q in names for s in STATS]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in summary["settings"]:
        cells: list[Any] = [row["setting"]]
        cells += [_cell(row["values"].get(a)) for a in axes]
        cells += [row["points"], row["done"], row["failed"], row["pending"], int(row["selected"])]
        cells += [_cell(row[q][s]) for q in names for s in STATS]
        writer.writerow(cells)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"))


def write_summary(out_dir: str | Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.csv`` (atomically) into ``out_dir``."""
    out = Path(out_dir)
    write_json(out / "summary.json", summary)
    text = csv_text(summary)
    atomic_write(out / "summary.csv", lambda fh: fh.write(text))
    return out / "summary.json", out / "summary.csv"
