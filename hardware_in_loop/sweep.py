"""Sweeps: many runs over seeds and settings, on Dask, resumable, with statistics.

    from hardware_in_loop.sweep import run_sweep
    summary = run_sweep("configs/sweeps/jsb-52800-weight-scale.json", "runs/sweeps/ws", workers=2)

A sweep folder holds::

    sweep.json      the expanded sweep: axes, seeds, settings, point ids (what sweep-report reads)
    points/<id>/    one ordinary run folder per point (see hardware_in_loop.trainer), + error.json
    points.json     every point's state and numbers, rewritten as each point ends
    summary.json    one row per setting: statistics over seeds, the setting chosen on validation
    summary.csv     the same rows as a table
    plots/          (pcmsim sweep-report) the metric against each axis, with 95 % intervals

Running the same sweep again into the same folder skips the points that finished, resumes the
interrupted ones from their checkpoints and retries the failed ones; points whose config changed
get new ids, so a changed or extended sweep file reuses every unchanged point. Every file is
written atomically. The pieces: :mod:`.sweep_spec` (the file), :mod:`.sweep_point` (one point),
:mod:`.sweep_exec` (Dask or in process), :mod:`.sweep_stats` (aggregation), :mod:`.sweep_report`.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .checkpoint import write_json
from .log import info, progress_enabled
from .sweep_exec import run_points
from .sweep_point import point_record, point_state
from .sweep_spec import Point, Sweep, SweepError, load_sweep
from .sweep_stats import summarize, write_summary
from .trainer import TrainingInterrupted

__all__ = ["Sweep", "SweepError", "SweepInterrupted", "default_workers", "load_sweep", "run_sweep"]


class SweepInterrupted(RuntimeError):
    """The sweep was interrupted; running it again resumes it."""


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_sweep(spec: str | Path | dict[str, Any] | Sweep, out_dir: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, threads: int = 1, overrides: dict[str, Any] | None = None,
              progress: bool = True, log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Run (or resume) a sweep into ``out_dir`` and return its summary (also ``summary.json``).

    Args:
        spec: a sweep file, its JSON object or a loaded :class:`Sweep`.
        workers: worker processes of a local Dask cluster (default: the core count); 0 runs the
            points one after another in this process.
        scheduler: the address of an existing Dask scheduler (then ``workers`` is ignored).
        threads: torch threads per point.
        overrides: dotted path → value for every point (``--set``).
        progress: a progress bar on a terminal, else one line per finished point.

    Raises:
        SweepError: an invalid sweep file or point config (before anything runs).
        SweepInterrupted: Ctrl-C or SIGTERM; the points' checkpoints let a rerun resume.
    """
    log = log or info("sweep")
    sweep = spec if isinstance(spec, Sweep) else load_sweep(spec, overrides=overrides)
    if workers is None:
        workers = default_workers()
    if workers < 0 or threads < 1:
        raise SweepError(f"workers={workers}, threads={threads} is invalid: expected workers ≥ 0, threads ≥ 1")
    out = Path(out_dir)
    manifest = sweep.manifest()
    write_json(out / "sweep.json", manifest)
    folders = {p.id: out / "points" / p.id for p in sweep.points}
    states = {p.id: point_state(folders[p.id], p.config.to_dict()) for p in sweep.points}
    records = {p.id: point_record(folders[p.id], sweep.metric) for p in sweep.points}
    states.update({pid: "failed" for pid, r in records.items() if r["status"] == "failed"})  # e.g. diverged
    todo = [(p, folders[p.id]) for p in sweep.points if states[p.id] != "done"]
    counts = {s: sum(v == s for v in states.values()) for s in ("done", "interrupted", "failed", "pending")}
    log(f"sweep {sweep.name}: {len(sweep.settings)} setting(s) × {len(sweep.seeds)} seed(s) = {len(sweep.points)} "
        f"point(s); {counts['done']} finished earlier, {counts['interrupted']} to resume from checkpoints, "
        f"{counts['failed']} failed earlier (retried), {counts['pending']} to start → {out}")
    _write_points(out, sweep, records)
    bar = _bar(len(todo), progress)
    finished = [0]

    def on_result(point: Point, outcome: dict[str, Any]) -> None:
        records[point.id] = {**point_record(folders[point.id], sweep.metric),
                             "resumed_from_epoch": outcome.get("resumed_from_epoch")}
        finished[0] += 1
        _write_points(out, sweep, records)
        line = _line(finished[0], len(todo), point, records[point.id], sweep.metric)
        if bar is not None:
            bar.update(1)
            bar.write(line)
        elif progress:
            log(line)

    try:
        with _sigterm_as_interrupt():
            run_points(todo, workers=workers, scheduler=scheduler, threads=threads, on_result=on_result, log=log)
    except (KeyboardInterrupt, TrainingInterrupted) as exc:
        write_summary(out, summarize(manifest, records))
        raise SweepInterrupted(f"sweep interrupted ({type(exc).__name__}) with {finished[0]} of {len(todo)} "
                               f"point(s) of this run finished; run the same command again to resume") from None
    finally:
        if bar is not None:
            bar.close()
    summary = summarize(manifest, records)
    write_summary(out, summary)
    return summary


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread (so the local cluster is shut down)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _write_points(out: Path, sweep: Sweep, records: dict[str, dict[str, Any]]) -> None:
    rows = [{"id": p.id, "setting": p.setting, "values": p.values, "seed": p.seed, **records[p.id]}
            for p in sweep.points]
    write_json(out / "points.json", rows)


def _line(k: int, n: int, point: Point, record: dict[str, Any], metric: str) -> str:
    head = f"[{k}/{n}] {point.id} {point.label()}:"
    if record["status"] != "done":
        return f"{head} FAILED {record.get('error')}"
    shown = [f"{key} {record[key]:.4g}" for key in (f"valid_{metric}", f"test_{metric}") if key in record]
    wall = f" ({record['wall_time_s']:.1f} s)" if "wall_time_s" in record else ""
    resumed = record.get("resumed_from_epoch")
    return f"{head} " + "  ".join(shown) + wall + (f", resumed after epoch {resumed}" if resumed else "")


def _bar(total: int, progress: bool) -> Any:
    if not progress_enabled(progress):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="points", unit="point", dynamic_ncols=True)
