"""``pcmsim train``, ``reproduce``, ``evaluate`` and ``plot``: runs of the one trainer.

    pcmsim train CONFIG.json [--out DIR] [--resume | --overwrite] [--set PATH=VALUE ...] [--seed S]
                 [--epochs N] [--flavour fp32|pcm|aihwkit|hwa] [--device cpu|cuda]
    pcmsim reproduce jsb-52800 [--quick] [--flavour pcm|hwa] [--device-model NAME] [--update-scheme NAME]
                     [--set PATH=VALUE ...] [--epochs N] [--seed S] [--out DIR] [--resume DIR] [--no-baseline]
                     [--device cpu|cuda]
    pcmsim evaluate RUN [--times 1h,1d,1y] [--compensation none,global] [--device-model NAME]
    pcmsim plot RUN | SWEEP_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from device_models import did_you_mean
from pcmsim.typedconfig import set_path

from .options import SET_HELP, non_negative_int, parse_set, positive_int, prepare_run_folder

DEVICE_HELP = "torch device of the run: cpu (default) or cuda[:N] (the config's field 'device')"


def _config(path: str, sets: dict[str, Any], **fields: Any) -> Any:
    from ..checkpoint import read_json
    from ..tasks import load_config

    data = read_json(path, "config file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of fields, got {type(data).__name__}")
    for key, value in {**sets, **{k: v for k, v in fields.items() if v is not None}}.items():
        data = set_path(data, key, value)
    return load_config(data, source=path)


def cmd_train(args: argparse.Namespace) -> int:
    from ..experiments import run_training

    config = _config(args.config, parse_set(args.set), seed=args.seed, epochs=args.epochs, flavour=args.flavour,
                     device=args.device)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    prepare_run_folder(out, resume=args.resume, overwrite=args.overwrite)
    results = run_training(config, out, resume=args.resume, progress=not args.quiet)
    print(json.dumps({k: v for k, v in results.items() if k != "drift"}, indent=2))
    print(f"run folder: {out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..experiments import EXPERIMENTS, format_results_table, reproduce

    if args.experiment not in EXPERIMENTS:
        raise ValueError(f"experiment {args.experiment!r} is unknown: expected one of {', '.join(sorted(EXPERIMENTS))}"
                         + did_you_mean(args.experiment, EXPERIMENTS))
    out = args.resume or args.out or f"runs/{args.experiment}{'-quick' if args.quick else ''}"
    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out {out} is a file: expected a folder for the run")
    results = reproduce(
        args.experiment, out, quick=args.quick, resume=bool(args.resume), baseline=not args.no_baseline,
        progress=not args.quiet, device_model=args.device_model, update_scheme=args.update_scheme,
        epochs=args.epochs, seed=args.seed, device=args.device, flavour=args.flavour, **parse_set(args.set),
    )
    print(format_results_table(results))
    print(f"results: {Path(out) / 'results.json'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate_run, run_flavour

    times, modes = args.times.split(","), args.compensation.split(",")
    if run_flavour(args.run) in ("fp32", "hwa"):  # trained in software: programmed once, then evaluated
        from ..inference import evaluate_programmed_run

        result = evaluate_programmed_run(args.run, args.device_model, times, modes, split=args.split)
        rows = result["rows"]
        software = ", ".join(f"{k[len('final_test_'):]} {v:.3f}" for k, v in result["software_metrics"].items()
                             if isinstance(v, (int, float)))
        print(f"software weights of {args.run} programmed onto {result['n_devices']:,} {args.device_model} devices "
              f"(software test {software or 'metrics not recorded'})")
    else:
        rows = evaluate_run(args.run, times, modes, split=args.split)
    from ..drift import format_drift_table

    print(format_drift_table(rows, args.split))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    if (Path(args.run) / "sweep.json").is_file():
        from .sweep import cmd_sweep_report

        return cmd_sweep_report(argparse.Namespace(dir=args.run, no_plots=False))
    from ..plots import plot_any

    for path in plot_any(args.run):
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``reproduce``, ``evaluate`` and ``plot``."""
    from pcmsim.compensation import MODES
    from pcmsim.networks import FLAVOURS

    from ..experiments import EXPERIMENTS, REPRODUCE_FLAVOURS
    from ..schemes import available_schemes
    from ..tasks import available_tasks

    p = sub.add_parser("train", help="train a network from a JSON config (task: " + ", ".join(available_tasks()) + ")")
    p.add_argument("config", help="JSON config file (see configs/)")
    p.add_argument("--out", help="run folder (default runs/<config name>)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint (a fresh start if it has none)")
    again.add_argument("--overwrite", action="store_true", help="start over in an --out that holds a run")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help=SET_HELP)
    p.add_argument("--seed", type=non_negative_int, help="the run's seed (the config's field 'seed')")
    p.add_argument("--epochs", type=positive_int, help="the config's field 'epochs'")
    p.add_argument("--flavour", choices=FLAVOURS, help="one of the flavours (the config's field 'flavour')")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("reproduce", help="run a named experiment (" + ", ".join(sorted(EXPERIMENTS)) + ")")
    p.add_argument("experiment", help="one of " + ", ".join(sorted(EXPERIMENTS)))
    p.add_argument("--quick", action="store_true", help="a short run over every stage (< 3 minutes)")
    p.add_argument("--device-model", help="device model name (see `pcmsim device list`) or a fitted device's JSON "
                   "file (pcmsim device fit)")
    p.add_argument("--update-scheme", help="one of " + ", ".join(available_schemes()))
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help=SET_HELP)
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--seed", type=non_negative_int)
    p.add_argument("--out", help="run folder (default runs/<experiment>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    p.add_argument("--flavour", choices=REPRODUCE_FLAVOURS, default="pcm",
                   help="pcm: the experiment's hardware-in-the-loop run (default); hwa: hardware-aware training, "
                   "programmed once, beside the FP32 baseline programmed once")
    p.add_argument("--no-baseline", action="store_true", help="skip the FP32 baseline")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("evaluate", help="metrics after drift: of a hardware run, or of an FP32 run programmed "
                       "onto devices")
    p.add_argument("run", help="run folder (with checkpoint.pt)")
    p.add_argument("--device-model", default="pcm-joshi2020",
                   help="for an fp32 run: the device model its weights are programmed onto (default pcm-joshi2020)")
    p.add_argument("--times", default="1min,1h,1d,1mo,1y", help="comma-separated delays (e.g. 1h,1d,1y)")
    p.add_argument("--compensation", default="none,global", help=", ".join(MODES) + " (comma-separated)")
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plot", help="plot a run folder (or a sweep folder, as sweep-report)")
    p.add_argument("run")
    p.set_defaults(func=cmd_plot)
