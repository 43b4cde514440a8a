"""``pcmsim device fit`` on foreign data (issue 23): measurements written by generators that are not
pcmsim models (:mod:`device_fit_generators`), read noise of 2 % of G + 0.1 µS on every read, fitted,
and the fitted model sampled through the measured protocol (RESET, 20 pulses) and through two others
(a 40-pulse train; SET from mid-range after a partial RESET) against the generator.

Targets (issue 23): mean curve within 2 %, its spread within 5 %, mean ΔG per 1-µS bin within 10 %,
cycle-to-cycle and device-to-device within 10 %, ν within 0.003, read σ within 5 %; history terms
dropped (the generator has none); the drift law's extrapolated loss before the first read small (the
generator loses nothing before 1 s). Small size here (the full size is ``bench/device_fit.py``): 600
devices × 2 RESET cycles × 20 pulses, so the spread's standard error is 1/√(2·1200) = 2 %; the
comparisons simulate 20,000 devices of each. ``power-sat`` (300 devices × 2 cycles × 20 pulses, a
read-noise file and no drift file) checks the choice of the multiplicative cycle-to-cycle law.
"""

from __future__ import annotations

import re
import types

import numpy as np
import pytest
import torch
from device_fit_generators import (
    EXP_SAT,
    MIXED_SAT,
    POWER_SAT,
    curve_errors,
    curve_warnings,
    dg_bin_error,
    fit_on_one_thread,
    model_traces,
)

from device_models.empirical import EmpiricalDevice, EmpiricalParams

N_DEV, N_CYC, N_PULSES, N_SIM = 600, 2, 20, 20_000
BIC_MARGIN = 10.0
"""A BIC difference above which a law is kept against another: very strong evidence (Kass & Raftery
1995, J. Am. Stat. Assoc. 90:773)."""


@pytest.fixture(scope="module")
def exp_sat(tmp_path_factory):
    d = tmp_path_factory.mktemp("foreign")
    files = {"pulse": EXP_SAT.write_pulses(d / "p.csv", N_DEV, N_PULSES, N_CYC, seed=1),
             "drift": EXP_SAT.write_drift(d / "d.csv", 1000, seed=2, times_s=np.logspace(0, 6, 19)),
             "read-noise": EXP_SAT.write_reads(d / "r.csv", 1000, 10, seed=3)}
    return fit_on_one_thread(files)


# (mean, spread, ΔG per bin) bounds per protocol: the targets for the measured protocol; for
# the other two, at this size, what the fit reaches (docs/device-fit.md gives the full-size numbers
# of bench/device_fit.py against the targets)
BOUNDS = {"measured": (0.02, 0.05, 0.10), "longer train": (0.02, 0.07, 0.10), "from mid-range": (0.02, 0.05, 0.15)}


@pytest.mark.parametrize("protocol", list(BOUNDS))
def test_curves_through_protocols(exp_sat, protocol):
    n_p, start = {"measured": (N_PULSES, None), "longer train": (2 * N_PULSES, None),
                  "from mid-range": (N_PULSES, (6.0, 10.0))}[protocol]
    a, _ = EXP_SAT.traces(N_SIM, n_p, 1, seed=7, start_us=start)
    b = model_traces(exp_sat.model, N_SIM, n_p, seed=8, start_us=start)
    mean_err, std_err = curve_errors(a, b)
    dg_err = dg_bin_error(a, b, exp_sat.result.figures["pulse_data"].g_before)
    print(f"{protocol}: mean {mean_err:.2%}, spread {std_err:.2%}, ΔG bins {dg_err:.2%}")
    bound = BOUNDS[protocol]
    assert mean_err <= bound[0] and std_err <= bound[1] and dg_err <= bound[2]


def _check_standard_error(p: dict, q: dict, name: str, truth: float, n_devices: int | None) -> None:
    """The fit's standard error of ``name`` (its observed information) against the generator's truth:
    the estimate within 3 standard errors of it, and, for a device factor's std ``s`` over ``n_devices``
    devices, the standard error no smaller than ``s/√(2n)``, the least it could be were every device's
    factor known exactly (the std of ``n`` normal draws)."""
    se = (q["standard_errors"] or {}).get(name)
    print(f"{name}: {p[name]:.4f} ± {se} against {truth:.4f}")
    assert se is not None and se > 0.0
    assert abs(p[name] - truth) <= 3.0 * se
    if n_devices is not None:
        assert se >= truth / np.sqrt(2.0 * n_devices)


