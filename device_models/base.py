"""The one interface of a population of devices.

A :class:`DeviceModel` is a frozen set of parameters plus functions over a :class:`DeviceState`,
a handful of tensors with one entry per device. The state is the hardware: operations that
program devices (SET, RESET, program) update it in place; reads return new tensors and leave it
untouched. Every random draw goes through the ``torch.Generator`` passed in, so a run on the CPU
repeats bit for bit.

Units: conductance in µS, time in s (the simulated hardware clock).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .refresh import RefreshPolicy

# re-exported: the models and tests import them from here
from .sampling import NORMAL_CHUNK as NORMAL_CHUNK
from .sampling import ScratchBuffers as ScratchBuffers
from .sampling import fill_normal_ as fill_normal_


class DeviceParameterError(ValueError):
    """An invalid device-model name or parameter; the message lists what is valid."""


@dataclass
class DeviceState:
    """State of a population of devices; every tensor has the population's shape.

    20 bytes per device: four float32 and one int32.

    Attributes:
        g_us: conductance as last programmed (before drift), µS.
        t_prog_s: simulated time of the last programming event (SET, RESET or program), s.
        nu: drift exponent of each device (dimensionless).
        aux: one model-specific float per device (the pulse-history term P of
            ``pcm-nandakumar2018``; a device-to-device factor or unused, per model).
        pulse_count: programming pulses (SET and RESET) each device has received (endurance).
    """

    g_us: Tensor
    t_prog_s: Tensor
    nu: Tensor
    aux: Tensor
    pulse_count: Tensor

    FIELDS: ClassVar[tuple[str, ...]] = ("g_us", "t_prog_s", "nu", "aux", "pulse_count")

    @classmethod
    def empty(cls, shape: tuple[int, ...] | torch.Size, device: torch.device | str | None = None) -> DeviceState:
        f32 = dict(dtype=torch.float32, device=device)
        return cls(
            g_us=torch.zeros(shape, **f32),
            t_prog_s=torch.zeros(shape, **f32),
            nu=torch.zeros(shape, **f32),
            aux=torch.zeros(shape, **f32),
            pulse_count=torch.zeros(shape, dtype=torch.int32, device=device),
        )

    @property
    def shape(self) -> torch.Size:
        return self.g_us.shape

    @property
    def device(self) -> torch.device:
        return self.g_us.device

    @property
    def bytes_per_device(self) -> int:
        return sum(getattr(self, f).element_size() for f in self.FIELDS)

    def state_dict(self) -> dict[str, Tensor]:
        return {f: getattr(self, f) for f in self.FIELDS}

    @classmethod
    def from_state_dict(cls, d: dict[str, Tensor]) -> DeviceState:
        missing = [f for f in cls.FIELDS if f not in d]
        if missing:
            raise ValueError(f"device state is missing field(s) {missing}; expected {list(cls.FIELDS)}")
        return cls(**{f: d[f] for f in cls.FIELDS})

    def clone(self) -> DeviceState:
        return DeviceState(**{f: getattr(self, f).clone() for f in self.FIELDS})

    def index(self, idx: Any) -> DeviceState:
        """A view of a part of the population (``state.index((slice(0, 4), ...))``)."""
        return DeviceState(**{f: getattr(self, f)[idx] for f in self.FIELDS})

    def to(self, device: torch.device | str) -> DeviceState:
        return DeviceState(**{f: getattr(self, f).to(device) for f in self.FIELDS})


@dataclass(frozen=True)
class ProgramReport:
    """Outcome of :meth:`DeviceModel.program`.

    Attributes:
        pulses: programming pulses each device received (SET and RESET), int32.
        error_us: programmed conductance minus target, µS (read without noise at the end).
        converged: devices within tolerance at the end.
        verified: devices that the program-and-verify loop accepted on a (noisy) verify read, or
            None for models that do not verify. A verified device can still sit outside the
            tolerance by the read noise of that read (``converged`` is the noise-free truth).
    """

    pulses: Tensor
    error_us: Tensor
    converged: Tensor
    verified: Tensor | None = None


def check_finite_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Refuse NaN, infinite, negative (and, unless allowed, zero) parameter values."""
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "≥ 0" if allow_zero else "> 0"
        raise DeviceParameterError(f"parameter {name}={value!r} is invalid: expected a finite number {bound}")


