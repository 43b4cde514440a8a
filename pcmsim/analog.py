"""Analog linear layers: forward on a simulated crossbar, backward in digital.

:class:`AnalogLinear` holds a :class:`pcmsim.crossbar.Crossbar` (the devices: the one source of
truth of the weights) and a parameter ``weight``, the *digital estimate* of the weights the
devices hold: read noise-free from the devices at the layer's time (:meth:`AnalogLinear.sync_weight`).
The estimate serves the backward pass (``grad_input = grad_out · W_est``) and the optimiser (which
proposes a change; an update scheme of ``hardware_in_loop`` turns it into device pulses). It never
replaces the devices: the forward pass always reads the devices.

Simulated time: every layer has ``time_s`` (s), the time of its next read, set by
:meth:`AnalogLinear.set_time` or, for a whole model, :func:`pcmsim.set_time`.

The analog-layer contract, kept by every analog layer (built in, converted by :func:`pcmsim.convert`,
loaded by :func:`pcmsim.nir.load`; the convolutions hold one :class:`AnalogLinear` each):
``read_weights(noise=False)`` is what the devices hold at ``time_s`` times the compensation α;
``time_s`` / ``set_time`` its clock; ``calibrate`` / ``recalibrate`` its drift compensation;
``take_time_steps`` the time steps of its training forward passes (for the clock of
:class:`hardware_in_loop.HardwareInTheLoop`); ``crossbar`` its devices. :func:`analog_layers` finds
them in any model.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

import device_models
from device_models import DeviceModel

from .compensation import (
    MODES,
    CompensatedLayer,
    calibrate_network,
    check_mode,
    column_readout,
    compensation_factors,
    recalibrate_network,
)
from .crossbar import Crossbar, CrossbarConfig, CrossbarProgramReport, threads_for

InitFn = Callable[[Tensor, torch.Generator], None]
"""``init(weight, generator)`` fills ``weight`` ``[out, in]`` in place."""

__all__ = [
    "AnalogLinear",
    "AnalogMVM",
    "BACKWARD_WEIGHTS",
    "analog_layers",
    "calibrate_network",
    "check_backward_weights",
    "derive_seed",
    "pcm_linear_factory",
    "recalibrate_network",
    "resolve_crossbar",
]


def derive_seed(seed: int, *path: Any) -> int:
    """A 63-bit seed derived from ``seed`` and a path (e.g. a layer index): stable across platforms."""
    text = ":".join(str(p) for p in ("pcmsim", int(seed), *path))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") & (2**63 - 1)


BACKWARD_WEIGHTS: tuple[str, ...] = ("exact", "read", "transpose")
"""What the digital backward pass multiplies the errors with (:class:`AnalogLinear`'s
``backward_weights``):

- ``exact``: the noise-free drifted conductances (the digital estimate ``weight``): the ideal, which
  no chip can read;
- ``read``: one fresh read of the array with read noise per forward call (once per batch: a layer
  is applied to all time steps at once), as a digital processor that reads the array back sees it;
- ``transpose``: the transposed product ``d·W`` on the crossbar itself, through its periphery
  (:meth:`pcmsim.crossbar.Crossbar.mvm_transposed`), for arrays that support transposed reads.
"""


def check_backward_weights(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`BACKWARD_WEIGHTS`, else raise a one-line ``ValueError``."""
    if mode not in BACKWARD_WEIGHTS:
        raise ValueError(f"backward_weights={mode!r} is invalid: expected one of {', '.join(BACKWARD_WEIGHTS)}")
    return mode


def resolve_crossbar(crossbar: CrossbarConfig | Mapping[str, Any] | None) -> CrossbarConfig:
    """The one coercion of a crossbar setting: a :class:`CrossbarConfig` as is, plain data
    (``CrossbarConfig.from_dict``), or ``None`` (the defaults)."""
    if crossbar is None:
        return CrossbarConfig()
    if isinstance(crossbar, CrossbarConfig):
        return crossbar
    if isinstance(crossbar, Mapping):
        return CrossbarConfig.from_dict(dict(crossbar))
    raise TypeError(f"crossbar={crossbar!r} is invalid: expected a CrossbarConfig, a dict or None")


class _MVMContext(torch.autograd.function.FunctionCtx):
    """What :class:`AnalogMVM`'s forward keeps on its context for the backward pass (for the type checker;
    autograd passes its own context object)."""

    saved_tensors: tuple[Tensor, ...]
    needs_input_grad: tuple[bool, ...]
    n_devices: int
    mode: str
    crossbar: Crossbar
    t_s: float
    w_dtype: torch.dtype


