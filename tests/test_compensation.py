"""Drift compensation: global and per column."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import device_models
from device_models import IdealDevice
from pcmsim.analog import AnalogLinear
from pcmsim.compensation import calibrate_network, compensation_factors, recalibrate_network
from pcmsim.crossbar import CrossbarConfig
from pcmsim.drift import set_time as set_network_time
from pcmsim.periphery import PeripheryConfig

DAY_S = 86_400.0


@dataclass(frozen=True)
class _DriftParams:
    g_max_us: float = 25.0
    delta_g_us: float = 0.5
    t0_s: float = 20.0


class ColumnDriftDevice(IdealDevice):
    """Test device: noise-free power-law drift with ν = 0.02 + 0.01·(column index mod 5)."""

    name = "test-column-drift"
    Params = _DriftParams

    def _nu(self, state) -> torch.Tensor:
        cols = torch.arange(state.shape[-2], device=state.device).remainder(5).float().view(-1, 1)
        return 0.02 + 0.01 * cols

    def drifted(self, state, t_s: float) -> torch.Tensor:
        dt = (t_s - state.t_prog_s).clamp(min=0.0) + self.params.t0_s
        return state.g_us * (dt / self.params.t0_s) ** (-self._nu(state))


def test_factors() -> None:
    ref = torch.tensor([1.0, 2.0, 3.0])
    cur = torch.tensor([0.5, 2.0, 1.5])
    torch.testing.assert_close(compensation_factors("global", ref, cur), torch.full((3,), 6.0 / 4.0))
    torch.testing.assert_close(compensation_factors("per-column", ref, cur), torch.tensor([2.0, 1.0, 2.0]))
    torch.testing.assert_close(compensation_factors("none", ref, cur), torch.ones(3))
    with pytest.raises(ValueError, match="unknown drift compensation 'local'"):
        compensation_factors("local", ref, cur)


def test_per_column_corrects_column_dependent_drift() -> None:
    per = CrossbarConfig(periphery=PeripheryConfig.ideal())
    layer = AnalogLinear(30, 10, False, device_model=ColumnDriftDevice(), config=per, seed=0)
    net = nn.Sequential(layer)
    x = torch.rand(64, 30)
    fresh = net(x).detach()
    calibrate_network(net, 0.0)
    set_network_time(net, DAY_S)
    drifted = net(x).detach()
    assert float((drifted / fresh).mean()) < 0.9
    recalibrate_network(net, DAY_S, "per-column")
    torch.testing.assert_close(net(x).detach(), fresh, rtol=1e-4, atol=1e-5)  # exact: drift is per column
    recalibrate_network(net, DAY_S, "global")
    assert not torch.allclose(net(x).detach(), fresh, rtol=1e-3)  # one α cannot fix per-column drift
    recalibrate_network(net, DAY_S, "none")
    torch.testing.assert_close(net(x).detach(), drifted)
    fresh_layer = AnalogLinear(4, 3, device_model="ideal")
    with pytest.raises(RuntimeError, match="calibrate"):
        fresh_layer.recalibrate(10.0, mode="global")


def test_joshi_compensation_after_one_day() -> None:
    if "pcm-joshi2020" not in device_models.available():
        pytest.skip("pcm-joshi2020 is not registered yet")
    layer = AnalogLinear(88, 150, False, device_model="pcm-joshi2020", seed=0, compensation="global")
    x = (torch.rand(512, 88, generator=torch.Generator().manual_seed(0)) < 0.3).float()

    def gain(y: torch.Tensor, y0: torch.Tensor) -> float:  # least-squares factor y ≈ gain · y0
        return float((y * y0).sum() / (y0 * y0).sum())

    with torch.no_grad():
        fresh = layer(x)
        w0 = layer.crossbar.weights(0.0)
        layer.set_time(DAY_S)
        drifted = layer(x)  # α = 1 until recalibrated
        expected = gain(x @ layer.crossbar.weights(DAY_S).T, x @ w0.T)  # the devices' own drift factor
        assert expected < 0.8
        assert gain(drifted, fresh) == pytest.approx(expected, rel=0.03)
        layer.recalibrate(DAY_S)
        compensated = layer(x)
        assert gain(compensated, fresh) == pytest.approx(1.0, abs=0.04)
        assert float(compensated.abs().mean()) == pytest.approx(float(fresh.abs().mean()), rel=0.04)
        assert float(drifted.abs().mean()) == pytest.approx(expected * float(fresh.abs().mean()), rel=0.05)
