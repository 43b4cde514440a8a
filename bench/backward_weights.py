"""The 52,800-device experiment with each backward-pass mode, over seeds (issue 12, item 3).

For every seed: the FP32 network (same schedule) and the hardware-in-the-loop run of ``jsb-52800``
with ``backward_weights`` = ``exact``, ``read`` and ``transpose``; each run is an ordinary run
folder under ``--runs`` (finished runs are reused, interrupted ones resumed). Writes
``bench/results/backward_weights.json`` and prints test NLL (at the epoch of best validation NLL)
as mean ± std over seeds.

    python bench/backward_weights.py                      # seeds 0 1 2, two worker processes
    python bench/backward_weights.py --seeds 0 1 2 3 4 --workers 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("exact", "read", "transpose")


def run_one(job: tuple[str, int, str]) -> dict[str, Any]:
    """One run (``flavour`` ``fp32`` or a backward mode) of the experiment at ``seed``."""
    kind, seed, runs = job
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    from hardware_in_loop.experiments import experiment_config, run_training

    config = experiment_config("jsb-52800", seed=seed)
    if kind == "fp32":
        config = config.replace(flavour="fp32", snapshot_epochs=[])
    else:
        config = config.replace(backward_weights=kind)
    out = Path(runs) / f"{kind}-seed{seed}"
    results = run_training(config, out, resume=True, progress=False, log=lambda *_: None)
    keep = ("test_nll", "valid_nll", "best_epoch", "final_test_nll", "pulses_set", "refreshes", "saturated_devices")
    return {"kind": kind, "seed": seed, **{k: results.get(k) for k in keep}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench-backward-weights"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "backward_weights.json"))
    args = ap.parse_args(argv)
    jobs = [(kind, seed, args.runs) for seed in args.seeds for kind in ("fp32", *MODES)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(run_one, jobs))
    table: dict[str, dict[str, float]] = {}
    for kind in ("fp32", *MODES):
        nll = [r["test_nll"] for r in rows if r["kind"] == kind]
        table[kind] = {"mean": statistics.mean(nll), "std": statistics.stdev(nll) if len(nll) > 1 else 0.0,
                       "n": len(nll)}
        print(f"{kind:>10}: test NLL {table[kind]['mean']:.3f} ± {table[kind]['std']:.3f} (n = {len(nll)})")
    sys.path.insert(0, str(ROOT))
    from hardware_in_loop.checkpoint import write_json

    write_json(args.out, {"benchmark": "backward_weights", "experiment": "jsb-52800", "seeds": args.seeds,
                          "command": "python bench/backward_weights.py " + " ".join(argv or sys.argv[1:]),
                          "summary": table, "runs": rows})
    print(f"wrote {args.out}")
    print(json.dumps(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