class AnalogMVM(torch.autograd.Function):
    """Forward: the analog product ``crossbar.mvm(x, t_s)``. Backward: ``grad_input = grad_out @ w_back``
    (``w_back``: what the layer's ``backward_weights`` mode multiplies the errors with, see
    :data:`BACKWARD_WEIGHTS`; default ``weight``), or the crossbar's transposed product in
    ``transpose`` mode; ``grad_weight = grad_outᵀ @ x`` (stored inputs and errors; the optimiser's ΔW)."""

    @staticmethod
    def forward(
        ctx: _MVMContext, x: Tensor, weight: Tensor, crossbar: Crossbar, t_s: float,
        mode: str = "exact", w_back: Tensor | None = None,
    ) -> Tensor:
        w_back = weight if w_back is None else w_back
        ctx.save_for_backward(x, w_back)
        ctx.n_devices = crossbar.n_devices
        ctx.mode, ctx.crossbar, ctx.t_s, ctx.w_dtype = mode, crossbar, t_s, weight.dtype
        return crossbar.mvm(x, t_s).to(x.dtype)

    @staticmethod
    def backward(ctx: _MVMContext, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None, None, None, None]:
        x, w_back = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0] and ctx.mode == "transpose":
            grad_x = ctx.crossbar.mvm_transposed(grad_out, ctx.t_s).to(grad_out.dtype)
        with threads_for(ctx.n_devices, grad_out.device):  # one thread for a small array's products
            if ctx.needs_input_grad[0] and ctx.mode != "transpose":
                grad_x = grad_out @ w_back.to(grad_out.dtype)
            if ctx.needs_input_grad[1]:
                grad_w = (grad_out.t() @ x).to(ctx.w_dtype)
        return grad_x, grad_w, None, None, None, None


def _init_weight(w: Tensor, init: str | InitFn, generator: torch.Generator) -> None:
    if callable(init):
        init(w, generator)
        return
    if init == "kaiming":  # nn.Linear's default: kaiming_uniform_(a=√5) = U(−1/√in, 1/√in)
        bound = 1.0 / math.sqrt(w.shape[1])
        w.uniform_(-bound, bound, generator=generator)
    elif init == "zeros":
        w.zero_()
    else:
        raise ValueError(
            f"unknown init {init!r}; expected 'kaiming', 'zeros' or a callable init(weight, generator)"
        )


