"""Update schemes (PCM-MODELS.md §4) on ideal devices, where every pulse is exactly ``delta_g_us``;
each device model's granularity ε and refresh rule, and their overrides from a run config."""

from __future__ import annotations

import math

import pytest
import torch

import device_models
from device_models.ideal import IdealDevice
from device_models.refresh import RefreshPolicy
from hardware_in_loop.clock import Clock, ClockConfig
from hardware_in_loop.schemes import MixedPrecisionParams, RefreshConfig, make_scheme, scheme_params
from hardware_in_loop.tasks import load_config
from hardware_in_loop.updater import HardwareInTheLoop
from pcmsim.analog import AnalogLinear
from pcmsim.crossbar import Crossbar, CrossbarConfig
from pcmsim.periphery import PeripheryConfig
from pcmsim.typedconfig import ConfigError

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
    scheme = make_scheme("mixed-precision", [xb], refresh=RefreshConfig(upper_us=6.0, lower_us=None, max_diff_us=1.5))
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
    scheme = make_scheme("program-verify", [xb], every_k_steps=2)
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
    with pytest.raises(ValueError, match=r"unknown field 'scheme_params\.refresh\.threshold'; valid fields: enabled"):
        make_scheme("mixed-precision", [xb], refresh={"threshold": 3})
    with pytest.raises(ValueError, match=r"unknown field 'scheme_params\.bogus'; valid fields: granularity_us"):
        make_scheme("mixed-precision", [xb], bogus=1)
    with pytest.raises(ValueError, match=r"unknown field 'scheme_params\.refresh'; valid fields: every_k_steps"):
        make_scheme("program-verify", [xb], refresh={"enabled": False})  # it rewrites every weight: no refresh


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
    # the clock: one time step of the forward pass (a [B, in] input), then the pulse rounds
    assert clock.now_s == pytest.approx(1 * clock.config.mvm_per_step_s + stats.pulse_rounds * 1e-3)


# ---- each device model's granularity ε and refresh rule ---------------------------------------
# (ε in µS, upper, lower, max_diff in µS); sources in each model's docstring
MODEL_RULES = {
    # mean SET step at RESET, c1 + m1·G0 = 0.880 − 0.084·0.1; srnn-pcm xbar.py: reset_thr 6, diff < 6/4
    "pcm-nandakumar2018": (0.880 - 0.084 * 0.1, 6.0, None, 1.5),
    "pcm-nandakumar2018-20us": (0.880 - 0.084 * 0.1, 6.0, None, 1.5),  # srnn-pcm's thresholds are absolute
    # aihwkit ExpStep calcWeightGranularity: dw_min·(1 − A_down) = 0.01·3.235 in w, ×25/2 µS per w;
    # OneSidedUnitCell: 0.75 and 0.25 of w_max (= 25 µS)
    "pcm-aihwkit-preset": (0.01 * (1 + 2.235) * 12.5, 18.75, 6.25, None),
    "ideal": (0.1, 18.75, 6.25, None),  # delta_g_us; the DeviceModel default rule at G_max = 25
    "pcm-joshi2020": (1.0, 18.75, 6.25, None),  # set_increment_us; the DeviceModel default rule
    # the tabulated mean step at the median RESET G (0.1 µS): the placeholder's 0.88 − 0.084·0.1;
    # srnn-pcm's rule relative to G_max = 12: G_max/2 and G_max/8
    "empirical": (0.880 - 0.084 * 0.1, 6.0, None, 1.5),
}


def test_every_model_states_its_granularity_and_refresh_rule() -> None:
    builtin = {n for n in device_models.available()
               if type(device_models.get(n)).__module__.startswith("device_models.")}
    assert set(MODEL_RULES) == builtin  # (other tests may register models of their own)
    for name, (eps, upper, lower, diff) in MODEL_RULES.items():
        model = device_models.get(name)
        assert model.update_granularity_us() == pytest.approx(eps, rel=1e-6), name
        policy = model.refresh_policy()
        assert (policy.upper_us, policy.lower_us, policy.max_diff_us) == pytest.approx((upper, lower, diff)), name
        assert policy.source and model.granularity_source, name


