"""Energy, latency and area of a run from the counts it gathered and a :class:`CostProfile`.

The counts (``results.json`` → ``hardware_counts``, gathered by
:mod:`hardware_in_loop.cost_counts`) come from the simulation: per analog layer and phase
(``train``: the forward MVMs of the training batches; ``eval``: the evaluations after every
epoch) the periphery's :class:`~pcmsim.periphery.PeripheryStats`, and for the run the SET and
RESET pulses, the pulse rounds, the refresh steps and the optimiser steps. The model:

- array: ``V_read² · t_read · Σ|x̂|·G_row`` (pulse-width-modulated inputs; a zero input draws
  nothing; the noise-free drifted conductance of every device on a driven row);
- DAC: ``FoM_DAC · 2^bits`` per nonzero DAC conversion (zero inputs cost nothing);
- ADC: ``FoM_Walden · 2^bits`` per conversion: every output column of every tile read
  (``input_vectors · out``) plus the columns of bound-management rereads;
- programming: ``E_SET`` per SET pulse, ``E_RESET`` per RESET;
- digital side of the chip (backward pass, optimiser, χ accumulator): FLOPs at half an FP32
  multiply-accumulate each; DRAM: the traffic of the weights' digital copies (below);
- latency: tiles of a layer run in parallel, input vectors and layers one after another, one
  read and conversion (``t_read + t_ADC``) per vector; all devices of a pulse round are pulsed in
  parallel (``t_SET`` per round; ``t_RESET`` per step with a refresh); digital work at the
  host's peak throughput.

Workload constants (not hardware, so not in the profile): a row (one input vector of one time
step) costs ``2·in·out`` FLOPs forward and ``4·in·out`` backward (input and weight gradients);
an optimiser step costs :data:`OPTIMISER_FLOPS_PER_WEIGHT` FLOPs per weight, the mixed-precision
accumulator χ ``2``; the weights travel to and from DRAM ``10×`` per optimiser step on the
digital baseline (forward read, backward read, gradient write, the optimiser's reads of weight,
gradient and two moments and writes of weight and moments) and ``9×`` on the chip's digital side
(no forward read). Left out: the neurons' own state updates (digital on both sides), on-chip
data movement between tiles, verify reads of program-and-verify, static and leakage power, and
control logic.
"""

from __future__ import annotations

from typing import Any

from .profile import CostProfile

OPTIMISER_FLOPS_PER_WEIGHT = {"adam": 10, "sgd": 4}
"""FLOPs per weight and step: Adam (two moment updates of 3 FLOPs, square root, division, ε and
the learning rate: ≈10); SGD with momentum (≈4). Estimates of the arithmetic, not measurements."""
CHI_FLOPS_PER_WEIGHT = 2  # mixed precision: χ += ΔW, and the comparison with ε
DRAM_PASSES_BASELINE = 10
DRAM_PASSES_CHIP = 9
BYTES_PER_WEIGHT = 4  # FP32
COMPONENTS = ("array", "dac", "adc", "programming", "digital", "dram")


def _layer_phase(layer: dict[str, Any], phase: str, p: CostProfile) -> dict[str, float]:
    """Energy (J) by component and latency (s) of one layer's analog reads in one phase."""
    s = layer[phase]
    n_ti, n_to = layer["n_tiles_in"], layer["n_tiles_out"]
    conversions = s["input_vectors"] * layer["out"] + s["bm_rereads"] * layer["tile_out"]
    dac_bits, adc_bits = layer.get("dac_bits"), layer.get("adc_bits")
    vector_reads = s["input_vectors"] / n_ti + s["bm_rereads"] / (n_ti * n_to)
    return {
        "array": p.v_read_v**2 * p.t_read_s * s["array_gx_us"] * 1e-6,
        "dac": 0.0 if dac_bits is None else s["dac_nonzero"] * p.dac_fom_j_per_step * 2**dac_bits,
        "adc": 0.0 if adc_bits is None else conversions * p.adc_fom_j_per_step * 2**adc_bits,
        "latency_s": vector_reads * (p.t_read_s + p.adc_time_s),
        "rows": s["input_vectors"] / n_ti,
    }


def _sum(parts: list[dict[str, float]], key: str) -> float:
    return float(sum(d[key] for d in parts))


