"""``pcmsim device fit``: round trips from known models, the fitted file as a device model, bad files.

Round trips: measurements written from ``pcm-nandakumar2018`` and ``pcm-joshi2020`` (pulse
response, drift, read noise), fitted, and the fitted model compared with the generator:

- mean programming curve (mean G after k SET pulses from RESET, k = 1 … 30; 20 for pcm-joshi2020) within 2 %;
- its spread (std of G after k pulses) within 5 %;
- mean drift exponent over the programmed devices within 0.002;
- read-noise σ on a grid over 10–90 % of G_max within 5 %.

Sample sizes: 1000 devices × 30 pulses for the pulse fit (pcm-joshi2020: 20 pulses, for the suite's
time; measured there: mean curve 1.05 %, spread 2.55 %, and its power test still fails both moved
constants; a std from n devices has a relative standard error of 1/√(2n): 2.2 % at 1000, so 5 % is 2.2
standard errors; the fit's 30 pulses per device pin the spread law more tightly than one pulse's spread
alone, and the power test below shows a moved constant fails), 2000 devices for drift and read noise (20
reads each: σ per bin from ~3000 degrees of freedom, 1.3 %); the comparisons simulate 20,000 devices of
each model (0.5 %).
``test_the_round_trip_checks_have_power`` shows that each check fails when the generator's
constant moves by less than the tolerance's worth.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_measurement_files

import device_models
from device_models import fit, measurements
from device_models.empirical import EmpiricalDevice
from hardware_in_loop.cli import device as device_cmd

N_PULSE_DEVICES = 1000
N_PULSES = {"pcm-nandakumar2018": 30, "pcm-joshi2020": 20}
"""SET pulses per device in the round trip's file, and the length of the compared programming curves."""
N_TIME_DEVICES = 2000
N_SIM = 20_000
MEAN_TOL, SPREAD_TOL, NU_TOL, READ_TOL = 0.02, 0.05, 0.002, 0.05


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _measure(model, folder: Path, seed: int) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    device_models.write_pulse_response_csv(model, folder / "pulses.csv", n_devices=N_PULSE_DEVICES,
                                           n_pulses=N_PULSES[model.name], seed=seed, read_noise=True)
    measurements.write_drift_csv(model, folder / "drift.csv", n_devices=N_TIME_DEVICES, seed=seed + 1)
    measurements.write_read_noise_csv(model, folder / "reads.csv", n_devices=N_TIME_DEVICES, seed=seed + 2)
    return {"pulse": str(folder / "pulses.csv"), "drift": str(folder / "drift.csv"),
            "read-noise": str(folder / "reads.csv")}


@pytest.fixture(scope="module", params=["pcm-nandakumar2018", "pcm-joshi2020"])
def round_trip(request, tmp_path_factory):
    name = request.param
    gen_model = device_models.get(name)
    folder = tmp_path_factory.mktemp(name)
    files = _measure(gen_model, folder, seed=11)
    torch.set_num_threads(1)
    result = fit.fit_measurements(files)
    path = fit.save_fitted(result, folder / "fitted.json")
    return types.SimpleNamespace(name=name, generator=gen_model, files=files, result=result, path=path,
                                 fitted=device_models.get(str(path)))


# ---- the comparisons (also used to show their power) -----------------------------------------
def programming_errors(generator, fitted) -> tuple[float, float]:
    """Largest relative errors of the mean and the std of G over pulses 1 … N_PULSES (the generator's)."""
    a = fit.simulate_pulses(generator, N_SIM, N_PULSES[generator.name], seed=101)[1:]
    b = fit.simulate_pulses(fitted, N_SIM, N_PULSES[generator.name], seed=102)[1:]
    mean_err = np.abs(b.mean(1) - a.mean(1)) / a.mean(1)
    std_err = np.abs(b.std(1) - a.std(1)) / a.std(1)
    return float(mean_err.max()), float(std_err.max())


