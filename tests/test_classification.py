"""Classification data (Iris, digits, IDX/MNIST), config validation, and a short training run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hardware_in_loop.experiments import run_training
from hardware_in_loop.tasks import ClassificationConfig, load_config
from pcmsim.data import (
    DataError,
    IDXError,
    load_digits_data,
    load_iris_data,
    load_mnist,
    read_idx,
    write_idx,
)
from pcmsim.data import classification as cd
from pcmsim.data.datasets import DataFile, DatasetInfo
from pcmsim.typedconfig import ConfigError, load

# -- IDX --------------------------------------------------------------------------------------


def test_idx_roundtrip_raw_and_gzip(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "img", images)
    write_idx(tmp_path / "img.gz", images, compress=True)
    assert (tmp_path / "img").read_bytes()[:4] == b"\x00\x00\x08\x03"
    assert np.array_equal(read_idx(tmp_path / "img", ndim=3), images)
    assert np.array_equal(read_idx(tmp_path / "img.gz", ndim=3), images)
    floats = np.array([[1.5, -2.0]], dtype=np.float32)
    write_idx(tmp_path / "f", floats)
    assert np.array_equal(read_idx(tmp_path / "f"), floats)


def _one_line(exc: pytest.ExceptionInfo[BaseException], path: Path, *words: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    for w in words:
        assert w in msg


def test_idx_bad_magic(tmp_path: Path) -> None:
    p = tmp_path / "bad"
    p.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(IDXError) as exc:
        read_idx(p)
    _one_line(exc, p, "bad magic number 0x12340801", "expected")


def test_idx_truncated_data_and_header(tmp_path: Path) -> None:
    p = tmp_path / "short"
    write_idx(p, np.zeros((4, 2, 2), dtype=np.uint8))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(IDXError) as exc:
        read_idx(p)
    _one_line(exc, p, "truncated data (13 bytes)", "expected 16 bytes for shape (4, 2, 2)")
    h = tmp_path / "head"
    h.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(IDXError) as exc:
        read_idx(h)
    _one_line(exc, h, "truncated header")


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    p = tmp_path / "x.gz"
    write_idx(p, np.zeros((50, 4, 4), dtype=np.uint8), compress=True)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(IDXError) as exc:
        read_idx(p)
    _one_line(exc, p, "expected")


def test_idx_wrong_dims_and_trailing(tmp_path: Path) -> None:
    p = tmp_path / "labels"
    write_idx(p, np.zeros(5, dtype=np.uint8))
    with pytest.raises(IDXError) as exc:
        read_idx(p, ndim=3)
    _one_line(exc, p, "wrong number of dimensions 1", "expected 3")
    p.write_bytes(p.read_bytes() + b"\x00\x00")
    with pytest.raises(IDXError) as exc:
        read_idx(p)
    _one_line(exc, p, "2 trailing bytes")


# -- MNIST folder ------------------------------------------------------------------------------


def _tiny_mnist(folder: Path, *, compress: bool, n_train: int = 6, n_test: int = 4) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    write_idx(
        folder / f"train-images-idx3-ubyte{suffix}",
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        compress=compress,
    )
    write_idx(
        folder / f"train-labels-idx1-ubyte{suffix}",
        np.arange(n_train, dtype=np.uint8) % 10,
        compress=compress,
    )
    write_idx(
        folder / f"t10k-images-idx3-ubyte{suffix}",
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        compress=compress,
    )
    write_idx(
        folder / f"t10k-labels-idx1-ubyte{suffix}", np.arange(n_test, dtype=np.uint8) % 10, compress=compress
    )


def _no_fetch(url: str, dest: Any) -> None:
    raise AssertionError(f"tests must not download ({url})")


def _register_tiny_sums(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Make the MNIST registry entry carry the checksums of the tiny gzipped files in ``folder``."""
    real = cd.dataset_info("mnist")
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.gz")}
    files = {part: DataFile(f.filename, sums.get(f.filename, f.sha256), f.url, f.mirrors)
             for part, f in real.files.items()}
    tiny = DatasetInfo(real.name, real.title, files, real.default_fmt, real.split_sizes, kind=real.kind)
    monkeypatch.setattr(cd, "dataset_info", lambda name: tiny)
    return sums


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_from_folder(tmp_path: Path, compress: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_mnist(tmp_path, compress=compress)
    _register_tiny_sums(tmp_path, monkeypatch)
    data = load_mnist(tmp_path, fetch=_no_fetch)
    assert data.x_train.shape == (6, 784) and data.x_test.shape == (4, 784)
    assert data.y_train.tolist() == [0, 1, 2, 3, 4, 5]
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    limited = load_mnist(tmp_path, fetch=_no_fetch, train_limit=2, test_limit=1)
    assert limited.x_train.shape == (2, 784) and limited.y_test.shape == (1,)


def test_a_gzipped_mnist_file_is_checked_against_its_published_sha256(tmp_path: Path) -> None:
    _tiny_mnist(tmp_path, compress=True)  # not the real files: their checksums differ
    with pytest.raises(DataError, match="sha256 mismatch"):
        load_mnist(tmp_path, fetch=_no_fetch)


def test_mnist_env_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_mnist(tmp_path / "mnist", compress=True)
    _register_tiny_sums(tmp_path / "mnist", monkeypatch)
    monkeypatch.setenv("PCMSIM_DATA", str(tmp_path))
    assert cd.default_mnist_root() == tmp_path / "mnist"
    assert load_mnist(fetch=_no_fetch).x_train.shape == (6, 784)


def test_mnist_label_count_mismatch(tmp_path: Path) -> None:
    _tiny_mnist(tmp_path, compress=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(IDXError, match="3 labels for 4 images"):
        load_mnist(tmp_path, fetch=_no_fetch)


def test_mnist_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, download=False)


def test_mnist_download_checks_sha256_and_tries_the_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "server"
    _tiny_mnist(source, compress=True)
    fetched: list[str] = []

    def fake_fetch(url: str, dest: Any) -> None:
        fetched.append(url)
        dest.write((source / url.rsplit("/", 1)[1]).read_bytes())

    # The real checksums: every mirror's file is refused, in one line, and nothing is left behind.
    target = tmp_path / "data"
    with pytest.raises(DataError, match="sha256 mismatch") as exc:
        load_mnist(target, fetch=fake_fetch)
    assert "\n" not in str(exc.value) and len(fetched) == 2  # the first file, from both mirrors
    assert not any(target.iterdir())
    # With the tiny files' checksums the download goes through, once per file.
    sums = _register_tiny_sums(source, monkeypatch)
    fetched.clear()
    data = load_mnist(target, fetch=fake_fetch)
    assert data.x_train.shape == (6, 784) and len(fetched) == 4
    assert sorted(p.name for p in target.iterdir()) == sorted(sums)
    load_mnist(target, fetch=_no_fetch)  # now present: no second download
    # a mirror that fails over to the next one
    fetched.clear()
    for p in target.iterdir():
        p.unlink()

    def first_mirror_down(url: str, dest: Any) -> None:
        if "ossci" in url:
            raise OSError("connection refused")
        fake_fetch(url, dest)

    assert load_mnist(target, fetch=first_mirror_down).x_test.shape == (4, 784)
    assert sum("ossci" not in u for u in fetched) == 4


def test_a_failed_mnist_download_is_one_cli_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "m.json"
    cfg.write_text(json.dumps({"task": "classification", "dataset": "mnist", "data_dir": str(tmp_path / "none"),
                               "network": {"layers": [784, 10, 10]}, "epochs": 1}))
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("http_proxy", "https_proxy")}
    env["PCMSIM_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-m", "hardware_in_loop.cli", "train", str(cfg),
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, env=env, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pcmsim: error: ") and "train-images-idx3-ubyte" in lines[0]


# -- sklearn datasets ---------------------------------------------------------------------------


def test_iris_and_digits_splits() -> None:
    iris = load_iris_data(seed=0)
    assert iris.x_train.shape == (105, 4) and iris.x_test.shape == (45, 4) and iris.n_classes == 3
    assert float(iris.x_train.min()) == 0.0 and float(iris.x_train.max()) == 1.0
    assert 0.0 <= float(iris.x_test.min()) and float(iris.x_test.max()) <= 1.0
    assert torch.bincount(iris.y_test).tolist() == [15, 15, 15]  # stratified
    assert torch.equal(load_iris_data(seed=0).x_test, iris.x_test)
    assert not torch.equal(load_iris_data(seed=1).x_test, iris.x_test)
    digits = load_digits_data(seed=0)
    assert digits.x_train.shape[1] == 64 and digits.n_classes == 10
    assert digits.x_train.shape[0] + digits.x_test.shape[0] == 1797
    assert 0.0 <= float(digits.x_train.min()) and float(digits.x_train.max()) <= 1.0


# -- config ------------------------------------------------------------------------------------


def _iris_config(**changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "task": "classification",
        "dataset": "iris",
        "network": {"layers": [4, 16, 3], "neuron": "lif"},
        "encoder": "tile",
        "steps": 8,
        "epochs": 4,
        "batch_size": 16,
        "lr": 0.02,
        "seed": 0,
    }
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"epoch": 3}, ["unknown field 'epoch'", "valid fields"]),
        ({"dataset": "cifar"}, ["'dataset'", "'cifar'", "one of iris, digits, mnist"]),
        ({"encoder": "rate"}, ["'encoder'", "'rate'", "poisson"]),
        ({"encoder_params": {"max_rate": 2.0}}, ["encoder_params.max_rate", "tile"]),
        ({"encoder": "poisson", "encoder_params": {"max_rate": 100, "dt": 0.1}}, ["max_rate·dt ≤ 1"]),
        (
            {"network": {"layers": [4, 16, 3], "neuron": "izhikevich"}},
            ["network.neuron", "'izhikevich'", "lif"],
        ),
        ({"network": {"layers": [4, 16, 3], "surrogate": "box"}}, ["network.surrogate", "flat"]),
        ({"network": {"layers": [4, 16, 3], "readout": "max"}}, ["network.readout", "integrator"]),
        ({"network": {"layers": [4, 16, 3], "leak": 0.1}}, ["network.leak", "valid fields"]),
        ({"network": {"layers": [64, 16, 10]}}, ["network.layers", "4 inputs first and 3 classes"]),
        ({"network": {"layers": [4]}}, ["network.layers", "≥ 2 positive"]),
        ({"network": {"layers": [4, 16, 3], "refractory": 1.5}}, ["network.refractory", "integer"]),
        ({"network": {"layers": [4, 16, 3], "refractory": -1}}, ["network.refractory", "≥ 0"]),
        ({"network": {"layers": [4, 16, 3], "beta": 0}}, ["network.beta", "> 0"]),
        ({"network": {"layers": [4, 16, 3], "init_scale": -2}}, ["network.init_scale", "> 0"]),
        ({"flavour": "analog"}, ["'flavour'", "fp32, pcm, aihwkit"]),
        ({"optimizer": "rmsprop"}, ["'optimizer'", "adam, sgd"]),
        ({"lr": -1}, ["'lr'", "-1", "> 0"]),
        ({"epochs": 2.5}, ["'epochs'", "integer"]),
        ({"steps": 0}, ["'steps'", "integer ≥ 1"]),
        ({"valid_fraction": 1.0}, ["'valid_fraction'", "< 1"]),
        ({"patience": 3}, ["'patience'", "validation split"]),
        ({"drift_times": ["soon"]}, ["drift_times", "'soon'"]),
        ({"compensations": ["local"]}, ["'compensations'", "per-column"]),
    ],
)
def test_config_validation_errors(changes: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_iris_config(**changes))
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_a_config_of_another_task_is_refused() -> None:
    with pytest.raises(ConfigError, match="'task' = 'music' is invalid: expected 'classification'"):
        load(ClassificationConfig, _iris_config(task="music"))