def test_rules_scale_with_the_models_range_where_their_source_says_so() -> None:
    # aihwkit's thresholds are fractions of w_max, and its granularity is in units of w_max
    preset = device_models.get("pcm-aihwkit-preset", g_max_us=50.0)
    assert (preset.refresh_policy().upper_us, preset.refresh_policy().lower_us) == (37.5, 12.5)
    assert preset.update_granularity_us() == pytest.approx(0.03235 * 25.0)
    # srnn-pcm's are absolute µS; the empirical model states them relative to its G_max
    assert device_models.get("pcm-nandakumar2018", g_max_us=20.0).refresh_policy().upper_us == 6.0
    emp = device_models.get("empirical", g_max_us=24.0).refresh_policy()
    assert (emp.upper_us, emp.max_diff_us) == (12.0, 3.0)


def test_a_new_model_that_states_nothing_gets_the_base_class_defaults() -> None:
    class Plain(IdealDevice):  # one file plus a registry line: states neither ε nor a refresh rule
        name = "test-plain"

        def mean_set_increment_us(self, g_us=None) -> float:
            return 0.3

    model = Plain(g_max_us=40.0)
    assert model.update_granularity_us() == 0.3  # the mean SET step
    policy = model.refresh_policy()
    assert (policy.upper_us, policy.lower_us, policy.max_diff_us) == (30.0, 10.0, None)
    assert "default" in policy.source


def _crossbar_with(model: device_models.DeviceModel, g_plus: torch.Tensor, g_minus: torch.Tensor) -> Crossbar:
    cfg = CrossbarConfig(weight_scale=W_PER_US, periphery=PeripheryConfig.ideal(), read_noise=False)
    xb = Crossbar(*g_plus.shape, model, cfg, seed=0)
    xb.state.g_us[0, 0].copy_(g_plus)
    xb.state.g_us[0, 1].copy_(g_minus)
    xb.invalidate()
    return xb


# pairs on both sides of every threshold: G⁺ over rows, G⁻ over columns, µS
G_PLUS = torch.tensor([0.5, 5.9, 6.1, 7.0, 18.7, 18.8, 24.0])
G_MINUS = torch.tensor([0.0, 4.7, 5.9, 6.2, 6.3, 19.0])


def _refreshed(model: device_models.DeviceModel, **refresh) -> torch.Tensor:
    gp, gm = G_PLUS[:, None].expand(7, 6).clone(), G_MINUS[None, :].expand(7, 6).clone()
    xb = _crossbar_with(model, gp, gm)
    scheme = make_scheme("mixed-precision", [xb], refresh=refresh)
    stats = scheme.end_step(1.0, None)
    g = xb.state.g_us[0]
    refreshed = (xb.state.pulse_count[0] > 0).all(dim=0)  # both devices RESET (and one reprogrammed)
    assert stats.refreshes == int(refreshed.sum())
    assert torch.allclose(xb.weights(1.0), (gp - gm) * W_PER_US, atol=1e-6)  # the ideal device keeps W
    assert bool(((g[0] == 0) | (g[1] == 0))[refreshed].all())  # rewritten onto one device
    assert torch.equal(g[0][~refreshed], gp[~refreshed]) and torch.equal(g[1][~refreshed], gm[~refreshed])
    return refreshed


def test_refresh_applies_the_models_rule() -> None:
    gp, gm = G_PLUS[:, None], G_MINUS[None, :]
    big, small = torch.maximum(gp, gm), torch.minimum(gp, gm)
    ideal = device_models.get("ideal", g_max_us=25.0)
    assert torch.equal(_refreshed(ideal), (big > 18.75) & (small > 6.25))  # the default (aihwkit) rule
    assert int(_refreshed(ideal).sum()) == 6  # counted by hand on the grid
    srnn = IdealDevice(g_max_us=25.0)
    srnn.refresh_policy = RefreshPolicy.srnn_pcm  # type: ignore[method-assign]
    assert torch.equal(_refreshed(srnn), (big > 6.0) & ((gp - gm).abs() < 1.5))
    assert int(_refreshed(srnn).sum()) == 11


def test_refresh_thresholds_are_overridden_by_the_config() -> None:
    gp, gm = G_PLUS[:, None], G_MINUS[None, :]
    big, small = torch.maximum(gp, gm), torch.minimum(gp, gm)
    ideal = device_models.get("ideal", g_max_us=25.0)
    assert torch.equal(_refreshed(ideal, upper_us=6.0), (big > 6.0) & (small > 6.25))
    assert torch.equal(_refreshed(ideal, upper_us=6.0, lower_us=None), big > 6.0)
    assert torch.equal(_refreshed(ideal, lower_us=4.0, max_diff_us=1.0),
                       (big > 18.75) & (small > 4.0) & ((gp - gm).abs() < 1.0))
    assert int(_refreshed(ideal, enabled=False).sum()) == 0


