"""``pcmsim cost RUN``: the energy, latency and area estimate of a finished hardware run as a
terminal table and a figure (the estimate itself: :mod:`pcmsim.cost`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcmsim.cost import CostProfile, estimate

from .checkpoint import read_json

COMPONENT_LABELS = {"array": "PCM array reads", "dac": "DACs", "adc": "ADCs",
                    "column_overhead": "tile overhead (calibrated)", "partial_sums": "partial sums across tiles",
                    "transfers": "tile <-> digital transfers", "readback": "readbacks (backward, sync)",
                    "programming": "SET/RESET pulses (write rail)", "write_drivers": "write drivers / charge pump",
                    "verify": "verify reads of refreshes (estimated)",
                    "initial_programming": "initial programming (pulses, reads)",
                    "digital": "digital (backward, optimiser)", "neurons": "neuron updates (digital)",
                    "sram": "SRAM (training and BPTT state)", "dram": "DRAM (training and BPTT state)"}
BASELINES = {"gpu": "dense FP32 GPU", "cpu": "dense FP32 CPU", "snn": "event-driven SNN accel."}


def run_estimate(run: str | Path, profile: CostProfile) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(results, estimate)`` of the run folder ``run`` (or of the ``hil`` part of a reproduction)."""
    path = Path(run)
    if (path / "hil" / "results.json").is_file():  # a reproduction: its hardware part
        path = path / "hil"
    results = read_json(path / "results.json", "run results")
    counts = results.get("hardware_counts")
    if not isinstance(counts, dict):
        raise ValueError(f"{path / 'results.json'} has no hardware_counts: not a pcm run, or written before "
                         "pcmsim counted energy (rerun it)")
    if counts.get("eval_sequences") is None and all(isinstance(results.get(k), int) for k in ("n_valid", "n_test")):
        # written before the counts named it: every epoch evaluates the valid and test splits
        counts = {**counts, "eval_sequences": int(results["epochs"]) * (results["n_valid"] + results["n_test"])}
    return results, estimate(counts, profile)


def _j(x: float | None) -> str:
    if x is None:
        return "—"
    for unit, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(x) >= f or unit == "pJ":
            return f"{x / f:.3g} {unit}"
    return f"{x:.3g} J"


def _s(x: float | None) -> str:
    if x is None:
        return "—"
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(x) >= f or unit == "ns":
            return f"{x / f:.3g} {unit}"
    return f"{x:.3g} s"


def _row(label: str, values: list[str]) -> str:
    return f"  {label:<22}" + "".join(f"{v:<16}" for v in values)


def summary_line(est: dict[str, Any]) -> str:
    """Which baseline is closest to the PCM chip, in training and in inference energy, and by how much."""
    c = est["baseline"]["closest"]

    def part(kind: str) -> str:
        name, ratio = c[kind], c[f"{kind}_ratio"]
        if not name:
            return f"{kind}: no baseline"
        how = f"{ratio:.3g}× the PCM chip's energy" if ratio >= 1 else f"{1 / ratio:.3g}× below the PCM chip's energy"
        return f"{kind} step: {BASELINES[name]}, {how}"

    return "closest baseline — " + "; ".join(part(k) for k in ("train", "inference"))


