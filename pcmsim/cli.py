"""The ``pcmsim`` command line: the one module that sits above all three packages.

    pcmsim device list | plot MODEL --out DIR | measure MODEL DIR | fit MEASUREMENT... --out F.json
    pcmsim train CONFIG.json [--out DIR] [--resume] [--device cpu|cuda]
    pcmsim reproduce jsb-52800 [--quick] [--device-model NAME] [--update-scheme NAME]
                     [--epochs N] [--seed S] [--out DIR] [--resume DIR] [--no-baseline] [--device cpu|cuda]
    pcmsim evaluate RUN --times 1h,1d,1y
    pcmsim cost RUN [--cost-profile NAME|FILE]
    pcmsim plot RUN | SWEEP_DIR
    pcmsim sweep SWEEP.json [--out DIR] [--workers N | --scheduler ADDRESS] [--set PATH=VALUE ...] [--seeds N]
    pcmsim sweep-report DIR

Bad input (config, data, device parameters, checkpoints) ends with one line
``pcmsim: error: ...`` and exit status 2, before any training starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# Idle OpenMP threads sleep instead of spinning: with spinning threads, epochs on a shared 2-core
# machine swung from 0.4 s to 46 s whenever another job ran (bench/epoch.py). Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load_json(path: str) -> Any:
    from hardware_in_loop.checkpoint import read_json

    return read_json(path, "config file")


def cmd_train(args: argparse.Namespace) -> int:
    from hardware_in_loop.experiments import run_training
    from hardware_in_loop.tasks import load_config

    config = load_config(_load_json(args.config), source=args.config)
    if args.device is not None:
        config = load_config({**config.to_dict(), "device": args.device}, source="--device")
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    results = run_training(config, out, resume=args.resume, progress=not args.quiet)
    print(json.dumps({k: v for k, v in results.items() if k != "drift"}, indent=2))
    print(f"run folder: {out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from hardware_in_loop.experiments import format_results_table, reproduce

    out = args.resume or args.out or f"runs/{args.experiment}{'-quick' if args.quick else ''}"
    results = reproduce(
        args.experiment, out, quick=args.quick, resume=bool(args.resume), baseline=not args.no_baseline,
        progress=not args.quiet, device_model=args.device_model, update_scheme=args.update_scheme,
        epochs=args.epochs, seed=args.seed, device=args.device,
    )
    print(format_results_table(results))
    print(f"results: {Path(out) / 'results.json'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hardware_in_loop.evaluate import evaluate_run, run_flavour

    times, modes = args.times.split(","), args.compensation.split(",")
    if run_flavour(args.run) == "fp32":
        from hardware_in_loop.inference import evaluate_programmed_run

        result = evaluate_programmed_run(args.run, args.device_model, times, modes, split=args.split)
        rows = result["rows"]
        software = ", ".join(f"{k[len('final_test_'):]} {v:.3f}" for k, v in result["software_metrics"].items()
                             if isinstance(v, (int, float)))
        print(f"software weights of {args.run} programmed onto {result['n_devices']:,} {args.device_model} devices "
              f"(software test {software or 'metrics not recorded'})")
    else:
        rows = evaluate_run(args.run, times, modes, split=args.split)
    modes = list(dict.fromkeys(r["compensation"] for r in rows))
    metric = "nll" if "nll" in rows[0] else "accuracy"
    print(f"{'delay':>8}  " + "  ".join(f"{metric} {m:>10}" for m in modes))
    for d in dict.fromkeys(r["delay"] for r in rows):
        vals = {r["compensation"]: r[metric] for r in rows if r["delay"] == d}
        print(f"{d:>8}  " + "  ".join(f"{vals[m]:>14.3f}" for m in modes))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    if (Path(args.run) / "sweep.json").is_file():
        from .commands.sweep import cmd_sweep_report

        return cmd_sweep_report(argparse.Namespace(dir=args.run, no_plots=False))
    from hardware_in_loop.plots import plot_any

    for path in plot_any(args.run):
        print(path)
    return 0


DEVICE_HELP = "torch device of the run: cpu (default) or cuda[:N] (the config's field 'device')"


def _tasks() -> list[str]:
    from hardware_in_loop.tasks import available_tasks

    return available_tasks()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pcmsim", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("PCMSIM_THREADS", "1")),
        help="CPU threads for torch (default 1, or $PCMSIM_THREADS: the networks here are small, and one "
        "thread is about twice as fast as two on a 2-core machine; see BENCHMARKS.md)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    try:
        from .commands import device as device_commands

        device_commands.register(sub)
    except ImportError:  # pragma: no cover - the device commands ship with the package
        pass

    from .commands import cost as cost_commands

    cost_commands.register(sub)

    p = sub.add_parser("train", help="train a network from a JSON config (task: " + ", ".join(_tasks()) + ")")
    p.add_argument("config", help="JSON config file (see configs/)")
    p.add_argument("--out", help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (a fresh start if it has none)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("reproduce", help="run a named experiment (jsb-52800)")
    from hardware_in_loop.experiments import EXPERIMENTS
    from hardware_in_loop.schemes import available_schemes

    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--quick", action="store_true", help="a short run over every stage (< 3 minutes)")
    p.add_argument("--device-model", help="device model name (see `pcmsim device list`) or a fitted device's JSON "
                   "file (pcmsim device fit)")
    p.add_argument("--update-scheme", help="one of " + ", ".join(available_schemes()))
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run folder (default runs/<experiment>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument("--no-baseline", action="store_true", help="skip the FP32 baseline")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("evaluate", help="test NLL after drift: of a hardware run, or of an FP32 run programmed "
                       "onto devices")
    p.add_argument("run", help="run folder (with checkpoint.pt)")
    p.add_argument("--device-model", default="pcm-joshi2020",
                   help="for an fp32 run: the device model its weights are programmed onto (default pcm-joshi2020)")
    p.add_argument("--times", default="1min,1h,1d,1mo,1y", help="comma-separated delays (e.g. 1h,1d,1y)")
    from pcmsim.compensation import MODES

    p.add_argument("--compensation", default="none,global", help=", ".join(MODES) + " (comma-separated)")
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="plot a run folder (or a sweep folder, as sweep-report)")
    p.add_argument("run")
    p.set_defaults(func=cmd_plot)

    from .commands import sweep as sweep_commands

    sweep_commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads {args.threads} is invalid: expected an integer ≥ 1")
    import torch

    torch.set_num_threads(args.threads)
    from device_models import DeviceParameterError
    from hardware_in_loop.checkpoint import CheckpointError
    from hardware_in_loop.trainer import TrainingInterrupted
    from pcmsim.typedconfig import first_line

    try:
        return int(args.func(args) or 0)
    except TrainingInterrupted as exc:
        print(f"pcmsim: {exc}; continue with --resume", file=sys.stderr)
        return 130
    except (ValueError, DeviceParameterError, CheckpointError, OSError) as exc:
        print(f"pcmsim: error: {first_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
