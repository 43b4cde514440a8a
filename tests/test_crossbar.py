"""Crossbar: layout, programming, the analog product and its periphery."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from conftest import assert_figure

import device_models
from device_models import DeviceModel, DeviceState, IdealDevice, ProgramReport
from pcmsim.crossbar import Crossbar, CrossbarConfig
from pcmsim.periphery import PeripheryConfig, adc, adc_in_units, dac, noise_management_scale, quantize

IDEAL_IO = PeripheryConfig.ideal()


@dataclass(frozen=True)
class _GaussDriftParams:
    g_max_us: float = 25.0
    delta_g_us: float = 0.5
    nu: float = 0.05
    t0_s: float = 20.0
    sigma_rel: float = 0.05
    sigma_abs_us: float = 0.3
    prog_sigma_us: float = 0.0


class GaussDriftDevice(IdealDevice):
    """Test device: power-law drift, unclamped Gaussian read noise, optional programming noise."""

    name = "test-gauss-drift"
    Params = _GaussDriftParams

    def drifted(self, state: DeviceState, t_s: float) -> torch.Tensor:
        p = self.params
        dt = (t_s - state.t_prog_s).clamp(min=0.0) + p.t0_s
        return state.g_us * (dt / p.t0_s) ** (-p.nu)

    def read_noise_std(self, state, t_s, g_drift_us=None):
        g = self.drifted(state, t_s) if g_drift_us is None else g_drift_us
        return self.params.sigma_rel * g + self.params.sigma_abs_us

    def read(self, state, t_s, generator=None, *, noise=True):
        return DeviceModel.read(self, state, t_s, generator, noise=noise)

    def program(
        self, state, target_us, t_s, generator, *, tolerance_us=None, max_pulses=None
    ) -> ProgramReport:
        rep = super().program(state, target_us, t_s, generator)
        if self.params.prog_sigma_us > 0:
            xi = torch.randn(state.shape, generator=generator, device=state.device)
            state.g_us.add_(self.params.prog_sigma_us * xi).clamp_(0.0, self.params.g_max_us)
        return rep


def _w(out_f: int, in_f: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(out_f, in_f, generator=torch.Generator().manual_seed(seed))


def _x(b: int, in_f: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, in_f, generator=torch.Generator().manual_seed(seed))


# ---- ideal reproduction ------------------------------------------------------------------
@pytest.mark.parametrize("n, significance", [(1, "equal"), (3, "equal"), (3, "graded")])
def test_ideal_crossbar_reproduces_matmul(n: int, significance: str) -> None:
    w, x = _w(150, 88), _x(32, 88)
    xb = Crossbar(
        150, 88, "ideal", CrossbarConfig(devices_per_sign=n, significance=significance, periphery=IDEAL_IO)
    )
    rep = xb.program_weights(w, 0.0)
    assert rep.n_clipped == 0
    assert rep.max_abs_error < 1e-5
    torch.testing.assert_close(xb.weights(0.0), w, rtol=0, atol=1e-5)
    torch.testing.assert_close(xb.mvm(x, 0.0), x @ w.T, rtol=1e-5, atol=1e-4)
    assert xb.n_devices == 2 * n * 150 * 88


def test_state_layout_and_device_count() -> None:
    xb = Crossbar(150, 88, "ideal", CrossbarConfig(devices_per_sign=2))
    assert tuple(xb.state.shape) == (2, 2, 150, 88)
    assert xb.n_devices == 2 * 2 * 150 * 88
    assert Crossbar(88, 150, "ideal").n_devices + Crossbar(150, 88, "ideal").n_devices == 52_800
    w = _w(150, 88).abs()  # positive weights live on G⁺ only
    xb1 = Crossbar(150, 88, "ideal", CrossbarConfig(periphery=IDEAL_IO))
    xb1.program_weights(w, 0.0)
    assert bool((xb1.state.g_us[0, 1] == 0).all()) and bool((xb1.state.g_us[0, 0] > 0).all())


def test_tiling_matches_single_tile() -> None:
    w, x = _w(150, 88, 3), _x(16, 88, 4)
    one = Crossbar(150, 88, "ideal", CrossbarConfig(periphery=IDEAL_IO))
    tiled = Crossbar(150, 88, "ideal", CrossbarConfig(periphery=IDEAL_IO, tile_rows=32, tile_cols=40))
    assert (tiled.n_tiles_in, tiled.n_tiles_out, tiled.n_tiles) == (3, 4, 12)
    one.program_weights(w, 0.0)
    tiled.program_weights(w, 0.0)
    torch.testing.assert_close(tiled.mvm(x, 0.0), one.mvm(x, 0.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiled.mvm(x, 0.0), x @ w.T, rtol=1e-5, atol=1e-4)


# ---- DAC / ADC ---------------------------------------------------------------------------
def test_converter_levels_hand_checked() -> None:
    cfg = PeripheryConfig()
    assert cfg.inp_res == pytest.approx(1 / 126) and cfg.out_res == pytest.approx(1 / 510)
    assert cfg.dac_step == pytest.approx(1 / 63) and cfg.adc_step == pytest.approx(24 / 510)
    # DAC, 7 bits over ±1: step 1/63, levels ±63
    v, clipped = dac(torch.tensor([0.1, -0.49, 0.995, 1.2, -3.0, 0.0]), cfg)
    expected = torch.tensor([6 / 63, -31 / 63, 1.0, 1.0, -1.0, 0.0])
    torch.testing.assert_close(v, expected, rtol=0, atol=1e-7)
    assert clipped.tolist() == [False, False, False, True, True, False]
    # ADC, 9 bits over ±12: step 24/510, levels ±255
    v, clipped = adc(torch.tensor([1.0, 12.0, 12.03, -13.0, 0.02, -0.03]), cfg)
    step = 24 / 510
    expected = torch.tensor([21 * step, 12.0, 12.0, -12.0, 0.0, -step])
    torch.testing.assert_close(v, expected, rtol=0, atol=1e-6)
    assert clipped.tolist() == [False, False, True, True, False, False]
    # no bits: only clipping; no bound: identity
    v, clipped = quantize(torch.tensor([0.5, 2.0]), None, 1.0)
    assert v.tolist() == [0.5, 1.0] and clipped.tolist() == [False, True]
    # noise management: α = max|x| per vector, 1 for a zero vector
    a = noise_management_scale(torch.tensor([[0.5, -2.0], [0.0, 0.0]]), cfg)
    assert a.squeeze(1).tolist() == [2.0, 1.0]


def test_converters_in_crossbar_form_match_the_plain_ones() -> None:
    """The crossbar's forms of the converters (α folded into the DAC, the ADC on sums in ADC units)
    give the plain converters' values."""
    cfg = PeripheryConfig()
    y = torch.linspace(-14.0, 14.0, 1001)
    v_units, clipped_units = adc_in_units(y / cfg.adc_unit, cfg)
    v, clipped = adc(y, cfg)
    assert torch.equal(v_units * cfg.adc_unit, v) and clipped_units is not None
    assert torch.equal(clipped_units, clipped) and 0 < int(clipped.sum()) < y.numel()
    assert adc_in_units(torch.tensor([3.0, -200.4]), cfg)[1] is None  # nothing clips: no mask formed
    x = torch.randn(6, 9, generator=torch.Generator().manual_seed(3))
    alpha = noise_management_scale(x, cfg)
    v_folded, none = dac(x, cfg, alpha, find_clipped=False)
    v_plain, clipped_plain = dac(x / alpha, cfg)
    assert none is None and not bool(clipped_plain.any())
    torch.testing.assert_close(v_folded, v_plain, rtol=0, atol=1e-6)
    assert float(v_folded.abs().max()) == 1.0  # the largest input of each vector at full scale