def test_step_laws_and_identifiability(exp_sat):
    p, q = exp_sat.result.params, exp_sat.result.quality["pulse_response"]
    assert not curve_warnings(exp_sat.result)  # the model's law is the data's: no goodness-of-fit warning
    # no pulse history in the generator: the history terms are dropped, or (RESET-then-SET data
    # cannot tell a history term from M(G) at the RESET conductance, where only pulse 1 is seen)
    # confined to the first pulses: after 3 pulses below 5 % of the mean step there
    if q["history_kept"]:
        m3, _ = exp_sat.model.increment_stats(torch.tensor([10.0]))
        assert abs(p["hist_mean_us"]) * np.exp(-3.0 / p["hist_pulses"]) < 0.05 * float(m3)
    assert q["d2d_kept"] and p["d2d_rel_std"] == pytest.approx(EXP_SAT.d2d_rel_std(), rel=0.10)
    _check_standard_error(p, q, "d2d_rel_std", EXP_SAT.d2d_rel_std(), N_DEV)
    # its factor is normal: the normal law the likelier
    ll = q["d2d_law"]["loglik"]
    print(f"exp-sat: device factor log-likelihood normal {ll['normal']:.1f}, log-normal {ll['lognormal']:.1f}")
    assert p["d2d_law"] == "normal"
    # its cycle-to-cycle std does not vanish at saturation: the additive law, by BIC
    assert q["c2c_law"]["law"] == "additive" and p["c2c_rel_std"] == 0.0
    g = torch.linspace(2.0, 16.0, 15)
    _, s = exp_sat.model.increment_stats(g)
    c2c = EXP_SAT.c2c_std(g.double())
    assert float(((s.double() - c2c).abs() / c2c).max()) <= 0.10
    assert p["g_max_us"] == pytest.approx(EXP_SAT.g_sat_us, rel=0.05)  # the saturation, not the largest read


def test_drift_and_read_noise(exp_sat):
    g0, nu = EXP_SAT.drift_devices(1000, seed=2)
    nu_fit, _ = exp_sat.model.nu_stats(g0.float())
    assert abs(float(nu_fit.double().mean() - nu.mean())) <= 0.003
    assert exp_sat.result.quality["drift"]["gap_before_first_read"] < 0.02
    g = torch.linspace(0.1 * EXP_SAT.g_sat_us, 0.9 * EXP_SAT.g_sat_us, 17)
    state = exp_sat.model.init_state((g.numel(),), generator=torch.Generator().manual_seed(0))
    est = exp_sat.model.read_noise_std(state, 1.0, g)
    true = EXP_SAT.read_std(g.double())
    assert float(((est.double() - true).abs() / true).max()) <= 0.05


# ---- power-sat: a cycle-to-cycle scatter that vanishes at saturation ---------------------------
def _fit_pulses_and_reads(gen, folder, n_devices: int) -> types.SimpleNamespace:  # noqa: ANN001
    """Fit a generator's pulse file (``n_devices`` × N_CYC × N_PULSES) and a read-noise file of 1000 devices."""
    files = {"pulse": gen.write_pulses(folder / "p.csv", n_devices, N_PULSES, N_CYC, seed=1),
             "read-noise": gen.write_reads(folder / "r.csv", 1000, 10, seed=3)}
    return fit_on_one_thread(files)


@pytest.fixture(scope="module")
def power_sat(tmp_path_factory):
    return _fit_pulses_and_reads(POWER_SAT, tmp_path_factory.mktemp("power"), 300)


