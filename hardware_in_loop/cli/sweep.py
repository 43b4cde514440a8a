"""``pcmsim sweep`` and ``pcmsim sweep-report``: many runs over settings and seeds, on Dask.

    pcmsim sweep SWEEP.json [--out DIR] [--workers N | --scheduler ADDRESS] [--set PATH=VALUE ...] [--seeds N]
    pcmsim sweep-report DIR [--no-plots]

The logic lives in :mod:`hardware_in_loop.sweep` and its modules; this is argument parsing only.
Exit status: 0 every point finished, 1 some point failed (recorded, the rest ran), 2 bad input
(nothing ran), 130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import SET_HELP, parse_set


def _parse_seeds(text: str | None) -> int | list[int] | None:
    """``--seeds 3`` (seeds 0, 1, 2) or ``--seeds 0,4,7``."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds {text!r} is invalid: expected a number of seeds or a comma-separated list") from None
    return values[0] if "," not in text else values


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweep import SweepInterrupted, default_workers, load_sweep, run_sweep
    from ..sweep_report import format_table

    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers {args.workers} is invalid: expected an integer ≥ 0 (0: in this process)")
    sweep = load_sweep(args.sweep, overrides=parse_set(args.set), seeds=_parse_seeds(args.seeds))
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / sweep.name
    workers = default_workers() if args.workers is None else args.workers
    try:
        summary = run_sweep(sweep, out, workers=workers, scheduler=args.scheduler, threads=args.threads,
                            progress=not args.quiet)
    except SweepInterrupted as exc:
        print(f"pcmsim: {exc}", file=sys.stderr)
        return 130
    print(format_table(summary))
    print(f"summary: {out / 'summary.csv'} and summary.json; plots: pcmsim sweep-report {out}")
    failed = summary["points"]["failed"]
    if failed:
        print(f"pcmsim: {failed} of {summary['points']['total']} points failed (errors in {out / 'points.json'}); "
              f"running the same command again retries them", file=sys.stderr)
        return 1
    return 0


def cmd_sweep_report(args: argparse.Namespace) -> int:
    from ..sweep_report import report

    table, paths = report(args.dir, plots=not args.no_plots)
    print(table)
    for path in paths:
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sweep`` and ``sweep-report`` to the command line."""
    p = subparsers.add_parser("sweep", help="run a sweep file (settings × seeds) on a Dask cluster, resumable")
    p.add_argument("sweep", help="sweep file (see configs/sweeps/ and the README's Sweeps section)")
    p.add_argument("--out", help="sweep folder (default runs/sweeps/<sweep name>); rerun to resume")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int,
                       help="worker processes of a local Dask cluster on 127.0.0.1 (default: the core count; "
                       "0: one point after another in this process)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://node1:8786 (its workers must see "
                       "--out and the data at the same paths)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help=SET_HELP + "; of every point")
    p.add_argument("--seeds", help="replace the file's seeds: N (seeds 0 … N-1) or a list such as 0,4,7")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("sweep-report", help="a sweep folder's table, summary files and plots")
    p.add_argument("dir", help="the --out folder of pcmsim sweep")
    p.add_argument("--no-plots", action="store_true", help="table and summary files only")
    p.set_defaults(func=cmd_sweep_report)
