"""The deployment study's table from a finished (or partly finished) deployment sweep folder.

    pcmsim sweep configs/sweeps/deployment-digits.json --out runs/sweeps/deployment-digits
    python bench/deployment.py runs/sweeps/deployment-digits

Per method (FP32 → programmed once, HWA → programmed once, HIL mixed precision, HIL program-and-verify)
and compensation mode: the task's metric (accuracy, or NLL for music) at every delay, mean ± std over the
seeds that finished; the programming pulses (programmed once: the one transfer; HIL: the initial transfer
plus every training pulse) and their energy by the cost model (``pcmsim.cost``, default profile: pulses
and verify reads), and for HIL the chip's whole training energy (``cost.train.energy_j_total``, with the
digital side). Writes ``bench/results/<sweep name>.json`` and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROGRAMMING_PARTS = ("programming", "verify", "initial_programming")
"""The cost model's entries of a HIL run's training energy that are device programming (J)."""


def method(values: dict[str, Any]) -> str:
    flavour = values.get("flavour")
    if flavour == "fp32":
        return "FP32 → programmed once"
    if flavour == "hwa":
        return "HWA → programmed once"
    return f"HIL {values.get('update_scheme', 'mixed-precision')}"


def point_numbers(results: dict[str, Any], metric: str) -> dict[str, Any]:
    """The drift rows as ``{"<delay>/<mode>": metric}``, pulses and energies of one finished point."""
    out: dict[str, Any] = {f"{r['delay']}/{r['compensation']}": r[metric] for r in results.get("drift", [])}
    if "programming_pulses" in results:  # programmed once
        out["pulses"] = float(results["programming_pulses"])
        out["programming_energy_j"] = float(results["programming_energy_j"])
    else:
        layers = results.get("hardware_counts", {}).get("layers", [])
        initial = sum(float(layer["initial"]["pulses"]) for layer in layers)
        out["pulses"] = float(results.get("pulses_set", 0)) + initial
        energy = results.get("cost", {}).get("train", {})
        out["programming_energy_j"] = sum(float(energy.get("energy_j", {}).get(k, 0.0)) for k in PROGRAMMING_PARTS)
        out["chip_training_energy_j"] = float(energy.get("energy_j_total", float("nan")))
    return out


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def table(sweep_dir: Path) -> dict[str, Any]:
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    metric = "nll" if manifest["task"] == "music" else "accuracy"
    per_setting: dict[int, list[dict[str, Any]]] = {}
    for point in manifest["points"]:
        path = sweep_dir / "points" / point["id"] / "results.json"
        if path.is_file():
            per_setting.setdefault(point["setting"], []).append(point_numbers(json.loads(path.read_text()), metric))
    rows = []
    for setting in manifest["settings"]:
        runs = per_setting.get(setting["index"], [])
        if not runs:
            continue
        keys = [k for k in runs[0] if all(k in r for r in runs)]
        rows.append({"method": method(setting["values"]), "setting": setting["label"],
                     **{k: mean_std([float(r[k]) for r in runs]) for k in keys}})
    return {"sweep": manifest["name"], "metric": metric, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    delays = list(dict.fromkeys(k.split("/")[0] for r in rows for k in r if "/" in k))
    head = (f"| method | compensation | {' | '.join(delays)} | pulses | programming energy (J) "
            f"| chip training energy (J) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        for mode in ("none", "global"):
            cells = [f"{r[f'{d}/{mode}']['mean']:.3f} ± {r[f'{d}/{mode}']['std']:.3f}" if f"{d}/{mode}" in r else "—"
                     for d in delays]
            chip = r.get("chip_training_energy_j")
            lines.append(f"| {r['method']} (n={r['pulses']['n']}) | {mode} | " + " | ".join(cells)
                         + f" | {r['pulses']['mean']:.3g} | {r['programming_energy_j']['mean']:.2g} | "
                         + (f"{chip['mean']:.2g}" if chip else "—") + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir")
    parser.add_argument("--out", default=None, help="default: bench/results/<sweep name>.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from hardware_in_loop.checkpoint import write_json

    result = table(Path(args.sweep_dir))
    text = markdown(result)
    result["markdown"] = text
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"{result['sweep']}.json"
    write_json(out, result)
    print(text)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
