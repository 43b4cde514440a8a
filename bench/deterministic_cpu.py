"""The cost of the opt-in CPU-portable mode on one machine: ``pcmsim reproduce jsb-52800 --quick`` with
and without ``MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default``, side by side.

    python bench/deterministic_cpu.py                       # 3 runs per mode → bench/results/deterministic_cpu.json
    python bench/deterministic_cpu.py --repeats 5 --out FILE

Each run is a fresh process (the variables are read when torch loads MKL and its kernels), one torch
thread, a fresh run folder; the two modes alternate so that a change of the machine's load falls on
both. Recorded per mode: wall times, the CPU capability torch dispatched to, whether the runs of a
mode gave identical ``results.json`` files, and the headline numbers (the two modes may follow
different trajectories: their kernels round differently). What this does not measure: identity
across CPU types (it runs on one machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PORTABLE = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"}
MODES = {"normal": {}, "portable": PORTABLE}
HEADLINE = ("test_nll", "fp32_test_nll", "pulses_set", "best_epoch")


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **extra}


def capability(extra: dict[str, str]) -> str:
    """The CPU capability torch dispatches its vectorised kernels to under these variables."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", code], env=_env(extra), capture_output=True, text=True,
                          check=True).stdout.strip()


def run_once(extra: dict[str, str], out: Path) -> tuple[float, dict[str, Any]]:
    cmd = [sys.executable, "-m", "hardware_in_loop.cli", "--threads", "1", "reproduce", "jsb-52800", "--quick",
           "--quiet", "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(extra), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wall, json.loads((out / "results.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode (default 3)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "deterministic_cpu.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch
    from _benchutil import machine_info, median, write_json

    walls: dict[str, list[float]] = {m: [] for m in MODES}
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for mode, extra in MODES.items():
                wall, result = run_once(extra, Path(tmp) / f"{mode}-{i}")
                walls[mode].append(round(wall, 2))
                results[mode].append(result)
                print(f"{mode} run {i + 1}/{args.repeats}: {wall:.1f} s, test NLL {result['test_nll']:.4f}",
                      flush=True)
    report: dict[str, Any] = {
        "command": "pcmsim --threads 1 reproduce jsb-52800 --quick --quiet (a fresh process and folder per run)",
        "portable_env": PORTABLE,
        "machine": machine_info(torch),
        "repeats": args.repeats,
        "modes": {},
    }
    for mode, extra in MODES.items():
        runs = results[mode]
        report["modes"][mode] = {
            "env": extra,
            "cpu_capability": capability(extra),
            "wall_s": walls[mode],
            "wall_s_median": round(median(walls[mode]), 2),
            "runs_identical": all(r == runs[0] for r in runs),
            "headline": {k: runs[0][k] for k in HEADLINE},
        }
    report["wall_ratio_portable_over_normal"] = round(median(walls["portable"]) / median(walls["normal"]), 3)
    report["modes_identical"] = results["portable"][0] == results["normal"][0]
    write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
