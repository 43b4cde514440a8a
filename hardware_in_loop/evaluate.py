"""``pcmsim evaluate RUN``: reload a trained hardware run and measure it after drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcmsim.compensation import MODES

from .checkpoint import CheckpointError, read_json, write_json
from .config import ConfigError, parse_duration_s
from .drift import evaluate_over_drift
from .tasks import load_config
from .trainer import Trainer


def load_trainer(run_dir: str | Path) -> Trainer:
    """The trainer of a run folder with its latest checkpoint loaded."""
    run = Path(run_dir)
    config = load_config(read_json(run / "config.json", "run config"), source=str(run / "config.json"))
    trainer = Trainer(config, run, progress=False)
    if not trainer.resume():
        raise CheckpointError(f"{run / 'checkpoint.pt'}: no checkpoint file there")
    return trainer


def run_flavour(run_dir: str | Path) -> str:
    """The flavour of the run in ``run_dir`` (from its config.json)."""
    run = Path(run_dir)
    return str(read_json(run / "config.json", "run config").get("flavour", "fp32"))


def evaluate_run(run_dir: str | Path, times: list[str], modes: list[str], split: str = "test") -> list[dict[str, Any]]:
    """Test metrics at each delay after the end of training, per compensation mode; written to
    ``evaluation.json`` in the run folder."""
    run = Path(run_dir)
    for mode in modes:
        if mode not in MODES:
            raise ConfigError(f"compensation {mode!r} is invalid: expected one of {', '.join(MODES)}")
    labelled = [(t.strip(), parse_duration_s(t.strip())) for t in times if t.strip()]
    trainer = load_trainer(run)
    if trainer.config.flavour != "pcm":
        raise ConfigError(f"{run}: flavour {trainer.config.flavour!r} has no devices to drift; expected a pcm run")
    if split not in trainer.task.splits():
        raise ConfigError(f"{run}: split {split!r} is invalid: expected one of {', '.join(trainer.task.splits())}")
    rows = evaluate_over_drift(trainer, labelled, modes, split=split)
    write_json(run / "evaluation.json", {"split": split, "rows": rows})
    return rows
