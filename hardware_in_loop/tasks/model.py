"""Your own model and data through the one trainer: a converted, NIR-loaded or plain PyTorch network.

:func:`hardware_in_loop.train` runs any ``nn.Module`` (one made by :func:`pcmsim.convert` or :func:`pcmsim.nir.load`
for the ``pcm`` flavour; a plain one for ``fp32``) with your datasets and loss through
:class:`hardware_in_loop.trainer.Trainer`, so it gets the run folder of ``pcmsim train``: config,
metrics per epoch, checkpoints with kill-anywhere resume, snapshots, the drift table, the cost
counts and ``results.json``::

    from hardware_in_loop import train

    analog, _ = pcmsim.convert(net, device_model="pcm-joshi2020")
    results = train(analog, (x_train, y_train), (x_valid, y_valid), torch.nn.functional.cross_entropy,
                    {"epochs": 5, "lr": 2e-3, "batch_size": 32}, out="runs/mine",
                    metrics={"accuracy": lambda out, y: (out.argmax(-1) == y).float().mean()})

The trainer shuffles and batches the examples itself from the run's seed (so a run repeats, also
across a resume): a dataset is a map-style ``torch.utils.data.Dataset`` (``len`` and ``[i]``), a
``DataLoader`` (its dataset and ``collate_fn`` are used, not its sampler), or a pair of tensors
``(inputs, targets)`` indexed along dimension 0. ``collate`` turns a list of examples into a batch
(default: :func:`torch.utils.data.default_collate`: batch-first; pass your own for time-major
models). The loss is ``loss(model(inputs), targets)``, a scalar tensor averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from pcmsim.analog import analog_layers
from pcmsim.typedconfig import ConfigError

from ..config import RunConfig, override
from .base import BuildContext, Task, TrainStep

__all__ = ["ModelConfig", "ModelTask", "as_dataset"]

Collate = Callable[[list[Any]], Any]
LossFn = Callable[[Any, Any], Tensor]
MetricFn = Callable[[Any, Any], Tensor | float]


@dataclass(frozen=True)
class ModelConfig(RunConfig):
    """A run of your own model: :class:`RunConfig` (optimiser, schedule, update scheme, clock, seed, drift
    times, ...) for a model and data given in Python (:func:`train`).

    Attributes:
        metric: the validation metric that picks the best epoch and drives early stopping: ``loss`` or
            a name of ``train(metrics=...)``.
        higher_is_better: whether a larger ``metric`` is better (``False`` for a loss).
    """

    task: str = "model"
    flavour: str = override("flavour", "pcm")
    metric: str = "loss"
    higher_is_better: bool = False
    drift_times: list[str | float] = override("drift_times", ["1h", "1d", "1y"])


def as_dataset(data: Any, name: str) -> Dataset[Any]:
    """A map-style dataset from a Dataset, a DataLoader's dataset, or ``(inputs, targets)`` tensors."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        if data[0].shape[0] != data[1].shape[0]:
            raise ConfigError(f"{name}: inputs of {data[0].shape[0]} examples and targets of {data[1].shape[0]}: "
                              "expected the same number along dimension 0")
        return TensorDataset(*data)
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise ConfigError(f"{name} of type {type(data).__name__} is invalid: expected a map-style Dataset, a "
                          "DataLoader or a pair of tensors (inputs, targets)")
    if len(data) == 0:
        raise ConfigError(f"{name} is empty: expected at least one example")
    return data


class ModelTask(Task):
    """The :class:`Task` of :func:`train`: the user's model, datasets, loss and metrics."""

    name = "model"
    config_class = ModelConfig
    metric = "loss"
    higher_is_better = False
    flavours: ClassVar[tuple[str, ...]] = ("fp32", "pcm")
    config: ModelConfig

    def __init__(self, config: RunConfig, model: nn.Module | None = None, *, train_data: Any = None,
                 valid_data: Any = None, test_data: Any = None, loss: LossFn | None = None,
                 metrics: Mapping[str, MetricFn] | None = None, collate: Collate | None = None) -> None:
        super().__init__(config)
        if model is None or loss is None:
            raise ConfigError("a run of your own model (task 'model') is run and evaluated from Python: "
                              "hardware_in_loop.train(model, train_data, valid_data, loss, config, out=...)")
        self.model = model
        self.loss = loss
        self.metrics = dict(metrics or {})
        self.collate = collate or default_collate
        self.data = {"train": as_dataset(train_data, "train_data"), "valid": as_dataset(valid_data, "valid_data")}
        if test_data is not None:
            self.data["test"] = as_dataset(test_data, "test_data")
        self.metric = self.config.metric
        self.higher_is_better = self.config.higher_is_better
        known = ("loss", *self.metrics)
        if self.metric not in known:
            raise ConfigError(f"config: field 'metric' = {self.metric!r} is invalid: expected one of "
                              f"{', '.join(known)}")

    def load_data(self) -> None:
        """The data is in memory already."""

    def build_model(self, ctx: BuildContext) -> nn.Module:
        analog = analog_layers(self.model)
        if ctx.flavour == "pcm" and not analog:
            raise ConfigError(f"flavour 'pcm' needs a model with analog layers; {type(self.model).__name__} has none "
                              "(put it on crossbars with pcmsim.convert or pcmsim.nir.load, or use flavour 'fp32')")
        if ctx.flavour == "fp32" and analog:
            raise ConfigError("flavour 'fp32' is for a model without analog layers; this one has "
                              f"{len(analog)}: use flavour 'pcm'")
        return self.model

    def n_train(self) -> int:
        return len(self.data["train"])  # type: ignore[arg-type]

    def _batch(self, split: str, indices: Sequence[int], device: torch.device) -> tuple[Any, Any]:
        batch = self.collate([self.data[split][i] for i in indices])
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ConfigError(f"{split} batches are invalid: expected (inputs, targets) from the dataset and collate")
        return _to(batch[0], device), _to(batch[1], device)

    def train_step(self, model: nn.Module, indices: list[int], streams: dict[str, torch.Generator],
                   set_time: Callable[[], None]) -> tuple[TrainStep, int]:
        x, y = self._batch("train", indices, torch.device(self.config.device))
        set_time()
        loss = self.loss(model(x), y)
        n = float(len(indices))
        return TrainStep(loss, {"loss_sum": float(loss.detach()) * n, "n": n}), 0

    def train_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"train_loss": sums.get("loss_sum", 0.0) / max(sums.get("n", 0.0), 1.0)}

    def progress_text(self, sums: dict[str, float]) -> str:
        return f"loss={self.train_metrics(sums)['train_loss']:.4g}"

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Mean loss and metrics over ``split``, weighted by batch size."""
        data = self.data[split]
        n_total = len(data)  # type: ignore[arg-type]
        bs = self.config.eval_batch_size
        sums = {"loss": 0.0, **{k: 0.0 for k in self.metrics}}
        device = torch.device(self.config.device)
        for start in range(0, n_total, bs):
            idx = list(range(start, min(start + bs, n_total)))
            x, y = self._batch(split, idx, device)
            out = model(x)
            sums["loss"] += float(self.loss(out, y)) * len(idx)
            for key, fn in self.metrics.items():
                sums[key] += float(fn(out, y)) * len(idx)
        return {k: v / n_total for k, v in sums.items()}

    def splits(self) -> tuple[str, ...]:
        return ("valid", "test") if "test" in self.data else ("valid",)

    def summary(self) -> dict[str, Any]:
        return {"model": type(self.model).__name__,
                **{f"n_{split}": len(data) for split, data in self.data.items()}}  # type: ignore[arg-type]


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    return value
