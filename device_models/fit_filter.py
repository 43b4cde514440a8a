"""The likelihood of a pulse-response file for ``pcmsim device fit``: an assumed-density filter over
each RESET cycle (see :mod:`device_models.fit_pulse` for the model and the fit).

The filtered latent conductance is kept as a normal ``N(m, P)``; each SET step is linearised about
``m`` (an extended Kalman step; Maybeck 1979, "Stochastic Models, Estimation and Control", ch. 12);
the clipped prediction (point masses at the floor and at G_max, a truncated normal between)
convolved with the read noise has a closed-form density, and its posterior given the read is
moment-matched to the next normal (Minka 2001, "Expectation propagation", §3). The device factor is
integrated out per device by adaptive Gauss-Hermite quadrature (nodes centred on each device's own
likelihood: Liu & Pierce 1994, Biometrika 81:624).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .empirical import _d2d_factor, _d2d_sigma, _interp
from .measurements import PulseData

SMOOTHING = 1e-4
"""Weight of the second-difference penalty on the knots of M and S, per read (ours: small enough to
leave well-measured knots to the data, large enough to tie down knots without data)."""
D2D_NODES = 9
"""Gauss-Hermite nodes over each device's factor that find where its likelihood lies (ours)."""
D2D_MIN_SPREAD = 1e-4
"""Smallest device-factor std at which the factor's nodes are placed and weighed (ours: a device factor
known to 0.01 %)."""
D2D_ADAPTED_NODES = 5
"""Gauss-Hermite nodes over each device's factor once centred on its likelihood (adaptive quadrature:
ours; against a 201-node rule, 0.003 log-units off in 20,000 at 300 devices × 2 × 30 of ``exp-sat``,
where 9 fixed nodes are 7 off)."""

TOP_KNOT_QUANTILE = 0.995
"""Quantile of the reads before a pulse at which the top knot of M and S sits (ours: 0.5 % of the
reads, ~300 at 1500 devices × 2 × 30, lie above it)."""
READ_FLOOR_US = 1e-4
"""Smallest read-noise σ, µS: a 6-significant-digit read of ~10 µS (ours)."""
STD_FLOOR_US = 1e-4
"""Smallest cycle-to-cycle std of a step, µS (ours)."""
C2C_PIECES = 3
"""A log-normal multiplicative step (``c2c_shape`` "lognormal") is filtered as a mixture over this
many pieces of equal probability of its normal variable ``η``; in each the factor is linear in the
truncated ``η`` with the piece's mean and variance of the factor (so the mixture has the step's mean
and variance exactly, and each piece's density of a read is closed-form). Ours: against the exact
density of a read after one step (κ 0.36, mean step 1.3 µS, read σ 0.16 µS), the Kullback-Leibler
divergence per read is 0.0027 with 3 such pieces, 0.050 with one normal step of the same mean and
variance (``tests/test_device_fit_skew.py``)."""
_PIECE_EDGE = 40.0
"""The outer edges of the outer pieces, in standard units of ``η`` (finite, so that gradients stay
finite: ``Φ(−40)`` is 0 in float64)."""


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
    d2d_law: str = "normal"
    """The device factor's law (with ``d2d``): ``normal``, ``f = 1 + s·z``, or ``lognormal``, ``f =
    exp(σ·z − σ²/2)`` with ``σ² = log(1 + s²)``; ``s`` is the factor's std in both
    (:data:`~device_models.empirical.D2D_LAWS`)."""
    c2c_shape: str = "normal"
    """The multiplicative part's shape (with κ): ``normal``, the step ``N(f·M, (S + κ·|f·M|)²)``; or
    ``lognormal``, ``f·M·L + S·ξ`` with ``L = exp(σ·η − σ²/2)``, ``σ² = log(1 + κ²)`` (mean 1, std κ:
    right-skewed) and ``ξ`` independent (:data:`~device_models.empirical.C2C_SHAPES`)."""
    clip_d2d: bool = False
    """A clip per device: ``G_max·(1 + g_max_rel_std·z_c)``, ``z_c ~ N(0, 1)`` once per device (needs a
    fitted G_max), carried by the filter as a second state."""
    tail: str = "hold"
    """The mean step above the top knot: ``hold`` (the top knot's) or ``linear`` (the top segment
    continued; :data:`~device_models.empirical.MEAN_TAILS`). The std is held there either way."""

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
        out += ["g_max_rel_std"] if self.clip_d2d else []
        return out

    def index(self, name: str) -> int:
        return self.names().index(name)


