"""The mean step above the top knot (issue 23). The fit's tables end at the 99.5 % quantile of the reads
before a pulse; above it the mean step is held at the top knot's value or the top segment is continued
(``dg_mean_above``). Where the devices scatter about a saturation inside the data, the generator's steps
keep restoring above the top knot, and a held step let `mixed-sat`'s devices drift too far on a train
twice as long (bench/device_fit.py: spread 10.3 % off held, 2.0 % continued). These tests check the
filter's continuation against the table worked out by hand, and the model's against the filter's (the
fit's likelihood and the simulation must take the same law there); ``test_device_fit_foreign.py``
checks the fit's choice on a file whose top segment is not restoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from device_fit_generators import MIXED_SAT

from device_models.empirical import EmpiricalDevice, EmpiricalParams
from device_models.fit_filter import PulseLikelihood, _Layout
from device_models.measurements import read_pulse_csv

K = 5
M_TAB = [1.2, 0.8, 0.3, -0.1, -0.4]  # µS: the top segment restores, slope −0.3 µS per knot spacing
S_TAB = [0.1, 0.15, 0.2, 0.25, 0.3]


@pytest.fixture(scope="module")
def lik(tmp_path_factory) -> PulseLikelihood:
    """A likelihood on a small ``mixed-sat`` file (not a pcmsim model): only its knots are used."""
    path = MIXED_SAT.write_pulses(tmp_path_factory.mktemp("tail") / "p.csv", 20, 8, 1, seed=3)
    return PulseLikelihood(read_pulse_csv(path), n_knots=K, floor_us=None, cap_us=None, noise_table=None)


def _predict(lik: PulseLikelihood, tail: str, g: torch.Tensor, p_var: float) -> tuple[torch.Tensor, ...]:
    lay = _Layout(K, True, False, False, False, "additive", tail=tail)
    x = torch.tensor([*M_TAB, *S_TAB, 0.1, 0.02], dtype=torch.float64)
    mu, var, d_mu, _, _ = lik._predict(g, torch.full_like(g, p_var), 5, lik._unpack(x, lay), lay)
    return mu.reshape(-1), var.reshape(-1), d_mu.reshape(-1)


def test_filter_continues_the_top_segment_above_the_top_knot(lik):
    """Above the top knot ``G_t``: held, the step is ``M_t`` and its derivative in G 0; continued, it is
    ``M_t + (M_t − M_{t−1})/Δ·(G − G_t)`` and the derivative that slope; the std is ``S_t`` either way, so
    the predicted variance is ``(1 + slope)²·P + S_t²``. Below the top knot the two are the same."""
    top = lik.start + (K - 1) * lik.step
    slope = (M_TAB[-1] - M_TAB[-2]) / lik.step
    g = torch.tensor([top + 0.3 * lik.step, top + 2.0 * lik.step, top + 5.0 * lik.step], dtype=torch.float64)
    p_var = 0.04
    mu_h, var_h, d_h = _predict(lik, "hold", g, p_var)
    mu_l, var_l, d_l = _predict(lik, "linear", g, p_var)
    torch.testing.assert_close(mu_h - g, torch.full_like(g, M_TAB[-1]))
    torch.testing.assert_close(d_h, torch.ones_like(g))
    torch.testing.assert_close(mu_l - g, M_TAB[-1] + slope * (g - top))
    torch.testing.assert_close(d_l, torch.full_like(g, 1.0 + slope))
    torch.testing.assert_close(var_l, (1.0 + slope) ** 2 * p_var + torch.full_like(g, S_TAB[-1] ** 2))
    torch.testing.assert_close(var_h, p_var + torch.full_like(g, S_TAB[-1] ** 2))
    inside = torch.linspace(lik.start + 0.1 * lik.step, top - 0.1 * lik.step, 9, dtype=torch.float64)
    for a, b in zip(_predict(lik, "hold", inside, p_var), _predict(lik, "linear", inside, p_var)):
        torch.testing.assert_close(a, b, rtol=0.0, atol=0.0)


@pytest.mark.parametrize("tail", ["hold", "linear"])
def test_the_model_steps_as_the_fit_filtered(lik, tail):
    """The model a fit writes (``dg_mean_above``) takes the same mean step and std as the filter that
    fitted it, inside the tables and above them."""
    top = lik.start + (K - 1) * lik.step
    g = torch.linspace(lik.start + 0.05, top + 4.0 * lik.step, 40, dtype=torch.float64)
    mu, var, _ = _predict(lik, tail, g, 0.0)
    model = EmpiricalDevice(EmpiricalParams(grid_start_us=lik.start, grid_step_us=lik.step, dg_mean_us=tuple(M_TAB),
                                            dg_std_us=tuple(S_TAB), g_max_us=top, set_max_us=3.0 * top,
                                            dg_mean_above=tail))
    m, s = model.increment_stats(g.float())
    np.testing.assert_allclose(m.double().numpy(), (mu - g).numpy(), atol=2e-6)
    np.testing.assert_allclose(s.double().numpy(), var.sqrt().numpy(), atol=2e-6)
