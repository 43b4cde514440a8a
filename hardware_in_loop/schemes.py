"""Update schemes: how a desired digital weight change ΔW becomes programming pulses.

PCM devices can only be potentiated gradually (SET pulses) and depressed abruptly (RESET), so a
weight lives on a differential pair ``W ∝ G⁺ − G⁻`` and a negative change is a SET on ``G⁻``.
Schemes (PCM-MODELS.md §4):

- ``mixed-precision`` (Nandakumar et al., Front. Neurosci. 14, 406, 2020): accumulate ΔW in a
  high-precision digital variable χ per weight; where ``|χ| ≥ ε`` fire ``n = ⌊|χ|/ε⌋`` SET pulses
  on G⁺ (χ > 0) or G⁻ (χ < 0), then ``χ ← χ − sign(χ)·n·ε``. ε is the device model's mean SET
  increment in weight units.
- ``stochastic-pulse``: one SET pulse with probability ``min(1, |ΔW|/ε)``.
- ``program-verify``: keep a digital target copy; re-program it onto the devices every k steps.
- ``multi-device`` (Boybat et al., Nat. Commun. 9, 2514, 2018): N devices per sign, mixed
  precision, one device programmed per update, chosen by a global round-robin counter.

Every scheme refreshes saturated differential pairs: where ``max(G⁺, G⁻) > g_refresh_us`` and
``|G⁺ − G⁻| < diff_refresh_us`` (defaults 6 µS and 6/4 µS, the srnn-pcm reimplementation of the
Nandakumar model), RESET both and rewrite the difference onto one device by program-and-verify.

χ and the program-verify target are digital copies, named as such; the devices stay the source of
truth for the weight (the digital estimate used by the backward pass is re-read from them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from pcmsim.crossbar import Crossbar


@dataclass
class UpdateStats:
    """What an update did to the devices (sums over layers and steps)."""

    pulses_set: int = 0
    pulses_reset: int = 0
    refreshes: int = 0
    pulse_rounds: int = 0

    def add(self, other: UpdateStats) -> None:
        self.pulses_set += other.pulses_set
        self.pulses_reset += other.pulses_reset
        self.refreshes += other.refreshes
        self.pulse_rounds = max(self.pulse_rounds, other.pulse_rounds)

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class RefreshConfig:
    """Refresh of saturated differential pairs (srnn-pcm defaults for pcm-nandakumar2018).

    ``g_refresh_us``/``diff_refresh_us`` ≤ 0 scale with the device model's ``g_max_us``
    (``g_max/2`` and ``g_max/8``), so other device models get sensible thresholds.
    """

    enabled: bool = True
    g_refresh_us: float = 6.0
    diff_refresh_us: float = 1.5
    every_n_steps: int = 1
    tolerance_us: float | None = None
    max_pulses: int | None = None

    def thresholds(self, g_max_us: float) -> tuple[float, float]:
        g = self.g_refresh_us if self.g_refresh_us > 0 else g_max_us / 2
        d = self.diff_refresh_us if self.diff_refresh_us > 0 else g_max_us / 8
        return g, d


class UpdateScheme:
    """Base class: per-layer digital state plus the refresh of saturated pairs."""

    name: ClassVar[str]

    def __init__(self, crossbars: list[Crossbar], *, refresh: RefreshConfig | None = None,
                 max_pulses_per_step: int = 20) -> None:
        if max_pulses_per_step < 1:
            raise ValueError(f"max_pulses_per_step={max_pulses_per_step} is invalid: expected ≥ 1")
        self.crossbars = crossbars
        self.refresh_config = refresh or RefreshConfig()
        self.max_pulses_per_step = max_pulses_per_step
        self.steps = 0

    # -- granularity ----------------------------------------------------------------------
    @staticmethod
    def epsilon(crossbar: Crossbar) -> Tensor:
        """ε, the weight change of one mean SET pulse: ``mean_set_increment_us · w_per_us``."""
        return crossbar.model.mean_set_increment_us() * crossbar.w_per_us

    # -- one update -----------------------------------------------------------------------
    def apply(self, index: int, delta_w: Tensor, t_s: float, generator: torch.Generator | None) -> UpdateStats:
        """Apply the desired change ``delta_w`` of layer ``index`` at time ``t_s``."""
        raise NotImplementedError

    def end_step(self, t_s: float, generator: torch.Generator | None) -> UpdateStats:
        """Called once per optimiser step after every layer's ``apply``: refreshes."""
        self.steps += 1
        stats = UpdateStats()
        rc = self.refresh_config
        if rc.enabled and self.steps % max(rc.every_n_steps, 1) == 0:
            for xb in self.crossbars:
                stats.add(self.refresh(xb, t_s, generator))
        return stats

    def refresh(self, xb: Crossbar, t_s: float, generator: torch.Generator | None) -> UpdateStats:
        """RESET saturated pairs and rewrite their weight onto one device of the pair."""
        g_thr, d_thr = self.refresh_config.thresholds(xb.model.g_max_us)
        # through the crossbar's read cache: the weights read below at the same time reuse it
        g = xb.drifted_conductances(t_s)  # [N, 2, out, in], read-only
        g_plus, g_minus = g[:, 0], g[:, 1]
        saturated = (torch.maximum(g_plus, g_minus) > g_thr).logical_and_((g_plus - g_minus).abs_() < d_thr)
        # a weight whose any pair saturated is rewritten whole
        mask = saturated[0] if saturated.shape[0] == 1 else saturated.any(dim=0)
        n = int(torch.count_nonzero(mask))
        if n == 0:
            return UpdateStats()
        # program_weights(weights(t_s), mask=mask) with compact results: the pulse counts are all a
        # refresh reports (the weights come from the devices: nothing to check or clip)
        pulses = xb.program_selected(xb.weights(t_s), mask, t_s, tolerance_us=self.refresh_config.tolerance_us,
                                     max_pulses=self.refresh_config.max_pulses).pulses
        return UpdateStats(pulses_set=int(pulses.sum()), pulses_reset=2 * n * xb.state.shape[0], refreshes=n,
                           pulse_rounds=int(pulses.max()))

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])


