"""Update schemes: how a desired digital weight change ΔW becomes programming pulses.

PCM devices can only be potentiated gradually (SET pulses) and depressed abruptly (RESET), so a
weight lives on a differential pair ``W ∝ G⁺ − G⁻`` and a negative change is a SET on ``G⁻``.
Schemes (PCM-MODELS.md §4):

- ``mixed-precision`` (Nandakumar et al., Front. Neurosci. 14, 406, 2020): accumulate ΔW in a
  high-precision digital variable χ per weight; where ``|χ| ≥ ε`` fire ``n = ⌊|χ|/ε⌋`` SET pulses
  on G⁺ (χ > 0) or G⁻ (χ < 0), then ``χ ← χ − sign(χ)·n·ε``.
- ``stochastic-pulse``: one SET pulse with probability ``min(1, |ΔW|/ε)``.
- ``program-verify``: keep a digital target copy; re-program it onto the devices every k steps.
- ``multi-device`` (Boybat et al., Nat. Commun. 9, 2514, 2018): N devices per sign, mixed
  precision, one device programmed per update, chosen by a global round-robin counter.

ε, the update granularity, is the device model's (``DeviceModel.update_granularity_us``, µS,
times the crossbar's ``w_per_us``): for ``pcm-nandakumar2018`` its mean SET step at the RESET
level, for ``pcm-aihwkit-preset`` aihwkit's mixed-precision granularity; each model states its
source. Every scheme but ``program-verify`` (which rewrites every weight) refreshes saturated
differential pairs by the device model's :class:`~device_models.refresh.RefreshPolicy`
(``pcm-nandakumar2018``: srnn-pcm's ``max(G⁺, G⁻) > 6`` µS and ``|G⁺ − G⁻| < 1.5`` µS;
``pcm-aihwkit-preset``: aihwkit's ``OneSidedUnitCell``, larger device > 0.75·G_max and smaller
> 0.25·G_max): RESET both and rewrite the difference onto one device by program-and-verify.
Each scheme's parameters are a typed dataclass (``Scheme.Params``) loaded by
:func:`pcmsim.typedconfig.load` from a run config's ``scheme_params``; ε and every refresh
threshold may be overridden there (``"model"``, the default, takes the device model's).

χ and the program-verify target are digital copies, named as such; the devices stay the source of
truth for the weight (the digital estimate used by the backward pass is re-read from them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import torch
from torch import Tensor

from device_models import DeviceModel
from device_models.refresh import RefreshPolicy
from pcmsim.crossbar import Crossbar
from pcmsim.typedconfig import at_least, check, check_fields, load

MODEL: Final = "model"
"""A scheme parameter's value that takes the device model's own (granularity, refresh thresholds)."""


def _model_or(predicate: Any, what: str) -> dict[str, Any]:
    return check(lambda v: v == MODEL or predicate(v), f"'model' (the device model's) or {what}")


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
    """Refresh of saturated differential pairs: where the rule holds, RESET both devices of a pair
    and program its weight back onto one (program-and-verify, with ``tolerance_us`` and
    ``max_pulses`` if given, else the model's own).

    The rule (:class:`~device_models.refresh.RefreshPolicy`): ``max(G⁺, G⁻) > upper_us`` and, where
    set, ``min(G⁺, G⁻) > lower_us`` and ``|G⁺ − G⁻| < max_diff_us`` (µS). Each threshold is
    ``"model"`` (the device model's :meth:`~device_models.base.DeviceModel.refresh_policy`, the
    default), a number, or for ``lower_us``/``max_diff_us`` ``null`` (no such condition).

    aihwkit's choices (``MixedPrecisionCompound(PCMPresetUnitCell)``, aihwkit 1.1), as options:

    - ``rewrite``: ``"verify"`` (program-and-verify, the default) or ``"open-loop"``: after the
      RESET, ``round(|W|/Δ)`` SET pulses (at most ``open_loop_max_pulses``, aihwkit's
      ``desired_bl`` = 31) on the device of the weight's sign, not verified, with ``Δ`` the
      conductance one pulse is taken to add, ``open_loop_pulse_us`` (``"model"``: the scheme's
      granularity ε); with ``pulse_counts="binomial"`` the count is a pulse train
      ``Binomial(open_loop_max_pulses, |W|/(Δ·open_loop_max_pulses))`` (aihwkit's pulsed
      rewrite of a refreshed pair through update management: the same mean, unrounded). The
      open-loop rewrite writes the difference as read for the decision (with its noise);
    - ``read_noise_us``: the rule is decided on one read with Gaussian noise of this σ
      per device (µS; aihwkit's preset decides on a read with ``out_noise`` 0.1 of its
      normalised output, i.e. 0.1·G_max on the pair's difference); 0: noise-free (the default).
    """

    enabled: bool = True
    every_n_steps: int = field(default=1, metadata=at_least(1))
    upper_us: float | Literal["model"] = field(
        default=MODEL, metadata=_model_or(lambda v: v > 0, "a finite number > 0 (µS)"))
    lower_us: float | Literal["model"] | None = field(
        default=MODEL, metadata=_model_or(lambda v: v >= 0, "null (no condition) or a finite number ≥ 0 (µS)"))
    max_diff_us: float | Literal["model"] | None = field(
        default=MODEL, metadata=_model_or(lambda v: v > 0, "null (no condition) or a finite number > 0 (µS)"))
    tolerance_us: float | None = field(
        default=None, metadata=check(lambda v: v >= 0, "null or a finite number ≥ 0 (µS)"))
    max_pulses: int | None = field(default=None, metadata=check(lambda v: v >= 1, "null or an integer ≥ 1"))
    rewrite: Literal["verify", "open-loop"] = "verify"
    open_loop_max_pulses: int = field(default=31, metadata=at_least(1))
    open_loop_pulse_us: float | Literal["model"] = field(
        default=MODEL, metadata=_model_or(lambda v: v > 0, "a finite number > 0 (µS)"))
    read_noise_us: float = field(default=0.0, metadata=check(lambda v: v >= 0, "a finite number ≥ 0 (µS)"))

    def __post_init__(self) -> None:
        check_fields(self)

    def policy(self, model: DeviceModel) -> RefreshPolicy:
        """The rule for pairs of ``model``'s devices: the model's, with this config's overrides."""
        base = model.refresh_policy()
        if self.upper_us == MODEL and self.lower_us == MODEL and self.max_diff_us == MODEL:
            return base
        return RefreshPolicy(
            upper_us=base.upper_us if self.upper_us == MODEL else float(self.upper_us),
            lower_us=base.lower_us if self.lower_us == MODEL else _float_or_none(self.lower_us),
            max_diff_us=base.max_diff_us if self.max_diff_us == MODEL else _float_or_none(self.max_diff_us),
            source=f"run config (over {model.name}'s: {base.source})",
        )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


class SchemeParams:
    """The base of every update scheme's ``Params`` (a frozen dataclass of its options): a run config's
    ``scheme_params`` is one of these, chosen by its ``update_scheme`` (:func:`scheme_params`)."""

    __slots__ = ()
    if TYPE_CHECKING:  # every subclass is a dataclass (for dataclasses.fields)
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]


@dataclass(frozen=True)
class MixedPrecisionParams(SchemeParams):
    """``mixed-precision`` and ``multi-device``.

    Attributes:
        granularity_us: ε in µS (``"model"``: the device model's ``update_granularity_us``).
        max_pulses_per_step: most SET pulses one weight gets per step (the rest stays in χ).
        refresh: the refresh of saturated pairs (with aihwkit's rewrite and decision read as
            options, :class:`RefreshConfig`).
        pulse_counts: ``"exact"`` (fire ``n = ⌊|χ|/ε⌋``, the default) or ``"binomial"``
            (aihwkit's update management: ``Binomial(N, n/N)`` pulses with ``N`` the largest ``n``
            of the weight's output row; χ still loses ``n·ε``: the same mean, a spread, and with a
            concave device response smaller mean steps).
        transfer: ``"end-of-batch"`` (χ is transferred in the step that filled it, the default)
            or ``"next-batch"`` (aihwkit's: the transfer happens with the next mini-batch's update,
            before its ΔW is added, so the devices lag one step behind χ).
    """

    granularity_us: float | Literal["model"] = field(
        default=MODEL, metadata=_model_or(lambda v: v > 0, "a finite number > 0 (µS)"))
    max_pulses_per_step: int = field(default=20, metadata=at_least(1))
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    pulse_counts: Literal["exact", "binomial"] = "exact"
    transfer: Literal["end-of-batch", "next-batch"] = "end-of-batch"

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class StochasticPulseParams(SchemeParams):
    """``stochastic-pulse``: ``granularity_us`` (ε, µS, or ``"model"``) and the refresh."""

    granularity_us: float | Literal["model"] = field(
        default=MODEL, metadata=_model_or(lambda v: v > 0, "a finite number > 0 (µS)"))
    refresh: RefreshConfig = field(default_factory=RefreshConfig)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ProgramVerifyParams(SchemeParams):
    """``program-verify``: re-program the digital target every ``every_k_steps`` steps (no refresh:
    every weight is rewritten anyway)."""

    every_k_steps: int = field(default=10, metadata=at_least(1))

    def __post_init__(self) -> None:
        check_fields(self)


class UpdateScheme:
    """Base class: per-layer digital state, the granularity ε and the refresh of saturated pairs.

    ``params``: an instance of the scheme's ``Params`` dataclass, or a mapping of its fields
    (loaded by :func:`pcmsim.typedconfig.load`); keyword arguments override single fields.
    """

    name: ClassVar[str]
    Params: ClassVar[type[SchemeParams]] = MixedPrecisionParams

    def __init__(self, crossbars: list[Crossbar], params: Any = None, **overrides: Any) -> None:
        self.crossbars = crossbars
        self.params = _load_params(type(self).Params, params, overrides, f"update scheme {self.name!r}",
                                   "scheme_params")
        self.steps = 0

    # -- granularity ----------------------------------------------------------------------
    def granularity_us(self, crossbar: Crossbar) -> float:
        """ε in µS: ``params.granularity_us``, or the device model's ``update_granularity_us``."""
        g = self.params.granularity_us
        return crossbar.model.update_granularity_us() if g == MODEL else float(g)

    def epsilon(self, crossbar: Crossbar) -> Tensor:
        """ε in weight units: ``granularity_us · w_per_us``."""
        return self.granularity_us(crossbar) * crossbar.w_per_us

    # -- one update -----------------------------------------------------------------------
    def apply(self, index: int, delta_w: Tensor, t_s: float, generator: torch.Generator | None) -> UpdateStats:
        """Apply the desired change ``delta_w`` of layer ``index`` at time ``t_s``."""
        raise NotImplementedError

    def end_step(self, t_s: float, generator: torch.Generator | None) -> UpdateStats:
        """Called once per optimiser step after every layer's ``apply``: refreshes."""
        self.steps += 1
        stats = UpdateStats()
        rc = self.params.refresh
        if rc.enabled and self.steps % rc.every_n_steps == 0:
            for xb in self.crossbars:
                stats.add(self.refresh(xb, t_s, generator))
        return stats

    def refresh_policy(self, xb: Crossbar) -> RefreshPolicy:
        """The refresh rule for ``xb``'s pairs: its device model's, with the config's overrides."""
        return self.params.refresh.policy(xb.model)

    def refresh(self, xb: Crossbar, t_s: float, generator: torch.Generator | None) -> UpdateStats:
        """RESET saturated pairs and rewrite their weight onto one device of the pair."""
        policy = self.refresh_policy(xb)
        rc = self.params.refresh
        # through the crossbar's read cache: the weights read below at the same time reuse it
        g = xb.drifted_conductances(t_s)  # [N, 2, out, in], read-only
        if rc.read_noise_us > 0:  # decided on one noisy read (aihwkit's preset)
            g = g + rc.read_noise_us * torch.randn(g.shape, generator=generator, device=g.device)
        g_plus, g_minus = g[:, 0], g[:, 1]
        saturated = torch.maximum(g_plus, g_minus) > policy.upper_us
        if policy.lower_us is not None:
            saturated.logical_and_(torch.minimum(g_plus, g_minus) > policy.lower_us)
        if policy.max_diff_us is not None:
            saturated.logical_and_((g_plus - g_minus).abs_() < policy.max_diff_us)
        # a weight whose any pair saturated is rewritten whole
        mask = saturated[0] if saturated.shape[0] == 1 else saturated.any(dim=0)
        n = int(torch.count_nonzero(mask))
        if n == 0:
            return UpdateStats()
        if rc.rewrite == "open-loop":  # the difference as read for the decision (aihwkit's)
            w_read = xb.mapping.combine(g) * xb.w_per_us
            return self._rewrite_open_loop(xb, w_read, mask, n, t_s, generator)
        # program_weights(weights(t_s), mask=mask) with compact results: the pulse counts are all a
        # refresh reports (the weights come from the devices: nothing to check or clip)
        pulses = xb.program_selected(xb.weights(t_s), mask, t_s, tolerance_us=rc.tolerance_us,
                                     max_pulses=rc.max_pulses).pulses
        return UpdateStats(pulses_set=int(pulses.sum()), pulses_reset=2 * n * xb.state.shape[0], refreshes=n,
                           pulse_rounds=int(pulses.max()))

    def _rewrite_open_loop(self, xb: Crossbar, w: Tensor, mask: Tensor, n: int, t_s: float,
                           generator: torch.Generator | None) -> UpdateStats:
        """RESET every pair of the selected weights and fire ``round(|w|/Δ)`` SET pulses (at most
        ``open_loop_max_pulses``) on the first pair's device of the sign of ``w`` (the weights as
        read for the decision, ``[out, in]``), unverified."""
        pairs = xb.state.shape[0]
        for k in range(pairs):
            xb.reset_devices(mask, mask, t_s, device_index=k)
        rc = self.params.refresh
        step = self.epsilon(xb) if rc.open_loop_pulse_us == MODEL else float(rc.open_loop_pulse_us) * xb.w_per_us
        n_float = (w.abs() / step).mul_(mask)
        cap = rc.open_loop_max_pulses
        if getattr(self.params, "pulse_counts", "exact") == "binomial":  # a pulse train of at most `cap`
            counts = torch.binomial(torch.full_like(n_float, cap), (n_float / cap).clamp_(max=1.0), generator=generator)
        else:
            counts = n_float.round_().clamp_(max=cap)
        counts = counts.to(torch.int32)
        stats = _fire(xb, counts, w > 0, t_s, generator)
        return UpdateStats(pulses_set=stats.pulses_set, pulses_reset=2 * n * pairs, refreshes=n,
                           pulse_rounds=stats.pulse_rounds)

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
    Params = MixedPrecisionParams

    def __init__(self, crossbars: list[Crossbar], params: Any = None, **overrides: Any) -> None:
        super().__init__(crossbars, params, **overrides)
        self.chi = [torch.zeros_like(xb.weights(0.0, noise=False)) for xb in crossbars]  # digital χ

    def _device_index(self) -> int:
        return 0

    def apply(self, index, delta_w, t_s, generator):
        chi = self.chi[index]
        if self.params.transfer == "next-batch":  # transfer what earlier steps left, then accumulate
            stats = self._transfer(index, t_s, generator)
            chi.add_(delta_w)
            return stats
        chi.add_(delta_w)
        return self._transfer(index, t_s, generator)

    def _transfer(self, index: int, t_s: float, generator: torch.Generator | None) -> UpdateStats:
        xb = self.crossbars[index]
        chi = self.chi[index]
        eps = self.epsilon(xb)
        n = chi.abs().div_(eps).floor_().clamp_(max=self.params.max_pulses_per_step)  # ⌊|χ|/ε⌋, capped
        fired = n
        if self.params.pulse_counts == "binomial":  # aihwkit: Binomial(N, n/N), N the row's largest n
            big = n.amax(dim=1, keepdim=True).expand_as(n)
            fired = torch.where(n > 0, torch.binomial(big, (n / big.clamp(min=1)).clamp_(max=1.0),
                                                      generator=generator), n)
        stats = _fire(xb, fired.to(torch.int32), chi > 0, t_s, generator, self._device_index())
        if stats.pulses_set if fired is n else bool((n > 0).any()):  # (n = 0 everywhere leaves χ as it is)
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
    Params = StochasticPulseParams

    def apply(self, index, delta_w, t_s, generator):
        xb = self.crossbars[index]
        p = (delta_w.abs() / self.epsilon(xb)).clamp_(max=1.0)
        u = torch.rand(p.shape, generator=generator, device=p.device)
        n = (u < p).to(torch.int32)
        return _fire(xb, n, delta_w > 0, t_s, generator)


class ProgramVerify(UpdateScheme):
    """A digital target copy of the weights, re-programmed onto the devices every k steps."""

    name = "program-verify"
    Params = ProgramVerifyParams

    def __init__(self, crossbars: list[Crossbar], params: Any = None, **overrides: Any) -> None:
        super().__init__(crossbars, params, **overrides)
        self.every_k_steps = self.params.every_k_steps
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
    """The names of the registered update schemes, sorted (a config's ``update_scheme``)."""
    return sorted(SCHEMES)


def scheme_params(name: str, params: Any = None, *, source: str | None = None, path: str = "scheme_params",
                  **overrides: Any) -> SchemeParams:
    """The ``Params`` dataclass of scheme ``name`` from ``params`` (an instance, a mapping of its
    fields, or None for the defaults) and ``overrides`` (fields by keyword), checked field by field
    by :func:`pcmsim.typedconfig.load`: one-line ``ConfigError`` naming the field path
    (``field 'scheme_params.refresh.upper_us' = -1 is invalid: expected …``)."""
    return _load_params(_scheme_class(name).Params, params, overrides, source or f"update scheme {name!r}", path)


def _load_params(cls: type[SchemeParams], params: Any, overrides: dict[str, Any], source: str, path: str) -> Any:
    if params is None or isinstance(params, Mapping):
        data: Any = {**(params or {}), **overrides}
    elif isinstance(params, cls):
        data = params if not overrides else {f.name: getattr(params, f.name) for f in fields(params)} | overrides
    else:
        raise TypeError(f"{source}: params={params!r} is invalid: expected a {cls.__name__} or a mapping of its fields")
    return load(cls, data, source=source, path=path)


def _scheme_class(name: str) -> type[UpdateScheme]:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown update scheme {name!r}; available: {', '.join(available_schemes())}") from None


def make_scheme(name: str, crossbars: list[Crossbar], params: Any = None, **overrides: Any) -> UpdateScheme:
    """Build the update scheme ``name`` over ``crossbars``; ``params``/``overrides`` as
    :func:`scheme_params` (unknown names, fields and bad values are refused in one line)."""
    return _scheme_class(name)(crossbars, params, **overrides)
