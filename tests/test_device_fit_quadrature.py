"""``pcmsim device fit``'s integral over each device's factor (issue 23): the adaptive Gauss-Hermite
rule against a brute-force integral written here (a trapezoid rule on 1,601 points of ``z``), on
``exp-sat`` (a factor on the mean step, one clip) and on ``clip-dev`` (a factor, a clip per device,
the multiplicative law). Each device's steps fix its factor to a few hundredths: 9 fixed nodes miss
that integral by 6.5 log-units per 100 devices on ``exp-sat`` (2 cycles × 30 pulses), which biased
the fitted factor low (0.136 against 0.150 at 300 devices with the read noise fitted jointly; 0.157
with this rule and a read-noise file)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from device_fit_generators import CLIP_DEV, EXP_SAT

from device_models.fit_filter import PulseLikelihood, _Layout
from device_models.measurements import read_pulse_csv

GRID = torch.linspace(-8.0, 8.0, 1601, dtype=torch.float64)


def brute_force_loglik(lik: PulseLikelihood, x: torch.Tensor, lay: _Layout) -> float:
    """Σ over devices of log ∫ L_d(z) φ(z) dz, the trapezoid rule on :data:`GRID` (no adaptation)."""
    z_fixed = lik.z  # (the likelihood's fixed nodes swapped for the grid)
    lik.z = GRID
    try:
        per_dev = lik._per_device(lik._unpack(x, lay), lay)
    finally:
        lik.z = z_fixed
    dz = float(GRID[1] - GRID[0])
    w = torch.full_like(GRID, dz)
    w[0] = w[-1] = dz / 2
    log_w = torch.log(w) - 0.5 * GRID * GRID - 0.5 * math.log(2 * math.pi)
    return float(torch.logsumexp(per_dev + log_w, dim=1).sum())


def fixed_rule_loglik(lik: PulseLikelihood, x: torch.Tensor, lay: _Layout) -> float:
    """The same integral by the 9 fixed nodes alone (the fit's rule before it adapted them)."""
    per_dev = lik._per_device(lik._unpack(x, lay), lay)
    return float(torch.logsumexp(per_dev + lik.log_w, dim=1).sum())


CASES = {
    # (generator, devices, pulses, layout, the parameters after the tables)
    "exp-sat": (EXP_SAT, 80, 30, _Layout(8, True, True, False, True, "additive"), [30.0, 0.1, 0.02, 0.15]),
    "clip-dev": (CLIP_DEV, 60, 20, _Layout(8, True, True, False, True, "multiplicative", clip_d2d=True),
                 [0.3, 12.0, 0.1, 0.02, 0.158, 0.08]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_adapted_rule_matches_a_brute_force_integral(name, tmp_path):
    gen, n_dev, n_pulses, lay, rest = CASES[name]
    lik = PulseLikelihood(read_pulse_csv(gen.write_pulses(tmp_path / "p.csv", n_dev, n_pulses, 2, seed=3)),
                          n_knots=lay.k, floor_us=None, cap_us=None, noise_table=None)
    g = torch.as_tensor(lik.start + lik.step * np.arange(lay.k))
    s_tab = gen.c2c_std(g) if lay.n_s == lay.k else torch.tensor([0.08], dtype=torch.float64)
    x = torch.cat([gen.mean_step(g), s_tab, torch.tensor(rest, dtype=torch.float64)])
    assert x.numel() == len(lay.names())
    want = brute_force_loglik(lik, x, lay)
    got = -float(lik.nll(x, lay) - lik.penalty(x.numpy(), lay)) * lik.n_reads
    fixed = fixed_rule_loglik(lik, x, lay)
    print(f"{name}: brute force {want:.4f}, adapted {got:.4f}, 9 fixed nodes {fixed:.4f}")
    tol = 0.0005 * n_dev  # log-units (measured: 0.0000 on exp-sat, 0.0003 per device on clip-dev)
    assert abs(got - want) < tol
    assert abs(fixed - want) > 4.0 * tol  # (measured: 0.065 and 0.0025 per device)