class AnalogLinear(CompensatedLayer):
    """``y = x Wᵀ (+ b)`` with ``W`` on a simulated crossbar; forward analog, backward digital.

    Args:
        in_features: inputs, as ``nn.Linear``.
        out_features: outputs, as ``nn.Linear``.
        bias: a digital bias (initialised as ``nn.Linear``'s).
        device_model: a DeviceModel or a registry name (``device_models.get``).
        device_params: overrides of the model's parameters (with a name).
        config: the crossbar layout and periphery.
        seed: seed of the layer's generator (initial weights, programming, read noise).
        generator: use this generator instead of one made from ``seed``.
        device: torch device.
        t_s: the simulated time of programming the initial weights, s (also ``time_s``).
        init: ``"kaiming"`` (``nn.Linear``'s distribution), ``"zeros"`` or ``init(weight, gen)``.
        program: program the initial weights onto the devices (else the devices stay RESET).
        compensation: ``"none"``, ``"global"`` or ``"per-column"`` drift compensation (see
            :mod:`pcmsim.compensation`); with a mode other than ``"none"`` the reference readout is
            taken right after programming.
        backward_weights: what the backward pass multiplies the errors with: ``"exact"``,
            ``"read"`` or ``"transpose"`` (:data:`BACKWARD_WEIGHTS`).
        crossbar: an existing Crossbar to wrap (then device_model/config/seed are not used).

    Attributes:
        crossbar: the devices.
        weight: the digital estimate of the weights (``nn.Parameter`` ``[out, in]``).
        time_s: simulated time of the next read, s.
        program_report: the report of the last :meth:`program_from`.
    """

    counts_time_steps: ClassVar[bool] = True
    """Its forward takes ``time_steps`` (see :meth:`take_time_steps`)."""
    crossbar: Crossbar
    weight: nn.Parameter
    comp_reference: Tensor  # buffers [out]: the reference readout and the factors α
    comp_alpha: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        device_model: DeviceModel | str = "pcm-joshi2020",
        device_params: dict[str, Any] | None = None,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        t_s: float = 0.0,
        init: str | InitFn = "kaiming",
        program: bool = True,
        compensation: str = "none",
        backward_weights: str = "exact",
        crossbar: Crossbar | None = None,
    ) -> None:
        super().__init__()
        check_mode(compensation)
        self.backward_weights = check_backward_weights(backward_weights)
        if crossbar is None:
            crossbar = Crossbar(
                out_features,
                in_features,
                device_model,
                config,
                generator=generator,
                seed=seed,
                device=device,
                t_s=t_s,
                device_params=device_params,
            )
        elif crossbar.shape != (out_features, in_features):
            raise ValueError(
                f"crossbar of shape {crossbar.shape} does not fit a layer {in_features} → {out_features}: "
                f"expected ({out_features}, {in_features})"
            )
        self.crossbar = crossbar
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.time_s = float(t_s)
        self.compensation = compensation
        self.pending_time_steps = 0
        dev = crossbar.device
        self.weight = nn.Parameter(torch.zeros(out_features, in_features, device=dev))
        if bias:
            bound = 1.0 / math.sqrt(in_features)
            b = torch.empty(out_features, device=dev).uniform_(-bound, bound, generator=crossbar.generator)
            self.bias: nn.Parameter | None = nn.Parameter(b)
        else:
            self.register_parameter("bias", None)
        self.register_buffer("comp_reference", torch.zeros(out_features, device=dev))
        self.register_buffer("comp_alpha", torch.ones(out_features, device=dev))
        self.program_report: CrossbarProgramReport | None = None
        if program:
            w0 = torch.empty(out_features, in_features, device=dev)
            _init_weight(w0, init, crossbar.generator)
            self.program_from(w0, t_s)
        else:
            self.sync_weight()
        if compensation != "none":
            self.calibrate(t_s)

    # ---- time and weights -----------------------------------------------------------------
    def set_time(self, t_s: float) -> None:
        """Set the simulated time of the next read, s."""
        t = float(t_s)
        if not math.isfinite(t):
            raise ValueError(f"t_s={t_s!r} is invalid: expected a finite time in s")
        self.time_s = t

    @torch.no_grad()
    def sync_weight(self) -> None:
        """Copy the devices' noise-free weights at ``time_s`` into the digital estimate ``weight``."""
        self.crossbar.weights_into(self.weight.data, self.time_s)

    @torch.no_grad()
    def program_from(self, w: Tensor, t_s: float | None = None, **kw: Any) -> CrossbarProgramReport:
        """Program the digital matrix ``w`` onto the devices at ``t_s`` (default ``time_s``) and sync.

        ``kw`` go to :meth:`Crossbar.program_weights` (``mask``, ``tolerance_us``, ``max_pulses``).
        """
        t = self.time_s if t_s is None else float(t_s)
        report = self.crossbar.program_weights(w.detach(), t, **kw)
        self.program_report = report
        self.time_s = t
        self.sync_weight()
        return report

    @torch.no_grad()
    def read_weights(self, noise: bool = False) -> Tensor:
        """The weights the devices hold at the layer's time ``time_s``, times its drift compensation α.

        ``[out, in]`` in weight units, a new tensor. ``noise=False``: drift only (no read noise);
        ``noise=True``: one read with a fresh draw of read noise from the crossbar's generator. This
        is what export (:func:`pcmsim.nir.export`), plots and the ``read`` backward mode see: it is
        read from the devices every time, never from a cached copy.
        """
        w = self.crossbar.weights(self.time_s, noise=noise)
        if self.compensation != "none":
            w = w * self.comp_alpha.to(w.dtype)[:, None]
        return w

    def take_time_steps(self) -> int:
        """The time steps of the training forward passes since the last call (and reset the count).

        A forward pass with autograd on counts ``x.shape[0]`` steps for an input ``[T, B, in]``
        (time-major sequences, as pcmsim's networks and NIR graphs run them) and one step for ``[B, in]``
        (a network that calls its layers once per time step, as snnTorch's do). The clock of
        :class:`hardware_in_loop.HardwareInTheLoop` advances by them.
        """
        steps, self.pending_time_steps = self.pending_time_steps, 0
        return steps

    # ---- forward --------------------------------------------------------------------------
    def forward(self, x: Tensor, *, time_steps: int | None = None) -> Tensor:
        """``x`` ``[..., in]`` → ``[..., out]``: the devices read at ``time_steps``; ``time_steps``: how many
        simulated time steps the call covers (default: ``x.shape[0]`` for ``x`` of three or more
        dimensions, else 1; see :meth:`take_time_steps`)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"input of shape {tuple(x.shape)} is invalid: expected [..., {self.in_features}]"
            )
        if torch.is_grad_enabled():
            self.pending_time_steps += int(time_steps if time_steps is not None
                                           else (x.shape[0] if x.dim() >= 3 else 1))
        lead = x.shape[:-1]
        w_back = None
        if self.backward_weights == "read":
            w_back = self.read_weights(noise=True).to(self.weight.dtype)
        elif self.compensation != "none":
            w_back = self.weight.detach() * self.comp_alpha.to(self.weight.dtype)[:, None]
        y = AnalogMVM.apply(x.reshape(-1, self.in_features), self.weight, self.crossbar, self.time_s,
                            self.backward_weights, w_back)
        if self.compensation != "none":
            y = y * self.comp_alpha.to(y.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    # ---- drift compensation ---------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, t_s: float | None = None) -> None:
        """Reference readout at ``t_s`` (default ``time_s``; right after programming); α ← 1."""
        t = self.time_s if t_s is None else float(t_s)
        self.comp_reference.copy_(column_readout(self.crossbar, t))
        self.comp_alpha.fill_(1.0)

    @torch.no_grad()
    def recalibrate(self, t_s: float | None = None, mode: str | None = None) -> Tensor:
        """Compensation factors at ``t_s`` (default ``time_s``) for ``mode`` (default: the layer's).

        Returns α ``[out]``. Needs :meth:`calibrate` first (unless the mode is ``"none"``).
        """
        if mode is not None:
            self.compensation = check_mode(mode)
        if self.compensation == "none":
            self.comp_alpha.fill_(1.0)
            return self.comp_alpha
        if not bool((self.comp_reference != 0).any()):
            raise RuntimeError(
                "drift compensation has no reference readout: call calibrate() (or calibrate_network) "
                "right after programming"
            )
        t = self.time_s if t_s is None else float(t_s)
        current = column_readout(self.crossbar, t)
        self.comp_alpha.copy_(compensation_factors(self.compensation, self.comp_reference, current))
        return self.comp_alpha

    # ---- persistence ----------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Tensor]:
        """The devices, scale, generator and time, as tensors (``torch.load(weights_only=True)``)."""
        d = {f"crossbar.{k}": v for k, v in self.crossbar.state_dict().items()}
        d["time_s"] = torch.tensor(self.time_s, dtype=torch.float64)
        d["compensation"] = torch.tensor(MODES.index(self.compensation))
        return d

    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        prefix = "crossbar."
        self.crossbar.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        if "time_s" in state:
            self.time_s = float(state["time_s"])
        if "compensation" in state:
            self.compensation = MODES[int(state["compensation"])]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> AnalogLinear:
        super()._apply(fn, recurse)
        if self.crossbar.device != self.weight.device:
            self.crossbar.to(self.weight.device)
        return self

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, "
            f"crossbar={self.crossbar!r}, time_s={self.time_s:g}, compensation={self.compensation!r}"
        )


def analog_layers(module: nn.Module) -> list[AnalogLinear]:
    """The analog layers of any model, in registration order: every :class:`AnalogLinear`, also the one
    inside each :class:`pcmsim.analog_conv.AnalogConv2d` / ``AnalogConv1d``."""
    return [m for m in module.modules() if isinstance(m, AnalogLinear)]


def pcm_linear_factory(
    device_model: DeviceModel | str = "pcm-joshi2020",
    device_params: dict[str, Any] | None = None,
    crossbar: CrossbarConfig | dict[str, Any] | None = None,
    seed: int = 0,
    init: str | InitFn = "kaiming",
    device: torch.device | str | None = None,
    t_s: float = 0.0,
    compensation: str = "none",
    backward_weights: str = "exact",
) -> Callable[[int, int, bool], nn.Module]:
    """A :data:`pcmsim.networks.LinearFactory` of :class:`AnalogLinear` layers.

    Layer i (in the order the factory is called) gets its own generator seeded with
    ``derive_seed(seed, "layer", i)``: the same seed gives the same devices, bit for bit on the
    CPU. Layers are initialised like ``nn.Linear`` (``init="kaiming"``) and programmed at ``t_s``.
    The device model is built (and its name and parameters checked) once, here.
    """
    model = device_models.resolve(device_model, device_params)
    config = resolve_crossbar(crossbar)
    check_backward_weights(backward_weights)
    check_mode(compensation)
    if not callable(init) and init not in ("kaiming", "zeros"):
        raise ValueError(
            f"unknown init {init!r}; expected 'kaiming', 'zeros' or a callable init(weight, generator)"
        )
    counter = itertools.count()

    def factory(in_features: int, out_features: int, bias: bool) -> nn.Module:
        index = next(counter)
        return AnalogLinear(
            in_features,
            out_features,
            bias,
            device_model=model,
            config=config,
            seed=derive_seed(seed, "layer", index),
            device=device,
            t_s=t_s,
            init=init,
            compensation=compensation,
            backward_weights=backward_weights,
        )

    return factory
