"""Where the pulse-response fit's optimiser stops (issue 23). scipy's L-BFGS-B ends "ABNORMAL" when its
line search cannot lower f. The filter's step is linearised with the slope of the mean-step table's
segment, which jumps where a filtered mean crosses a knot, so f has small steps, and a search can stop on
one with a gradient of 10⁻³ per read (a 150-device pcm-nandakumar2018 file did, and the command refused
it: ``test_device_fit_failures.py``'s ``refitted`` is that file). From such a stop the fit takes a Newton
step on the observed information: a step that gains nothing makes the stop an optimum at the precision
of f, a step that gains is taken and the search run again from there, and a stop from which no step helps
is a run that has not converged (the command refuses it).

The stops are made here: the real search runs once to its optimum, then a stand-in for the search
returns "ABNORMAL" at a point chosen by the test, with a gradient chosen by the test."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from device_fit_generators import EXP_SAT

from device_models import fit_checks
from device_models import fit_pulse as fp
from device_models.fit_filter import READ_FLOOR_US, STD_FLOOR_US, PulseLikelihood, _Layout
from device_models.measurements import read_pulse_csv

K = 6
LAY = _Layout(K, True, True, False, False, "additive")  # M, S, G_max and the read noise, fitted jointly
B = LAY.index("g_max_us")  # an interior parameter of this file (19.1 µS in 10.8–24.1)


@pytest.fixture(scope="module")
def optimum(tmp_path_factory) -> tuple[PulseLikelihood, list, dict]:
    """``exp-sat`` (not a pcmsim model), 40 devices × 2 cycles × 12 pulses: its likelihood, the bounds of
    the fit's base stage and that stage's converged run from the generator's own tables."""
    path = EXP_SAT.write_pulses(tmp_path_factory.mktemp("stops") / "p.csv", 40, 12, 2, seed=5)
    lik = PulseLikelihood(read_pulse_csv(path), n_knots=K, floor_us=None, cap_us=None, noise_table=None)
    g = torch.as_tensor(lik.start + lik.step * np.arange(K))
    reads = lik.data.traces[~np.isnan(lik.data.traces)]
    x0 = np.r_[EXP_SAT.mean_step(g).numpy(), EXP_SAT.c2c_std(g).numpy(), reads.max(), 0.1, 0.02]
    bounds = ([(None, None)] * K + [(STD_FLOOR_US, None)] * K + [(float(np.median(reads)), reads.max() + 5.0)]
              + [(READ_FLOOR_US, None), (0.0, 1.0)])
    run = fp._minimize(lik, LAY, x0, bounds, "base")
    assert run["converged"], run["message"]
    return lik, bounds, run


def _stop_at(monkeypatch, x: np.ndarray, jac_shift: np.ndarray | None = None) -> None:
    """The first search ends "ABNORMAL" at ``x``, its gradient there the true one plus ``jac_shift`` (a
    one-sided gradient at a step of f); the searches after it are real."""
    real, calls = fp._lbfgs, []

    def stand_in(lik, lay, x0, bounds):  # noqa: ANN001, ANN202
        if calls:
            return real(lik, lay, x0, bounds)
        calls.append(x0)
        val, g = fp._nll_and_grad(lik, lay, x)
        if jac_shift is not None:
            g = g + jac_shift
        res = SimpleNamespace(x=x.copy(), fun=val, jac=g, success=False, nit=3,
                              message="ABNORMAL_TERMINATION_IN_LNSRCH")
        return res, 3, 1, None

    monkeypatch.setattr(fp, "_lbfgs", stand_in)


def test_a_stop_at_the_optimum_with_a_one_sided_gradient_is_an_optimum(optimum, monkeypatch):
    lik, bounds, run = optimum
    shift = np.zeros_like(run["x"])
    shift[2] = 0.02  # 20 times ABNORMAL_GRADIENT: the old rule refused it
    _stop_at(monkeypatch, run["x"], shift)
    again = fp._minimize(lik, LAY, run["x"], bounds, "stopped at the optimum")
    assert again["converged"], again["message"]
    assert "projected gradient 0.02" in again["message"] and "an optimum at the precision of f" in again["message"]
    assert "run again" not in again["message"]
    assert again["loglik"] == pytest.approx(run["loglik"], abs=1e-9)  # the stop itself is kept


def test_a_stop_short_of_the_optimum_runs_again_from_a_newton_step(optimum, monkeypatch):
    lik, bounds, run = optimum
    short = run["x"].copy()
    short[:K] *= 1.05  # the mean-step table 5 % off
    assert run["loglik"] - lik.loglik(short, LAY) > 1.0
    _stop_at(monkeypatch, short)
    again = fp._minimize(lik, LAY, run["x"], bounds, "stopped short")
    assert again["converged"], again["message"]
    assert "a Newton step gains" in again["message"] and "run again from there" in again["message"]
    assert again["loglik"] == pytest.approx(run["loglik"], abs=0.05)


def test_a_stop_no_step_helps_is_refused(optimum, monkeypatch):
    lik, bounds, run = optimum
    short = run["x"].copy()
    short[:K] *= 1.05
    monkeypatch.setattr(fp, "ABNORMAL_KICKS", 0)  # no search again: the step still gains
    _stop_at(monkeypatch, short)
    again = fp._minimize(lik, LAY, run["x"], bounds, "stopped short")
    assert not again["converged"] and "still gains" in again["message"], again["message"]
    with pytest.raises(fit_checks.FitError, match=r"^p\.csv: pulse-response fit \(stopped short\) did not converge"):
        fit_checks.check_pulse("p.csv", {"g_max_us": 20.0, "dg_mean_us": (0.1,)}, {"optimizer_runs": [again]})


def test_a_stop_along_a_direction_without_curvature_is_refused(optimum, monkeypatch):
    """A large gradient where the information is not positive (a kink of f, not a step) gives no
    Newton step: not converged."""
    lik, bounds, run = optimum
    real = fp._information

    def flat(lik_, lay, x, b, placed=None):  # noqa: ANN001, ANN202 - G_max's curvature taken away, its gradient large
        idx, g, hess = real(lik_, lay, x, b, placed)
        j = int(np.nonzero(idx == B)[0][0])
        hess[j, :] = hess[:, j] = 0.0
        g = g.copy()
        g[j] = 5.0 * fp.ABNORMAL_GRADIENT * lik_.n_reads
        return idx, g, hess

    monkeypatch.setattr(fp, "_information", flat)
    shift = np.zeros_like(run["x"])
    shift[B] = 0.02
    _stop_at(monkeypatch, run["x"], shift)
    again = fp._minimize(lik, LAY, run["x"], bounds, "stopped on a kink")
    assert not again["converged"] and "no Newton step" in again["message"], again["message"]

