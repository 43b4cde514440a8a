"""Update schemes (PCM-MODELS.md §4) on ideal devices, where every pulse is exactly ``delta_g_us``."""

from __future__ import annotations

import pytest
import torch

import device_models
from hardware_in_loop.clock import Clock, ClockConfig
from hardware_in_loop.schemes import RefreshConfig, make_scheme
from hardware_in_loop.updater import HardwareInTheLoop
from pcmsim.analog import AnalogLinear
from pcmsim.crossbar import Crossbar, CrossbarConfig
from pcmsim.periphery import PeripheryConfig

W_PER_US = 0.1  # weight per µS
DG = 0.5  # µS per ideal SET pulse -> ε = 0.05 weight units


def ideal_crossbar(out: int = 3, inp: int = 4, n: int = 1) -> Crossbar:
    cfg = CrossbarConfig(devices_per_sign=n, weight_scale=W_PER_US, periphery=PeripheryConfig.ideal(),
                         read_noise=False)
    return Crossbar(out, inp, device_models.get("ideal", delta_g_us=DG, g_max_us=25.0), cfg, seed=0)


def test_mixed_precision_accumulates_and_fires_floor_of_chi_over_eps() -> None:
    xb = ideal_crossbar()
    scheme = make_scheme("mixed-precision", [xb], refresh={"enabled": False})
    eps = DG * W_PER_US
    dw = torch.zeros(3, 4)
    dw[0, 0] = 0.6 * eps  # below ε: nothing fires, χ keeps it
    dw[1, 1] = 2.5 * eps  # 2 pulses on G+, χ keeps 0.5 ε
    dw[2, 2] = -3.2 * eps  # 3 pulses on G-, χ keeps -0.2 ε
    stats = scheme.apply(0, dw, 1.0, None)
    assert stats.pulses_set == 5 and stats.pulse_rounds == 3
    w = xb.weights(1.0)
    assert w[0, 0] == 0
    assert w[1, 1].item() == pytest.approx(2 * eps)
    assert w[2, 2].item() == pytest.approx(-3 * eps)
    chi = scheme.chi[0]
    assert chi[0, 0].item() == pytest.approx(0.6 * eps)
    assert chi[1, 1].item() == pytest.approx(0.5 * eps)
    assert chi[2, 2].item() == pytest.approx(-0.2 * eps)
    # a second small step carries χ over ε: one more pulse on (0, 0)
    dw2 = torch.zeros(3, 4)
    dw2[0, 0] = 0.5 * eps
    assert scheme.apply(0, dw2, 2.0, None).pulses_set == 1
    assert xb.weights(2.0)[0, 0].item() == pytest.approx(eps)
    assert scheme.chi[0][0, 0].item() == pytest.approx(0.1 * eps, abs=1e-7)
    # G+ and G- only ever grow: depression is a SET on G-
    assert (xb.state.g_us >= 0).all()


def test_pulses_per_step_are_capped() -> None:
    xb = ideal_crossbar()
    scheme = make_scheme("mixed-precision", [xb], refresh={"enabled": False}, max_pulses_per_step=4)
    dw = torch.full((3, 4), 10 * DG * W_PER_US)
    assert scheme.apply(0, dw, 0.0, None).pulses_set == 4 * 12


def test_refresh_resets_saturated_pairs_and_keeps_the_weight() -> None:
    xb = ideal_crossbar()
    # put both devices of (0, 0) high: G+ = 7 µS, G- = 6 µS -> saturated pair with W = 0.1
    n_plus = torch.zeros(3, 4, dtype=torch.int32)
    n_minus = torch.zeros(3, 4, dtype=torch.int32)
    n_plus[0, 0], n_minus[0, 0] = 14, 12
    xb.apply_pulses(n_plus, n_minus, 0.0)
    w_before = xb.weights(0.0).clone()
    scheme = make_scheme("mixed-precision", [xb], refresh=RefreshConfig(g_refresh_us=6.0, diff_refresh_us=1.5))
    stats = scheme.end_step(1.0, None)
    assert stats.refreshes == 1 and stats.pulses_reset == 2
    g = xb.state.g_us
    assert g[0, 1, 0, 0] == 0  # G- reset
    assert g[0, 0, 0, 0].item() == pytest.approx(1.0)  # difference rewritten onto G+
    assert torch.allclose(xb.weights(1.0), w_before)
    # nothing else is saturated: a second refresh does nothing
    assert scheme.end_step(2.0, None).refreshes == 0