def test_mvm_dac_and_adc_exact_through_crossbar() -> None:
    w = torch.tensor([[0.5, -0.25, 1.0], [1.0, 0.0, -0.75]])
    # weight_scale 0.04 weight/µS on 25 µS devices: g_norm·w_per_us = 1, so Ĝ = W
    dac_only = PeripheryConfig(
        adc_bits=None, out_bound=None, out_noise=0.0, noise_management=False, bound_management=False
    )
    xb = Crossbar(2, 3, "ideal", CrossbarConfig(weight_scale=0.04, periphery=dac_only))
    xb.program_weights(w, 0.0)
    x = torch.tensor([[0.1, -0.49, 0.3]])
    xq = torch.tensor([[6 / 63, -31 / 63, 19 / 63]])
    torch.testing.assert_close(xb.mvm(x, 0.0), xq @ w.T, rtol=0, atol=1e-6)

    adc_only = PeripheryConfig(dac_bits=None, out_noise=0.0, noise_management=False, bound_management=False)
    xb = Crossbar(2, 14, "ideal", CrossbarConfig(weight_scale=0.04, periphery=adc_only))
    w = torch.ones(2, 14)
    w[0, 1:] = 0.0
    xb.program_weights(w, 0.0)  # ŷ = 1 → level 21; ŷ = 14 → clipped at 12
    x = torch.ones(1, 14)
    x[0, 0] = 2.5  # the DAC clips inputs at ±inp_bound = ±1 (counted without noise management)
    y = xb.mvm(x, 0.0)
    torch.testing.assert_close(y, torch.tensor([[21 * 24 / 510, 12.0]]), rtol=0, atol=1e-6)
    s = xb.stats.as_dict()
    assert (s["outputs"], s["adc_clipped"], s["dac_clipped"], s["mvm_calls"]) == (2, 1, 1, 1)


