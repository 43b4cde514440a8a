"""Every command that writes a run, interrupted or killed at any moment, resumes to the same results.

The SIGKILL tests start the real command line in a subprocess, kill it at milestones spread over the
whole life of the command (start-up, training, checkpoints, snapshots, drift evaluation, results and
plots: each a progress condition on the run folder, so a slow or busy machine moves the kill with the
run instead of missing it), continue it with ``--resume`` each time, and compare the final
``results.json`` with the one of an uninterrupted run, entry for entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import interrupting_trainer

from hardware_in_loop.experiments import run_training
from hardware_in_loop.tasks import load_config
from hardware_in_loop.trainer import TrainingInterrupted

REPO = Path(__file__).resolve().parents[1]

DIGITS: dict[str, Any] = {
    "task": "classification", "dataset": "digits", "encoder": "poisson", "steps": 8,
    "network": {"layers": [64, 32, 10], "neuron": "lif", "surrogate": "flat"},
    "train_limit": 320, "test_limit": 200, "valid_fraction": 0.2, "epochs": 4, "batch_size": 32, "lr": 0.005,
}


@pytest.mark.parametrize("flavour", ["fp32", "pcm"])
def test_classification_resumes_exactly_after_ctrl_c(flavour: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = load_config({**DIGITS, "flavour": flavour, "epochs": 2, "drift_times": ["1d"]})
    expected = run_training(config, tmp_path / "full", progress=False)
    part = interrupting_trainer(7)(config, tmp_path / "part", progress=False)
    with pytest.raises(TrainingInterrupted):
        run_training(config, tmp_path / "part", trainer=part, progress=False)
    assert part.epoch == 0 and part.batch_index == 7  # stopped inside the first epoch
    got = run_training(config, tmp_path / "part", resume=True, progress=False)
    assert got == expected
    assert (tmp_path / "part" / "results.json").read_text() == (tmp_path / "full" / "results.json").read_text()


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path: Path) -> None:
    config = load_config({**DIGITS, "epochs": 1})
    run_training(config, tmp_path / "run", progress=False)
    other = load_config({**DIGITS, "epochs": 1, "lr": 0.01})
    with pytest.raises(ValueError, match="written by another config \\(field 'lr' differs\\)"):
        run_training(other, tmp_path / "run", resume=True, progress=False)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PCMSIM_QUIET": "1", "OMP_NUM_THREADS": "1", **(extra or {})}


def _run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hardware_in_loop.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return time.perf_counter() - t0


Milestone = tuple[str, str, int, float]
"""``(label, path in the run folder, lines, delay)``: kill ``delay`` epochs (of the uninterrupted run's
epoch time) after this attempt has (re)written ``path`` (with at least ``lines`` lines for a ``.jsonl``);
``""`` for the path kills ``delay`` epochs after the start."""


def _epoch_s(run: Path) -> float:
    """The wall time of one training epoch of a finished run (its metrics' cumulative times)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return rows[-1]["wall_time_s"] / len(rows)


def _state(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _reached(path: Path, before: tuple[int, int] | None, lines: int) -> bool:
    now = _state(path)
    if now is None or now == before:
        return False
    return lines <= 0 or len(path.read_text().splitlines()) >= lines


def _kill_at_milestones(args: list[str], env: dict[str, str], run: Path, milestones: list[Milestone],
                        epoch_s: float) -> list[str]:
    """Start ``args`` once per milestone and SIGKILL it when the run reaches that milestone (a progress
    condition on the run folder, not a wall-clock guess), each time resuming; then finish it."""
    outcomes = []
    for label, rel, lines, delay_s in milestones:
        target = run / rel if rel else None
        before = _state(target) if target is not None else None
        proc = subprocess.Popen([sys.executable, "-m", "hardware_in_loop.cli", *args], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 600
            while target is not None and not _reached(target, before, lines):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            if proc.poll() is None:
                time.sleep(delay_s * epoch_s)
            if proc.poll() is not None:
                outcomes.append(f"finished before {label}")
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            else:
                proc.kill()  # SIGKILL: no handler runs, nothing is flushed
                proc.wait()
                outcomes.append(f"killed {label}")
        finally:
            if proc.stderr:
                proc.stderr.close()
    _run(args, env)
    return outcomes


TRAIN_MILESTONES: list[Milestone] = [
    ("at start-up", "", 0, 0.5),
    ("after the config is written", "config.json", 0, 0.0),
    ("at the start snapshot", "snapshots/start.pt", 0, 0.0),
    ("in epoch 2", "checkpoint.pt", 0, 0.4),
    ("in epoch 4", "metrics.jsonl", 3, 0.4),
    ("during drift evaluation", "metrics.jsonl", 4, 0.0),
    ("while writing plots", "results.json", 0, 0.0),
]
"""Moments spread over the life of ``pcmsim train``: start-up, training, checkpoints, snapshots, drift
evaluation, results and plots."""


def test_train_killed_at_many_moments_resumes_to_identical_results(tmp_path: Path) -> None:
    cfg = tmp_path / "digits.json"
    cfg.write_text(json.dumps({**DIGITS, "flavour": "pcm", "drift_times": ["1h", "1d"], "snapshot_epochs": [2]}))
    env = _env()
    duration = _run(["train", str(cfg), "--out", str(tmp_path / "ref")], env)
    outcomes = _kill_at_milestones(["train", str(cfg), "--out", str(tmp_path / "run"), "--resume"], env,
                                   tmp_path / "run", TRAIN_MILESTONES, _epoch_s(tmp_path / "ref"))
    print(f"uninterrupted {duration:.1f} s;", ", ".join(outcomes))
    assert sum(o.startswith("killed") for o in outcomes) >= len(TRAIN_MILESTONES) - 1, outcomes
    ref = json.loads((tmp_path / "ref" / "results.json").read_text())
    got = json.loads((tmp_path / "run" / "results.json").read_text())
    assert got == ref


def test_reproduce_killed_at_many_moments_resumes_to_identical_results(music_data_dir: Path,
                                                                       tmp_path: Path) -> None:
    env = _env({"PCMSIM_DATA": str(music_data_dir)})
    common = ["reproduce", "jsb-52800", "--quick", "--epochs", "2"]
    duration = _run([*common, "--out", str(tmp_path / "ref")], env)
    milestones: list[Milestone] = [
        ("at start-up", "", 0, 0.5),
        ("as the FP32 run starts", "fp32/config.json", 0, 0.0),
        ("in the FP32 run's second epoch", "fp32/checkpoint.pt", 0, 0.0),
        ("after the FP32 results", "fp32/results.json", 0, 0.0),
        ("in the hardware run's second epoch", "hil/checkpoint.pt", 0, 0.25),
        ("during the hardware run's drift evaluation", "hil/metrics.jsonl", 2, 0.0),
        ("after the hardware results", "hil/results.json", 0, 0.0),
    ]
    # the delays in epochs of the shorter of the two runs' epochs (a FP32 epoch is shorter than a
    # hardware one); the FP32 run's second epoch is entered as its first checkpoint appears: its
    # epochs are so short that any delay measured on the reference run can outlast it under load
    epoch_s = min(_epoch_s(tmp_path / "ref" / "fp32"), _epoch_s(tmp_path / "ref" / "hil"))
    outcomes = _kill_at_milestones([*common, "--resume", str(tmp_path / "run")], env, tmp_path / "run", milestones,
                                   epoch_s)
    print(f"uninterrupted {duration:.1f} s;", ", ".join(outcomes))
    assert sum(o.startswith("killed") for o in outcomes) >= len(milestones) - 1, outcomes
    for part in ("results.json", "fp32/results.json", "hil/results.json"):
        ref = json.loads((tmp_path / "ref" / part).read_text())
        got = json.loads((tmp_path / "run" / part).read_text())
        assert got == ref, part
