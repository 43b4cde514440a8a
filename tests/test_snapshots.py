"""pcmsim.load_snapshots: the conductances of a run's devices at the start, chosen epochs and the end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import pcmsim
from hardware_in_loop import train
from pcmsim.snapshots import SnapshotError


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[1.5, 0.0, -1.0, 0.5], [-1.5, 1.0, 0.5, -0.5], [0.0, -1.5, 1.0, 1.0]])
    return centres[y] + 0.6 * torch.randn(n, 4, generator=g), y


def _run(out: Path, snapshot_epochs: list[int]) -> tuple[nn.Module, dict]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    analog = pcmsim.convert(net, device_model="pcm-joshi2020", seed=0, t_s=60.0).model
    results = train(analog, _blobs(64, 1), _blobs(32, 2), nn.functional.cross_entropy,
                    {"epochs": 3, "lr": 0.01, "batch_size": 16, "snapshot_epochs": snapshot_epochs},
                    out=out, progress=False)
    return analog, results


def test_a_run_has_start_chosen_epochs_and_end_snapshots_that_match_its_devices(tmp_path: Path) -> None:
    model, results = _run(tmp_path / "run", [1])
    snaps = pcmsim.load_snapshots(tmp_path / "run")
    assert [(s.tag, s.epoch) for s in snaps] == [("start", 0), ("epoch1", 1), ("end", 3)]
    assert [s.t_s for s in snaps] == sorted(s.t_s for s in snaps) and snaps[0].t_s < snaps[-1].t_s
    end = snaps[-1]
    assert end.t_s == results["simulated_time_s"]
    assert list(end.g_us) == ["0", "2"]  # the converted Sequential's layer names
    assert sum(g.numel() for g in end.g_us.values()) == results["n_devices"] == 2 * (4 * 16 + 16 * 3)
    # every SET pulse the run counted is on the devices between the first and the last snapshot (a
    # refresh's RESETs are counted by the scheme; pcm-joshi2020's program() re-programs without one)
    added = sum(int(end.pulse_count[k].sum() - snaps[0].pulse_count[k].sum()) for k in end.g_us)
    assert 0 < results["pulses_set"] <= added <= results["pulses_set"] + results["pulses_reset"]
    assert max(int(c.max()) for c in end.pulse_count.values()) == results["max_pulses_per_device"]
    # the end snapshot holds what the trained model's devices hold at the run's last time
    for name, layer in zip(end.g_us, pcmsim.analog_layers(model)):
        xb = layer.crossbar
        assert torch.equal(end.g_us[name], xb.model.drifted(xb.state, end.t_s))
    assert end.all_g_us().numel() == results["n_devices"]
    g = end.all_g_us()
    assert float(g.min()) >= 0.0 and not torch.equal(g, snaps[0].all_g_us())
    # the docs page's code runs as printed, on this run
    page = (Path(__file__).resolve().parents[1] / "docs" / "snapshots.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n(.*?)```", page, re.S)
    exec(block.replace('"runs/jsb-52800/hil"', repr(str(tmp_path / "run"))), {})


def test_the_last_epochs_snapshot_is_the_end_when_it_was_chosen(tmp_path: Path) -> None:
    _run(tmp_path / "run", [3])
    assert [s.tag for s in pcmsim.load_snapshots(tmp_path / "run")] == ["start", "epoch3"]


def test_missing_or_bad_snapshots_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no run folder there"):
        pcmsim.load_snapshots(tmp_path / "nowhere")
    (tmp_path / "fp32").mkdir()
    with pytest.raises(SnapshotError, match="no snapshots/ folder"):
        pcmsim.load_snapshots(tmp_path / "fp32")
    (tmp_path / "fp32" / "snapshots").mkdir()
    with pytest.raises(SnapshotError, match=r"no snapshot files \(\*\.pt\)"):
        pcmsim.load_snapshots(tmp_path / "fp32")
    (tmp_path / "fp32" / "snapshots" / "start.pt").write_bytes(b"not a torch file")
    with pytest.raises(SnapshotError) as info:
        pcmsim.load_snapshots(tmp_path / "fp32")
    assert "start.pt: not a readable snapshot" in str(info.value) and "\n" not in str(info.value)
    torch.save({"tag": "start"}, tmp_path / "fp32" / "snapshots" / "start.pt")
    with pytest.raises(SnapshotError, match="not a pcmsim snapshot"):
        pcmsim.load_snapshots(tmp_path / "fp32")
