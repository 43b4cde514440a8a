"""The likelihood of a pulse-response file for ``pcmsim device fit``: an assumed-density filter over
each RESET cycle (see :mod:`device_models.fit_pulse` for the model and the fit).

The filtered latent conductance is kept as a normal ``N(m, P)``; each SET step is linearised about
``m`` (an extended Kalman step; Maybeck 1979, "Stochastic Models, Estimation and Control", ch. 12);
the clipped prediction (point masses at the floor and at G_max, a truncated normal between)
convolved with the read noise has a closed-form density, and its posterior given the read is
moment-matched to the next normal (Minka 2001, "Expectation propagation", §3). The device factor is
integrated out per device by adaptive Gauss-Hermite quadrature (nodes centred on each device's own
likelihood: Liu & Pierce 1994, Biometrika 81:624). A clip per device is integrated out of the one-clip
filter run through all of a device's cycles, on Gauss-Legendre panels placed where that device's
likelihood changes in its clip and the prior's mass in closed form where it is flat
(:meth:`PulseLikelihood.clip_nodes`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
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

CLIP_GRID, CLIP_GRID_SPAN = 29, 7.0
"""A clip per device is integrated out by a rule placed on each device's likelihood, which is first
evaluated at this many clips evenly spaced over this many prior stds either side of G_max (ours)."""
CLIP_PANEL_NODES = (2, 4, 4, 2)
"""Gauss-Legendre nodes in each of the four panels of a device's clips where its likelihood changes:
below its peak, the peak's two halves (split at the mode: a half of a normal is smooth on its panel;
on a normal over ±3.5 stds, 8 nodes in one panel are 2·10⁻⁴ off and 4 in each half 3·10⁻⁵), above it
(ours; against a brute-force integral over each device's clip, ``tests/test_device_fit_clip.py``: at
most 0.055 log-units per device, 0.0045 on average)."""
CLIP_SIGNIFICANT = 40.0
"""Log-units below a device's largest posterior density (on the grid) where its clips are left out of
the panels (ours: e^-40 of the peak)."""
CLIP_FLAT_TOL = 1e-6
"""Log-units within which a device's likelihood is flat in its clip (a clip above every conductance the
device reached): from the lowest such clip of the grid up, the integral is closed-form (ours)."""
CLIP_PEAK_HALF_WIDTH = 3.5
"""Half-width of the two panels about a device's peak, in the peak's stds (ours)."""
CLIP_SCAN, CLIP_GOLDEN_ROUNDS, CLIP_PEAK_ROUNDS = 16, 20, 4
"""Clips across the body of a device's posterior over its clip at which its peak is looked for, then
golden-section steps between the best one's neighbours (to 7·10⁻⁵ of their distance: a peak 100 times
narrower than the grid, on reads of 0.2 % + 0.01 µS, is found), then parabolas through three clips
about it that refine its mode and std (ours; the posterior is not unimodal on the body, whose flat top
rises with the prior towards G_max)."""
CLIP_MIN_SPREAD = 1e-6
"""Smallest relative spread of the clips at which a device's clips are placed and weighed (ours: at a
spread of 0 the integral is then the one-clip likelihood to 2.4·10⁻⁴ log-units per device on
``clip-dev``, the rule's error on the prior's own density; its gradient in G_max is not the one-clip
one there, as the weights' error is divided by the clips' std)."""

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
    fitted G_max), integrated out per device (:meth:`PulseLikelihood.clip_nodes`)."""
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


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass
class _ClipNodes:
    """Where each device's clip is integrated (:meth:`PulseLikelihood.clip_nodes`): its likelihood is
    evaluated at ``caps`` and summed with the prior's density at them (the ``rule``'s log-weights, one
    fewer), the last clip where the likelihood turns flat, the prior's mass above it in closed form."""

    caps: torch.Tensor
    """``[devices, nodes]`` µS: the panels' Gauss-Legendre nodes, then the clip where the likelihood turns
    flat."""
    rule: torch.Tensor
    """``[devices, nodes − 1]``: log of each panel node's Gauss-Legendre weight times the panel's
    half-width (−inf in an empty panel)."""