@dataclass
class _Terms:
    """The model's terms unpacked from a parameter vector (see :class:`_Layout`)."""

    m_tab: torch.Tensor
    diff: torch.Tensor
    s_tab: torch.Tensor
    a_mu: torch.Tensor
    a_sd: torch.Tensor
    a_h: torch.Tensor
    cap: Any
    kappa: torch.Tensor | None = None
    b: torch.Tensor | None = None
    c: torch.Tensor | None = None
    factor: torch.Tensor = dataclasses.field(default_factory=lambda: torch.ones(1, 1, dtype=torch.float64))
    clip_rel: torch.Tensor | None = None


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
            hi: torch.Tensor | float | None, mid: tuple[torch.Tensor, ...] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One read ``y`` of ``clip(N(mu, var), lo, hi)`` (``None``: no clip there) with read-noise variance
    ``r2``: (log density of ``y``, posterior mean, posterior variance), the posterior (point masses
    at the clips and a truncated normal between) moment-matched to a normal. ``mid``: the unclipped
    result's log density of ``y`` and posterior mean and variance where it is not normal (a piece of a
    log-normal step, :meth:`PulseLikelihood._piece_read`); ``N(mu, var)`` then gives the clips' masses."""
    if mid is None:
        tot = var + r2
        gain = var / tot
        d = y - mu
        m_t = mu + gain * d
        v_t = gain * r2
        ll_mid = -0.5 * d * d / tot - 0.5 * torch.log(tot) - _LOG_SQRT_2PI
    else:
        ll_mid, m_t, v_t = mid
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


