"""Atomic writes and safe loads of run files.

Checkpoints hold tensors, numbers, strings, lists and dicts only, so they load with
``torch.load(weights_only=True)``: no pickled code is ever executed. Every file is written to a
temporary file in the same folder and renamed over the target, so a crash never leaves a
half-written file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from pcmsim import fileio
from pcmsim.fileio import atomic_write


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write(path, lambda fh: fh.write(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically (the whole file is replaced)."""
    atomic_write(path, lambda fh: fh.write("".join(json.dumps(r) + "\n" for r in rows)))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename."""
    atomic_write(path, lambda fh: torch.save(state, fh), binary=True)


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or of the wrong layout."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a bad file gives one clear error line."""
    p = Path(path)
    state = fileio.load_tensors(p, CheckpointError, noun="checkpoint", readable="pcmsim checkpoint")
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{p}: not a pcmsim checkpoint (no 'format' field)")
    return state


def read_json(path: str | Path, what: str = "file") -> Any:
    """The JSON in ``path``; a missing or bad file is one :class:`CheckpointError` line."""
    return fileio.read_json(path, what, CheckpointError)