def test_power_sat_multiplicative_law(power_sat):
    """power-sat's log-normal factor on the step (σ_ln 0.35): the multiplicative law by BIC, its part
    log-normal (the generator's own shape), κ within 10 % of sqrt(exp(0.35²) − 1) = 0.361 (300 devices
    × 2 cycles × 20 pulses), no history term (the generator has none: filtered as normal steps, the
    skew kept one at 1500 devices), and a train twice as long keeps its mean within 5 % and its spread
    within 12 % (the additive law was 46 % off in spread there at full size). κ's standard error is
    given, and G_max, a clip above every read, is named not identified. Measured: κ 0.362 ± 0.006, the
    log-normal part likelier by 98.4 log-units, the history's likelihood ratio 0.1, the longer train
    2.6 % off in mean and 8.2 % in spread (18 % from a file of 200 devices: an extrapolation above the
    data, docs/device-fit.md)."""
    assert not curve_warnings(power_sat.result)
    p, q = power_sat.result.params, power_sat.result.quality["pulse_response"]
    print(f"power-sat: κ {p['c2c_rel_std']:.4f}, history kept {q['history_kept']} "
          f"(ratio {q['history_lr_statistic']:.1f}), d2d {p['d2d_rel_std']:.4f}, "
          f"read law {power_sat.result.quality['read_noise']['sigma_law']}")
    assert q["c2c_law"]["law"] == "multiplicative"
    shape = q["c2c_shape"]["loglik"]
    print(f"power-sat: the multiplicative part log-normal by {shape['lognormal'] - shape['normal']:.1f} log-units")
    assert p["c2c_shape"] == "lognormal"  # its own shape
    assert p["c2c_rel_std"] == pytest.approx(np.sqrt(np.exp(0.35 ** 2) - 1.0), rel=0.10)
    assert not q["history_kept"]
    se = q["standard_errors"]
    print(f"power-sat: κ ± {se['c2c_rel_std']:.3g}; not identified: {q['not_identified']}")
    assert 0.0 < se["c2c_rel_std"] < 0.05 and "g_max_us" in q["not_identified"] and "g_max_us" not in se
    a, _ = POWER_SAT.traces(N_SIM, 2 * N_PULSES, 1, seed=7)
    b = model_traces(power_sat.model, N_SIM, 2 * N_PULSES, seed=8)
    mean_err, std_err = curve_errors(a, b)
    print(f"power-sat, longer train: mean {mean_err:.2%}, spread {std_err:.2%}")
    assert mean_err <= 0.05 and std_err <= 0.12


def test_report_of_tables_extended_to_the_saturation(power_sat, tmp_path):
    """power-sat's steps approach 0 above the data: the tables are extended to the saturation
    (extrapolated), the top segment does not restore, so the step above the top knot is held and not
    compared; the report says both (a report of such a fit once failed on the record of the step above
    the top knot)."""
    from device_models.fit_report import write_report  # noqa: PLC0415

    q = power_sat.result.quality["pulse_response"]
    assert "extrapolated" in q["saturation"] and q["mean_step_above_data"] == {"tail": "hold", "loglik": None}
    report = write_report(power_sat.result, tmp_path / "m.json").read_text()
    assert re.search(r"^\| M above the top knot \| held at the top knot's value \(not compared: ", report, re.M), report


def test_saturation_tail_recovers_the_curvature():
    """The extrapolation above the data: c·(G_sat − G)^p from the upper knots (exact on exact knots)."""
    from device_models.fit_pulse import _saturation_tail

    g = np.linspace(0.0, 14.2, 17)
    c, g_sat, p = _saturation_tail(g, 1.61 * (1.0 - g / 15.0) ** 1.5)
    assert g_sat == pytest.approx(15.0, rel=1e-6) and p == pytest.approx(1.5, rel=1e-6)
    assert _saturation_tail(g, 0.12 * (20.0 - g))[1:] == pytest.approx((20.0, 1.0), rel=1e-6)


# ---- mixed-sat: a cycle-to-cycle scatter with an additive and a multiplicative part -------------
@pytest.fixture(scope="module")
def mixed_sat(tmp_path_factory):
    return _fit_pulses_and_reads(MIXED_SAT, tmp_path_factory.mktemp("mixed"), 200)


