"""Inference on PCM after software training: program a trained FP32 run onto crossbars of a device
model (``pcm-joshi2020`` by default, Joshi et al., Nat. Commun. 11, 2473, 2020) and measure how its
metrics age under drift, with and without drift compensation.

The one way to put trained weights on devices is :func:`pcmsim.convert`: the run's network is
converted as any user's model is (its neurons, biases, thresholds and decays stay digital), every
weight matrix programmed once onto differential pairs with the device model's programming
(programming noise for the statistical model, program-and-verify for pulse-level ones), the weight
scale chosen per crossbar so that ``max|W|`` lands at G_max; :func:`pcmsim.evaluate_over_drift`
then reads it at each delay.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from device_models import DeviceParams
from pcmsim.conversion import ConversionReport, Converted, convert
from pcmsim.crossbar import CrossbarConfig
from pcmsim.drift import evaluate_over_drift

from .checkpoint import read_json, write_json
from .config import ConfigError, parse_duration_s
from .evaluate import load_trainer
from .seeds import Stream, derive_seed
from .trainer import Trainer

SOFTWARE_FLAVOURS = ("fp32", "hwa")
"""Flavours trained in software whose weights are programmed once afterwards."""


def program_model_once(trainer: Trainer, device_model: str, *,
                       device_params: DeviceParams | Mapping[str, Any] | None = None,
                       crossbar: CrossbarConfig | Mapping[str, Any] | None = None,
                       seed: int | None = None) -> Converted:
    """The trainer's software network (flavour ``fp32`` or ``hwa``) converted onto ``device_model`` crossbars at
    the run's start time ``clock.t_start_s`` (s): every weight programmed once (:func:`pcmsim.convert`) onto
    ``crossbar`` (its ``weight_scale`` ``auto`` unless set); seeded from ``seed`` (default: the run's)."""
    config = trainer.config
    if config.flavour not in SOFTWARE_FLAVOURS:
        raise ConfigError(f"{trainer.out_dir}: flavour {config.flavour!r}; programming a run onto devices needs "
                          f"a software run ({' or '.join(SOFTWARE_FLAVOURS)})")
    run_seed = config.seed if seed is None else seed
    return convert(trainer.model, device_model, crossbar,
                   device_params=device_params, seed=derive_seed(run_seed, Stream.DEVICES),
                   t_s=config.clock.t_start_s)


def program_run_onto_devices(run_dir: str | Path, device_model: str = "pcm-joshi2020", *,
                             device_params: DeviceParams | Mapping[str, Any] | None = None,
                             crossbar: CrossbarConfig | Mapping[str, Any] | None = None,
                             seed: int | None = None) -> tuple[Trainer, nn.Module, ConversionReport]:
    """The software run (``fp32`` or ``hwa``) in ``run_dir`` (its trainer), its network converted onto
    ``device_model`` crossbars at the run's start time ``clock.t_start_s`` (s), and the conversion report.

    The crossbars are seeded from ``seed`` (default: the run's) through :func:`pcmsim.convert`.
    """
    software = load_trainer(Path(run_dir))
    converted = program_model_once(software, device_model, device_params=device_params, crossbar=crossbar,
                                   seed=seed)
    return software, converted.model, converted.report


def programming_summary(report: ConversionReport) -> dict[str, Any]:
    """Per weight matrix: the programming error, clipped targets, scale and pulses of one programming."""
    return {f"{layer.name}.weight": {"rms_error": layer.program.rms_error,
                                     "max_abs_error": layer.program.max_abs_error,
                                     "n_clipped": layer.program.n_clipped,
                                     "w_per_us": float(layer.program.w_per_us.max()),
                                     "pulses": layer.program.total_pulses}
            for layer in report.layers}


def evaluate_once_programmed(trainer: Trainer, split: str) -> dict[str, Any]:
    """``program_once``: the trainer's software network programmed once onto its run's ``device_model`` and
    evaluated at ``drift_times`` × ``compensations``: ``{"drift": rows, "programming": …,
    "programming_pulses": …, "n_devices": …}`` for ``results.json``."""
    cfg = trainer.config
    converted = program_model_once(trainer, cfg.device_model, device_params=cfg.device_params,
                                   crossbar=cfg.crossbar)
    model = converted.model
    model.eval()

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        return trainer.task.evaluate(model, split)

    rows = evaluate_over_drift(model, evaluate, cfg.drift_times_s(), list(cfg.compensations),
                               t_end_s=cfg.clock.t_start_s)
    programming = programming_summary(converted.report)
    return {"drift": rows, "programming": programming, "device_model": cfg.device_model,
            "n_devices": converted.report.n_devices,
            "programming_pulses": sum(int(p["pulses"]) for p in programming.values()),
            "programming_energy_j": programming_energy_j(model, cfg.optimizer)}


def programming_energy_j(model: nn.Module, optimizer: str) -> float:
    """The energy of programming ``model``'s analog layers once (their last programming: pulses and verify
    reads), J, by the cost model of a run's initial transfer (:func:`pcmsim.cost.estimate`, default profile)."""
    from pcmsim.analog import analog_layers
    from pcmsim.cost import DEFAULT_PROFILE, estimate

    from .cost_counts import RunCounts

    counts = RunCounts(analog_layers(model)).summary(pulses_set=0, pulses_reset=0, epochs=1, optimizer=optimizer)
    return float(estimate(counts, DEFAULT_PROFILE)["train"]["energy_j"]["initial_programming"])


def evaluate_programmed_run(run_dir: str | Path, device_model: str, times: list[str], modes: list[str],
                            split: str = "test", **kwargs: Any) -> dict[str, Any]:
    """Program the software run (``fp32`` or ``hwa``) onto ``device_model`` crossbars and evaluate over drift;
    the table is written to ``evaluation-<model>.json`` in the run folder."""
    labelled = [(t.strip(), parse_duration_s(t.strip())) for t in times if t.strip()]
    software, model, report = program_run_onto_devices(run_dir, device_model, **kwargs)
    if split not in software.task.splits():
        raise ConfigError(f"{run_dir}: split {split!r} is invalid: expected one of "
                          f"{', '.join(software.task.splits())}")
    model.eval()

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        return software.task.evaluate(model, split)

    rows = evaluate_over_drift(model, evaluate, labelled, modes, t_end_s=software.config.clock.t_start_s)
    results = read_json(Path(run_dir) / "results.json", "run results")
    programming = programming_summary(report)
    out = {"device_model": device_model, "split": split, "software_nll": results.get("final_test_nll"),
           "software_metrics": {k: v for k, v in results.items() if k.startswith("final_test_")},
           "n_devices": report.n_devices, "programming": programming, "rows": rows}
    write_json(Path(run_dir) / f"evaluation-{device_model}.json", out)
    return out
