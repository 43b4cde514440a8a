"""The 52,800-device reproduction with its targets (a benchmark: ~1 minute quiet, not in `make test`).

Run with ``python -m pytest -m benchmark``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hardware_in_loop.experiments import reproduce

pytestmark = pytest.mark.benchmark


def test_jsb_52800_meets_its_targets(music_data_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    r = reproduce("jsb-52800", tmp_path, progress=False, log=lambda *_: None, data_dir=str(music_data_dir))
    assert r["n_devices"] == 52_800
    assert r["test_nll"] - r["fp32_test_nll"] <= 0.25
    drift = {(d["compensation"], d["delay"]): d["nll"] for d in r["drift"]}
    assert drift[("global", "1d")] - drift[("global", "0s")] <= 0.5
    assert r["pulses_set"] > 0 and r["refreshes"] > 0
