"""``pcmsim device``: list the registered device models, plot one, fit one to measurements.

    pcmsim device list [--params]      # --params: also each model's constants, ε and refresh rule
    pcmsim device plot MODEL --out DIR [--n-devices N] [--seed S] [--format png|pdf] [--set NAME=VALUE ...]
    pcmsim device fit MEASUREMENTS... --out my-device.json [--knots N] [--seed S] [--no-report] [--strict]

A MEASUREMENTS entry is ``PATH`` (a pulse-response CSV, recognised by its ``pulse`` column) or
``KIND=PATH`` with KIND ``pulse``, ``drift`` or ``read-noise`` (see docs/device-fit.md).
MODEL may be a registered name or a fitted device's JSON file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from .options import non_negative_int, parse_set, positive_int


def _summary(name: str, cls: type) -> str:
    """First line of the model's module docstring (``name``: …), else of its class docstring."""
    for doc in ((sys.modules.get(cls.__module__).__doc__ if cls.__module__ in sys.modules else None), cls.__doc__):
        lines = (doc or "").strip().splitlines()
        if lines and not (lines[0].startswith("``") and not lines[0].startswith(f"``{name}``")):
            return lines[0].removeprefix(f"``{name}``: ").strip()
    return ""


def cmd_list(args: argparse.Namespace) -> int:
    import device_models
    from device_models.registry import _REGISTRY

    for name in device_models.available():
        cls = _REGISTRY[name]
        print(f"{name:26s} {_summary(name, cls)}")
        if args.params:
            for f in dataclasses.fields(cls.Params):
                print(f"    {f.name} = {getattr(cls.Params(), f.name)!r}")
            for line in update_rules(device_models.get(name)):
                print(f"    {line}")
    return 0


def update_rules(model: Any) -> list[str]:
    """What the update schemes take from ``model`` (with its defaults), one line each with the source:
    the granularity ε and the refresh rule."""
    policy = model.refresh_policy()
    return [
        f"update granularity ε = {model.update_granularity_us():.4g} µS; source: {model.granularity_source}",
        f"refresh when {policy.describe()}; source: {policy.source}",
    ]


