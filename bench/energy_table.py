"""The energy table of the headline sweep: the PCM chip against three baselines over seeds, and how
far the comparison moves when each assumed constant moves within its plausible span.

    pcmsim sweep configs/sweeps/jsb-headline.json --out runs/sweeps/jsb-headline
    python bench/energy_table.py runs/sweeps/jsb-headline [--out bench/results/energy_table.json]

Every hardware point of the sweep folder (``points/*/results.json`` with ``hardware_counts``) is
priced again with :func:`pcmsim.cost.estimate` and the default profile: mean ± sample std over
the seeds of training energy and latency per optimiser step, inference energy and latency per time
step, TOPS/W, and the baselines' energies and their ratios to the chip's. Then every constant of
:data:`pcmsim.cost.profile.ASSUMPTION_SPANS` is set to the low and the high end of its span, one at
a time, and the ratios' means are recomputed: the table of ranges says which conclusion holds
whatever the assumptions, and which one does not. The calibration (:mod:`pcmsim.cost.calibration`)
is written beside it. Prints the Markdown tables of ``docs/energy.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _benchutil import write_json  # noqa: E402

from pcmsim.cost import DEFAULT_PROFILE, CostProfile, estimate  # noqa: E402
from pcmsim.cost.calibration import calibration_report  # noqa: E402
from pcmsim.cost.profile import ASSUMPTION_SPANS  # noqa: E402

BASELINES = ("gpu", "cpu", "snn")
NAMES = {"gpu": "dense FP32 GPU", "cpu": "dense FP32 CPU", "snn": "event-driven SNN accelerator"}


def quantities(est: dict[str, Any]) -> dict[str, float]:
    """The numbers of one run's estimate that the table reports."""
    tr, inf, base = est["train"], est["inference"], est["baseline"]
    q = {"train_j_per_step": tr["energy_j_per_step"], "train_s_per_step": tr["latency_s_per_step"],
         "train_j_total": tr["energy_j_total"], "inference_j_per_step": inf["energy_j_per_step_total"],
         "inference_s_per_step": inf["latency_s_per_step"], "tops_per_w_core": inf["tops_per_w"]["core"],
         "tops_per_w_system": inf["tops_per_w"]["system"],
         "digital_share_of_training": (tr["energy_j"]["digital"] + tr["energy_j"]["neurons"] + tr["energy_j"]["sram"]
                                       + tr["energy_j"]["dram"]) / tr["energy_j_total"]}
    for b in BASELINES:
        q[f"{b}_train_j_per_step"] = base[b]["train_energy_j_per_step"]
        q[f"{b}_inference_j_per_step"] = base[b]["inference_energy_j_per_step"]
        q[f"{b}_train_ratio"] = base[b]["train_energy_j_per_step"] / tr["energy_j_per_step"]
        q[f"{b}_inference_ratio"] = base[b]["inference_energy_j_per_step"] / inf["energy_j_per_step_total"]
    return q


