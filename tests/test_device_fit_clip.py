"""``pcmsim device fit``'s clip per device (issue 23): the two-state filter's read update against a
Monte Carlo written here, its nesting of the one-clip likelihood, and a fit of ``clip-dev`` (a foreign
generator whose devices each stop at their own clip, ``12 µS·(1 + 0.08·z)``; steps that never vanish;
a gamma device factor; read noise 2 % of G + 0.1 µS on every read).

Sizes: the Monte Carlo draws 4,000,000 pairs per case (the relative standard error of the density is
below 0.1 %, of the posterior moments below 0.5 %); the fit reads 150 devices × 2 RESET cycles × 12
pulses (a short train: the faster devices reach their clips by its end, the slower ones not) with a
read-noise file of the same devices (20 reads each), so the
clips' std is known to about 1/√(2·150) = 6 % of itself (the devices' clips are the same in both
cycles: 1/√150 = 8 % at worst); the comparisons simulate 20,000 devices of each.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from device_fit_generators import CLIP_DEV, curve_errors, curve_warnings, fit_on_one_thread, model_traces

from device_models.fit_filter import PulseLikelihood, _Layout, _update, _update_clip
from device_models.measurements import read_pulse_csv

D = torch.float64
N_PULSES = 12
MC_CASES = [  # (mean X, var X, mean C, var C, cov(X, C), read, read-noise variance, floor)
    (11.5, 0.4, 12.0, 0.5, 0.1, 11.9, 0.09, None),   # the read between: either branch
    (12.5, 0.3, 12.0, 0.8, 0.2, 12.4, 0.04, None),   # mostly clipped
    (10.0, 0.5, 12.0, 0.6, 0.0, 10.3, 0.1, None),    # far below the clip
    (12.0, 0.05, 12.1, 0.01, 0.02, 12.05, 0.02, None),  # at a clip known well, correlated
    (0.1, 0.05, 12.0, 0.5, 0.02, 0.03, 0.01, 0.0),   # at a floor at 0, a read at 0.03
    (0.3, 0.1, 1.0, 0.3, 0.05, 0.5, 0.02, 0.0),      # floor and clip both within reach
]


@pytest.mark.parametrize("case", MC_CASES)
def test_clip_update_matches_monte_carlo(case):
    """The read density and the posterior moments of (G = min(X, C), C) against 4,000,000 draws of the
    pair and the read noise, weighted by the read's likelihood (an independent computation)."""
    mu, var, mc, pc, rho, y, r2, lo = case
    gen = torch.Generator().manual_seed(1)
    chol = torch.linalg.cholesky(torch.tensor([[var, rho], [rho, pc]], dtype=D))
    z = torch.randn(4_000_000, 2, generator=gen, dtype=D) @ chol.T + torch.tensor([mu, mc], dtype=D)
    g, c = torch.minimum(z[:, 0], z[:, 1]), z[:, 1]
    if lo is not None:
        g = g.clamp(min=lo)
    w = torch.exp(-0.5 * (y - g) ** 2 / r2) / math.sqrt(2.0 * math.pi * r2)
    dens, rel_se = float(w.mean()), float(w.std() / w.mean()) / 2000.0
    wn = w / w.sum()
    m_g, m_c = float((wn * g).sum()), float((wn * c).sum())
    want = [m_g, float((wn * (g - m_g) ** 2).sum()), m_c, float((wn * (c - m_c) ** 2).sum()),
            float((wn * (g - m_g) * (c - m_c)).sum())]
    t = [torch.tensor([v], dtype=D) for v in (mu, var, rho, mc, pc, y, r2)]
    ll, *got = (float(v) for v in _update_clip(*t, lo))
    assert abs(ll - math.log(dens)) < 5.0 * rel_se, (ll, math.log(dens), rel_se)
    scale = math.sqrt(max(want[1], want[3]))  # moments to 1 % of the posterior's spread
    for name, a, b in zip(("E[G]", "Var G", "E[C]", "Var C", "Cov"), got, want):
        tol = 0.01 * scale * (1.0 if name.startswith("E") else 2.0 * scale)
        assert abs(a - b) < tol, (name, a, b, tol)


