"""One sweep point: run it (on a Dask worker or in process) and read its state from its folder.

A point's folder ``DIR/points/<id>/`` is an ordinary run folder of :func:`run_training`
(``config.json``, ``checkpoint.pt``, ``metrics.jsonl``, ``results.json``, ``timing.json``,
``plots/``), plus ``error.json`` when the point failed. Its state follows from its files alone::

    failed       error.json (an exception, or a non-finite validation or test metric)
    done         results.json and timing.json
    interrupted  checkpoint.pt only: the next run resumes from it
    pending      nothing yet
"""

from __future__ import annotations

import math
import time
import traceback
from pathlib import Path
from typing import Any

from pcmsim.typedconfig import first_line

from .checkpoint import CheckpointError, read_json, write_json

QUANTITIES = ("pulses_set", "pulses_reset", "saturated_devices")
"""Entries of ``results.json`` aggregated over seeds besides the task's metric (hardware runs)."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (the type alone for an empty message)."""
    first = first_line(exc)
    return type(exc).__name__ if first == type(exc).__name__ else f"{type(exc).__name__}: {first}"


def non_finite(results: dict[str, Any], metric: str) -> str | None:
    """The error of a run whose validation or test metric is not a finite number (it diverged)."""
    for key in (f"valid_{metric}", f"test_{metric}"):
        value = results.get(key)
        if isinstance(value, (int, float)) and not math.isfinite(value):
            return f"diverged: {key} = {value}"
    return None


def run_point(config_data: dict[str, Any], point_dir: str, threads: int = 1) -> dict[str, Any]:
    """Train (or resume) one point into ``point_dir``; never raises for a failing run.

    Runs on a Dask worker (or in process). Returns ``{"status": "done" | "failed", "error",
    "resumed_from_epoch", "seconds"}``; a failure also leaves ``error.json`` in the folder. A
    :class:`TrainingInterrupted` (Ctrl-C in process) is not a failure and propagates.
    """
    from .experiments import run_training, torch_threads
    from .tasks import TASKS, load_config
    from .trainer import TrainingInterrupted

    out = Path(point_dir)
    t0 = time.perf_counter()
    error_path = out / "error.json"
    error_path.unlink(missing_ok=True)
    resumed_from = _checkpoint_epoch(out)
    messages: list[str] = []
    try:
        with torch_threads(threads):
            write_json(out / "config.json", config_data)  # every point folder has its config, failed or not
            config = load_config(config_data, source=str(out / "config.json"))
            results = run_training(config, out, resume=True, progress=False, log=messages.append)
        error = non_finite(results, TASKS[config.task].metric)
    except TrainingInterrupted:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing point is recorded, the sweep goes on
        error = one_line(exc)
        messages.append(traceback.format_exc(limit=8))
    if error is not None:
        write_json(error_path, {"error": error, "log": messages[-20:]})
    return {"status": "failed" if error else "done", "error": error, "resumed_from_epoch": resumed_from,
            "seconds": time.perf_counter() - t0}


def record_failure(point_dir: str | Path, error: str) -> None:
    """Record a failure the point could not record itself (its worker died too often)."""
    write_json(Path(point_dir) / "error.json", {"error": error, "log": []})


def _checkpoint_epoch(out: Path) -> int | None:
    """The number of finished epochs in the folder's metrics (None: no checkpoint yet)."""
    if not (out / "checkpoint.pt").is_file():
        return None
    try:
        return sum(1 for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip())
    except OSError:
        return 0


def point_state(point_dir: str | Path, config_data: dict[str, Any] | None = None) -> str:
    """``done``, ``failed``, ``interrupted`` or ``pending`` (see the module docstring).

    With ``config_data``, a folder whose ``config.json`` differs counts as ``pending``.
    """
    out = Path(point_dir)
    if (out / "error.json").is_file():
        return "failed"
    if config_data is not None and (out / "config.json").is_file():
        try:
            if read_json(out / "config.json") != config_data:
                return "pending"
        except CheckpointError:
            return "pending"
    if (out / "results.json").is_file() and (out / "timing.json").is_file():
        return "done"
    if (out / "checkpoint.pt").is_file():
        return "interrupted"
    return "pending"


COST_QUANTITIES = {"train_energy_j": ("train", "energy_j_total"),
                   "inference_energy_j_per_step": ("inference", "energy_j_per_step_total")}
"""The cost estimate's numbers a sweep aggregates over seeds: name → path in ``results.json``'s ``cost``."""


def point_record(point_dir: str | Path, metric: str) -> dict[str, Any]:
    """The state of a point and its numbers: ``valid_<metric>``, ``test_<metric>``, pulses,
    saturated devices and the cost estimate's energies (hardware runs), ``wall_time_s`` (the
    point's whole run: data, training, drift, plots; of its last attempt when it was resumed) and
    ``train_wall_time_s`` (training alone, summed over resumes)."""
    out = Path(point_dir)
    state = point_state(out)
    record: dict[str, Any] = {"status": state, "error": None}
    if state == "failed":
        try:
            record["error"] = str(read_json(out / "error.json").get("error"))
        except (CheckpointError, AttributeError):
            record["error"] = "error.json is unreadable"
        return record
    if state != "done":
        return record
    try:
        results = read_json(out / "results.json")
        timing = read_json(out / "timing.json")
    except CheckpointError as exc:
        return {"status": "pending", "error": str(exc)}
    diverged = non_finite(results, metric)
    if diverged is not None:  # judged here too, should the worker have died before error.json
        return {"status": "failed", "error": diverged}
    for key in (f"valid_{metric}", f"test_{metric}", *QUANTITIES):
        if isinstance(results.get(key), (int, float)):
            record[key] = results[key]
    cost = results.get("cost")
    for name, (part, key) in COST_QUANTITIES.items():
        value = cost.get(part, {}).get(key) if isinstance(cost, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            record[name] = float(value)
    for key in ("wall_time_s", "train_wall_time_s"):
        if isinstance(timing.get(key), (int, float)):
            record[key] = timing[key]
    return record
