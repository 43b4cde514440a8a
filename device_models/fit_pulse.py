"""The pulse-response fit of ``pcmsim device fit``: a state-space likelihood that keeps read noise
apart from programming noise.

Model (the ``empirical`` device, :class:`~device_models.empirical.EmpiricalDevice`). The latent
conductance of a cycle starts at RESET, ``x_0``, and each SET pulse moves it

    x_n = clip(x_{n−1} + f_d·(M(x_{n−1}) + A_μ·P_n) + (S(x_{n−1}) + A_σ·P_n)·ξ_n, floor, G_max),

``P_n = exp(−n/a)`` (the pulse-history state of Nandakumar et al. 2018, J. Appl. Phys. 124:152135),
``f_d`` the device's own factor of mean 1 and std ``s`` (one per device across its RESET cycles:
device to device; normal, ``1 + s·z_d``, or log-normal, ``exp(σ·z_d − σ²/2)`` with ``σ² = log(1 + s²)``,
``z_d ~ N(0, 1)``: the likelier of the two), ``ξ_n ~ N(0, 1)`` (cycle to cycle), ``M``, ``S`` piecewise linear on
``n_knots`` conductances. Every read, after the RESET and after each pulse, is

    y_n = x_n + σ_r(x_n)·ε_n,      ε_n ~ N(0, 1),

with ``σ_r`` the read noise: the table of the read-noise file when one is given, else
``b + c·G`` fitted here with the rest.

Likelihood. ``p(y_1 … y_N | y_0)`` per cycle by assumed-density filtering (Maybeck 1979,
"Stochastic Models, Estimation and Control", ch. 12; Minka 2001, "Expectation propagation", §3):
the filtered latent state is kept as a normal ``N(m, P)``; the prediction linearises ``M`` about
``m`` (an extended Kalman step); the clipped prediction is a normal with point masses at the floor
and at G_max, whose convolution with the read noise has a closed form (the observation density)
and whose posterior moments given ``y_n`` (point masses and a truncated normal) are matched to the
next ``N(m, P)``. Without read noise this is the censored-normal (Tobit) likelihood of the steps;
with it, a read's noise enters both the step before and the step after it, as it should, rather
than doubling the apparent programming noise. The device factor is integrated out per device by
adaptive Gauss-Hermite quadrature (Liu & Pierce 1994, Biometrika 81:624): the fixed
:data:`D2D_NODES` find where the device's likelihood lies, then :data:`D2D_ADAPTED_NODES` centred
and scaled there give the integral (a device with many informative steps pins its factor down more
tightly than fixed nodes resolve; they biased ``s`` low). All
parameters by maximum likelihood: scipy L-BFGS-B on torch autograd gradients, a weak penalty on
the second differences of ``M`` and ``S``.

Cycle-to-cycle law: the std of a step is ``S(G)`` (additive, a table), ``S + κ·|f_d·M(G)|``
(multiplicative, one constant and κ) or
``S(G) + κ·|f_d·M(G)|`` (combined, a table and κ: aihwkit's PCM preset has both parts), chosen by BIC:
additive against multiplicative on the base model, and, once a device factor or history terms are
kept, the chosen law against the combined one (and the combined against the other pure law) with
them in. Without a device factor the combined law adds nothing to a table (``κ·|M(G)|`` is a
function of G); with one, it tells whether a device's scatter scales with its own mean step. The
multiplicative part's shape: the step normal with that std, or ``f_d·M·L + S·ξ`` with ``L`` a
log-normal factor of mean 1 and std κ (right-skewed, as a log-normal scatter of the switched volume
would give), the likelier of the two (the same parameters) on the kept terms; where history terms are
kept and the log-normal step wins, they are tested again against it (skewed steps read as normal ones
kept a history term). Not with a clip per device, whose filter has normal steps. The filter takes a
log-normal step in :data:`~device_models.fit_filter.C2C_PIECES` pieces.

Identifiability. The base model (``M``, ``S``, G_max, read noise) is fitted first; the
device-to-device factor is kept where its likelihood-ratio statistic exceeds
:data:`D2D_LR_THRESHOLD`, and the cycle-to-cycle law chosen again with it in; the pulse-history terms
(``A_μ``, ``A_σ``, ``a``) are then kept only where their statistic exceeds
:data:`HISTORY_LR_THRESHOLD` and their decay ``a`` lies inside its search range (at most
:data:`HISTORY_SPAN` of the train: a slower decay is not told from ``M(G)``); else they are 0. With
history terms in, the factor is tested again, the law chosen again and, where it changes, the history
tested again against it. Before them,
a clip per device ``G_max·(1 + g_max_rel_std·z_c)`` (``z_c ~ N(0, 1)`` once per device, aihwkit's
``w_max_dtod``), tried where the reads suggest one (:func:`_clip_d2d_start`),
kept where its statistic exceeds :data:`D2D_LR_THRESHOLD`: each device's clip is then integrated out
of the one-clip filter run through all its RESET cycles, on a rule placed on that device's likelihood
(:meth:`~device_models.fit_filter.PulseLikelihood.clip_nodes`). G_max: the
clip level where the reads show one (they pile up there, noise-free or noisy); where the mean
step instead falls smoothly towards 0, the level where the mean step reaches 0 in the data, or
extrapolated linearly from the top of the data (the tables are extended up to it).

Assumptions a lab must meet: reads taken right after each pulse (no drift between pulse and read),
read noise independent from read to read (no 1/f correlation over the pulse train), each cycle
starting with a RESET read, steps normal given G or, the multiplicative part, log-normal (other
shapes are matched in mean and variance only).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from .fit_checks import G_MAX_LIMIT_US, FitError
from .fit_filter import (  # noqa: F401 - the constants are part of this module's interface
    D2D_ADAPTED_NODES,
    D2D_NODES,
    READ_FLOOR_US,
    SMOOTHING,
    STD_FLOOR_US,
    PulseLikelihood,
    _Layout,
    _Placed,
)
from .measurements import PulseData

D2D_LR_THRESHOLD = 9.0
"""Likelihood-ratio statistic above which the device-to-device factor is kept: 3 standard errors'
worth for one parameter (ours)."""
HISTORY_LR_THRESHOLD = 16.27
"""Likelihood-ratio statistic above which the pulse-history terms are kept: the χ² quantile at
0.999 for their 3 parameters (ours; conservative, since ``a`` is not identified without them)."""
HISTORY_SPAN, HISTORY_MIN_PULSES = 0.5, 0.2
"""The history's decay constant ``a`` is searched in [0.2, N/2] pulses for a train of N pulses (ours:
by the end of the train ``P`` has fallen to e⁻² = 14 % of its start; a slower decay along RESET-then-SET
is a function of G as much as of the pulse number, and took over the G-dependence of the mean step:
a clip-dev train of 12 pulses fitted a = 27 pulses and a mean step below 0 from 5 µS up; at N/3,
pcm-nandakumar2018's own a = 2.6 was out of reach on a 6-pulse train)."""
DECAY_LR_THRESHOLD = 9.0
"""Likelihood-ratio statistic of the history terms' fitted decay against the decay held at the bound of
its search range, below which the decay is not told from that bound and the terms are not kept (ours: 3
standard errors' worth for one parameter; along a short train the likelihood is flat in ``a``, and
where the optimum lands short of the bound depends on rounding: pcm-nandakumar2018 with a = 10 over a
10-pulse train fitted a = 5, the bound, on one CPU and a = 3.9 on another, 21.4 in both)."""
ABNORMAL_GRADIENT = 1e-3
"""Largest projected gradient of the per-read negative log-likelihood at which a line-search stop
(scipy's "ABNORMAL") is an optimum at the precision of f (ours; gtol is 1e-5)."""
ABNORMAL_GAIN, ABNORMAL_KICKS = 0.01, 2
"""A line-search stop whose projected gradient exceeds :data:`ABNORMAL_GRADIENT` is an optimum at the
precision of f where a Newton step from it (or half of it) gains at most this many log-units (the
tolerance of :data:`D2D_ADAPT_TOL`; no likelihood-ratio test here moves by it); where the step gains
more, the search is run again from there, at most this many times (ours). The filter's step is
linearised about the filtered mean with the slope of the tables' segment there, which jumps where that
mean crosses a knot, so the likelihood has small steps (0.08 log-units for one cycle of a 150-device
``pcm-nandakumar2018`` file, ``tests/test_device_fit_failures.py``) at which a line search stops with a
gradient of 10⁻³ per read."""
D2D_ADAPT_TOL, D2D_ADAPT_ROUNDS = 0.01, 4
"""The nodes of the device factor and of a clip per device are placed again at an optimum, and the fit
run again from there, until that moves the log-likelihood by less than this many log-units, at most
this many times (ours)."""
CLIP_LR_THRESHOLD = 9.0
"""Likelihood-ratio statistic above which a fitted clip of the SET result (G_max) is taken as seen in
the reads (ours: 3 standard errors' worth for one parameter)."""
TAIL_HOLD_LR = 9.0
"""Where the top segment of the mean step restores (both its knots below 0), it is continued above the top
knot unless holding the step there is likelier by a likelihood-ratio statistic above this (ours, as the
fit's other tests: the reads above the top knot are 0.5 % of a file and their likelihood seldom tells the
two apart; a choice by the larger likelihood alone went by 0.03 log-units on aihwkit's preset)."""
CLIP_D2D_LEVELS = (0.5, 0.75, 0.9)
"""Quantiles of the devices' end levels at which a clip per device is screened where the one-clip
fit shows none (ours: the median where the devices have reached their clips, higher ones where a
short train leaves the slower devices below theirs)."""
CLIP_D2D_START, CLIP_D2D_MAX = 0.05, 0.5
"""Start and upper bound of the device-to-device std of the clip (ours; the bound is the
``empirical`` model's)."""
CLIP_D2D_NEW = {"g_max_rel_std": (CLIP_D2D_START, (0.0, CLIP_D2D_MAX))}
"""The clips' spread added to a one-clip fit (:func:`_relayout`'s ``new``): its start and bounds."""
SE_STEP, SE_SCALE = 1e-4, 1e-2
"""Central differences of the gradient for the observed information: step ``SE_STEP·max(|x|,
SE_SCALE)`` per parameter (ours: the objective is smooth in float64 with the device factor's nodes
held; steps of 5·10⁻⁵ and 2·10⁻⁴ gave the same standard errors to 5 digits on a file of aihwkit's
PCM preset)."""
SE_ISOLATED = 0.9
"""A direction of non-positive information that lies this much (its eigenvector's largest component) on
one parameter is that parameter's alone: it is left out of the standard errors as not identified (ours:
a clip above every read, as ``power-sat``'s G_max, has no curvature of its own and none shared with the
other parameters; ``tests/test_device_fit_foreign.py::test_power_sat_multiplicative_law``)."""
TIE_MIN_COUNT = 5
"""Reads exactly equal to the extreme value, at least this many: the device clips there and the
reads are noise-free (continuous reads never tie; ours)."""

