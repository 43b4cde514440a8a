"""What every command of the ``pcmsim`` command line parses the same way.

- ``--set PATH=VALUE`` (repeatable): a dotted config path and a JSON value, a plain string where the
  text is not JSON (``--set epochs=3``, ``--set network.layers=[88,64,88]``, ``--set device_model=ideal``);
- run folders given with ``--out``: a file there, or a finished or interrupted run without
  ``--resume`` / ``--overwrite``, is refused in one line;
- integer options that must not be negative.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

SET_HELP = "override a config field, e.g. --set epochs=3 or --set network.layers=[88,64,88] (repeatable; JSON values)"


def parse_set(items: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """``PATH=VALUE`` pairs → ``{path: value}``; a value is read as JSON when it parses, else as a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} {item!r} is invalid: expected PATH=VALUE, e.g. {option} epochs=3")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def non_negative_int(text: str) -> int:
    """An argparse type: an integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: expected an integer ≥ 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is invalid: expected an integer ≥ 0")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is invalid: expected an integer ≥ 1")
    return value


RUN_FILES = ("checkpoint.pt", "config.json", "results.json", "metrics.jsonl")
"""What marks a folder as a run folder."""


def prepare_run_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse, in one line, an ``--out`` that is a file, or that holds a run while neither ``--resume``
    (continue it) nor ``--overwrite`` (start over: its run files are removed) is given."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: expected a folder for the run")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if not held or resume:
        return
    if not overwrite:
        finished = "a finished run" if (out / "results.json").exists() else "an unfinished run"
        raise ValueError(f"--out {out} holds {finished} ({held[0]}): continue it with --resume, or start over "
                         "with --overwrite")
    for name in (*RUN_FILES, "timing.json", "device_model.json"):
        (out / name).unlink(missing_ok=True)
    for name in ("snapshots", "plots"):
        shutil.rmtree(out / name, ignore_errors=True)
