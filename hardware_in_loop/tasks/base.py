"""What a task supplies to the one :class:`hardware_in_loop.trainer.Trainer`.

A task owns its data, its network builder, its loss and its metrics; the trainer owns everything
else (optimiser and schedule, hardware in the loop and the clock, random streams, checkpoints and
resume, early stopping, snapshots, drift evaluation, results). A new task is one module with a
config dataclass (fields beyond :class:`RunConfig`) and a :class:`Task` subclass, plus one line in
``hardware_in_loop.tasks.TASKS``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from pcmsim.networks import LinearFactory, make_linear_factory

from ..config import RunConfig


def uniform_init(scale: float) -> Callable[[Tensor, torch.Generator], None]:
    """An analog layer's ``init(weight, generator)``: ``U(±scale/√fan_in)`` in place (``nn.Linear``'s
    distribution times ``scale``: a network's ``init_scale``)."""

    def init(w: Tensor, g: torch.Generator) -> None:
        bound = scale / math.sqrt(w.shape[1])
        w.uniform_(-bound, bound, generator=g)

    return init


@dataclass
class BuildContext:
    """What the trainer hands a task's model builder.

    Attributes:
        flavour: ``fp32``, ``pcm`` or ``aihwkit``.
        generator: the MODEL stream (initial weights and neuron parameters).
        device_seed: the seed of the crossbars' own generators (DEVICES stream).
        t_start_s: the simulated time at which the initial weights are programmed.
        device: the torch device of the run.
        hwa_seed: the seed of hardware-aware training's draws (HWA stream; flavour ``hwa``).
    """

    flavour: str
    generator: torch.Generator
    device_seed: int
    t_start_s: float
    device: torch.device
    hwa_seed: int = 0

    def hwa_factory(self, config: RunConfig, base: LinearFactory) -> LinearFactory:
        """Flavour ``hwa``: ``base``'s ``nn.Linear`` layers (the FP32 network's, same initial weights) as
        :class:`pcmsim.hwa.HWALinear` with ``config.hwa``'s non-idealities of ``config.device_model`` on the
        crossbar it is programmed onto afterwards (``weight_scale`` ``auto`` unless the run sets one), programmed
        at the clock's start."""
        return make_linear_factory(
            "hwa", base=base, config=config.hwa, device_model=config.device_model,
            device_params=config.device_params, crossbar=config.crossbar,
            seed=self.hwa_seed, t_s=self.t_start_s, device=self.device)

    @contextmanager
    def seeded_global_rng(self) -> Iterator[None]:
        """Torch's global generator seeded like :attr:`generator`, for the build of layers that draw
        from it (aihwkit's have no generator argument); the caller's global state comes back after."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.generator.initial_seed())
            yield


@dataclass
class TrainStep:
    """One training batch's result: the loss to differentiate and the sums to log."""

    loss: Tensor
    sums: dict[str, float]


class Task(ABC):
    """A learning problem: data, network, loss and metrics (see the module docstring).

    Class attributes:
        name: the registry name (the config's ``task`` field).
        config_class: the task's config dataclass (a :class:`RunConfig` subclass).
        metric: the validation metric that selects the best epoch and drives early stopping.
        higher_is_better: whether a larger ``metric`` is better.
        flavours: the network flavours the task can build.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[RunConfig]]
    metric: str  # class attributes that an instance may set (ModelTask: from its config)
    higher_is_better: bool
    flavours: ClassVar[tuple[str, ...]] = ("fp32", "pcm", "aihwkit", "hwa")
    input_streams: ClassVar[tuple[str, ...]] = ()
    """Names of the run-long random streams the task draws from in training (their states are
    checkpointed by the trainer), e.g. ``("train_input",)``."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    @abstractmethod
    def load_data(self) -> None:
        """Read the task's data (every failure a :class:`pcmsim.data.DataError` line)."""

    @abstractmethod
    def build_model(self, ctx: BuildContext) -> nn.Module:
        """The network in ``ctx.flavour`` with its initial weights drawn from ``ctx.generator``."""

    def after_build(self, model: nn.Module) -> None:  # noqa: B027 - optional hook
        """Set data-dependent initial values (e.g. an output bias from the training targets)."""

    @abstractmethod
    def n_train(self) -> int:
        """The number of training examples (the trainer shuffles their indices per epoch)."""

    @abstractmethod
    def train_step(self, model: nn.Module, indices: list[int], streams: dict[str, torch.Generator],
                   set_time: Callable[[], None]) -> tuple[TrainStep, int]:
        """The forward pass and loss of one training batch, and its number of time steps.

        ``set_time()`` must be called after the inputs are prepared and before the forward pass
        (the devices are read at the clock's time).
        """

    @abstractmethod
    def train_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """An epoch's training metrics (``train_*``) from the summed :attr:`TrainStep.sums`."""

    @abstractmethod
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics of ``split`` (``valid`` or ``test``), e.g. ``{"nll": …}``, with the model in eval mode."""

    @abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The evaluation splits evaluated after every epoch, in order (``valid`` first if present)."""

    def summary(self) -> dict[str, Any]:
        """Task-specific entries of ``results.json`` (dataset, network, sizes of the splits)."""
        return {}

    def progress_text(self, sums: dict[str, float]) -> str:
        """A short running-loss text for the progress bar."""
        return ""
