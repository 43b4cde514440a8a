"""Named experiments and the run orchestration behind ``pcmsim train`` and ``pcmsim reproduce``.

``jsb-52800`` reproduces the hardware experiment of Woźniak et al., Nat. Mach. Intell. 2, 325
(2020): an 88-150-88 SNU network on JSB Chorales with its 26,400 weights on 52,800 simulated PCM
devices (differential pairs), pulse-level PCM (``pcm-nandakumar2018``), mixed-precision updates,
read noise and drift on; the same network and schedule trained in FP32 as the baseline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from device_models import did_you_mean
from pcmsim.typedconfig import set_path

from .checkpoint import read_json, write_json
from .config import RunConfig
from .log import info
from .tasks import MusicConfig, load_config
from .trainer import Trainer

# The software schedule of the 88-150-88 SNU network (the baseline of issue 2), shared by the
# FP32 baseline and the hardware run so that the two differ only in where the weights live.
JSB_SNU_SCHEDULE: dict[str, Any] = {
    "dataset": "jsb",
    "network": {"layers": [88, 150, 88], "neuron": "snu", "readout": "sigmoid", "decay": 0.8, "threshold": 1.0,
                "train_decay": True},
    "output_bias_init": "marginal",
    "optimizer": "adam",
    "lr": 0.01,
    "lr_decay": 0.95,
    "grad_clip": 5.0,
    "batch_size": 8,
    "epochs": 40,
    "patience": 8,
}

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "jsb-52800": {
        **JSB_SNU_SCHEDULE,
        "flavour": "pcm",
        "device_model": "pcm-nandakumar2018",
        "update_scheme": "mixed-precision",
        # 0.06 weight units per µS: ε ≈ 0.87 µS · 0.06 ≈ 0.052 per SET pulse; a device at the
        # 6 µS refresh threshold holds |W| = 0.36, at G_max = 12 µS |W| = 0.72. Chosen on validation
        # NLL alone, 5 seeds per value (pcmsim sweep configs/sweeps/jsb-52800-weight-scale.json):
        # 9.132 / 8.900 / 8.808 / 8.773 / 8.767 / 8.773 / 8.807 / 8.872 at 0.02 / 0.03 / 0.04 /
        # 0.05 / 0.06 / 0.07 / 0.08 / 0.1 (0.05–0.07 lie within one another's seed spread).
        "crossbar": {"weight_scale": 0.06},
        "snapshot_epochs": [],
    },
}

FIVE_SEED_REFERENCE: dict[str, dict[str, str]] = {
    # `pcmsim sweep configs/sweeps/jsb-headline.json` (seeds 0-4, test NLL mean ± std) on two CPU types
    "jsb-52800": {"AMD EPYC": "HIL 8.917 ± 0.020, FP32 8.807 ± 0.039",
                  "Intel Xeon (AVX-512)": "HIL 8.881 ± 0.023, FP32 8.820 ± 0.030"},
}
"""What one seed of a reproduction is compared with: the five-seed means of the headline sweep. The same
seed repeats bit for bit on one CPU type; another type follows another trajectory within the spread."""

SHIPPED_CONFIGS: dict[str, dict[str, Any]] = {
    # the software baselines of the README's FP32 table: the same schedule run longer (60 epochs,
    # patience 10) so that the single FP32 runs are not cut short by early stopping
    "jsb-snu-fp32": {"name": "JSB Chorales, 88-150-88 SNU, FP32 software baseline", "task": "music",
                     **JSB_SNU_SCHEDULE, "epochs": 60, "patience": 10, "flavour": "fp32"},
    "jsb-ssnu-fp32": {"name": "JSB Chorales, 88-150-88 soft SNU, FP32 software baseline", "task": "music",
                      **JSB_SNU_SCHEDULE, "network": {**JSB_SNU_SCHEDULE["network"], "neuron": "ssnu"},
                      "epochs": 60, "patience": 10, "flavour": "fp32"},
}
"""The shipped configs/<name>.json that derive from a preset: tests/test_configs.py holds each file to
its entry here, so a schedule has one source."""

QUICK_OVERRIDES: dict[str, Any] = {"epochs": 3, "max_train_sequences": 64, "max_eval_sequences": 32, "patience": None}

REPRODUCE_FLAVOURS: tuple[str, ...] = ("pcm", "hwa")
"""What ``pcmsim reproduce --flavour`` runs beside the FP32 baseline: the experiment's hardware-in-the-loop run
(``pcm``), or hardware-aware training programmed once (``hwa``, with the baseline programmed once too)."""

HWA_OVERRIDES: dict[str, Any] = {"flavour": "hwa", "program_once": True, "crossbar.weight_scale": "auto",
                                 "drift_times": ["1h", "1d", "1mo", "1y"]}
"""``--flavour hwa``: the experiment trained hardware-aware on its device model and programmed once with
``max|W|`` at ``G_max``, evaluated over drift (the deployment study's HWA arm, configs/sweeps/deployment-jsb.json);
``--set`` overrides still apply after these (``--set hwa.clip_sigma=2``)."""


def experiment_config(name: str, *, quick: bool = False, flavour: str = "pcm", **overrides: Any) -> MusicConfig:
    """The config of a named experiment (its hardware part of ``flavour``, :data:`REPRODUCE_FLAVOURS`) with CLI
    overrides (``None`` values are ignored)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(sorted(EXPERIMENTS))}"
                         + did_you_mean(name, EXPERIMENTS))
    if flavour not in REPRODUCE_FLAVOURS:
        raise ValueError(f"flavour {flavour!r} is invalid: expected one of {', '.join(REPRODUCE_FLAVOURS)}")
    data = dict(EXPERIMENTS[name])
    if flavour == "hwa":
        for key, value in HWA_OVERRIDES.items():
            data = set_path(data, key, value)
    if quick:
        data.update(QUICK_OVERRIDES)
    for key, value in overrides.items():  # dotted paths (``--set network.layers=[...]``) too
        if value is not None:
            data = set_path(data, key, value)
    epochs = int(data["epochs"])
    data["snapshot_epochs"] = sorted({max(1, epochs // 2), epochs})
    config = load_config(data, source=f"experiment {name}")
    assert isinstance(config, MusicConfig)
    return config


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block (``None``: leave as is), restored afterwards."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_training(config: RunConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 log: Any = None, trainer: Trainer | None = None) -> dict[str, Any]:
    """Train (or resume) one run of any task, evaluate drift for hardware runs, write ``results.json``.

    With ``resume``, the run continues from its checkpoint when there is one (else it starts
    afresh), so a run killed at any moment ends with the same ``results.json``.
    """
    out = Path(out_dir)
    log = log or info("run")
    t0 = time.perf_counter()
    with torch_threads(config.num_threads):
        trainer = trainer or Trainer(config, out, progress=progress, log=log)
        if resume:
            trainer.resume()
        trainer.fit()
        results = trainer.summary()
        if config.flavour == "pcm" and config.drift_times:
            from .drift import evaluate_over_drift

            split = "test" if "test" in trainer.task.splits() else trainer.task.splits()[-1]
            results["drift"] = evaluate_over_drift(trainer, config.drift_times_s(), list(config.compensations),
                                                   split=split)
        elif config.program_once:
            from .inference import evaluate_once_programmed

            split = "test" if "test" in trainer.task.splits() else trainer.task.splits()[-1]
            results.update(evaluate_once_programmed(trainer, split))
    write_json(out / "results.json", results)
    write_json(out / "timing.json", {**trainer.timing(), "wall_time_s": time.perf_counter() - t0})
    try:
        from .plots import plot_run

        plot_run(out)
    except Exception as exc:  # noqa: BLE001 - plotting must never lose a finished run
        log(f"warning: plots of {out} failed: {type(exc).__name__}: {exc}")
    return results


def reproduce(name: str, out_dir: str | Path, *, quick: bool = False, resume: bool = False, baseline: bool = True,
              progress: bool = True, log: Any = None, flavour: str = "pcm", **overrides: Any) -> dict[str, Any]:
    """Run a named experiment: the FP32 baseline (``out/fp32``), then the hardware run (``out/hil``), or with
    ``flavour="hwa"`` hardware-aware training programmed once (``out/hwa``; the baseline is programmed once too).

    ``results.json`` in ``out`` combines both; with ``resume`` each part continues where it stopped
    (a part that never wrote a checkpoint starts afresh), with the config the command was first
    started with.
    """
    out = Path(out_dir)
    log = log or info("reproduce")
    t0 = time.perf_counter()
    config: RunConfig = experiment_config(name, quick=quick, flavour=flavour, **overrides)
    saved_path = out / "experiment.json"
    if resume and saved_path.is_file():
        config = load_config(read_json(saved_path, "experiment config"), source=str(saved_path))
    else:
        write_json(saved_path, config.to_dict())
    fp32: dict[str, Any] | None = None
    if baseline:
        fp32_dir = out / "fp32"
        fp32_cfg = config.replace(flavour="fp32", snapshot_epochs=[])
        if _finished_with(fp32_dir, fp32_cfg):
            log("== FP32 baseline: finished earlier with the same config, reused ==")
            fp32 = read_json(fp32_dir / "results.json")
        else:
            log("== FP32 baseline (same network and schedule) ==")
            fp32 = run_training(fp32_cfg, fp32_dir, resume=resume, progress=progress, log=log)
    hil_dir = out / ("hwa" if config.flavour == "hwa" else "hil")
    if config.flavour == "hwa":
        log(f"== hardware-aware training on {config.device_model}, programmed once ==")
    else:
        log(f"== hardware in the loop: {config.device_model}, {config.update_scheme} ==")
    if resume and _finished_with(hil_dir, config):
        hil = read_json(hil_dir / "results.json")
    else:
        hil = run_training(config, hil_dir, resume=resume, progress=progress, log=log)
    results = _hwa_results(hil, fp32) if config.flavour == "hwa" else {
        **{k: hil[k] for k in ("n_devices", "device_model", "update_scheme", "epochs", "test_nll",
                               "test_frame_accuracy", "final_test_nll", "pulses_set", "pulses_reset", "refreshes",
                               "max_pulses_per_device", "saturated_devices", "simulated_time_s", "best_epoch")},
        "fp32_test_nll": fp32["test_nll"] if fp32 else None,
        "fp32_test_frame_accuracy": fp32["test_frame_accuracy"] if fp32 else None,
        "drift": hil.get("drift", []),
    }
    results = {"experiment": name, "quick": quick, **results, "seed": config.seed}
    write_json(out / "results.json", results)
    timing = {"wall_time_s": time.perf_counter() - t0,
              **{f"{part}_wall_time_s": _wall(out / part) for part in (hil_dir.name, "fp32")}}
    write_json(out / "timing.json", timing)
    try:
        from .plots import plot_reproduction

        plot_reproduction(out)
    except Exception as exc:  # noqa: BLE001
        log(f"warning: plots of {out} failed: {type(exc).__name__}: {exc}")
    return {**results, "timing": timing}


def _hwa_results(hwa: dict[str, Any], fp32: dict[str, Any] | None) -> dict[str, Any]:
    """The headline numbers of ``--flavour hwa``: both networks' software metrics, programming and drift rows."""
    return {"flavour": "hwa",
            **{k: hwa.get(k) for k in ("n_devices", "device_model", "epochs", "test_nll", "test_frame_accuracy",
                                       "final_test_nll", "best_epoch", "programming_pulses", "programming_energy_j")},
            "fp32_test_nll": fp32["test_nll"] if fp32 else None,
            "fp32_test_frame_accuracy": fp32["test_frame_accuracy"] if fp32 else None,
            "drift": hwa.get("drift", []), "fp32_drift": fp32.get("drift", []) if fp32 else []}


def _format_hwa(results: dict[str, Any]) -> str:
    from .drift import format_drift_table

    lines = [f"experiment        {results['experiment']}{' (quick)' if results.get('quick') else ''}, "
             "hardware-aware training programmed once",
             f"devices           {results['n_devices']:,} ({results['device_model']}, programmed once: "
             f"{results['programming_pulses']:,} pulses, {results['programming_energy_j']:.2g} J)",
             f"epochs            {results['epochs']} (best valid at {results['best_epoch']})",
             f"test NLL (HWA)    {results['test_nll']:.3f} in software   "
             f"frame acc {results['test_frame_accuracy']:.3f}"]
    if results.get("fp32_test_nll") is not None:
        lines.append(f"test NLL (FP32)   {results['fp32_test_nll']:.3f} in software")
    lines += ["HWA programmed once:", format_drift_table(results.get("drift", []))]
    if results.get("fp32_drift"):
        lines += ["FP32 programmed once:", format_drift_table(results["fp32_drift"])]
    return "\n".join(lines)


def _wall(run: Path) -> float | None:
    try:
        return float(read_json(run / "timing.json")["train_wall_time_s"])
    except (ValueError, KeyError, TypeError):
        return None


def _finished_with(run_dir: Path, config: RunConfig) -> bool:
    """A finished run (``results.json``) of exactly ``config`` is in ``run_dir``."""
    if not (run_dir / "results.json").is_file() or not (run_dir / "config.json").is_file():
        return False
    try:
        saved = load_config(read_json(run_dir / "config.json"), source=str(run_dir / "config.json"))
    except ValueError:
        return False
    return saved == config


def format_results_table(results: dict[str, Any]) -> str:
    """A plain-text table of a reproduction's headline numbers."""
    if results.get("flavour") == "hwa":
        return _format_hwa(results)
    lines = [
        f"experiment        {results['experiment']}{' (quick)' if results.get('quick') else ''}",
        f"devices           {results['n_devices']:,} ({results['device_model']}, {results['update_scheme']})",
        f"epochs            {results['epochs']} (best valid at {results['best_epoch']})",
        f"test NLL (HIL)    {results['test_nll']:.3f}   frame acc {results['test_frame_accuracy']:.3f}",
    ]
    if results.get("fp32_test_nll") is not None:
        gap = results["test_nll"] - results["fp32_test_nll"]
        lines.append(f"test NLL (FP32)   {results['fp32_test_nll']:.3f}   gap {gap:+.3f}")
    lines += [
        f"SET pulses        {results['pulses_set']:,}   RESETs {results['pulses_reset']:,}   "
        f"refreshes {results['refreshes']:,}   max pulses/device {results['max_pulses_per_device']:,}",
        f"simulated time    {results['simulated_time_s']:.1f} s"
        + (f"   wall time {results['timing']['wall_time_s']:.1f} s" if results.get("timing") else ""),
    ]
    if results.get("drift"):
        from .drift import format_drift_table

        lines.append(format_drift_table(results["drift"]))
    reference = FIVE_SEED_REFERENCE.get(str(results.get("experiment")))
    if reference and not results.get("quick"):
        lines.append("five-seed reference (one seed repeats bit for bit on one CPU type; another type follows "
                     "another trajectory within the seed spread):")
        lines += [f"  {cpu:<22}{numbers}" for cpu, numbers in reference.items()]
    return "\n".join(lines)
