"""The pulse-response fit of ``pcmsim device fit``: a state-space likelihood that keeps read noise
apart from programming noise.

Model (the ``empirical`` device, :class:`~device_models.empirical.EmpiricalDevice`). The latent
conductance of a cycle starts at RESET, ``x_0``, and each SET pulse moves it

    x_n = clip(x_{n−1} + f_d·(M(x_{n−1}) + A_μ·P_n) + (S(x_{n−1}) + A_σ·P_n)·ξ_n, floor, G_max),

``P_n = exp(−n/a)`` (the pulse-history state of Nandakumar et al. 2018, J. Appl. Phys. 124:152135),
``f_d = 1 + s·z_d`` the device's own factor (``z_d ~ N(0, 1)``, one per device across its RESET
cycles: device to device), ``ξ_n ~ N(0, 1)`` (cycle to cycle), ``M``, ``S`` piecewise linear on
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
Gauss-Hermite quadrature (:data:`D2D_NODES`; a device with many informative steps pins its factor
down more tightly than the nodes resolve, which biases ``s``: see docs/device-fit.md). All
parameters by maximum likelihood: scipy L-BFGS-B on torch autograd gradients, a weak penalty on
the second differences of ``M`` and ``S``.

Identifiability. The base model (``M``, ``S``, G_max, read noise) is fitted first; the pulse-history
terms (``A_μ``, ``A_σ``, ``a``) are kept only where the likelihood-ratio statistic exceeds
:data:`HISTORY_LR_THRESHOLD`, the device-to-device factor where its statistic exceeds
:data:`D2D_LR_THRESHOLD` (tested again once history terms are in); else they are 0. G_max: the
clip level where the reads show one (they pile up there, noise-free or noisy); where the mean
step instead falls smoothly towards 0, the level where the mean step reaches 0 in the data, or
extrapolated linearly from the top of the data (the tables are extended up to it).

Assumptions a lab must meet: reads taken right after each pulse (no drift between pulse and read),
read noise independent from read to read (no 1/f correlation over the pulse train), each cycle
starting with a RESET read, steps normal given G (heavier tails are matched in mean and variance
only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .empirical import _interp
from .fit_checks import G_MAX_LIMIT_US, FitError
from .measurements import PulseData

SMOOTHING = 1e-4
"""Weight of the second-difference penalty on the knots of M and S, per read (ours: small enough to
leave well-measured knots to the data, large enough to tie down knots without data)."""
D2D_NODES = 9
"""Gauss-Hermite nodes over each device's factor (ours: exact for a polynomial of degree 17)."""
D2D_LR_THRESHOLD = 9.0
"""Likelihood-ratio statistic above which the device-to-device factor is kept: 3 standard errors'
worth for one parameter (ours)."""
HISTORY_LR_THRESHOLD = 16.27
"""Likelihood-ratio statistic above which the pulse-history terms are kept: the χ² quantile at
0.999 for their 3 parameters (ours; conservative, since ``a`` is not identified without them)."""
ABNORMAL_GRADIENT = 1e-3
"""Largest projected gradient of the per-read negative log-likelihood at which a line-search stop
(scipy's "ABNORMAL") is an optimum at the precision of f (ours; gtol is 1e-5)."""
CLIP_LR_THRESHOLD = 9.0
"""Likelihood-ratio statistic above which a fitted clip of the SET result (G_max) is taken as seen in
the reads (ours: 3 standard errors' worth for one parameter)."""
TIE_MIN_COUNT = 5
"""Reads exactly equal to the extreme value, at least this many: the device clips there and the
reads are noise-free (continuous reads never tie; ours)."""
READ_FLOOR_US = 1e-4
"""Smallest read-noise σ, µS: a 6-significant-digit read of ~10 µS (ours)."""
STD_FLOOR_US = 1e-4
"""Smallest cycle-to-cycle std of a step, µS (ours)."""
_FAR_US = 1e4  # a clip this far away is no clip


@dataclass
class _Layout:
    """Where each parameter sits in the optimiser's vector."""

    k: int
    joint_noise: bool
    fit_cap: bool
    history: bool
    d2d: bool
    n_dev: int = 0

    def names(self) -> list[str]:
        out = [f"M[{i}]" for i in range(self.k)] + [f"S[{i}]" for i in range(self.k)]
        out += ["g_max_us"] if self.fit_cap else []
        out += ["read_noise_b_us", "read_noise_c"] if self.joint_noise else []
        out += ["hist_mean_us", "hist_std_us", "log_hist_pulses"] if self.history else []
        out += ["d2d_rel_std"] if self.d2d else []
        return out

    def index(self, name: str) -> int:
        return self.names().index(name)


