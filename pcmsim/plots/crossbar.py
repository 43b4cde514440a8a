"""Plots of a crossbar's state: conductances, weights vs targets, endurance, saturation.

Figures are drawn on matplotlib's Agg canvas (no pyplot, no display, no global backend change)
and written atomically: to a temporary file in the target folder, then renamed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..crossbar import Crossbar
from ..fileio import save_figure

_MAX_SCATTER = 20_000


def _save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary file + rename)."""
    return save_figure(fig, path, fmt="png")


def _np(t: Tensor):  # noqa: ANN202 - numpy array
    return t.detach().to("cpu", torch.float32).numpy()


def plot_conductance_histograms(crossbar: Crossbar, path: Path, *, t_s: float, bins: int = 60) -> Path:
    """Histograms of G⁺ and G⁻ (every pair) read noise-free at ``t_s``, µS."""
    g = crossbar.conductances(t_s)
    g_max = float(crossbar.model.g_max_us)
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    hi = max(g_max, float(g.max())) * 1.02
    for sign, label, color in ((0, "G⁺", "tab:blue"), (1, "G⁻", "tab:orange")):
        ax.hist(
            _np(g[:, sign]).ravel(),
            bins=bins,
            range=(min(0.0, float(g.min())), hi),
            alpha=0.6,
            label=label,
            color=color,
        )
    ax.axvline(g_max, color="k", linestyle="--", linewidth=1, label=f"g_max = {g_max:g} µS")
    ax.set_xlabel("conductance (µS)")
    ax.set_ylabel("devices")
    ax.set_yscale("log")
    ax.set_title(f"{crossbar.model.name}: conductances at t = {t_s:g} s")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_weights_vs_target(crossbar: Crossbar, target: Tensor, path: Path, *, t_s: float) -> Path:
    """Weights read back (noise-free, at ``t_s``) against the targets."""
    w = crossbar.weights(t_s).reshape(-1)
    tgt = target.detach().to(w.device, w.dtype).reshape(-1)
    if tgt.numel() != w.numel():
        raise ValueError(f"target has {tgt.numel()} entries; expected {w.numel()} ({crossbar.shape})")
    step = max(1, w.numel() // _MAX_SCATTER)
    ws, ts = _np(w[::step]), _np(tgt[::step])
    err = w - tgt
    rms = float(err.pow(2).mean().sqrt())
    fig = Figure(figsize=(5.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(ts, ws, s=3, alpha=0.4, linewidths=0)
    lo, hi = float(min(ts.min(), ws.min())), float(max(ts.max(), ws.max()))
    ax.plot([lo, hi], [lo, hi], color="k", linewidth=1)
    ax.set_xlabel("target weight")
    ax.set_ylabel("weight read back")
    ax.set_title(f"t = {t_s:g} s, rms error {rms:.3g}")
    fig.tight_layout()
    return _save(fig, path)


def plot_pulse_counts(crossbar: Crossbar, path: Path, *, bins: int = 50) -> Path:
    """Histogram of programming pulses per device (endurance)."""
    pc = crossbar.state.pulse_count
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    hi = max(1, int(pc.max()))
    for sign, label, color in ((0, "G⁺", "tab:blue"), (1, "G⁻", "tab:orange")):
        ax.hist(_np(pc[:, sign]).ravel(), bins=bins, range=(0, hi), alpha=0.6, label=label, color=color)
    ax.set_xlabel("pulses per device (SET + RESET)")
    ax.set_ylabel("devices")
    ax.set_yscale("log")
    ax.set_title(f"endurance: max {hi}, mean {float(pc.float().mean()):.1f} pulses")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def saturation_map(crossbar: Crossbar, t_s: float, fraction: float = 0.9) -> Tensor:
    """Per weight, the fraction of its 2N devices above ``fraction · g_max`` at ``t_s``, ``[out, in]``."""
    g = crossbar.conductances(t_s)
    return (g > fraction * float(crossbar.model.g_max_us)).float().mean(dim=(0, 1))


def plot_saturation(crossbar: Crossbar, path: Path, *, t_s: float, fraction: float = 0.9) -> Path:
    """Image of the saturated fraction per weight, with tile boundaries and per-tile fractions."""
    sat = saturation_map(crossbar, t_s, fraction)
    out_f, in_f = crossbar.shape
    rows, cols = crossbar.config.tile_rows, crossbar.config.tile_cols
    fig = Figure(figsize=(7.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(_np(sat), aspect="auto", interpolation="nearest", vmin=0.0, vmax=1.0, cmap="magma")
    fig.colorbar(im, ax=ax, label=f"fraction of devices > {fraction:g}·g_max")
    per_tile = []
    for to in range(crossbar.n_tiles_out):
        for ti in range(crossbar.n_tiles_in):
            block = sat[to * cols : (to + 1) * cols, ti * rows : (ti + 1) * rows]
            per_tile.append(float(block.mean()))
    for ti in range(1, crossbar.n_tiles_in):
        ax.axvline(ti * rows - 0.5, color="c", linewidth=1)
    for to in range(1, crossbar.n_tiles_out):
        ax.axhline(to * cols - 0.5, color="c", linewidth=1)
    ax.set_xlabel(f"input (tile rows: {rows})")
    ax.set_ylabel(f"output (tile columns: {cols})")
    ax.set_title(
        f"saturation at t = {t_s:g} s: {float(sat.mean()):.2%} of devices; worst tile {max(per_tile):.2%}"
    )
    ax.set_xlim(-0.5, in_f - 0.5)
    ax.set_ylim(out_f - 0.5, -0.5)
    fig.tight_layout()
    return _save(fig, path)


def plot_crossbar(
    crossbar: Crossbar, out_dir: str | Path, *, t_s: float, target: Tensor | None = None, prefix: str = ""
) -> list[Path]:
    """Write the plots of ``crossbar``'s state at ``t_s`` into ``out_dir``; returns their paths.

    ``{prefix}conductances.png``, ``{prefix}weights_vs_target.png`` (only with ``target``),
    ``{prefix}pulse_counts.png`` and ``{prefix}saturation.png``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_conductance_histograms(crossbar, out / f"{prefix}conductances.png", t_s=t_s)]
    if target is not None:
        paths.append(
            plot_weights_vs_target(crossbar, target, out / f"{prefix}weights_vs_target.png", t_s=t_s)
        )
    paths.append(plot_pulse_counts(crossbar, out / f"{prefix}pulse_counts.png"))
    paths.append(plot_saturation(crossbar, out / f"{prefix}saturation.png", t_s=t_s))
    return paths
