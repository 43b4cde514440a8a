"""Inference on PCM after software training: program a trained FP32 run onto crossbars of a device
model (``pcm-joshi2020`` by default, Joshi et al., Nat. Commun. 11, 2473, 2020) and measure how its
test NLL ages under drift, with and without drift compensation.

The network keeps its digital parameters (biases, thresholds, decays); every weight matrix is
programmed once onto differential pairs with the model's programming (programming noise for the
statistical model, program-and-verify for pulse-level ones), the weight scale chosen per crossbar
so that ``max|W|`` lands at G_max.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pcmsim.analog import analog_layers

from .checkpoint import read_json, write_json
from .config import ConfigError, parse_duration_s
from .drift import evaluate_over_drift
from .evaluate import load_trainer
from .trainer import Trainer


def program_run_onto_devices(run_dir: str | Path, device_model: str = "pcm-joshi2020", *,
                             device_params: dict[str, Any] | None = None, crossbar: dict[str, Any] | None = None,
                             seed: int | None = None) -> tuple[Trainer, dict[str, Any]]:
    """A pcm-flavour trainer whose crossbars hold the weights of the FP32 run in ``run_dir``.

    Returns the trainer (clock at the programming time) and a programming report per layer.
    """
    run = Path(run_dir)
    software = load_trainer(run)
    config = software.config
    if config.flavour != "fp32":
        raise ConfigError(f"{run}: flavour {config.flavour!r}; programming a run onto devices needs an fp32 run")
    hw_config = config.replace(flavour="pcm", device_model=device_model, device_params=dict(device_params or {}),
                               crossbar={"weight_scale": "auto", **(crossbar or {})},
                               seed=config.seed if seed is None else seed)
    hardware = Trainer(hw_config, run / f"on-{device_model}", progress=False)
    state = software.model.state_dict()
    t_s = hardware.clock.now_s
    layers = analog_layers(hardware.model)
    names = {id(m): name for name, m in hardware.model.named_modules()}
    reports: dict[str, Any] = {}
    with torch.no_grad():
        for name, param in hardware.model.named_parameters():
            if name in state and not any(name == f"{names[id(m)]}.weight" for m in layers):
                param.copy_(state[name])
        for layer in layers:
            key = f"{names[id(layer)]}.weight"
            report = layer.program_from(state[key], t_s)
            reports[key] = {"rms_error": report.rms_error, "max_abs_error": report.max_abs_error,
                            "n_clipped": report.n_clipped, "w_per_us": float(report.w_per_us.max())}
    return hardware, reports


def evaluate_programmed_run(run_dir: str | Path, device_model: str, times: list[str], modes: list[str],
                            split: str = "test", **kwargs: Any) -> dict[str, Any]:
    """Program the FP32 run onto ``device_model`` crossbars and evaluate over drift; the table is
    written to ``evaluation-<model>.json`` in the run folder."""
    labelled = [(t.strip(), parse_duration_s(t.strip())) for t in times if t.strip()]
    hardware, reports = program_run_onto_devices(run_dir, device_model, **kwargs)
    software = read_json(Path(run_dir) / "results.json", "run results")
    rows = evaluate_over_drift(hardware, labelled, modes, split=split)
    out = {"device_model": device_model, "split": split, "software_nll": software.get("final_test_nll"),
           "software_metrics": {k: v for k, v in software.items() if k.startswith("final_test_")},
           "n_devices": sum(int(m.crossbar.n_devices) for m in analog_layers(hardware.model)),
           "programming": reports, "rows": rows}
    write_json(Path(run_dir) / f"evaluation-{device_model}.json", out)
    return out