def cmd_plot(args: argparse.Namespace) -> int:
    import device_models
    from pcmsim.plots.devices import plot_device_model

    if args.n_devices < 2:
        raise ValueError(f"--n-devices {args.n_devices} is invalid: expected an integer ≥ 2")
    overrides = parse_set(args.set)
    # int overrides for float fields are fine; a float field given an int stays numeric
    model = device_models.get(args.model, **overrides)
    from device_models.fit import is_fitted_file

    # a fitted model's figures are named after its file (two fits in one folder do not overwrite each other)
    stem = Path(args.model).name[:-5] if is_fitted_file(args.model) else None
    paths = plot_device_model(model, args.out, n_devices=args.n_devices, seed=args.seed, fmt=args.format, stem=stem)
    for p in paths:
        print(p)
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    """The three measurement files of a model, as ``pcmsim device fit`` reads them."""
    import device_models
    from device_models.measurements import write_measurements

    model = device_models.get(args.model)
    for path in write_measurements(model, args.out_dir, n_devices=args.n_devices, n_pulses=args.n_pulses,
                                   seed=args.seed):
        print(path)
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit, then write the model's JSON and its report together (all or nothing): a bad file, a fit
    that fails its checks or a report that cannot be written leaves whatever was at ``--out`` intact."""
    from device_models.fit import fit_measurements
    from device_models.fit_report import se_text
    from device_models.fit_save import check_out, write_fitted
    from device_models.fit_series import read_noise_law_text

    if args.knots < 2:
        raise ValueError(f"--knots {args.knots} is invalid: expected an integer ≥ 2")
    check_out(args.out, not args.no_report)  # before the fit: an --out that cannot be written fails now
    result = fit_measurements(args.measurements, n_knots=args.knots, seed=args.seed, strict=args.strict)
    path, report = write_fitted(result, args.out, report=not args.no_report)
    for w in result.quality.get("warnings", []):
        print(f"pcmsim: warning: {w}", file=sys.stderr)
    print(f"fitted device model: {path}")
    q = result.quality
    if "pulse_response" in q:
        qp = q["pulse_response"]
        print(f"  pulse response: mean programming curve within {qp['mean_curve_max_rel_error']:.2%}, spread within "
              f"{qp['spread_max_rel_error']:.2%} over {qp['pulses_compared']} pulses; history a = "
              f"{result.params['hist_pulses']:.3g} pulses; device-to-device {result.params['d2d_rel_std']:.3g}"
              f"{se_text(qp, 'd2d_rel_std') if qp['d2d_kept'] else ''} "
              f"({result.params['d2d_law']}), "
              f"of the clip {result.params['g_max_rel_std']:.3g}")
    if "drift" in q:
        qd = q["drift"]
        print(f"  drift: {qd['law']} law, t0 = {qd['t0_s']:.4g} s, mean ν = {qd['nu_mean']:.4f}, R² = {qd['r2']:.4f}, "
              f"{qd['gap_before_first_read']:.2%} lost before the first read")
    if "read_noise" in q:
        law = q["read_noise"]["sigma_law"]
        print(f"  read noise: σ = {read_noise_law_text(law)}")
    if report is not None:
        print(f"report: {report}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``device list``, ``plot``, ``measure`` and ``fit`` to a parent parser's sub-commands."""
    p = subparsers.add_parser("device", help="device models: list them, plot their physics")
    sub = p.add_subparsers(dest="device_command", required=True)

    q = sub.add_parser("list", help="list the registered device models")
    q.add_argument("--params", action="store_true",
                   help="also list each model's parameters and defaults, its update granularity ε and refresh rule")
    q.set_defaults(func=cmd_list)

    q = sub.add_parser("plot", help="plot a model: programming curve, histograms, drift, read noise, accuracy")
    q.add_argument("model", help="device model name (see `pcmsim device list`) or a fitted device's JSON file")
    q.add_argument("--out", required=True, help="folder for the five plots")
    q.add_argument("--n-devices", type=positive_int, default=10_000, help="devices simulated per plot (default 10000)")
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--format", choices=["png", "pdf"], default="png")
    q.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a model parameter (repeatable)")
    q.set_defaults(func=cmd_plot)

    q = sub.add_parser("measure", help="measure a model as a lab would: pulses.csv, drift.csv, reads.csv")
    q.add_argument("model", help="device model name or a fitted device's JSON file")
    q.add_argument("out_dir", help="folder for pulses.csv, drift.csv and reads.csv")
    q.add_argument("--n-devices", type=positive_int, default=4000,
                   help="devices of the pulse file (drift, reads: half)")
    q.add_argument("--n-pulses", type=positive_int, default=30, help="SET pulses after the RESET (default 30)")
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.set_defaults(func=cmd_measure)

    q = sub.add_parser("fit", help="fit a device model to measured CSVs (pulse response, drift, read noise)",
                       description="Fit a device model to measurements and write it as a JSON file that loads "
                                   "wherever a device-model name is accepted, with a report next to it.")
    q.add_argument("measurements", nargs="+", metavar="MEASUREMENT",
                   help="PATH (pulse response: device,pulse,g_us) or KIND=PATH, KIND one of pulse, drift, "
                        "read-noise (device,t_s,g_us)")
    q.add_argument("--out", required=True, help="the fitted model's JSON file (the report goes next to it)")
    q.add_argument("--knots", type=int, default=16, help="knots of the ΔG tables over G (default 16)")
    q.add_argument("--seed", type=non_negative_int, default=0, help="seed of the report's model simulation")
    q.add_argument("--no-report", action="store_true", help="write the JSON only")
    q.add_argument("--strict", action="store_true",
                   help="refuse a fit with warnings (a model that misses the data's programming curve through "
                        "the measured protocol; a drift t0 at the end of its search range)")
    q.set_defaults(func=cmd_fit)
    return p


def main(argv: list[str] | None = None) -> int:
    """``pcmsim device ARGS`` (the command line's own entry with ``device`` in front)."""
    from . import main as cli_main

    return cli_main(["device", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
