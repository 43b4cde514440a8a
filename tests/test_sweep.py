"""Sweeps on Dask: the same summary serially, on two workers, with a worker killed mid-point, and
after the client is interrupted and rerun; failing points recorded; sweep files checked up front.

Every cluster here is a LocalCluster on 127.0.0.1. The points are tiny Iris runs (about a second
each), one of them on PCM devices, one long enough (100 epochs) to be caught in the middle, and one
that fails at run time: ``device: "meta"`` is a valid torch device name, so the config validates,
but no run can train on it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hardware_in_loop.cli import main
from hardware_in_loop.sweep import SweepError, load_sweep, run_sweep
from hardware_in_loop.sweep_stats import describe, summarize

REPO = Path(__file__).resolve().parents[1]
IRIS: dict[str, Any] = {
    "task": "classification", "dataset": "iris", "encoder": "tile", "steps": 8, "network": {"layers": [4, 16, 3]},
    "epochs": 3, "batch_size": 16, "lr": 0.02, "valid_fraction": 0.2,
}
SWEEP: dict[str, Any] = {
    "name": "tiny",
    "base": IRIS,
    "mode": "zip",
    "axes": {
        "flavour": ["fp32", "fp32", "pcm", "fp32", "fp32"],
        "lr": [0.02, 0.05, 0.02, 0.02, 0.03],
        "device": ["cpu", "cpu", "cpu", "meta", "cpu"],
        "epochs": [3, 3, 3, 3, 100],
        # the step-by-step neuron loop: the long point must last long enough to be interrupted mid-way
        "neuron_loop": ["fused", "fused", "fused", "fused", "plain"],
    },
    "seeds": [0, 1],
}
LONG = 4  # the index of the 100-epoch setting
BAD = 3  # the index of the setting that fails at run time
PART: dict[str, Any] = {**SWEEP, "name": "part", "axes": {k: [v[0], v[LONG]] for k, v in SWEEP["axes"].items()}}
"""Settings 0 and LONG of SWEEP: the same point configs (so the same ids), in fewer points."""


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary without wall times (they differ between runs) and where it was run from."""
    out = json.loads(json.dumps(summary))
    out.pop("source", None)
    for row in out["settings"]:
        row.pop("wall_time_s")
        row.pop("train_wall_time_s")
    return out


def _results(out: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted((out / "points").glob("*/results.json"))}