def mean_std(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def summarize(counts: list[dict[str, Any]], profile: CostProfile) -> dict[str, dict[str, float | None]]:
    per_run = [quantities(estimate(c, profile)) for c in counts]
    return {k: mean_std([q[k] for q in per_run]) for k in per_run[0]}


def sensitivity(counts: list[dict[str, Any]]) -> dict[str, Any]:
    """The ratios' means at the low and high end of every assumed constant's span (one at a time)."""
    keys = [f"{b}_{kind}_ratio" for kind in ("train", "inference") for b in BASELINES] + ["tops_per_w_system"]
    out: dict[str, Any] = {}
    for name, (lo, hi) in ASSUMPTION_SPANS.items():
        out[name] = {}
        for end, value in (("low", lo), ("high", hi)):
            p = dataclasses.replace(DEFAULT_PROFILE, **{name: value})
            s = summarize(counts, p)
            out[name][end] = {"value": value, **{k: s[k]["mean"] for k in keys}}
    ranges = {}
    for k in keys:
        vals = [out[n][e][k] for n in out for e in ("low", "high")]
        ranges[k] = {"min": min(vals), "max": max(vals)}
    return {"per_constant": out, "ranges": ranges}


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    for name, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if unit == "J" and abs(x) >= f:
            return f"{x / f:.3g} {name}"
    for name, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if unit == "s" and abs(x) >= f:
            return f"{x / f:.3g} {name}"
    return f"{x:.3g}"


def _pm(s: dict[str, float | None], unit: str = "") -> str:
    if s["std"] is None:
        return _fmt(s["mean"], unit)
    if unit in ("J", "s"):
        return f"{_fmt(s['mean'], unit)} ± {_fmt(s['std'], unit)}"
    return f"{s['mean']:.3g} ± {s['std']:.2g}"


def markdown(result: dict[str, Any]) -> str:
    s, rng = result["summary"], result["sensitivity"]["ranges"]
    n = s["train_j_per_step"]["n"]
    lines = [f"| per step, mean ± std over {n} seeds | PCM chip | {' | '.join(NAMES[b] for b in BASELINES)} |",
             "|---|---|---|---|---|",
             f"| training energy / optimiser step | {_pm(s['train_j_per_step'], 'J')} | "
             + " | ".join(_pm(s[f"{b}_train_j_per_step"], "J") for b in BASELINES) + " |",
             "| baseline ÷ PCM chip, training | 1 | "
             + " | ".join(f"{_pm(s[f'{b}_train_ratio'])} (range {rng[f'{b}_train_ratio']['min']:.3g}–"
                          f"{rng[f'{b}_train_ratio']['max']:.3g})" for b in BASELINES) + " |",
             f"| inference energy / time step | {_pm(s['inference_j_per_step'], 'J')} | "
             + " | ".join(_pm(s[f"{b}_inference_j_per_step"], "J") for b in BASELINES) + " |",
             "| baseline ÷ PCM chip, inference | 1 | "
             + " | ".join(f"{_pm(s[f'{b}_inference_ratio'])} (range {rng[f'{b}_inference_ratio']['min']:.3g}–"
                          f"{rng[f'{b}_inference_ratio']['max']:.3g})" for b in BASELINES) + " |",
             f"| training latency / optimiser step | {_pm(s['train_s_per_step'], 's')} | | | |",
             f"| inference latency / time step | {_pm(s['inference_s_per_step'], 's')} | | | |",
             f"| TOPS/W at inference: analog core, system | {_pm(s['tops_per_w_core'])}, "
             f"{_pm(s['tops_per_w_system'])} (range {rng['tops_per_w_system']['min']:.3g}–"
             f"{rng['tops_per_w_system']['max']:.3g}) | | | |",
             f"| digital share of the chip's training energy | {_pm(s['digital_share_of_training'])} | | | |",
             "",
             "| assumed constant (low → high) | GPU÷chip training | SNN÷chip training | GPU÷chip inference | "
             "SNN÷chip inference |",
             "|---|---|---|---|---|"]
    for name, ends in result["sensitivity"]["per_constant"].items():
        lo, hi = ends["low"], ends["high"]
        lines.append(f"| `{name}` {lo['value']:.3g} → {hi['value']:.3g} | "
                     + " | ".join(f"{lo[k]:.3g} → {hi[k]:.3g}" for k in ("gpu_train_ratio", "snn_train_ratio",
                                                                          "gpu_inference_ratio",
                                                                          "snn_inference_ratio")) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", help="a finished sweep folder (points/*/results.json)")
    ap.add_argument("--out", default="bench/results/energy_table.json")
    args = ap.parse_args(argv)
    runs = []
    for path in sorted(Path(args.sweep).glob("points/*/results.json")):
        results = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(results.get("hardware_counts"), dict):
            runs.append({"point": path.parent.name, "seed": results.get("seed"), "epochs": results.get("epochs"),
                         "test_nll": results.get("test_nll"), "counts": results["hardware_counts"]})
    if not runs:
        print(f"{args.sweep}: no hardware point with hardware_counts", file=sys.stderr)
        return 2
    counts = [r["counts"] for r in runs]
    result = {"sweep": str(args.sweep), "profile": DEFAULT_PROFILE.name,
              "runs": [{k: v for k, v in r.items() if k != "counts"} for r in runs],
              "summary": summarize(counts, DEFAULT_PROFILE), "sensitivity": sensitivity(counts),
              "calibration": calibration_report()}
    write_json(args.out, result)
    print(markdown(result))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