def test_mixed_sat_combined_law(mixed_sat):
    """mixed-sat's scatter ``0.05 + 0.05·G + 0.3·|f·M|`` (a device factor of log-normal σ 0.3): the
    combined law by BIC once the device factor is in, each pure law losing by more than BIC_MARGIN
    (on the base model, without a factor, κ·|M(G)| is a function of G that the table holds); κ within
    15 % of 0.3 and the cycle-to-cycle std of a factor-1 device within 15 % over 3–12 µS. 200 devices
    × 2 cycles × 20 pulses; measured: pure laws 68 BIC behind, κ 0.317, c2c within 6.6 %. The device
    factor's law: log-normal, the generator's (log-likelihood 6.7 above the normal)."""
    assert not curve_warnings(mixed_sat.result)
    p, q = mixed_sat.result.params, mixed_sat.result.quality["pulse_response"]
    law = q["c2c_law"]
    print(f"mixed-sat: laws {[c['law'] for c in law['choices']]}, BIC {law['bic']}, κ {p['c2c_rel_std']:.3f}")
    assert q["d2d_kept"] and law["law"] == "combined"
    ll = q["d2d_law"]["loglik"]
    print(f"mixed-sat: device factor log-likelihood normal {ll['normal']:.1f}, log-normal {ll['lognormal']:.1f}")
    assert p["d2d_law"] == "lognormal"  # the generator's own
    shape = q["c2c_shape"]["loglik"]
    print(f"mixed-sat: the multiplicative part normal by {shape['normal'] - shape['lognormal']:.1f} log-units")
    assert p["c2c_shape"] == "normal"  # the generator's own (its steps are normal)
    assert min(law["bic"]["additive"], law["bic"]["multiplicative"]) - law["bic"]["combined"] > BIC_MARGIN
    assert p["c2c_rel_std"] == pytest.approx(MIXED_SAT.c2c[2], rel=0.15)
    _check_standard_error(p, q, "c2c_rel_std", MIXED_SAT.c2c[2], None)
    g = torch.linspace(3.0, 12.0, 10)
    _, s = mixed_sat.model.increment_stats(g)
    c2c = MIXED_SAT.c2c_std(g.double())
    err = float(((s.double() - c2c).abs() / c2c).max())
    print(f"mixed-sat: cycle-to-cycle std off by {err:.2%} at most over 3–12 µS")
    assert err <= 0.15


def test_mixed_sat_mean_step_above_the_data_held_where_the_top_segment_does_not_restore(mixed_sat):
    """Above the top knot the fit continues the top segment only where both its knots' mean steps are
    below 0 (test_device_fit_tail.py). On this small file the top knot sits at the saturation (15.1 µS
    against 15): its segment has the approach's slope, not the restoring law's above, so the step is
    held there, and a train twice as long keeps its mean within 3 % and its spread within 7 %
    (measured: 1.9 % and 5.1 %); the same fit with the segment continued misses them (3.3 % and 15.1 %,
    ``-s`` prints both)."""
    p, q = mixed_sat.result.params, mixed_sat.result.quality["pulse_response"]
    assert p["dg_mean_above"] == "hold" and q["mean_step_above_data"]["loglik"] is None
    a, _ = MIXED_SAT.traces(N_SIM, 2 * N_PULSES, 1, seed=7)
    errors = {}
    for tail in ("hold", "linear"):
        model = EmpiricalDevice(EmpiricalParams(**{**p, "dg_mean_above": tail}))
        errors[tail] = curve_errors(a, model_traces(model, N_SIM, 2 * N_PULSES, seed=8))
        print(f"mixed-sat, a train twice as long, {tail}: mean {errors[tail][0]:.2%}, spread {errors[tail][1]:.2%}")
    assert errors["hold"][0] <= 0.03 and errors["hold"][1] <= 0.07
    assert errors["linear"][1] > 0.07  # (what the gate keeps out)