def _observe_one(m_o: torch.Tensor, v_o: torch.Tensor, m_x: torch.Tensor, v_x: torch.Tensor, cov: torch.Tensor,
                 y: torch.Tensor, r2: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A read ``y`` of the first of a jointly normal pair (means ``m_o``, ``m_x``; variances ``v_o``,
    ``v_x``; covariance ``cov``) with read-noise variance ``r2``, as a Kalman step: (log density of
    ``y``; the pair's posterior means and variances, first then second; their covariance; the
    posterior std of first − second)."""
    s = v_o + r2
    d = y - m_o
    ll = -0.5 * d * d / s - 0.5 * torch.log(s) - _LOG_SQRT_2PI
    m_o2 = m_o + v_o / s * d
    v_o2 = v_o * r2 / s
    m_x2 = m_x + cov / s * d
    v_x2 = (v_x - cov * cov / s).clamp(min=0.0)
    c2 = cov * r2 / s
    t = (v_o2 + v_x2 - 2.0 * c2).clamp(min=1e-12).sqrt()
    return ll, m_o2, v_o2, m_x2, v_x2, c2, t


def _update_clip(mu: torch.Tensor, var: torch.Tensor, rho: torch.Tensor, mc: torch.Tensor, pc: torch.Tensor,
                 y: torch.Tensor, r2: torch.Tensor, lo: float | None = None) -> tuple[torch.Tensor, ...]:
    """One read ``y`` of ``min(X, C)`` with read-noise variance ``r2``, where the unclipped result ``X``
    and the device's clip ``C`` are jointly normal (means ``mu``, ``mc``; variances ``var``, ``pc``;
    covariance ``rho``): (log density of ``y``; the posterior mean and variance of the new
    conductance ``G = min(X, C)``; of ``C``; their covariance), the posterior moment-matched to a
    joint normal.

    Two branches: ``X < C`` (the read is ``X`` plus noise) and ``X > C`` (the read is ``C`` plus noise).
    In each, the read updates the pair as a linear-Gaussian observation (a Kalman step) and the pair
    is then truncated to the branch's half-plane, whose probability and moments are closed-form
    (Tallis 1961, J. R. Stat. Soc. B 23:223). With ``pc = rho = 0`` this is :func:`_update` with a
    fixed clip ``mc``.

    A floor ``lo`` (far below the clips) adds a third branch, ``X < lo`` (the read is ``lo`` plus
    noise), and truncates the first at ``lo`` after its truncation at the clip (the two taken one
    after the other: exact where the posterior does not reach both, as with a floor at 0 and clips
    at tens of µS)."""
    # branch A: G = X < C
    ll_a, mx_a, vx_a, mc_a, pc_a, cx_a, t_a = _observe_one(mu, var, mc, pc, rho, y, r2)
    beta = (mc_a - mx_a) / t_a  # X − C < 0 in standard units: below beta
    lz_a = torch.special.log_ndtr(beta)
    lam_a = torch.exp(-0.5 * beta * beta - _LOG_SQRT_2PI - lz_a)
    f_a = (beta * lam_a + lam_a * lam_a) / (t_a * t_a)
    ux, uc = vx_a - cx_a, cx_a - pc_a  # Σ·(1, −1)
    g_a = mx_a - ux * lam_a / t_a
    c_a = mc_a - uc * lam_a / t_a
    vg_a = (vx_a - ux * ux * f_a).clamp(min=0.0)
    vc_a = (pc_a - uc * uc * f_a).clamp(min=0.0)
    cgc_a = cx_a - ux * uc * f_a
    w_a = ll_a + lz_a
    if lo is not None:  # and X > lo: the pair truncated on X, C following by regression
        sd_a = vg_a.clamp(min=1e-12).sqrt()
        a0 = (lo - g_a) / sd_a
        lz_0 = torch.special.log_ndtr(-a0)
        lam_0 = torch.exp(-0.5 * a0 * a0 - _LOG_SQRT_2PI - lz_0)
        k_0 = (a0 * lam_0 - lam_0 * lam_0).clamp(min=-1.0 + 1e-12, max=0.0)  # Var[X] shrinks to vg_a·(1 + k_0)
        reg = cgc_a / (sd_a * sd_a)
        shift = sd_a * lam_0
        g_a, c_a = g_a + shift, c_a + reg * shift
        vc_a = (vc_a + reg * reg * vg_a * k_0).clamp(min=0.0)
        cgc_a = cgc_a * (1.0 + k_0)
        vg_a = vg_a * (1.0 + k_0)
        w_a = w_a + lz_0
    # branch B: G = C < X
    ll_b, mc_b, pc_b, mx_b, _, cx_b, t_b = _observe_one(mc, pc, mu, var, rho, y, r2)
    alpha = (mc_b - mx_b) / t_b  # X − C > 0 in standard units: above alpha
    lz_b = torch.special.log_ndtr(-alpha)
    lam_b = torch.exp(-0.5 * alpha * alpha - _LOG_SQRT_2PI - lz_b)
    uc_b = cx_b - pc_b
    c_b = mc_b + uc_b * lam_b / t_b
    vc_b = (pc_b - uc_b * uc_b * (lam_b * lam_b - alpha * lam_b) / (t_b * t_b)).clamp(min=0.0)
    w_b = ll_b + lz_b
    comps = [(w_a, g_a, vg_a, c_a, vc_a, cgc_a), (w_b, c_b, vc_b, c_b, vc_b, vc_b)]
    if lo is not None:  # branch F: G = lo > X (C given X < lo, by regression)
        sd = var.sqrt()
        a_f = (lo - mu) / sd
        lz_f = torch.special.log_ndtr(a_f)
        lam_f = torch.exp(-0.5 * a_f * a_f - _LOG_SQRT_2PI - lz_f)
        reg_f = rho / var
        c_f = mc - reg_f * sd * lam_f
        vc_f = (pc - reg_f * rho * (a_f * lam_f + lam_f * lam_f)).clamp(min=0.0)
        w_f = lz_f + _log_normal(y, torch.as_tensor(lo, dtype=mu.dtype), r2)
        zero = torch.zeros_like(c_f)
        comps.append((w_f, torch.full_like(c_f, lo), zero, c_f, vc_f, zero))
    return _moment_match(comps)


def _mix(log_w: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A mixture of normals along the first dimension (log weights, means, variances) matched in its
    first two moments: (log of the total weight, mean, variance)."""
    ll = torch.logsumexp(log_w, dim=0)
    r = torch.exp(log_w - ll)
    m = (r * mean).sum(0)
    return ll, m, ((r * (var + mean * mean)).sum(0) - m * m).clamp(min=1e-12)