def _rows(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each setting's statistics by label, without wall times, index and selection."""
    drop = ("wall_time_s", "train_wall_time_s", "setting", "selected")
    return {r["label"]: {k: v for k, v in r.items() if k not in drop} for r in summary["settings"]}


def _same_as_reference(summary: dict[str, Any], out: Path, reference: tuple[dict[str, Any], Path]) -> None:
    """``summary`` (of PART) has the reference's rows and every point the reference's results, bit for bit."""
    expected, ref_out = reference
    got, want = _rows(summary), _rows(expected)
    assert got == {label: want[label] for label in got} and len(got) == 2
    ref_results = _results(ref_out)
    results = _results(out)
    assert len(results) == 4 and results == {k: ref_results[k] for k in results}


def _mid_point(folder: Path) -> bool:
    """The point has written a checkpoint and is in the first half of its 100 epochs."""
    try:
        epochs = len((folder / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return False
    return (folder / "checkpoint.pt").is_file() and 1 <= epochs < 50 and not (folder / "results.json").is_file()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The sweep run serially in this process."""
    out = tmp_path_factory.mktemp("serial")
    return run_sweep(SWEEP, out, workers=0, progress=False), out


def test_serial_sweep_records_the_bad_point_and_finishes_the_rest(reference: tuple[dict[str, Any], Path]) -> None:
    summary, out = reference
    assert summary["points"] == {"total": 10, "done": 8, "failed": 2, "interrupted": 0, "pending": 0}
    bad = summary["settings"][BAD]
    assert bad["failed"] == 2 and bad["errors"] == ["RuntimeError: META device type not an accelerator."]
    assert all(r["done"] == 2 for i, r in enumerate(summary["settings"]) if i != BAD)
    points = json.loads((out / "points.json").read_text())
    failed = [p for p in points if p["status"] == "failed"]
    assert [p["setting"] for p in failed] == [BAD, BAD] and failed[0]["error"].startswith("RuntimeError: META")
    for p in failed:
        assert json.loads((out / "points" / p["id"] / "error.json").read_text())["error"] == p["error"]
    # every point folder is an ordinary run folder of its own config, seeded by its config's seed
    for p in points:
        config = json.loads((out / "points" / p["id"] / "config.json").read_text())
        assert config["seed"] == p["seed"] and config["lr"] == p["values"]["lr"]
    pcm = summary["settings"][2]
    assert pcm["pulses_set"]["n"] == 2 and pcm["pulses_set"]["mean"] > 0
    assert summary["settings"][0]["pulses_set"]["n"] == 0  # software runs have no pulses
    # selected on the validation metric among complete settings, never the failed one
    eligible = [r for r in summary["settings"] if r["failed"] == 0]
    best = max(eligible, key=lambda r: r["valid_accuracy"]["mean"])
    assert summary["selected"]["setting"] == best["setting"] and best["selected"]
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["setting", "flavour", "lr", "device", "epochs"]
    assert "valid_accuracy_ci95_low" in header and "wall_time_s_mean" in header


def test_two_local_workers_give_the_serial_summary(reference: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    expected, ref_out = reference
    got = run_sweep(SWEEP, tmp_path, workers=2, progress=False)
    assert _comparable(got) == _comparable(expected)
    assert _results(tmp_path) == _results(ref_out)  # every finished point bit for bit
    # a rerun skips every finished point and retries only the failed ones
    lines: list[str] = []
    again = run_sweep(SWEEP, tmp_path, workers=0, progress=False, log=lines.append)
    assert "8 finished earlier" in lines[0] and "2 failed earlier (retried)" in lines[0]
    assert _comparable(again) == _comparable(expected)


def test_a_worker_killed_mid_point_is_replaced_and_the_summary_is_unchanged(
        reference: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    sweep = load_sweep(PART)
    target = next(p for p in sweep.points if p.setting == 1)
    folder = tmp_path / "points" / target.id
    killed: dict[str, Any] = {}

    def killer(client: Any) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if _mid_point(folder):
                busy = [w for w, keys in client.processing().items() if f"pcmsim-point-{target.id}" in keys]
                pids = client.run(os.getpid)
                if busy and busy[0] in pids:
                    killed["epochs_done"] = len((folder / "metrics.jsonl").read_text().splitlines())
                    killed["pid"] = pids[busy[0]]
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    return
            time.sleep(0.005)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        thread = threading.Thread(target=killer, args=(client,), daemon=True)
        thread.start()
        got = run_sweep(PART, tmp_path, scheduler=cluster.scheduler_address, progress=False)
        thread.join(timeout=5)
        assert killed, "the long point was never caught in the middle"
        assert 1 <= killed["epochs_done"] < 100
        deadline = time.monotonic() + 60  # the nanny replaces the dead worker process
        while time.monotonic() < deadline and (len(client.run(os.getpid)) < 2
                                               or killed["pid"] in client.run(os.getpid).values()):
            time.sleep(0.2)
        pids = client.run(os.getpid)
        assert len(pids) == 2 and killed["pid"] not in pids.values()
    _same_as_reference(got, tmp_path, reference)
    record = next(p for p in json.loads((tmp_path / "points.json").read_text()) if p["id"] == target.id)
    assert record["status"] == "done" and record["resumed_from_epoch"] >= 1  # rerun from its checkpoint


def _default_sigint() -> None:
    """In the child: SIGINT at its default, so that Python turns it into KeyboardInterrupt even when
    the suite runs as a background job of a non-interactive shell (which starts it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(args: list[str], **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PCMSIM_QUIET": "1"}
    return subprocess.Popen([sys.executable, "-m", "hardware_in_loop.cli", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint, **kw)


def test_interrupted_client_resumes_on_rerun(reference: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    spec = tmp_path / "part.json"
    spec.write_text(json.dumps(PART))
    out = tmp_path / "out"
    target = next(p for p in load_sweep(PART).points if p.setting == 1)
    folder = out / "points" / target.id
    proc = _cli(["sweep", str(spec), "--out", str(out), "--workers", "1"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _mid_point(folder):
            proc.send_signal(signal.SIGINT)  # Ctrl-C of the client, mid-point
            break
        time.sleep(0.005)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    assert json.loads((out / "summary.json").read_text())["points"]["done"] == 2  # the short points
    proc = _cli(["sweep", str(spec), "--out", str(out), "--workers", "1"])
    _, err = proc.communicate(timeout=300)  # log lines go to standard error
    assert proc.returncode == 0, err
    assert "2 finished earlier, 1 to resume from checkpoints, 0 failed earlier (retried), 1 to start" in err
    _same_as_reference(json.loads((out / "summary.json").read_text()), out, reference)
    record = next(p for p in json.loads((out / "points.json").read_text()) if p["id"] == target.id)
    assert record["resumed_from_epoch"] >= 1


def test_sweep_report_prints_the_table_and_draws_each_axis(reference: tuple[dict[str, Any], Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, out = reference
    assert main(["sweep-report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sweep tiny (classification; accuracy: higher is better): 10 points, 8 done, 2 failed" in text
    starred = [line for line in text.splitlines() if line.startswith("* ")]
    assert len(starred) == 1
    assert (out / "plots" / "sweep_settings.png").stat().st_size > 10_000  # zip sweep: metric against settings
    grid = {**SWEEP, "mode": "grid", "axes": {"lr": [0.02, 0.05], "network.layers": [[4, 8, 3], [4, 16, 3]]},
            "seeds": 1}
    run_sweep(grid, tmp_path, workers=0, progress=False)
    assert main(["sweep-report", str(tmp_path)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert [p.name for p in map(Path, shown[-2:])] == ["sweep_lr.png", "sweep_network.layers.png"]


@pytest.mark.parametrize(("change", "message"), [
    ({"axis": {}}, "unknown field 'axis'; valid fields: name, description, base"),
    ({"axes": {"lr": [0.01, -1]}, "mode": "grid"},
     "point (lr=-1 seed=0): field 'lr' = -1 is invalid: expected a finite number > 0"),
    ({"axes": {"crossbar_scale": [1]}}, "field 'axes.crossbar_scale': 'crossbar_scale' is not a field of a "
     "classification config"),
    ({"axes": {"lr.x": [1]}}, "field 'axes.lr.x': 'lr' is not an object in the base config"),
    ({"axes": {"lr": [0.1, 0.2], "epochs": [1]}, "mode": "zip"},
     "a zip sweep needs axes of equal lengths, got lr: 2, epochs: 1"),
    ({"axes": {"lr": 0.1}}, "field 'axes.lr' = 0.1 is invalid: expected a non-empty list of values"),
    ({"axes": {"seed": [1, 2]}}, "field 'axes.seed': give the seeds in the sweep's 'seeds' field"),
    ({"seeds": 0}, "field 'seeds' = 0 is invalid: expected a number of seeds ≥ 1 or a list of seeds"),
    ({"mode": "cartesian"}, "field 'mode' = 'cartesian' is invalid: expected 'grid' or 'zip'"),
    ({"base": "jsb-99"}, "field 'base' = 'jsb-99' is invalid: expected a named experiment (jsb-52800) or a config"),
    ({"axes": {"lr,epochs": [[0.1, 2], [0.2]]}}, "field 'axes.lr,epochs' = [[0.1, 2], [0.2]] is invalid: expected "
     "a list of [lr, epochs] value lists"),
])
def test_bad_sweep_files_give_one_line_and_run_nothing(change: dict[str, Any], message: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"base": IRIS, "axes": {"lr": [0.01]}, **change}))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pcmsim: error: {spec}") and message in err, err
    assert not (tmp_path / "out").exists()


def test_cli_errors_of_the_command_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.json"
    spec.write_text("{\"base\": ")
    assert main(["sweep", str(spec)]) == 2
    assert capsys.readouterr().err == f"pcmsim: error: {spec}: invalid JSON at line 1 column 10\n"
    spec.write_text(json.dumps({"base": IRIS}))
    assert main(["sweep", str(spec), "--set", "epochs"]) == 2
    assert "--set 'epochs' is invalid: expected PATH=VALUE" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--set", "lr=-2"]) == 2
    assert "field 'lr' = -2 is invalid" in capsys.readouterr().err
    assert main(["sweep-report", str(tmp_path)]) == 2
    assert "not a sweep folder (no sweep.json)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", str(spec), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hardware_in_loop.cli import main

    monkeypatch.setattr("hardware_in_loop.sweep_exec.CONNECT_TIMEOUT", "2s")
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"base": IRIS, "axes": {"lr": [0.01]}}))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:1",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scheduler tcp://127.0.0.1:1: cannot connect to a Dask scheduler there" in err


def test_points_expand_grid_zip_linked_axes_and_seeds() -> None:
    grid = load_sweep({"base": IRIS, "axes": {"lr": [0.01, 0.02], "batch_size": [8, 16, 32]}, "seeds": 3})
    assert len(grid.settings) == 6 and len(grid.points) == 18
    assert grid.settings[1] == {"lr": 0.01, "batch_size": 16}
    assert [p.seed for p in grid.points[:3]] == [0, 1, 2] and [p.config.seed for p in grid.points[:3]] == [0, 1, 2]
    linked = load_sweep({"base": IRIS, "axes": {"epochs": [2, 4], "lr,batch_size": [[0.01, 8], [0.02, 16]]},
                         "seeds": [7]})
    assert [s for s in linked.settings] == [{"epochs": 2, "lr": 0.01, "batch_size": 8},
                                            {"epochs": 2, "lr": 0.02, "batch_size": 16},
                                            {"epochs": 4, "lr": 0.01, "batch_size": 8},
                                            {"epochs": 4, "lr": 0.02, "batch_size": 16}]
    assert linked.points[3].config.batch_size == 16 and linked.points[3].config.seed == 7
    # ids: a hash of the full config, the same whatever the order of the sweep file's fields
    again = load_sweep({"seeds": [7], "axes": {"epochs": [2, 4], "lr,batch_size": [[0.01, 8], [0.02, 16]]},
                        "base": dict(reversed(list(IRIS.items())))})
    assert [p.id for p in again.points] == [p.id for p in linked.points]
    assert len({p.id for p in grid.points}) == 18
    nested = load_sweep({"base": IRIS, "overrides": {"network.neuron": "lif"}, "axes": {"device_params.g_max_us":
                                                                                         [10.0, 20.0]}})
    assert nested.points[1].config.device_params.g_max_us == 20.0
    assert nested.points[1].config.to_dict()["device_params"] == {"g_max_us": 20.0}
    with pytest.raises(SweepError, match="have the same config"):
        load_sweep({"base": IRIS, "mode": "zip", "axes": {"lr": [0.01, 0.01]}})


def test_shipped_studies_are_one_command_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/sweeps/: the README's studies, each a valid sweep of the 52,800-device experiment (the
    fitted-device study after its two fitting commands, here on small measurements) or, for the deployment
    study, of the digits task."""
    import device_models
    from device_models import measurements
    from device_models.fit import fit_measurements, save_fitted

    monkeypatch.chdir(tmp_path)  # the fitted-device study names runs/fit/nandakumar-fit.json
    nk = device_models.get("pcm-nandakumar2018")
    # small files: the study needs a fitted model's file, not a good fit (the fit has its own tests)
    device_models.write_pulse_response_csv(nk, tmp_path / "p.csv", n_devices=60, n_pulses=8, seed=1)
    measurements.write_drift_csv(nk, tmp_path / "d.csv", n_devices=40, seed=2)
    save_fitted(fit_measurements([str(tmp_path / "p.csv"), f"drift={tmp_path / 'd.csv'}"]),
                tmp_path / "runs" / "fit" / "nandakumar-fit.json")
    files = sorted((REPO / "configs" / "sweeps").glob("*.json"))
    assert {f.stem for f in files} >= {"jsb-52800-weight-scale", "jsb-headline", "jsb-devices", "jsb-fitted-device"}
    for f in files:
        sweep = load_sweep(f)
        assert len(sweep.seeds) >= 5
        assert (sweep.task, sweep.metric) in {("music", "nll"), ("classification", "accuracy")}  # deployment-digits
    scale = load_sweep(REPO / "configs" / "sweeps" / "jsb-52800-weight-scale.json")
    values = scale.axes["crossbar.weight_scale"]
    assert min(values) <= 0.02 and max(values) >= 0.1 and 0.05 in values
    assert {p.config.crossbar.weight_scale for p in scale.points} == set(values)


def test_statistics_and_selection_use_validation_only() -> None:
    stats = describe([1.0, 2.0, 3.0])
    from scipy.stats import t

    half = t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert stats["n"] == 3 and stats["mean"] == 2.0 and stats["std"] == 1.0
    assert stats["ci95_low"] == pytest.approx(2.0 - half) and stats["ci95_high"] == pytest.approx(2.0 + half)
    assert describe([5.0]) == {"n": 1, "mean": 5.0, "std": None, "ci95_low": None, "ci95_high": None}
    manifest = {
        "name": "m", "source": "m", "task": "music", "metric": "nll", "higher_is_better": False,
        "axes": {"x": [1, 2, 3]}, "seeds": [0, 1], "mode": "grid",
        "settings": [{"index": i, "values": {"x": i + 1}, "label": f"x={i + 1}"} for i in range(3)],
        "points": [{"id": f"{i}{s}", "setting": i, "seed": s} for i in range(3) for s in range(2)],
    }

    def rec(valid: float, test: float) -> dict[str, Any]:
        return {"status": "done", "error": None, "valid_nll": valid, "test_nll": test, "wall_time_s": 1.0}

    records = {"00": rec(9.0, 9.5), "01": rec(9.2, 9.5),  # best validation, worse test
               "10": rec(9.4, 8.0), "11": rec(9.4, 8.2),  # best test: never chosen for it
               "20": rec(8.0, 8.0), "21": {"status": "failed", "error": "diverged: valid_nll = nan"}}
    summary = summarize(manifest, records)
    assert summary["selected"]["setting"] == 0  # setting 2 has the lowest mean but a failed seed
    assert summary["settings"][2]["valid_nll"]["n"] == 1 and summary["settings"][2]["failed"] == 1
    assert summary["points"] == {"total": 6, "done": 5, "failed": 1, "interrupted": 0, "pending": 0}
    manifest["higher_is_better"] = True
    assert summarize(manifest, records)["selected"]["setting"] == 1


def test_the_manuals_sweep_example_is_a_valid_sweep() -> None:
    text = (REPO / "docs" / "sweeps.md").read_text()
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    sweep = load_sweep(example)
    assert len(sweep.settings) == 6 and len(sweep.points) == 30
    assert {p.config.crossbar.devices_per_sign for p in sweep.points} == {1, 2}


def test_a_diverged_run_is_a_failed_point(tmp_path: Path) -> None:
    from hardware_in_loop.sweep_point import non_finite, point_record

    assert non_finite({"valid_nll": 8.9, "test_nll": 9.0}, "nll") is None
    assert non_finite({"valid_nll": float("nan"), "test_nll": 9.0}, "nll") == "diverged: valid_nll = nan"
    assert non_finite({"valid_accuracy": 0.5, "test_accuracy": float("inf")}, "accuracy") == \
        "diverged: test_accuracy = inf"
    (tmp_path / "results.json").write_text('{"valid_nll": NaN, "test_nll": 9.0}')
    (tmp_path / "timing.json").write_text('{"wall_time_s": 1.0}')
    assert point_record(tmp_path, "nll") == {"status": "failed", "error": "diverged: valid_nll = nan"}
    (tmp_path / "results.json").write_text('{"valid_nll": 8.9, "test_nll": 9.0}')
    assert point_record(tmp_path, "nll") == {"status": "done", "error": None, "valid_nll": 8.9, "test_nll": 9.0,
                                             "wall_time_s": 1.0}
    (tmp_path / "error.json").write_text('{"error": "RuntimeError: boom"}')
    assert point_record(tmp_path, "nll") == {"status": "failed", "error": "RuntimeError: boom"}
