"""Atomic file writes: a temporary file in the target's folder, then a rename.

A crash or Ctrl-C never leaves a half-written file behind, and a reader never sees one. The file
gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask), not the
``0o600`` of ``tempfile.mkstemp``. The one writer of the project: ``device_models`` writes its
measurement files and fitted models with it, and :mod:`pcmsim.fileio` (run files, figures)
re-exports it.
"""

from __future__ import annotations

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
                 fsync: bool = True, newline: str | None = None) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then rename it onto ``path``.

    ``binary``: a byte stream; else UTF-8 text with ``newline`` as for :func:`open` (``""`` for the
    :mod:`csv` module). ``fsync``: flush to the disk before the rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        mode: dict[str, Any] = {} if binary else {"encoding": "utf-8", "newline": newline}
        with os.fdopen(fd, "wb" if binary else "w", **mode) as fh:
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
