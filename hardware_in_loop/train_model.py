"""Your own model and data through the one trainer: :func:`train` (see :mod:`hardware_in_loop.tasks.model`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

import device_models
from pcmsim.analog import analog_layers
from pcmsim.typedconfig import load

from .experiments import run_training
from .tasks.model import Collate, LossFn, MetricFn, ModelConfig, ModelTask
from .trainer import Trainer

__all__ = ["train"]


def train(model: nn.Module, train_data: Any, valid_data: Any, loss: LossFn,
          config: ModelConfig | Mapping[str, Any] | None = None, *, out: str | Path,
          test_data: Any = None, metrics: Mapping[str, MetricFn] | None = None, collate: Collate | None = None,
          resume: bool = False, progress: bool = True, log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Train your own model with the hardware in the loop through the one trainer; returns ``results.json``.

    Args:
        model: a model with analog layers (:func:`pcmsim.convert`, :func:`pcmsim.nir.load`) for the ``pcm``
            flavour (the default), or a plain model with ``flavour="fp32"``. It is trained in place.
        train_data: the training split (see :mod:`hardware_in_loop.tasks.model`).
        valid_data: the validation split (the best epoch and early stopping).
        test_data: the test split (optional).
        loss: ``loss(model(inputs), targets)`` → a scalar tensor (mean over the batch).
        config: a :class:`ModelConfig` or its fields as a mapping (``epochs``, ``lr``, ``batch_size``,
            ``update_scheme``, ``seed``, ``drift_times``, ...).
        out: the run folder (checkpoints, metrics, results).
        metrics: extra evaluation metrics, name → ``fn(outputs, targets)`` (a mean over the batch).
        collate: a list of examples → ``(inputs, targets)`` (default: ``default_collate``).
        resume: continue from the run folder's checkpoint (pass the same model, built the same way).
    """
    if isinstance(config, ModelConfig):
        cfg = config
    else:
        fields = dict(config or {})
        layers = analog_layers(model)
        if layers and "device_model" not in fields and device_models.is_model(layers[0].crossbar.model.name):
            fields["device_model"] = layers[0].crossbar.model.name  # the devices the model carries
        cfg = load(ModelConfig, {"task": "model", **fields}, source="config")
    task = ModelTask(cfg, model, train_data=train_data, valid_data=valid_data, test_data=test_data, loss=loss,
                     metrics=metrics, collate=collate)
    trainer = Trainer(cfg, out, progress=progress, log=log, task=task)
    return run_training(cfg, out, resume=resume, progress=progress, log=log, trainer=trainer)
