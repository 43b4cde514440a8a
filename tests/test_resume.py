"""Every command that writes a run, interrupted or killed at any moment, resumes to the same results.

The SIGKILL tests start the real command line in a subprocess, kill it at times spread over the
whole life of the command (start-up, data loading, training, checkpoints, drift evaluation,
results and plots), continue it with ``--resume`` each time, and compare the final
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
    proc = subprocess.run([sys.executable, "-m", "pcmsim.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return time.perf_counter() - t0


def _kill_and_resume(args: list[str], env: dict[str, str], duration_s: float, fractions: list[float]) -> list[str]:
    """Start ``args`` and SIGKILL it after ``f·duration_s`` for each f, each time resuming; then finish."""
    outcomes = []
    for f in fractions:
        proc = subprocess.Popen([sys.executable, "-m", "pcmsim.cli", *args], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            proc.wait(timeout=f * duration_s)
            outcomes.append(f"finished before {f:.2f}")
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL: no handler runs, nothing is flushed
            proc.wait()
            outcomes.append(f"killed at {f:.2f}")
        finally:
            if proc.stderr:
                proc.stderr.close()
    _run(args, env)
    return outcomes


FRACTIONS = [0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95, 0.6, 0.3, 0.8]
"""Kill times as fractions of an uninterrupted run's duration (start-up included), each from the
start of a resumed attempt: early ones land in start-up and the first epochs, later ones in
training, evaluation and the writing of results."""


def test_train_killed_at_many_moments_resumes_to_identical_results(tmp_path: Path) -> None:
    cfg = tmp_path / "digits.json"
    cfg.write_text(json.dumps({**DIGITS, "flavour": "pcm", "drift_times": ["1h", "1d"], "snapshot_epochs": [2]}))
    env = _env()
    duration = _run(["train", str(cfg), "--out", str(tmp_path / "ref")], env)
    outcomes = _kill_and_resume(["train", str(cfg), "--out", str(tmp_path / "run"), "--resume"], env, duration,
                                FRACTIONS)
    print(f"uninterrupted {duration:.1f} s;", ", ".join(outcomes))
    assert sum(o.startswith("killed") for o in outcomes) >= 5
    ref = json.loads((tmp_path / "ref" / "results.json").read_text())
    got = json.loads((tmp_path / "run" / "results.json").read_text())
    assert got == ref


def test_reproduce_killed_at_many_moments_resumes_to_identical_results(music_data_dir: Path,
                                                                       tmp_path: Path) -> None:
    env = _env({"PCMSIM_DATA": str(music_data_dir)})
    common = ["reproduce", "jsb-52800", "--quick", "--epochs", "2"]
    duration = _run([*common, "--out", str(tmp_path / "ref")], env)
    outcomes = _kill_and_resume([*common, "--resume", str(tmp_path / "run")], env, duration, FRACTIONS[:7])
    print(f"uninterrupted {duration:.1f} s;", ", ".join(outcomes))
    assert sum(o.startswith("killed") for o in outcomes) >= 4
    for part in ("results.json", "fp32/results.json", "hil/results.json"):
        ref = json.loads((tmp_path / "ref" / part).read_text())
        got = json.loads((tmp_path / "run" / part).read_text())
        assert got == ref, part