def test_stochastic_pulse_probability() -> None:
    torch.manual_seed(0)
    xb = ideal_crossbar(100, 100)
    scheme = make_scheme("stochastic-pulse", [xb], refresh={"enabled": False})
    eps = DG * W_PER_US
    g = torch.Generator().manual_seed(3)
    stats = scheme.apply(0, torch.full((100, 100), 0.3 * eps), 0.0, g)
    p = stats.pulses_set / 10_000
    assert abs(p - 0.3) < 4 * (0.3 * 0.7 / 10_000) ** 0.5


def test_multi_device_round_robin() -> None:
    xb = ideal_crossbar(n=3)
    scheme = make_scheme("multi-device", [xb], refresh={"enabled": False})
    eps = DG * W_PER_US
    for step in range(6):
        scheme.apply(0, torch.full((3, 4), eps), float(step), None)
        scheme.end_step(float(step), None)
    # six updates over three devices per sign: two pulses on each G+ device
    assert torch.allclose(xb.state.g_us[:, 0], torch.full((3, 3, 4), 2 * DG))
    assert (xb.state.g_us[:, 1] == 0).all()


def test_program_verify_reprograms_every_k_steps() -> None:
    xb = ideal_crossbar()
    scheme = make_scheme("program-verify", [xb], every_k_steps=2, refresh={"enabled": False})
    target = torch.full((3, 4), 0.3)
    scheme.apply(0, target, 0.0, None)
    scheme.end_step(0.0, None)
    assert torch.allclose(xb.weights(0.0), torch.zeros(3, 4))  # not yet
    scheme.apply(0, torch.zeros(3, 4), 1.0, None)
    stats = scheme.end_step(1.0, None)
    assert stats.pulses_set > 0
    assert torch.allclose(xb.weights(1.0), target, atol=1e-6)


def test_unknown_scheme_and_parameters_are_refused() -> None:
    xb = ideal_crossbar()
    with pytest.raises(ValueError, match="unknown update scheme 'magic'; available: mixed-precision"):
        make_scheme("magic", [xb])
    with pytest.raises(ValueError, match="unknown refresh parameter"):
        make_scheme("mixed-precision", [xb], refresh={"threshold": 3})
    with pytest.raises(ValueError, match="invalid parameters for update scheme"):
        make_scheme("mixed-precision", [xb], bogus=1)


def test_hardware_in_the_loop_step_moves_devices_toward_the_optimiser_step() -> None:
    torch.manual_seed(0)
    cfg = CrossbarConfig(weight_scale=W_PER_US, periphery=PeripheryConfig.ideal(), read_noise=False)
    layer = AnalogLinear(4, 3, bias=False, device_model=device_models.get("ideal", delta_g_us=0.01), config=cfg)
    model = torch.nn.Sequential(layer)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    clock = Clock(ClockConfig(t_start_s=0.0, pulse_round_s=1e-3, batch_overhead_s=0.0))
    hil = HardwareInTheLoop(model, opt, "mixed-precision", clock=clock, refresh={"enabled": False},
                            max_pulses_per_step=100_000)
    w0 = layer.weight.detach().clone()
    x = torch.randn(8, 4)
    model(x).pow(2).sum().backward()
    expected = w0 - 0.05 * layer.weight.grad
    stats = hil.step()
    eps = 0.01 * W_PER_US
    assert stats.pulses_set > 0
    # the devices hold the SGD step to within one pulse (χ keeps the rest)
    assert torch.allclose(layer.weight.detach(), expected, atol=eps + 1e-6)
    assert torch.allclose(layer.weight.detach() + hil.scheme.chi[0], expected, atol=1e-5)
    assert clock.now_s == pytest.approx(stats.pulse_rounds * 1e-3)
