"""One logger tree and one progress gate for every message of a run.

Messages (epoch lines, the stages of a reproduction, sweep points, warnings) go to the logger
``pcmsim`` and its children (``logging.getLogger("pcmsim.trainer")``, ...): the command line shows
INFO and above on standard error (``pcmsim -q`` warnings only, ``pcmsim -v`` debug too); from Python,
``logging.basicConfig(level="INFO")`` shows them. Progress bars are drawn only where
:func:`progress_enabled` says so: asked for, standard error a terminal, and ``PCMSIM_QUIET`` unset.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

__all__ = ["LOGGER", "configure", "logger", "progress_enabled"]

LOGGER = logging.getLogger("pcmsim")
"""The root of pcmsim's logger tree."""


def logger(name: str) -> logging.Logger:
    """The child ``pcmsim.<name>`` of the tree."""
    return LOGGER.getChild(name)


def info(name: str) -> Callable[[str], None]:
    """A ``log(message)`` function that writes INFO records to ``pcmsim.<name>`` (the default ``log`` of
    the trainer, reproductions and sweeps)."""
    return logger(name).info


def progress_enabled(progress: bool) -> bool:
    """The one progress gate: a bar is drawn when ``progress`` is asked for, standard error is a terminal
    and ``PCMSIM_QUIET`` is unset (or 0)."""
    return progress and sys.stderr.isatty() and os.environ.get("PCMSIM_QUIET", "") in ("", "0")


def configure(verbosity: int = 0) -> None:
    """Show the tree's records on standard error as plain lines: ``verbosity`` −1 warnings only, 0 INFO,
    1 DEBUG. Idempotent (one handler)."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    LOGGER.setLevel(level)
    if not any(getattr(h, "_pcmsim", False) for h in LOGGER.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._pcmsim = True  # type: ignore[attr-defined]
        LOGGER.addHandler(handler)
        LOGGER.propagate = False