def test_bound_management_halves_until_no_clip() -> None:
    w = torch.full((2, 4), 1.0)
    w[1] = 0.25
    x = torch.tensor([[1.0, 1.0, 1.0, 0.5]])  # ŷ = 3.5 and 0.875 in normalised units
    base = dict(dac_bits=None, adc_bits=None, out_bound=1.0, out_noise=0.0, noise_management=True)
    with_bm = Crossbar(2, 4, "ideal", CrossbarConfig(weight_scale=0.04, periphery=PeripheryConfig(**base)))
    without = Crossbar(
        2,
        4,
        "ideal",
        CrossbarConfig(weight_scale=0.04, periphery=PeripheryConfig(**base, bound_management=False)),
    )
    for xb in (with_bm, without):
        xb.program_weights(w, 0.0)
    torch.testing.assert_close(with_bm.mvm(x, 0.0), torch.tensor([[3.5, 0.875]]))  # 3.5/4 < 1: exact
    torch.testing.assert_close(without.mvm(x, 0.0), torch.tensor([[1.0, 0.875]]))  # clipped
    assert with_bm.stats.as_dict()["bm_rereads"] == 2 and with_bm.stats.as_dict()["adc_clipped"] == 0
    assert without.stats.as_dict()["adc_clipped"] == 1
    # limited halvings: 2 halvings (÷4) cannot bring ŷ = 4 under 0.9; bound management is per input vector
    few = Crossbar(
        2,
        4,
        "ideal",
        CrossbarConfig(
            weight_scale=0.04, periphery=PeripheryConfig(**{**base, "out_bound": 0.9}, bm_max_halvings=2)
        ),
    )
    few.program_weights(torch.full((2, 4), 1.0), 0.0)
    y = few.mvm(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.1, 0.0, 0.0, 0.0]]), 0.0)
    torch.testing.assert_close(y, torch.tensor([[3.6, 3.6], [0.1, 0.1]]))  # row 0: 0.9 · 4 (clipped)
    assert few.stats.as_dict()["adc_clipped"] == 2


