"""``pcmsim device fit``'s log-normal multiplicative step (issue 23: ``power-sat``'s steps are a device's
mean step times a log-normal factor; filtered as normal steps, their skew kept a pulse-history term and
put κ 23 % high at 1500 devices: 0.444 against 0.361). The filter cuts the factor's normal variable
into pieces, the factor linear in it within each: its density of the read after one step against a
density integrated here over the factor (a trapezoid rule on 4,001 points of its normal variable),
where the normal step of the same mean and variance is far off."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from device_models.fit_filter import PulseLikelihood, _Layout
from device_models.measurements import read_pulse_csv


def exact_log_density(y1: torch.Tensor, m0: torch.Tensor, p0: float, m_us: float, kappa: float, s_us: float,
                      r_us: float) -> torch.Tensor:
    """log p(y1) for ``x0 ~ N(m0, p0)``, ``x1 = x0 + M·L + S·ξ``, ``y1 = x1 + R·ε``, ``L = exp(σ·η − σ²/2)``
    with ``σ² = log(1 + κ²)``: the integral over ``η`` by the trapezoid rule (written here)."""
    sig = math.sqrt(math.log1p(kappa ** 2))
    eta = torch.linspace(-10.0, 10.0, 4001, dtype=torch.float64)
    lam = torch.exp(sig * eta - 0.5 * sig * sig)
    var = p0 + s_us ** 2 + r_us ** 2
    d = y1[:, None] - (m0[:, None] + m_us * lam[None, :])
    log_f = -0.5 * d * d / var - 0.5 * math.log(2 * math.pi * var) - 0.5 * eta ** 2 - 0.5 * math.log(2 * math.pi)
    h = float(eta[1] - eta[0])
    w = torch.full_like(eta, h)
    w[0] = w[-1] = h / 2
    return torch.logsumexp(log_f + torch.log(w), dim=1)


@pytest.mark.parametrize(("m_us", "kappa", "s_us", "r_us", "kl_max", "kl_normal_min"), [
    # power-sat's first steps: mean step 1.3 µS, κ 0.36, read σ 3 % of 2 µS + 0.1 µS (measured: a Kullback-Leibler
    # divergence of 0.0027 per read, 0.050 for the normal step)
    (1.3, 0.36, 0.0, 0.16, 0.006, 0.04),
    # a wide step over a small read noise, where the pieces show (measured 0.0128 against 0.176)
    (1.0, 0.6, 0.05, 0.1, 0.02, 0.15),
])
def test_the_pieces_give_the_log_normal_steps_density(tmp_path: Path, m_us: float, kappa: float, s_us: float,
                                                      r_us: float, kl_max: float, kl_normal_min: float) -> None:
    # one pulse per cycle: RESET reads alternating 0.8 / 1.4 µS, then a read after the pulse on a grid
    sd = math.sqrt((kappa * m_us) ** 2 + s_us ** 2 + r_us ** 2)
    noise = math.hypot(s_us, r_us)  # (the step itself is > 0)
    y1 = torch.linspace(1.1 - 6 * noise, 1.1 + m_us + 8 * sd, 241, dtype=torch.float64)
    y0 = torch.tensor([0.8, 1.4], dtype=torch.float64).repeat(y1.numel() // 2 + 1)[: y1.numel()]
    rows = ["device,pulse,g_us"] + [f"{i},{k},{v:.10g}" for i, (a, b) in enumerate(zip(y0.tolist(), y1.tolist()))
                                    for k, v in ((0, a), (1, b))]
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    lik = PulseLikelihood(read_pulse_csv(tmp_path / "p.csv"), n_knots=2, floor_us=None, cap_us=None, noise_table=None)
    x = torch.tensor([m_us, m_us, s_us, kappa, r_us, 0.0], dtype=torch.float64)
    got = {}
    for shape in ("lognormal", "normal"):
        lay = _Layout(2, True, False, False, False, "multiplicative", c2c_shape=shape)
        assert lay.names() == ["M[0]", "M[1]", "S[0]", "c2c_rel_std", "read_noise_b_us", "read_noise_c"]
        got[shape] = lik._per_device(lik._unpack(x, lay), lay)[:, 0]
    # the RESET read's posterior: the fit's normal prior over the pulse-0 reads, then a Kalman step
    v_r = float(y0.var()) - r_us ** 2
    m_post = float(y0.mean()) + v_r / (v_r + r_us ** 2) * (y0 - float(y0.mean()))
    p_post = v_r * r_us ** 2 / (v_r + r_us ** 2)
    exact = exact_log_density(y1, m_post, p_post, m_us, kappa, s_us, r_us)
    h = float(y1[1] - y1[0])
    prob = torch.exp(exact) * h
    assert abs(float(prob.sum()) - 1.0) < 0.01  # the grid holds the read's distribution
    kl = {shape: float((prob * (exact - got[shape])).sum()) for shape in got}  # Kullback-Leibler, per read
    print(f"Kullback-Leibler divergence per read: {kl}")  # (pytest -s shows the measured values)
    assert kl["lognormal"] < kl_max, kl
    assert kl["normal"] > kl_normal_min, kl
    assert abs(float((torch.exp(got["lognormal"]) * h).sum()) - 1.0) < 0.01
