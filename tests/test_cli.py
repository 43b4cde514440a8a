"""The command line: one way to register commands, one --set, and one clear line for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardware_in_loop.cli import COMMANDS, build_parser, main

IRIS = {"task": "classification", "dataset": "iris", "encoder": "tile", "steps": 4,
        "network": {"layers": [4, 8, 3]}, "epochs": 1, "batch_size": 32, "lr": 0.02}


def _config(tmp_path: Path) -> str:
    path = tmp_path / "iris.json"
    path.write_text(json.dumps(IRIS))
    return str(path)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("pcmsim: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_version_and_every_command_registered_once(capsys: pytest.CaptureFixture[str]) -> None:
    import pcmsim

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"pcmsim {pcmsim.__version__}"
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"device", "train", "reproduce", "evaluate", "plot", "cost", "sweep", "sweep-report"} <= set(sub.choices)
    assert len(COMMANDS) == len(set(COMMANDS))


def test_train_takes_set_seed_epochs_and_flavour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["train", _config(tmp_path), "--out", str(out), "--quiet", "--seed", "3", "--epochs", "2",
                 "--flavour", "pcm", "--set", "network.layers=[4,6,3]", "--set", "device_model=ideal"])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "config.json").read_text())
    assert (saved["seed"], saved["epochs"], saved["flavour"], saved["device_model"]) == (3, 2, "pcm", "ideal")
    assert saved["network"]["layers"] == [4, 6, 3]
    results = json.loads((out / "results.json").read_text())
    assert results["n_devices"] == 2 * (4 * 6 + 6 * 3)


def test_an_existing_run_is_not_silently_started_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, out = _config(tmp_path), tmp_path / "run"
    assert main(["train", config, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    err = _error(capsys, ["train", config, "--out", str(out), "--quiet"])
    assert "holds a finished run (checkpoint.pt): continue it with --resume, or start over with --overwrite" in err
    (out / "results.json").unlink()
    assert "holds an unfinished run" in _error(capsys, ["train", config, "--out", str(out), "--quiet"])
    assert main(["train", config, "--out", str(out), "--quiet", "--resume"]) == 0
    before = (out / "config.json").stat().st_mtime_ns
    assert main(["train", config, "--out", str(out), "--quiet", "--overwrite", "--seed", "5"]) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 5
    assert (out / "config.json").stat().st_mtime_ns != before


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert "--out" in _error(capsys, ["train", config, "--out", str(tmp_path / "afile")])
    assert "is a file: expected a folder" in _error(capsys, ["train", config, "--out", str(tmp_path / "afile")])
    err = _error(capsys, ["train", config, "--out", str(tmp_path / "r"), "--set", "drift_times=1d"])
    assert "field 'drift_times' = '1d'" in err and 'as a JSON list, e.g. ["1d"]' in err
    err = _error(capsys, ["train", config, "--out", str(tmp_path / "r"), "--set", "flavour=pmc"])
    assert "did you mean 'pcm'?" in err
    err = _error(capsys, ["train", config, "--out", str(tmp_path / "r"), "--set", "lernrate=0.1"])
    assert "unknown field 'lernrate'" in err
    err = _error(capsys, ["train", config, "--out", str(tmp_path / "r"), "--set", "device_model=pcm-joshi2002"])
    assert "did you mean 'pcm-joshi2020'?" in err
    assert "did you mean 'jsb-52800'?" in _error(capsys, ["reproduce", "jsb-5280", "--out", str(tmp_path / "j")])
    assert "--set 'epochs'" in _error(capsys, ["train", config, "--out", str(tmp_path / "r"), "--set", "epochs"])
    monkeypatch.setenv("PCMSIM_DATA", str(tmp_path / "no-such-folder"))
    err = _error(capsys, ["reproduce", "jsb-52800", "--quick", "--out", str(tmp_path / "j"), "--quiet"])
    assert "PCMSIM_DATA=" in err and "no such folder" in err
    with pytest.raises(SystemExit):
        main(["train", config, "--seed", "-1"])
    assert "expected an integer ≥ 0" in capsys.readouterr().err


def test_device_commands_share_the_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["device", "plot", "ideal", "--out", str(tmp_path), "--seed", "-1"])
    assert "expected an integer ≥ 0" in capsys.readouterr().err
    err = _error(capsys, ["device", "plot", "pcm-joshi202", "--out", str(tmp_path)])
    assert "did you mean 'pcm-joshi2020'?" in err
    assert main(["device", "measure", "ideal", str(tmp_path / "m"), "--n-devices", "40", "--n-pulses", "5"]) == 0
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"pulses.csv", "drift.csv", "reads.csv"}
