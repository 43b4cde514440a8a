"""aihwkit's mixed-precision choices as options of ``mixed-precision``: binomial pulse counts,
transfer with the next mini-batch, open-loop refresh rewrite, refresh decided on a noisy read."""

from __future__ import annotations

import math

import pytest
import torch

import device_models
from hardware_in_loop.schemes import make_scheme, scheme_params
from pcmsim.crossbar import Crossbar, CrossbarConfig
from pcmsim.periphery import PeripheryConfig
from pcmsim.typedconfig import ConfigError

W_PER_US = 0.1
DG = 0.5  # µS per ideal SET pulse -> ε = 0.05 weight units
EPS = DG * W_PER_US


def ideal_crossbar(out: int = 3, inp: int = 4) -> Crossbar:
    cfg = CrossbarConfig(weight_scale=W_PER_US, periphery=PeripheryConfig.ideal(), read_noise=False)
    return Crossbar(out, inp, device_models.get("ideal", delta_g_us=DG, g_max_us=25.0), cfg, seed=0)


def test_defaults_are_todays() -> None:
    p = scheme_params("mixed-precision")
    assert (p.pulse_counts, p.transfer, p.refresh.rewrite, p.refresh.read_noise_us) == (
        "exact", "end-of-batch", "verify", 0.0)
    with pytest.raises(ConfigError, match="pulse_counts"):
        scheme_params("mixed-precision", {"pulse_counts": "poisson"})
    with pytest.raises(ConfigError, match="refresh.rewrite"):
        scheme_params("mixed-precision", {"refresh": {"rewrite": "sometimes"}})


def test_binomial_pulse_counts_have_binomial_statistics() -> None:
    """n = 2 on every weight of a row whose largest n is 5: Binomial(5, 0.4) pulses per weight
    (mean 2, variance 1.2); χ loses exactly n·ε either way."""
    rows, cols = 400, 50
    xb = ideal_crossbar(rows, cols)
    scheme = make_scheme("mixed-precision", [xb], refresh={"enabled": False}, pulse_counts="binomial")
    dw = torch.full((rows, cols), 2.5 * EPS)
    dw[:, 0] = 5.5 * EPS  # the row's largest n: 5
    g = torch.Generator().manual_seed(0)
    scheme.apply(0, dw, 1.0, g)
    k = (xb.state.g_us[0, 0, :, 1:] / DG).round()  # pulses fired on the n = 2 weights
    m = k.numel()
    assert abs(k.mean().item() - 2.0) < 4 * math.sqrt(1.2 / m)
    assert abs(k.var().item() - 1.2) < 4 * 1.2 * math.sqrt(2 / m)  # wrong N (31, or n itself) fails
    assert k.max() <= 5
    assert torch.allclose(scheme.chi[0][:, 1:], torch.full((rows, cols - 1), 0.5 * EPS), atol=1e-6)
    # exact counts: no spread at all
    xb2 = ideal_crossbar(rows, cols)
    make_scheme("mixed-precision", [xb2], refresh={"enabled": False}).apply(0, dw, 1.0, g)
    assert torch.all((xb2.state.g_us[0, 0, :, 1:] / DG).round() == 2)


def test_next_batch_transfer_lags_one_step() -> None:
    xb = ideal_crossbar()
    scheme = make_scheme("mixed-precision", [xb], refresh={"enabled": False}, transfer="next-batch")
    dw = torch.zeros(3, 4)
    dw[1, 1] = 2.5 * EPS
    assert scheme.apply(0, dw, 1.0, None).pulses_set == 0  # accumulated, not yet transferred
    assert xb.weights(1.0)[1, 1] == 0
    stats = scheme.apply(0, torch.zeros(3, 4), 2.0, None)  # the next mini-batch transfers it
    assert stats.pulses_set == 2
    assert xb.weights(2.0)[1, 1].item() == pytest.approx(2 * EPS)
    assert scheme.chi[0][1, 1].item() == pytest.approx(0.5 * EPS)


def _saturated(xb: Crossbar) -> None:
    n_plus = torch.zeros(3, 4, dtype=torch.int32)
    n_minus = torch.zeros(3, 4, dtype=torch.int32)
    n_plus[0, 0], n_minus[0, 0] = 17, 12  # G+ = 8.5 µS, G- = 6 µS: W = 2.5 µS·w_per_us
    xb.apply_pulses(n_plus, n_minus, 0.0)


def test_open_loop_rewrite_fires_the_granularity_sized_count_unverified() -> None:
    """|W| = 2.5 µS at ε = 0.4 µS: round(6.25) = 6 pulses of 0.5 µS → 3.0 µS (an overshoot that
    program-and-verify would not leave)."""
    xb = ideal_crossbar()
    _saturated(xb)
    refresh = {"upper_us": 6.0, "lower_us": None, "max_diff_us": 3.0, "rewrite": "open-loop"}
    scheme = make_scheme("mixed-precision", [xb], granularity_us=0.4, refresh=refresh)
    stats = scheme.end_step(1.0, None)
    assert (stats.refreshes, stats.pulses_set, stats.pulses_reset) == (1, 6, 2)
    assert xb.state.g_us[0, 1, 0, 0] == 0
    assert xb.state.g_us[0, 0, 0, 0].item() == pytest.approx(3.0)
    # with verify the weight is kept
    xb2 = ideal_crossbar()
    _saturated(xb2)
    make_scheme("mixed-precision", [xb2], granularity_us=0.4, refresh={**refresh, "rewrite": "verify"}).end_step(1.0,
                                                                                                               None)
    assert xb2.state.g_us[0, 0, 0, 0].item() == pytest.approx(2.5)


def test_noisy_refresh_decision_fires_at_the_normal_rate() -> None:
    """A pair exactly at the threshold is refreshed on half of the noisy reads (about), one far
    above always, one 1σ below on Φ(−1) = 15.9 % of them."""
    n = 2000
    xb = Crossbar(3, n, device_models.get("ideal", delta_g_us=DG, g_max_us=25.0),
                  CrossbarConfig(weight_scale=W_PER_US, periphery=PeripheryConfig.ideal(), read_noise=False), seed=0)
    counts = torch.zeros(3, n, dtype=torch.int32)
    counts[0], counts[1], counts[2] = 12, 30, 10  # G+ = 6, 15, 5 µS
    xb.apply_pulses(counts, torch.zeros_like(counts), 0.0)
    refresh = {"upper_us": 6.0, "lower_us": None, "max_diff_us": None, "read_noise_us": 1.0}
    scheme = make_scheme("mixed-precision", [xb], refresh=refresh)
    scheme.end_step(1.0, torch.Generator().manual_seed(1))
    refreshed = xb.state.t_prog_s[0, 1] == 1.0  # the RESET of G- marks a refreshed pair
    frac = refreshed.float().mean(dim=1)
    se = [math.sqrt(p * (1 - p) / n) for p in (0.5, 0.159)]
    assert abs(frac[0].item() - 0.5) < 4 * se[0]
    assert frac[1].item() == 1.0
    assert abs(frac[2].item() - 0.1587) < 4 * se[1]
