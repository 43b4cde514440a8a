"""Atomic file writes: a temporary file in the target's folder, then a rename.

A crash or Ctrl-C never leaves a half-written file behind, and a reader never sees one. The file
gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask), not the
``0o600`` of ``tempfile.mkstemp``. :func:`atomic_write` is :mod:`device_models.fileio`'s, the one
writer of the project; this module adds figures, and one-line reading of JSON and of tensor files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from device_models.fileio import atomic_write

from .typedconfig import first_line

__all__ = ["atomic_write", "load_tensors", "read_json", "save_figure"]


def save_figure(fig: Any, path: str | os.PathLike[str], *, fmt: str | None = None, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically (format from ``fmt`` or the file's suffix)."""
    target = Path(path)
    fmt = fmt or target.suffix.lstrip(".") or "png"
    if fig.canvas is None or type(fig.canvas).__name__ == "FigureCanvasBase":
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    return atomic_write(target, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi, bbox_inches="tight"), binary=True,
                        fsync=False)


def read_json(path: str | os.PathLike[str], what: str = "file", error: type[Exception] = ValueError) -> Any:
    """The JSON in ``path``; a missing or unreadable file or invalid JSON raises ``error`` with one
    line naming the file (``what`` says what it should have been)."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise error(f"{p}: {what} not found") from None
    except OSError as exc:
        raise error(f"{p}: cannot read the {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise error(f"{p}: the {what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise error(f"{p}: invalid JSON at line {exc.lineno} column {exc.colno}") from None


def load_tensors(path: str | os.PathLike[str], error: type[Exception], *, noun: str, readable: str) -> Any:
    """A file of tensors saved by ``torch.save``, loaded with ``weights_only=True`` onto the CPU (never a plain
    unpickle); a missing file raises ``error("<path>: no <noun> file there")``, an unreadable one
    ``error("<path>: not a readable <readable> (<reason>)")``, each one line."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: no {noun} file there")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is reported the same way
        raise error(f"{p}: not a readable {readable} ({first_line(exc)})") from None