# ---- the fit --------------------------------------------------------------------------------------
def _ties(x: np.ndarray, value: float) -> np.ndarray:
    return np.abs(x - value) <= 1e-9 * max(1.0, abs(value))


def _nll_and_grad(lik: PulseLikelihood, lay: _Layout, xv: np.ndarray) -> tuple[float, np.ndarray]:
    """:meth:`PulseLikelihood.nll` at ``xv`` and its gradient (torch autograd)."""
    x = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
    loss = lik.nll(x, lay)
    loss.backward()
    assert x.grad is not None
    return float(loss.detach()), x.grad.numpy().copy()


def _bound_arrays(bounds: list) -> tuple[np.ndarray, np.ndarray]:
    """scipy's ``bounds`` (pairs, ``None`` for no bound) as arrays of lower and upper bounds (±inf)."""
    return (np.array([-np.inf if b[0] is None else b[0] for b in bounds], dtype=float),
            np.array([np.inf if b[1] is None else b[1] for b in bounds], dtype=float))


def _lbfgs(lik: PulseLikelihood, lay: _Layout, x0: np.ndarray, bounds: list) -> tuple[Any, int, int, float | None]:
    """scipy's L-BFGS-B on :meth:`PulseLikelihood.nll` from ``x0``: ``(its result, iterations, placements
    of the nodes (a device factor's, a clip per device's), the objective at the result with the nodes
    placed there or None)``."""
    import scipy.optimize  # noqa: PLC0415 - the fit needs scipy, the models do not

    def fun(xv: np.ndarray) -> tuple[float, np.ndarray]:
        val, g = _nll_and_grad(lik, lay, xv)
        if not np.all(np.isfinite(g)) or not math.isfinite(val):
            return 1e10, np.zeros_like(xv)
        return val, g

    iterations, rounds, fresh, info = 0, 0, None, None
    # with a device factor or a clip per device, what each device's reads say about it is held (found at the
    # start) while the optimiser runs, so that it sees a smooth function; then found again at the optimum,
    # and the run repeated from there (with it) until that moves the log-likelihood by less than D2D_ADAPT_TOL
    while True:
        rounds += 1
        with lik.frozen_nodes(torch.as_tensor(x0, dtype=torch.float64), lay, info):
            res = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                          options={"maxiter": 1000, "maxfun": 2000, "ftol": 1e-10, "gtol": 1e-5})
        iterations += int(res.nit)
        if not (lay.d2d or lay.clip_d2d):
            return res, iterations, rounds, None
        x_opt = torch.as_tensor(res.x, dtype=torch.float64)
        info = lik.place(x_opt, lay)
        with lik.frozen_nodes(x_opt, lay, info), torch.no_grad():
            fresh = float(lik.nll(x_opt, lay))
        if abs(fresh - float(res.fun)) * lik.n_reads < D2D_ADAPT_TOL or rounds == D2D_ADAPT_ROUNDS:
            return res, iterations, rounds, fresh
        x0 = res.x


