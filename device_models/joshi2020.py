"""``pcm-joshi2020``: PCM for inference: programming noise, drift and accumulated 1/f read noise.

V. Joshi et al., "Accurate deep neural network inference using computational phase-change
memory", Nat. Commun. 11, 2473 (2020), fitted on about one million devices. The equations and
constants are those of IBM aihwkit's ``PCMLikeNoiseModel`` (``src/aihwkit/inference/noise/pcm.py``,
methods ``apply_programming_noise_to_conductance``, ``generate_drift_coefficients`` and
``apply_drift_noise_to_conductance``); see the project notes PCM-MODELS.md §2. With ``ĝ = G/g_max``:

- programming (once per target): ``G_prog = max(0, G_T + σ_prog·ξ)``,
  ``σ_prog = (0.26348 + 1.9650·ĝ_T − 1.1731·ĝ_T²)·g_max/25``;
- drift exponent, drawn at programming from the target (ĝ_T floored at 1e-7):
  ``μ_ν = clip(−0.0155·ln ĝ_T + 0.0244, 0.049, 0.1)``,
  ``σ_ν = clip(−0.0125·ln ĝ_T − 0.0059, 0.008, 0.045)``, ``ν = |μ_ν + σ_ν·ξ|``;
- drift: ``G_drift = G_prog·(t/t0)^(−ν)`` with ``t = t_inference + t0``, ``t0 = 20 s`` and
  ``t_inference = t − t_prog`` the time since programming (no drift for ``t_inference ≤ 0``);
- read noise: ``Q_s = min(0.0088/max(ĝ_prog^0.65, 1e-3), 0.2)``,
  ``σ = |G_drift|·Q_s·sqrt(ln((t + t_read)/(2·t_read)))``, ``t_read = 250 ns``;
  ``G = max(0, G_drift + σ·ξ)``.

aihwkit draws the accumulated 1/f noise once per inference time. Here every :meth:`read` is an
independent draw with that σ: the statistics of one read equal aihwkit's at the same time.

State: ``g_us`` = G_prog, ``nu`` = ν, ``t_prog_s`` = the programming time, ``aux`` = the target
G_T of the last programming (kept for diagnostics; ``Q_s`` follows from ``g_us``).

This model is not pulse-level. For the pulse interface it uses documented stand-ins: a SET pulse
re-programs the device to ``min(G + set_increment_us, g_max)`` with this model's programming noise
and a fresh ν (so repeated SETs random-walk with σ_prog per step); RESET sets ``G = 0`` and
``ν = 0``. :meth:`program` applies the programming noise once (one pulse).

Update schemes: ε = ``set_increment_us`` (the SET stand-in's nominal step; ours); refresh by the
:class:`~device_models.base.DeviceModel` default (aihwkit's ``OneSidedUnitCell`` thresholds,
0.75·G_max and 0.25·G_max): the source is an inference model and states no refresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import DeviceModel, DeviceParams
from .checks import as_mask, check_range, param
from .state import DeviceState, ProgramReport


@dataclass(frozen=True)
class JoshiParams(DeviceParams):
    """Constants of ``pcm-joshi2020``; source: aihwkit ``PCMLikeNoiseModel`` (inference/noise/pcm.py),
    after Joshi et al., Nat. Commun. 11, 2473 (2020)."""

    g_max_us: float = param(25.0, gt=0.0)  # g_max, µS; aihwkit SinglePairConductanceConverter default g_max=25
    prog_c0: float = 0.26348  # σ_prog polynomial, µS at the reference g_max; aihwkit prog_coeff[0]
    prog_c1: float = 1.9650  # ·ĝ_T; aihwkit prog_coeff[1]
    prog_c2: float = -1.1731  # ·ĝ_T²; aihwkit prog_coeff[2]
    prog_g_max_ref_us: float = param(25.0, gt=0.0)  # polynomial fit g_max, µS; aihwkit prog_coeff_g_max_reference
    prog_noise_scale: float = param(1.0, ge=0.0)  # scale of σ_prog; aihwkit prog_noise_scale
    nu_mu_slope: float = -0.0155  # μ_ν = slope·ln ĝ_T + offset; aihwkit generate_drift_coefficients
    nu_mu_offset: float = 0.0244  # aihwkit
    nu_mu_min: float = param(0.049, ge=0.0)  # clip of μ_ν; aihwkit
    nu_mu_max: float = 0.1  # aihwkit
    nu_std_slope: float = -0.0125  # σ_ν = slope·ln ĝ_T + offset; aihwkit
    nu_std_offset: float = -0.0059  # aihwkit
    nu_std_min: float = param(0.008, ge=0.0)  # clip of σ_ν; aihwkit
    nu_std_max: float = 0.045  # aihwkit
    g_rel_floor: float = param(1e-7, gt=0.0, le=1.0)  # floor of ĝ_T in the ν law; aihwkit _ZERO_CLIP
    drift_scale: float = param(1.0, ge=0.0)  # scale of ν; aihwkit drift_scale
    t0_s: float = param(20.0, gt=0.0)  # drift reference time, s; aihwkit t_0
    t_read_s: float = param(250e-9, gt=0.0)  # 1/f fit parameter (read duration), s; aihwkit t_read
    q_s_coeff: float = param(0.0088, ge=0.0)  # Q_s numerator; aihwkit apply_drift_noise_to_conductance
    q_s_exponent: float = 0.65  # exponent of ĝ_prog in Q_s; aihwkit
    q_s_g_floor: float = param(1e-3, gt=0.0)  # floor of ĝ_prog^0.65; aihwkit
    q_s_max: float = param(0.2, ge=0.0)  # cap of Q_s; aihwkit
    read_noise_scale: float = param(1.0, ge=0.0)  # scale of the read noise; aihwkit read_noise_scale
    set_increment_us: float = param(1.0, ge=0.0)  # nominal target step of the SET stand-in, µS; ours (not in the paper)


class JoshiDevice(DeviceModel):
    """Statistical PCM model of Joshi et al. (2020) = aihwkit ``PCMLikeNoiseModel``."""

    name = "pcm-joshi2020"
    Params = JoshiParams
    params: JoshiParams

    def validate(self) -> None:
        p = self.params
        check_range("nu_mu_max", p.nu_mu_max, p.nu_mu_min)
        check_range("nu_std_max", p.nu_std_max, p.nu_std_min)

    @property
    def g_max_us(self) -> float:
        return self.params.g_max_us

    # ---- the model's laws (also used by the tests and plots) ---------------------------
    def prog_noise_std(self, g_target_us: Tensor) -> Tensor:
        """σ_prog(G_T), µS (the Gaussian σ before the clamp at 0)."""
        p = self.params
        gh = g_target_us / p.g_max_us
        sig = p.prog_c0 + gh * (p.prog_c1 + gh * p.prog_c2)
        return sig * (p.g_max_us / p.prog_g_max_ref_us * p.prog_noise_scale)

    def nu_mean_std(self, g_target_us: Tensor) -> tuple[Tensor, Tensor]:
        """(μ_ν, σ_ν) of the drift exponent for a target G_T, before the |·| and ``drift_scale``."""
        p = self.params
        log_g = torch.log((g_target_us.abs() / p.g_max_us).clamp(min=p.g_rel_floor))
        mu = (p.nu_mu_slope * log_g + p.nu_mu_offset).clamp(p.nu_mu_min, p.nu_mu_max)
        sd = (p.nu_std_slope * log_g + p.nu_std_offset).clamp(p.nu_std_min, p.nu_std_max)
        return mu, sd

    def q_s(self, g_prog_us: Tensor) -> Tensor:
        """Q_s(ĝ_prog) of the 1/f read noise."""
        p = self.params
        gh = (g_prog_us.abs() / p.g_max_us).pow(p.q_s_exponent).clamp(min=p.q_s_g_floor)
        return (p.q_s_coeff / gh).clamp(max=p.q_s_max)

    def _program_values(self, target: Tensor, generator) -> tuple[Tensor, Tensor]:
        """(G_prog, ν) for targets: programming noise first, then ν (two draws, in that order)."""
        p = self.params
        xi = torch.randn(target.shape, generator=generator, device=target.device, dtype=torch.float32)
        g_prog = (target + self.prog_noise_std(target) * xi).clamp_(min=0.0)
        mu, sd = self.nu_mean_std(target)
        xi2 = torch.randn(target.shape, generator=generator, device=target.device, dtype=torch.float32)
        nu = (mu + sd * xi2).abs_().mul_(p.drift_scale)
        return g_prog, nu

    # ---- life cycle -------------------------------------------------------------------
    def init_state(self, shape, *, device=None, generator=None, t_s: float = 0.0) -> DeviceState:
        """Every device RESET (G = 0, ν = 0) at ``t_s``; no pulse counted."""
        state = DeviceState.empty(shape, device)
        state.t_prog_s.fill_(t_s)
        return state

    def set_pulse(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """Stand-in SET: re-program to ``min(G + set_increment_us, g_max)`` with programming noise."""
        mask = as_mask(mask, state)
        p = self.params
        if mask is None:
            mask = torch.ones(state.shape, dtype=torch.bool, device=state.device)
        idx = mask.nonzero(as_tuple=True)
        if idx[0].numel() == 0:
            return
        target = (state.g_us[idx] + p.set_increment_us).clamp_(max=p.g_max_us)
        g_prog, nu = self._program_values(target, generator)
        state.g_us.index_put_(idx, g_prog)
        state.nu.index_put_(idx, nu)
        state.aux.index_put_(idx, target)
        state.t_prog_s.index_put_(idx, torch.full_like(target, t_s))
        state.pulse_count.add_(mask.to(torch.int32))

    def reset(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """Stand-in RESET: ``G = 0``, ``ν = 0``, target 0 (deterministic)."""
        mask = as_mask(mask, state)
        if mask is None:
            mask = torch.ones(state.shape, dtype=torch.bool, device=state.device)
        for f in ("g_us", "nu", "aux"):
            getattr(state, f).masked_fill_(mask, 0.0)
        state.t_prog_s.masked_fill_(mask, t_s)
        state.pulse_count.add_(mask.to(torch.int32))

    # ---- reading ----------------------------------------------------------------------
    def _t_total(self, state: DeviceState, t_s: float) -> Tensor:
        """``t = t_inference + t0`` per device, with ``t_inference = max(t − t_prog, 0)``, s."""
        return torch.rsub(state.t_prog_s, t_s).clamp_(min=0.0).add_(self.params.t0_s)

    def drifted(self, state: DeviceState, t_s: float) -> Tensor:
        """``G_prog·(t/t0)^(−ν)``."""
        t = self._t_total(state, t_s)
        return t.div_(self.params.t0_s).log_().mul_(state.nu).neg_().exp_().mul_(state.g_us)

    def read_noise_std(self, state: DeviceState, t_s: float, g_drift_us: Tensor | None = None) -> Tensor:
        """``|G_drift|·Q_s(ĝ_prog)·sqrt(ln((t + t_read)/(2·t_read)))``, µS (before the clamp at 0)."""
        p = self.params
        g = self.drifted(state, t_s) if g_drift_us is None else g_drift_us
        t = self._t_total(state, t_s)
        growth = t.add_(p.t_read_s).div_(2.0 * p.t_read_s).log_().clamp_(min=0.0).sqrt_()
        return g.abs() * self.q_s(state.g_us) * growth * p.read_noise_scale

    @property
    def read_clip_us(self) -> tuple[float, float] | None:
        """A noisy read is clamped at 0 (aihwkit ``PCMLikeNoiseModel``), not above."""
        return (0.0, math.inf)

    def read(self, state: DeviceState, t_s: float, generator=None, *, noise: bool = True) -> Tensor:
        """``max(0, G_drift + σ·ξ)``; without noise the drifted conductance."""
        g = self.drifted(state, t_s)
        if not noise:
            return g
        sigma = self.read_noise_std(state, t_s, g)
        xi = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        return g.addcmul_(sigma, xi).clamp_(min=0.0)

    # ---- programming ------------------------------------------------------------------
    def program(self, state, target_us, t_s, generator, *, tolerance_us=None, max_pulses=None) -> ProgramReport:
        """Program every device once: ``G_prog = max(0, G_T + σ_prog·ξ)`` and a fresh ν(G_T).

        Targets are clipped to ``[0, g_max]``. One pulse per device; ``max_pulses`` is ignored
        (must be ≥ 1 if given). ``converged``: ``|G_prog − G_T| ≤ tolerance_us`` when a tolerance is
        given, else all true (the one-shot programming is complete by construction).
        """
        p = self.params
        if max_pulses is not None and max_pulses < 1:
            raise ValueError(f"max_pulses={max_pulses!r} is invalid: expected an integer ≥ 1")
        target = torch.as_tensor(target_us, dtype=torch.float32, device=state.device).expand(state.shape)
        target = target.clamp(0.0, p.g_max_us)
        g_prog, nu = self._program_values(target, generator)
        state.g_us.copy_(g_prog)
        state.nu.copy_(nu)
        state.aux.copy_(target)
        state.t_prog_s.fill_(t_s)
        state.pulse_count.add_(1)
        err = g_prog - torch.as_tensor(target_us, dtype=torch.float32, device=state.device).expand(state.shape)
        if tolerance_us is None:
            conv = torch.ones(state.shape, dtype=torch.bool, device=state.device)
        else:
            if not math.isfinite(tolerance_us) or tolerance_us < 0:
                raise ValueError(f"tolerance_us={tolerance_us!r} is invalid: expected a finite number ≥ 0")
            conv = err.abs() <= tolerance_us
        return ProgramReport(
            pulses=torch.ones(state.shape, dtype=torch.int32, device=state.device), error_us=err, converged=conv
        )

    def mean_set_increment_us(self, g_us: Tensor | float | None = None) -> float:
        """The SET stand-in's nominal step, ``set_increment_us`` (mean before the clamps at 0, g_max)."""
        return self.params.set_increment_us

    granularity_source = "set_increment_us, the SET stand-in's nominal step (ours: the source has no pulses)"