def estimate(counts: dict[str, Any], profile: CostProfile) -> dict[str, Any]:
    """The estimate of a run (see the module docstring): energy (J) and latency (s) of training
    (total and per epoch) and inference (per time step by component; per sequence where the
    counts name ``eval_sequences``: the evaluated sequences, padded steps of a batch included);
    the digital baseline on a CPU and a GPU; the area (mm²)."""
    p = profile
    layers = counts["layers"]
    epochs = max(1, int(counts.get("epochs", 1)))
    batches = int(counts["batches"])
    weights = sum(int(ly["in"]) * int(ly["out"]) for ly in layers)
    opt_flops = OPTIMISER_FLOPS_PER_WEIGHT.get(str(counts.get("optimizer", "adam")), 10)

    train_parts = [_layer_phase(ly, "train", p) for ly in layers]
    eval_parts = [_layer_phase(ly, "eval", p) for ly in layers]
    train_rows = [d["rows"] for d in train_parts]
    fwd_flops = sum(2.0 * ly["in"] * ly["out"] * r for ly, r in zip(layers, train_rows))
    bwd_flops = 2.0 * fwd_flops
    opt_total = float(opt_flops * weights * batches)
    chip_digital_flops = bwd_flops + opt_total + CHI_FLOPS_PER_WEIGHT * weights * batches
    dram = lambda passes: passes * BYTES_PER_WEIGHT * weights * batches / 8 * p.e_dram_64b_j  # noqa: E731

    train_energy = {
        "array": _sum(train_parts, "array"),
        "dac": _sum(train_parts, "dac"),
        "adc": _sum(train_parts, "adc"),
        "programming": counts["pulses_set"] * p.e_set_j + counts["pulses_reset"] * p.e_reset_j,
        "digital": chip_digital_flops * p.e_flop_j,
        "dram": dram(DRAM_PASSES_CHIP),
    }
    train_latency = {
        "analog_mvm": _sum(train_parts, "latency_s"),
        "programming": counts["pulse_rounds"] * p.t_set_s + counts["refresh_steps"] * p.t_reset_s,
        "digital": chip_digital_flops / p.host_flops_per_s,
    }
    e_train = sum(train_energy.values())
    t_train = sum(train_latency.values())

    eval_rows = eval_parts[0]["rows"] if eval_parts else 0.0
    per = (lambda x: x / eval_rows) if eval_rows else (lambda x: 0.0)
    inf_energy = {k: per(_sum(eval_parts, k)) for k in ("array", "dac", "adc")}
    inf_latency = per(_sum(eval_parts, "latency_s"))
    n_seq = counts.get("eval_sequences")
    seq_energy = sum(_sum(eval_parts, k) for k in ("array", "dac", "adc")) / n_seq if n_seq else None
    seq_latency = _sum(eval_parts, "latency_s") / n_seq if n_seq else None

    base_train_flops = fwd_flops + bwd_flops + opt_total
    base: dict[str, Any] = {"flops": {"forward": fwd_flops, "backward": bwd_flops, "optimiser": opt_total},
                            "dram_j": dram(DRAM_PASSES_BASELINE)}
    for dev, jpf, fps in (("cpu", p.cpu_j_per_flop, p.cpu_flops_per_s), ("gpu", p.gpu_j_per_flop, p.gpu_flops_per_s)):
        base[dev] = {
            "train_energy_j": base_train_flops * jpf + base["dram_j"],
            "train_latency_s": base_train_flops / fps,
            "inference_energy_j_per_step": 2.0 * weights * jpf,
            "inference_latency_s_per_step": 2.0 * weights / fps,
        }

    cells = devices = 0
    periphery = 0.0
    for ly in layers:  # whole tiles: a padded tile takes its full area
        n_tiles, t_in, t_out = ly["n_tiles_in"] * ly["n_tiles_out"], ly["tile_in"], ly["tile_out"]
        cells += n_tiles * t_in * t_out
        devices += n_tiles * t_in * t_out * 2 * ly["devices_per_sign"]
        periphery += n_tiles * (t_out * p.column_periphery_um2 + t_in * p.row_periphery_um2)
    return {
        "profile": p.name,
        "train": {
            "energy_j": train_energy, "energy_j_total": e_train, "energy_j_per_epoch": e_train / epochs,
            "latency_s": train_latency, "latency_s_total": t_train, "latency_s_per_epoch": t_train / epochs,
            "digital_flops": chip_digital_flops,
        },
        "inference": {"energy_j_per_step": inf_energy, "energy_j_per_step_total": sum(inf_energy.values()),
                      "latency_s_per_step": inf_latency, "steps_measured": eval_rows,
                      "energy_j_per_sequence": seq_energy, "latency_s_per_sequence": seq_latency},
        "baseline": base,
        "area_mm2": {"array": devices * p.device_area_um2 * 1e-6, "periphery": periphery * 1e-6,
                     "total": (devices * p.device_area_um2 + periphery) * 1e-6, "unit_cells": cells,
                     "devices": devices},
        "layers": [{"train_energy_j": {k: d[k] for k in ("array", "dac", "adc")},
                    "eval_energy_j": {k: e[k] for k in ("array", "dac", "adc")}}
                   for d, e in zip(train_parts, eval_parts)],
    }