def drift_nu_error(generator, fitted, seed: int) -> float:
    """Fitted mean ν over the devices of the drift file (at their programmed G) minus the generator's
    own ν of those devices (the same draws: the writer's seed)."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = 0.05 * generator.g_max_us, 0.9 * generator.g_max_us
    state = measurements._program(generator, N_TIME_DEVICES, lo, hi, gen, 0.0)
    nu_fit, _ = fitted.nu_stats(state.g_us)
    return float(nu_fit.double().mean() - state.nu.double().mean())


def read_noise_error(generator, fitted, delay_s: float) -> float:
    """Largest relative error of σ on 10–90 % of G_max, devices programmed at t = 0 and read at ``delay_s``."""
    g = torch.linspace(0.1 * generator.g_max_us, 0.9 * generator.g_max_us, 33)
    state = generator.init_state((g.numel(),), generator=torch.Generator().manual_seed(0))
    state.g_us.copy_(g)
    if generator.name == "pcm-joshi2020":
        state.nu.zero_()  # σ at the programmed G (the Q_s law uses G_prog; drift is not read noise)
    true = generator.read_noise_std(state, delay_s)
    g_read = generator.drifted(state, delay_s)
    est = fitted.read_noise_std(state, delay_s, g_read)
    return float(((est - true).abs() / true).max())


# ---- round trips ------------------------------------------------------------------------------
def test_round_trip_programming_curve(round_trip):
    mean_err, std_err = programming_errors(round_trip.generator, round_trip.fitted)
    print(f"{round_trip.name}: mean curve {mean_err:.2%}, spread {std_err:.2%}")
    assert mean_err <= MEAN_TOL, f"{round_trip.name}: mean programming curve off by {mean_err:.2%}"
    assert std_err <= SPREAD_TOL, f"{round_trip.name}: spread off by {std_err:.2%}"


def test_round_trip_drift(round_trip):
    err = drift_nu_error(round_trip.generator, round_trip.fitted, seed=12)
    q = round_trip.result.quality["drift"]
    print(f"{round_trip.name}: ν error {err:+.5f}, law {q['law']}, t0 {q['t0_s']:.3g} s")
    assert abs(err) <= NU_TOL
    want_law, want_t0 = {"pcm-nandakumar2018": ("onset", 38.6), "pcm-joshi2020": ("shifted", 20.0)}[round_trip.name]
    assert q["law"] == want_law
    assert q["t0_s"] == pytest.approx(want_t0, rel=0.15)


def test_round_trip_read_noise(round_trip):
    delay = round_trip.result.quality["read_noise"]["delay_s"]
    err = read_noise_error(round_trip.generator, round_trip.fitted, delay)
    print(f"{round_trip.name}: read noise σ within {err:.2%}")
    assert err <= READ_TOL


def test_round_trip_history_and_device_to_device(round_trip):
    p = round_trip.fitted.params
    if round_trip.name == "pcm-nandakumar2018":  # the generator's own history constants come back
        gp = round_trip.generator.params
        # (A_μ trades off against M at the RESET conductance, where only first pulses are seen)
        assert p.hist_mean_us == pytest.approx(gp.mu_history_us, rel=0.1)
        assert p.hist_std_us == pytest.approx(gp.sigma_history_us, rel=0.1)
        assert p.hist_pulses == pytest.approx(gp.a_pulses, rel=0.1)
        assert p.set_min_us == pytest.approx(gp.g_set_min_us) and p.g_max_us == pytest.approx(gp.g_max_us)
    assert p.d2d_rel_std == 0.0  # neither generator has device-to-device variation of its steps


def test_the_round_trip_checks_have_power(round_trip):
    """Each check fails when the generator's constant moves: the tolerances can see a wrong model."""
    gen_model, fitted = round_trip.generator, round_trip.fitted
    if round_trip.name == "pcm-nandakumar2018":
        moved = {"mu_offset_us": 0.880 * 1.04, "sigma_slope": 0.091 * 1.2, "nu": 0.04 + 0.003,
                 "read_noise_slope": 0.03 * 1.15}
    else:
        moved = {"set_increment_us": 1.0 * 1.03, "prog_c1": 1.9650 * 1.15, "nu_mu_min": 0.049 + 0.005,
                 "q_s_coeff": 0.0088 * 1.06}
    names = list(moved)
    delay = round_trip.result.quality["read_noise"]["delay_s"]
    for k, v in moved.items():  # (printed for the record)
        m = device_models.get(gen_model.name, **{k: v})
        print(f"{gen_model.name} with {k}={v:.5g}: programming {programming_errors(m, fitted)}, "
              f"ν {drift_nu_error(m, fitted, seed=12):+.5f}, read noise {read_noise_error(m, fitted, delay):.4f}")
    m = device_models.get(gen_model.name, **{names[0]: moved[names[0]]})
    assert programming_errors(m, fitted)[0] > MEAN_TOL, names[0]
    m = device_models.get(gen_model.name, **{names[1]: moved[names[1]]})
    assert programming_errors(m, fitted)[1] > SPREAD_TOL, names[1]
    m = device_models.get(gen_model.name, **{names[2]: moved[names[2]]})
    assert abs(drift_nu_error(m, fitted, seed=12)) > NU_TOL, names[2]
    m = device_models.get(gen_model.name, **{names[3]: moved[names[3]]})
    assert read_noise_error(m, fitted, delay) > READ_TOL, names[3]


