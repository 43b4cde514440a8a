"""The likelihood of a pulse-response file for ``pcmsim device fit``: an assumed-density filter over
each RESET cycle (see :mod:`device_models.fit_pulse` for the model and the fit).

The filtered latent conductance is kept as a normal ``N(m, P)``; each SET step is linearised about
``m`` (an extended Kalman step; Maybeck 1979, "Stochastic Models, Estimation and Control", ch. 12);
the clipped prediction (point masses at the floor and at G_max, a truncated normal between)
convolved with the read noise has a closed-form density, and its posterior given the read is
moment-matched to the next normal (Minka 2001, "Expectation propagation", §3). The device factor is
integrated out per device by Gauss-Hermite quadrature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .empirical import _interp
from .measurements import PulseData

SMOOTHING = 1e-4
"""Weight of the second-difference penalty on the knots of M and S, per read (ours: small enough to
leave well-measured knots to the data, large enough to tie down knots without data)."""
D2D_NODES = 9
"""Gauss-Hermite nodes over each device's factor (ours: exact for a polynomial of degree 17)."""

TOP_KNOT_QUANTILE = 0.995
"""Quantile of the reads before a pulse at which the top knot of M and S sits (ours: 0.5 % of the
reads, ~300 at 1500 devices × 2 × 30, lie above it)."""
READ_FLOOR_US = 1e-4
"""Smallest read-noise σ, µS: a 6-significant-digit read of ~10 µS (ours)."""
STD_FLOOR_US = 1e-4
"""Smallest cycle-to-cycle std of a step, µS (ours)."""


@dataclass
class _Layout:
    """Where each parameter sits in the optimiser's vector."""

    k: int
    joint_noise: bool
    fit_cap: bool
    history: bool
    d2d: bool
    law: str = "additive"
    """The cycle-to-cycle law: ``additive`` (a table S(G), no κ), ``multiplicative`` (one constant S
    and κ) or ``combined`` (a table S(G) and κ)."""

    @property
    def n_s(self) -> int:
        """Parameters of the additive std: a table of ``k`` knots, or one constant (multiplicative)."""
        return 1 if self.law == "multiplicative" else self.k

    @property
    def kappa(self) -> bool:
        """Whether the law has a multiplicative part κ."""
        return self.law != "additive"

    def names(self) -> list[str]:
        out = [f"M[{i}]" for i in range(self.k)] + [f"S[{i}]" for i in range(self.n_s)]
        out += ["c2c_rel_std"] if self.kappa else []
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
        # the top knot where the reads before a pulse are still dense (a knot above the few largest,
        # noisy reads is fitted by their noise; beyond it M and S are held, or extended by the fit)
        self.step = (float(np.quantile(gb, TOP_KNOT_QUANTILE)) - self.start) / (n_knots - 1)
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
            assert b is not None and c is not None, "a joint read-noise law needs b and c"
            s = b + c * g.clamp(min=0.0)
        return s.clamp(min=READ_FLOOR_US) ** 2

    def nll(self, x: torch.Tensor, lay: _Layout) -> torch.Tensor:
        """Negative log-likelihood per read (plus the smoothing penalty)."""
        k = self.k
        m_tab, s_tab = x[:k], x[k:k + lay.n_s]
        j = k + lay.n_s
        kappa = None
        if lay.kappa:
            kappa, j = x[j], j + 1
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
            sv = s_tab[0] if lay.n_s == 1 else s_tab[i] * (1.0 - f) + s_tab[i + 1] * f
            ph = torch.exp(-n / a_h)
            mean_step = mv + a_mu * ph
            sd_step = sv + a_sd * ph
            if kappa is not None:  # multiplicative: κ·|the device's own mean step|
                sd_step = sd_step + kappa * (factor * mean_step).abs()
            sd_step = sd_step.clamp(min=STD_FLOOR_US)
            mu = m + factor * mean_step
            var = (1.0 + factor * slope) ** 2 * p + sd_step ** 2
            yn = y[:, n:n + 1].expand(n_c, nq)
            r2 = self._sigma_r2(mu, b, c)
            if lay.joint_noise:  # E[σ_r(x)²] over the predicted x (the law is linear in x)
                assert c is not None
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

    def penalty(self, x: np.ndarray, lay: _Layout) -> float:
        k = self.k
        return SMOOTHING * float(np.sum(np.diff(x[:k], 2) ** 2) + np.sum(np.diff(x[k:k + lay.n_s], 2) ** 2))
