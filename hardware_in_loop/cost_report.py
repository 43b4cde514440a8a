"""``pcmsim cost RUN``: the energy, latency and area estimate of a finished hardware run as a
terminal table and a stacked-bar figure (the estimate itself: :mod:`pcmsim.cost`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pcmsim.cost import CostProfile, estimate

from .checkpoint import read_json

COMPONENT_LABELS = {"array": "PCM array reads", "dac": "DACs", "adc": "ADCs", "programming": "SET/RESET pulses",
                    "verify": "verify reads of refreshes (estimated)",
                    "initial_programming": "initial programming (pulses, reads)",
                    "digital": "digital (backward, optimiser)", "neurons": "neuron updates (digital)",
                    "dram": "DRAM (weights' digital copies)"}


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


def _j(x: float) -> str:
    for unit, f in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(x) >= f or unit == "pJ":
            return f"{x / f:.3g} {unit}"
    return f"{x:.3g} J"


def _s(x: float) -> str:
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(x) >= f or unit == "ns":
            return f"{x / f:.3g} {unit}"
    return f"{x:.3g} s"


def format_cost_table(results: dict[str, Any], est: dict[str, Any]) -> str:
    """A plain-text table of the estimate."""
    tr, inf, base, area = est["train"], est["inference"], est["baseline"], est["area_mm2"]
    name = results.get("name") or results.get("task", "")
    lines = [f"run               {name} ({results.get('n_devices', 0):,} devices, "
             f"{results.get('epochs')} epochs); cost profile {est['profile']}",
             "training            PCM chip        CPU baseline    GPU baseline"]
    lines.append(f"  energy total      {_j(tr['energy_j_total']):<15} {_j(base['cpu']['train_energy_j']):<15} "
                 f"{_j(base['gpu']['train_energy_j'])}")
    e = max(1, int(results.get("epochs") or 1))
    lines.append(f"  energy / epoch    {_j(tr['energy_j_per_epoch']):<15} {_j(base['cpu']['train_energy_j'] / e):<15} "
                 f"{_j(base['gpu']['train_energy_j'] / e)}")
    lines.append(f"  latency total     {_s(tr['latency_s_total']):<15} {_s(base['cpu']['train_latency_s']):<15} "
                 f"{_s(base['gpu']['train_latency_s'])}")
    for k, v in tr["energy_j"].items():
        share = v / tr["energy_j_total"] if tr["energy_j_total"] else 0.0
        lines.append(f"    {COMPONENT_LABELS[k]:<36} {_j(v):>10}  {share:6.1%}")
    lines.append("    latency: " + ", ".join(f"{k} {_s(v)}" for k, v in tr["latency_s"].items()))
    lines.append(f"inference / time step ({inf['steps_measured']:.0f} measured)")
    cpu, gpu = base["cpu"], base["gpu"]
    lines.append(f"  energy            {_j(inf['energy_j_per_step_total']):<15} "
                 f"{_j(cpu['inference_energy_j_per_step']):<15} {_j(gpu['inference_energy_j_per_step'])}")
    lines.append(f"  latency           {_s(inf['latency_s_per_step']):<15} "
                 f"{_s(cpu['inference_latency_s_per_step']):<15} {_s(gpu['inference_latency_s_per_step'])}")
    lines.append("    " + ", ".join(f"{COMPONENT_LABELS[k]} {_j(v)}" for k, v in inf["energy_j_per_step"].items()))
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
    lines += [f"not included: {x}" for x in est.get("excluded", [])]
    return "\n".join(lines)


def plot_cost(est: dict[str, Any], path: str | Path) -> Path:
    """A stacked bar per part (training; inference per time step ×10⁶) by component, saved atomically."""
    from matplotlib.figure import Figure

    from pcmsim.fileio import save_figure

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(1, 1, 1)
    parts = {"training (total)": est["train"]["energy_j"],
             "inference, 10⁶ steps": {k: v * 1e6 for k, v in est["inference"]["energy_j_per_step"].items()}}
    for i, comp in enumerate(parts.values()):
        bottom = 0.0
        for k in COMPONENT_LABELS:
            v = float(comp.get(k, 0.0))
            ax.bar(i, v, bottom=bottom, color=f"C{list(COMPONENT_LABELS).index(k)}",
                   label=COMPONENT_LABELS[k] if i == 0 else None)
            bottom += v
    ax.set_xticks(range(len(parts)), list(parts))
    ax.set_ylabel("energy (J)")
    ax.set_title(f"estimated energy by component (profile {est['profile']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
