"""``empirical``: a device built from measured pulse-response data.

Input: a pulse-response CSV ``device,pulse,g_us`` (read by
:func:`device_models.measurements.read_pulse_csv`: for each device the conductance (µS) right after a
RESET, ``pulse`` 0, and after each of consecutive SET pulses 1, 2, …). :meth:`EmpiricalDevice.from_csv`
fits it with the pulse-response fit of ``pcmsim device fit`` (:func:`device_models.fit.fit_pulse`:
tables of the mean and std of ΔG on ``n_bins`` knots, RESET quantiles, G_max, and the terms below
where the data show them); a fit with drift and read-noise files is ``pcmsim device fit``.

Model: SET ``G ← clip(G + N(mean(G), std(G)), 0, g_max)``; RESET draws from the measured pulse-0
distribution (inverse-CDF sampling, linear between quantiles); no drift unless ``nu`` > 0
(then ``G(t) = G·max((t − t_p)/t0, 1)^(−ν)``); read noise ``σ = read_noise_rel·G(t) +
read_noise_std_us`` (Gaussian, default 0).

A model fitted by ``pcmsim device fit`` (:mod:`device_models.fit`) is this model with more of its
fields set (all off by default, so the above is unchanged):

- a pulse-history term: the n-th SET pulse since the last RESET has mean ``M(G) + A_μ·P`` and
  cycle-to-cycle std ``S(G) + A_σ·P`` with ``P = exp(−n/a)`` (``hist_mean_us``, ``hist_std_us``,
  ``hist_pulses``; the history state of ``pcm-nandakumar2018``);
- a device-to-device factor: each device's mean step is scaled by ``1 + d2d_rel_std·z_d``
  (``d2d_law`` "normal") or by ``exp(σ·z_d − σ²/2)``, ``σ² = log(1 + d2d_rel_std²)`` ("lognormal":
  mean 1, std ``d2d_rel_std``, right-skewed), ``z_d`` drawn once per device (kept across RESETs).
  ``aux`` holds both states: its integer part counts the pulses since RESET, its fraction is the
  device's quantile ``u`` (``z_d = Φ⁻¹(u)``);
- a multiplicative cycle-to-cycle law (``c2c_rel_std`` κ; the mean step ``m`` of the device, its
  factor and history term included), so the scatter shrinks with the mean step where it vanishes at
  saturation: the step is normal with std ``S(G) + κ·|m|`` (``c2c_shape`` "normal"), or ``m·L + S(G)·ξ``
  with ``L = exp(σ·η − σ²/2)``, ``σ² = log(1 + κ²)`` a log-normal factor of mean 1 and std κ
  (right-skewed) and ``η``, ``ξ`` independent normals ("lognormal");
- a device-to-device clip: each device's SET results are clipped at its own level
  ``max(g_max_us, set_max_us)·(1 + g_max_rel_std·z_c)`` (aihwkit's ``w_max_dtod``), ``z_c`` drawn
  once per device independently of ``z_d``. With it the device's two quantiles are one point of a
  Fibonacci lattice (Sloan & Joe 1994, "Lattice Methods for Multiple Integration", §5.3):
  ``u = (j + ½)/N``, ``u_c = ((j·F) mod N + ½)/N`` for the index ``j`` kept in ``aux``'s fraction,
  ``N`` = :data:`_LATTICE_N`, ``F`` = :data:`_LATTICE_F` (both marginals exactly uniform on ``N``
  points, the pair evenly spread over the unit square);
- the mean step above the top table point continued along the top segment (``dg_mean_above``
  "linear") instead of held at the top point's value ("hold"): a fit continues it where the steps at the
  top of the data restore (turn negative), unless holding is much likelier; the std is held either way;
- SET results clipped below at ``set_min_us`` (the measured floor);
- ν drawn at every programming event from tables of mean and std against the programmed G
  (``nu_grid_us``, ``nu_mean``, ``nu_std``), drift law ``drift_form`` ("onset" or "shifted");
- read noise σ from a table against G(t) (``read_noise_g_us``, ``read_noise_sigma_us``), reads
  clipped to ``read_clip_range_us``.

Without a CSV (``device_models.get("empirical")``) the tables are the steady-state (P = 0)
increments of ``pcm-nandakumar2018``: mean ``0.88 − 0.084·G``, std ``0.26 + 0.091·G`` on
[0.1, 12] µS, RESET N(0.1, 0.01): a documented placeholder, not a measurement. Pass
``csv_path=...`` to ``get`` (or use :meth:`EmpiricalDevice.from_csv`) for real data.

:func:`device_models.measurements.write_pulse_response_csv` writes such a CSV from any pulse-level
model (a round trip for tests and users); ``python -m device_models.measurements MODEL OUT.csv`` does
it from the shell.

Update schemes: ε = the mean tabulated step at the median RESET conductance; refresh by srnn-pcm's
rule stated relative to G_max (``xbar.py``: 6 µS and 6/4 µS at its G_max = 12 µS, i.e. G_max/2 and
G_max/8), which is srnn-pcm's own 6 / 1.5 µS for the placeholder tables and scales with a CSV's G_max.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .base import DeviceParams
from .checks import DeviceParameterError, as_mask, check_all_finite, check_int, check_range, param
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
    d2d_law: str = "normal"  # the factor's law, mean 1 and std d2d_rel_std: "normal" or "lognormal"; fitted
    c2c_rel_std: float = param(0.0, ge=0.0, le=10.0)  # κ: c2c std grows by κ·|the device's mean step| (0: none); fitted
    c2c_shape: str = "normal"  # the κ part's shape: "normal" (std S + κ·|m|) or "lognormal" (m·L, L of std κ); fitted
    g_max_rel_std: float = param(0.0, ge=0.0, le=0.5)  # device-to-device std of a device's SET clip, relative; fitted
    dg_mean_above: str = "hold"  # the mean step above the top table point: "hold" or "linear" (continued); fitted
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
    n_bins: int = 16  # knots of the M and S tables of the fit (csv_path only)
    min_count: int = 10  # not used since the fit is the state-space one (kept: saved files name it)
    n_quantiles: int = 101  # RESET quantiles kept (csv_path only)


CSVFitter = Callable[[str, int, int], dict[str, Any]]
_CSV_FITTER: CSVFitter | None = None


def register_csv_fitter(fit: CSVFitter) -> None:
    """Let ``EmpiricalDevice(csv_path=…)`` fit its tables: ``fit(path, n_knots, n_quantiles)`` returns the
    fitted parameters. :mod:`device_models` registers the one pulse-response reader and fitter
    (:func:`device_models.measurements.read_pulse_csv`, :func:`device_models.fit.fit_pulse`), which import
    this module: registered, not imported here, so that no import circle forms."""
    global _CSV_FITTER
    _CSV_FITTER = fit


class EmpiricalDevice(PulseLevelDevice):
    """A SET/RESET device whose increments follow measured statistics; see the module docstring."""

    name = "empirical"
    Params = EmpiricalParams
    params: EmpiricalParams

    def __init__(self, params: EmpiricalParams | None = None, **overrides) -> None:
        path = overrides.get("csv_path", params.csv_path if params is not None else None)
        if path is not None:
            if _CSV_FITTER is None:
                raise DeviceParameterError("csv_path needs the pulse-response fit (import device_models)")
            base = params if params is not None else EmpiricalParams()
            n_knots, n_q = (overrides.get(k, getattr(base, k)) for k in ("n_bins", "n_quantiles"))
            check_int("n_bins", n_knots, 2)
            check_int("n_quantiles", n_q, 2)
            fitted = _CSV_FITTER(path, n_knots, n_q)
            fitted = {k: v for k, v in fitted.items() if k not in overrides}  # explicit overrides win
            params = dataclasses.replace(base, **fitted)
        super().__init__(params, **overrides)
        p = self.params
        self._mean = torch.tensor(p.dg_mean_us, dtype=torch.float32)
        self._std = torch.tensor(p.dg_std_us, dtype=torch.float32)
        self._rq = torch.tensor(p.reset_quantiles_us, dtype=torch.float32)
        self._rp = torch.tensor(p.reset_probs, dtype=torch.float32)
        self._history = p.hist_mean_us != 0.0 or p.hist_std_us != 0.0
        self._clip_d2d = p.g_max_rel_std > 0.0
        self._uses_aux = self._history or p.d2d_rel_std > 0.0 or self._clip_d2d
        self._nu_g = torch.tensor(p.nu_grid_us, dtype=torch.float32)
        self._nu_m = torch.tensor(p.nu_mean, dtype=torch.float32)
        self._nu_s = torch.tensor(p.nu_std, dtype=torch.float32)
        self._nu_table = len(p.nu_grid_us) > 0
        self._nu_random = self._nu_table and max(p.nu_std) > 0.0
        self._rn_g = torch.tensor(p.read_noise_g_us, dtype=torch.float32)
        self._rn_s = torch.tensor(p.read_noise_sigma_us, dtype=torch.float32)
        self._set_max = max(p.g_max_us, p.set_max_us)
        self._d2d_sigma = float(_d2d_sigma(torch.tensor(p.d2d_rel_std, dtype=torch.float64), p.d2d_law))
        self._c2c_lognormal = p.c2c_shape == "lognormal" and p.c2c_rel_std > 0.0
        self._c2c_sigma = math.sqrt(math.log1p(p.c2c_rel_std ** 2))
        self._mean_linear_above = p.dg_mean_above == "linear"

    @classmethod
    def from_csv(cls, path: str | os.PathLike, **params) -> EmpiricalDevice:
        """Fit to a measured CSV (``device,pulse,g_us``); ``params`` override any field."""
        return cls(csv_path=str(path), **params)

    def validate(self) -> None:
        p = self.params
        if p.csv_path is not None and not os.path.isfile(p.csv_path):
            raise DeviceParameterError(f"{p.csv_path}: no such file (csv_path: a pulse-response CSV)")
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
        if p.d2d_law not in D2D_LAWS:
            raise DeviceParameterError(f"parameter d2d_law={p.d2d_law!r} is invalid: expected one of "
                                       f"{', '.join(D2D_LAWS)}")
        if p.c2c_shape not in C2C_SHAPES:
            raise DeviceParameterError(f"parameter c2c_shape={p.c2c_shape!r} is invalid: expected one of "
                                       f"{', '.join(C2C_SHAPES)}")
        if p.dg_mean_above not in MEAN_TAILS:
            raise DeviceParameterError(f"parameter dg_mean_above={p.dg_mean_above!r} is invalid: expected one of "
                                       f"{', '.join(MEAN_TAILS)}")
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
    def _tables(self, g_us: Tensor) -> tuple[Tensor, Tensor]:
        """(M, S) at ``g_us``: the mean-step and additive-std tables, linear between points and held
        outside them (M above the top point continued along the top segment where ``dg_mean_above`` is
        "linear"), µS."""
        p = self.params
        n = len(p.dg_mean_us)
        mean, std = self._mean.to(g_us.device), self._std.to(g_us.device)
        # "linear": above the top point the top segment's weight f runs past 1 for M (S held at 1)
        top = None if self._mean_linear_above else n - 1.0
        u = ((g_us - p.grid_start_us) * (1.0 / p.grid_step_us)).clamp_(0.0, top)
        i = u.floor().to(torch.int64).clamp_(max=n - 2)
        f = u - i
        return torch.lerp(mean[i], mean[i + 1], f), torch.lerp(std[i], std[i + 1],
                                                               f.clamp(max=1.0) if self._mean_linear_above else f)

    def increment_stats(self, g_us: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, std) of ΔG at conductance ``g_us`` for a device with factor 1 in the steady state:
        ``M(G)`` and ``S(G) + κ·|M(G)|`` (``c2c_shape`` "lognormal": ``√(S(G)² + κ²·M(G)²)``; linear
        interpolation on the tables), µS."""
        m, s = self._tables(g_us)
        return m, self._c2c_std(m, s)

    def _c2c_std(self, m: Tensor, s: Tensor) -> Tensor:
        """The cycle-to-cycle std of a step of mean ``m`` and additive std ``s``."""
        kappa = self.params.c2c_rel_std
        if kappa <= 0.0:
            return s
        return torch.hypot(s, kappa * m) if self._c2c_lognormal else s.add(m.abs(), alpha=kappa)

    def step_stats(self, g_us: Tensor, n_pulse: Tensor | float | None = None) -> tuple[Tensor, Tensor]:
        """(mean, std) of ΔG of the ``n_pulse``-th SET pulse since the last RESET (1 = the first) at
        conductance ``g_us``, over the population, µS (before the clip).

        ``mean = M(G) + A_μ·P``, cycle-to-cycle ``std = S(G) + A_σ·P + κ·|mean|`` (floored at 0)
        with ``P = exp(−n/a)``, and the device-to-device part ``d2d_rel_std·mean`` added in quadrature
        (the factor's effect on the κ part neglected); ``n_pulse=None``: the steady state P = 0.
        """
        p = self.params
        m, s = self._tables(g_us)
        if n_pulse is not None and self._history:
            ph = torch.exp(-torch.as_tensor(n_pulse, dtype=m.dtype, device=m.device) / p.hist_pulses)
            m = m + p.hist_mean_us * ph
            s = s + p.hist_std_us * ph
        s = self._c2c_std(m, s.clamp(min=0.0) if self._c2c_lognormal else s).clamp(min=0.0)
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
        """Each device's quantile u of its device-to-device factor, in (0, 1) (kept in ``aux``); with a
        clip per device a lattice point ``(j + ½)/N`` (see the module docstring)."""
        if self._clip_d2d:
            j = torch.randint(0, _LATTICE_N, shape, generator=generator, device=device)
            return j.to(torch.float32).add_(0.5).mul_(1.0 / _LATTICE_N)
        u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
        return u.mul_(1.0 - 2.0 * _U_EDGE).add_(_U_EDGE)

    def _lattice_z(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(z_d, z_c): the normal quantiles of a device's factor and of its clip from its lattice point ``u``."""
        j = (u * _LATTICE_N).floor_().clamp_(0, _LATTICE_N - 1).to(torch.int64)
        jc = (j * _LATTICE_F) % _LATTICE_N
        scale = 1.0 / _LATTICE_N
        return (torch.special.ndtri(j.to(torch.float32).add_(0.5).mul_(scale)),
                torch.special.ndtri(jc.to(torch.float32).add_(0.5).mul_(scale)))

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
        m, s = self._tables(g)
        hi: Tensor | float = self._set_max
        if self._uses_aux:
            n_old = aux.floor()
            u = aux - n_old
            n_new = (n_old + 1.0).clamp_(max=_N_CAP)
            aux = n_new + u
            if self._history:
                ph = torch.exp(n_new * (-1.0 / p.hist_pulses))
                m = m + p.hist_mean_us * ph
                s = s + p.hist_std_us * ph
            z_d = z_c = None
            if self._clip_d2d:
                z_d, z_c = self._lattice_z(u)
                hi = z_c.mul_(p.g_max_rel_std * self._set_max).add_(self._set_max)
            if p.d2d_rel_std > 0.0:  # the device's own factor on its mean step (s is cycle-to-cycle)
                z = torch.special.ndtri(u) if z_d is None else z_d
                if p.d2d_law == "normal":
                    m = m.addcmul(m, z, value=p.d2d_rel_std)
                else:
                    m = m * _d2d_factor(z * self._d2d_sigma, self._d2d_sigma, "lognormal")
        if self._c2c_lognormal:  # the multiplicative part: a log-normal factor of std κ on the device's own step
            eta = torch.randn(g.shape, generator=generator, device=g.device, dtype=torch.float32)
            m = m * eta.mul_(self._c2c_sigma).sub_(0.5 * self._c2c_sigma ** 2).exp_()
        elif p.c2c_rel_std > 0.0:  # the multiplicative part: κ·|the device's own mean step|
            s = s.add(m.abs(), alpha=p.c2c_rel_std)
        if self._history:
            s = s.clamp(min=0.0)
        xi = torch.randn(g.shape, generator=generator, device=g.device, dtype=torch.float32)
        g_new = (g + m).addcmul_(s, xi)
        if isinstance(hi, Tensor):  # the device's own clip
            return torch.minimum(g_new.clamp_(min=p.set_min_us), hi), aux
        return g_new.clamp_(p.set_min_us, hi), aux

    def set_pulse(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """``G ← clip(G + N(mean, std), set_min, g_max)`` where ``mask``, mean and std from the tables
        at G (plus the history term of the pulse number since RESET and the device's own factor);
        with ν tables a fresh ν for the new G."""
        mask = as_mask(mask, state)
        full = mask is None or bool(mask.all())
        idx = None if mask is None or full else mask.nonzero(as_tuple=True)
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
            assert mask is not None  # not full: some devices are left out
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


D2D_LAWS = ("normal", "lognormal")
"""``d2d_law`` values: the device factor's law, mean 1 and std ``d2d_rel_std`` either way."""
C2C_SHAPES = ("normal", "lognormal")
"""``c2c_shape`` values: the shape of the multiplicative cycle-to-cycle part (κ), std ``κ·|m|`` either way."""
MEAN_TAILS = ("hold", "linear")
"""``dg_mean_above`` values: the mean step above the top table point, the top point's value or the top
segment continued (the cycle-to-cycle std is held there either way)."""


def _d2d_sigma(s: Tensor, law: str) -> Tensor:
    """The scale σ of the device factor's normal variable ``v = σ·z`` for a factor std ``s``: ``s``
    (normal) or ``sqrt(log(1 + s²))`` (log-normal)."""
    return s if law == "normal" else torch.log1p(s * s).sqrt()


def _d2d_factor(v: Tensor, sig: Tensor | float, law: str) -> Tensor:
    """The device factor at ``v = σ·z``: ``1 + v`` (normal) or ``exp(v − σ²/2)`` (log-normal; mean 1)."""
    return 1.0 + v if law == "normal" else torch.exp(v - 0.5 * sig * sig)

DRIFT_FORMS = ("onset", "shifted")
"""``drift_form`` values: "onset" is ``pcm-nandakumar2018``'s law (no drift before t0 after
programming), "shifted" is ``pcm-joshi2020``'s (aihwkit ``PCMLikeNoiseModel``: ``t = Δt + t0``)."""
_N_CAP = 1023.0  # pulses since RESET are counted up to this (P = exp(−1023/a) ≈ 0 for any fitted a)
_U_EDGE = 1e-4  # the d2d quantile u lies in [1e-4, 1 − 1e-4]: factor within ±3.7 std (float32 aux)
_LATTICE_N = 6765  # points of the Fibonacci lattice of (factor, clip) quantiles: F_20 (z within ±3.8)
_LATTICE_F = 4181  # its generator F_19 (Sloan & Joe 1994 §5.3); floor(u·N) gives j back while n < 1024 (float32 aux)


def _interp_table(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """np.interp for a table of one or more points (linear between points, constant outside)."""
    if xp.numel() == 1:
        return fp.expand(x.shape).clone()
    return _interp(x, xp, fp)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """np.interp in torch (constant outside the sample points)."""
    j = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1 = xp[j - 1], xp[j]
    f = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return fp[j - 1] + f * (fp[j] - fp[j - 1])
