"""The training loop: config validation, learning, checkpoints and exact resume."""

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
from conftest import assert_figure, interrupting_trainer

from hardware_in_loop.checkpoint import CheckpointError, load_checkpoint
from hardware_in_loop.config import ConfigError
from hardware_in_loop.experiments import run_training
from hardware_in_loop.tasks import MusicConfig, load_config
from hardware_in_loop.trainer import Trainer, TrainingInterrupted

REPO = Path(__file__).resolve().parents[1]

TINY: dict[str, Any] = {
    "dataset": "jsb",
    "network": {"layers": [88, 24, 88]},
    "epochs": 3,
    "batch_size": 8,
    "max_train_sequences": 24,
    "max_eval_sequences": 8,
    "lr": 0.01,
    "drift_times": ["1h"],
}


def tiny(data_dir: Path, **changes: Any) -> MusicConfig:
    config = load_config({**TINY, "data_dir": str(data_dir), **changes})
    assert isinstance(config, MusicConfig)
    return config


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"lr": -0.1}, "'lr' = -0.1 is invalid"),
        ({"epochs": 0}, "'epochs' = 0"),
        ({"bogus": 1}, r"unknown field 'bogus'"),
        ({"flavour": "pcm", "device_model": "pcm-nonexistent"}, "'device_model'"),
        ({"flavour": "pcm", "update_scheme": "magic"}, "'update_scheme'"),
        ({"dataset": "mnist"}, "'dataset'"),
        ({"drift_times": ["soon"]}, "drift_times"),
        ({"network": {"layers": [88]}},
         "'network.layers' = \\[88\\] is invalid: expected a list of ≥ 2 positive layer widths"),
        ({"network": {"readout": "integrator"}}, "'network.readout' = 'integrator' is invalid: "
         "expected a per-step readout for music prediction: ssnu, sigmoid"),
        ({"network": {"sizes": [88, 24, 88], "layers": [88, 24, 88]}}, "'network.sizes' is the earlier name of"),
        ({"network": {"layers": [88, 10, 88], "decay": "x"}},
         "'network.decay' = 'x' is invalid: expected 0 ≤ decay ≤ 1"),
        ({"clock": {"t_start_s": -1}}, "'clock'"),
        ({"compensations": ["sideways"]}, "'compensations'"),
        ({"task": "poetry"}, "'task' = 'poetry' is invalid: expected one of music, classification"),
    ],
)
def test_invalid_config_is_refused_with_the_field(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config({**TINY, **changes})


def test_fp32_training_lowers_the_loss(music_data_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = tiny(music_data_dir, epochs=4, max_train_sequences=64, lr=0.02)
    results = run_training(config, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    # the untrained network predicts the training marginals (output_bias_init='marginal')
    untrained = Trainer(config, tmp_path / "untrained", progress=False).evaluate("valid")["nll"]
    print("untrained", untrained, [r["train_nll"] for r in rows], [r["valid_nll"] for r in rows])
    assert rows[-1]["train_nll"] < rows[0]["train_nll"] - 0.3
    assert rows[-1]["valid_nll"] < untrained - 0.5
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["test_nll"] == results["test_nll"]


def _resume_matches(config: MusicConfig, tmp_path: Path) -> None:
    full = Trainer(config, tmp_path / "full", progress=False)
    full.fit()
    expected = full.summary()

    part = interrupting_trainer(5)(config, tmp_path / "part", progress=False)
    with pytest.raises(TrainingInterrupted):
        part.fit()
    ckpt = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert ckpt["batch_index"] > 0  # stopped mid-epoch
    resumed = Trainer(config, tmp_path / "part", progress=False)
    resumed.resume()
    resumed.fit()
    got = resumed.summary()
    for key in ("test_nll", "valid_nll", "final_test_nll", "test_frame_accuracy", "simulated_time_s"):
        assert got[key] == expected[key], key
    _assert_same_state(full.model.state_dict(), resumed.model.state_dict())


def _assert_same_state(a: Any, b: Any, where: str = "model") -> None:
    """Bitwise equality of nested state dicts (parameters, buffers, device states, generators)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}.{key}")
    else:
        assert a == b, where


def test_fp32_resume_after_interrupt_is_exact(music_data_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    _resume_matches(tiny(music_data_dir, epochs=2), tmp_path)


def test_bad_checkpoint_gives_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable pcmsim checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PCMSIM_QUIET": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "hardware_in_loop.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def test_cli_refuses_bad_config_before_training(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({**TINY, "lr": -1}))
    proc = _cli("train", str(cfg), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "lr" in lines[0] and "invalid" in lines[0], proc.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()

    cfg.write_text("{ not json")
    proc = _cli("train", str(cfg))
    assert proc.returncode == 2 and "invalid JSON" in proc.stderr


def test_cli_missing_data_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg.write_text(json.dumps({**TINY, "data_dir": str(empty)}))
    # no network here: the download of the missing file fails and must say so in one line
    proc = _cli("train", str(cfg), "--out", str(tmp_path / "run"), env_extra={"PCMSIM_OFFLINE": "1"})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_killed_run_resumes_to_the_same_results(music_data_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({**TINY, "data_dir": str(music_data_dir), "epochs": 3, "max_train_sequences": 48}))
    ref = _cli("train", str(cfg), "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    env = {**os.environ, "PCMSIM_QUIET": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hardware_in_loop.cli", "train", str(cfg),
                             "--out", str(tmp_path / "run")], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before its first checkpoint"
    proc.kill()  # SIGKILL as epoch 2 starts (the progress condition: epoch 1's checkpoint): nothing written
    proc.wait()
    assert not (tmp_path / "run" / "results.json").exists()
    res = _cli("train", str(cfg), "--out", str(tmp_path / "run"), "--resume")
    assert res.returncode == 0, res.stderr
    a = json.loads((tmp_path / "ref" / "results.json").read_text())
    b = json.loads((tmp_path / "run" / "results.json").read_text())
    for key in ("test_nll", "valid_nll", "final_test_nll", "test_frame_accuracy", "epochs"):
        assert a[key] == b[key], key


def test_hil_resume_after_interrupt_is_exact(music_data_dir: Path, tmp_path: Path) -> None:
    """Devices, χ, optimiser, clock and every generator come back from the checkpoint."""
    torch.set_num_threads(1)
    config = tiny(music_data_dir, epochs=2, flavour="pcm", device_model="pcm-nandakumar2018",
                  crossbar={"weight_scale": 0.1}, lr=0.05)
    _resume_matches(config, tmp_path)


def test_hil_run_writes_results_plots_and_evaluates(music_data_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = tiny(music_data_dir, epochs=2, flavour="pcm", device_model="pcm-nandakumar2018",
                  crossbar={"weight_scale": 0.1}, snapshot_epochs=[1, 2], drift_times=["1h", "1d"], lr=0.05)
    run = tmp_path / "run"
    results = run_training(config, run, progress=False)
    assert results["n_devices"] == 2 * (88 * 24 + 24 * 88)
    assert results["pulses_set"] > 0 and results["max_pulses_per_device"] > 0
    assert {r["delay"] for r in results["drift"]} == {"0s", "1h", "1d"}
    for name in ("training_curves.png", "conductance_histograms.png", "pulses_per_device.png", "nll_vs_drift.png"):
        assert_figure(run / "plots" / name)
    proc = _cli("evaluate", str(run), "--times", "1h,1y", "--compensation", "none,global")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((run / "evaluation.json").read_text())["rows"]
    assert [r["delay"] for r in rows if r["compensation"] == "none"] == ["0s", "1h", "1y"]
    # the same evaluation, reloaded from the checkpoint, gives the run's own numbers at 0 s
    at0 = next(r for r in rows if r["compensation"] == "none" and r["delay"] == "0s")
    ref = next(r for r in results["drift"] if r["compensation"] == "none" and r["delay"] == "0s")
    assert at0["nll"] == pytest.approx(ref["nll"], rel=0.02)
    assert _cli("plot", str(run)).returncode == 0
    bad = _cli("evaluate", str(run), "--times", "soon")
    assert bad.returncode == 2 and "soon" in bad.stderr


def test_reproduce_reuses_the_baseline_only_for_the_same_config(music_data_dir: Path, tmp_path: Path) -> None:
    from hardware_in_loop.experiments import reproduce

    torch.set_num_threads(1)
    logs: list[str] = []
    common = {"quick": True, "progress": False, "log": logs.append, "data_dir": str(music_data_dir),
              "epochs": 1, "network": {"layers": [88, 16, 88]}, "drift_times": ["1h"]}
    first = reproduce("jsb-52800", tmp_path, **common)
    assert first["fp32_test_nll"] is not None and first["n_devices"] == 2 * 2 * 88 * 16
    again = reproduce("jsb-52800", tmp_path, **common)
    assert any("reused" in line for line in logs)
    assert again["fp32_test_nll"] == first["fp32_test_nll"]
    logs.clear()
    reproduce("jsb-52800", tmp_path, **{**common, "seed": 7})
    assert not any("reused" in line for line in logs)
    saved = json.loads((tmp_path / "fp32" / "config.json").read_text())
    assert saved["seed"] == 7


def test_fp32_run_programmed_onto_joshi_devices_ages(music_data_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    run = tmp_path / "fp32"
    run_training(tiny(music_data_dir, epochs=2, lr=0.02), run, progress=False)
    proc = _cli("evaluate", str(run), "--device-model", "pcm-joshi2020", "--times", "1h,1y",
                "--compensation", "none,global")
    assert proc.returncode == 0, proc.stderr
    out = json.loads((run / "evaluation-pcm-joshi2020.json").read_text())
    assert out["n_devices"] == 2 * (88 * 24 + 24 * 88)
    assert all(r["n_clipped"] == 0 for r in out["programming"].values())  # auto scale: nothing clipped
    nll = {(r["compensation"], r["delay"]): r["nll"] for r in out["rows"]}
    assert set(nll) == {(m, d) for m in ("none", "global") for d in ("0s", "1h", "1y")}
    assert all(v == v and v < 20 for v in nll.values())
    # a year of drift (conductances fall by about half) changes the uncompensated network's output
    assert nll[("none", "1y")] != nll[("none", "0s")]
    bad = _cli("evaluate", str(run), "--device-model", "pcm-bogus")
    assert bad.returncode == 2 and "pcm-bogus" in bad.stderr