def _minimize(lik: PulseLikelihood, lay: _Layout, x0: np.ndarray, bounds: list, name: str) -> dict[str, Any]:
    flush = torch.set_flush_denormal(True)  # exp() of far tails: denormals are slow on x86
    lo_b, hi_b = _bound_arrays(bounds)
    kicks, notes = 0, []
    try:
        res, iterations, rounds, fresh = _lbfgs(lik, lay, x0, bounds)
        while True:
            msg = res.message if isinstance(res.message, str) else res.message.decode()
            converged = bool(res.success)
            if converged or "ABNORMAL" not in msg or not math.isfinite(float(res.fun)):
                break
            # the line search cannot improve f further: an optimum at the precision of f where the
            # projected gradient is small (also at the start: a run started at the optimum of a nested
            # model, e.g. without the device factor once it is ~0)
            g = np.asarray(res.jac, dtype=float)
            free = ~(((res.x <= lo_b + 1e-9) & (g > 0)) | ((res.x >= hi_b - 1e-9) & (g < 0)))
            pg = float(np.max(np.abs(g[free]))) if free.any() else 0.0
            if pg <= ABNORMAL_GRADIENT:
                converged = True
                notes.append(f"projected gradient {pg:.2g}: an optimum at the precision of f")
                break
            # else where a step of f stopped the search (the filter's slope jumps at the knots): a Newton
            # step that gains nothing says the stop is an optimum at the precision of f; one that gains is
            # taken, and the search run again from there
            step = _newton_step(lik, lay, res.x, bounds, np.where(free, g, 0.0))
            if step is None:
                notes.append(f"projected gradient {pg:.2g}, no Newton step (the information is not positive "
                             "where the gradient is not small): no optimum")
                break
            x_new, gain = step
            if gain <= ABNORMAL_GAIN:
                converged = True
                notes.append(f"projected gradient {pg:.2g}, a Newton step gains {gain:.2g} log-units: an "
                             "optimum at the precision of f")
                break
            if kicks == ABNORMAL_KICKS:
                notes.append(f"projected gradient {pg:.2g}, a Newton step still gains {gain:.2g} log-units: "
                             "no optimum")
                break
            kicks += 1
            notes.append(f"projected gradient {pg:.2g}, a Newton step gains {gain:.2g} log-units: run again "
                         "from there")
            res, its, more, fresh = _lbfgs(lik, lay, x_new, bounds)
            iterations, rounds = iterations + its, rounds + more
    finally:
        if flush:
            torch.set_flush_denormal(False)
    if lay.d2d or lay.clip_d2d:
        what = " and ".join(w for w, on in (("the device factor's", lay.d2d), ("the clips'", lay.clip_d2d)) if on)
        msg += f" ({rounds} placement{'s' if rounds > 1 else ''} of {what} nodes)"
    if notes:
        msg += f" ({'; '.join(notes)})"
    names = lay.names()
    at_bound = []
    for i, (lo, hi) in enumerate(bounds):
        nm = names[i]
        if nm.startswith(("M[", "S[", "read_noise", "hist_", "d2d", "reset_")) and nm != "log_hist_pulses":
            continue  # 0 (or no bound) is a physical end for these
        at_hi = hi is not None and abs(res.x[i] - hi) < 1e-6 * max(1.0, abs(hi))
        if nm == "g_max_us":
            at_hi = False  # above every read: no clip in the data (G_max then comes from the mean step)
        at_lo = (lo is not None and abs(res.x[i] - lo) < 1e-6 * max(1.0, abs(lo))
                 and nm not in ("c2c_rel_std", "g_max_rel_std"))
        if at_lo or at_hi:  # (κ = 0: no multiplicative part; one clip for all devices: physical ends)
            at_bound.append(nm)
    ll = -((float(res.fun) if fresh is None else fresh) - lik.penalty(res.x, lay)) * lik.n_reads
    return {"name": name, "x": res.x, "loglik": ll, "converged": converged, "iterations": iterations,
            "message": f"scipy L-BFGS-B: {msg} after {iterations} iterations", "at_bound": at_bound, "layout": lay,
            "bounds": bounds}


