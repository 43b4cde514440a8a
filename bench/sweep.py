"""Sweep throughput: points per hour on 1 and 2 Dask workers (a LocalCluster on 127.0.0.1).

The points are short runs of the 52,800-device experiment (``jsb-52800``: the whole JSB training
set, ``--epochs`` epochs, drift evaluated at 1 day), one per seed, so that every point costs the
same. Each worker count runs the same sweep into a fresh folder; the wall time covers the whole
``run_sweep`` call (cluster start, worker start-up with its imports, every point, the summary).
The summaries are compared across worker counts (they must be equal but for wall times). The CPU
seconds of the whole run (this process and the worker processes) give the throughput the worker
count would reach on otherwise idle cores: ``workers · 3600 / CPU s per point``.

    python bench/sweep.py                     # 8 points of 4 epochs on 1 and 2 workers
    python bench/sweep.py --points 4 --epochs 2 --workers 1 2

Writes ``bench/results/sweep.json``. On a 2-core machine with 2 workers each point also competes
with whatever else runs there: the load averages before and after each run are saved beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(summary))
    for row in out["settings"]:
        row.pop("wall_time_s", None)
        row.pop("train_wall_time_s", None)
    return out


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the local cluster's worker
    processes, reaped when the cluster closes): user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to measure (0: in this process, without Dask)")
    parser.add_argument("--points", type=int, default=8, help="points per sweep (seeds 0 … N-1)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per point")
    parser.add_argument("--runs", default="runs/bench-sweep", help="folder of the sweep folders (emptied first)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sweep.json"))
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from _benchutil import machine_info, write_json

    from hardware_in_loop.sweep import run_sweep

    spec = {
        "name": "bench-sweep", "base": "jsb-52800",
        "overrides": {"epochs": args.epochs, "patience": None, "drift_times": ["1d"], "snapshot_epochs": []},
        "seeds": args.points,
    }
    info = machine_info(torch)
    runs: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    for workers in args.workers:
        folder = Path(args.runs) / f"workers-{workers}"
        shutil.rmtree(folder, ignore_errors=True)
        load_before = list(os.getloadavg())
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        summary = run_sweep(spec, folder, workers=workers, progress=False, log=lambda _line: None)
        wall = time.perf_counter() - t0
        cpu = _cpu_s() - cpu0
        row = summary["settings"][0]
        run = {
            "workers": workers, "points": args.points, "done": summary["points"]["done"], "wall_s": wall,
            "points_per_hour": args.points / wall * 3600.0,
            "mean_point_wall_s": row["wall_time_s"]["mean"], "mean_point_train_s": row["train_wall_time_s"]["mean"],
            "loadavg_before": load_before, "loadavg_after": list(os.getloadavg()),
            "cpu_s": cpu, "cpu_s_per_point": cpu / args.points,
            "cpu_bound_points_per_hour": max(workers, 1) * 3600.0 * args.points / cpu,
        }
        runs.append(run)
        summaries.append(summary)
        print(f"{workers} worker(s): {args.points} points in {wall:.1f} s = {run['points_per_hour']:.0f} points/hour "
              f"(a point: {run['mean_point_wall_s']:.1f} s, of which training {run['mean_point_train_s']:.1f} s; "
              f"load {load_before[0]:.2f} → {run['loadavg_after'][0]:.2f}; {run['cpu_s_per_point']:.1f} CPU s a "
              f"point, {run['cpu_bound_points_per_hour']:.0f} points/hour on {max(workers, 1)} free core(s))",
              flush=True)
    base = runs[0]["points_per_hour"]
    for run in runs:
        run["speedup_vs_first"] = run["points_per_hour"] / base
    same = all(_comparable(s) == _comparable(summaries[0]) for s in summaries)
    command = "python bench/sweep.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {
        "benchmark": "sweep", "command": command.strip(),
        "workload": {"base": "jsb-52800", "epochs": args.epochs, "points": args.points, "drift_times": ["1d"]},
        "machine": info, "runs": runs, "same_summary_across_worker_counts": same,
    }
    write_json(args.out, result)
    print(f"speed-up {runs[-1]['speedup_vs_first']:.2f}× on {runs[-1]['workers']} workers; summaries equal: {same}; "
          f"→ {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