def test_output_noise_std() -> None:
    per = PeripheryConfig(
        dac_bits=None,
        adc_bits=None,
        out_bound=None,
        out_noise=0.06,
        noise_management=False,
        bound_management=False,
    )
    xb = Crossbar(8, 4, "ideal", CrossbarConfig(weight_scale=0.08, periphery=per))  # output scale 2
    xb.program_weights(torch.zeros(8, 4), 0.0)
    y = xb.mvm(torch.ones(4000, 4), 0.0)
    assert float(y.std()) == pytest.approx(0.12, rel=0.05)


# ---- read noise: the shortcut against explicit sampling ---------------------------------------
def test_read_noise_shortcut_matches_sampled_statistics() -> None:
    model = GaussDriftDevice()
    per = PeripheryConfig(
        dac_bits=None,
        adc_bits=None,
        out_bound=None,
        out_noise=0.06,
        noise_management=False,
        bound_management=False,
    )
    w, t = _w(6, 20, 7), 3600.0
    x = _x(1, 20, 8) * 2 - 1
    short = Crossbar(6, 20, model, CrossbarConfig(periphery=per), seed=1)
    exact = Crossbar(
        6,
        20,
        model,
        CrossbarConfig(periphery=per, exact_read_noise=True, exact_chunk_elements=50_000),
        seed=2,
    )
    short.program_weights(w, 0.0)
    exact.program_weights(w, 0.0)
    n = 6000
    xs = x.expand(n, -1)
    y_short, y_exact = short.mvm(xs, t), exact.mvm(xs, t)
    # explicit sampling, one noisy array per batch element, straight from the model
    gen = torch.Generator().manual_seed(3)
    st = DeviceState(
        **{f: getattr(short.state, f).unsqueeze(0).expand(n, *short.state.shape) for f in DeviceState.FIELDS}
    )
    g = model.read(st, t, gen)  # [n, 1, 2, out, in]
    w_b = (g[:, 0, 0] - g[:, 0, 1]) * short.w_per_us
    y_ref = torch.einsum("bi,boi->bo", xs, w_b)
    y_ref = y_ref + 0.06 * short.output_scale * torch.randn(y_ref.shape, generator=gen)
    mean_ref = (x @ short.weights(t).T).squeeze(0)
    var_ref = y_ref.var(0)
    for y in (y_short, y_exact, y_ref):
        se = (y.var(0) / n).sqrt()
        assert bool(((y.mean(0) - mean_ref).abs() < 5 * se).all())
        ratio = y.var(0) / var_ref
        tol = 5 * math.sqrt(4 / n)
        assert bool(((ratio - 1).abs() < tol).all()), ratio
    # the analytical variance of the shortcut
    sigma = model.read_noise_std(short.state, t)
    var_dev = (sigma[0, 0] ** 2 + sigma[0, 1] ** 2) * short.w_per_us**2
    var_an = (x**2 @ var_dev.T).squeeze(0) + (0.06 * float(short.output_scale)) ** 2
    assert bool(((y_short.var(0) / var_an - 1).abs() < 5 * math.sqrt(2 / n)).all())


def test_read_noise_is_fresh_but_drift_cached() -> None:
    xb = Crossbar(10, 12, GaussDriftDevice(), CrossbarConfig(periphery=IDEAL_IO), seed=0)
    xb.program_weights(_w(10, 12), 0.0)
    x = _x(3, 12)
    a, b = xb.mvm(x, 100.0), xb.mvm(x, 100.0)
    assert not torch.equal(a, b)  # fresh noise per read
    cached = xb.reader.read(xb.state, 100.0)
    assert xb.reader.read(xb.state, 100.0) is cached
    assert xb.reader.read(xb.state, 200.0) is not cached
    # an in-place change of the state outside the class is seen (version counters)
    w_before = xb.weights(0.0).clone()
    xb.state.g_us.mul_(0.5)
    torch.testing.assert_close(xb.weights(0.0), w_before * 0.5)