def format_cost_table(results: dict[str, Any], est: dict[str, Any]) -> str:
    """A plain-text table of the estimate."""
    tr, inf, base, area = est["train"], est["inference"], est["baseline"], est["area_mm2"]
    name = results.get("name") or results.get("task", "")
    heads = ["PCM chip", *BASELINES.values()]
    keys = list(BASELINES)
    lines = [f"run               {name} ({results.get('n_devices', 0):,} devices, "
             f"{results.get('epochs')} epochs, {est['train']['steps']:,} optimiser steps); "
             f"cost profile {est['profile']}",
             "                        " + "".join(f"{h:<16}" for h in heads)]
    lines.append("training")
    lines.append(_row("energy / step", [_j(tr["energy_j_per_step"])]
                      + [_j(base[k]["train_energy_j_per_step"]) for k in keys]))
    lines.append(_row("latency / step", [_s(tr["latency_s_per_step"])]
                      + [_s(base[k]["train_latency_s_per_step"]) for k in keys]))
    lines.append(_row("energy total", [_j(tr["energy_j_total"])] + [_j(base[k]["train_energy_j"]) for k in keys]))
    lines.append(_row("latency total", [_s(tr["latency_s_total"])] + [_s(base[k]["train_latency_s"]) for k in keys]))
    lines.append("inference / time step")
    lines.append(_row("energy", [_j(inf["energy_j_per_step_total"])]
                      + [_j(base[k]["inference_energy_j_per_step"]) for k in keys]))
    lines.append(_row("latency", [_s(inf["latency_s_per_step"])]
                      + [_s(base[k]["inference_latency_s_per_step"]) for k in keys]))
    t = inf["tops_per_w"]
    lines.append(f"TOPS/W (inference)    analog core {t['core']:.3g}, with transfers {t['chip']:.3g}, whole system "
                 f"{t['system']:.3g}  (measured: HERMES-Core 10.5, 64-core chip 9.76)")
    lines.append(summary_line(est))
    lines.append("PCM chip, training (whole run; the initial programming, once, is not in the per-step figures):")
    for k, v in tr["energy_j"].items():
        share = v / tr["energy_j_total"] if tr["energy_j_total"] else 0.0
        lines.append(f"    {COMPONENT_LABELS[k]:<38} {_j(v):>10}  {share:6.1%}")
    lines.append("    latency: " + ", ".join(f"{k} {_s(v)}" for k, v in tr["latency_s"].items()))
    rb = tr["readbacks"]
    lines.append(f"    counts: readbacks {rb['backward']:,.0f} backward + {rb['sync']:,.0f} sync, partial-sum adds "
                 f"{tr['partial_sum_adds']:,.0f}, transfers {tr['transfer_bits']:,.0f} bit, "
                 f"{tr['write_devices_per_step'][0]} SET / {tr['write_devices_per_step'][1]} RESET devices per "
                 "programming step and tile")
    lines.append("    memory: " + ", ".join(f"{m['store']} {m['size_bytes'] / 1024:,.1f} KiB in {m['memory'].upper()}"
                                            for m in tr["memory"]))
    lines.append("PCM chip, inference per time step: "
                 + ", ".join(f"{COMPONENT_LABELS[k]} {_j(v)}" for k, v in inf["energy_j_per_step"].items()))
    if inf.get("energy_j_per_sequence") is not None:
        lines.append(f"  per sequence      {_j(inf['energy_j_per_sequence'])}, {_s(inf['latency_s_per_sequence'])} "
                     "(PCM chip; padded steps of a batch included)")
    lines.append(f"area              {area['total']:.4g} mm² (devices {area['array']:.4g} mm², periphery "
                 f"{area['periphery']:.4g} mm²; {area['devices']:,} device sites)")
    lines.append("programming per layer   pulses      SET        RESET      energy     verify     initial")
    for i, ly in enumerate(est["layers"]):
        g, e = ly["programming"], ly["programming_energy_j"]
        shape = "×".join(str(n) for n in ly.get("shape", []))
        lines.append(f"  {i} {shape:<20} {g['pulses']:<11,.0f} {g['set_pulses']:<10,.0f} {g['resets']:<10,.0f} "
                     f"{_j(e['training']):<10} {_j(e['verify']):<10} {_j(e['initial'])}")
    lines.append("  (pulses counted per layer on the devices; the run's RESETs shared out over the layers by pulses)")
    lines.append("baselines on equal terms: one digital cost model at the profile's node for every digital part; "
                 "the SNN accelerator pays per nonzero synaptic event (its latency is not modelled)")
    lines += [f"not included: {x}" for x in est.get("excluded", [])]
    return "\n".join(lines)


def _scaled(values: list[float]) -> tuple[float, str]:
    top = max([abs(v) for v in values] + [0.0])
    for unit, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if top >= f:
            return f, unit
    return 1e-12, "pJ"


def plot_cost(est: dict[str, Any], path: str | Path) -> Path:
    """Two panels, training step and inference time step: the PCM chip's energy stacked by component
    beside the three baselines' bars, in readable units; the legend below the axes. Saved atomically."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from pcmsim.fileio import save_figure

    tab20 = colormaps["tab20"]
    colours = {k: tab20(i if i < 14 else i + 2) for i, k in enumerate(COMPONENT_LABELS)}  # no greys: baselines
    fig = Figure(figsize=(10, 5.2))
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    base = est["baseline"]
    panels = (("training, per optimiser step", est["train"]["energy_j"], est["train"]["energy_j_per_step"],
               "train_energy_j_per_step"),
              ("inference, per time step", est["inference"]["energy_j_per_step"],
               est["inference"]["energy_j_per_step_total"], "inference_energy_j_per_step"))
    handles: dict[str, Any] = {}
    for ax, (title, comps, total, key) in zip(axes, panels):
        comps = {k: v for k, v in comps.items() if k != "initial_programming"}
        scale = sum(comps.values()) / total if total else 1.0  # the training parts are run totals
        values = [total] + [float(base[k][key]) for k in BASELINES]
        f, unit = _scaled(values)
        bottom = 0.0
        for k in COMPONENT_LABELS:
            if k not in comps:
                continue
            v = comps[k] / scale / f if scale else 0.0
            h = ax.bar(0, v, bottom=bottom, color=colours[k], width=0.6)
            handles.setdefault(COMPONENT_LABELS[k], h)
            bottom += v
        for i, k in enumerate(BASELINES, start=1):
            v = float(base[k][key]) / f
            ax.bar(i, v, color="0.6", edgecolor="0.2", width=0.6)
            ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{total / f:.3g}", (0, bottom), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(4), ["PCM chip", "FP32 GPU", "FP32 CPU", "SNN accel."])
        ax.set_ylabel(f"energy ({unit})")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, max(values) / f * 1.15)
    fig.suptitle(f"estimated energy, PCM chip by component and the baselines in grey (profile {est['profile']})",
                 fontsize=10)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, fontsize=7.5, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 0.95))
    return save_figure(fig, path)