@pytest.mark.benchmark  # about a minute: the suite checks the device factor on a foreign generator
def test_device_to_device_part_is_separated(tmp_path):  # (test_device_fit_foreign's exp-sat, within 10 %)
    """A generator with a device-to-device factor on its steps (the fitted Nandakumar tables with
    ``d2d_rel_std`` 0.2): measured over 3 RESET cycles of the same devices (400 devices: the factor's
    standard error is ~0.01), the fit finds it (within 0.05, see below)."""
    base = device_models.get("empirical", hist_mean_us=1.40, hist_std_us=2.15, hist_pulses=2.6, d2d_rel_std=0.2,
                             set_min_us=0.1)
    path = measurements.write_pulse_response_csv(base, tmp_path / "cycles.csv", n_devices=400, n_pulses=10,
                                               n_cycles=3, seed=5)
    params, quality = fit.fit_pulse(measurements.read_pulse_csv(path), n_knots=8)
    assert quality["d2d_kept"]
    # (0.245 here with the adapted nodes, 0.243 with the former 9 fixed ones: not the quadrature's
    # bias; the generator's pulse-history terms are strong, and the cause is not found)
    assert params["d2d_rel_std"] == pytest.approx(0.2, abs=0.05)


def test_a_history_slower_than_the_train_is_not_kept(tmp_path):
    """pcm-nandakumar2018 with its history decaying over a = 10 pulses, measured for 10 pulses (150
    devices): the history terms' likelihood ratio (measured 21.3-21.4) is above the threshold, but their
    decay runs to the bound of its search range, half the train (5 pulses), or stops short of it where the
    likelihood does not tell it from the bound (``fit_pulse.DECAY_LR_THRESHOLD``: a = 3.9 on one CPU type,
    5 on another, from the same file): along RESET-then-SET such
    a history is a function of G as much as of the pulse number (``fit_pulse.HISTORY_SPAN``), so it
    is not kept, and the report says why; the model without it still follows the measured
    programming curve (no goodness-of-fit warning)."""
    from device_models.fit_pulse import HISTORY_LR_THRESHOLD  # noqa: PLC0415
    from device_models.fit_report import write_report  # noqa: PLC0415

    slow = device_models.get("pcm-nandakumar2018", a_pulses=10.0)
    path = measurements.write_pulse_response_csv(slow, tmp_path / "slow.csv", n_devices=150, n_pulses=10, seed=1,
                                               read_noise=True)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = fit.fit_measurements({"pulse": str(path)})
    finally:
        torch.set_num_threads(n)
    q = result.quality["pulse_response"]
    print(f"slow history: likelihood ratio {q['history_lr_statistic']:.1f}, at the bound"
          f" {q['history_decay_at_bound']}, "
          f"a {q['history_fitted']['hist_pulses']:.3g}, against the bound {q['history_decay_lr_vs_bound']}")
    assert q["history_decay_at_bound"] and q["history_decay_bound_pulses"] == pytest.approx(5.0)
    assert q["history_lr_statistic"] > HISTORY_LR_THRESHOLD and not q["history_kept"]
    assert result.params["hist_mean_us"] == 0.0 and result.params["hist_std_us"] == 0.0
    assert not result.quality["warnings"]
    report = write_report(result, tmp_path / "slow.json").read_text()
    assert re.search(r"its decay (at|not told from \(likelihood ratio [0-9.e+-]+ against it held at\)) the bound, "
                     r"5 pulses", report)


