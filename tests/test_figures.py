"""Figures a paper could use: what each draws, read from the matplotlib figure itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_figure

import device_models
import hardware_in_loop.plots as run_plots
import pcmsim.plots.devices as device_plots


def _capture(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Any]:
    figures: list[Any] = []
    save = module._save

    def keep(fig: Any, path: Path, *args: Any) -> Path:
        figures.append(fig)
        return save(fig, path, *args)

    monkeypatch.setattr(module, "_save", keep)
    return figures


def test_device_histograms_have_one_panel_per_delay_with_each_level_and_its_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = _capture(monkeypatch, device_plots)
    model = device_models.get("pcm-joshi2020")
    path = device_plots.plot_conductance_histograms(model, tmp_path / "h.png", n_devices=2000, seed=0)
    assert_figure(path)
    axes = figures[0].axes
    assert len(axes) == len(device_plots.TIMES_S) == 4
    for ax in axes:
        targets = sorted(line.get_xdata()[0] for line in ax.get_lines())
        assert targets == pytest.approx([0.2 * model.g_max_us, 0.4 * model.g_max_us, 0.6 * model.g_max_us,
                                         0.8 * model.g_max_us])
        assert len(ax.patches) == 4  # one histogram per level (a filled step each)


def test_the_joshi_read_noise_law_is_a_smooth_band(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = _capture(monkeypatch, device_plots)
    path = device_plots.plot_read_noise(device_models.get("pcm-joshi2020"), tmp_path / "rn.png", n_devices=5000,
                                        seed=0)
    assert_figure(path)
    ax = figures[0].axes[0]
    laws = [line for line in ax.get_lines() if line.get_label().startswith("law")]
    assert len(laws) == 2 and len(ax.collections) == 2  # a median line and a 5–95 % band per delay
    for line in laws:
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        assert len(x) >= 20 and np.all(np.diff(x) > 0)
        # σ grows with G in this law (Joshi et al. 2020): the median of each bin rises; one sample per
        # device, as drawn before, zig-zagged by about 0.1 µS between neighbours
        assert np.all(np.diff(y) > -0.01), np.diff(y).min()


def test_binned_band_matches_quantiles_computed_here() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 20_000)
    y = 2.0 * np.floor(x) + 1.0 + rng.normal(0, 1, x.size)  # mean 2·(bin centre) in each bin
    gx, med, q05, q95 = device_plots._binned_band(x, y, np.linspace(0, 10, 11))
    assert gx == pytest.approx(np.arange(10) + 0.5, abs=0.05)
    assert med == pytest.approx(2.0 * gx, abs=0.1)
    assert q95 - q05 == pytest.approx(np.full(10, 2 * 1.6449), rel=0.08)  # ±1.645 σ of a normal


def test_training_curves_have_whole_epoch_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = _capture(monkeypatch, run_plots)
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"epoch": e, "train_loss": 2.0 / e, "valid_loss": 2.2 / e} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = run_plots.plot_training_curves({"run": run}, tmp_path / "curves.png")
    assert path is not None
    ax = figures[0].axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