def test_granularity_comes_from_the_model_unless_the_config_gives_one() -> None:
    preset = device_models.get("pcm-aihwkit-preset")
    cfg = CrossbarConfig(weight_scale=0.08, periphery=PeripheryConfig.ideal(), read_noise=False)  # 1 w per 12.5 µS
    xb = Crossbar(1, 4, preset, cfg, seed=0)
    scheme = make_scheme("mixed-precision", [xb], refresh={"enabled": False})
    eps = 0.03235  # aihwkit's mixed-precision granularity of PCMPresetUnitCell, in w
    assert float(scheme.epsilon(xb)) == pytest.approx(eps, rel=1e-6)
    stats = scheme.apply(0, torch.tensor([[0.9, 1.1, 2.5, -3.2]]) * eps, 0.0, None)
    assert stats.pulses_set == 0 + 1 + 2 + 3
    coarse = make_scheme("mixed-precision", [xb], granularity_us=preset.mean_set_increment_us())
    assert float(coarse.epsilon(xb)) == pytest.approx(0.2756, abs=1e-4)  # the old ε: the mean step at RESET
    sp = make_scheme("stochastic-pulse", [xb], {"granularity_us": 2.0})
    assert float(sp.epsilon(xb)) == pytest.approx(0.16)


def test_scheme_params_are_typed_and_checked_at_config_time() -> None:
    params = scheme_params("mixed-precision", {"granularity_us": 0.5, "refresh": {"upper_us": 9, "lower_us": None}})
    assert params.granularity_us == 0.5 and params.max_pulses_per_step == 20
    assert (params.refresh.upper_us, params.refresh.lower_us, params.refresh.max_diff_us) == (9, None, "model")
    cfg = load_config("configs/iris-lif.json")
    bad = [
        ({"refresh": {"upper_us": -1}}, "field 'scheme_params.refresh.upper_us' = -1 is invalid: expected 'model'"),
        ({"refresh": {"lower_us": "x"}}, "field 'scheme_params.refresh.lower_us' = 'x' is invalid"),
        ({"granularity_us": 0}, "field 'scheme_params.granularity_us' = 0 is invalid: expected 'model'"),
        ({"max_pulses_per_step": 0}, "field 'scheme_params.max_pulses_per_step' = 0 is invalid: expected an integer"),
        ({"refresh": {"every_n_steps": 1.5}}, "field 'scheme_params.refresh.every_n_steps' = 1.5 is invalid"),
        ({"every_k_steps": 3}, "unknown field 'scheme_params.every_k_steps'"),
    ]
    for sp, message in bad:
        with pytest.raises(ConfigError, match="^config: " + message.replace("(", r"\(").replace(".", r"\.")):
            cfg.replace(scheme_params=sp)
    ok = cfg.replace(flavour="pcm", scheme_params={"refresh": {"upper_us": 9.0, "max_diff_us": None}})
    assert isinstance(ok.scheme_params, MixedPrecisionParams)
    assert (ok.scheme_params.refresh.upper_us, ok.scheme_params.refresh.max_diff_us) == (9.0, None)
    assert ok.to_dict()["scheme_params"] == {"refresh": {"upper_us": 9.0, "max_diff_us": None}}
    assert cfg.replace(update_scheme="program-verify", scheme_params={"every_k_steps": 3})
    assert math.isclose(scheme_params("stochastic-pulse", granularity_us=1).granularity_us, 1.0)


def test_device_list_shows_each_models_granularity_and_refresh_rule(capsys) -> None:
    import argparse

    from hardware_in_loop.cli import device as device_cmd

    parser = argparse.ArgumentParser(prog="pcmsim")
    device_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["device", "list", "--params"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.count("update granularity ε = ") == out.count("refresh when ") == len(device_models.available())
    assert "update granularity ε = 0.4044 µS; source: aihwkit MixedPrecisionCompound" in out
    assert "refresh when max(G⁺,G⁻) > 18.75 µS and min(G⁺,G⁻) > 6.25 µS; source: aihwkit PCMPresetUnitCell" in out
    assert "update granularity ε = 0.8716 µS; source: mean SET step at the RESET conductance" in out
    assert "refresh when max(G⁺,G⁻) > 6 µS and |G⁺−G⁻| < 1.5 µS; source: srnn-pcm xbar.py" in out
