"""``pcmsim device fit``'s clip per device (issue 23): its integral over each device's clip against a
brute-force integral written here, the likeliest spread of the clips against the file's own, its
nesting of the one-clip likelihood, and a fit of ``clip-dev`` (a foreign generator whose devices each
stop at their own clip, ``12 µS·(1 + 0.08·z)``; steps that never vanish; a gamma device factor; read
noise 2 % of G + 0.1 µS on every read, and ten times as precise).

Sizes: the brute-force integral reads 60 devices × 2 RESET cycles, at 4001 clips; the likeliest spread
300 devices × 2 × 20 pulses; the fit reads 150 devices × 2 × 12 pulses (a short train: the faster
devices reach their clips by its end, the slower ones not) with a read-noise file of the same devices
(20 reads each), so the clips' std is known to about 1/√(2·150) = 6 % of itself (the devices' clips
are the same in both cycles: 1/√150 = 8 % at worst); the comparisons simulate 20,000 devices of each.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from device_fit_generators import CLIP_DEV, curve_errors, curve_warnings, fit_on_one_thread, model_traces

from device_models.fit_filter import PulseLikelihood, _Layout
from device_models.measurements import read_pulse_csv

D = torch.float64
N_PULSES = 12
PRECISE = dataclasses.replace(CLIP_DEV, read_rel=0.002, read_add_us=0.01)


def _clip_dev_likelihood(gen, path, n_dev: int, n_pulses: int, seed: int) -> PulseLikelihood:  # noqa: ANN001
    return PulseLikelihood(read_pulse_csv(gen.write_pulses(path, n_dev, n_pulses, 2, seed=seed)), n_knots=8,
                           floor_us=None, cap_us=None, noise_table=None)


def _own_x(lik: PulseLikelihood, gen, rest: list[float]) -> torch.Tensor:  # noqa: ANN001
    """clip-dev's own laws on the knots (its mean step, S = 0.08 µS, κ = 0.3), G_max, its read noise, then ``rest``."""
    g = torch.as_tensor(lik.start + lik.step * np.arange(lik.k))
    return torch.cat([CLIP_DEV.mean_step(g), torch.tensor([0.08, 0.3, 12.0, gen.read_add_us, gen.read_rel, *rest],
                                                          dtype=D)])


@pytest.mark.parametrize("gen", [CLIP_DEV, PRECISE], ids=["reads-2%", "reads-0.2%"])
@pytest.mark.parametrize("n_pulses", [6, 10, 20])
def test_clip_integral_matches_a_brute_force_integral(tmp_path, gen, n_pulses):
    """Each device's likelihood with its clip integrated out (the rule placed on its likelihood) against a
    brute-force integral written here: the one-clip filter at 4001 clips over ±8 prior stds, the
    trapezoid rule, at clip-dev's own constants (spread 0.08). Trains of 6, 10 and 20 pulses: devices
    short of their clips (a one-sided posterior, the prior cut below the reads), just at them (peaked
    and one-sided) and sitting at them (peaked, 30× narrower than the prior on the precise reads).
    Measured: at most 0.055 log-units off for a device, 0.0045 on average (the two-state filter this
    replaced: 8.7 and 0.81 at 20 pulses)."""
    n_dev = 60
    lik = _clip_dev_likelihood(gen, tmp_path / "b.csv", n_dev, n_pulses, seed=3)
    lay = _Layout(8, True, True, False, False, "multiplicative", clip_d2d=True)
    x = _own_x(lik, gen, [0.08])
    t = lik._unpack(x, lay)
    sd = 0.08 * 12.0
    grid = torch.linspace(12.0 - 8 * sd, 12.0 + 8 * sd, 4001, dtype=D)
    per_cycle = lik._filter(dataclasses.replace(t, cap=grid[None, :], factor=torch.ones(1, 1, dtype=D)), lay)
    per_dev = torch.zeros(n_dev, grid.numel(), dtype=D).index_add(0, lik.cycle_dev, per_cycle)
    h = float(grid[1] - grid[0])
    w = torch.full_like(grid, h)
    w[0] = w[-1] = h / 2
    log_prior = torch.log(w) - 0.5 * ((grid - 12.0) / sd) ** 2 - math.log(sd * math.sqrt(2.0 * math.pi))
    want = torch.logsumexp(per_dev + log_prior, dim=1)
    with torch.no_grad():
        got = lik._per_device(t, lay, lik.clip_nodes(x, lay))[:, 0]
    err = (got - want).abs()
    print(f"{n_pulses} pulses, reads {gen.read_rel}: mean {float(err.mean()):.2e}, largest {float(err.max()):.2e}")
    assert float(err.mean()) < 0.01 and float(err.max()) < 0.1