# ---- the fitted file as a device model ----------------------------------------------------------
def test_fitted_file_loads_wherever_a_name_does(round_trip, tmp_path):
    path = str(round_trip.path)
    doc = json.loads(Path(path).read_text())
    assert doc["format"] == fit.FORMAT and doc["model"] == "empirical"
    assert {f["kind"] for f in doc["provenance"]["files"]} == {"pulse", "drift", "read-noise"}
    assert "pulse_response" in doc["quality"] and "drift" in doc["quality"] and "read_noise" in doc["quality"]
    model = device_models.get(path)
    assert isinstance(model, EmpiricalDevice)
    assert dataclasses.asdict(model.params) == dataclasses.asdict(round_trip.result.model().params)
    assert device_models.get(path, program_tolerance_us=0.3).params.program_tolerance_us == 0.3
    assert device_models.is_model(path) and device_models.is_model("pcm-nandakumar2018")
    assert not device_models.is_model(str(tmp_path / "absent.json")) and not device_models.is_model("nope")
    if round_trip.name != "pcm-nandakumar2018":
        return
    # a run config takes the file as its device model; a missing file is refused in one line
    from hardware_in_loop.config import ConfigError
    from hardware_in_loop.experiments import experiment_config

    assert experiment_config("jsb-52800", quick=True, device_model=path).device_model == path
    with pytest.raises(ConfigError, match=r"field 'device_model' = '.*absent\.json' is invalid: "
                       r"expected one of .*pcm-nandakumar2018.*, or a fitted device's JSON file"):
        experiment_config("jsb-52800", quick=True, device_model=str(tmp_path / "absent.json"))
    # a run on it keeps a copy and the digest; a resume refuses the file once it has changed
    from hardware_in_loop.checkpoint import CheckpointError
    from hardware_in_loop.experiments import run_training
    from hardware_in_loop.trainer import Trainer

    own = tmp_path / "dev.json"
    own.write_bytes(Path(path).read_bytes())
    cfg = experiment_config("jsb-52800", quick=True, device_model=str(own), epochs=1, max_train_sequences=8,
                            max_eval_sequences=8, drift_times=[])
    results = run_training(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "device_model.json").read_bytes() == own.read_bytes()
    assert len(results["device_model_sha256"]) == 64
    own.write_text(own.read_text().replace('"format"', ' "format"', 1))
    with pytest.raises(CheckpointError, match=r"dev\.json has changed since the checkpoint"):
        Trainer(cfg, tmp_path / "run", progress=False).resume()
    # a crossbar on it programs weights and reads them back
    from pcmsim.crossbar import Crossbar, CrossbarConfig

    xb = Crossbar(16, 8, path, config=CrossbarConfig(weight_scale=0.05), seed=1)
    w = torch.full((16, 8), 0.2)
    xb.program_weights(w, 0.0)
    assert float((xb.weights(0.0) - w).abs().mean()) < 0.1