# ---- programming -------------------------------------------------------------------------
def test_clipped_weights_are_counted() -> None:
    xb = Crossbar(4, 5, "ideal", CrossbarConfig(weight_scale=0.04, periphery=IDEAL_IO))  # range ±1
    w = torch.zeros(4, 5)
    w[0, 0], w[1, 2], w[3, 4], w[2, 2] = 1.5, -2.0, 0.9, -1.0
    rep = xb.program_weights(w, 0.0)
    assert rep.n_clipped == 2
    assert rep.clipped.nonzero().tolist() == [[0, 0], [1, 2]]
    wr = xb.weights(0.0)
    assert float(wr[0, 0]) == pytest.approx(1.0) and float(wr[1, 2]) == pytest.approx(-1.0)
    assert float(rep.error[0, 0]) == pytest.approx(-0.5) and float(rep.error[3, 4]) == pytest.approx(
        0.0, abs=1e-6
    )


def test_auto_scale_and_per_column_scale() -> None:
    w = _w(6, 9)
    xb = Crossbar(6, 9, "ideal", CrossbarConfig(periphery=IDEAL_IO, auto_scale_fill=0.5))
    xb.program_weights(w, 0.0)
    assert float(xb.w_per_us) == pytest.approx(float(w.abs().max()) / (25.0 * 0.5))
    assert float(xb.state.g_us.max()) == pytest.approx(12.5)
    kept = xb.w_per_us.clone()
    xb.program_weights(w * 0.5, 1.0, rescale=False)  # a full reprogram that keeps the scale
    assert torch.equal(xb.w_per_us, kept) and float(xb.state.g_us.max()) == pytest.approx(6.25)
    xb.program_weights(w * 0.5, 2.0)  # a full reprogram rescales by default
    assert float(xb.w_per_us) == pytest.approx(float(kept) / 2)
    pc = Crossbar(6, 9, "ideal", CrossbarConfig(periphery=IDEAL_IO, per_column_scale=True))
    pc.program_weights(w, 0.0)
    assert tuple(pc.w_per_us.shape) == (6, 1)
    torch.testing.assert_close(pc.w_per_us.squeeze(1), w.abs().amax(1) / 25.0)
    torch.testing.assert_close(pc.mvm(_x(4, 9), 0.0), _x(4, 9) @ w.T, rtol=1e-5, atol=1e-5)


def test_program_with_mask_touches_only_masked() -> None:
    xb = Crossbar(5, 6, "ideal", CrossbarConfig(periphery=IDEAL_IO))
    w = _w(5, 6)
    xb.program_weights(w, 0.0)
    scale = xb.w_per_us.clone()
    mask = torch.zeros(5, 6, dtype=torch.bool)
    mask[1, 2] = mask[4, 0] = True
    rep = xb.program_weights(-w, 10.0, mask=mask)
    assert torch.equal(xb.w_per_us, scale)  # masked calls keep the scale
    expected = torch.where(mask, -w, w)
    torch.testing.assert_close(xb.weights(10.0), expected, rtol=0, atol=1e-5)
    assert int((rep.pulses.sum(dim=(0, 1)) > 0).sum()) == 2
    assert bool((xb.state.t_prog_s[:, :, ~mask] == 0).all())


def test_graded_significance_programs_residual() -> None:
    model = IdealDevice(g_max_us=10.0)
    xb = Crossbar(
        1,
        3,
        model,
        CrossbarConfig(devices_per_sign=2, significance="graded", weight_scale=1.0, periphery=IDEAL_IO),
    )
    # capacity 10 + 5 = 15 µS; 12 → 10 on pair 0, 2/0.5 = 4 on pair 1; −3 → pair 0 G⁻ = 3
    xb.program_weights(torch.tensor([[12.0, -3.0, 16.0]]), 0.0)
    g = xb.state.g_us
    assert g[0, 0, 0].tolist() == [10.0, 0.0, 10.0] and g[0, 1, 0].tolist() == [0.0, 3.0, 0.0]
    assert g[1, 0, 0].tolist() == [4.0, 0.0, 10.0] and g[1, 1, 0].tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(xb.weights(0.0), torch.tensor([[12.0, -3.0, 15.0]]))


