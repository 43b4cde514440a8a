"""``pcmsim evaluate RUN``: reload a trained hardware run and measure it after drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint import read_json, write_json
from .config import ConfigError, TrainConfig, parse_duration_s
from .drift import evaluate_over_drift
from .trainer import MusicTrainer


def load_trainer(run_dir: str | Path) -> MusicTrainer:
    """The trainer of a run folder with its latest checkpoint loaded."""
    run = Path(run_dir)
    config = TrainConfig.from_dict(read_json(run / "config.json", "run config"), source=str(run / "config.json"))
    trainer = MusicTrainer(config, run, progress=False)
    trainer.resume()
    return trainer


def run_flavour(run_dir: str | Path) -> str:
    """The flavour of the run in ``run_dir`` (from its config.json)."""
    run = Path(run_dir)
    return str(read_json(run / "config.json", "run config").get("flavour", "fp32"))


def evaluate_run(run_dir: str | Path, times: list[str], modes: list[str], split: str = "test") -> list[dict[str, Any]]:
    """Test NLL at each delay after the end of training, per compensation mode; written to
    ``evaluation.json`` in the run folder."""
    run = Path(run_dir)
    for mode in modes:
        if mode not in ("none", "global", "per-column"):
            raise ConfigError(f"compensation {mode!r} is invalid: expected none, global or per-column")
    labelled = [(t.strip(), parse_duration_s(t.strip())) for t in times if t.strip()]
    trainer = load_trainer(run)
    if trainer.config.flavour != "pcm":
        raise ConfigError(f"{run}: flavour {trainer.config.flavour!r} has no devices to drift; expected a pcm run")
    rows = evaluate_over_drift(trainer, labelled, modes, split=split)
    write_json(run / "evaluation.json", {"split": split, "rows": rows})
    return rows