def test_config_roundtrip_and_shipped_configs() -> None:
    cfg = load_config(_iris_config())
    assert load_config(cfg.to_dict()) == cfg
    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("digits-lif.json", "iris-lif.json", "mnist-snu-784-250-250-10.json"):
        loaded = load_config(root / name)
        assert isinstance(loaded, ClassificationConfig) and loaded.task == "classification"


# -- training ----------------------------------------------------------------------------------


def test_iris_training_smoke(tmp_path: Path) -> None:
    results = run_training(load_config(_iris_config(epochs=6)), tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert results["final_test_accuracy"] > 0.6
    # without a validation split the run reports its last epoch: the test split chooses nothing
    assert results["best_epoch"] == 6 and results["test_accuracy"] == results["final_test_accuracy"]
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == results
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"] == "iris"
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_validation_split_selects_the_best_epoch_and_stops_early(tmp_path: Path) -> None:
    cfg = load_config(_iris_config(epochs=12, valid_fraction=0.25, patience=2, lr=0.05))
    results = run_training(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert results["n_valid"] == 26 and results["n_train"] == 105 - 26
    best = max(rows, key=lambda r: r["valid_accuracy"])  # the first epoch of the highest accuracy
    assert results["best_epoch"] == best["epoch"] and results["test_accuracy"] == best["test_accuracy"]
    assert results["valid_accuracy"] == best["valid_accuracy"]
    if len(rows) < 12:  # stopped early: `patience` epochs without a better validation accuracy
        assert len(rows) - results["best_epoch"] == 2


def test_training_is_reproducible(tmp_path: Path) -> None:
    cfg = load_config(_iris_config(epochs=2, encoder="poisson"))
    a = run_training(cfg, tmp_path / "a", progress=False)
    b = run_training(cfg, tmp_path / "b", progress=False)
    assert a == b


def test_pcm_hardware_in_the_loop_smoke(tmp_path: Path) -> None:
    cfg = load_config(_iris_config(flavour="pcm", epochs=2, lr=0.02, drift_times=["1d"]))
    results = run_training(cfg, tmp_path / "pcm", progress=False)
    assert results["flavour"] == "pcm" and results["n_devices"] > 0
    assert results["pulses_set"] > 0
    acc = {(r["compensation"], r["delay"]): r["accuracy"] for r in results["drift"]}
    assert set(acc) == {(m, d) for m in ("none", "global") for d in ("0s", "1d")}
    # chance is 1/3 on 45 test flowers (σ ≈ 0.07): a network that learnt nothing fails this, drifted or not
    assert all(0.55 < a <= 1.0 for a in acc.values()), acc