def test_apply_pulses_and_reset() -> None:
    xb = Crossbar(3, 4, "ideal", CrossbarConfig(devices_per_sign=2, weight_scale=1.0, periphery=IDEAL_IO))
    n_plus = torch.zeros(3, 4, dtype=torch.int64)
    n_minus = torch.zeros(3, 4, dtype=torch.int64)
    n_plus[0, 0], n_minus[2, 3] = 3, 2
    xb.apply_pulses(n_plus, n_minus, 5.0, device_index=1)
    assert float(xb.weights(5.0)[0, 0]) == pytest.approx(0.3) and float(
        xb.weights(5.0)[2, 3]
    ) == pytest.approx(-0.2)
    assert int(xb.state.pulse_count[1].sum()) == 5 and int(xb.state.pulse_count[0].sum()) == 0
    xb.reset_devices(n_plus > 0, torch.zeros(3, 4, dtype=torch.bool), 6.0, device_index=1)
    assert float(xb.weights(6.0)[0, 0]) == 0.0 and float(xb.weights(6.0)[2, 3]) == pytest.approx(-0.2)
    with pytest.raises(ValueError, match=r"expected \[3, 4\]"):
        xb.apply_pulses(torch.zeros(4, 3, dtype=torch.int64), n_minus, 0.0)
    with pytest.raises(ValueError, match="integer dtype"):
        xb.apply_pulses(n_plus.float(), n_minus, 0.0)
    with pytest.raises(ValueError, match="device_index=2"):
        xb.apply_pulses(n_plus, n_minus, 0.0, device_index=2)
    with pytest.raises(ValueError, match="negative"):
        xb.apply_pulses(-n_plus, n_minus, 0.0)


def test_public_update_methods_equal_the_checked_ones() -> None:
    """apply_pulse_counts, program_selected, drifted_conductances and weights_into: the same devices
    and values as apply_pulses, program_weights(mask=…), conductances and weights."""
    cfg = CrossbarConfig(weight_scale=0.05)
    a = Crossbar(5, 6, "pcm-nandakumar2018", cfg, seed=2)
    b = Crossbar(5, 6, "pcm-nandakumar2018", cfg, seed=2)
    gen = torch.Generator().manual_seed(0)
    n = torch.randint(0, 5, (2, 5, 6), generator=gen).to(torch.int32)
    a.apply_pulse_counts(n, 10.0)
    b.apply_pulses(n[0], n[1], 10.0)
    mask = torch.rand(5, 6, generator=gen) < 0.4
    w = torch.randn(5, 6, generator=gen) * 0.3
    sel = a.program_selected(w, mask, 20.0)
    rep = b.program_weights(w, 20.0, mask=mask)
    assert torch.equal(sel.flat, mask.reshape(-1).nonzero().squeeze(1))
    assert torch.equal(sel.pulses, rep.pulses.reshape(1, 2, -1)[:, :, sel.flat])
    assert torch.equal(sel.clipped, rep.clipped.reshape(-1)[sel.flat])
    for f in a.state.FIELDS:
        assert torch.equal(getattr(a.state, f), getattr(b.state, f)), f
    assert torch.equal(a.drifted_conductances(30.0), b.conductances(30.0))
    out = torch.empty(5, 6)
    a.weights_into(out, 30.0)
    assert torch.equal(out, b.weights(30.0))
    with pytest.raises(ValueError, match="int32"):
        a.apply_pulse_counts(n.long(), 40.0)
    with pytest.raises(ValueError, match="int32"):
        a.apply_pulse_counts(n[0], 40.0)
    with pytest.raises(ValueError, match="device_index"):
        a.apply_pulse_counts(n, 40.0, device_index=1)
    with pytest.raises(ValueError, match="mask"):
        a.program_selected(w, mask.float(), 40.0)


