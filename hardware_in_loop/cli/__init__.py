"""The ``pcmsim`` command line, at the top of the three packages (it imports them, nothing imports it).

    pcmsim device list | plot MODEL --out DIR | measure MODEL DIR | fit MEASUREMENT... --out F.json
    pcmsim train CONFIG.json [--out DIR] [--resume | --overwrite] [--set PATH=VALUE ...] [--seed S] [--epochs N]
    pcmsim reproduce jsb-52800 [--quick] [--device-model NAME] [--update-scheme NAME] [--set PATH=VALUE ...]
    pcmsim evaluate RUN --times 1h,1d,1y
    pcmsim cost RUN [--cost-profile NAME|FILE]
    pcmsim plot RUN | SWEEP_DIR
    pcmsim sweep SWEEP.json [--out DIR] [--workers N | --scheduler ADDRESS] [--set PATH=VALUE ...] [--seeds N]
    pcmsim sweep-report DIR
    pcmsim --version

Every command is one module with a ``register(subparsers)`` function, listed once in
:data:`COMMANDS`. Bad input (config, data, device parameters, checkpoints, options) ends with one line
``pcmsim: error: ...`` and exit status 2, before any training starts.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Idle OpenMP threads sleep instead of spinning: with spinning threads, epochs on a shared 2-core
# machine swung from 0.4 s to 46 s whenever another job ran (bench/epoch.py). Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .options import positive_int  # noqa: E402 - after the OpenMP setting

COMMANDS: tuple[str, ...] = (".device", ".runs", ".cost", ".sweep")
"""The modules of the commands, in the order of ``pcmsim --help``; each has ``register(subparsers)``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    import pcmsim

    parser = argparse.ArgumentParser(prog="pcmsim", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"pcmsim {pcmsim.__version__}")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=0,
                      help="warnings and errors only (the logger tree 'pcmsim' at WARNING)")
    talk.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                      help="debug messages too")
    parser.add_argument(
        "--threads", type=positive_int, default=os.environ.get("PCMSIM_THREADS", "1"),
        help="CPU threads for torch (default 1, or $PCMSIM_THREADS: the networks here are small, and one "
        "thread is about twice as fast as two on a 2-core machine; see BENCHMARKS.md)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name, __name__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 1 some sweep points failed, 2 bad input,
    130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(int(args.threads))
    from ..log import configure

    configure(-1 if getattr(args, "quiet", False) else args.verbosity)
    from device_models import DeviceParameterError
    from pcmsim.typedconfig import first_line

    from ..checkpoint import CheckpointError
    from ..trainer import TrainingInterrupted

    try:
        return int(args.func(args) or 0)
    except TrainingInterrupted as exc:
        print(f"pcmsim: {exc}; continue with --resume", file=sys.stderr)
        return 130
    except (ValueError, DeviceParameterError, CheckpointError, OSError) as exc:
        print(f"pcmsim: error: {first_line(exc)}", file=sys.stderr)
        return 2
