"""The one interface of a population of devices.

A :class:`DeviceModel` is a frozen set of parameters plus functions over a :class:`DeviceState`,
a handful of tensors with one entry per device. The state is the hardware: operations that
program devices (SET, RESET, program) update it in place; reads return new tensors and leave it
untouched. Every random draw goes through the ``torch.Generator`` passed in, so a run on the CPU
repeats bit for bit.

The pieces around it live in one module each: the state (:mod:`device_models.state`), parameter
checks (:mod:`device_models.checks`), clipped-read moments (:mod:`device_models.clipped`),
program-and-verify and :class:`~device_models.verify.PulseLevelDevice` (:mod:`device_models.verify`).

Units: conductance in µS, time in s (the simulated hardware clock).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from .checks import DeviceParameterError, check_params
from .refresh import RefreshPolicy
from .state import DeviceState, ProgramReport


class DeviceParams:
    """The base of every device model's ``Params``: a frozen dataclass of the model's constants, each
    field with its unit in the name and its source in a comment (``device_models.get(name).params``).
    A run config's ``device_params`` is one of these (:func:`device_models.params_for`)."""

    __slots__ = ()
    if TYPE_CHECKING:  # every subclass is a dataclass (for dataclasses.fields)
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


class DeviceModel(ABC):
    """A device model: frozen parameters (``self.params``) and operations on a DeviceState.

    Subclasses set ``name`` (the registry key), ``Params`` (a frozen dataclass whose fields are
    the model's constants, each documented with its source) and implement the abstract methods.
    """

    name: ClassVar[str]
    Params: ClassVar[type[DeviceParams]]

    params: Any  # the model's ``Params`` (each subclass narrows the type)

    def __init__(self, params: Any | None = None, **overrides: Any) -> None:
        self.params = self.make_params(params, **overrides)

    @classmethod
    def make_params(cls, params: Any | None = None, **overrides: Any) -> Any:
        """The model's ``Params`` (``params``, default the class's, with ``overrides`` field by field), checked
        as building the model checks them (:func:`~device_models.checks.check_params`, then :meth:`validate`)
        but without building it: no state, no fit (a run config types its ``device_params`` with this)."""
        base: Any = params if params is not None else cls.Params()
        if overrides:
            valid = {f.name for f in dataclasses.fields(base)}
            unknown = sorted(set(overrides) - valid)
            if unknown:
                raise DeviceParameterError(
                    f"unknown parameter(s) {unknown} for device model {cls.name!r}; valid: {sorted(valid)}"
                )
            base = dataclasses.replace(base, **overrides)
        check_params(base)
        probe = cls.__new__(cls)  # validate() reads only self.params
        probe.params = base
        probe.validate()
        return base

    def validate(self) -> None:
        """Raise :class:`DeviceParameterError` if parameters do not fit together (a range that depends on
        another parameter). Each parameter's own type and range are its field's (:func:`~device_models.checks.param`),
        checked before this by :func:`~device_models.checks.check_params`, NaN and infinities included. It reads
        only ``self.params`` (:meth:`make_params` calls it before the model is built)."""
        return None

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
    def set_pulse(self, state: DeviceState, mask: Tensor | None, t_s: float, generator: torch.Generator | None) -> None:
        """Apply one SET (potentiation) pulse to the devices where ``mask`` is true, in place."""

    @abstractmethod
    def reset(self, state: DeviceState, mask: Tensor | None, t_s: float, generator: torch.Generator | None) -> None:
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
