"""``empirical``: a device built from measured pulse-response data.

Input: a CSV with the columns ``device,pulse,g_us`` (any order, a header line, one row per read):
for each device the conductance (µS) before any pulse (``pulse`` 0, right after a RESET) and after
each of consecutive SET pulses 1, 2, …. :meth:`EmpiricalDevice.from_csv` fits:

- the increments ``ΔG = G[k+1] − G[k]`` binned by the conductance before the pulse into
  ``n_bins`` equal bins between the smallest and largest such G; per bin the mean and std of ΔG
  (bins with fewer than ``min_count`` increments are filled by linear interpolation from their
  neighbours); between bin centres both are interpolated linearly (held constant outside);
- the RESET distribution: ``n_quantiles`` quantiles of the pulse-0 conductances;
- ``g_max_us``: the largest conductance in the file (SET results are clipped to [0, g_max_us]).

Model: SET ``G ← clip(G + N(mean(G), std(G)), 0, g_max)``; RESET draws from the measured pulse-0
distribution (inverse-CDF sampling, linear between quantiles); no drift unless ``nu`` > 0
(then ``G(t) = G·max((t − t_p)/t0, 1)^(−ν)``); read noise ``σ = read_noise_rel·G(t) +
read_noise_std_us`` (Gaussian, default 0).

A model fitted by ``pcmsim device fit`` (:mod:`device_models.fit`) is this model with more of its
fields set (all off by default, so the above is unchanged):

- a pulse-history term: the n-th SET pulse since the last RESET has mean ``M(G) + A_μ·P`` and
  cycle-to-cycle std ``S(G) + A_σ·P`` with ``P = exp(−n/a)`` (``hist_mean_us``, ``hist_std_us``,
  ``hist_pulses``; the history state of ``pcm-nandakumar2018``);
- a device-to-device factor: each device's mean step is scaled by ``1 + d2d_rel_std·z_d``, ``z_d``
  drawn once per device (kept across RESETs). ``aux`` holds both states: its integer part counts
  the pulses since RESET, its fraction is the device's quantile ``u`` (``z_d = Φ⁻¹(u)``);
- SET results clipped below at ``set_min_us`` (the measured floor);
- ν drawn at every programming event from tables of mean and std against the programmed G
  (``nu_grid_us``, ``nu_mean``, ``nu_std``), drift law ``drift_form`` ("onset" or "shifted");
- read noise σ from a table against G(t) (``read_noise_g_us``, ``read_noise_sigma_us``), reads
  clipped to ``read_clip_range_us``.

Without a CSV (``device_models.get("empirical")``) the tables are the steady-state (P = 0)
increments of ``pcm-nandakumar2018``: mean ``0.88 − 0.084·G``, std ``0.26 + 0.091·G`` on
[0.1, 12] µS, RESET N(0.1, 0.01): a documented placeholder, not a measurement. Pass
``csv_path=...`` to ``get`` (or use :meth:`EmpiricalDevice.from_csv`) for real data.

:func:`write_pulse_response_csv` writes such a CSV from any pulse-level model (a round trip for
tests and users); ``python -m device_models.empirical MODEL OUT.csv`` does it from the shell.

Update schemes: ε = the mean tabulated step at the median RESET conductance; refresh by srnn-pcm's
rule stated relative to G_max (``xbar.py``: 6 µS and 6/4 µS at its G_max = 12 µS, i.e. G_max/2 and
G_max/8), which is srnn-pcm's own 6 / 1.5 µS for the placeholder tables and scales with a CSV's G_max.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from torch import Tensor

from .base import DeviceModel, DeviceParams
from .checks import DeviceParameterError, as_mask, check_all_finite, check_int, check_range, param
from .fileio import atomic_write
from .refresh import SRNN_PCM_DIFF_DIVISOR, SRNN_PCM_G_MAX_US, SRNN_PCM_RESET_THR_US, RefreshPolicy
from .state import DeviceState
from .verify import PulseLevelDevice

_DEFAULT_GRID_START = 0.1
_DEFAULT_GRID_STEP = 0.5
_DEFAULT_N = 24  # 0.1 … 11.6 µS
_DEFAULT_G = tuple(_DEFAULT_GRID_START + i * _DEFAULT_GRID_STEP for i in range(_DEFAULT_N))
# RESET quantiles of N(0.1, 0.01) at p = 0.005, 0.01 … 0.995 is more than a placeholder needs: 11 points
_Z11 = (-2.5758, -1.6449, -1.0364, -0.5244, -0.2533, 0.0, 0.2533, 0.5244, 1.0364, 1.6449, 2.5758)
_P11 = (0.005, 0.05, 0.15, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 0.95, 0.995)


class CSVFormatError(DeviceParameterError):
    """A measured-data CSV that cannot be used; the message names file, line, field and expectation."""


@dataclass(frozen=True)
class EmpiricalParams(DeviceParams):
    """Tables and constants of ``empirical`` (from a CSV; the defaults are a placeholder, see module doc)."""

    grid_start_us: float = _DEFAULT_GRID_START  # conductance of the first table point, µS
    grid_step_us: float = param(_DEFAULT_GRID_STEP, gt=0.0)  # spacing of the table points, µS
    dg_mean_us: tuple[float, ...] = tuple(0.88 - 0.084 * g for g in _DEFAULT_G)  # mean ΔG per point, µS
    dg_std_us: tuple[float, ...] = tuple(0.26 + 0.091 * g for g in _DEFAULT_G)  # std of ΔG per point, µS
    reset_probs: tuple[float, ...] = _P11  # cumulative probabilities of the RESET quantiles
    reset_quantiles_us: tuple[float, ...] = tuple(0.1 + 0.01 * z for z in _Z11)  # RESET G quantiles, µS
    g_max_us: float = param(12.0, gt=0.0)  # upper clip of SET, µS (from a CSV: its largest G)
    nu: float = param(0.0, ge=0.0)  # drift exponent (0: no drift); ours
    t0_s: float = param(1.0, gt=0.0)  # drift reference time, s; ours
    read_noise_std_us: float = param(0.0, ge=0.0)  # additive read-noise σ, µS; ours
    read_noise_rel: float = param(0.0, ge=0.0)  # read-noise σ per µS of G(t); ours
    program_tolerance_us: float = param(0.5, ge=0.0)  # program-and-verify half-window, µS; ours
    program_max_pulses: int = param(50, ge=1, integer=True)  # program-and-verify budget, pulses; ours
    # ---- the fields below are fitted by ``pcmsim device fit`` (device_models.fit); their defaults
    # switch them off, so the placeholder and a ``csv_path`` fit behave as before ----
    hist_mean_us: float = 0.0  # A_μ: history term of the mean step, µS per unit of P (0: none); fitted
    hist_std_us: float = 0.0  # A_σ: history term of the step's std, µS per unit of P; fitted
    hist_pulses: float = param(1.0, gt=0.0)  # a: P = exp(−n/a) after n SET pulses since the last RESET, pulses; fitted
    d2d_rel_std: float = param(0.0, ge=0.0, le=1.0)  # device-to-device std of a device's mean-step factor; fitted
    set_min_us: float = 0.0  # lower clip of a SET result, µS (a fit: the measured floor, if censored)
    # set_max_us: 0 clips SET results at g_max_us; a fit of a smooth saturation puts g_max_us where the mean
    # step reaches 0 and the steps scatter about it unclipped, up to set_max_us
    set_max_us: float = param(0.0, ge=0.0)  # upper clip of a SET result when above g_max_us, µS
    nu_grid_us: tuple[float, ...] = ()  # programmed-G points of the ν tables, µS (empty: ν = ``nu``)
    nu_mean: tuple[float, ...] = ()  # mean drift exponent at each point; fitted
    nu_std: tuple[float, ...] = ()  # device-to-device std of ν at each point; fitted
    drift_form: str = "onset"  # "onset": G·max(Δt/t0, 1)^(−ν); "shifted": G·((Δt + t0)/t0)^(−ν)
    read_noise_g_us: tuple[float, ...] = ()  # G(t) points of the read-noise table, µS (empty: linear law)
    read_noise_sigma_us: tuple[float, ...] = ()  # σ of one read at each point, µS; fitted
    read_clip_range_us: tuple[float, ...] = ()  # (lo, hi): reads clipped there, µS (empty: not clipped)
    csv_path: str | None = None  # when set, the tables above are fitted from this file at construction
    n_bins: int = 32  # bins of the fit (csv_path only)
    min_count: int = 10  # fewest increments for a bin to count (csv_path only)
    n_quantiles: int = 101  # RESET quantiles kept (csv_path only)


class EmpiricalDevice(PulseLevelDevice):
    """A SET/RESET device whose increments follow measured statistics; see the module docstring."""

    name = "empirical"
    Params = EmpiricalParams
    params: EmpiricalParams

    def __init__(self, params: EmpiricalParams | None = None, **overrides) -> None:
        path = overrides.get("csv_path", params.csv_path if params is not None else None)
        if path is not None:
            base = params if params is not None else EmpiricalParams()
            base_fit = {k: overrides.get(k, getattr(base, k)) for k in ("n_bins", "min_count", "n_quantiles")}
            for k, v in base_fit.items():
                check_int(k, v, 2 if k != "min_count" else 1)
            fitted = fit_pulse_response(read_pulse_response_csv(path), **base_fit)
            fitted = {k: v for k, v in fitted.items() if k not in overrides}  # explicit overrides win
            params = dataclasses.replace(base, **fitted)
        super().__init__(params, **overrides)
        p = self.params
        self._mean = torch.tensor(p.dg_mean_us, dtype=torch.float32)
        self._std = torch.tensor(p.dg_std_us, dtype=torch.float32)
        self._rq = torch.tensor(p.reset_quantiles_us, dtype=torch.float32)
        self._rp = torch.tensor(p.reset_probs, dtype=torch.float32)
        self._history = p.hist_mean_us != 0.0 or p.hist_std_us != 0.0
        self._uses_aux = self._history or p.d2d_rel_std > 0.0
        self._nu_g = torch.tensor(p.nu_grid_us, dtype=torch.float32)
        self._nu_m = torch.tensor(p.nu_mean, dtype=torch.float32)
        self._nu_s = torch.tensor(p.nu_std, dtype=torch.float32)
        self._nu_table = len(p.nu_grid_us) > 0
        self._nu_random = self._nu_table and max(p.nu_std) > 0.0
        self._rn_g = torch.tensor(p.read_noise_g_us, dtype=torch.float32)
        self._rn_s = torch.tensor(p.read_noise_sigma_us, dtype=torch.float32)
        self._set_max = max(p.g_max_us, p.set_max_us)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, **params) -> EmpiricalDevice:
        """Fit to a measured CSV (``device,pulse,g_us``); ``params`` override any field."""
        return cls(csv_path=str(path), **params)

    def validate(self) -> None:
        p = self.params
        n = len(p.dg_mean_us)
        if n < 2 or len(p.dg_std_us) != n:
            raise DeviceParameterError(
                f"dg_mean_us and dg_std_us must have the same length ≥ 2; got {n} and {len(p.dg_std_us)}"
            )
        if min(p.dg_std_us) < 0:
            raise DeviceParameterError("dg_std_us must be ≥ 0 everywhere")
        q, pr = p.reset_quantiles_us, p.reset_probs
        if len(q) < 1 or len(pr) != len(q):
            raise DeviceParameterError(
                f"reset_quantiles_us and reset_probs must have the same length ≥ 1; got {len(q)} and {len(pr)}"
            )
        if any(b < a for a, b in zip(q, q[1:])) or any(b <= a for a, b in zip(pr, pr[1:])):
            raise DeviceParameterError("reset_quantiles_us must be non-decreasing and reset_probs increasing")
        if pr[0] < 0 or pr[-1] > 1 or q[0] < 0:
            raise DeviceParameterError("reset_probs must lie in [0, 1] and reset_quantiles_us be ≥ 0")
        check_range("set_min_us", p.set_min_us, 0.0, p.g_max_us, hi_open=True)
        if p.drift_form not in DRIFT_FORMS:
            raise DeviceParameterError(f"parameter drift_form={p.drift_form!r} is invalid: expected one of "
                                       f"{', '.join(DRIFT_FORMS)}")
        for names in (("nu_grid_us", "nu_mean", "nu_std"), ("read_noise_g_us", "read_noise_sigma_us")):
            tables = [getattr(p, n) for n in names]
            if len({len(t) for t in tables}) != 1:
                raise DeviceParameterError(f"{', '.join(names)} must have the same length; got "
                                           f"{', '.join(str(len(t)) for t in tables)}")
            if any(b <= a for a, b in zip(tables[0], tables[0][1:])):
                raise DeviceParameterError(f"{names[0]} must be increasing")
            if any(v < 0 for t in tables[1:] for v in t):
                raise DeviceParameterError(f"{', '.join(names[1:])} must be ≥ 0 everywhere")
        rc = p.read_clip_range_us
        if rc and (len(rc) != 2 or not 0.0 <= rc[0] < rc[1]):
            raise DeviceParameterError(f"read_clip_range_us={rc!r} is invalid: expected () or (lo, hi), 0 ≤ lo < hi")
        check_all_finite(p)


    @property
    def g_max_us(self) -> float:
        return self.params.g_max_us

    @property
    def g_min_us(self) -> float:
        p = self.params
        return float(torch.tensor(p.reset_quantiles_us).median()) if p.reset_quantiles_us else 0.0

    @property
    def read_clip_us(self) -> tuple[float, float] | None:
        """``read_clip_range_us`` when set (a fit finds it where the measured reads pile up at a floor
        or ceiling), else None."""
        rc = self.params.read_clip_range_us
        return (rc[0], rc[1]) if rc else None

    # ---- tables ---------------------------------------------------------------------------
    def increment_stats(self, g_us: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, std) of ΔG at conductance ``g_us`` (linear interpolation on the table), µS."""
        p = self.params
        n = len(p.dg_mean_us)
        mean, std = self._mean.to(g_us.device), self._std.to(g_us.device)
        u = ((g_us - p.grid_start_us) * (1.0 / p.grid_step_us)).clamp_(0.0, n - 1.0)
        i = u.floor().to(torch.int64).clamp_(max=n - 2)
        f = u - i
        m = torch.lerp(mean[i], mean[i + 1], f)
        s = torch.lerp(std[i], std[i + 1], f)
        return m, s

    def step_stats(self, g_us: Tensor, n_pulse: Tensor | float | None = None) -> tuple[Tensor, Tensor]:
        """(mean, std) of ΔG of the ``n_pulse``-th SET pulse since the last RESET (1 = the first) at
        conductance ``g_us``, over the population, µS (before the clip).

        ``mean = M(G) + A_μ·P``, cycle-to-cycle ``std = S(G) + A_σ·P`` (floored at 0) with
        ``P = exp(−n/a)``, and the device-to-device part ``d2d_rel_std·mean`` added in quadrature;
        ``n_pulse=None``: the steady state P = 0.
        """
        m, s = self.increment_stats(g_us)
        p = self.params
        if n_pulse is not None and self._history:
            ph = torch.exp(-torch.as_tensor(n_pulse, dtype=m.dtype, device=m.device) / p.hist_pulses)
            m = m + p.hist_mean_us * ph
            s = (s + p.hist_std_us * ph).clamp(min=0.0)
        if p.d2d_rel_std > 0.0:
            s = torch.sqrt(s * s + (p.d2d_rel_std * m) ** 2)
        return m, s

    def nu_stats(self, g_us: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, std) of the drift exponent of a device programmed to ``g_us`` (the ν tables, linear
        between points, constant outside; without tables ``nu`` and 0)."""
        if not self._nu_table:
            return torch.full_like(g_us, self.params.nu), torch.zeros_like(g_us)
        xp = self._nu_g.to(g_us.device)
        return _interp_table(g_us, xp, self._nu_m.to(g_us.device)), _interp_table(g_us, xp, self._nu_s.to(g_us.device))

    def _draw_nu(self, g_us: Tensor, generator) -> Tensor:
        """ν for devices just programmed to ``g_us``: ``max(0, mean(G) + std(G)·ξ)`` (no draw without a spread)."""
        m, s = self.nu_stats(g_us)
        if not self._nu_random:
            return m
        xi = torch.randn(g_us.shape, generator=generator, device=g_us.device, dtype=torch.float32)
        return m.addcmul_(s, xi).clamp_(min=0.0)

    def _draw_u(self, shape: torch.Size, device, generator) -> Tensor:
        """Each device's quantile u of its device-to-device factor, in (0, 1) (kept in ``aux``)."""
        u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
        return u.mul_(1.0 - 2.0 * _U_EDGE).add_(_U_EDGE)

    def _draw_reset(self, shape: torch.Size, device, generator) -> Tensor:
        u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
        q, pr = self._rq.to(device), self._rp.to(device)
        if q.numel() == 1:
            return q.expand(shape).clone()
        j = torch.searchsorted(pr, u).clamp_(1, q.numel() - 1)
        p0, p1 = pr[j - 1], pr[j]
        f = ((u - p0) / (p1 - p0)).clamp_(0.0, 1.0)
        return torch.lerp(q[j - 1], q[j], f)

    # ---- life cycle -------------------------------------------------------------------
    def init_state(self, shape, *, device=None, generator=None, t_s: float = 0.0) -> DeviceState:
        state = DeviceState.empty(shape, device)
        if self._uses_aux:  # aux = n + u: pulses since RESET (integer part), d2d quantile (fraction)
            state.aux.copy_(self._draw_u(state.shape, state.device, generator))
        self.reset(state, None, t_s, generator)
        state.pulse_count.zero_()
        return state

    def reset(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """G from the measured pulse-0 distribution where ``mask``; ν from ``nu`` (or the ν tables at
        that G); the pulse count since RESET ← 0 (the device keeps its device-to-device factor)."""
        mask = as_mask(mask, state)
        if mask is None or bool(mask.all()):
            g = self._draw_reset(state.shape, state.device, generator)
            state.g_us.copy_(g)
            state.nu.copy_(self._draw_nu(g, generator))
            state.t_prog_s.fill_(t_s)
            state.pulse_count.add_(1)
            if self._uses_aux:
                state.aux.sub_(state.aux.floor())
            return
        idx = mask.nonzero(as_tuple=True)
        g = self._draw_reset(idx[0].shape, state.device, generator)
        state.g_us.index_put_(idx, g)
        state.nu.index_put_(idx, self._draw_nu(g, generator))
        state.t_prog_s.index_put_(idx, torch.full_like(g, t_s))
        state.pulse_count.add_(mask.to(torch.int32))
        if self._uses_aux:
            a = state.aux[idx]
            state.aux.index_put_(idx, a - a.floor())

    def _step(self, g: Tensor, aux: Tensor, generator) -> tuple[Tensor, Tensor]:
        """One SET pulse on the devices ``g`` with their ``aux``: (new G, new aux)."""
        p = self.params
        m, s = self.increment_stats(g)
        if self._uses_aux:
            n_old = aux.floor()
            u = aux - n_old
            n_new = (n_old + 1.0).clamp_(max=_N_CAP)
            aux = n_new + u
            if self._history:
                ph = torch.exp(n_new * (-1.0 / p.hist_pulses))
                m = m + p.hist_mean_us * ph
                s = (s + p.hist_std_us * ph).clamp_(min=0.0)
            if p.d2d_rel_std > 0.0:  # the device's own factor on its mean step (s is cycle-to-cycle)
                m = m.addcmul(m, torch.special.ndtri(u), value=p.d2d_rel_std)
        xi = torch.randn(g.shape, generator=generator, device=g.device, dtype=torch.float32)
        return (g + m).addcmul_(s, xi).clamp_(p.set_min_us, self._set_max), aux

    def set_pulse(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """``G ← clip(G + N(mean, std), set_min, g_max)`` where ``mask``, mean and std from the tables
        at G (plus the history term of the pulse number since RESET and the device's own factor);
        with ν tables a fresh ν for the new G."""
        mask = as_mask(mask, state)
        full = mask is None or bool(mask.all())
        idx = None if full else mask.nonzero(as_tuple=True)
        g = state.g_us if full else state.g_us[idx]
        if g.numel() == 0:
            return
        g_new, aux_new = self._step(g, state.aux if full else state.aux[idx], generator)
        if full:
            state.g_us.copy_(g_new)
            state.t_prog_s.fill_(t_s)
            state.pulse_count.add_(1)
            if self._uses_aux:
                state.aux.copy_(aux_new)
            if self._nu_table:
                state.nu.copy_(self._draw_nu(g_new, generator))
        else:
            state.g_us.index_put_(idx, g_new)
            state.t_prog_s.index_put_(idx, torch.full_like(g_new, t_s))
            state.pulse_count.add_(mask.to(torch.int32))
            if self._uses_aux:
                state.aux.index_put_(idx, aux_new)
            if self._nu_table:
                state.nu.index_put_(idx, self._draw_nu(g_new, generator))

    # ---- reading ----------------------------------------------------------------------
    def drifted(self, state: DeviceState, t_s: float) -> Tensor:
        """``G·max((t − t_p)/t0, 1)^(−ν)`` (``drift_form`` "onset") or ``G·((t − t_p + t0)/t0)^(−ν)``
        ("shifted", t − t_p floored at 0)."""
        p = self.params
        if p.nu == 0.0 and not self._nu_table:
            return state.g_us.clone()
        x = torch.rsub(state.t_prog_s, t_s / p.t0_s, alpha=1.0 / p.t0_s)
        if p.drift_form == "shifted":
            x.clamp_(min=0.0).add_(1.0)
        else:
            x.clamp_(min=1.0)
        return x.log_().mul_(state.nu).neg_().exp_().mul_(state.g_us)

    def read_noise_std(self, state: DeviceState, t_s: float, g_drift_us: Tensor | None = None) -> Tensor:
        """The read-noise table at G(t) when fitted, else ``read_noise_rel·|G(t)| + read_noise_std_us``."""
        p = self.params
        g = self.drifted(state, t_s) if g_drift_us is None else g_drift_us
        if self._rn_g.numel():
            return _interp_table(g, self._rn_g.to(g.device), self._rn_s.to(g.device))
        return g.abs() * p.read_noise_rel + p.read_noise_std_us

    def read(self, state: DeviceState, t_s: float, generator=None, *, noise: bool = True) -> Tensor:
        p = self.params
        if not noise or (p.read_noise_rel == 0.0 and p.read_noise_std_us == 0.0 and not self._rn_g.numel()):
            return self.drifted(state, t_s)
        g = super().read(state, t_s, generator, noise=True)
        clip = self.read_clip_us
        return g.clamp_(clip[0], clip[1]) if clip else g

    # ---- programming ------------------------------------------------------------------
    def mean_set_increment_us(self, g_us: Tensor | float | None = None) -> float:
        """Mean of the tabulated mean ΔG over ``g_us`` (default: at the median RESET conductance), µS."""
        g = torch.as_tensor(self.g_min_us if g_us is None else g_us, dtype=torch.float32).reshape(-1)
        m, _ = self.increment_stats(g)
        return float(m.mean())

    # ---- update schemes -------------------------------------------------------------------
    granularity_source = "mean tabulated SET step at the median RESET conductance"

    def refresh_policy(self) -> RefreshPolicy:
        """srnn-pcm's rule relative to G_max: ``max(G⁺, G⁻) > G_max/2`` and ``|G⁺ − G⁻| < G_max/8``
        (``xbar.py``: ``reset_thr = 6`` µS and ``reset_thr/4`` at its G_max = 12 µS)."""
        g = self.params.g_max_us
        return RefreshPolicy(
            upper_us=g * SRNN_PCM_RESET_THR_US / SRNN_PCM_G_MAX_US,
            max_diff_us=g * SRNN_PCM_RESET_THR_US / SRNN_PCM_DIFF_DIVISOR / SRNN_PCM_G_MAX_US,
            source="srnn-pcm xbar.py rule (reset_thr = 6 µS, diff < reset_thr/4 at Gmax = 12 µS) relative to G_max")


DRIFT_FORMS = ("onset", "shifted")
"""``drift_form`` values: "onset" is ``pcm-nandakumar2018``'s law (no drift before t0 after
programming), "shifted" is ``pcm-joshi2020``'s (aihwkit ``PCMLikeNoiseModel``: ``t = Δt + t0``)."""
_N_CAP = 1023.0  # pulses since RESET are counted up to this (P = exp(−1023/a) ≈ 0 for any fitted a)
_U_EDGE = 1e-4  # the d2d quantile u lies in [1e-4, 1 − 1e-4]: factor within ±3.7 std (float32 aux)


def _interp_table(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """np.interp for a table of one or more points (linear between points, constant outside)."""
    if xp.numel() == 1:
        return fp.expand(x.shape).clone()
    return _interp(x, xp, fp)


# ---- CSV ----------------------------------------------------------------------------------
_COLUMNS = ("device", "pulse", "g_us")


def read_pulse_response_csv(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read and check a pulse-response CSV; returns ``{"g_us": [n_devices, n_pulses + 1] float64,
    "valid": same-shape bool}`` (devices may have different pulse counts; missing tail = invalid).

    Raises :class:`CSVFormatError` naming the file, line, field and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise CSVFormatError(f"{path}: no such file (expected a CSV with columns {','.join(_COLUMNS)})")
    rows: dict[str, dict[int, float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise CSVFormatError(f"{path}:1: empty file; expected a header line {','.join(_COLUMNS)}") from None
        header = [h.strip() for h in header]
        missing = [c for c in _COLUMNS if c not in header]
        if missing:
            raise CSVFormatError(
                f"{path}:1: header {','.join(header)!r} lacks column(s) {', '.join(missing)}; "
                f"expected {','.join(_COLUMNS)}"
            )
        col = {c: header.index(c) for c in _COLUMNS}
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(header):
                raise CSVFormatError(f"{path}:{line}: {len(row)} field(s); expected {len(header)} ({','.join(header)})")
            dev = row[col["device"]].strip()
            if not dev:
                raise CSVFormatError(f"{path}:{line}: field 'device' is empty; expected a device id")
            raw_p = row[col["pulse"]].strip()
            try:
                pulse = int(raw_p)
            except ValueError:
                raise CSVFormatError(
                    f"{path}:{line}: field 'pulse' = {raw_p!r}; expected an integer ≥ 0"
                ) from None
            if pulse < 0:
                raise CSVFormatError(f"{path}:{line}: field 'pulse' = {pulse}; expected an integer ≥ 0")
            raw_g = row[col["g_us"]].strip()
            try:
                g = float(raw_g)
            except ValueError:
                g = math.nan
            if not math.isfinite(g) or g < 0:
                raise CSVFormatError(
                    f"{path}:{line}: field 'g_us' = {raw_g!r}; expected a finite conductance ≥ 0 in µS"
                )
            d = rows.setdefault(dev, {})
            if pulse in d:
                raise CSVFormatError(f"{path}:{line}: device {dev!r} pulse {pulse} appears twice; expected one row")
            d[pulse] = g
    if not rows:
        raise CSVFormatError(f"{path}: no data rows; expected rows of {','.join(_COLUMNS)}")
    n_max = max(max(d) for d in rows.values()) + 1
    g = torch.zeros(len(rows), n_max, dtype=torch.float64)
    valid = torch.zeros(len(rows), n_max, dtype=torch.bool)
    for i, (dev, d) in enumerate(rows.items()):
        n = max(d) + 1
        if sorted(d) != list(range(n)):
            gap = next(k for k in range(n) if k not in d)
            raise CSVFormatError(
                f"{path}: device {dev!r} lacks pulse {gap}; expected consecutive pulses 0..{n - 1}"
            )
        g[i, :n] = torch.tensor([d[k] for k in range(n)], dtype=torch.float64)
        valid[i, :n] = True
    if int(valid[:, 1:].sum()) < 2:
        raise CSVFormatError(f"{path}: fewer than 2 pulse increments in the file; expected pulses 0, 1, … per device")
    return {"g_us": g, "valid": valid}


def fit_pulse_response(data: dict[str, Tensor], *, n_bins: int = 32, min_count: int = 10,
                       n_quantiles: int = 101) -> dict[str, object]:
    """Fit the tables of :class:`EmpiricalParams` to ``read_pulse_response_csv`` output."""
    g, valid = data["g_us"], data["valid"]
    before, after = g[:, :-1], g[:, 1:]
    ok = valid[:, :-1] & valid[:, 1:]
    gb = before[ok]
    dg = (after - before)[ok]
    lo, hi = float(gb.min()), float(gb.max())
    if hi <= lo:
        hi = lo + 1e-6
    step = (hi - lo) / n_bins
    b = ((gb - lo) / step).floor().clamp(0, n_bins - 1).to(torch.int64)
    cnt = torch.bincount(b, minlength=n_bins).to(torch.float64)
    s1 = torch.bincount(b, weights=dg, minlength=n_bins)
    s2 = torch.bincount(b, weights=dg * dg, minlength=n_bins)
    good = cnt >= min_count
    if int(good.sum()) < 2:
        good = cnt >= 2
    if int(good.sum()) < 2:
        raise CSVFormatError(
            f"too few increments to fit: {int(cnt.sum())} in total; expected at least 2 bins with ≥ 2 each"
        )
    mean = torch.where(good, s1 / cnt.clamp(min=1), torch.zeros_like(s1))
    var = torch.where(good, (s2 - s1 * s1 / cnt.clamp(min=1)) / (cnt - 1).clamp(min=1), torch.zeros_like(s1))
    std = var.clamp(min=0).sqrt()
    centers = lo + (torch.arange(n_bins, dtype=torch.float64) + 0.5) * step
    xs = centers[good]
    mean = _interp(centers, xs, mean[good])
    std = _interp(centers, xs, std[good])
    g0 = g[:, 0][valid[:, 0]]
    probs = torch.linspace(0.0, 1.0, n_quantiles, dtype=torch.float64)
    quant = torch.quantile(g0, probs)
    return {
        "grid_start_us": float(centers[0]),
        "grid_step_us": float(step),
        "dg_mean_us": tuple(float(v) for v in mean),
        "dg_std_us": tuple(float(v) for v in std),
        "reset_probs": tuple(float(v) for v in probs),
        "reset_quantiles_us": tuple(float(v) for v in quant),
        "g_max_us": float(g[valid].max()),
    }


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """np.interp in torch (constant outside the sample points)."""
    j = torch.searchsorted(xp, x).clamp(1, xp.numel() - 1)
    x0, x1 = xp[j - 1], xp[j]
    f = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return fp[j - 1] + f * (fp[j] - fp[j - 1])


def write_pulse_response_csv(
    model: DeviceModel, path: str | os.PathLike, *, n_devices: int = 1000, n_pulses: int = 30, seed: int = 0,
    t_s: float = 0.0, read_noise: bool = False, device: torch.device | str | None = None,
) -> Path:
    """Measure ``model`` as a lab would and write ``device,pulse,g_us`` rows (atomically).

    Each device starts from a RESET (pulse 0) and gets ``n_pulses`` SET pulses; after each the
    conductance is read at the pulse time (noise-free unless ``read_noise``).
    """
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    state = model.init_state((n_devices,), device=device, generator=gen, t_s=t_s)
    trace = torch.empty(n_pulses + 1, n_devices, dtype=torch.float32)
    trace[0] = model.read(state, t_s, gen, noise=read_noise).cpu()
    for k in range(1, n_pulses + 1):
        model.set_pulse(state, None, t_s, gen)
        trace[k] = model.read(state, t_s, gen, noise=read_noise).cpu()
    vals = trace.T.tolist()

    def write(fh: IO[str]) -> None:
        w = csv.writer(fh)
        w.writerow(_COLUMNS)
        for d in range(n_devices):
            for k, v in enumerate(vals[d]):
                w.writerow((d, k, f"{v:.6g}"))

    return atomic_write(path, write, newline="")


def main(argv: list[str] | None = None) -> int:
    """``python -m device_models.empirical MODEL OUT.csv [--n-devices N] [--n-pulses K] [--seed S]``."""
    # the registry, not the package: the package imports this module (its __init__ has run and
    # registered every model before any of its modules can be imported)
    from .registry import get

    ap = argparse.ArgumentParser(description="Write a pulse-response CSV (device,pulse,g_us) from a device model.")
    ap.add_argument("model", help="registered device model name, e.g. pcm-nandakumar2018")
    ap.add_argument("out", help="CSV file to write")
    ap.add_argument("--n-devices", type=int, default=1000)
    ap.add_argument("--n-pulses", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--read-noise", action="store_true", help="record noisy reads")
    args = ap.parse_args(argv)
    out = write_pulse_response_csv(get(args.model), args.out, n_devices=args.n_devices, n_pulses=args.n_pulses,
                                   seed=args.seed, read_noise=args.read_noise)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
