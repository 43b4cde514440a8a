"""Where the time of ``pcmsim device fit``'s pulse-response fit goes (issue 23: the fit was not
profiled).

Writes an ``exp-sat`` pulse-response file (``tests/device_fit_generators.py``; ``--n-devices`` ×
``--cycles`` RESET cycles × ``--pulses`` pulses, read noise on every read) and times one evaluation
of the likelihood with its gradient (what the optimiser calls once per iteration) for the layouts
the fit goes through: the base model, with the device factor (Gauss-Hermite nodes per device) and
with the factor and the pulse-history terms. One CPU thread (as the fit's tests and bench). Then
``torch.profiler`` on the largest layout: the operators by self CPU time. Writes
``bench/results/device_fit_profile.json``.

    python bench/device_fit_profile.py [--n-devices 1500] [--cycles 2] [--pulses 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from _benchutil import machine_info, median, write_json  # noqa: E402
from device_fit_generators import EXP_SAT  # noqa: E402

from device_models.fit_filter import D2D_ADAPTED_NODES, D2D_NODES, PulseLikelihood, _Layout  # noqa: E402
from device_models.measurements import read_pulse_csv  # noqa: E402

N_KNOTS = 16
"""The fit's default knots (``pcmsim device fit --knots``)."""


def _start(lay: _Layout) -> np.ndarray:
    """A plausible parameter vector for ``lay`` (exp-sat's scale): the timing does not depend on it."""
    k = lay.k
    x = [*np.linspace(2.4, 0.0, k), *np.full(lay.n_s, 0.3)]
    x += [0.3] if lay.kappa else []
    x += [25.0] if lay.fit_cap else []
    x += [0.1, 0.02] if lay.joint_noise else []
    x += [0.1, 0.05, np.log(3.0)] if lay.history else []
    x += [0.15] if lay.d2d else []
    return np.array(x)


def time_layout(lik: PulseLikelihood, lay: _Layout, repeats: int, frozen: bool = True) -> float:
    """Median seconds of one negative log-likelihood with its gradient: as the optimiser calls it, with
    the device factor's nodes held (``frozen``), or as a single evaluation that places them first."""
    times = []
    x0 = torch.tensor(_start(lay), dtype=torch.float64)
    with lik.frozen_nodes(x0, lay) if frozen else contextlib.nullcontext():
        for _ in range(repeats):
            x = x0.clone().requires_grad_(True)
            t = time.perf_counter()
            lik.nll(x, lay).backward()
            times.append(time.perf_counter() - t)
    return median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-devices", type=int, default=1500)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--pulses", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="bench/results/device_fit_profile.json", help="relative to the repository")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = read_pulse_csv(EXP_SAT.write_pulses(Path(tmp) / "p.csv", args.n_devices, args.pulses, args.cycles,
                                                   seed=1))
    lik = PulseLikelihood(data, n_knots=N_KNOTS, floor_us=None, cap_us=None, noise_table=None)
    layouts = {"base": _Layout(N_KNOTS, True, True, False, False),
               "device factor": _Layout(N_KNOTS, True, True, False, True),
               "device factor and history": _Layout(N_KNOTS, True, True, True, True)}
    rows = {}
    for name, lay in layouts.items():
        nodes = f"{D2D_NODES} fixed (no gradient), then {D2D_ADAPTED_NODES} adapted" if lay.d2d else "none"
        rows[name] = {"seconds": time_layout(lik, lay, args.repeats), "quadrature_nodes": nodes}
        if lay.d2d:  # a single evaluation: the nodes placed first (9 fixed nodes, no gradient)
            rows[name]["seconds_placing_the_nodes"] = time_layout(lik, lay, args.repeats, frozen=False)
        print(f"{name}: {rows[name]['seconds'] * 1e3:.1f} ms per likelihood and gradient", flush=True)
    factor_over_base = rows["device factor"]["seconds"] / rows["base"]["seconds"]
    lay = layouts["device factor and history"]
    x = torch.tensor(_start(lay), dtype=torch.float64, requires_grad=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        lik.nll(x, lay).backward()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    top = [{"op": e.key, "self_cpu_share": e.self_cpu_time_total / total, "calls": e.count} for e in events[:15]]
    for r in top:
        print(f"  {r['op']:<40} {r['self_cpu_share']:6.1%}  ({r['calls']} calls)")
    write_json(REPO / args.out, {"command": " ".join(sys.argv), "machine": machine_info(torch), "size": vars(args),
                          "reads": int(lik.n_reads), "layouts": rows,
                          "device_factor_over_base": factor_over_base, "top_ops_by_self_cpu": top})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