def _moment_match(comps: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """A mixture of joint normals of (G, C), each ``(log weight, E[G], Var G, E[C], Var C, Cov)``,
    matched in its first two moments: (log of the total weight, E[G], Var G, E[C], Var C, Cov)."""
    ll = comps[0][0]
    for comp in comps[1:]:
        ll = torch.logaddexp(ll, comp[0])
    m_g = m_c = e_gg = e_cc = e_gc = torch.zeros_like(ll)
    for w, g, vg, c, vc, cgc in comps:
        r = torch.exp(w - ll)
        m_g, m_c = m_g + r * g, m_c + r * c
        e_gg, e_cc, e_gc = e_gg + r * (vg + g * g), e_cc + r * (vc + c * c), e_gc + r * (cgc + g * c)
    p_g = (e_gg - m_g * m_g).clamp(min=1e-12)
    p_c = (e_cc - m_c * m_c).clamp(min=0.0)
    return ll, m_g, p_g, m_c, p_c, e_gc - m_g * m_c


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
        # device-major reads (a device's cycles in file order) for a clip per device
        slot = np.zeros(tr.shape[0], dtype=np.int64)
        seen = np.zeros(data.n_devices, dtype=np.int64)
        for i, d in enumerate(cycle_dev):
            slot[i], seen[d] = seen[d], seen[d] + 1
        y_dev = torch.zeros(data.n_devices, max(int(seen.max()), 1), tr.shape[1], dtype=torch.float64)
        ok_dev = torch.zeros(y_dev.shape, dtype=torch.bool)
        y_dev[self.cycle_dev, torch.as_tensor(slot)] = self.y
        ok_dev[self.cycle_dev, torch.as_tensor(slot)] = self.ok
        self.y_dev, self.ok_dev = y_dev, ok_dev
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
        z, w = np.polynomial.hermite_e.hermegauss(D2D_ADAPTED_NODES)
        self.z_a = torch.as_tensor(z)
        self.log_w_a = torch.as_tensor(np.log(w / math.sqrt(2.0 * math.pi)))
        self._frozen: tuple[torch.Tensor, torch.Tensor] | None = None
        # the pieces of a log-normal step's η: edges, log-probabilities, means and variances of η in each
        inner = torch.special.ndtri(torch.arange(1, C2C_PIECES, dtype=torch.float64) / C2C_PIECES)
        edges = torch.cat([torch.tensor([-_PIECE_EDGE], dtype=torch.float64), inner,
                           torch.tensor([_PIECE_EDGE], dtype=torch.float64)])
        pdf = torch.exp(-0.5 * edges * edges - _LOG_SQRT_2PI)
        prob = torch.diff(torch.special.ndtr(edges))
        e_mean = -torch.diff(pdf) / prob
        e_var = 1.0 - torch.diff(edges * pdf) / prob - e_mean * e_mean
        self.piece_edges: torch.Tensor = edges
        self.piece_prob: torch.Tensor = prob
        self.piece_log_w: torch.Tensor = torch.log(prob)[:, None, None]
        self.piece_eta: tuple[torch.Tensor, torch.Tensor] = (e_mean[:, None, None], e_var[:, None, None])
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

    def _unpack(self, x: torch.Tensor, lay: _Layout) -> _Terms:
        k = self.k
        m_tab = x[:k]
        t = _Terms(m_tab=m_tab, diff=torch.diff(m_tab), s_tab=x[k:k + lay.n_s], a_mu=torch.zeros((), dtype=x.dtype),
                   a_sd=torch.zeros((), dtype=x.dtype), a_h=torch.ones((), dtype=x.dtype), cap=self.cap)
        j = k + lay.n_s
        if lay.kappa:
            t.kappa, j = x[j], j + 1
        if lay.fit_cap:
            t.cap, j = x[j], j + 1
        if lay.joint_noise:
            t.b, t.c, j = x[j], x[j + 1], j + 2
        if lay.history:
            t.a_mu, t.a_sd, t.a_h, j = x[j], x[j + 1], torch.exp(x[j + 2]), j + 3
        if lay.d2d:
            sig = _d2d_sigma(x[j], lay.d2d_law)
            t.factor = _d2d_factor(sig * self.z, sig, lay.d2d_law)[None, :]
        else:
            t.factor = torch.ones(1, 1, dtype=x.dtype)
        j += 1 if lay.d2d else 0
        if lay.clip_d2d:
            t.clip_rel = x[j]
        return t

    def _reset_prior(self, t: _Terms) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A normal prior over the RESET conductance (from the pulse-0 reads of every cycle): (mean,
        variance, each pulse-0 read's read-noise variance)."""
        y0 = self.y[:, 0]
        r2_0 = self._sigma_r2(y0, t.b, t.c)
        v_r = (y0.var() - r2_0.mean()).clamp(min=(0.05 * y0.std()) ** 2 + 1e-8)
        return y0.mean(), v_r, r2_0

    def _pieces(self, kappa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The log-normal factor ``L = exp(σ·η − σ²/2)`` (mean 1, std ``κ``) in the pieces of ``η``
        (:data:`C2C_PIECES`): each piece's mean of ``L`` and its slope in ``η`` (the square root of
        the ratio of their variances in the piece), shaped ``[pieces, 1, 1]`` (closed form:
        ``E[e^(ση); a < η < b] = e^(σ²/2)·(Φ(b − σ) − Φ(a − σ))``)."""
        sig2 = torch.log1p(kappa * kappa)
        sig = sig2.sqrt()
        e, w = self.piece_edges, self.piece_prob
        ndtr = torch.special.ndtr
        mean = torch.diff(ndtr(e - sig)) / w
        var = (torch.exp(sig2) * torch.diff(ndtr(e - 2.0 * sig)) / w - mean * mean).clamp(min=0.0)
        return mean[:, None, None], (var[:, None, None] / self.piece_eta[1]).sqrt()

    def _piece_read(self, m: torch.Tensor, own: torch.Tensor, l_mean: torch.Tensor, l_slope: torch.Tensor,
                    w_x: torch.Tensor, y: torch.Tensor, r2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A read ``y`` of ``x = m + own·(L̄ + b·(η − η̄)) + N(0, w_x)`` with read-noise variance ``r2``,
        ``η`` a standard normal truncated to each piece (``L̄``, ``b``: :meth:`_pieces`; ``η̄`` its mean
        there): per piece, the log density of ``y`` given the piece and the posterior mean and variance
        of ``x``. ``η`` given ``y`` is a normal truncated to the piece, whose moments are closed-form;
        ``x`` given ``y`` and ``η`` a Kalman step."""
        e_mean = self.piece_eta[0]
        c = own * l_slope
        a = m + own * (l_mean - l_slope * e_mean)
        v = w_x + r2
        tot = v + c * c
        d = y - a
        nu = c * d / tot
        tau = (v / tot).sqrt()
        e = self.piece_edges
        u_lo = (e[:-1, None, None] - nu) / tau
        u_hi = (e[1:, None, None] - nu) / tau
        log_d = _log_ndtr_diff(u_lo, u_hi)
        ll = -0.5 * d * d / tot - 0.5 * torch.log(tot) - _LOG_SQRT_2PI + log_d - self.piece_log_w
        q_lo = torch.exp(-0.5 * u_lo * u_lo - _LOG_SQRT_2PI - log_d)
        q_hi = torch.exp(-0.5 * u_hi * u_hi - _LOG_SQRT_2PI - log_d)
        eta = nu + tau * (q_lo - q_hi)
        v_eta = (tau * tau * (1.0 + u_lo * q_lo - u_hi * q_hi - (q_lo - q_hi) ** 2)).clamp(min=0.0)
        k = w_x / v
        c_x = (1.0 - k) * c
        return ll, (1.0 - k) * a + c_x * eta + k * y, w_x * r2 / v + c_x * c_x * v_eta

    @staticmethod
    def _lognormal_step(t: _Terms, lay: _Layout) -> bool:
        """Whether the step is filtered in pieces: a log-normal multiplicative part."""
        return t.kappa is not None and lay.c2c_shape == "lognormal"

    def _piece_weights(self, t: _Terms, lay: _Layout) -> torch.Tensor | None:
        """The log-probabilities ``[pieces, 1, 1]`` of :meth:`_pieces` where the step is filtered in
        pieces (:meth:`_lognormal_step`; one clip for all), else ``None``."""
        return self.piece_log_w if self._lognormal_step(t, lay) else None

    def _predict(self, m: torch.Tensor, p: torch.Tensor, n: int, t: _Terms, lay: _Layout,
                 y: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """SET pulse ``n`` on the filtered ``N(m, p)``, the step linearised about ``m``: (the unclipped
        result's mean and variance, its derivative in the conductance before, its read-noise
        variance, ``None``). With a log-normal multiplicative part (``c2c_shape``) each is
        ``[pieces, …]``, one per piece of the step's factor (:meth:`_pieces`), and the last is
        :meth:`_piece_read` of the read ``y``."""
        k = self.k
        linear = lay.tail == "linear"  # M continued above the top knot (its weight f runs past 1 there)
        u = ((m - self.start) / self.step).clamp(0.0, None if linear else k - 1.0)
        # a state gone NaN (a trial point of the line search far outside the data) indexes the tables at 0
        # and leaves the likelihood NaN, which the optimiser's objective turns away from (not a crash)
        i = u.detach().nan_to_num(0.0).floor().long().clamp(max=k - 2)
        f = u - i
        mv = t.m_tab[i] * (1.0 - f) + t.m_tab[i + 1] * f
        if linear:
            inside = (m > self.start).to(m.dtype)
            f = f.clamp(max=1.0)  # (S held above the top knot)
        else:
            inside = ((m > self.start) & (m < self.start + (k - 1) * self.step)).to(m.dtype)
        slope = t.diff[i] / self.step * inside
        sv = t.s_tab[0] if lay.n_s == 1 else t.s_tab[i] * (1.0 - f) + t.s_tab[i + 1] * f
        ph = torch.exp(-n / t.a_h)
        mean_step = mv + t.a_mu * ph
        sd_step = sv + t.a_sd * ph
        pieces = self._lognormal_step(t, lay)
        if pieces:  # f·M·L + S·ξ, L in pieces
            assert y is not None and t.kappa is not None, "a log-normal step is filtered with its read"
            l_mean, l_slope = self._pieces(t.kappa)
            own = t.factor * mean_step
            mu = m + own * l_mean
            d_mu = 1.0 + t.factor * slope * l_mean
            w_x = d_mu ** 2 * p + sd_step.clamp(min=STD_FLOOR_US) ** 2
            c = own * l_slope
            var = w_x + c * c * self.piece_eta[1]
        else:
            if t.kappa is not None:  # multiplicative: κ·|the device's own mean step|
                sd_step = sd_step + t.kappa * (t.factor * mean_step).abs()
            sd_step = sd_step.clamp(min=STD_FLOOR_US)
            mu = m + t.factor * mean_step
            d_mu = 1.0 + t.factor * slope
            var = d_mu ** 2 * p + sd_step ** 2
        r2 = self._sigma_r2(mu, t.b, t.c)
        if lay.joint_noise:  # E[σ_r(x)²] over the predicted x (the law is linear in x)
            assert t.c is not None
            r2 = r2 + t.c * t.c * var
        mid = self._piece_read(m, own, l_mean, l_slope, w_x, y, r2) if pieces and y is not None else None
        return mu, var, d_mu, r2, mid

    def _per_device(self, t: _Terms, lay: _Layout) -> torch.Tensor:
        """Log-likelihood of each device's reads at each of its factor nodes ``[devices, nodes]`` (of each
        cycle, ``[cycles, 1]``, without a device factor)."""
        if lay.clip_d2d:
            return self._filter_clip(t, lay)
        per_cycle = self._filter(t, lay)
        if not lay.d2d:
            return per_cycle
        return (torch.zeros(self.data.n_devices, per_cycle.shape[1], dtype=per_cycle.dtype)
                .index_add(0, self.cycle_dev, per_cycle))

    def factor_nodes(self, x: torch.Tensor, lay: _Layout) -> tuple[torch.Tensor, torch.Tensor]:
        """What each device's reads say about its factor, at parameters ``x``, as a normal in ``v = σ·z``
        (the factor is :func:`_d2d_factor` of ``v``): its precision ``λ`` and linear term ``b`` (the
        data's log-likelihood ≈ ``b·v − λ·v²/2``), from the parabola through the posterior ``log L(z) −
        z²/2`` at the best of the :data:`D2D_NODES` fixed nodes and its two neighbours, less the
        prior's part (``λ = 0``, ``b = 0`` where the posterior is no narrower than the prior). No
        gradient. :meth:`nll` combines them with the prior of its own parameters into the nodes
        (:meth:`_adapted_nodes`)."""
        with torch.no_grad():
            xd = x.detach().clone()
            i_s = lay.index("d2d_rel_std")
            xd[i_s] = max(float(xd[i_s]), D2D_MIN_SPREAD)
            sig = float(_d2d_sigma(xd[i_s], lay.d2d_law))
            zs = self.z
            lp = self._per_device(self._unpack(xd, lay), lay) - 0.5 * zs * zs
            j = lp.argmax(dim=1).clamp(1, zs.numel() - 2)
            za, zb, zc = zs[j - 1], zs[j], zs[j + 1]
            la, lb, lc = (lp.gather(1, (j + o)[:, None])[:, 0] for o in (-1, 0, 1))
            f_ab = (lb - la) / (zb - za)
            f_abc = ((lc - lb) / (zc - zb) - f_ab) / (zc - za)  # half the curvature
            narrow = torch.isfinite(f_abc) & (f_abc < -0.5)  # the prior's own curvature is −1
            f_abc = torch.where(narrow, f_abc, torch.full_like(f_abc, -0.5))
            lim = float(zs.abs().max()) + 2.0
            mode = torch.where(narrow, 0.5 * (za + zb) - f_ab / (2.0 * f_abc), torch.zeros_like(f_abc))
            prec = -2.0 * f_abc / (sig * sig)  # the posterior's, in v
            return prec - 1.0 / (sig * sig), prec * sig * mode.clamp(-lim, lim)

    def _adapted_nodes(self, info: tuple[torch.Tensor, torch.Tensor], sig: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The :data:`D2D_ADAPTED_NODES` values of ``v`` per device, centred and scaled on the normal
        posterior of the data's ``(λ, b)`` (:meth:`factor_nodes`) under the prior ``N(0, σ²)``, and
        their log-weights (the prior's density times ``w·exp(t²/2)·σ_q``; ``[devices, nodes]`` each):
        adaptive Gauss-Hermite quadrature (Liu & Pierce 1994, Biometrika 81:624), a smooth function of
        ``σ`` (as ``σ`` shrinks the nodes close in on 0, the integral on ``L(1)``)."""
        lam, b = info
        prec = 1.0 / (sig * sig) + lam
        sd = prec.rsqrt()
        v = (b / prec)[:, None] + sd[:, None] * self.z_a[None, :]
        log_w = (self.log_w_a[None, :] + 0.5 * self.z_a[None, :] ** 2 + sd.log()[:, None]
                 - v * v / (2.0 * sig * sig) - torch.log(sig))
        return v, log_w

    @contextlib.contextmanager
    def frozen_nodes(self, x: torch.Tensor, lay: _Layout,
                     info: tuple[torch.Tensor, torch.Tensor] | None = None) -> Iterator[None]:
        """Within: :meth:`nll` places each device's nodes from what its reads said at ``x`` (a smooth
        objective for the optimiser; outside, each call asks the reads at its own parameters);
        ``info``: :meth:`factor_nodes` at ``x`` when already found."""
        self._frozen = (info if info is not None else self.factor_nodes(x, lay)) if lay.d2d else None
        try:
            yield
        finally:
            self._frozen = None

    def nll(self, x: torch.Tensor, lay: _Layout) -> torch.Tensor:
        """Negative log-likelihood per read (plus the smoothing penalty)."""
        t = self._unpack(x, lay)
        if lay.d2d:  # each device's factor integrated out, ∫ L(f(v))·N(v; 0, σ²) dv on nodes where L is
            sig = _d2d_sigma(x[lay.index("d2d_rel_std")].clamp(min=D2D_MIN_SPREAD), lay.d2d_law)
            v, log_w = self._adapted_nodes(self._frozen if self._frozen is not None else self.factor_nodes(x, lay),
                                           sig)
            f = _d2d_factor(v, sig, lay.d2d_law)
            t.factor = f if lay.clip_d2d else f[self.cycle_dev]
            total = torch.logsumexp(self._per_device(t, lay) + log_w, dim=1).sum()
        else:
            total = self._per_device(t, lay).sum()
        pen = SMOOTHING * (torch.diff(t.m_tab, 2).pow(2).sum() + torch.diff(t.s_tab, 2).pow(2).sum())
        return -total / self.n_reads + pen

    def _filter(self, t: _Terms, lay: _Layout) -> torch.Tensor:
        """Log-likelihood of each cycle's SET reads ``[cycles, factor nodes]``, one clip for all."""
        y, ok = self.y, self.ok
        n_c, n_p = y.shape
        nq = t.factor.shape[1]
        # the RESET read: a normal prior over the RESET conductance (fitted), then the read itself
        y0 = y[:, 0]
        m_r, v_r, r2_0 = self._reset_prior(t)
        _, m, p = _update(m_r.expand(n_c), v_r.expand(n_c), y0, r2_0, None, None)
        m, p = m[:, None].expand(n_c, nq), p[:, None].expand(n_c, nq)
        ll_sum = torch.zeros(n_c, nq, dtype=y.dtype)
        log_w = self._piece_weights(t, lay)
        for n in range(1, n_p):
            yn = y[:, n:n + 1].expand(n_c, nq)
            mu, var, _, r2, mid = self._predict(m, p, n, t, lay, yn)
            ll, m_new, p_new = _update(mu, var, yn, r2, self.floor, t.cap, mid)
            if log_w is not None:  # the pieces' mixture, moment-matched (unread: the prediction's)
                ll, m_new, p_new = _mix(log_w + ll, m_new, p_new)
                _, mu, var = _mix(log_w.expand_as(mu), mu, var)
            okn = ok[:, n:n + 1]
            ll_sum = ll_sum + torch.where(okn, ll, torch.zeros_like(ll))
            m = torch.where(okn, m_new, mu)
            p = torch.where(okn, p_new, var)
        return ll_sum

    def _filter_clip(self, t: _Terms, lay: _Layout) -> torch.Tensor:
        """Log-likelihood of each device's SET reads ``[devices, factor nodes]`` with a clip per device:
        the filter's state is the joint normal of (G, the device's clip), the clip carried from one
        RESET cycle of a device to the next."""
        assert t.clip_rel is not None, "a clip per device needs a fitted clip"
        y, ok = self.y_dev, self.ok_dev  # [devices, cycles of a device, pulses + 1]
        n_d, n_s, n_p = y.shape
        nq = t.factor.shape[1]
        cap = torch.as_tensor(t.cap, dtype=y.dtype)
        mc = cap.expand(n_d, nq)
        pc = ((t.clip_rel * cap) ** 2).expand(n_d, nq)
        m_r, v_r, _ = self._reset_prior(t)
        ll_sum = torch.zeros(n_d, nq, dtype=y.dtype)
        assert not self._lognormal_step(t, lay), "a log-normal step is not filtered with a clip per device"
        for slot in range(n_s):
            y0 = y[:, slot, 0]
            _, m, p = _update(m_r.expand(n_d), v_r.expand(n_d), y0, self._sigma_r2(y0, t.b, t.c), None, None)
            m, p = m[:, None].expand(n_d, nq), p[:, None].expand(n_d, nq)
            pgc = torch.zeros_like(m)  # a RESET does not depend on the clip
            for n in range(1, n_p):
                okn = ok[:, slot, n:n + 1]
                if not bool(okn.any()):
                    break
                mu, var, d_mu, r2, _ = self._predict(m, p, n, t, lay)
                rho = d_mu * pgc
                yn = y[:, slot, n:n + 1].expand(n_d, nq)
                ll, m_new, p_new, mc_new, pc_new, pgc_new = _update_clip(mu, var, rho, mc, pc, yn, r2, self.floor)
                ll_sum = ll_sum + torch.where(okn, ll, torch.zeros_like(ll))
                m = torch.where(okn, m_new, mu)
                p = torch.where(okn, p_new, var)
                mc = torch.where(okn, mc_new, mc)
                pc = torch.where(okn, pc_new, pc)
                pgc = torch.where(okn, pgc_new, rho)
        return ll_sum

    def loglik(self, x: np.ndarray, lay: _Layout) -> float:
        """The log-likelihood of the reads at ``x`` (without the smoothing penalty; no gradient)."""
        with torch.no_grad():
            return -float(self.nll(torch.tensor(x), lay)) * self.n_reads + self.penalty(x, lay) * self.n_reads

    def penalty(self, x: np.ndarray, lay: _Layout) -> float:
        k = self.k
        return SMOOTHING * float(np.sum(np.diff(x[:k], 2) ** 2) + np.sum(np.diff(x[k:k + lay.n_s], 2) ** 2))
