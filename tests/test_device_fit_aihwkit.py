"""``pcmsim device fit`` on aihwkit's ``PCMPresetDevice`` through its C++ simulator (issue 23), small.

A pulse-response file measured from aihwkit ``AnalogTile``s (``tests/device_fit_aihwkit.py``: 300
devices × 2 RESET cycles × 20 pulses, read noise 2 % of G + 0.1 µS on every read) and a read-noise
file are fitted; the fitted model is sampled through the measured protocol against aihwkit (20,000
devices). The full size and the other protocols are ``python bench/device_fit.py --generators
aihwkit-preset`` (docs/device-fit.md).

The devices repeat across runs (each tile's ``construction_seed``), their cycle-to-cycle draws do not:
aihwkit's C++ generator takes no seed. In eight runs here the mean curve was off by 0.7–5.4 % and the
spread by 2.7–9.3 %. The preset also has parts the fitted model does not (a clip per device, a
cycle-to-cycle std with both a multiplicative and an additive part). So the bounds here are the
run-to-run range with room, not the issue's targets: this is the end-to-end check of a foreign C++
device through the fit, and a broken fit (a wrong scale, a lost device factor, read noise taken for
programming noise) still fails it.

The device-to-device std is judged against the file's own devices (aihwkit's hidden ``dwmin_up``:
0.215 for these 300, the population's 0.206). With the preset's large cycle-to-cycle scatter (κ 0.6)
the fit places it to about ±10 % (its own standard error, and the scatter of runs), and above the
truth: ``python bench/device_fit_d2d.py`` measured fitted/true 1.167 ± 0.128 (0.866–1.260) over 8
runs of this file (a CI run failed the earlier bound, 1.4 × the population's 0.206, with 0.294:
1.37 × these devices' truth). The bounds, :data:`D2D_RATIO`, are that mean ± 3.5 standard deviations.
Above the truth because the preset takes each device's step curve on the device's own range
(``w_max_dtod``): the spread of the step at a given G grows along the range beyond the scale's, and the
fit's one factor takes it up (``bench/device_fit_d2d.py --causes``, docs/device-fit.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from device_fit_aihwkit import AIHWKIT_PRESET
from device_fit_generators import curve_errors, curve_warnings, fit_on_one_thread, model_traces

pytestmark = pytest.mark.aihwkit
pytest.importorskip("aihwkit", reason="aihwkit is not installed (scripts/setup.sh installs it)")

N_DEV, N_CYC, N_PULSES, N_SIM = 300, 2, 20, 20_000
MEAN_BOUND, SPREAD_BOUND = 0.08, 0.12
D2D_RATIO = (0.7, 1.65)
"""Bounds of fitted/true device-to-device std (see the module docstring)."""


@pytest.fixture(scope="module")
def preset_fit(tmp_path_factory):
    d = tmp_path_factory.mktemp("aihwkit")
    files = {"pulse": AIHWKIT_PRESET.write_pulses(d / "p.csv", N_DEV, N_PULSES, N_CYC, seed=1),
             "read-noise": AIHWKIT_PRESET.write_reads(d / "r.csv", 1000, 10, seed=3)}
    return fit_on_one_thread(files).result


def test_measured_protocol_against_aihwkit(preset_fit):
    a, _ = AIHWKIT_PRESET.traces(N_SIM, N_PULSES, 1, seed=7)
    b = model_traces(preset_fit.model(), N_SIM, N_PULSES, seed=8)
    mean_err, std_err = curve_errors(a, b)
    print(f"aihwkit preset, measured protocol: mean {mean_err:.2%}, spread {std_err:.2%}")
    assert mean_err <= MEAN_BOUND and std_err <= SPREAD_BOUND
    assert not curve_warnings(preset_fit)  # the fit's own check through the measured protocol agrees


def test_device_to_device_and_read_noise(preset_fit):
    p, q = preset_fit.params, preset_fit.quality["pulse_response"]
    d2d_true = AIHWKIT_PRESET.sample_d2d_rel_std(N_DEV, seed=1)
    se = (q["standard_errors"] or {}).get("d2d_rel_std")
    print(f"aihwkit preset: d2d {p['d2d_rel_std']:.3f} ± {se} against {d2d_true:.3f} (these devices), "
          f"{AIHWKIT_PRESET.d2d_rel_std():.3f} (the population)")
    assert q["d2d_kept"]
    assert D2D_RATIO[0] <= p["d2d_rel_std"] / d2d_true <= D2D_RATIO[1]
    # a fit that nests another ends about as likely or likelier (one that stopped short is started
    # again from the nested fit): within 1 log-unit, a ninth of the threshold that keeps a clip per
    # device (a CI run ended 0.043 below, at the optimiser's precision; a stopped run had ended 673 below)
    assert not q["clip_d2d_tested"] or q["clip_d2d_lr_statistic"] >= -1.0
    g = torch.linspace(0.1 * AIHWKIT_PRESET.g_sat_us, 0.9 * AIHWKIT_PRESET.g_sat_us, 17)
    model = preset_fit.model()
    state = model.init_state((g.numel(),), generator=torch.Generator().manual_seed(0))
    est = model.read_noise_std(state, 1.0, g).double().numpy()
    true = AIHWKIT_PRESET.read_std(g.double()).numpy()
    assert float(np.max(np.abs(est - true) / true)) <= 0.05
