"""The program-and-verify calibration is explicit and cached on disk: the same numbers, paid once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import device_models
from device_models import verify


def test_the_calibration_is_computed_once_logged_and_loaded_bit_for_bit(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PCMSIM_CACHE", str(tmp_path))
    monkeypatch.setattr(verify, "VERIFY_CALIBRATION", {"aims": 12, "devices": 512, "seed": 7})
    model = device_models.get("pcm-nandakumar2018")
    verify._RESPONSES.clear()
    with caplog.at_level(logging.INFO, logger="pcmsim.devices"):
        means, aims = verify.verify_response(model, 0.5, 20)
    assert any("program-and-verify calibration of pcm-nandakumar2018" in r.message for r in caplog.records)
    files = list((tmp_path / "verify").glob("pcm-nandakumar2018-*.pt"))
    assert len(files) == 1
    verify._RESPONSES.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pcmsim.devices"):
        again = verify.verify_response(model, 0.5, 20)
    assert not caplog.records  # loaded, not measured
    assert torch.equal(again[0], means) and torch.equal(again[1], aims)
    # other parameters, another key; a damaged file is measured again, with the same numbers
    verify._RESPONSES.clear()
    verify.verify_response(device_models.get("pcm-nandakumar2018", nu=0.05), 0.5, 20)
    assert len(list((tmp_path / "verify").glob("*.pt"))) == 2
    files[0].write_bytes(b"not a tensor file")
    verify._RESPONSES.clear()
    assert torch.equal(verify.verify_response(model, 0.5, 20)[0], means)
    verify._RESPONSES.clear()  # the small calibrations of this test stay out of the others


def test_the_disk_cache_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PCMSIM_CACHE", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(verify, "VERIFY_CALIBRATION", {"aims": 8, "devices": 256, "seed": 7})
    verify._RESPONSES.clear()
    assert verify.verify_cache_dir() is None
    verify.verify_response(device_models.get("pcm-nandakumar2018"), 0.5, 10)
    assert not list(tmp_path.rglob("*.pt"))
    verify._RESPONSES.clear()
