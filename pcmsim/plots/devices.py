"""Plots of a device model's physics: programming curve, conductance histograms over time, drift,
read noise and programming accuracy.

``plot_device_model(model, out_dir)`` writes five files for any registered
:class:`~device_models.DeviceModel`. Figures are drawn on matplotlib's Agg canvas (no pyplot, no
display, no global backend change) and written atomically (temporary file, then rename).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from device_models import DeviceModel, DeviceState

from ..fileio import save_figure

#: Delays after programming used by the histogram and read-noise plots, s (label, value).
TIMES_S: tuple[tuple[str, float], ...] = (("1 min", 60.0), ("1 h", 3600.0), ("1 day", 86400.0),
                                         ("1 year", 3.156e7))
FORMATS = ("png", "pdf")
PLOT_NAMES = ("programming_curve", "conductance_histograms", "drift", "read_noise", "programmed_vs_target")


def _save(fig: Figure, path: Path, fmt: str) -> Path:
    """Write ``fig`` to ``path`` atomically (temporary file in the same folder + rename)."""
    return save_figure(fig, path, fmt=fmt)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _is_pulse_level(model: DeviceModel) -> bool:
    """Statistical models (pcm-joshi2020) implement SET only as a stand-in."""
    return model.name != "pcm-joshi2020"


def _note(ax, text: str) -> None:  # noqa: ANN001 - matplotlib Axes
    ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", ha="left", fontsize=8,
            bbox=dict(boxstyle="round", facecolor="lightyellow", alpha=0.9))


def plot_programming_curve(model: DeviceModel, path: Path, *, n_devices: int, seed: int, n_pulses: int = 40,
                           fmt: str = "png", device: str | torch.device | None = None) -> Path:
    """Mean ± std of G (as programmed) versus SET pulse number, from a RESET, over ``n_devices``."""
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    state = model.init_state((n_devices,), device=device, generator=gen)
    mask = torch.ones(n_devices, dtype=torch.bool, device=state.device)
    mean, std, q05, q95 = [], [], [], []

    def record(g: Tensor) -> None:
        mean.append(float(g.mean()))
        std.append(float(g.std()) if g.numel() > 1 else 0.0)
        q = torch.quantile(g.double(), torch.tensor([0.05, 0.95], dtype=torch.float64, device=g.device))
        q05.append(float(q[0]))
        q95.append(float(q[1]))

    record(state.g_us)
    for _ in range(n_pulses):
        model.set_pulse(state, mask, 0.0, gen)
        record(state.g_us)
    n = np.arange(n_pulses + 1)
    m, s = np.array(mean), np.array(std)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.fill_between(n, q05, q95, color="tab:blue", alpha=0.15, label="5–95 %")
    ax.fill_between(n, m - s, m + s, color="tab:blue", alpha=0.3, label="mean ± std")
    ax.plot(n, m, color="tab:blue", marker="o", markersize=3, label="mean")
    ax.axhline(model.g_max_us, color="k", linestyle="--", linewidth=1, label=f"g_max = {model.g_max_us:g} µS")
    ax.set_xlabel("SET pulses after RESET")
    ax.set_ylabel("conductance (µS)")
    ax.set_title(f"{model.name}: programming curve ({n_devices} devices)")
    try:
        eps = model.mean_set_increment_us()
        ax.plot([], [], " ", label=f"ε = mean_set_increment = {eps:.3g} µS")
    except NotImplementedError:
        pass
    if not _is_pulse_level(model):
        _note(ax, "Not a pulse-level model: SET is the documented stand-in\n"
                  "(re-program to G + set_increment_us with programming noise).")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, fmt)


def _programmed(model: DeviceModel, n_devices: int, seed: int, device, levels: int = 0
                ) -> tuple[DeviceState, Tensor, torch.Generator]:
    """A population programmed (the model's own scheme) at t = 0 to random or ``levels`` discrete targets."""
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    state = model.init_state((n_devices,), device=device, generator=gen)
    g_max = model.g_max_us
    if levels:
        lv = torch.linspace(0.2, 0.8, levels, device=state.device) * g_max
        target = lv[torch.arange(n_devices, device=state.device) % levels]
    else:
        target = (0.05 + 0.85 * torch.rand(n_devices, generator=gen, device=state.device)) * g_max
    model.program(state, target, 0.0, gen)
    return state, target, gen


def plot_conductance_histograms(model: DeviceModel, path: Path, *, n_devices: int, seed: int, fmt: str = "png",
                                device: str | torch.device | None = None) -> Path:
    """Reads (drift + read noise) of devices programmed to four levels: one panel per delay after
    programming, each level in its own colour with its target as a dashed line."""
    levels = 4
    state, target, gen = _programmed(model, n_devices, seed, device, levels=levels)
    reads = [(label, _np(model.read(state, t, gen))) for label, t in TIMES_S]
    level_of = _np(torch.arange(n_devices) % levels).astype(int)
    targets = [float(target[k]) for k in range(min(levels, n_devices))]
    lo = min(0.0, min(float(r.min()) for _, r in reads))
    hi = max(model.g_max_us, max(float(r.max()) for _, r in reads)) * 1.02
    edges = np.linspace(lo, hi, 121)
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    fig = Figure(figsize=(6.4, 1.55 * len(reads) + 0.9))
    axes = fig.subplots(len(reads), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, r) in zip(axes, reads):
        for k, g_target in enumerate(targets):
            ax.hist(r[level_of == k], bins=edges, color=colors[k % len(colors)], alpha=0.55, histtype="stepfilled",
                    label=f"target {g_target:.3g} µS")
            ax.axvline(g_target, color=colors[k % len(colors)], linestyle="--", linewidth=0.9)
        ax.set_ylabel("devices")
        ax.text(0.99, 0.92, f"t − t_prog = {label}", transform=ax.transAxes, ha="right", va="top", fontsize=9)
    axes[0].legend(fontsize=7, loc="upper left", ncol=2)
    axes[-1].set_xlabel("conductance read (µS)")
    axes[0].set_title(f"{model.name}: programmed to {levels} levels (dashed), read later")
    fig.tight_layout()
    return _save(fig, path, fmt)


def plot_drift(model: DeviceModel, path: Path, *, n_devices: int, seed: int, fmt: str = "png",
               device: str | torch.device | None = None) -> Path:
    """G(t)/G(t_ref) on log axes (median and 5–95 % band, noise-free) and the distribution of ν."""
    state, _, _ = _programmed(model, n_devices, seed, device)
    t = np.logspace(0, math.log10(3.156e8), 60)
    t_ref = 1.0
    g_ref = model.drifted(state, t_ref).clamp(min=1e-12)
    keep = g_ref > 1e-6
    ratios = np.stack([_np((model.drifted(state, float(ti)) / g_ref)[keep]) for ti in t])
    fig = Figure(figsize=(9.6, 4.0))
    ax = fig.add_subplot(1, 2, 1)
    if ratios.shape[1]:
        med = np.median(ratios, axis=1)
        q05, q95 = np.quantile(ratios, 0.05, axis=1), np.quantile(ratios, 0.95, axis=1)
        ax.fill_between(t, q05, q95, alpha=0.3, color="tab:red", label="5–95 %")
        ax.plot(t, med, color="tab:red", label="median")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time since programming (s)")
    ax.set_ylabel(f"G(t) / G({t_ref:g} s)")
    ax.set_title(f"{model.name}: drift (noise-free)")
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    nu = _np(state.nu)
    if float(np.ptp(nu)) > 0:
        ax2.hist(nu, bins=80, color="tab:red", alpha=0.7, histtype="stepfilled")
    else:
        ax2.axvline(float(nu[0]) if nu.size else 0.0, color="tab:red")
        _note(ax2, f"every device has ν = {float(nu[0]) if nu.size else 0.0:g}")
    ax2.set_xlabel("drift exponent ν")
    ax2.set_ylabel("devices")
    ax2.set_title(f"ν: mean {nu.mean():.4f}, std {nu.std():.4f}")
    fig.tight_layout()
    return _save(fig, path, fmt)


def _binned_band(x: np.ndarray, y: np.ndarray, edges: np.ndarray, min_count: int = 20
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per bin of ``x`` with at least ``min_count`` points: the mean x, and y's median, 5 % and 95 %."""
    idx = np.digitize(x, edges)
    rows = [(x[sel].mean(), *np.quantile(y[sel], (0.5, 0.05, 0.95)))
            for b in range(1, len(edges)) if (sel := idx == b).sum() >= min_count]
    if not rows:
        return (np.empty(0),) * 4
    return tuple(np.asarray(col) for col in zip(*rows))  # type: ignore[return-value]


def plot_read_noise(model: DeviceModel, path: Path, *, n_devices: int, seed: int, fmt: str = "png",
                    device: str | torch.device | None = None) -> Path:
    """σ of one read versus G(t): the model's law as a band (median and 5–95 % of the devices' σ in
    bins of G(t); σ also depends on what each device was programmed to, so it is no single curve)
    and the std measured from pairs of repeated reads per bin."""
    state, _, gen = _programmed(model, n_devices, seed, device)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    bins = np.linspace(0.0, model.g_max_us, 25)
    fine = np.linspace(0.0, model.g_max_us, 61)
    for (label, t), color in zip(TIMES_S[:3:2], ("tab:blue", "tab:green")):
        g = model.drifted(state, t)
        sigma = model.read_noise_std(state, t, g)
        r1, r2 = model.read(state, t, gen), model.read(state, t, gen)
        gn, dn = _np(g), _np(r1 - r2) / math.sqrt(2.0)
        gx, med, q05, q95 = _binned_band(gn, _np(sigma), fine)
        ax.fill_between(gx, q05, q95, color=color, alpha=0.2, linewidth=0)
        ax.plot(gx, med, color=color, linewidth=1.5, label=f"law, t = {label} (median, 5–95 %)")
        idx = np.digitize(gn, bins)
        xs, ys = [], []
        for b in range(1, len(bins)):
            sel = idx == b
            if sel.sum() >= 20:
                xs.append(gn[sel].mean())
                ys.append(dn[sel].std())
        ax.plot(xs, ys, "o", color=color, markersize=4, markeredgecolor="white", markeredgewidth=0.5,
                label=f"measured, t = {label}")
    ax.set_xlabel("G(t) (µS)")
    ax.set_ylabel("read-noise σ (µS)")
    ax.set_title(f"{model.name}: read noise")
    ax.set_ylim(bottom=0.0)
    if float(state.g_us.numel()) and not torch.any(model.read_noise_std(state, 3600.0) > 0):
        _note(ax, "this model has no device read noise (σ = 0)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, fmt)


def plot_programmed_vs_target(model: DeviceModel, path: Path, *, n_devices: int, seed: int, fmt: str = "png",
                              device: str | torch.device | None = None) -> Path:
    """Programmed conductance (noise-free, at the programming time) versus target."""
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    state = model.init_state((n_devices,), device=device, generator=gen)
    target = (0.05 + 0.85 * torch.rand(n_devices, generator=gen, device=state.device)) * model.g_max_us
    rep = model.program(state, target, 0.0, gen)
    g = model.drifted(state, 0.0)
    k = min(n_devices, 20_000)
    fig = Figure(figsize=(5.6, 5.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(_np(target[:k]), _np(g[:k]), s=2, alpha=0.4, color="tab:blue", label="devices")
    lim = [0.0, model.g_max_us * 1.05]
    ax.plot(lim, lim, "k--", linewidth=1, label="G = target")
    conv = float(rep.converged.float().mean())
    rms = float(rep.error_us.pow(2).mean().sqrt())
    ax.set_xlabel("target (µS)")
    ax.set_ylabel("programmed G (µS)")
    ax.set_title(f"{model.name}: programming accuracy")
    _note(ax, f"rms error {rms:.3g} µS\nwithin tolerance {100 * conv:.1f} %\n"
              f"mean pulses {float(rep.pulses.float().mean()):.1f}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, fmt)


def plot_device_model(model: DeviceModel, out_dir: str | os.PathLike, *, n_devices: int = 10_000, seed: int = 0,
                      fmt: str = "png", device: str | torch.device | None = None,
                      stem: str | None = None) -> list[Path]:
    """Write the five plots of ``model`` into ``out_dir`` (created) and return their paths, named
    ``STEM_plot.FMT`` with ``stem`` (default: the model's name)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is invalid: expected one of {', '.join(FORMATS)}")
    if n_devices < 2:
        raise ValueError(f"n_devices={n_devices} is invalid: expected an integer ≥ 2")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or model.name
    fns = (plot_programming_curve, plot_conductance_histograms, plot_drift, plot_read_noise,
           plot_programmed_vs_target)
    return [fn(model, out / f"{stem}_{name}.{fmt}", n_devices=n_devices, seed=seed, fmt=fmt, device=device)
            for fn, name in zip(fns, PLOT_NAMES)]
