"""Plots of a run folder: training curves (HIL vs FP32), conductance histograms of every device at
the start, middle and end of training, pulses per device, and test NLL vs drift time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pcmsim.fileio import save_figure  # noqa: E402

from .checkpoint import CheckpointError, load_checkpoint  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def _metrics(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training_curves(runs: dict[str, Path], out: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(6, 4))
    any_data = False
    for label, run in runs.items():
        rows = _metrics(run)
        if not rows:
            continue
        any_data = True
        metric = "nll" if "train_nll" in rows[0] else "loss"
        split = "valid" if f"valid_{metric}" in rows[0] else "test"
        ep = [r["epoch"] for r in rows]
        (line,) = ax.plot(ep, [r[f"train_{metric}"] for r in rows], "--", label=f"{label} train")
        ax.plot(ep, [r[f"{split}_{metric}"] for r in rows], "-", color=line.get_color(), label=f"{label} {split}")
    if not any_data:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("NLL per time step (nats)" if metric == "nll" else "cross-entropy")
    ax.set_title("Training curves")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, out)


def plot_conductance_snapshots(run: Path, out: Path) -> Path | None:
    snaps = sorted((run / "snapshots").glob("*.pt"), key=lambda p: (p.stem != "start", p.stat().st_mtime))
    if not snaps:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for path in snaps:
        try:
            snap = load_checkpoint(path)
        except CheckpointError:
            continue
        g = torch.cat([t.flatten() for t in snap["g_us"]]).numpy()
        label = f"{snap['tag']} (t={snap['t_s']:.0f} s, {g.size:,} devices)"
        ax.hist(g, bins=100, histtype="step", log=True, label=label)
    ax.set_xlabel("conductance G (µS)")
    ax.set_ylabel("devices")
    ax.set_title("Conductance of all devices during training")
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_pulses_per_device(run: Path, out: Path) -> Path | None:
    snaps = sorted((run / "snapshots").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    if not snaps:
        return None
    snap = load_checkpoint(snaps[-1])
    counts = torch.cat([t.flatten() for t in snap["pulse_count"]]).to(torch.float32).numpy()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(counts, bins=100, log=True)
    ax.set_xlabel("programming pulses per device (SET + RESET)")
    ax.set_ylabel("devices")
    ax.set_title(f"Endurance at {snap['tag']}: max {int(counts.max()):,}, mean {counts.mean():.1f}")
    return _save(fig, out)


def plot_drift(results: dict[str, Any], out: Path) -> Path | None:
    rows = results.get("drift") or []
    if not rows:
        return None
    metric = "nll" if "nll" in rows[0] else "accuracy"
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in dict.fromkeys(r["compensation"] for r in rows):
        pts = [(max(r["delay_s"], 1.0), r[metric]) for r in rows if r["compensation"] == mode]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"compensation: {mode}")
    if results.get("fp32_test_nll") is not None:
        ax.axhline(results["fp32_test_nll"], color="k", ls=":", label="FP32")
    ax.set_xscale("log")
    ax.set_xlabel("time after training (s; 0 plotted at 1 s)")
    ax.set_ylabel("test NLL per time step" if metric == "nll" else "test accuracy")
    ax.set_title("Trained hardware network under drift")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Every plot of one training run folder, into ``run/plots``."""
    run = Path(run_dir)
    plots = run / "plots"
    made = [
        plot_training_curves({run.name: run}, plots / "training_curves.png"),
        plot_conductance_snapshots(run, plots / "conductance_histograms.png"),
        plot_pulses_per_device(run, plots / "pulses_per_device.png"),
    ]
    if (run / "results.json").is_file():
        made.append(plot_drift(json.loads((run / "results.json").read_text()), plots / "nll_vs_drift.png"))
    return [p for p in made if p is not None]


def plot_reproduction(out_dir: str | Path) -> list[Path]:
    """Plots of a reproduction folder (``fp32/`` and ``hil/`` runs), into ``out/plots``."""
    out = Path(out_dir)
    made: list[Path | None] = list(plot_run(out / "hil")) if (out / "hil").is_dir() else []
    runs = {name: out / name for name in ("hil", "fp32") if (out / name).is_dir()}
    made.append(plot_training_curves(runs, out / "plots" / "training_curves_hil_vs_fp32.png"))
    if (out / "results.json").is_file():
        made.append(plot_drift(json.loads((out / "results.json").read_text()), out / "plots" / "nll_vs_drift.png"))
    return [p for p in made if p is not None]


def plot_any(path: str | Path) -> list[Path]:
    p = Path(path)
    if not p.is_dir():
        raise CheckpointError(f"{p}: no run folder there")
    if (p / "hil").is_dir() or (p / "fp32").is_dir():
        return plot_reproduction(p)
    if not (p / "metrics.jsonl").is_file():
        raise CheckpointError(f"{p}: not a run folder (no metrics.jsonl)")
    return plot_run(p)