@pytest.mark.parametrize("text,pattern", [
    ("{", r"bad\.json:1: not valid JSON"),
    ('{"format": "other"}', r"bad\.json: not a fitted device file"),
    ('{"format": "pcmsim-device-fit", "version": 1, "model": "empirical", "params": {"bogus": 1}}',
     r"bad\.json: unknown parameter\(s\) \['bogus'\]"),
    ('{"format": "pcmsim-device-fit", "version": 1, "model": "empirical", "params": {"g_max_us": -1}}',
     r"bad\.json: parameter g_max_us=-1 is invalid"),
])
def test_bad_fitted_file_one_line(tmp_path, text, pattern):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(device_models.DeviceParameterError, match=pattern) as exc:
        device_models.get(str(p))
    assert "\n" not in str(exc.value)
    with pytest.raises(device_models.DeviceParameterError, match="no such fitted device file"):
        device_models.get(str(tmp_path / "absent.json"))


# ---- the command --------------------------------------------------------------------------------
def test_cli_a_plain_drift_file_is_asked_its_kind(tmp_path, capsys):
    """(The command's model, report and figures: ``test_device_fit_failures.py``'s ``refitted``.)"""
    measurements.write_drift_csv(device_models.get("pcm-nandakumar2018"), tmp_path / "d.csv", n_devices=100, seed=2)
    # a plain drift file is ambiguous: one line asks for its kind
    assert device_cmd.main(["fit", str(tmp_path / "d.csv"), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "expected drift=" in err


BAD = [  # (kind, text, expected fragment of the one line)
    ("pulse", "device,g_us\n0,0.1\n", "p.csv:1: header 'device,g_us' lacks column(s) pulse"),
    ("pulse", "device,pulse,g_us\n0,0,0.1\n0,1,abc\n", "p.csv:3: field 'g' = 'abc' is not a number"),
    ("pulse", "device,pulse,g_us\n0,0,0.1\n0,1,-0.5\n", "p.csv:3: negative conductance '-0.5'"),
    ("pulse", "device,pulse,g_us\n0,0,0.1\n0,1,0.5\n1,0,0.1\n", "p.csv:4: device '1' has one point"),
    ("pulse", "device,pulse,g_us\n0,0,0.1\n0,2,0.5\n", "p.csv:3: device '0' pulse 2 follows pulse 0"),
    ("pulse", "device,pulse,g_us\n" + "".join(f"{d},0,0.1\n{d},1,0.9\n" for d in range(3)),
     "p.csv: 3 device(s) with SET pulses: too few devices for a spread"),
    ("drift", "device,t_s,g_us\n0,0,5\n0,10,4.9\n0,5,4.8\n", "d.csv:4: device '0': time not increasing"),
    ("drift", "device,t_s,g_us\n0,0,5\n1,0,4\n1,1,3.9\n", "d.csv:2: device '0' has one point"),
    ("drift", "device,t_s\n0,0\n", "d.csv:1: header 'device,t_s' lacks column(s) g_us"),
    ("drift", "device,t_s,g_us\n0,x,5\n", "d.csv:2: field 't' = 'x' is not a number"),
    ("read-noise", "device,t_s,g_us\n" + "".join(f"{d},0,1\n{d},1,1.1\n" for d in range(4)),
     "r.csv: 4 device(s) with reads: too few devices for a spread"),
    ("read-noise", "device,t_s,g_us\n0,0,-1\n", "r.csv:2: negative conductance '-1'"),
]


@pytest.mark.parametrize("kind,text,fragment", BAD)
def test_bad_measurements_one_line_nothing_written(tmp_path, capsys, kind, text, fragment):
    name = {"pulse": "p.csv", "drift": "d.csv", "read-noise": "r.csv"}[kind]
    good = small_measurement_files(tmp_path / "good")
    spec = {"pulse": 0, "drift": 1, "read-noise": 2}[kind]
    bad = tmp_path / name
    bad.write_text(text)
    good[spec] = f"{kind}={bad}"
    out = tmp_path / "out"
    assert device_cmd.main(["fit", *good, "--out", str(out / "m.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("pcmsim: error: ")
    assert fragment in err, err
    assert not out.exists() or not any(out.iterdir())  # nothing written, no temporary file left


def test_measurement_writer_command(tmp_path, capsys):
    """``pcmsim device measure MODEL DIR`` (step 1 of the worked example)."""
    args = ["measure", "pcm-nandakumar2018", str(tmp_path), "--n-devices", "40", "--n-pulses", "5"]
    assert device_cmd.main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift.csv", "pulses.csv", "reads.csv"]
    assert measurements.read_pulse_csv(tmp_path / "pulses.csv").n_devices == 40
    assert measurements.read_time_series_csv(tmp_path / "drift.csv", "drift").n_devices == 20


def test_units_in_the_header(tmp_path):
    """``g_ns`` and ``t_ms`` columns are converted to µS and s."""
    rows = ["device,t_ms,g_ns"] + [f"{d},{k * 1000},{(5 - 0.1 * k) * 1000}" for d in range(12) for k in range(3)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    data = measurements.read_time_series_csv(tmp_path / "d.csv", "drift")
    assert data.t_s.max() == pytest.approx(2.0) and data.g_us.max() == pytest.approx(5.0)


def test_placeholder_empirical_unchanged():
    """The new fields default to off: the placeholder model draws exactly as before (no aux use)."""
    m = device_models.get("empirical")
    s = m.init_state((1000,), generator=torch.Generator().manual_seed(0))
    m.set_pulse(s, None, 0.0, torch.Generator().manual_seed(1))
    assert torch.count_nonzero(s.aux) == 0 and m.read_clip_us is None
    g = torch.Generator().manual_seed(1)
    g0 = m.init_state((1000,), generator=torch.Generator().manual_seed(0)).g_us
    mean, std = m.increment_stats(g0)
    xi = torch.randn(g0.shape, generator=g)
    assert torch.allclose(s.g_us, (g0 + mean + std * xi).clamp(0, m.g_max_us))
    assert math.isclose(m.update_granularity_us(), 0.880 - 0.084 * 0.1, rel_tol=1e-5)


def test_awkward_but_valid_files_and_unknown_kinds(tmp_path, capsys):
    """A byte-order mark (as spreadsheets write), a missing trailing extra column, repeated reads
    that do not vary in some devices (below the resolution): accepted and fitted; times in a
    message are in seconds; an unknown measurement kind is refused; a report that cannot be
    written leaves no model file behind."""
    rng = np.random.default_rng(0)
    rows = ["\ufeffdevice,t_ms,g_us,comment"]
    for d in range(40):
        g = 0.5 + 0.2 * d
        for k in range(6):
            v = g if d < 20 else g + rng.normal(0.0, 0.05 * g)  # the low devices: no visible noise
            rows.append(f"{d},{1000 * (k + 1)},{v}" + (",ok" if k else ""))  # first row: no comment
    (tmp_path / "reads.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    data = measurements.read_time_series_csv(tmp_path / "reads.csv", "read-noise")
    assert data.n_devices == 40 and data.t_s[1] == 2.0
    result = fit.fit_measurements([f"read-noise={tmp_path / 'reads.csv'}"])
    assert all(math.isfinite(v) for v in result.params["read_noise_sigma_us"])
    (tmp_path / "back.csv").write_text("device,t_ms,g_us\n" + "\n".join(
        f"{d},{t},1.0" for d in range(12) for t in ((100, 50) if d == 3 else (100, 200))) + "\n")
    with pytest.raises(measurements.CSVFormatError, match=r"back\.csv:9: device '3': time not increasing "
                       r"\(0\.05 s after 0\.1 s on line 8\)"):
        measurements.read_time_series_csv(tmp_path / "back.csv", "drift")
    with pytest.raises(fit.FitError, match=r"reads\.csv: measurement kind 'drfit' is unknown; expected one of"):
        fit.fit_measurements({"drfit": str(tmp_path / "reads.csv")})
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.report").write_text("in the way")  # the report's figure folder cannot be made
    assert device_cmd.main(["fit", f"read-noise={tmp_path / 'reads.csv'}", "--out", str(out / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pcmsim: error: ")
    assert not (out / "m.json").exists()