def _fire(xb: Crossbar, n_pulses: Tensor, positive: Tensor, t_s: float, generator, device_index: int = 0
          ) -> UpdateStats:
    """SET ``n_pulses`` (int32 ``[out, in]``, ≥ 0 by construction) on G⁺ where ``positive`` else on G⁻
    (one device per sign).

    Same pulses as ``xb.apply_pulses(where(positive, n, 0), n − that)``, through the lean
    :meth:`Crossbar.apply_pulse_counts` (no re-check of counts that the schemes build
    non-negative), and nothing at all when no pulse fires.
    """
    total = int(n_pulses.sum())
    if total == 0:
        return UpdateStats()
    counts = torch.empty((2, *n_pulses.shape), dtype=torch.int32, device=n_pulses.device)
    torch.mul(n_pulses, positive, out=counts[0])  # n where positive, else 0
    torch.sub(n_pulses, counts[0], out=counts[1])
    xb.apply_pulse_counts(counts, t_s, device_index=device_index)
    return UpdateStats(pulses_set=total, pulse_rounds=int(n_pulses.max()))


class MixedPrecision(UpdateScheme):
    """χ accumulator per weight, ``n = ⌊|χ|/ε⌋`` SET pulses (Nandakumar et al. 2020)."""

    name = "mixed-precision"

    def __init__(self, crossbars: list[Crossbar], **kw: Any) -> None:
        super().__init__(crossbars, **kw)
        self.chi = [torch.zeros_like(xb.weights(0.0, noise=False)) for xb in crossbars]  # digital χ

    def _device_index(self) -> int:
        return 0

    def apply(self, index, delta_w, t_s, generator):
        xb = self.crossbars[index]
        chi = self.chi[index]
        chi.add_(delta_w)
        eps = self.epsilon(xb)
        n = chi.abs().div_(eps).floor_().clamp_(max=self.max_pulses_per_step)  # ⌊|χ|/ε⌋, capped
        stats = _fire(xb, n.to(torch.int32), chi > 0, t_s, generator, self._device_index())
        if stats.pulses_set:  # (n = 0 everywhere leaves χ as it is)
            chi.sub_(torch.sign(chi).mul_(n).mul_(eps))
        return stats

    def state_dict(self):
        return {**super().state_dict(), "chi": list(self.chi)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for dst, src in zip(self.chi, state["chi"]):
            dst.copy_(src)


class MultiDevice(MixedPrecision):
    """Mixed precision on N devices per sign; one device per update by a global round-robin counter
    (Boybat et al., Nat. Commun. 2018). The crossbar must have ``devices_per_sign`` = N."""

    name = "multi-device"

    def _device_index(self) -> int:
        return self.steps % self.crossbars[0].state.shape[0]


class StochasticPulse(UpdateScheme):
    """One SET pulse with probability ``min(1, |ΔW|/ε)`` on G⁺ (ΔW > 0) or G⁻ (ΔW < 0)."""

    name = "stochastic-pulse"

    def apply(self, index, delta_w, t_s, generator):
        xb = self.crossbars[index]
        p = (delta_w.abs() / self.epsilon(xb)).clamp_(max=1.0)
        u = torch.rand(p.shape, generator=generator, device=p.device)
        n = (u < p).to(torch.int32)
        return _fire(xb, n, delta_w > 0, t_s, generator)


class ProgramVerify(UpdateScheme):
    """A digital target copy of the weights, re-programmed onto the devices every k steps."""

    name = "program-verify"

    def __init__(self, crossbars: list[Crossbar], *, every_k_steps: int = 10, **kw: Any) -> None:
        super().__init__(crossbars, **kw)
        if every_k_steps < 1:
            raise ValueError(f"every_k_steps={every_k_steps} is invalid: expected ≥ 1")
        self.every_k_steps = every_k_steps
        self.target = [xb.weights(0.0, noise=False).clone() for xb in crossbars]  # digital target copy

    def apply(self, index, delta_w, t_s, generator):
        self.target[index].add_(delta_w)
        return UpdateStats()

    def end_step(self, t_s, generator):
        self.steps += 1
        stats = UpdateStats()
        if self.steps % self.every_k_steps == 0:
            for xb, target in zip(self.crossbars, self.target):
                report = xb.program_weights(target, t_s, rescale=False)
                n_w = target.numel()
                stats.add(UpdateStats(pulses_set=int(report.pulses.sum()), pulses_reset=2 * n_w * xb.state.shape[0],
                                      pulse_rounds=int(report.pulses.max())))
        return stats

    def state_dict(self):
        return {**super().state_dict(), "target": list(self.target)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for dst, src in zip(self.target, state["target"]):
            dst.copy_(src)


SCHEMES: dict[str, type[UpdateScheme]] = {
    cls.name: cls for cls in (MixedPrecision, StochasticPulse, ProgramVerify, MultiDevice)
}


def available_schemes() -> list[str]:
    return sorted(SCHEMES)


def make_scheme(name: str, crossbars: list[Crossbar], **params: Any) -> UpdateScheme:
    """Build the update scheme ``name`` over ``crossbars``; unknown names/params are refused."""
    try:
        cls = SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown update scheme {name!r}; available: {', '.join(available_schemes())}") from None
    refresh = params.pop("refresh", None)
    if isinstance(refresh, dict):
        valid = {f.name for f in fields(RefreshConfig)}
        unknown = sorted(set(refresh) - valid)
        if unknown:
            raise ValueError(f"unknown refresh parameter(s) {unknown}; valid: {sorted(valid)}")
        refresh = RefreshConfig(**refresh)
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"update scheme parameter {key}={value!r} is invalid: expected a finite number")
    try:
        return cls(crossbars, refresh=refresh, **params)
    except TypeError as exc:
        raise ValueError(f"invalid parameters for update scheme {name!r}: {exc}") from None