@pytest.mark.parametrize("gen", [CLIP_DEV, PRECISE], ids=["reads-2%", "reads-0.2%"])
def test_the_likeliest_spread_is_the_files_own(tmp_path, gen):
    """With every other constant at clip-dev's own (G_max at the mean of the file's own clips, the device
    factor's std), the likelihood over the clips' spread peaks at the std of the file's own 300 clips
    (each device's clip is read ~15 times at its plateau, so the file knows them to ~1 % of the spread)
    to within 4 %; on reads 10× as precise too. Measured: 0.8 % and 0.1 % above. The two-state filter
    this replaced put it 11 % and 40 % above (``bench/device_fit_clip_bias.py`` at 1500 devices)."""
    n_dev = 300
    lik = _clip_dev_likelihood(gen, tmp_path / "s.csv", n_dev, 20, seed=5)
    clips = CLIP_DEV.clips(n_dev, 5)
    own = float(clips.std() / clips.mean())
    lay = _Layout(8, True, True, False, True, "multiplicative", clip_d2d=True)
    x = _own_x(lik, gen, [CLIP_DEV.d2d_rel_std(), own])
    x[lay.index("g_max_us")] = float(clips.mean())
    i = lay.index("g_max_rel_std")
    spreads = own * np.array([0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15])
    lls = []
    with lik.frozen_nodes(x, lay), torch.no_grad():
        for sp in spreads:
            x[i] = float(sp)
            lls.append(-float(lik.nll(x, lay)))
    j = int(np.argmax(lls))
    assert 0 < j < len(spreads) - 1, lls
    a, b, _ = np.polyfit(spreads[j - 1:j + 2], lls[j - 1:j + 2], 2)
    best = -b / (2 * a)
    print(f"reads {gen.read_rel}: the likeliest spread {best:.4f}, the file's own {own:.4f}")
    assert best == pytest.approx(own, rel=0.04)


