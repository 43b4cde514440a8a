"""Write a fitted model and its report together: all or nothing (``pcmsim device fit``).

The JSON, ``NAME.report.md`` and the figures of ``NAME.report/`` are first written into a staging
folder next to the target; only when every one of them has been written are they moved into place
(figures, then report, then the model, each by a rename). A failure before that leaves whatever
was at ``--out`` (and its report) exactly as it was, and no staging folder behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .fit import FitError, FitResult, save_fitted


def report_paths(json_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(NAME.report.md, NAME.report/)`` next to ``NAME.json``."""
    p = Path(json_path)
    stem = p.name[:-5] if p.name.lower().endswith(".json") else p.name
    return p.with_name(f"{stem}.report.md"), p.with_name(f"{stem}.report")


def check_out(json_path: str | os.PathLike, report: bool = True) -> Path:
    """Refuse an ``--out`` that cannot take the model (and its report) before any fitting, in one line."""
    p = Path(json_path)
    if not p.name.lower().endswith(".json"):
        raise FitError(f"--out {str(json_path)!r} is invalid: expected a file name ending in .json")
    if p.is_dir():
        raise FitError(f"--out {p}: an existing folder; expected a file name ending in .json")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FitError(f"--out {p}: {parent} is not a folder; expected a path inside a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FitError(f"--out {p}: the folder {parent} is not writable; expected a writable folder")
    if report:
        md, figs = report_paths(p)
        if md.is_dir():
            raise FitError(f"--out {p}: the report's path {md} is a folder; expected a file or nothing there")
        if figs.exists() and not figs.is_dir():
            raise FitError(f"--out {p}: the report's figure folder {figs} exists and is not a folder; expected a "
                           "folder or nothing there")
    return p


def write_fitted(result: FitResult, json_path: str | os.PathLike, *, report: bool = True) -> tuple[Path, Path | None]:
    """Write the model (and its report, unless ``report`` is False) all or nothing; returns their paths."""
    target = check_out(json_path, report)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".staging"))
    try:
        staged = save_fitted(result, stage / target.name)
        md_new = figs_new = None
        if report:
            from .fit_report import write_report  # noqa: PLC0415 - matplotlib only when reporting

            md_new = write_report(result, staged)
            figs_new = report_paths(staged)[1]
        # every file is written: move them into place (figures, report, then the model itself)
        md, figs = report_paths(target)
        if figs_new is not None:
            if figs.exists():
                os.replace(figs, stage / "old-figures")
            os.replace(figs_new, figs)
        if md_new is not None:
            os.replace(md_new, md)
        os.replace(staged, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target, (report_paths(target)[0] if report else None)
