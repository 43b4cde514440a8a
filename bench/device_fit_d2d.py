"""The device-to-device std that ``pcmsim device fit`` gives on aihwkit's PCM preset, run to run (issue 23).

The file of ``tests/test_device_fit_aihwkit.py`` (300 devices × 2 RESET cycles × 20 pulses, read
noise 2 % of G + 0.1 µS, the read-noise file beside it) is fitted several times, and each fitted
``d2d_rel_std`` is divided by the truth of the file's own devices (the std of their step scales
over their mean, not the population's 0.206):

- ``aihwkit``: aihwkit's C++ simulator, the same devices every run (each tile's
  ``construction_seed``) and new cycle-to-cycle draws (its generator takes no seed): the spread of
  these runs is what the test's bounds must hold;
- ``port``: pcmsim's seeded port of the preset (``pcm-aihwkit-preset``), new devices per seed;
- ``port-kappa-0.2``: the port with the multiplicative cycle-to-cycle std ``dw_min_std`` 0.6 → 0.2;
- ``round-trip``: the fitted model of the first ``port`` run, its factor set to a normal of std 0.2
  and κ to the preset's 0.6, sampled and fitted again (the fit's own laws: what the filter does
  where its model holds).

``--causes`` instead fits the port with one part changed at a time (:data:`CAUSES`: no clip per
device, RESET off the floor, 20 knots, 5 cycles per device, a purely multiplicative cycle-to-cycle
law with and without the devices' own ranges, one RESET level for all devices, reads 10 times more
precise): which part of the preset, the
file or the fit moves the ratio. ``--only A,B`` runs those cases alone.

Each run's standard error of the factor's std (the fit's observed information) is recorded beside
it: against the runs' scatter, what the fit says of its own precision. Writes
``bench/results/device_fit_d2d.json`` (each run, each case's mean ± std of the ratio)::

    python bench/device_fit_d2d.py [--seeds 4] [--aihwkit-runs 6] [--workers 2]
    python bench/device_fit_d2d.py --causes --seeds 3 --out bench/results/device_fit_d2d_causes.json
    python bench/device_fit_d2d.py --curve-spread --seeds 3   # the spread of the step curve along G
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from _benchutil import machine_info, write_json  # noqa: E402
from device_fit_aihwkit import AIHWKIT_PRESET, AihwkitPreset, AihwkitPresetPort, model_cycles  # noqa: E402
from device_fit_generators import fit_on_one_thread, write_pulse_file  # noqa: E402

from device_models.empirical import EmpiricalDevice, EmpiricalParams  # noqa: E402

N_DEV, N_CYC, N_PULSES, FILE_SEED = 300, 2, 20, 1  # the test's file
ROUND_TRIP_D2D, ROUND_TRIP_KAPPA = 0.2, 0.6


@dataclasses.dataclass(frozen=True)
class RoundTrip(AihwkitPreset):
    """A fitted empirical model as the generator (the read noise of the preset's instrument)."""

    name: str = "round-trip"
    model_params: EmpiricalParams | None = None

    def traces(self, n_devices: int, n_pulses: int, n_cycles: int, seed: int,
               start_us: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return model_cycles(EmpiricalDevice(self.model_params), n_devices, n_pulses, n_cycles, seed)

    def sample_d2d_rel_std(self, n_devices: int, seed: int) -> float:
        return ROUND_TRIP_D2D  # the factor's law (its draws are not kept apart from the sampler's)


CAUSES = {  # --causes: the port with one part of the preset (or of the file, or of the fit) changed
    "port-w_max_dtod-0": ({"preset_overrides": (("w_max_dtod", 0.0),)}, N_CYC, 10),  # no clip per device
    "port-reset-0.1": ({"preset_overrides": (("reset", 0.1),)}, N_CYC, 10),  # RESET at 1.25 µS, off the floor
    "port-knots-20": ({}, N_CYC, 20),  # 20 knots in the fit instead of 10
    "port-cycles-5": ({}, 5, 10),  # 5 RESET cycles per device instead of 2
    # the cycle-to-cycle law purely multiplicative, dw·(1 + 0.6·ξ): no additive part, none growing with w
    "port-c2c-multiplicative": ({"preset_overrides": (("dw_min_std_add", 0.0), ("dw_min_std_slope", 0.0))},
                                N_CYC, 10),
    # the same without the devices' own ranges (w_max_dtod 0): aihwkit's ExpStep takes each step's curve
    # on the device's own range, z = 2a·w/(w_max_d − w_min_d) + b, so a device with a wider range steps
    # more at a given w than its scale says (and this file's devices do not reach their clips)
    "port-c2c-multiplicative-w_max_dtod-0": ({"preset_overrides": (("dw_min_std_add", 0.0),
                                                                   ("dw_min_std_slope", 0.0), ("w_max_dtod", 0.0))},
                                             N_CYC, 10),
    "port-reset_dtod-0": ({"preset_overrides": (("reset_dtod", 0.0),)}, N_CYC, 10),  # one RESET level for all
    # reads 10 times more precise (0.2 % of G + 0.01 µS), the read-noise file from the same instrument
    "port-reads-0.1x": ({"read_rel": 0.002, "read_add_us": 0.01}, N_CYC, 10),
}
"""Each case of ``--causes``: keyword arguments of the port (its preset's parameters in
``preset_overrides``, or its instrument's read noise), RESET cycles per device, knots of the fit."""


def curve_spread(seed: int, g_us: tuple[float, ...] = (1.0, 3.0, 6.0, 10.0, 15.0, 20.0)) -> dict[str, Any]:
    """The device-to-device spread of the port's mean step at each conductance of ``g_us``, over the
    ``N_DEV`` devices of the file of ``seed``: the std of each device's mean step over its mean
    (``AihwkitPresetDevice.mean_step_w``: aihwkit's ExpStep, the curve on each device's own range), the
    devices whose clip lies above G;
    beside it the std of the scale alone (the fit's device-to-device truth), and how close the file's
    devices come to their own clips (the largest latent G over the device's clip)."""
    dev = AihwkitPresetPort()._device()
    state = dev.init_state((N_DEV,), generator=torch.Generator().manual_seed(seed))
    scale, top = dev.scale_up(state).double(), dev.max_bound(state).double()
    out: dict[str, Any] = {"seed": seed, "scale": float(scale.std() / scale.mean()), "at_g_us": {}}
    for g in g_us:
        w = g / dev.us_per_w
        m = dev.mean_step_w(state, w).double()[top > w]
        out["at_g_us"][g] = float(m.std() / m.mean())
    for case, kw in (("port", {}), ("port-c2c-multiplicative", CAUSES["port-c2c-multiplicative"][0])):
        traces, devs = AihwkitPresetPort(**kw).traces(N_DEV, N_PULSES, N_CYC, seed)  # the file's latent G
        out.setdefault("largest_over_own_clip", {})[case] = float(
            (traces.max(dim=1).values / (top * dev.us_per_w)[devs]).max())
    return out


def _one(job: tuple[str, Any, int, str, int, int]) -> dict[str, Any]:
    case, source, seed, reads, n_cycles, n_knots = job
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        pulse = write_pulse_file(source, Path(d) / "p.csv", N_DEV, N_PULSES, n_cycles, seed)
        if (source.read_rel, source.read_add_us) != (AIHWKIT_PRESET.read_rel, AIHWKIT_PRESET.read_add_us):
            reads = source.write_reads(Path(d) / "r.csv", 1000, 10, seed=3)  # its own instrument's read noise
        res = fit_on_one_thread({"pulse": pulse, "read-noise": reads}, n_knots=n_knots).result
    truth = source.sample_d2d_rel_std(N_DEV, seed)
    p, q = res.params, res.quality["pulse_response"]
    return {"case": case, "seed": seed, "cycles": n_cycles, "knots": n_knots, "truth": truth,
            "d2d_rel_std": p["d2d_rel_std"], "d2d_law": p["d2d_law"],
            "ratio": p["d2d_rel_std"] / truth, "kappa": p["c2c_rel_std"], "c2c_law": q["c2c_law"]["law"],
            "c2c_shape": p["c2c_shape"],
            "d2d_se": (q["standard_errors"] or {}).get("d2d_rel_std"),
            "kappa_se": (q["standard_errors"] or {}).get("c2c_rel_std"),
            "d2d_kappa_correlation": q.get("d2d_kappa_correlation"),
            "clip_d2d_kept": q["clip_d2d_kept"], "clip_d2d_lr_statistic": q["clip_d2d_lr_statistic"],
            "history_kept": q["history_kept"],
            "fit_s": round(time.perf_counter() - t0, 1), "params": p if case == "port" and seed == 1 else None}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        r = [x["ratio"] for x in rows if x["case"] == case]
        se = [x["d2d_se"] / x["truth"] for x in rows if x["case"] == case and x["d2d_se"] is not None]
        out[case] = {"runs": len(r), "ratio_mean": statistics.fmean(r),
                     "ratio_std": statistics.stdev(r) if len(r) > 1 else 0.0, "ratio_min": min(r), "ratio_max": max(r),
                     "se_over_truth_mean": statistics.fmean(se) if se else None, "runs_with_se": len(se)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4, help="seeds of the port's cases")
    ap.add_argument("--aihwkit-runs", type=int, default=6, help="runs of aihwkit's C++ simulator (0: none)")
    ap.add_argument("--causes", action="store_true",
                    help="instead: the port with one part changed at a time (" + ", ".join(CAUSES) + ")")
    ap.add_argument("--only", default="", help="with --causes: these cases alone (comma-separated)")
    ap.add_argument("--curve-spread", action="store_true",
                    help="instead: the devices' spread of the port's mean step at several G (no fit; printed)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="bench/results/device_fit_d2d.json", help="relative to the repository")
    args = ap.parse_args()
    if args.curve_spread:
        for seed in range(1, args.seeds + 1):
            c = curve_spread(seed)
            at = ", ".join(f"{g:g} µS {v:.3f}" for g, v in c["at_g_us"].items())
            clip = ", ".join(f"{case} {v:.0%}" for case, v in c["largest_over_own_clip"].items())
            print(f"seed {seed}: the scale {c['scale']:.4f}; the mean step at {at}; the file's largest G over "
                  f"its device's own clip: {clip}")
        return 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        reads = AIHWKIT_PRESET.write_reads(Path(d) / "r.csv", 1000, 10, seed=3)  # the test's read-noise file
        seeds = range(1, args.seeds + 1)
        if args.causes:
            only = [c for c in args.only.split(",") if c]
            unknown = [c for c in only if c not in CAUSES]
            if unknown:
                ap.error(f"--only {','.join(unknown)}: unknown; expected some of {', '.join(CAUSES)}")
            jobs = [(case, AihwkitPresetPort(name=case, **kw), s, reads, n_cyc, n_knots)
                    for case, (kw, n_cyc, n_knots) in CAUSES.items() if not only or case in only for s in seeds]
        else:
            low = AihwkitPresetPort(name="port-kappa-0.2", preset_overrides=(("dw_min_std", 0.2),))
            jobs = ([("port", AihwkitPresetPort(), s, reads, N_CYC, 10) for s in seeds]
                    + [("port-kappa-0.2", low, s, reads, N_CYC, 10) for s in seeds]
                    + [("aihwkit", AIHWKIT_PRESET, FILE_SEED, reads, N_CYC, 10) for _ in range(args.aihwkit_runs)])
        with mp.get_context("spawn").Pool(args.workers) as pool:
            rows = pool.map(_one, jobs, chunksize=1)
            base = next((r["params"] for r in rows if r["params"] is not None), None)
        if base is not None:
            fitted = EmpiricalParams(**{k: v for k, v in base.items() if k in {f.name for f in
                                                                                 dataclasses.fields(EmpiricalParams)}})
            rt_params = dataclasses.replace(fitted, d2d_rel_std=ROUND_TRIP_D2D, d2d_law="normal",
                                            c2c_rel_std=ROUND_TRIP_KAPPA, g_max_rel_std=0.0)
            rt = RoundTrip(model_params=rt_params)
            with mp.get_context("spawn").Pool(args.workers) as pool:
                rows += pool.map(_one, [("round-trip", rt, s, reads, N_CYC, 10) for s in seeds], chunksize=1)
    for r in rows:
        r.pop("params")
        se = f" ± {r['d2d_se']:.4f}" if r["d2d_se"] is not None else " (no standard error)"
        print(f"{r['case']:15s} seed {r['seed']}: d2d {r['d2d_rel_std']:.4f}{se} ({r['d2d_law']}) against "
              f"{r['truth']:.4f}: ×{r['ratio']:.3f}; κ {r['kappa']:.3f} ({r['c2c_law']}, {r['c2c_shape']}); "
              f"{r['fit_s']:.0f} s")
    summary = _summary(rows)
    for case, s in summary.items():
        se = f"{s['se_over_truth_mean']:.3f}" if s["se_over_truth_mean"] is not None else "none"
        print(f"{case:15s} ratio {s['ratio_mean']:.3f} ± {s['ratio_std']:.3f} ({s['runs']} runs, "
              f"{s['ratio_min']:.3f}–{s['ratio_max']:.3f}); mean standard error / truth {se} "
              f"({s['runs_with_se']} runs with one)")
    write_json(REPO / args.out, {"command": " ".join(sys.argv), "machine": machine_info(torch),
                                 "file": {"devices": N_DEV, "cycles": N_CYC, "pulses": N_PULSES},
                                 "summary": summary, "runs": rows, "wall_s": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