def test_report_gives_the_law_and_the_standard_errors(mixed_sat, tmp_path):
    """The report's table: the cycle-to-cycle law with κ ± its standard error and its correlation
    with the device factor, the factor's std ± its standard error (the quality record's values)."""
    from device_models.fit_report import write_report  # noqa: PLC0415

    q = mixed_sat.result.quality["pulse_response"]
    report = write_report(mixed_sat.result, tmp_path / "m.json").read_text()
    se = q["standard_errors"]
    row = re.search(r"^\| cycle-to-cycle law \| combined: std `S\(G\) \+ κ·\\\|f·M\(G\)\\\|`, "
                    r"κ = ([0-9.]+) ± ([0-9.]+) \(correlation with the device factor's std (-?[0-9.]+)\) \|$",
                    report, re.M)
    assert row, report
    assert float(row[1]) == pytest.approx(mixed_sat.result.params["c2c_rel_std"], rel=1e-3)
    assert float(row[2]) == pytest.approx(se["c2c_rel_std"], rel=0.05)
    assert float(row[3]) == pytest.approx(q["d2d_kappa_correlation"], abs=0.01)
    d2d = re.search(r"^\| device-to-device std of the mean step \| ([0-9.]+) ± ([0-9.]+) ", report, re.M)
    assert d2d and float(d2d[2]) == pytest.approx(se["d2d_rel_std"], rel=0.05)


# ---- the read-noise law: linear unless the bins call for a power ------------------------------------
def _read_noise_fit(path, g_top: float):  # noqa: ANN001, ANN202
    from device_models.fit_series import fit_read_noise  # noqa: PLC0415
    from device_models.measurements import read_time_series_csv  # noqa: PLC0415

    params, quality, _ = fit_read_noise(read_time_series_csv(path, "read-noise"), g_max_us=g_top)
    return np.asarray(params["read_noise_g_us"]), np.asarray(params["read_noise_sigma_us"]), quality


def test_read_noise_law_linear_where_the_bins_do_not_call_for_a_power(tmp_path):
    """A power-sat read-noise file of the bench's size (1500 devices × 20 reads set in 0.75–14.25 µS, σ = 3 %
    of G + 0.1 µS): the pulse fit reads σ(G) from the RESET level (~0.3 µS) to the top of the range,
    outside the file's devices. The linear law is kept (the power lowers χ² by 3.1 here, below 9), and σ
    is within 3 % of the truth over 0–16 µS (measured: 1.6 % at 0). A free power (p = 1.06, the fit
    before) was 5.4 % high at 0 and 3.2 % at the RESET level."""
    g, sigma, q = _read_noise_fit(POWER_SAT.write_reads(tmp_path / "r.csv", 1500, 20, seed=2), 16.0)
    true = POWER_SAT.read_std(torch.as_tensor(g)).numpy()
    err = np.abs(sigma / true - 1.0)
    print(f"power-sat read noise: law {q['law']}, {q['sigma_law']}, χ² gain of the power {q['power_chi2_gain']:.2f}, "
          f"largest error {err.max():.2%} (at G = 0: {err[0]:.2%})")
    assert q["law"] == "b + c·G" and q["sigma_law"]["p"] == 1.0
    assert err.max() <= 0.03


def test_read_noise_law_keeps_a_power_the_bins_call_for(tmp_path):
    """A read-noise file written by hand from σ = 0.05 µS + 0.08·√G (not a law of ours: shot-noise-like),
    300 devices × 20 reads in 0.5–14 µS: the power is kept (χ² gain 27 measured, threshold 9), p within
    0.1 of 0.5 and σ within 3 % over the devices' range (measured 0.97 %)."""
    gen = torch.Generator().manual_seed(4)
    g0 = 0.5 + 13.5 * torch.rand(300, generator=gen, dtype=torch.float64)
    obs = g0[:, None] + (0.05 + 0.08 * g0.sqrt())[:, None] * torch.randn(300, 20, generator=gen, dtype=torch.float64)
    rows = ["device,t_s,g_us"] + [f"{d},{1.0 + k:g},{v:.6g}" for d, tr in enumerate(obs.tolist())
                                  for k, v in enumerate(tr)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    g, sigma, q = _read_noise_fit(tmp_path / "r.csv", 15.0)
    sel = (g >= 0.5) & (g <= 14.0)
    err = np.abs(sigma[sel] / (0.05 + 0.08 * np.sqrt(g[sel])) - 1.0)
    print(f"√G read noise: law {q['law']}, {q['sigma_law']}, χ² gain {q['power_chi2_gain']:.1f}, largest error "
          f"{err.max():.2%}")
    assert q["law"] == "b + c·G^p" and q["power_chi2_gain"] > 9.0
    assert q["sigma_law"]["p"] == pytest.approx(0.5, abs=0.1)
    assert err.max() <= 0.03
