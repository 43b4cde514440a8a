"""Every shipped config parses and validates (they are what the README's commands run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardware_in_loop.experiments import JSB_SNU_SCHEDULE, SHIPPED_CONFIGS, experiment_config
from hardware_in_loop.tasks import MusicConfig, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.json"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_is_valid(path: Path) -> None:
    data = json.loads(path.read_text())
    cfg = load_config(data, source=str(path))
    assert cfg.to_dict() == load_config(cfg.to_dict()).to_dict()  # a saved config.json loads back the same
    if isinstance(cfg, MusicConfig):
        assert cfg.network.layers == (88, 150, 88)


def test_jsb_52800_is_the_papers_device_count_setup() -> None:
    cfg = experiment_config("jsb-52800")
    assert cfg.flavour == "pcm" and cfg.device_model == "pcm-nandakumar2018"
    assert cfg.update_scheme == "mixed-precision"
    assert cfg.network.layers == (88, 150, 88) and cfg.network.neuron == "snu"
    quick = experiment_config("jsb-52800", quick=True)
    assert quick.epochs < cfg.epochs and quick.max_train_sequences is not None
    with pytest.raises(ValueError, match="unknown experiment"):
        experiment_config("jsb-1")


@pytest.mark.parametrize("name", sorted(SHIPPED_CONFIGS))
def test_shipped_configs_derive_from_their_preset(name: str) -> None:
    path = CONFIGS[0].parent / f"{name}.json"
    shipped = load_config(json.loads(path.read_text()), source=str(path))
    assert shipped.to_dict() == load_config(SHIPPED_CONFIGS[name]).to_dict(), f"{path} differs from its preset"
    experiment = experiment_config("jsb-52800")
    for key in ("lr", "lr_decay", "grad_clip", "batch_size", "optimizer", "output_bias_init"):
        assert getattr(shipped, key) == getattr(experiment, key) == JSB_SNU_SCHEDULE[key]


def test_the_reproduction_table_prints_the_five_seed_reference() -> None:
    from hardware_in_loop.experiments import FIVE_SEED_REFERENCE, format_results_table

    results = {"experiment": "jsb-52800", "n_devices": 52800, "device_model": "pcm-nandakumar2018",
               "update_scheme": "mixed-precision", "epochs": 40, "best_epoch": 35, "test_nll": 8.848,
               "test_frame_accuracy": 0.215, "fp32_test_nll": 8.794, "pulses_set": 1, "pulses_reset": 1,
               "refreshes": 1, "max_pulses_per_device": 1, "simulated_time_s": 1.0}
    table = format_results_table(results)
    assert "five-seed reference" in table
    assert all(numbers in table for numbers in FIVE_SEED_REFERENCE["jsb-52800"].values())
    assert "five-seed reference" not in format_results_table({**results, "quick": True})