def _log_ndtr_diff(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``log(Φ(hi) − Φ(lo))`` for ``hi ≥ lo``, accurate in both tails."""
    flip = lo > 0
    a = torch.where(flip, -hi, lo)
    b = torch.where(flip, -lo, hi)
    lb, la = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    return lb + torch.log1p(-torch.exp((la - lb).clamp(max=-1e-12)))


_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _log_normal(y: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return -0.5 * (y - mu) ** 2 / var - 0.5 * torch.log(var) - _LOG_SQRT_2PI


def _update(mu: torch.Tensor, var: torch.Tensor, y: torch.Tensor, r2: torch.Tensor, lo: float | None,
            hi: torch.Tensor | float | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One read ``y`` of ``clip(N(mu, var), lo, hi)`` (``None``: no clip there) with read-noise variance
    ``r2``: (log density of ``y``, posterior mean, posterior variance), the posterior (point masses
    at the clips and a truncated normal between) moment-matched to a normal."""
    tot = var + r2
    gain = var / tot
    d = y - mu
    m_t = mu + gain * d
    v_t = gain * r2
    ll_mid = -0.5 * d * d / tot - 0.5 * torch.log(tot) - _LOG_SQRT_2PI
    if lo is None and hi is None:
        return ll_mid, m_t, v_t
    s_t = v_t.sqrt()
    sd = var.sqrt()
    comps, points = [], []
    pa = pb = alpha = beta = None
    if hi is not None:
        beta = (hi - m_t) / s_t
        comps.append(torch.special.log_ndtr((mu - hi) / sd) + _log_normal(y, torch.as_tensor(hi, dtype=mu.dtype), r2))
        points.append(hi)
    if lo is not None:
        alpha = (lo - m_t) / s_t
        comps.append(torch.special.log_ndtr((lo - mu) / sd) + _log_normal(y, torch.as_tensor(lo, dtype=mu.dtype), r2))
        points.append(lo)
    if alpha is None:
        log_z = torch.special.log_ndtr(beta)
    elif beta is None:
        log_z = torch.special.log_ndtr(-alpha)
    else:
        log_z = _log_ndtr_diff(alpha, beta)
    lw_mid = ll_mid + log_z
    ll = lw_mid
    for c in comps:
        ll = torch.logaddexp(ll, c)
    shift = torch.zeros_like(m_t)
    curv = torch.zeros_like(m_t)
    if beta is not None:
        pb = torch.exp(-0.5 * beta * beta - _LOG_SQRT_2PI - log_z)
        shift = shift - pb
        curv = curv - beta * pb
    if alpha is not None:
        pa = torch.exp(-0.5 * alpha * alpha - _LOG_SQRT_2PI - log_z)
        shift = shift + pa
        curv = curv + alpha * pa
    mean_mid = m_t + s_t * shift
    var_mid = (v_t * (1.0 + curv - shift * shift)).clamp(min=0.0)
    r_mid = torch.exp(lw_mid - ll)
    m_new = r_mid * mean_mid
    e2 = r_mid * (var_mid + mean_mid * mean_mid)
    for c, pt in zip(comps, points):
        r_c = torch.exp(c - ll)
        m_new = m_new + r_c * pt
        e2 = e2 + r_c * pt * pt
    p_new = (e2 - m_new * m_new).clamp(min=1e-12)
    return ll, m_new, p_new


class PulseLikelihood:
    """The negative log-likelihood of a pulse-response file under a :class:`_Layout`."""

    def __init__(self, data: PulseData, *, n_knots: int, floor_us: float | None, cap_us: float | None,
                 noise_table: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.data = data
        self.k = n_knots
        tr = torch.as_tensor(data.traces, dtype=torch.float64)  # [cycles, pulses + 1]
        self.y = torch.nan_to_num(tr, nan=0.0)
        self.ok = ~torch.isnan(tr)
        self.n_reads = float(self.ok[:, 1:].sum())
        cycle_dev = np.zeros(tr.shape[0], dtype=np.int64)
        cycle_dev[data.cycle] = data.device
        self.cycle_dev = torch.as_tensor(cycle_dev)
        gb = data.g_before
        self.start = float(gb.min())
        self.step = (float(gb.max()) - self.start) / (n_knots - 1)
        self.floor = floor_us
        self.cap = cap_us
        z, w = np.polynomial.hermite_e.hermegauss(D2D_NODES)
        self.z = torch.as_tensor(z)
        self.log_w = torch.as_tensor(np.log(w / math.sqrt(2.0 * math.pi)))
        self.noise_table = None if noise_table is None else tuple(torch.as_tensor(a, dtype=torch.float64)
                                                                  for a in noise_table)

    def _sigma_r2(self, g: torch.Tensor, b: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        if self.noise_table is not None:
            xp, fp = self.noise_table
            s = _interp(g.reshape(-1), xp, fp).reshape(g.shape)
        else:
            s = b + c * g.clamp(min=0.0)
        return s.clamp(min=READ_FLOOR_US) ** 2

    def nll(self, x: torch.Tensor, lay: _Layout) -> torch.Tensor:
        """Negative log-likelihood per read (plus the smoothing penalty)."""
        k = self.k
        m_tab, s_tab = x[:k], x[k:2 * k]
        j = 2 * k
        cap: Any = self.cap
        if lay.fit_cap:
            cap, j = x[j], j + 1
        b = c = None
        if lay.joint_noise:
            b, c, j = x[j], x[j + 1], j + 2
        a_mu = a_sd = torch.zeros((), dtype=x.dtype)
        a_h = torch.ones((), dtype=x.dtype)
        if lay.history:
            a_mu, a_sd, a_h, j = x[j], x[j + 1], torch.exp(x[j + 2]), j + 3
        factor = (1.0 + x[j] * self.z)[None, :] if lay.d2d else torch.ones(1, 1, dtype=x.dtype)
        lo = self.floor
        y, ok = self.y, self.ok
        n_c, n_p = y.shape
        nq = factor.shape[1]
        # the RESET read: a normal prior over the RESET conductance (fitted), then the read itself
        y0 = y[:, 0]
        r2_0 = self._sigma_r2(y0, b, c)
        v_r = (y0.var() - r2_0.mean()).clamp(min=(0.05 * y0.std()) ** 2 + 1e-8)
        _, m, p = _update(y0.mean().expand(n_c), v_r.expand(n_c), y0, r2_0, None, None)
        m, p = m[:, None].expand(n_c, nq), p[:, None].expand(n_c, nq)
        ll_sum = torch.zeros(n_c, nq, dtype=x.dtype)
        diff = torch.diff(m_tab)
        for n in range(1, n_p):
            u = ((m - self.start) / self.step).clamp(0.0, k - 1.0)
            i = u.detach().floor().long().clamp(max=k - 2)
            f = u - i
            mv = m_tab[i] * (1.0 - f) + m_tab[i + 1] * f
            inside = ((m > self.start) & (m < self.start + (k - 1) * self.step)).to(x.dtype)
            slope = diff[i] / self.step * inside
            sv = s_tab[i] * (1.0 - f) + s_tab[i + 1] * f
            ph = torch.exp(-n / a_h)
            mean_step = mv + a_mu * ph
            sd_step = (sv + a_sd * ph).clamp(min=STD_FLOOR_US)
            mu = m + factor * mean_step
            var = (1.0 + factor * slope) ** 2 * p + sd_step ** 2
            yn = y[:, n:n + 1].expand(n_c, nq)
            r2 = self._sigma_r2(mu, b, c)
            if lay.joint_noise:  # E[σ_r(x)²] over the predicted x (the law is linear in x)
                r2 = r2 + c * c * var
            ll, m_new, p_new = _update(mu, var, yn, r2, lo, cap)
            okn = ok[:, n:n + 1]
            ll_sum = ll_sum + torch.where(okn, ll, torch.zeros_like(ll))
            m = torch.where(okn, m_new, mu)
            p = torch.where(okn, p_new, var)
        if lay.d2d:  # each device's factor integrated out (Gauss-Hermite over z ~ N(0, 1))
            per_dev = torch.zeros(self.data.n_devices, nq, dtype=x.dtype).index_add(0, self.cycle_dev, ll_sum)
            total = torch.logsumexp(per_dev + self.log_w, dim=1).sum()
        else:
            total = ll_sum.sum()
        pen = SMOOTHING * (torch.diff(m_tab, 2).pow(2).sum() + torch.diff(s_tab, 2).pow(2).sum())
        return -total / self.n_reads + pen

    def penalty(self, x: np.ndarray) -> float:
        k = self.k
        return SMOOTHING * float(np.sum(np.diff(x[:k], 2) ** 2) + np.sum(np.diff(x[k:2 * k], 2) ** 2))


# ---- the fit --------------------------------------------------------------------------------------
def _ties(x: np.ndarray, value: float) -> np.ndarray:
    return np.abs(x - value) <= 1e-9 * max(1.0, abs(value))


def _minimize(lik: PulseLikelihood, lay: _Layout, x0: np.ndarray, bounds: list, name: str) -> dict[str, Any]:
    import scipy.optimize  # noqa: PLC0415 - the fit needs scipy, the models do not

    def fun(xv: np.ndarray) -> tuple[float, np.ndarray]:
        x = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
        loss = lik.nll(x, lay)
        loss.backward()
        g = x.grad.numpy().copy()
        val = float(loss.detach())
        if not np.all(np.isfinite(g)) or not math.isfinite(val):
            return 1e10, np.zeros_like(xv)
        return val, g

    flush = torch.set_flush_denormal(True)  # exp() of far tails: denormals are slow on x86
    try:
        res = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                      options={"maxiter": 1000, "maxfun": 2000, "ftol": 1e-10, "gtol": 1e-5})
    finally:
        if flush:
            torch.set_flush_denormal(False)
    msg = res.message if isinstance(res.message, str) else res.message.decode()
    converged = bool(res.success)
    if not converged and "ABNORMAL" in msg and res.nit > 0 and math.isfinite(float(res.fun)):
        # the line search cannot improve f further: an optimum at the precision of f where the
        # projected gradient is small (a stop at the start, or with a large gradient, is a failure)
        g = np.asarray(res.jac, dtype=float)
        lo_b = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
        hi_b = np.array([np.inf if b[1] is None else b[1] for b in bounds])
        free = ~(((res.x <= lo_b + 1e-9) & (g > 0)) | ((res.x >= hi_b - 1e-9) & (g < 0)))
        pg = float(np.max(np.abs(g[free]))) if free.any() else 0.0
        converged = pg <= ABNORMAL_GRADIENT
        msg += f" (projected gradient {pg:.2g}: {'an optimum at the precision of f' if converged else 'no optimum'})"
    names = lay.names()
    at_bound = []
    for i, (lo, hi) in enumerate(bounds):
        nm = names[i]
        if nm.startswith(("M[", "S[", "read_noise", "hist_", "d2d", "reset_")) and nm != "log_hist_pulses":
            continue  # 0 (or no bound) is a physical end for these
        at_hi = hi is not None and abs(res.x[i] - hi) < 1e-6 * max(1.0, abs(hi))
        if nm == "g_max_us":
            at_hi = False  # above every read: no clip in the data (G_max then comes from the mean step)
        if (lo is not None and abs(res.x[i] - lo) < 1e-6 * max(1.0, abs(lo))) or at_hi:
            at_bound.append(nm)
    ll = -(float(res.fun) - lik.penalty(res.x)) * lik.n_reads
    return {"name": name, "x": res.x, "loglik": ll, "converged": converged, "iterations": int(res.nit),
            "message": f"scipy L-BFGS-B: {msg} after {res.nit} iterations", "at_bound": at_bound, "layout": lay,
            "bounds": bounds}


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
    runs = [best]
    # device-to-device factor (several devices; more cycles per device sharpen it), kept where the
    # likelihood ratio says so (the base model is nested at s = 0)
    lay_d = _Layout(k, joint, fit_cap, False, True)
    run_d = _minimize(lik, lay_d, np.r_[best["x"], 0.05], [*bounds, (0.0, 0.9)], "with device-to-device factor")
    lr_d = 2.0 * (run_d["loglik"] - best["loglik"])
    d2d_kept = lr_d > D2D_LR_THRESHOLD
    if d2d_kept:
        runs.append(run_d)
        best = run_d
    # pulse-history terms on top, kept where the likelihood ratio says so
    lay_h = _Layout(k, joint, fit_cap, True, d2d_kept)
    xb = best["x"]
    n_f = 1 if d2d_kept else 0
    hist0 = [0.1 * abs(float(np.mean(m0))) + 1e-3, 0.0, math.log(3.0)]
    x_h = np.r_[xb[:len(xb) - n_f], hist0, xb[len(xb) - n_f:]]
    b_hist = [(None, None), (None, None), (math.log(0.2), math.log(200.0))]
    b_h = [*bounds, *b_hist] + ([(0.0, 0.9)] if d2d_kept else [])
    run_h = _minimize(lik, lay_h, x_h, b_h, "with pulse-history terms")
    lr_h = 2.0 * (run_h["loglik"] - best["loglik"])
    hist_kept = lr_h > HISTORY_LR_THRESHOLD
    if hist_kept:
        runs.append(run_h)
        best = run_h
        if d2d_kept:  # history can mimic a device factor (and back): the factor tested again with history
            lay_hn = _Layout(k, joint, fit_cap, True, False)
            run_hn = _minimize(lik, lay_hn, run_h["x"][:-1], [*bounds, *b_hist],
                               "with pulse-history terms, no device factor")
            lr_d = 2.0 * (run_h["loglik"] - run_hn["loglik"])
            if lr_d <= D2D_LR_THRESHOLD:
                d2d_kept, best = False, run_hn
                runs = [r for r in runs if r["name"] != "with device-to-device factor"][:-1] + [run_hn]
    x, lay = best["x"], best["layout"]
    get = lambda nm, default=0.0: float(x[lay.index(nm)]) if nm in lay.names() else default  # noqa: E731
    m_t, s_t = np.array(x[:k]), np.array(x[k:2 * k])
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
        cap_fit, cap_hi = get("g_max_us"), bounds[lay.index("g_max_us")][1]
        x_far = np.array(x)
        x_far[lay.index("g_max_us")] = cap_hi
        with torch.no_grad():
            ll_far = -float(lik.nll(torch.tensor(x_far), lay)) * lik.n_reads + lik.penalty(x_far) * lik.n_reads
        lr_clip = 2.0 * (best["loglik"] - ll_far)
        g_max, saturation = cap_fit, "clip (fitted)"
        if lr_clip <= CLIP_LR_THRESHOLD:  # no clip in the data: where the mean step reaches 0
            set_max = cap_hi
            neg = np.nonzero(m_t <= 0)[0]
            if neg.size and neg[0] > 0:
                i0 = int(neg[0])
                g_max = lik.start + (i0 - 1 + m_t[i0 - 1] / (m_t[i0 - 1] - m_t[i0])) * lik.step
                saturation = "mean step reaches 0 in the data"
            elif m_t[-1] > 0 and slope_top < 0:
                g_max = top + m_t[-1] / -slope_top
                saturation = "mean step extrapolated linearly to 0 above the data"
                while lik.start + (len(m_t) - 1) * lik.step < g_max and len(m_t) < 4 * k:
                    m_t = np.r_[m_t, max(m_t[-1] + slope_top * lik.step, 0.0)]
                    s_t = np.r_[s_t, s_t[-1]]
                set_max = max(cap_hi, g_max)
            else:
                g_max, saturation = float(reads.max()), "not reached in the data: the largest read (a lower bound)"
    # RESET: the pulse-0 reads with the read noise taken out (quantiles shrunk about the mean)
    y0 = data.g_reset
    if joint:
        r_0 = np.maximum(get("read_noise_b_us") + get("read_noise_c") * np.maximum(y0, 0), READ_FLOOR_US)
    else:
        r_0 = np.maximum(np.interp(y0, *noise_table), READ_FLOOR_US)
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
        "hist_pulses": a_pulses, "d2d_rel_std": d2d,
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
        "history_lr_statistic": lr_h, "history_kept": hist_kept,
        "history_fitted": {"hist_mean_us": float(run_h["x"][lay_h.index("hist_mean_us")]),
                           "hist_std_us": float(run_h["x"][lay_h.index("hist_std_us")]),
                           "hist_pulses": math.exp(float(run_h["x"][lay_h.index("log_hist_pulses")]))},
        "d2d_std": float(run_d["x"][-1]), "d2d_lr_statistic": lr_d, "d2d_kept": d2d_kept,
        "nll_per_read": -best["loglik"] / lik.n_reads,
        "optimizer": best["message"],
        "optimizer_runs": [{kk: v for kk, v in r.items() if kk not in ("x", "layout", "bounds")} for r in runs],
    }
    return params, quality