def _saturation_tail(g: np.ndarray, m: np.ndarray) -> tuple[float, float, float] | None:
    """``(c, G_sat, p)`` of ``M(G) = c·(G_sat − G)^p`` fitted (least squares on log M, scipy
    ``curve_fit``) to the upper half of the knots where ``M > 0``: the approach to a saturation
    above the data, whose curvature a straight line from the top knot misses (it reaches 0 early
    for p > 1). None when fewer than 3 such knots, or the fit fails or sits at a bound of ``p`` in
    [0.5, 3] or of ``G_sat`` (then the line)."""
    import scipy.optimize  # noqa: PLC0415

    half = g >= 0.5 * (g[0] + g[-1])
    sel = half & (m > 0)
    if int(sel.sum()) < 3:
        return None
    gs, ls = g[sel], np.log(m[sel])
    step = float(g[1] - g[0])
    span = float(g[-1] - g[0])
    d0 = float(m[-1] / max((m[-2] - m[-1]) / step, 1e-12))

    def f(x: np.ndarray, log_c: float, d: float, p: float) -> np.ndarray:
        return log_c + p * np.log(g[-1] + d - x)

    lo, hi = (-np.inf, 1e-3 * step, 0.5), (np.inf, 10.0 * span, 3.0)
    try:
        popt, _ = scipy.optimize.curve_fit(f, gs, ls, p0=(float(ls[-1] - np.log(d0)), d0, 1.0), bounds=(lo, hi),
                                           maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    log_c, d, p = (float(v) for v in popt)
    if not all(a * 1.001 < v < b * 0.999 for v, a, b in ((d, lo[1], hi[1]), (p, lo[2], hi[2]))):
        return None
    return math.exp(log_c), float(g[-1]) + d, p


def _mean_step_zero(lik: PulseLikelihood, m_t: np.ndarray) -> float | None:
    """Where the mean-step table ``m_t`` first reaches 0 (linear between knots), or None where it
    stays above 0 or starts at or below it."""
    neg = np.nonzero(m_t <= 0)[0]
    if not neg.size or neg[0] == 0:
        return None
    i0 = int(neg[0])
    return lik.start + (i0 - 1 + m_t[i0 - 1] / (m_t[i0 - 1] - m_t[i0])) * lik.step


def _relayout(run: dict[str, Any], lay: _Layout, new: dict[str, tuple[float, tuple]] | None = None
              ) -> tuple[np.ndarray, list]:
    """The start and bounds of ``lay`` from a fitted ``run``: each parameter of ``lay`` from ``run``
    where it has one, else ``new[name] = (start, bounds)``."""
    old = run["layout"].names()
    x, b = [], []
    for nm in lay.names():
        if nm in old:
            x.append(float(run["x"][old.index(nm)]))
            b.append(run["bounds"][old.index(nm)])
        else:
            assert new is not None and nm in new, nm
            x.append(new[nm][0])
            b.append(new[nm][1])
    return np.array(x), b


def _clip_lr(lik: PulseLikelihood, run: dict[str, Any]) -> float:
    """The likelihood-ratio statistic of a fitted clip: ``run`` against itself with G_max at its upper
    bound (above every read) and no clip per device."""
    lay: _Layout = run["layout"]
    far = dataclasses.replace(lay, clip_d2d=False)
    x_far, _ = _relayout(run, far)
    x_far[far.index("g_max_us")] = run["bounds"][lay.index("g_max_us")][1]
    return 2.0 * (run["loglik"] - lik.loglik(x_far, far))


def _plateaus(lik: PulseLikelihood) -> np.ndarray:
    """Each device's level at the end of its cycles: the mean of the last 3 reads of each cycle,
    averaged over the device's cycles."""
    tr, n_dev = lik.data.traces, lik.data.n_devices
    n_ok = (~np.isnan(tr)).sum(1)
    idx = np.clip(n_ok[:, None] - 1 - np.arange(3)[None, :], 0, None)
    last = np.take_along_axis(tr, idx, axis=1).mean(1)
    dev = lik.cycle_dev.numpy()
    return np.bincount(dev, weights=last, minlength=n_dev) / np.maximum(np.bincount(dev, minlength=n_dev), 1)


def _information(lik: PulseLikelihood, lay: _Layout, x0: np.ndarray, bounds: list, placed: _Placed | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The observed information at ``x0`` over the parameters not within a difference step of a bound:
    ``(their indices, the gradient of the total negative log-likelihood there, its Hessian)``, by
    central differences of the autograd gradient (step ``SE_STEP·max(|x|, SE_SCALE)``) with the nodes
    (the device factor's, the clips') held at ``x0`` (``placed``: :meth:`PulseLikelihood.place` there,
    when already found)."""
    lo, hi = _bound_arrays(bounds)
    h = SE_STEP * np.maximum(np.abs(x0), SE_SCALE)
    idx = np.nonzero((x0 - h > lo) & (x0 + h < hi))[0]
    xt = torch.as_tensor(x0, dtype=torch.float64)

    def grad(xv: np.ndarray) -> np.ndarray:
        return _nll_and_grad(lik, lay, xv)[1][idx] * lik.n_reads

    hess = np.empty((idx.size, idx.size))
    with lik.frozen_nodes(xt, lay, placed):
        g0 = grad(x0)
        for j, i in enumerate(idx):
            e = np.zeros_like(x0)
            e[i] = h[i]
            hess[:, j] = (grad(x0 + e) - grad(x0 - e)) / (2.0 * h[i])
    return idx, g0, 0.5 * (hess + hess.T)


def _newton_step(lik: PulseLikelihood, lay: _Layout, x0: np.ndarray, bounds: list, g_free: np.ndarray
                 ) -> tuple[np.ndarray, float] | None:
    """A Newton step from ``x0`` on the observed information (:func:`_information`) over the parameters off
    their bounds, along the directions of positive curvature, projected into the bounds; the step or half
    of it, whichever is likelier: ``(that point, the log-likelihood it gains)`` (both with the nodes
    held at ``x0``, placed once). None where the information is not finite, or the gradient along a
    direction without positive curvature (a kink, or a parameter the reads do not identify), or ``g_free``
    (the per-read gradient, 0 where a bound holds the parameter) of a parameter within a difference step
    of its bound, is larger than :data:`ABNORMAL_GRADIENT` per read."""
    xt = torch.as_tensor(x0, dtype=torch.float64)
    placed = lik.place(xt, lay)  # held for the information and the step alike
    idx, g, hess = _information(lik, lay, x0, bounds, placed)
    if np.any(np.abs(np.delete(g_free, idx)) > ABNORMAL_GRADIENT):
        return None
    if not idx.size:
        return x0, 0.0
    if not (np.all(np.isfinite(hess)) and np.all(np.isfinite(g))):
        return None
    w, v = np.linalg.eigh(hess)
    along = v.T @ g
    pos = w > 1e-9 * max(float(np.max(np.abs(w))), 1.0)
    if np.any(np.abs(along[~pos]) > ABNORMAL_GRADIENT * lik.n_reads):
        return None
    delta = np.zeros_like(x0)
    delta[idx] = -(v[:, pos] @ (along[pos] / w[pos]))
    lo, hi = _bound_arrays(bounds)
    tries = [np.clip(x0 + frac * delta, lo, hi) for frac in (1.0, 0.5)]
    with lik.frozen_nodes(xt, lay, placed), torch.no_grad():
        f = [float(lik.nll(torch.as_tensor(xn, dtype=torch.float64), lay)) for xn in (x0, *tries)]
    gains = [(f[0] - fn) * lik.n_reads for fn in f[1:]]  # of the penalised log-likelihood, as optimised
    best = int(np.argmax(gains))
    return tries[best], float(gains[best])


def _standard_errors(lik: PulseLikelihood, run: dict[str, Any]) -> dict[str, Any]:
    """Standard errors of the fitted scalar constants (``d2d_rel_std``, ``c2c_rel_std``, ``g_max_us``, …:
    not the tables) from the observed information, the Hessian of the penalised negative
    log-likelihood at the optimum (Pawitan 2001, "In All Likelihood", §3.3 and §8.3), by central
    differences of its autograd gradient with the device factor's nodes held at the optimum, over the
    parameters not at a bound (one at a bound has none). Model-based: where the device's laws are not the
    model's, the run-to-run scatter can be larger. Also the correlation of the device factor's std with
    κ (a larger cycle-to-cycle std leaves less of the devices' spread to the factor: the two trade along
    a ridge). A parameter along which alone the information is not positive (the eigenvector of its
    smallest eigenvalue at least :data:`SE_ISOLATED` on it: the reads do not identify it, as a clip above
    every read) is left out and named in ``not_identified``; None where the information is not positive
    definite along several (a kink at the optimum: under a multiplicative law ``|f·M|`` bends where the
    mean step crosses 0 among the reads)."""
    lay = run["layout"]
    names = lay.names()
    idx, _, hess = _information(lik, lay, np.asarray(run["x"], dtype=float), run["bounds"])
    if not idx.size or not np.all(np.isfinite(hess)):
        return {"standard_errors": None}
    # a parameter the reads do not identify (a clip above every read: the likelihood flat along it alone)
    # has no curvature: it is left out (no standard error), the others' taken from the rest
    keep = np.arange(idx.size)
    not_identified = []
    while keep.size:
        w, v = np.linalg.eigh(hess[np.ix_(keep, keep)])
        if w[0] > 0.0:
            break
        j = int(np.argmax(np.abs(v[:, 0])))
        if abs(v[j, 0]) < SE_ISOLATED:  # a direction of several parameters (a kink): none is given
            return {"standard_errors": None}
        not_identified.append(names[idx[keep[j]]])
        keep = np.delete(keep, j)
    if not keep.size:
        return {"standard_errors": None}
    cov = np.linalg.inv(hess[np.ix_(keep, keep)])
    sd = np.sqrt(np.diag(cov))
    free = [names[idx[j]] for j in keep]
    out: dict[str, Any] = {"standard_errors": {nm: float(sd[j]) for j, nm in enumerate(free)
                                               if not nm.startswith(("M[", "S["))},
                           "not_identified": not_identified}
    if "d2d_rel_std" in free and "c2c_rel_std" in free:
        a, b = free.index("d2d_rel_std"), free.index("c2c_rel_std")
        out["d2d_kappa_correlation"] = float(cov[a, b] / (sd[a] * sd[b]))
    return out


def _clip_d2d_start(lik: PulseLikelihood, base: dict[str, Any]) -> tuple[_Layout, np.ndarray, list] | None:
    """Where a clip per device is worth fitting, ``(layout, start, bounds)``; else None. Tried where
    the one-clip fit shows a clip, or bends the mean step to 0 in the data (a spread of clips looks
    like that to a model with one: the clips start there, ``M`` held above at its last positive
    knot); else screened by one likelihood at the devices' end levels (the clips at their median,
    their spread from the levels' spread less the read noise): kept for the fit where that start
    alone beats the one-clip fit by :data:`D2D_LR_THRESHOLD`."""
    k = lik.k
    lay = dataclasses.replace(base["layout"], clip_d2d=True)
    x_c, b_c = _relayout(base, lay, CLIP_D2D_NEW)
    i_cap = lay.index("g_max_us")
    lo_cap, hi_cap = b_c[i_cap]
    g_zero = _mean_step_zero(lik, x_c[:k])
    if g_zero is not None and g_zero < hi_cap:
        x_c[i_cap] = max(g_zero, lo_cap)
        i0 = int(np.nonzero(x_c[:k] <= 0)[0][0])
        x_c[i0:k] = x_c[i0 - 1]
        return lay, x_c, b_c
    if _clip_lr(lik, base) > CLIP_LR_THRESHOLD:
        return lay, x_c, b_c
    ends = _plateaus(lik)
    names = base["layout"].names()
    best_ll, best_x = -math.inf, None
    for q in CLIP_D2D_LEVELS:  # a short train leaves the slower devices below their clips: several levels
        level = float(np.quantile(ends, q))
        if not lo_cap < level < hi_cap:
            continue
        top = ends[ends >= np.quantile(ends, max(q - 0.25, 0.0))]  # the devices at their clips, roughly
        if "read_noise_b_us" in names:
            r = float(base["x"][names.index("read_noise_b_us")] + base["x"][names.index("read_noise_c")] * level)
        else:
            r = 0.0
        spread = math.sqrt(max(float(np.var(top)) - r * r / 3.0, 0.0)) / level
        x_q = x_c.copy()
        x_q[i_cap] = level
        x_q[lay.index("g_max_rel_std")] = min(max(spread, 0.01), 0.3)
        ll0 = lik.loglik(x_q, lay)
        if ll0 > best_ll:
            best_ll, best_x = ll0, x_q
    if best_x is None:
        return None
    x_c, ll0 = best_x, best_ll
    return (lay, x_c, b_c) if 2.0 * (ll0 - base["loglik"]) > D2D_LR_THRESHOLD else None


C2C_LAWS = ("additive", "multiplicative", "combined")
"""The cycle-to-cycle laws: the std of a step is ``S(G)`` (a table), ``S + κ·|mean step|`` (one
constant and κ) or ``S(G) + κ·|mean step|`` (a table and κ)."""


def _std_table(x: np.ndarray, lay: _Layout) -> np.ndarray:
    """The additive std ``S`` of parameters ``x`` at the ``k`` knots (a multiplicative law's one constant
    repeated)."""
    k = lay.k
    return np.full(k, float(x[k])) if lay.n_s == 1 else np.array(x[k:2 * k])


def _law_start(run: dict[str, Any], law: str) -> tuple[_Layout, np.ndarray, list]:
    """A start for ``law`` from a fitted ``run`` of another (or the same) law, with the same other
    terms: the std tables carried over (an additive table from ``S + κ·|M|``; a multiplicative start
    from the run's κ, else the median ratio of S to |M| where the mean step is large)."""
    lay: _Layout = run["layout"]
    x, bounds, k = np.asarray(run["x"]), run["bounds"], lay.k
    j = k + lay.n_s + (1 if lay.kappa else 0)
    m = x[:k]
    s_tab = _std_table(x, lay)
    kap = float(x[k + lay.n_s]) if lay.kappa else 0.0
    b_m = bounds[:k]
    b_s: tuple[float, float | None] = (STD_FLOOR_US, None)
    b_k: tuple[float, float | None] = (0.0, 10.0)
    if law == "additive":
        head, b_head = list(s_tab + kap * np.abs(m)), [b_s] * k
    elif law == "combined":
        head, b_head = [*s_tab, kap], [b_s] * k + [b_k]
    else:
        if not lay.kappa:
            big = np.abs(m) > 0.2 * float(np.max(np.abs(m)))
            kap = float(np.median(s_tab[big] / np.abs(m[big]))) if big.any() else 0.1
        head, b_head = [max(0.1 * float(np.min(s_tab)), 2 * STD_FLOOR_US), min(kap, 5.0)], [b_s, b_k]
    return (dataclasses.replace(lay, law=law), np.r_[m, head, x[j:]], [*b_m, *b_head, *bounds[j:]])


def _bic(run: dict[str, Any], n_reads: float) -> float:
    """Schwarz's criterion (Schwarz 1978, Ann. Stat. 6:461): −2·log L + (parameters)·log n."""
    return -2.0 * run["loglik"] + len(run["layout"].names()) * math.log(n_reads)


def _choose_c2c_law(lik: PulseLikelihood, runs: dict[str, dict[str, Any]], stage: str,
                    laws: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the ``laws`` missing from ``runs`` (fitted runs by law, with the same other terms): the
    combined law from the run of highest likelihood (so that it starts at the likelihood of the law
    it contains), a pure law from the combined run where there is one, else from the additive run;
    the converged run with the lowest BIC wins (Schwarz 1978: a table of ``k`` knots, 2 parameters,
    ``k + 1``). Returns (the chosen run, a record of the choice)."""
    runs = dict(runs)
    for law in laws:
        if law in runs:
            continue
        src = (max(runs.values(), key=lambda r: r["loglik"]) if law == "combined"
               else runs.get("combined", runs.get("additive", next(iter(runs.values())))))
        lay, x0, b0 = _law_start(src, law)
        runs[law] = _minimize(lik, lay, x0, b0, f"{stage}, {law} cycle-to-cycle law")
    bic = {law: _bic(r, lik.n_reads) for law, r in runs.items()}
    ok = [law for law in runs if runs[law]["converged"]] or list(runs)
    choice = min(ok, key=lambda law: bic[law])
    record = {"law": choice, "stage": stage, "bic": bic,
              "kappa_fitted": {law: float(r["x"][r["layout"].index("c2c_rel_std")])
                               for law, r in runs.items() if r["layout"].kappa},
              "converged": {law: bool(r["converged"]) for law, r in runs.items()}}
    return runs[choice], record


def _decay_at_bound(run: dict[str, Any]) -> bool:
    """Whether the history's decay ``a`` of ``run`` sits at the bound of its search range (see
    :data:`HISTORY_SPAN`)."""
    return "log_hist_pulses" in run["at_bound"]


def _decay_lr_vs_bound(lik: PulseLikelihood, run: dict[str, Any]) -> float:
    """The likelihood-ratio statistic of ``run``'s history decay against the decay held at the upper
    bound of its search range (the other parameters fitted again)."""
    lay: _Layout = run["layout"]
    i = lay.index("log_hist_pulses")
    hi = float(run["bounds"][i][1])
    x0, bounds = np.array(run["x"], dtype=float), list(run["bounds"])
    x0[i], bounds[i] = hi, (hi, hi)
    held = _minimize(lik, lay, x0, bounds, "pulse-history terms, the decay held at its bound")
    return 2.0 * (run["loglik"] - held["loglik"])


def _choose_variant(lik: PulseLikelihood, best: dict[str, Any], runs: list[dict[str, Any]], field: str, value: str,
                    key: str, name: str, margin: float = 0.0
                    ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """``best`` against the same model with its layout's ``field`` set to ``value``, the same parameters
    (the multiplicative step's shape, the mean step above the top knot): the likelier is kept, or with a
    ``margin`` (log-units) the variant unless ``best`` is likelier by more than that. Returns (the
    chosen run, ``runs`` with it appended where it is new, a record: under ``key`` the value kept, the
    log-likelihoods and the convergence of both, the margin)."""
    now = getattr(best["layout"], field)
    lay_v = dataclasses.replace(best["layout"], **{field: value})
    run_v = _minimize(lik, lay_v, np.array(best["x"], dtype=float), list(best["bounds"]), name)
    rec = {key: now, "loglik": {now: best["loglik"], value: run_v["loglik"]},
           "converged": {now: bool(best["converged"]), value: bool(run_v["converged"])}, "margin": margin}
    if run_v["converged"] and (run_v["loglik"] > best["loglik"] - margin or not best["converged"]):
        rec[key] = value
        return run_v, [*runs, run_v], rec
    return best, runs, rec


def _history_again(lik: PulseLikelihood, best: dict[str, Any], runs: list[dict[str, Any]], name: str
                   ) -> tuple[dict[str, Any], list[dict[str, Any]], float, bool]:
    """The history terms of ``best`` tested again against the rest of its model (after a change of the
    law or of its shape): (the run kept, ``runs`` without the history's runs where they are dropped,
    the likelihood-ratio statistic, whether they are kept)."""
    lay_n = dataclasses.replace(best["layout"], history=False)
    run_n = _minimize(lik, lay_n, *_relayout(best, lay_n), name)
    lr_h = 2.0 * (best["loglik"] - run_n["loglik"])
    if lr_h <= HISTORY_LR_THRESHOLD:
        return run_n, [r for r in runs if not r["layout"].history] + [run_n], lr_h, False
    return best, runs, lr_h, True


def _rechoose_law(lik: PulseLikelihood, best: dict[str, Any], runs: list[dict[str, Any]], laws: list[dict[str, Any]],
                  stage: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The cycle-to-cycle law chosen again with the terms of ``best`` in (the combined law tried, and
    from it the other pure law): the chosen run, and ``runs`` with it appended where it is new; the
    record of the choice appended to ``laws``."""
    now = {best["layout"].law: best}
    again, rec = _choose_c2c_law(lik, now, stage, ("combined",))
    if rec["law"] == "combined":  # and the pure law not yet fitted with these terms
        again, rec = _choose_c2c_law(lik, {**now, "combined": again}, stage, C2C_LAWS)
    laws.append(rec)
    if again is not best:
        runs = [*runs, again]
    return again, runs


def fit_pulse_response(data: PulseData, *, n_knots: int = 12, noise_table: tuple[np.ndarray, np.ndarray] | None = None,
                       n_quantiles: int = 101) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the pulse response (see the module docstring); ``noise_table``: (G, σ) of one read from a
    read-noise file, else σ_r = b + c·G is fitted too. Returns ``(params, quality)``: ``params`` are
    fields of :class:`~device_models.empirical.EmpiricalParams`."""

    if n_knots < 2:
        raise FitError(f"n_knots={n_knots} is invalid: expected an integer ≥ 2")
    gb, ga = data.g_before, data.g_after
    reads = data.traces[~np.isnan(data.traces)]
    lo_v, hi_v = float(ga.min()), float(reads.max())


    if hi_v > G_MAX_LIMIT_US:
        raise FitError(f"{data.path}: largest read {hi_v:.6g} µS is not physical; expected conductances ≤ "
                       f"{G_MAX_LIMIT_US:g} µS (a read in another unit, or an outlier)")
    floor = lo_v if int(_ties(ga, lo_v).sum()) >= TIE_MIN_COUNT else None
    cap = hi_v if int(_ties(ga, hi_v).sum()) >= TIE_MIN_COUNT else None
    if float(gb.max()) <= float(gb.min()):
        raise FitError(f"{data.path}: every read before a pulse is {gb.min():g} µS; expected a range of conductances")
    lik = PulseLikelihood(data, n_knots=n_knots, floor_us=floor, cap_us=cap, noise_table=noise_table)
    k = n_knots
    # a start: binned moments of the increments, the read noise from their lag-1 covariance
    dg = ga - gb
    u = np.clip((gb - lik.start) / lik.step, 0, k - 1)
    b_i = np.rint(u).astype(int)
    cnt = np.maximum(np.bincount(b_i, minlength=k), 1)
    m0 = np.bincount(b_i, weights=dg, minlength=k) / cnt
    v0 = np.bincount(b_i, weights=dg * dg, minlength=k) / cnt - m0 ** 2
    d_tr = np.diff(data.traces, axis=1)
    pair = ~np.isnan(d_tr[:, 1:]) & ~np.isnan(d_tr[:, :-1])
    d1, d0 = d_tr[:, 1:] - np.nanmean(d_tr[:, 1:]), d_tr[:, :-1] - np.nanmean(d_tr[:, :-1])
    cov1 = float(np.mean(d1[pair] * d0[pair])) if pair.any() else 0.0
    r0 = math.sqrt(max(-cov1, 0.0)) if noise_table is None else float(np.median(noise_table[1]))
    s0 = np.sqrt(np.clip(v0 - 2 * r0 * r0, (0.3 * np.sqrt(np.clip(v0, 1e-8, None))) ** 2, None))
    base = list(m0) + list(s0)
    bounds: list = [(None, None)] * k + [(STD_FLOOR_US, None)] * k
    span = hi_v - float(reads.min())
    joint = noise_table is None
    fit_cap = cap is None
    if fit_cap:
        top_noise = r0 * 5.0 + 0.1 * span
        base.append(hi_v)
        bounds.append((float(np.quantile(reads, 0.5)), hi_v + top_noise))
    if joint:
        base += [max(r0, 2 * READ_FLOOR_US), 0.0]
        bounds += [(READ_FLOOR_US, None), (0.0, 1.0)]
    lay0 = _Layout(k, joint, fit_cap, False, False)
    name0 = "base: M, S, G_max" + (", read noise" if joint else "")
    best = _minimize(lik, lay0, np.array(base), bounds, name0)
    if joint:  # σ_r enters as σ_r²: a start near 0 can stall there; a second start at half the step spread
        half = 0.5 * float(np.median(np.sqrt(np.clip(v0, 0.0, None)))) / math.sqrt(2.0)
        alt = np.array(base)
        alt[lay0.index("read_noise_b_us")] = max(half, 2 * READ_FLOOR_US)
        alt[k:2 * k] = np.sqrt(np.clip(v0 - 2 * half * half, (0.3 * np.sqrt(np.clip(v0, 1e-8, None))) ** 2, None))
        other = _minimize(lik, lay0, alt, bounds, name0)
        if other["loglik"] > best["loglik"]:
            best = other
    # the cycle-to-cycle law on the base model: additive S(G) (k knots) or multiplicative S + κ·|mean
    # step| (2), by BIC; the combined law (both, k + 1) is offered below once a device factor or
    # history terms are in (without them κ·|M(G)| is a function of G that the table S(G) holds)
    best, law = _choose_c2c_law(lik, {"additive": best}, "base", ("multiplicative",))
    laws = [law]
    runs = [best]
    # a clip per device first, where the reads suggest one: the terms below are then tested with it
    # in (a spread of clips can pass for them)
    run_c, lr_c, clip_kept = None, 0.0, False
    start_c = _clip_d2d_start(lik, best) if fit_cap else None
    if start_c is not None:
        run_c = _minimize(lik, *start_c, "with a clip per device")
        if run_c["loglik"] < best["loglik"]:  # it nests the one-clip fit (a spread of 0): a run that ends
            # below it stopped short of its optimum; again from that fit, the clips spread about its clip
            lay_c = start_c[0]
            again = _minimize(lik, lay_c, *_relayout(best, lay_c, CLIP_D2D_NEW),
                              "with a clip per device, from the one-clip fit")
            if again["loglik"] > run_c["loglik"]:
                run_c = again
        lr_c = 2.0 * (run_c["loglik"] - best["loglik"])
        clip_kept = run_c["converged"] and lr_c > D2D_LR_THRESHOLD and _clip_lr(lik, run_c) > CLIP_LR_THRESHOLD
        if clip_kept:
            runs.append(run_c)
            best = run_c
    # device-to-device factor (several devices; more cycles per device sharpen it), kept where the
    # likelihood ratio says so (the base model is nested at s = 0)
    lay_d = dataclasses.replace(best["layout"], d2d=True)
    run_d = _minimize(lik, lay_d, *_relayout(best, lay_d, {"d2d_rel_std": (0.05, (0.0, 0.9))}),
                      "with device-to-device factor")
    lr_d = 2.0 * (run_d["loglik"] - best["loglik"])
    d2d_law: dict[str, Any] = {"law": "normal", "loglik": {"normal": run_d["loglik"]}}
    if lr_d > D2D_LR_THRESHOLD:  # its law: normal or log-normal (one parameter each: the likelier)
        lay_dl = dataclasses.replace(lay_d, d2d_law="lognormal")
        run_dl = _minimize(lik, lay_dl, run_d["x"].copy(), run_d["bounds"], "with a log-normal device factor")
        d2d_law["loglik"]["lognormal"] = run_dl["loglik"]
        d2d_law["converged"] = {"normal": run_d["converged"], "lognormal": run_dl["converged"]}
        if run_dl["converged"] and (run_dl["loglik"] > run_d["loglik"] or not run_d["converged"]):
            run_d, lay_d = run_dl, lay_dl
            lr_d = 2.0 * (run_d["loglik"] - best["loglik"])
        d2d_law["law"] = lay_d.d2d_law
    d2d_kept = lr_d > D2D_LR_THRESHOLD
    if d2d_kept:
        runs.append(run_d)
        best = run_d
        # the law again with the factor in (a factor scales the multiplicative part, κ·|f·M|, and not
        # the additive one): the history terms are then tested against the law the factor calls for
        best, runs = _rechoose_law(lik, best, runs, laws, "with the device factor")
    # pulse-history terms on top, kept where the likelihood ratio says so
    lay_h = dataclasses.replace(best["layout"], history=True)
    a_hi = max(HISTORY_SPAN * (data.traces.shape[1] - 1), 2.0 * HISTORY_MIN_PULSES)
    hist0 = {"hist_mean_us": (0.1 * abs(float(np.mean(m0))) + 1e-3, (None, None)),
             "hist_std_us": (0.0, (None, None)),
             "log_hist_pulses": (math.log(min(3.0, 0.5 * a_hi)), (math.log(HISTORY_MIN_PULSES), math.log(a_hi)))}
    run_h = _minimize(lik, lay_h, *_relayout(best, lay_h, hist0), "with pulse-history terms")
    lr_h = 2.0 * (run_h["loglik"] - best["loglik"])
    # a history that has not decayed by the end of the train cannot be told from a slow G-dependence
    # (M(G) along the programming curve): with its decay at the bound it is not kept, whatever its gain
    hist_slow = _decay_at_bound(run_h)
    lr_bound = None
    if lr_h > HISTORY_LR_THRESHOLD and not hist_slow:  # inside the range: is it told from the bound?
        lr_bound = _decay_lr_vs_bound(lik, run_h)
        hist_slow = lr_bound < DECAY_LR_THRESHOLD
    hist_kept = lr_h > HISTORY_LR_THRESHOLD and not hist_slow
    before_history = (best, list(runs), d2d_kept, lr_d, len(laws))
    if hist_kept:
        runs.append(run_h)
        best = run_h
        if d2d_kept:  # history can mimic a device factor (and back): the factor tested again with history
            lay_hn = dataclasses.replace(lay_h, d2d=False)
            run_hn = _minimize(lik, lay_hn, *_relayout(run_h, lay_hn), "with pulse-history terms, no device factor")
            lr_d = 2.0 * (run_h["loglik"] - run_hn["loglik"])
            if lr_d <= D2D_LR_THRESHOLD and not _decay_at_bound(run_hn):
                d2d_kept, best = False, run_hn
                runs = [r for r in runs if not r["layout"].d2d] + [run_hn]  # (run_h and the law's runs too)
        law_h = best["layout"].law
        best, runs = _rechoose_law(lik, best, runs, laws, "with the kept terms")
        if best["layout"].law != law_h:  # the history tested again against the law now chosen
            best, runs, lr_h, hist_kept = _history_again(lik, best, runs, "the chosen law without pulse-history terms")
        if hist_kept and _decay_at_bound(best):  # with the law now chosen the decay ran to its bound
            hist_kept, hist_slow = False, True
            best, runs, d2d_kept, lr_d, n_laws = before_history
            del laws[n_laws:]
    # the multiplicative part's shape (normal or log-normal, the same parameters: the likelier) on the
    # kept terms (not tried with a clip per device: its rule of 13 clips per device times the steps' 3
    # pieces would cost 3× a fit that already costs several times the one-clip one); where history terms
    # are kept and the log-normal step wins, they are tested again against it (a skew of the steps that
    # the normal steps lack is taken up by history terms: power-sat kept one at 1500 devices)
    c2c_shape: dict[str, Any] = {"shape": "normal", "loglik": None}
    if best["layout"].kappa and not best["layout"].clip_d2d:
        # the shape: normal (the step ``N(f·M, (S + κ·|f·M|)²)``) or log-normal (``f·M·L + S·ξ``, ``L`` of
        # mean 1 and std κ)
        best, runs, c2c_shape = _choose_variant(lik, best, runs, "c2c_shape", "lognormal", "shape",
                                                "a log-normal multiplicative step")
        if hist_kept and best["layout"].c2c_shape == "lognormal":
            best, runs, lr_h, hist_kept = _history_again(lik, best, runs,
                                                         "the log-normal step without pulse-history terms")
            c2c_shape["history_lr_statistic"] = lr_h
    # the mean step above the top knot: held, or the top segment continued where that segment lies
    # wholly among restoring steps (its two knots' mean steps below 0: the devices scatter about a
    # saturation inside the data, and its slope is the restoring law's), unless holding is likelier by
    # TAIL_HOLD_LR; a segment across the zero crossing has the approach's slope, not the restoring law's
    # (on a 200-device mixed-sat file, continued, a train twice as long missed the spread by 15 %, held 5 %)
    above: dict[str, Any] = {"tail": "hold", "loglik": None}
    if best["x"][k - 1] < 0.0 and best["x"][k - 2] < 0.0:
        best, runs, above = _choose_variant(lik, best, runs, "tail", "linear", "tail",
                                            "the mean step continued above the top knot", TAIL_HOLD_LR / 2.0)
    law = {**laws[-1], "choices": laws}
    x, lay = best["x"], best["layout"]
    get = lambda nm, default=0.0: float(x[lay.index(nm)]) if nm in lay.names() else default  # noqa: E731
    m_t = np.array(x[:k])
    s_t = _std_table(x, lay)
    a_mu, a_sd = get("hist_mean_us"), get("hist_std_us")
    a_pulses = math.exp(get("log_hist_pulses", 0.0)) if hist_kept else 1.0
    # G_max: the clip where the reads show one (ties, or a fitted clip whose removal costs more than
    # CLIP_LR_THRESHOLD of likelihood); else the saturation of the mean step: where it reaches 0 in
    # the data, or extrapolated linearly from the top of the data (the tables extended up to it)
    top = lik.start + (k - 1) * lik.step
    slope_top = (m_t[-1] - m_t[-2]) / lik.step
    set_max = 0.0
    if cap is not None:
        g_max, saturation, lr_clip = cap, "clip (noise-free reads pile up there)", math.inf
    else:
        cap_fit, cap_hi = get("g_max_us"), best["bounds"][lay.index("g_max_us")][1]
        lr_clip = _clip_lr(lik, best)
        g_max, saturation = cap_fit, "clip (fitted)"
        if lr_clip <= CLIP_LR_THRESHOLD:  # no clip in the data: where the mean step reaches 0
            set_max = cap_hi
            g_zero = _mean_step_zero(lik, m_t)
            if g_zero is not None:
                g_max, saturation = g_zero, "mean step reaches 0 in the data"
            elif m_t[-1] > 0 and slope_top < 0:
                g_knots = lik.start + lik.step * np.arange(len(m_t))
                tail = _saturation_tail(g_knots, m_t)
                if tail is None:  # M linear from the top of the data to 0
                    g_max = top + m_t[-1] / -slope_top
                    tail_m = lambda g: np.maximum(m_t[-1] + slope_top * (g - top), 0.0)  # noqa: E731
                    saturation = "mean step extrapolated linearly to 0 above the data"
                else:
                    c_t, g_max, p_t = tail
                    tail_m = lambda g: c_t * np.maximum(g_max - g, 0.0) ** p_t  # noqa: E731
                    saturation = f"mean step extrapolated to 0 above the data as c·(G_max − G)^{p_t:.3g}"
                while lik.start + (len(m_t) - 1) * lik.step < g_max and len(m_t) < 4 * k:
                    m_t = np.r_[m_t, float(tail_m(lik.start + len(m_t) * lik.step))]
                    s_t = np.r_[s_t, s_t[-1]]
                set_max = max(cap_hi, g_max)
            else:
                g_max, saturation = float(reads.max()), "not reached in the data: the largest read (a lower bound)"
    # RESET: the pulse-0 reads with the read noise taken out (quantiles shrunk about the mean)
    y0 = data.g_reset
    if joint:
        r_0 = np.maximum(get("read_noise_b_us") + get("read_noise_c") * np.maximum(y0, 0), READ_FLOOR_US)
    else:
        assert noise_table is not None
        r_0 = np.maximum(np.interp(y0, noise_table[0], noise_table[1]), READ_FLOOR_US)
    v_y = float(np.var(y0))
    shrink = math.sqrt(max(v_y - float(np.mean(r_0 ** 2)), 0.0025 * v_y) / v_y) if v_y > 0 else 1.0
    probs = np.linspace(0.0, 1.0, n_quantiles)
    q_obs = np.quantile(y0, probs)
    quant = np.maximum.accumulate(np.clip(y0.mean() + (q_obs - y0.mean()) * shrink, 0.0, None))
    d2d = get("d2d_rel_std") if d2d_kept else 0.0
    params: dict[str, Any] = {
        "grid_start_us": lik.start, "grid_step_us": lik.step,
        "dg_mean_us": tuple(float(v) for v in m_t), "dg_std_us": tuple(float(v) for v in s_t),
        "hist_mean_us": a_mu if hist_kept else 0.0, "hist_std_us": a_sd if hist_kept else 0.0,
        "hist_pulses": a_pulses, "d2d_rel_std": d2d, "d2d_law": lay.d2d_law if d2d_kept else "normal",
        "c2c_rel_std": get("c2c_rel_std"), "c2c_shape": lay.c2c_shape if lay.kappa else "normal",
        "g_max_rel_std": get("g_max_rel_std") if clip_kept and lr_clip > CLIP_LR_THRESHOLD else 0.0,
        "dg_mean_above": lay.tail,
        "set_min_us": floor if floor is not None else 0.0, "g_max_us": float(g_max), "set_max_us": float(set_max),
        "reset_probs": tuple(float(v) for v in probs), "reset_quantiles_us": tuple(float(v) for v in quant),
    }
    noise = {"b_us": get("read_noise_b_us"), "c": get("read_noise_c")} if joint else None
    quality = {
        "method": "state-space likelihood (assumed-density filter), read noise "
                  + ("fitted jointly: σ_r = b + c·G" if joint else "from the read-noise file"),
        "reads": int(lik.n_reads), "devices": data.n_devices, "cycles": int(data.traces.shape[0]),
        "floor_us": floor, "clip_in_reads_us": cap, "saturation": saturation, "largest_read_us": hi_v,
        "clip_lr_statistic": lr_clip,
        "read_noise_in_pulse_fit": noise,
        "history_lr_statistic": lr_h, "history_kept": hist_kept, "history_decay_at_bound": hist_slow,
        "history_decay_bound_pulses": a_hi, "history_decay_lr_vs_bound": lr_bound,
        "history_fitted": {"hist_mean_us": float(run_h["x"][lay_h.index("hist_mean_us")]),
                           "hist_std_us": float(run_h["x"][lay_h.index("hist_std_us")]),
                           "hist_pulses": math.exp(float(run_h["x"][lay_h.index("log_hist_pulses")]))},
        "c2c_law": law, "c2c_shape": c2c_shape, "mean_step_above_data": above,
        "d2d_std": float(run_d["x"][lay_d.index("d2d_rel_std")]), "d2d_lr_statistic": lr_d, "d2d_kept": d2d_kept,
        "d2d_law": d2d_law,
        "clip_d2d_tested": run_c is not None, "clip_d2d_lr_statistic": lr_c, "clip_d2d_kept": clip_kept,
        "clip_d2d_std": (float(run_c["x"][run_c["layout"].index("g_max_rel_std")]) if run_c is not None
                         else None),
        "nll_per_read": -best["loglik"] / lik.n_reads,
        **_standard_errors(lik, best),
        "optimizer": best["message"],
        "optimizer_runs": [{kk: v for kk, v in r.items() if kk not in ("x", "layout", "bounds")} for r in runs],
    }
    return params, quality
