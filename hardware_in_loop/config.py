"""The settings every training run shares, whatever its task: one typed, validated dataclass.

A task (:mod:`hardware_in_loop.tasks`) extends :class:`RunConfig` with its data and network
fields. Configs load through :func:`pcmsim.typedconfig.load`, which refuses unknown fields, wrong
types and bad values with one line naming the field path; valid names come from the registries
(device models, update schemes, flavours, optimisers, compensation modes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

import device_models
from device_models import DeviceParams
from pcmsim.aihwkit_bridge import AihwkitOptions
from pcmsim.analog import BACKWARD_WEIGHTS
from pcmsim.compensation import MODES as COMPENSATION_MODES
from pcmsim.crossbar import CrossbarConfig
from pcmsim.hwa import HWAConfig
from pcmsim.networks import FLAVOURS
from pcmsim.neuron_models.fused import NEURON_LOOPS
from pcmsim.typedconfig import (
    ConfigError,
    at_least,
    bad_value,
    check,
    check_fields,
    choices,
    chosen_block,
    dump_sparse,
    first_line,
    loading,
    non_negative,
    positive,
    to_json,
    unresolved,
)
from pcmsim.units import parse_duration_s

from .clock import ClockConfig
from .schemes import SchemeParams, available_schemes, scheme_params

__all__ = ["ConfigError", "OPTIMIZERS", "RunConfig", "parse_duration_s"]

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
def _durations_ok(values: list[Any]) -> bool:
    try:
        for v in values:
            parse_duration_s(v)
    except ConfigError:
        return False
    return True


def _dump_device_params(config: RunConfig, params: Any) -> dict[str, Any]:
    if isinstance(params, DeviceParams):
        return device_models.param_overrides(config.device_model, params)
    return dict(params)


def _device_ok(name: str) -> bool:
    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class RunConfig:
    """The fields of every run (see each task's config for its data and network).

    Attributes:
        task: the task's registry name (``music``, ``classification``).
        name: a free label.
        flavour: ``fp32`` (software), ``pcm`` (pcmsim crossbars, hardware in the loop),
            ``aihwkit`` (aihwkit analog layers with their own optimiser) or ``hwa`` (software training
            with the device model's non-idealities in the forward pass: :mod:`pcmsim.hwa`).
        hwa: the options of flavour ``hwa`` (:class:`pcmsim.hwa.HWAConfig`); its noise comes from
            ``device_model`` / ``device_params`` on the ``crossbar`` (with ``weight_scale`` ``auto``
            unless set), as the run is programmed once afterwards.
        program_once: for an ``fp32`` or ``hwa`` run: after training, program its weights once onto
            ``device_model`` crossbars (:func:`hardware_in_loop.inference.program_model_once`) and
            evaluate ``drift_times`` × ``compensations`` (``results.json``'s ``drift`` and
            ``programming``).
        device_model, device_params: the device model of the ``pcm`` flavour (and of ``hwa`` and
            ``program_once``) and its parameters: the model's typed ``Params``
            (:func:`device_models.params_for`; a file or ``dict`` gives the fields that differ from
            the model's own, and ``config.json`` records just those).
        crossbar: the crossbar layout and periphery (:class:`pcmsim.crossbar.CrossbarConfig`).
        aihwkit: the options of flavour ``aihwkit`` (:class:`pcmsim.aihwkit_bridge.AihwkitOptions`).
        update_scheme, scheme_params: how the optimiser's ΔW becomes pulses; ``scheme_params`` is the
            scheme's typed ``Params`` (:mod:`hardware_in_loop.schemes`: the granularity
            ``granularity_us``, ``max_pulses_per_step``, the ``refresh`` thresholds, or
            ``every_k_steps``); ``"model"`` takes the device model's.
        backward_weights: what the digital backward pass multiplies the errors with
            (:data:`pcmsim.analog.BACKWARD_WEIGHTS`: ``exact``, ``read``, ``transpose``).
        clock: durations of the simulated hardware's operations.
        optimizer, lr, lr_decay (epoch ``e`` from 0 uses ``lr · lr_decay**e``), momentum,
            weight_decay, grad_clip: the digital optimiser.
        epochs, batch_size, eval_batch_size, patience (early stopping on the validation metric).
        seed: every random draw of the run derives from it (:mod:`hardware_in_loop.seeds`).
        drift_times, compensations: after training, evaluate at these delays per compensation mode.
        snapshot_epochs: save every device's conductance after these epochs (the start and the end are
            always saved; :func:`pcmsim.load_snapshots` reads them).
        device: torch device (``cpu``, ``cuda``); num_threads: ``torch.set_num_threads`` (None: as is).
        neuron_loop: ``fused`` (the compiled SNU/LIF time loops of
            :mod:`pcmsim.neuron_models.fused` on the CPU) or ``plain`` (the step-by-step reference).
    """

    task: str = "music"
    name: str | None = None
    flavour: str = field(default="fp32", metadata=choices(lambda: FLAVOURS))
    device_model: str = field(default="pcm-nandakumar2018",
                              metadata={**check(device_models.is_model, device_models.describe_valid()),
                                        "suggest": device_models.available})
    device_params: DeviceParams = field(default_factory=unresolved, metadata={
                                        "load": chosen_block(DeviceParams, what="device parameters"),
                                        "dump": _dump_device_params, "expected": (
                                            "an object of the device model's parameters (each model's Params; "
                                            "the device models' reference page)")})
    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig, metadata={"dump": dump_sparse})
    aihwkit: AihwkitOptions = field(default_factory=AihwkitOptions, metadata={"dump": dump_sparse})
    update_scheme: str = field(default="mixed-precision", metadata=choices(available_schemes))
    backward_weights: str = field(default="read", metadata=choices(lambda: BACKWARD_WEIGHTS))
    scheme_params: SchemeParams = field(default_factory=unresolved, metadata={
                                        "load": chosen_block(SchemeParams, what="scheme options"),
                                        "dump": dump_sparse, "expected": (
                                            "an object of the update scheme's options (each scheme's Params; "
                                            "the update schemes' reference page)")})
    hwa: HWAConfig = field(default_factory=HWAConfig)
    program_once: bool = False
    clock: ClockConfig = field(default_factory=ClockConfig)
    optimizer: str = field(default="adam", metadata=choices(lambda: OPTIMIZERS))
    lr: float = field(default=0.01, metadata=positive())
    lr_decay: float = field(default=1.0, metadata=positive())
    momentum: float = field(default=0.9, metadata=non_negative())
    weight_decay: float = field(default=0.0, metadata=non_negative())
    grad_clip: float | None = field(default=5.0, metadata=positive("null or a finite number > 0"))
    epochs: int = field(default=40, metadata=at_least(1))
    batch_size: int = field(default=8, metadata=at_least(1))
    eval_batch_size: int = field(default=64, metadata=at_least(1))
    patience: int | None = field(default=None, metadata=at_least(1))
    seed: int = field(default=0, metadata=at_least(0))
    drift_times: list[str | float] = field(
        default_factory=list, metadata=check(_durations_ok, 'delays such as 60, "1min", "1h", "1d", "1y" (≥ 0)'))
    compensations: list[str] = field(
        default_factory=lambda: ["none", "global"],
        metadata=check(lambda v: all(m in COMPENSATION_MODES for m in v),
                       f"a list of {', '.join(COMPENSATION_MODES)}"))
    snapshot_epochs: list[int] = field(default_factory=list)
    device: str = field(default="cpu", metadata=check(_device_ok, "a torch device name such as 'cpu' or 'cuda'"))
    num_threads: int | None = field(default=None, metadata=at_least(1))
    neuron_loop: str = field(default="fused", metadata=choices(lambda: NEURON_LOOPS))

    def __post_init__(self) -> None:
        """The checks of a loaded config, at construction too: ``MusicConfig(lr=-1.0)`` is refused
        in one line as ``{"lr": -1.0}`` in a file is."""
        if not loading():  # a loaded config is checked by the loader, which names the file
            check_fields(self)
            self.validate()

    # -- loading ---------------------------------------------------------------------------
    def validate(self, source: str = "config", path: str = "") -> None:
        """Checks across fields (the typed loader has checked each field on its own), and the typing of the
        blocks another field chooses: ``device_params`` becomes ``device_model``'s ``Params``,
        ``scheme_params`` ``update_scheme``'s."""
        own = type(self).__dataclass_fields__["task"].default
        if self.task != own:
            raise bad_value(source, "task", self.task, f"{own!r} for a {type(self).__name__}")
        try:
            params = device_models.params_for(self.device_model, self.device_params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: field 'device_params': {first_line(exc)}") from None
        object.__setattr__(self, "device_params", params)
        object.__setattr__(self, "scheme_params", scheme_params(self.update_scheme, self.scheme_params,
                                                                source=source, path="scheme_params"))
        if self.program_once and self.flavour not in ("fp32", "hwa"):
            raise bad_value(source, "program_once", True, f"false for flavour {self.flavour!r} (programming once "
                            "is for fp32 and hwa runs)")
        if torch.device(self.device).type == "cuda" and not torch.cuda.is_available():
            raise bad_value(source, "device", self.device, "'cpu': this machine has no CUDA device")
        if self.patience is not None and not self.has_validation:
            raise bad_value(source, "patience", self.patience, "null: early stopping needs a validation split")

    @property
    def has_validation(self) -> bool:
        """Whether the task has a validation split (best epoch and early stopping use it)."""
        return True

    def to_dict(self) -> dict[str, Any]:
        return to_json(self)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes``, validated like a loaded config."""
        from pcmsim.typedconfig import load

        return load(type(self), {**self.to_dict(), **changes}, source="config")

    def drift_times_s(self) -> list[tuple[str, float]]:
        return [(str(label), parse_duration_s(label)) for label in self.drift_times]


def config_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def override(name: str, default: Any) -> Any:
    """A task config's field that changes only the default of :class:`RunConfig`'s field ``name``
    (its type, checks and choices stay the base's)."""
    base = RunConfig.__dataclass_fields__[name]
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=base.metadata)
    return field(default=default, metadata=base.metadata)