@pytest.mark.parametrize("lo", [None, 0.0])
def test_clip_update_without_spread_is_the_one_clip_update(lo):
    """With no spread of the clip (var C = cov = 0) the two-state read update is the one-clip one, with
    or without a floor (here far from the clip)."""
    mu = torch.tensor([10.0, 11.5, 12.3, 13.0, 0.05, -0.2], dtype=D)
    var = torch.tensor([0.5, 0.3, 0.4, 0.2, 0.05, 0.1], dtype=D)
    y = torch.tensor([10.2, 12.0, 12.1, 11.8, 0.0, 0.0], dtype=D)
    r2, cap, zero = torch.full((6,), 0.09, dtype=D), torch.tensor(12.0, dtype=D), torch.zeros(6, dtype=D)
    ll1, m1, p1 = _update(mu, var, y, r2, lo, cap)
    ll2, m2, p2, mc2, pc2, _ = _update_clip(mu, var, zero, cap.expand(6), zero, y, r2, lo)
    for a, b in ((ll1, ll2), (m1, m2), (p1, p2)):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert torch.allclose(mc2, cap.expand(6), rtol=1e-14, atol=0.0) and torch.all(pc2 < 1e-12)


@pytest.fixture(scope="module")
def clip_dev(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip-dev")
    files = {"pulse": CLIP_DEV.write_pulses(d / "p.csv", 150, N_PULSES, 2, seed=1),
             "read-noise": CLIP_DEV.write_reads(d / "r.csv", 150, 20, seed=3)}
    out = fit_on_one_thread(files)
    out.files = files
    return out


def test_the_two_state_filter_nests_one_clip(clip_dev):
    """At g_max_rel_std = 0 the device-major two-state filter gives the one-clip likelihood (and its
    gradient) for every layout: the likelihood-ratio test of the clip per device compares nested models."""
    lik = PulseLikelihood(read_pulse_csv(clip_dev.files["pulse"]), n_knots=6, floor_us=None, cap_us=None,
                          noise_table=None)
    for hist in (False, True):
        for d2d in (False, True):
            lay = _Layout(6, True, True, hist, d2d, "combined")
            x = np.r_[np.linspace(1.5, 0.2, 6), np.full(6, 0.3), [0.2, 11.5, 0.1, 0.02],
                      [0.2, 0.1, 1.0] if hist else [], [0.1] if d2d else []]
            xa = torch.tensor(x, requires_grad=True)
            xb = torch.tensor(np.r_[x, 0.0], requires_grad=True)
            a, b = lik.nll(xa, lay), lik.nll(xb, dataclasses.replace(lay, clip_d2d=True))
            a.backward()
            b.backward()
            assert float(b.detach()) == pytest.approx(float(a.detach()), rel=1e-9)
            assert xa.grad is not None and xb.grad is not None
            assert torch.allclose(xb.grad[:-1], xa.grad, rtol=1e-6, atol=1e-7)


def test_clip_dev_clip_per_device_is_fitted(clip_dev):
    """clip-dev on a short train (12 pulses) with a read-noise file: the clip per device kept, its
    level within 2 % of 12 µS and its spread within 25 % of 0.08 (4 standard errors at this size);
    the device factor within 15 % of the generator's 0.158; no history term; the generator's own
    laws back where the data are (1–10 µS): the mean step within 8 % (measured 5.5 %, at 10 µS), the
    cycle-to-cycle std within 8 % (measured 2.1 %); no goodness-of-fit warning; and the fitted model
    against the generator through the measured protocol and a train twice as long: mean within 5 %,
    spread within 10 % through the measured protocol (measured 7.2 %) and 25 % through the longer
    train, where every device sits at its clip and the spread is the clips' (measured 13.0 %: the
    clips' std, 0.069, is known to the 25 % above at this size). The full-size targets of 2 % and
    5 % are the bench's (``bench/device_fit.py --generators clip-dev``). Before the clip was screened
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
    for n_p, spread_tol in ((N_PULSES, 0.10), (2 * N_PULSES, 0.25)):
        a, _ = CLIP_DEV.traces(20_000, n_p, 1, seed=7)
        b = model_traces(clip_dev.model, 20_000, n_p, seed=8)
        mean_err, std_err = curve_errors(a, b)
        print(f"clip-dev, {n_p} pulses: mean {mean_err:.2%}, spread {std_err:.2%}")
        assert mean_err <= 0.05 and std_err <= spread_tol
