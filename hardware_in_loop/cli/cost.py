"""``pcmsim cost``: energy, latency and area of a finished hardware run.

    pcmsim cost RUN [--cost-profile NAME|FILE] [--out FIGURE]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_cost(args: argparse.Namespace) -> int:
    from pcmsim.cost import get_profile

    from ..cost_report import format_cost_table, plot_cost, run_estimate

    results, est = run_estimate(args.run, get_profile(args.cost_profile))
    print(format_cost_table(results, est))
    out = Path(args.out) if args.out else Path(args.run) / "plots" / "cost.png"
    print(plot_cost(est, out))
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``cost`` to a parent parser's sub-commands."""
    from pcmsim.cost import available_profiles

    p = subparsers.add_parser("cost", help="energy, latency, TOPS/W and area of a finished pcm run, next to "
                              "dense FP32 GPU and CPU baselines and an event-driven SNN accelerator")
    p.add_argument("run", help="run folder (results.json of a pcm run, or a reproduction folder: its hil part)")
    p.add_argument("--cost-profile", metavar="NAME|FILE",
                   help=f"hardware cost profile: {', '.join(available_profiles())} (the first is the default; the "
                   "others are the calibration chips) or a JSON file")
    p.add_argument("--out", help="figure path (default RUN/plots/cost.png)")
    p.set_defaults(func=cmd_cost)
    return p