@pytest.fixture(scope="module")
def clip_dev(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip-dev")
    files = {"pulse": CLIP_DEV.write_pulses(d / "p.csv", 150, N_PULSES, 2, seed=1),
             "read-noise": CLIP_DEV.write_reads(d / "r.csv", 150, 20, seed=3)}
    out = fit_on_one_thread(files)
    out.files = files
    return out


def test_a_clip_per_device_nests_one_clip(clip_dev):
    """At g_max_rel_std = 0 the clip per device gives the one-clip likelihood for every layout, to 10⁻³
    log-units per device (the rule's error on the prior's own density, whose nodes then span ±7 stds of
    10⁻⁶·G_max): the likelihood-ratio test of the clip per device compares nested models."""
    lik = PulseLikelihood(read_pulse_csv(clip_dev.files["pulse"]), n_knots=6, floor_us=None, cap_us=None,
                          noise_table=None)
    for hist in (False, True):
        for d2d in (False, True):
            lay = _Layout(6, True, True, hist, d2d, "combined")
            x = np.r_[np.linspace(1.5, 0.2, 6), np.full(6, 0.3), [0.2, 11.5, 0.1, 0.02],
                      [0.2, 0.1, 1.0] if hist else [], [0.1] if d2d else []]
            a = lik.loglik(x, lay)
            b = lik.loglik(np.r_[x, 0.0], dataclasses.replace(lay, clip_d2d=True))
            print(f"history {hist}, factor {d2d}: {abs(a - b) / lik.data.n_devices:.1e} log-units per device")
            assert abs(a - b) < 1e-3 * lik.data.n_devices, (a, b)


def test_clip_dev_clip_per_device_is_fitted(clip_dev):
    """clip-dev on a short train (12 pulses) with a read-noise file: the clip per device kept, its
    level within 2 % of 12 µS and its spread within 25 % of 0.08 (4 standard errors at this size);
    the device factor within 15 % of the generator's 0.158; no history term; the generator's own
    laws back where the data are (1–10 µS): the mean step within 8 % (measured 4.6 %, at 10 µS), the
    cycle-to-cycle std within 8 % (measured 2.2 %); no goodness-of-fit warning; and the fitted model
    against the generator through the measured protocol and a train twice as long: mean within 5 %,
    spread within 5 % through the measured protocol (measured 1.3 %) and 10 % through the longer
    train, where every device sits at its clip and the spread is the clips' (measured 3.5 %: the
    clips' std, 0.077, is known to about 6 % at this size; with the two-state filter this replaced,
    7.2 % and 13.0 %, the clips' std 0.069). The full-size targets of 2 % and 5 % are the bench's
    (``bench/device_fit.py --generators clip-dev``). Before the clip was screened
    at several end levels and the history's decay bounded by the train
    (``fit_pulse.CLIP_D2D_LEVELS``, ``HISTORY_SPAN``), this file fitted no clip per device (G_max
    9.4 µS), a history term of a = 33 pulses and a mean step 48–115 % off (below 0 from 10 µS).
    (Without the read-noise file, with the read noise fitted jointly, that fit found the clips.)"""
    p, q = clip_dev.result.params, clip_dev.result.quality["pulse_response"]
    print(f"clip-dev: G_max {p['g_max_us']:.3f}, clip std {p['g_max_rel_std']:.4f} "
          f"(LR {q['clip_d2d_lr_statistic']:.0f}),"
          f" factor {p['d2d_rel_std']:.4f}, history kept {q['history_kept']}")
    assert q["clip_d2d_kept"] and q["saturation"] == "clip (fitted)"
    assert p["g_max_us"] == pytest.approx(12.0, rel=0.02)
    assert p["g_max_rel_std"] == pytest.approx(0.08, rel=0.25)
    assert p["d2d_rel_std"] == pytest.approx(CLIP_DEV.d2d_rel_std(), rel=0.15)
    assert not q["history_kept"]
    g = torch.linspace(1.0, 10.0, 7)
    m, s = clip_dev.model.increment_stats(g)
    m_err = float(((m.double() - CLIP_DEV.mean_step(g.double())).abs() / CLIP_DEV.mean_step(g.double())).max())
    s_err = float(((s.double() - CLIP_DEV.c2c_std(g.double())).abs() / CLIP_DEV.c2c_std(g.double())).max())
    print(f"clip-dev laws: mean step {m_err:.2%}, cycle-to-cycle {s_err:.2%} off the generator's")
    assert m_err <= 0.08 and s_err <= 0.08
    assert not curve_warnings(clip_dev.result)
    for n_p, spread_tol in ((N_PULSES, 0.05), (2 * N_PULSES, 0.10)):
        a, _ = CLIP_DEV.traces(20_000, n_p, 1, seed=7)
        b = model_traces(clip_dev.model, 20_000, n_p, seed=8)
        mean_err, std_err = curve_errors(a, b)
        print(f"clip-dev, {n_p} pulses: mean {mean_err:.2%}, spread {std_err:.2%}")
        assert mean_err <= 0.05 and std_err <= spread_tol
