"""Shared test fixtures and helpers: the data folder, a trainer interrupted as by Ctrl-C."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """The polyphonic-music data: $PCMSIM_DATA, else a sibling ../shared/data of the repository."""
    env = os.environ.get("PCMSIM_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    sibling = REPO.parent / "shared" / "data"
    return sibling if sibling.is_dir() else None


HEAVY_FILES = ("test_device_fit", "test_device_fit_aihwkit", "test_device_fit_foreign", "test_device_fit_failures",
               "test_sweep", "test_examples", "test_device_fit_clip", "test_resume", "test_devices", "test_trainer",
               "test_schemes_aihwkit", "test_imports")
"""The suite's longest test files, longest first (seconds per file from ``pytest --junitxml``, on 2
cores; ``test_device_fit_aihwkit`` early for its spread: aihwkit's draws take no seed, and its fit took
74 s in one run and 181 s in the next): ``make test`` hands files to its workers in this order
(``--dist loadfile --no-loadscope-reorder``), the rest after them, so that no long file starts last
and runs alone."""


def pytest_configure(config: pytest.Config) -> None:
    """One torch (OpenMP, MKL) thread per xdist worker, here and in the processes its tests start:
    ``-n auto`` already runs a worker per core, and each worker's default of one thread per core
    oversubscribes them (the 150-device fit ``test_devices.py`` ran before it was made 100: 53 s wall
    and 102 s of CPU on two threads alone, 58 s and 57 s on one; beside the other worker the two
    threads contend). Results do not depend on it (:func:`pcmsim.crossbar.threads_for`; tests that
    compare thread counts set them)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import torch  # noqa: PLC0415 - after the variables, for the processes started from here

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (:data:`HEAVY_FILES`); a stable sort keeps each file's own order."""
    rank = {name: i for i, name in enumerate(HEAVY_FILES)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


@pytest.fixture
def music_data_dir() -> Path:
    d = data_dir()
    if d is None:
        pytest.skip("no music data: set PCMSIM_DATA or provide ../shared/data")
    return d


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say it when the aihwkit cross-checks did not run (they skip only when aihwkit is absent)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if any("aihwkit is not installed" in str(getattr(r, "longrepr", "")) for r in skipped):
        terminalreporter.write_line(
            "NOTE: the aihwkit cross-checks were skipped: aihwkit is not installed (scripts/setup.sh installs it)",
            yellow=True,
        )


def interrupting_trainer(stop_after: int) -> type:
    """A :class:`hardware_in_loop.trainer.Trainer` that receives SIGINT after ``stop_after`` training
    batches, as by Ctrl-C between two batches (the run then checkpoints and raises
    ``TrainingInterrupted``)."""
    import signal

    from hardware_in_loop.trainer import Trainer

    class InterruptAfter(Trainer):
        def train_batch(self, indices):  # type: ignore[no-untyped-def]
            out = super().train_batch(indices)
            self._done = getattr(self, "_done", 0) + 1
            if self._done == stop_after:
                os.kill(os.getpid(), signal.SIGINT)
            return out

    return InterruptAfter


def small_measurement_files(folder: Path) -> list[str]:
    """Small measurement files of ``pcm-nandakumar2018`` in ``folder`` (a pulse response of 150 devices ×
    12 pulses, drift and read noise of 100 devices each) as ``pcmsim device fit`` takes them: the pulse
    file, ``drift=…`` and ``read-noise=…``. (Fitted, the pulse file's search for the history terms without
    the device factor stopped on a step of the likelihood, which the command refused before a Newton step
    judged such stops: ``test_device_fit_stops.py``.)"""
    import device_models
    from device_models import measurements

    nk = device_models.get("pcm-nandakumar2018")
    device_models.write_pulse_response_csv(nk, folder / "p.csv", n_devices=150, n_pulses=12, seed=1)
    measurements.write_drift_csv(nk, folder / "d.csv", n_devices=100, seed=2)
    measurements.write_read_noise_csv(nk, folder / "r.csv", n_devices=100, n_reads=8, seed=3)
    return [str(folder / "p.csv"), f"drift={folder / 'd.csv'}", f"read-noise={folder / 'r.csv'}"]


def assert_figure(path: Path, *, min_colours: int = 8, min_ink: float = 0.02) -> None:
    """A saved figure that shows something: a readable PNG (or a PDF's header), with at least
    ``min_colours`` distinct colours and ``min_ink`` of its pixels off the background."""
    assert path.is_file(), path
    if path.suffix == ".pdf":
        assert path.read_bytes()[:5] == b"%PDF-", path
        return
    import numpy as np
    from matplotlib.image import imread

    img = imread(path)
    assert img.ndim == 3 and img.shape[0] >= 100 and img.shape[1] >= 100, (path, img.shape)
    rgb = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb, axis=0)
    background = np.bincount(np.ravel_multi_index(rgb.T, (256, 256, 256))).argmax()
    ink = float((np.ravel_multi_index(rgb.T, (256, 256, 256)) != background).mean())
    assert len(colours) >= min_colours and ink >= min_ink, (path, len(colours), ink)