def test_bad_input_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="significance='x'"):
        CrossbarConfig(significance="x")
    with pytest.raises(ValueError, match="weight_scale='big'"):
        CrossbarConfig(weight_scale="big")
    with pytest.raises(ValueError, match="devices_per_sign=0"):
        CrossbarConfig(devices_per_sign=0)
    with pytest.raises(ValueError, match="dac_bits=1"):
        PeripheryConfig(dac_bits=1)
    with pytest.raises(ValueError, match="unknown field"):
        CrossbarConfig.from_dict({"tiles": 3})
    with pytest.raises(device_models.DeviceParameterError, match="unknown device model"):
        Crossbar(2, 2, "no-such-device")
    xb = Crossbar(3, 4, "ideal")
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 4\]"):
        xb.mvm(torch.zeros(2, 5), 0.0)
    with pytest.raises(ValueError, match=r"expected \[3, 4\]"):
        xb.program_weights(torch.zeros(4, 3), 0.0)
    cfg = CrossbarConfig.from_dict({"devices_per_sign": 2, "periphery": {"adc_bits": 8}})
    assert cfg.periphery.adc_bits == 8 and CrossbarConfig.from_dict(cfg.to_dict()) == cfg


# ---- determinism and persistence ------------------------------------------------------------
def test_same_seed_same_tensors(tmp_path) -> None:
    model = GaussDriftDevice(prog_sigma_us=0.5)
    w, x = _w(7, 9), _x(5, 9)

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb = Crossbar(7, 9, model, seed=seed)
        xb.program_weights(w, 0.0)
        return xb.state.g_us.clone(), xb.mvm(x, 50.0)

    g1, y1 = run(11)
    g2, y2 = run(11)
    g3, _ = run(12)
    assert torch.equal(g1, g2) and torch.equal(y1, y2)
    assert not torch.equal(g1, g3)


def test_state_dict_roundtrip_weights_only(tmp_path) -> None:
    model = GaussDriftDevice(prog_sigma_us=0.5)
    xb = Crossbar(7, 9, model, CrossbarConfig(per_column_scale=True), seed=4)
    xb.program_weights(_w(7, 9), 0.0)
    xb.mvm(_x(3, 9), 1.0)
    torch.save(xb.state_dict(), tmp_path / "xb.pt")
    other = Crossbar(7, 9, model, CrossbarConfig(per_column_scale=True), seed=99)
    other.load_state_dict(torch.load(tmp_path / "xb.pt", weights_only=True))
    for f in DeviceState.FIELDS:
        assert torch.equal(getattr(other.state, f), getattr(xb.state, f))
    assert torch.equal(other.w_per_us, xb.w_per_us)
    x = _x(4, 9)
    assert torch.equal(other.mvm(x, 100.0), xb.mvm(x, 100.0))  # generator state restored too
    with pytest.raises(ValueError, match="shape"):
        Crossbar(9, 7, model, CrossbarConfig(per_column_scale=True)).load_state_dict(xb.state_dict())


def test_plots_write_files(tmp_path) -> None:
    from pcmsim.plots.crossbar import plot_crossbar

    xb = Crossbar(40, 30, GaussDriftDevice(prog_sigma_us=0.3), CrossbarConfig(tile_rows=16, tile_cols=16))
    w = _w(40, 30)
    xb.program_weights(w, 0.0)
    paths = plot_crossbar(xb, tmp_path / "plots", t_s=60.0, target=w, prefix="l0_")
    assert [p.name for p in paths] == [
        "l0_conductances.png",
        "l0_weights_vs_target.png",
        "l0_pulse_counts.png",
        "l0_saturation.png",
    ]
    for p in paths:
        assert_figure(p)
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.endswith(".tmp")]