@dataclass
class _Placed:
    """Each device's nodes (:meth:`PulseLikelihood.place`): what its reads say about its factor (with a
    device factor) and where its clip is integrated (with a clip per device)."""

    factor: tuple[torch.Tensor, torch.Tensor] | None
    clips: _ClipNodes | None


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


def _mix(log_w: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A mixture of normals along the first dimension (log weights, means, variances) matched in its
    first two moments: (log of the total weight, mean, variance)."""
    ll = torch.logsumexp(log_w, dim=0)
    r = torch.exp(log_w - ll)
    m = (r * mean).sum(0)
    return ll, m, ((r * (var + mean * mean)).sum(0) - m * m).clamp(min=1e-12)


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
        self._held: _Placed | None = None
        rules = [np.polynomial.legendre.leggauss(n) for n in CLIP_PANEL_NODES]
        self.gl = [(torch.as_tensor(x), torch.as_tensor(np.log(w))) for x, w in rules]
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

    def _per_device(self, t: _Terms, lay: _Layout, clips: _ClipNodes | None = None) -> torch.Tensor:
        """Log-likelihood of each device's reads at each of its factor nodes ``[devices, nodes]`` (of each
        cycle, ``[cycles, 1]``, without a device factor); with a clip per device, the clip integrated
        out on ``clips`` (:meth:`clip_nodes`)."""
        if lay.clip_d2d:
            assert clips is not None, "a clip per device is integrated on its nodes"
            ll = self._clip_loglik(t, lay, clips.caps)
            return torch.logsumexp(ll + self._clip_log_weights(t, clips)[:, None, :], dim=2)
        per_cycle = self._filter(t, lay)
        if not lay.d2d:
            return per_cycle
        return (torch.zeros(self.data.n_devices, per_cycle.shape[1], dtype=per_cycle.dtype)
                .index_add(0, self.cycle_dev, per_cycle))

    def _clip_loglik(self, t: _Terms, lay: _Layout, caps: torch.Tensor) -> torch.Tensor:
        """Log-likelihood of each device's reads with its clip at each of ``caps`` ``[devices, clips]``
        (µS), at each factor node (``t.factor``: ``[1, nodes]``, or ``[devices, nodes]``): ``[devices,
        nodes, clips]``, the one-clip filter run through all of a device's cycles at each."""
        n_c, nq, k = self.y.shape[0], t.factor.shape[1], caps.shape[1]
        fac = (t.factor if t.factor.shape[0] == 1 else t.factor[self.cycle_dev])[:, :, None].expand(n_c, nq, k)
        cap = caps[self.cycle_dev][:, None, :].expand(n_c, nq, k)
        per_cycle = self._filter(dataclasses.replace(t, cap=cap.reshape(n_c, -1), factor=fac.reshape(n_c, -1)), lay)
        return (torch.zeros(self.data.n_devices, nq * k, dtype=per_cycle.dtype)
                .index_add(0, self.cycle_dev, per_cycle).view(-1, nq, k))

    @staticmethod
    def _clip_sd(t: _Terms) -> tuple[torch.Tensor, torch.Tensor]:
        """G_max and the std of the clips, µS (the relative spread no smaller than :data:`CLIP_MIN_SPREAD`)."""
        assert t.clip_rel is not None, "a clip per device needs a fitted clip"
        g_max = torch.as_tensor(t.cap, dtype=torch.float64)
        return g_max, t.clip_rel.clamp(min=CLIP_MIN_SPREAD) * g_max

    def _clip_log_weights(self, t: _Terms, clips: _ClipNodes) -> torch.Tensor:
        """The log-weights ``[devices, nodes]`` of ``clips`` under the clips' prior ``N(G_max, (s·G_max)²)``
        at ``t`` (smooth in G_max and s): the prior's density times each panel node's weight, and the
        prior's mass above the last clip (where the likelihood is flat)."""
        g_max, sd = self._clip_sd(t)
        body = clips.caps[:, :-1]
        lw = clips.rule - 0.5 * ((body - g_max) / sd) ** 2 - torch.log(sd) - _LOG_SQRT_2PI
        tail = torch.special.log_ndtr((g_max - clips.caps[:, -1:]) / sd)
        return torch.cat([lw, tail], dim=1)

    def _clip_grid_loglik(self, t: _Terms, lay: _Layout, caps: torch.Tensor) -> torch.Tensor:
        """:meth:`_clip_loglik` with the device factor at 1 (its mean): ``[devices, clips]``; where the
        likelihood changes in the clip is set by the device's reads at its top more than by its factor
        (ours: a ninth of the cost of the factor's 9 fixed nodes)."""
        return self._clip_loglik(dataclasses.replace(t, factor=torch.ones(1, 1, dtype=torch.float64)), lay, caps)[:, 0]

    def clip_nodes(self, x: torch.Tensor, lay: _Layout) -> _ClipNodes:
        """Where each device's clip is integrated at parameters ``x`` (no gradient), in µS, so that the
        rule follows the data while the optimiser moves G_max and the spread (:meth:`_clip_log_weights`
        weighs it with their prior). Each device's likelihood is evaluated on :data:`CLIP_GRID` clips
        over ±:data:`CLIP_GRID_SPAN` prior stds (the device factor at 1). Above the lowest clip from
        which it is flat (the device never came near such a clip), the integral is the flat value
        times the prior's mass there, in closed form. Below (the body: from the grid's step below the
        lowest clip where the posterior is within :data:`CLIP_SIGNIFICANT` of its largest value up to
        the flat run), four panels of :data:`CLIP_PANEL_NODES` Gauss-Legendre nodes: the two halves
        of the posterior's peak where the device shows its clip (±:data:`CLIP_PEAK_HALF_WIDTH` of its
        stds: the best of :data:`CLIP_SCAN` clips, then golden-section search and parabolas), and
        either side of it; without a peak inside the body, four equal panels. The posterior of a
        device short of its clip is one-sided (the prior, cut below its reads), which a rule about a
        peak integrates badly (adaptive Gauss-Hermite on it was 0.78 log-units per device off on a
        10-pulse train); here it is the closed-form part and panels over the cut."""
        with torch.no_grad():
            t = self._unpack(x.detach(), lay)
            g_max_t, sd_t = self._clip_sd(t)
            g_max, sd = float(g_max_t), float(sd_t)
            n_d = self.data.n_devices
            u_lo = max(-CLIP_GRID_SPAN, (0.05 * g_max - g_max) / sd)  # (clips above 5 % of G_max)
            u = torch.linspace(u_lo, CLIP_GRID_SPAN, CLIP_GRID, dtype=torch.float64)
            ll = self._clip_grid_loglik(t, lay, (g_max + sd * u).expand(n_d, -1))
            q = ll - 0.5 * u * u
            j = torch.arange(CLIP_GRID)
            flat = ((ll - ll[:, -1:]).abs() < CLIP_FLAT_TOL).to(torch.int64)
            jf = CLIP_GRID - flat.flip(1).cumprod(1).sum(1)  # the first clip of the flat run at the top
            sig = (q > q.max(1, keepdim=True).values - CLIP_SIGNIFICANT) & (j[None, :] < jf[:, None])
            has = sig.any(1)
            # the body, where the likelihood changes: from below the lowest clip where the posterior is
            # significant up to the flat run (at least the grid's step below it, where a peak far narrower
            # than the grid may lie)
            j_lo = torch.where(has, torch.where(sig, j, CLIP_GRID).min(1).values - 1, jf - 1).clamp(min=0)
            j_hi = torch.where(has, torch.minimum(torch.where(sig, j, -1).max(1).values + 1, jf), jf)
            lo, hi = u[j_lo], u[j_hi]

            def post(uu: torch.Tensor) -> torch.Tensor:  # the log posterior at clips [devices, k] (in u)
                return self._clip_grid_loglik(t, lay, g_max + sd * uu) - 0.5 * uu * uu

            # the peak: the best of CLIP_SCAN clips across the body, then golden-section search between its
            # neighbours (a peak far narrower than the grid, as on precise reads, is found as well as a
            # wide one), then parabolas through three clips about the mode, a std apart, for its std
            scan = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0.0, 1.0, CLIP_SCAN, dtype=torch.float64)
            k = post(scan).argmax(1)
            ga = scan.gather(1, (k - 1).clamp(min=0)[:, None])[:, 0]
            gb = scan.gather(1, (k + 1).clamp(max=CLIP_SCAN - 1)[:, None])[:, 0]
            gc, gd = gb - _GOLDEN * (gb - ga), ga + _GOLDEN * (gb - ga)
            fc, fd = post(torch.stack([gc, gd], dim=1)).unbind(1)
            for _ in range(CLIP_GOLDEN_ROUNDS):
                left = fc > fd  # the max in [ga, gd]
                ga, gb = torch.where(left, ga, gc), torch.where(left, gd, gb)
                new_u = torch.where(left, gb - _GOLDEN * (gb - ga), ga + _GOLDEN * (gb - ga))
                f_new = post(new_u[:, None])[:, 0]
                gc, gd, fc, fd = (torch.where(left, new_u, gd), torch.where(left, gc, new_u),
                                  torch.where(left, f_new, fd), torch.where(left, fc, f_new))
            mode = 0.5 * (ga + gb)
            width = hi - lo
            peak = (mode - lo > 0.01 * width) & (hi - mode > 0.01 * width)  # not at an end of the body
            sdp = (1e-3 * width).clamp(min=1e-6)
            for _ in range(CLIP_PEAK_ROUNDS):
                u3 = mode[:, None] + sdp[:, None] * torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
                q3 = post(u3)
                a2 = (q3[:, 2] - 2.0 * q3[:, 1] + q3[:, 0]) / (2.0 * sdp * sdp)
                concave = (a2 < 0) & torch.isfinite(a2)
                a2 = torch.where(concave, a2, torch.full_like(a2, -0.5))
                step = (-(q3[:, 2] - q3[:, 0]) / (2.0 * sdp) / (2.0 * a2)).clamp(-2.0 * sdp, 2.0 * sdp)
                mode = torch.where(peak & concave, (mode + step).clamp(lo, hi), mode)
                sdp = torch.where(concave, torch.minimum((-0.5 / a2).sqrt(), 16.0 * sdp), sdp)
            peak = peak & concave
            # the panels' edges: the peak's two halves (±CLIP_PEAK_HALF_WIDTH stds, within the body) and
            # either side; without a peak, four equal panels
            lo_p = torch.minimum(torch.maximum(mode - CLIP_PEAK_HALF_WIDTH * sdp, lo), hi)
            hi_p = torch.minimum(torch.maximum(mode + CLIP_PEAK_HALF_WIDTH * sdp, lo_p), hi)
            mid = torch.minimum(torch.maximum(mode, lo_p), hi_p)
            quarter = torch.stack([lo + (hi - lo) * n / 4.0 for n in range(1, 4)], dim=1)
            inner = torch.where(peak[:, None], torch.stack([lo_p, mid, hi_p], dim=1), quarter)
            edges = g_max + sd * torch.cat([lo[:, None], inner, hi[:, None]], dim=1)  # [devices, 5] µS
            caps_l, rule_l = [], []
            for i, (x_gl, lw_gl) in enumerate(self.gl):
                half = 0.5 * (edges[:, i + 1] - edges[:, i])[:, None]
                caps_i = 0.5 * (edges[:, i + 1] + edges[:, i])[:, None] + half * x_gl
                rule_i = lw_gl + half.clamp(min=1e-300).log()
                caps_l.append(caps_i)
                rule_l.append(torch.where(half > 0, rule_i, torch.full_like(caps_i, -math.inf)))
            caps, rule = torch.cat(caps_l, dim=1), torch.cat(rule_l, dim=1)
            c_f = g_max + sd * u[jf]
            return _ClipNodes(caps=torch.cat([caps, c_f[:, None]], dim=1), rule=rule)

    def factor_nodes(self, x: torch.Tensor, lay: _Layout, clips: _ClipNodes | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """What each device's reads say about its factor, at parameters ``x``, as a normal in ``v = σ·z``
        (the factor is :func:`_d2d_factor` of ``v``): its precision ``λ`` and linear term ``b`` (the
        data's log-likelihood ≈ ``b·v − λ·v²/2``), from the parabola through the posterior ``log L(z) −
        z²/2`` at the best of the :data:`D2D_NODES` fixed nodes and its two neighbours, less the
        prior's part (``λ = 0``, ``b = 0`` where the posterior is no narrower than the prior); a clip per
        device integrated on ``clips`` (:meth:`clip_nodes`). No gradient. :meth:`nll` combines them with
        the prior of its own parameters into the nodes (:meth:`_adapted_nodes`)."""
        with torch.no_grad():
            xd = x.detach().clone()
            i_s = lay.index("d2d_rel_std")
            xd[i_s] = max(float(xd[i_s]), D2D_MIN_SPREAD)
            sig = float(_d2d_sigma(xd[i_s], lay.d2d_law))
            zs = self.z
            lp = self._per_device(self._unpack(xd, lay), lay, clips) - 0.5 * zs * zs
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

    def place(self, x: torch.Tensor, lay: _Layout) -> _Placed:
        """Each device's nodes at ``x``: what its reads say about its factor (:meth:`factor_nodes`, with a
        device factor) and where its clip is integrated (:meth:`clip_nodes`, with a clip per device)."""
        clips = self.clip_nodes(x, lay) if lay.clip_d2d else None
        return _Placed(self.factor_nodes(x, lay, clips) if lay.d2d else None, clips)

    @contextlib.contextmanager
    def frozen_nodes(self, x: torch.Tensor, lay: _Layout, placed: _Placed | None = None) -> Iterator[None]:
        """Within: :meth:`nll` places each device's nodes from what its reads said at ``x`` (a smooth
        objective for the optimiser; outside, each call asks the reads at its own parameters);
        ``placed``: :meth:`place` at ``x`` when already found."""
        self._held = placed if placed is not None else self.place(x, lay)
        try:
            yield
        finally:
            self._held = None

    def nll(self, x: torch.Tensor, lay: _Layout) -> torch.Tensor:
        """Negative log-likelihood per read (plus the smoothing penalty)."""
        t = self._unpack(x, lay)
        placed = self._held if self._held is not None else self.place(x, lay)
        if lay.d2d:  # each device's factor integrated out, ∫ L(f(v))·N(v; 0, σ²) dv on nodes where L is
            assert placed.factor is not None
            sig = _d2d_sigma(x[lay.index("d2d_rel_std")].clamp(min=D2D_MIN_SPREAD), lay.d2d_law)
            v, log_w = self._adapted_nodes(placed.factor, sig)
            f = _d2d_factor(v, sig, lay.d2d_law)
            t.factor = f if lay.clip_d2d else f[self.cycle_dev]
            total = torch.logsumexp(self._per_device(t, lay, placed.clips) + log_w, dim=1).sum()
        else:
            total = self._per_device(t, lay, placed.clips).sum()
        pen = SMOOTHING * (torch.diff(t.m_tab, 2).pow(2).sum() + torch.diff(t.s_tab, 2).pow(2).sum())
        return -total / self.n_reads + pen

    def _filter(self, t: _Terms, lay: _Layout) -> torch.Tensor:
        """Log-likelihood of each cycle's SET reads ``[cycles, nodes]``: one clip for all, or ``t.cap`` one
        per cycle and node, shaped as ``t.factor`` (:meth:`_clip_loglik`)."""
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

    def loglik(self, x: np.ndarray, lay: _Layout) -> float:
        """The log-likelihood of the reads at ``x`` (without the smoothing penalty; no gradient)."""
        with torch.no_grad():
            return -float(self.nll(torch.tensor(x), lay)) * self.n_reads + self.penalty(x, lay) * self.n_reads

    def penalty(self, x: np.ndarray, lay: _Layout) -> float:
        k = self.k
        return SMOOTHING * float(np.sum(np.diff(x[:k], 2) ** 2) + np.sum(np.diff(x[k:k + lay.n_s], 2) ** 2))
