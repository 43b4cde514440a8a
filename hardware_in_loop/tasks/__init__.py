"""The task registry: a config's ``task`` field names one of :data:`TASKS`.

Adding a task is one module (a :class:`RunConfig` subclass and a :class:`Task` subclass, see
:mod:`hardware_in_loop.tasks.base`) plus one line here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcmsim.fileio import read_json
from pcmsim.typedconfig import ConfigError, bad_value, load

from ..config import RunConfig
from .base import BuildContext, Task, TrainStep
from .classification import ClassificationConfig, ClassificationTask
from .model import ModelConfig, ModelTask
from .music import MusicConfig, MusicTask

TASKS: dict[str, type[Task]] = {
    "music": MusicTask,
    "classification": ClassificationTask,
    "model": ModelTask,
}

__all__ = ["TASKS", "BuildContext", "ClassificationConfig", "ClassificationTask", "ModelConfig", "ModelTask",
           "MusicConfig", "MusicTask",
           "Task", "TrainStep", "available_tasks", "load_config", "make_task"]


def available_tasks() -> list[str]:
    return list(TASKS)


def load_config(data: Any, *, source: str = "config") -> RunConfig:
    """The task config of a JSON object (its ``task`` field, default ``music``), validated."""
    if isinstance(data, RunConfig):
        return data
    if isinstance(data, (str, Path)):
        source = str(data)
        data = read_json(data, "config", ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object of fields, got {type(data).__name__}")
    name = data.get("task", "music")
    if name not in TASKS:
        raise bad_value(source, "task", name, "one of " + ", ".join(TASKS))
    return load(TASKS[name].config_class, data, source=source)


def make_task(config: RunConfig) -> Task:
    """The task object of a loaded config."""
    return TASKS[config.task](config)
