"""Atomic file writes: a temporary file in the target's folder, then a rename.

A crash or Ctrl-C never leaves a half-written file behind, and a reader never sees one. The file
gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask), not the
``0o600`` of ``tempfile.mkstemp``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *, binary: bool = False,
                 fsync: bool = True) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


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
