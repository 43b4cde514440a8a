"""Spiking classification benchmark: LIF networks (Gerum & Schilling 2021) in FP32 and with PCM in the loop.

Runs each config in each flavour (the ``pcm`` flavour on the config's ``device_model``, by default
``pcm-nandakumar2018``, with the config's update scheme) on one CPU thread and writes the headline
numbers to ``bench/results/classification.json``; each run's folder goes under ``--runs``.

    python bench/classification.py                          # digits + iris, fp32 + pcm
    python bench/classification.py --configs configs/digits-lif.json --flavours fp32
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ("configs/digits-lif.json", "configs/iris-lif.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="classification configs")
    parser.add_argument("--flavours", nargs="+", default=["fp32", "pcm"], choices=["fp32", "pcm"])
    parser.add_argument("--runs", default="runs/bench-classification", help="folder of the run folders")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "classification.json"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from hardware_in_loop.checkpoint import write_json
    from hardware_in_loop.experiments import run_training
    from hardware_in_loop.tasks import load_config

    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for path in args.configs:
        p = Path(path) if Path(path).is_file() else ROOT / path
        base = json.loads(p.read_text())
        for flavour in args.flavours:
            data = dict(base, flavour=flavour, num_threads=args.threads)
            if flavour == "pcm" and not data.get("drift_times"):
                data["drift_times"] = ["1h", "1d", "1mo"]
            cfg = load_config(data, source=str(p))
            name = f"{cfg.name or p.stem}-{flavour}"
            t0 = time.perf_counter()
            res = run_training(cfg, Path(args.runs) / name, progress=False)
            wall = time.perf_counter() - t0
            row = {
                "run": name,
                "config": str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p),
                **res,
                "bench_wall_time_s": wall,
            }
            rows.append(row)
            print(
                f"{name}: test accuracy {res['final_test_accuracy']:.4f} "
                f"(last epoch {res['epochs']}), {wall:.1f} s"
            )
    out = {
        "benchmark": "classification",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": args.threads,
        "runs": rows,
    }
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