class DeviceModel(ABC):
    """A device model: frozen parameters (``self.params``) and operations on a DeviceState.

    Subclasses set ``name`` (the registry key), ``Params`` (a frozen dataclass whose fields are
    the model's constants, each documented with its source) and implement the abstract methods.
    """

    name: ClassVar[str]
    Params: ClassVar[type]

    def __init__(self, params: Any | None = None, **overrides: Any) -> None:
        base = params if params is not None else self.Params()
        if overrides:
            valid = {f.name for f in dataclasses.fields(base)}
            unknown = sorted(set(overrides) - valid)
            if unknown:
                raise DeviceParameterError(
                    f"unknown parameter(s) {unknown} for device model {self.name!r}; valid: {sorted(valid)}"
                )
            base = dataclasses.replace(base, **overrides)
        self.params = base
        self.validate()

    def validate(self) -> None:
        """Raise :class:`DeviceParameterError` if a parameter is out of its domain.

        The default refuses NaN and infinite values; models add their own domains.
        """
        check_all_finite(self.params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    # ---- range -------------------------------------------------------------------------
    @property
    @abstractmethod
    def g_max_us(self) -> float:
        """Largest conductance a device can be programmed to, µS."""

    @property
    def g_min_us(self) -> float:
        """Conductance of a device after RESET (its mean), µS."""
        return 0.0

    @property
    def read_clip_us(self) -> tuple[float, float] | None:
        """The range a noisy :meth:`read` is clipped to, µS (``None``: not clipped). A crossbar's
        read-noise shortcut takes the clipped reads' moments from it (:func:`clipped_normal_moments`)."""
        return None

    # ---- life cycle -------------------------------------------------------------------
    @abstractmethod
    def init_state(
        self, shape: tuple[int, ...] | torch.Size, *, device: torch.device | str | None = None,
        generator: torch.Generator | None = None, t_s: float = 0.0,
    ) -> DeviceState:
        """A fresh population, every device RESET at time ``t_s``."""

    @abstractmethod
    def set_pulse(self, state: DeviceState, mask: Tensor, t_s: float, generator: torch.Generator | None) -> None:
        """Apply one SET (potentiation) pulse to the devices where ``mask`` is true, in place."""

    @abstractmethod
    def reset(self, state: DeviceState, mask: Tensor, t_s: float, generator: torch.Generator | None) -> None:
        """RESET the devices where ``mask`` is true, in place."""

    def set_pulses(self, state: DeviceState, n_pulses: Tensor, t_s: float, generator: torch.Generator | None) -> None:
        """Apply ``n_pulses[i]`` SET pulses to device i (a loop over pulse rounds, not devices)."""
        n_max = int(n_pulses.max()) if n_pulses.numel() else 0
        for k in range(n_max):
            self.set_pulse(state, n_pulses > k, t_s, generator)

    # ---- reading ----------------------------------------------------------------------
    @abstractmethod
    def drifted(self, state: DeviceState, t_s: float) -> Tensor:
        """Noise-free conductance at time ``t_s`` (drift only), µS."""

    @abstractmethod
    def read_noise_std(self, state: DeviceState, t_s: float, g_drift_us: Tensor | None = None) -> Tensor:
        """Standard deviation of one read's Gaussian noise at time ``t_s``, µS."""

    def read(
        self, state: DeviceState, t_s: float, generator: torch.Generator | None = None, *, noise: bool = True
    ) -> Tensor:
        """Conductance read at time ``t_s``: drift plus an independent draw of read noise, µS.

        ``noise=False`` gives the noise-free expectation (:meth:`drifted`).
        """
        g = self.drifted(state, t_s)
        if not noise:
            return g
        sigma = self.read_noise_std(state, t_s, g)
        xi = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        return g + sigma * xi

    def verify_round(self, state: DeviceState, over: Tensor, n_over: int, under: Tensor, n_under: int, t_s: float,
                     generator: torch.Generator | None) -> Tensor:
        """One round of program-and-verify at ``t_s``: RESET where ``over``, one SET pulse where
        ``under`` (disjoint bool masks of the state's shape, with ``n_over`` and ``n_under`` devices),
        then :meth:`verify_read`; returns the read."""
        if n_over:
            self.reset(state, over, t_s, generator)
        if n_under:
            self.set_pulse(state, under, t_s, generator)
        return self.verify_read(state, t_s, generator)

    def verify_read(self, state: DeviceState, t_s: float, generator: torch.Generator | None) -> Tensor:
        """The noisy read of program-and-verify: devices that were all RESET or SET at ``t_s``.

        :meth:`read` by default; a model whose devices do not drift right after programming may
        skip the drift computation (same values).
        """
        return self.read(state, t_s, generator)

    # ---- programming ------------------------------------------------------------------
    @abstractmethod
    def program(
        self, state: DeviceState, target_us: Tensor, t_s: float, generator: torch.Generator | None, *,
        tolerance_us: float | None = None, max_pulses: int | None = None,
    ) -> ProgramReport:
        """Program every device towards ``target_us`` with the model's own programming scheme.

        Pulse-level models run program-and-verify (RESET, then SET pulses with a read after each,
        until within ``tolerance_us`` or ``max_pulses`` are spent); statistical models apply their
        programming noise once.
        """

    def mean_set_increment_us(self, g_us: Tensor | float | None = None) -> float:
        """Mean conductance change of one SET pulse (the update granularity ε), µS.

        At ``g_us`` if given (a scalar average over it), else from the RESET state.
        """
        raise NotImplementedError(f"{self.name} has no SET pulse")

    # ---- what the update schemes take from the model ------------------------------------
    granularity_source: ClassVar[str] = "DeviceModel default: the mean SET step from the RESET state"
    """Where :meth:`update_granularity_us` comes from (one line, shown by ``pcmsim device list``)."""

    def update_granularity_us(self) -> float:
        """ε, the conductance change that one pulse of the update schemes stands for, µS.

        Mixed precision fires ``⌊|χ|/ε⌋`` SET pulses and keeps the rest in χ; stochastic pulse fires
        one with probability ``|ΔW|/ε`` (in weight units: ``ε · w_per_us``). Default:
        :meth:`mean_set_increment_us` from the RESET state. A model whose source states another
        granularity overrides this and :attr:`granularity_source`; a run config may override it
        (``scheme_params.granularity_us``).
        """
        return self.mean_set_increment_us()

    def refresh_policy(self) -> RefreshPolicy:
        """When the update schemes refresh a pair of these devices (:class:`RefreshPolicy`).

        Default: aihwkit's ``OneSidedUnitCell`` rule relative to the device's range (the larger
        device above 0.75·G_max and the smaller above 0.25·G_max), a rule stated for any pair of
        SET-only devices. A model whose source states another rule overrides this; a run config
        may override each threshold (``scheme_params.refresh``).
        """
        return RefreshPolicy.aihwkit_one_sided(
            self.g_max_us, source="DeviceModel default: aihwkit OneSidedUnitCell thresholds 0.75 / 0.25 of G_max")


# ---- helpers shared by the models ---------------------------------------------------------
CLIP_FAR_SIGMAS = 9.0
"""Distance from both clip bounds, in σ, beyond which a clipped read's moments are the unclipped
ones: Φ(−9) ≈ 1.1·10⁻¹⁹ and φ(9) ≈ 1.0·10⁻¹⁸ move the float64 mean and variance by less than their
own rounding, so the float32 results of :func:`clipped_normal_moments` equal ``(mean, std)`` bit for
bit there (held in ``tests/test_perf.py``); only the devices nearer a bound take the full formula."""

CLIP_CHUNK = 1 << 22
"""The formula's float64 temporaries (about 15 of 8 bytes per element) are formed for at most this
many elements at a time, so that a read of 10⁹ devices does not hold them for all at once."""


def clipped_normal_moments(mean: Tensor, std: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of ``clip(mean + std·ξ, lo, hi)``, ξ standard normal, elementwise
    (``hi`` may be ``inf``; ``std = 0`` gives the clipped mean and 0). Computed in float64 for the
    elements within :data:`CLIP_FAR_SIGMAS` σ of a bound; the others are ``(mean, std)`` unchanged,
    which is what the formula gives them in ``mean``'s dtype. Float32 CPU tensors go through one
    compiled pass (:mod:`device_models.clipped_kernel`), anything else through torch operations."""
    mean, std = torch.broadcast_tensors(mean, std)
    if mean.device.type == "cpu" and mean.dtype == torch.float32 and std.dtype == torch.float32:
        return _clipped_normal_moments_cpu(mean, std, lo, hi)
    return _clipped_normal_moments_torch(mean, std, lo, hi)


def _clipped_normal_moments_torch(mean: Tensor, std: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """:func:`clipped_normal_moments` in torch operations (any device and dtype): the formula for the
    elements near a bound, in chunks of :data:`CLIP_CHUNK`; ``(mean, std)`` for the others."""
    far = mean - lo >= CLIP_FAR_SIGMAS * std
    if not math.isinf(hi):
        far &= hi - mean >= CLIP_FAR_SIGMAS * std
    near = (~far).reshape(-1).nonzero().squeeze(1)
    del far
    if near.numel() == mean.numel() and near.numel() <= CLIP_CHUNK:
        return _clipped_normal_moments_full(mean, std, lo, hi)
    m_out, s_out = mean.clone(memory_format=torch.contiguous_format), std.clone(memory_format=torch.contiguous_format)
    m_flat, s_flat = mean.reshape(-1), std.reshape(-1)
    for start in range(0, near.numel(), CLIP_CHUNK):
        idx = near[start:start + CLIP_CHUNK]
        m_near, s_near = _clipped_normal_moments_full(m_flat[idx], s_flat[idx], lo, hi)
        m_out.view(-1)[idx] = m_near
        s_out.view(-1)[idx] = s_near
    return m_out, s_out


def _clipped_normal_moments_cpu(mean: Tensor, std: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """:func:`clipped_normal_moments` of float32 CPU tensors in one compiled pass
    (:mod:`device_models.clipped_kernel`)."""
    from .clipped_kernel import clipped_moments

    m_in, s_in = mean.detach().contiguous().reshape(-1), std.detach().contiguous().reshape(-1)
    m_out, s_out = torch.empty_like(m_in), torch.empty_like(s_in)
    hi_inf = math.isinf(hi)
    f32 = np.float32
    clipped_moments(m_in.numpy(), s_in.numpy(), f32(lo), f32(0.0 if hi_inf else hi), float(lo),
                    0.0 if hi_inf else float(hi), hi_inf, f32(CLIP_FAR_SIGMAS), m_out.numpy(), s_out.numpy())
    return m_out.view(mean.shape), s_out.view(std.shape)


def _clipped_normal_moments_full(mean: Tensor, std: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """:func:`clipped_normal_moments` by the formula for every element (float64)."""
    mu, sd = mean.double(), std.double()
    safe = sd.clamp(min=1e-30)
    a, b = (lo - mu) / safe, (hi - mu) / safe
    cdf_a, cdf_b = torch.special.ndtr(a), torch.special.ndtr(b)
    c = 1.0 / math.sqrt(2.0 * math.pi)
    pdf_a, pdf_b = c * torch.exp(-0.5 * a * a), c * torch.exp(-0.5 * b * b)
    a_pdf_a = torch.where(torch.isfinite(a), a * pdf_a, torch.zeros_like(a))
    b_pdf_b = torch.where(torch.isfinite(b), b * pdf_b, torch.zeros_like(b))
    inside = cdf_b - cdf_a
    above = torch.zeros_like(b) if math.isinf(hi) else 1.0 - cdf_b  # P(clipped at hi); 0 for hi = inf
    hi_f = 0.0 if math.isinf(hi) else hi
    m1 = lo * cdf_a + hi_f * above + mu * inside + sd * (pdf_a - pdf_b)
    m2 = (lo * lo * cdf_a + hi_f * hi_f * above + (mu * mu + sd * sd) * inside + 2 * mu * sd * (pdf_a - pdf_b)
          + sd * sd * (a_pdf_a - b_pdf_b))
    var = (m2 - m1 * m1).clamp(min=0.0)
    m1 = torch.where(sd > 0, m1, mu.clamp(lo, hi))
    return m1.to(mean.dtype), var.sqrt().to(mean.dtype)


def check_finite(name: str, value: float) -> None:
    """Refuse NaN and infinite parameter values (any sign allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DeviceParameterError(f"parameter {name}={value!r} is invalid: expected a finite number")


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False) -> None:
    """Refuse a parameter outside ``[lo, hi]`` (or the open ends), NaN and infinities; the message
    states the valid range."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = not ((lo is not None and (value <= lo if lo_open else value < lo)) or (
            hi is not None and (value >= hi if hi_open else value > hi)))
    if not ok:
        left = "(" if lo_open or lo is None else "["
        right = ")" if hi_open or hi is None else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise DeviceParameterError(
            f"parameter {name}={value!r} is invalid: expected a finite number in {left}{lo_s}, {hi_s}{right}"
        )


def check_int(name: str, value: int, lo: int = 1) -> None:
    """Refuse a non-integer or an integer below ``lo``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise DeviceParameterError(f"parameter {name}={value!r} is invalid: expected an integer ≥ {lo}")


def check_all_finite(params: Any) -> None:
    """Refuse NaN/inf in every float field of a parameter dataclass (tuples of floats included)."""
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, float):
            check_finite(f.name, value)
        elif isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
            for i, v in enumerate(value):
                check_finite(f"{f.name}[{i}]", v)


def mask_is_all(mask: Tensor | None) -> bool:
    """True when ``mask`` selects every device (``None`` means all)."""
    return mask is None or bool(mask.all())


def as_mask(mask: Tensor | None, state: DeviceState) -> Tensor | None:
    """``mask`` as a bool tensor of the state's shape (broadcast if needed); ``None`` stays ``None``
    (= every device). Raises ValueError naming both shapes when they do not fit."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        mask = mask != 0
    if mask.shape != state.shape:
        try:
            mask = mask.expand(state.shape)
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not fit the device state of shape {tuple(state.shape)}"
            ) from None
    if mask.device != state.device:
        mask = mask.to(state.device)
    return mask


VERIFY_CALIBRATION = {"aims": 96, "devices": 16384, "seed": 0x5EED}
"""How :func:`verify_response` measures the centring curve: aims on a grid, devices per aim, and
the seed of its own generator (the run's random streams are not touched)."""

_RESPONSES: dict[tuple[Any, ...], tuple[Tensor, Tensor]] = {}


def verify_response(model: DeviceModel, tolerance_us: float, max_pulses: int) -> tuple[Tensor, Tensor]:
    """The mean conductance that program-and-verify ends at for each aim of its window, measured.

    A SET-only device climbs into the verify window from below and is accepted by a noisy read, so
    a window centred on the target stops on average below it (``pcm-nandakumar2018`` at a 0.5 µS
    window: −0.11 µS over targets of 1–9.6 µS, −0.21 µS above 6 µS), and near one SET step above
    the RESET level the mean is a mixture of "stayed" and "jumped". This runs the loop once per
    model, window and budget with the model's own physics on a grid of aims over
    ``[g_min − tol, g_max]`` (:data:`VERIFY_CALIBRATION`) and returns ``(mean_us, aim_us)``, the
    means made non-decreasing (a running maximum), cached; :func:`centred_aim` inverts it.
    """
    key = (type(model), model.params, float(tolerance_us), int(max_pulses))
    hit = _RESPONSES.get(key)
    if hit is not None:
        return hit
    cal = VERIFY_CALIBRATION
    aims = torch.linspace(model.g_min_us - tolerance_us, model.g_max_us, cal["aims"])
    m = cal["devices"]
    gen = torch.Generator().manual_seed(cal["seed"])
    state = model.init_state((aims.numel() * m,), generator=gen)
    _verify_loop(model, state, aims.repeat_interleave(m), 0.0, gen, tolerance_us, max_pulses)
    means = model.drifted(state, 0.0).view(-1, m).double().mean(1).cummax(0).values.float()
    _RESPONSES[key] = (means, aims)
    return means, aims


def centred_aim(model: DeviceModel, target_us: Tensor, tolerance_us: float, max_pulses: int) -> Tensor:
    """The aim whose measured mean outcome is ``target`` (:func:`verify_response`, linear between
    grid points; targets outside the reachable means get the nearest end's aim)."""
    means, aims = verify_response(model, tolerance_us, max_pulses)
    mu, a = means.to(target_us.device), aims.to(target_us.device)
    x = target_us.clamp(float(mu[0]), float(mu[-1]))
    i = torch.searchsorted(mu, x, right=True).clamp(1, mu.numel() - 1)
    span = mu[i] - mu[i - 1]
    w = torch.where(span > 0, (x - mu[i - 1]) / span.clamp(min=1e-12), torch.zeros_like(x))
    return a[i - 1] + w * (a[i] - a[i - 1])


def program_and_verify(
    model: DeviceModel, state: DeviceState, target_us: Tensor, t_s: float, generator: torch.Generator | None,
    *, tolerance_us: float, max_pulses: int, centred: bool = True,
) -> ProgramReport:
    """Program-and-verify for SET-only devices (depression only by RESET), vectorised over devices.

    RESET every device, read it (with read noise) and then, round by round until the device is
    accepted or its budget of ``max_pulses`` pulses (the first RESET included) is spent:

    - accepted when the verify read lies in ``[aim − tolerance, aim + tolerance]``;
    - below the window: one SET pulse;
    - above it (overshoot; a SET-only device cannot come down): RESET, and climb again.

    With ``centred`` (the default) the window is centred on the aim whose mean outcome is the target
    (:func:`centred_aim`), so that the programmed conductances are unbiased on average; without,
    ``aim = target`` and the loop stops on average below its target. The report's errors and
    ``converged`` are against the target itself.

    Every pulse and read happens at ``t_s`` (programming is instantaneous on the simulated clock);
    each round is the model's :meth:`DeviceModel.verify_round`. The loop runs over
    pulse rounds only. It works on the devices still active, gathered into a compact state that
    is re-compacted whenever half of it has finished, so late rounds with few active devices are
    cheap; the comparisons of a round's read with the window are made once and serve both the
    acceptance and the next round's choice of SET or RESET. Random draws come from ``generator``
    in a fixed order, so the outcome repeats bit for bit.
    """
    if not (isinstance(tolerance_us, (int, float)) and math.isfinite(tolerance_us) and tolerance_us >= 0):
        raise DeviceParameterError(f"tolerance_us={tolerance_us!r} is invalid: expected a finite number ≥ 0")
    check_int("max_pulses", max_pulses, 1)
    shape = state.shape
    dev = state.device
    tgt = torch.as_tensor(target_us, dtype=torch.float32, device=dev).expand(shape).reshape(-1)
    if not bool(torch.isfinite(tgt).all()):
        raise ValueError("program: target_us has NaN or infinite entries: expected finite conductances in µS")
    aim = centred_aim(model, tgt, tolerance_us, max_pulses) if centred else tgt
    pulses, verified = _verify_loop(model, state, aim, t_s, generator, tolerance_us, max_pulses)
    err = model.drifted(state, t_s) - tgt.view(shape)
    return ProgramReport(
        pulses=pulses.view(shape), error_us=err, converged=err.abs() <= tolerance_us, verified=verified.view(shape)
    )


def _verify_loop(model: DeviceModel, state: DeviceState, tgt: Tensor, t_s: float, generator: torch.Generator | None,
                 tolerance_us: float, max_pulses: int) -> tuple[Tensor, Tensor]:
    """The rounds of :func:`program_and_verify` with the window centred on ``tgt`` (flat, the
    state's device); returns the pulses and the verified flags, flat."""
    shape = state.shape
    dev = state.device
    flat = DeviceState(**{f: getattr(state, f).reshape(-1) for f in DeviceState.FIELDS})
    n = tgt.numel()
    pulses = torch.ones(n, dtype=torch.int32, device=dev)
    verified = torch.zeros(n, dtype=torch.bool, device=dev)
    lo = tgt - tolerance_us
    hi = tgt + tolerance_us

    model.reset(flat, torch.ones(n, dtype=torch.bool, device=dev), t_s, generator)
    r = model.verify_read(flat, t_s, generator)
    outside = (r < lo).logical_or_(r > hi)
    verified |= ~outside
    idx = outside.nonzero().squeeze(1)  # flat indices of the work devices
    work = flat.index(idx)
    above = r[idx] > hi[idx]  # of the last read, per work device
    w_lo, w_hi = lo[idx], hi[idx]
    live = torch.ones(idx.numel(), dtype=torch.bool, device=dev)
    w_pulses = torch.ones(idx.numel(), dtype=torch.int32, device=dev)
    n_live = idx.numel()
    used = 1

    def write_back(sel: Tensor) -> None:
        """Copy the work devices at positions ``sel`` back into the population."""
        f_idx = idx[sel]
        for f in DeviceState.FIELDS:
            getattr(flat, f).index_copy_(0, f_idx, getattr(work, f)[sel])
        pulses.index_copy_(0, f_idx, w_pulses[sel])

    while n_live > 0 and used < max_pulses:
        over = above.logical_and_(live)  # overshoot: a SET-only device must RESET
        n_over = int(torch.count_nonzero(over))
        under = live ^ over if n_over else live  # a live device read outside the window, not above it
        used += 1
        w_pulses.masked_fill_(live, used)
        w_r = model.verify_round(work, over, n_over, under, n_live - n_over, t_s, generator)
        above = w_r > w_hi
        live.logical_and_((w_r < w_lo).logical_or_(above))  # accepted devices leave
        n_live = int(torch.count_nonzero(live))
        if 0 < n_live * 2 <= live.numel():  # compact: finished devices go home
            done = (~live).nonzero().squeeze(1)
            verified.index_fill_(0, idx[done], True)
            write_back(done)
            keep = live.nonzero().squeeze(1)
            idx, work = idx[keep], work.index(keep)
            above, w_lo, w_hi, w_pulses = above[keep], w_lo[keep], w_hi[keep], w_pulses[keep]
            live = torch.ones(keep.numel(), dtype=torch.bool, device=dev)
    if idx.numel() > 0:
        verified.index_fill_(0, idx[~live], True)
        write_back(torch.arange(idx.numel(), device=dev))
    for f in DeviceState.FIELDS:  # non-contiguous state: reshape(-1) made a copy
        dst = getattr(state, f)
        src = getattr(flat, f)
        if src.data_ptr() != dst.data_ptr() or not dst.is_contiguous():
            dst.copy_(src.view(shape))
    return pulses, verified


class PulseLevelDevice(DeviceModel):
    """A device programmed by pulses: :meth:`program` is program-and-verify
    (:func:`program_and_verify`) with the model's own ``program_tolerance_us`` and
    ``program_max_pulses`` (fields of its Params) unless the call gives others."""

    def program(
        self, state: DeviceState, target_us: Tensor, t_s: float, generator: torch.Generator | None, *,
        tolerance_us: float | None = None, max_pulses: int | None = None,
    ) -> ProgramReport:
        """RESET, then SET pulses with a noisy verify read after each until the read is within
        ``tolerance_us`` of the target; an overshoot RESETs and climbs again while the budget lasts."""
        p = self.params
        return program_and_verify(
            self, state, target_us, t_s, generator,
            tolerance_us=p.program_tolerance_us if tolerance_us is None else tolerance_us,
            max_pulses=p.program_max_pulses if max_pulses is None else max_pulses,
        )
