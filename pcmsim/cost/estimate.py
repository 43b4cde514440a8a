"""Energy, latency and area of a run from the counts it gathered and a :class:`CostProfile`.

The counts (``results.json`` → ``hardware_counts``, gathered by
:mod:`hardware_in_loop.cost_counts`) come from the simulation: per analog layer and phase
(``train``: the forward MVMs of the training batches; ``eval``: the evaluations after every
epoch) the periphery's :class:`~pcmsim.periphery.PeripheryStats`; per layer the programming
pulses its devices received during training (SET and RESET together) and those of the initial
transfer of the weights (with the number of weight pairs programmed and the most pulses one
device needed); for the run the SET and RESET pulses the update scheme reported, the pulse rounds,
the refresh steps and the optimiser steps. The model:

- array: ``V_read² · t_read · Σ|x̂|·G_row`` (pulse-width-modulated inputs; a zero input draws
  nothing; the noise-free drifted conductance of every device on a driven row);
- DAC: ``FoM_DAC · 2^bits`` per nonzero DAC conversion (zero inputs cost nothing);
- ADC: ``FoM_Walden · 2^bits`` per conversion: every output column of every tile read
  (``input_vectors · out``) plus the columns of bound-management rereads;
- programming during training: ``E_SET`` per SET pulse, ``E_RESET`` per RESET. The update
  schemes report a refresh's pulses as ``pulses_set`` (every pulse its program-and-verify and the
  RESET of the partner device gave, RESETs included) *and* its RESETs as ``pulses_reset``, so the
  SET pulses are ``pulses_set − pulses_reset``. Per layer the pulses are counted on the devices
  (their pulse counters); the run's RESETs are shared out over the layers in proportion to their
  pulses (the schemes report them summed over the layers);
- the initial transfer of the weights (program-and-verify, :mod:`pcmsim.crossbar.programming`),
  per layer from its pulses ``P`` and its ``N·W`` programmed weight pairs: every device is RESET
  once (the partner of the programmed device, and the programmed one as the first step of its
  loop): ``2·N·W`` RESETs, ``P − 2·N·W`` SET pulses, and a verify read after every pulse of the
  loop: ``P − N·W`` reads. Exact for pulse-level devices when no target is zero and no device
  overshoots its window; an overshoot's RESET is charged as a SET pulse;
- verify reads: one ADC conversion each (a row is read with one input driven; every column
  converts; the device current itself, < 0.1 fJ, is left out). Those of the refreshes during
  training are *estimated* (not counted: the schemes report no reads): a refreshed pair programs
  one device, ``pulses_reset / 2`` per run, with the mean program-and-verify pulses per device of
  the layer's initial transfer;
- neurons (digital on both sides): :data:`NEURON_FLOPS_PER_UPDATE` FLOPs per neuron and time step
  forward (one update per output of every layer and input vector, counted), twice that backward;
- digital side of the chip (backward pass, optimiser, χ accumulator): FLOPs at half an FP32
  multiply-accumulate each; DRAM: the traffic of the weights' digital copies (below);
- latency: tiles of a layer run in parallel, input vectors and layers one after another, one
  read and conversion (``t_read + t_ADC``) per vector; all devices of a pulse round are pulsed in
  parallel (``t_SET`` per round; ``t_RESET`` per step with a refresh); the initial transfer one
  round (pulse, read, conversion) after another, the layers in parallel; digital work at the
  host's peak throughput.

Workload constants (not hardware, so not in the profile): a row (one input vector of one time
step) costs ``2·in·out`` FLOPs forward and ``4·in·out`` backward (input and weight gradients);
an optimiser step costs :data:`OPTIMISER_FLOPS_PER_WEIGHT` FLOPs per weight, the mixed-precision
accumulator χ ``2``; the weights travel to and from DRAM ``10×`` per optimiser step on the
digital baseline (forward read, backward read, gradient write, the optimiser's reads of weight,
gradient and two moments and writes of weight and moments) and ``9×`` on the chip's digital side
(no forward read). Left out (:data:`EXCLUDED`): static and leakage power, control logic and
clocking, on-chip data movement between tiles and to the host.
"""

from __future__ import annotations

from typing import Any

from .profile import CostProfile

OPTIMISER_FLOPS_PER_WEIGHT = {"adam": 10, "sgd": 4}
"""FLOPs per weight and step: Adam (two moment updates of 3 FLOPs, square root, division, ε and
the learning rate: ≈10); SGD with momentum (≈4). Estimates of the arithmetic, not measurements."""
CHI_FLOPS_PER_WEIGHT = 2  # mixed precision: χ += ΔW, and the comparison with ε
NEURON_FLOPS_PER_UPDATE = 5
"""A leaky integrate-and-fire update: ``v ← β·v + I`` (2), the threshold comparison (1) and the
reset ``v ← v − s·θ`` (2). Our count of the arithmetic; other neuron models differ. The backward
pass through a neuron (surrogate gradient) is taken as twice that."""
DRAM_PASSES_BASELINE = 10
DRAM_PASSES_CHIP = 9
BYTES_PER_WEIGHT = 4  # FP32
TRAIN_COMPONENTS = ("array", "dac", "adc", "programming", "verify", "initial_programming", "digital", "neurons",
                    "dram")
INFERENCE_COMPONENTS = ("array", "dac", "adc", "neurons")
EXCLUDED = (
    "static and leakage power of the tiles, converters and digital side (no published breakdown found)",
    "control logic, clocking and on-chip data movement between tiles and to the host",
    "the refreshes' verify reads are estimated (the update schemes report no reads), not counted",
    "program-and-verify overshoot RESETs are charged as SET pulses (the device models report pulses, not kinds)",
)


def _layer_phase(layer: dict[str, Any], phase: str, p: CostProfile) -> dict[str, float]:
    """Energy (J) by component and latency (s) of one layer's analog reads in one phase."""
    s = layer[phase]
    n_ti, n_to = layer["n_tiles_in"], layer["n_tiles_out"]
    conversions = s["input_vectors"] * layer["out"] + s["bm_rereads"] * layer["tile_out"]
    dac_bits, adc_bits = layer.get("dac_bits"), layer.get("adc_bits")
    vector_reads = s["input_vectors"] / n_ti + s["bm_rereads"] / (n_ti * n_to)
    rows = s["input_vectors"] / n_ti
    return {
        "array": p.v_read_v**2 * p.t_read_s * s["array_gx_us"] * 1e-6,
        "dac": 0.0 if dac_bits is None else s["dac_nonzero"] * p.dac_fom_j_per_step * 2**dac_bits,
        "adc": 0.0 if adc_bits is None else conversions * p.adc_fom_j_per_step * 2**adc_bits,
        "latency_s": vector_reads * (p.t_read_s + p.adc_time_s),
        "rows": rows,
        "neuron_updates": rows * layer["out"],
    }


def _conversion_j(layer: dict[str, Any], p: CostProfile) -> float:
    """One ADC conversion of the layer's periphery (0 without ADC bits), J."""
    bits = layer.get("adc_bits")
    return 0.0 if bits is None else p.adc_fom_j_per_step * 2**bits


def initial_programming(init: dict[str, Any] | None) -> dict[str, float]:
    """SET pulses, RESETs and verify reads of a layer's initial transfer from its counts ``init``
    (``pulses``: all pulses; ``weight_pairs``: N·W; see the module docstring), and the mean
    program-and-verify pulses per programmed device."""
    if not init or not init.get("weight_pairs"):
        return {"set_pulses": 0.0, "resets": 0.0, "verify_reads": 0.0, "pv_pulses_per_device": 0.0}
    pulses, pairs = float(init["pulses"]), float(init["weight_pairs"])
    resets = min(pulses, 2.0 * pairs)
    reads = max(pulses - pairs, 0.0)
    return {"set_pulses": pulses - resets, "resets": resets, "verify_reads": reads,
            "pv_pulses_per_device": reads / pairs}


def _programming(layers: list[dict[str, Any]], counts: dict[str, Any], p: CostProfile) -> list[dict[str, float]]:
    """Per layer: training pulses (counted), their SET/RESET split (RESETs shared out), the
    refreshes' estimated verify reads, and the initial transfer; energies in J."""
    total_reset = float(counts["pulses_reset"])
    if all("pulses" in ly for ly in layers):
        pulses = [float(ly["pulses"]) for ly in layers]
    else:  # counts written before the layers' pulses were counted: share by weights
        w = [float(ly["in"] * ly["out"]) for ly in layers]
        pulses = [float(counts["pulses_set"]) * x / sum(w) for x in w]
    total = sum(pulses)
    out = []
    for ly, n in zip(layers, pulses):
        share = n / total if total else 0.0
        resets = total_reset * share
        init = initial_programming(ly.get("initial"))
        refresh_reads = total_reset / 2 * share * init["pv_pulses_per_device"]
        conv = _conversion_j(ly, p)
        out.append({
            "pulses": n, "set_pulses": n - resets, "resets": resets, "verify_reads": refresh_reads,
            "programming_j": (n - resets) * p.e_set_j + resets * p.e_reset_j,
            "verify_j": refresh_reads * conv,
            "initial_set_pulses": init["set_pulses"], "initial_resets": init["resets"],
            "initial_verify_reads": init["verify_reads"],
            "initial_programming_j": (init["set_pulses"] * p.e_set_j + init["resets"] * p.e_reset_j
                                      + init["verify_reads"] * conv),
            "initial_rounds": float((ly.get("initial") or {}).get("rounds", 0)),
        })
    return out


def _sum(parts: list[dict[str, float]], key: str) -> float:
    return float(sum(d[key] for d in parts))


def estimate(counts: dict[str, Any], profile: CostProfile) -> dict[str, Any]:
    """The estimate of a run (see the module docstring): energy (J) and latency (s) of training
    (total and per epoch, by component and per layer) and inference (per time step by component;
    per sequence where the counts name ``eval_sequences``: the evaluated sequences, padded steps
    of a batch included); the digital baseline on a CPU and a GPU; the area (mm²); what is left
    out (``excluded``)."""
    p = profile
    layers = counts["layers"]
    epochs = max(1, int(counts.get("epochs", 1)))
    batches = int(counts["batches"])
    weights = sum(int(ly["in"]) * int(ly["out"]) for ly in layers)
    neurons = sum(int(ly["out"]) for ly in layers)
    opt_flops = OPTIMISER_FLOPS_PER_WEIGHT.get(str(counts.get("optimizer", "adam")), 10)

    train_parts = [_layer_phase(ly, "train", p) for ly in layers]
    eval_parts = [_layer_phase(ly, "eval", p) for ly in layers]
    prog = _programming(layers, counts, p)
    train_rows = [d["rows"] for d in train_parts]
    fwd_flops = sum(2.0 * ly["in"] * ly["out"] * r for ly, r in zip(layers, train_rows))
    bwd_flops = 2.0 * fwd_flops
    neuron_train_flops = 3.0 * NEURON_FLOPS_PER_UPDATE * _sum(train_parts, "neuron_updates")  # forward + backward
    opt_total = float(opt_flops * weights * batches)
    chip_digital_flops = bwd_flops + opt_total + CHI_FLOPS_PER_WEIGHT * weights * batches
    dram = lambda passes: passes * BYTES_PER_WEIGHT * weights * batches / 8 * p.e_dram_64b_j  # noqa: E731

    train_energy = {
        "array": _sum(train_parts, "array"),
        "dac": _sum(train_parts, "dac"),
        "adc": _sum(train_parts, "adc"),
        "programming": _sum(prog, "programming_j"),
        "verify": _sum(prog, "verify_j"),
        "initial_programming": _sum(prog, "initial_programming_j"),
        "digital": chip_digital_flops * p.e_flop_j,
        "neurons": neuron_train_flops * p.e_flop_j,
        "dram": dram(DRAM_PASSES_CHIP),
    }
    round_s = p.t_set_s + p.t_read_s + p.adc_time_s
    train_latency = {
        "analog_mvm": _sum(train_parts, "latency_s"),
        "programming": counts["pulse_rounds"] * p.t_set_s + counts["refresh_steps"] * p.t_reset_s,
        "initial_programming": max((d["initial_rounds"] for d in prog), default=0.0) * round_s,
        "digital": (chip_digital_flops + neuron_train_flops) / p.host_flops_per_s,
    }
    e_train = sum(train_energy.values())
    t_train = sum(train_latency.values())

    eval_rows = eval_parts[0]["rows"] if eval_parts else 0.0
    per = (lambda x: x / eval_rows) if eval_rows else (lambda x: 0.0)
    inf_energy = {k: per(_sum(eval_parts, k)) for k in ("array", "dac", "adc")}
    inf_energy["neurons"] = per(NEURON_FLOPS_PER_UPDATE * _sum(eval_parts, "neuron_updates") * p.e_flop_j)
    inf_latency = per(_sum(eval_parts, "latency_s"))
    n_seq = counts.get("eval_sequences")
    eval_total = sum(_sum(eval_parts, k) for k in ("array", "dac", "adc"))
    eval_total += NEURON_FLOPS_PER_UPDATE * _sum(eval_parts, "neuron_updates") * p.e_flop_j
    seq_energy = eval_total / n_seq if n_seq else None
    seq_latency = _sum(eval_parts, "latency_s") / n_seq if n_seq else None

    base_train_flops = fwd_flops + bwd_flops + opt_total + neuron_train_flops
    base: dict[str, Any] = {"flops": {"forward": fwd_flops, "backward": bwd_flops, "optimiser": opt_total,
                                      "neurons": neuron_train_flops},
                            "dram_j": dram(DRAM_PASSES_BASELINE)}
    step_flops = 2.0 * weights + NEURON_FLOPS_PER_UPDATE * neurons
    for dev, jpf, fps in (("cpu", p.cpu_j_per_flop, p.cpu_flops_per_s), ("gpu", p.gpu_j_per_flop, p.gpu_flops_per_s)):
        base[dev] = {
            "train_energy_j": base_train_flops * jpf + base["dram_j"],
            "train_latency_s": base_train_flops / fps,
            "inference_energy_j_per_step": step_flops * jpf,
            "inference_latency_s_per_step": step_flops / fps,
        }

    cells = devices = 0
    periphery = 0.0
    for ly in layers:  # whole tiles: a padded tile takes its full area
        n_tiles, t_in, t_out = ly["n_tiles_in"] * ly["n_tiles_out"], ly["tile_in"], ly["tile_out"]
        cells += n_tiles * t_in * t_out
        devices += n_tiles * t_in * t_out * 2 * ly["devices_per_sign"]
        periphery += n_tiles * (t_out * p.column_periphery_um2 + t_in * p.row_periphery_um2)
    per_layer = []
    for ly, d, e, g in zip(layers, train_parts, eval_parts, prog):
        per_layer.append({
            "shape": [int(ly["in"]), int(ly["out"])],
            "train_energy_j": {k: d[k] for k in ("array", "dac", "adc")},
            "eval_energy_j": {k: e[k] for k in ("array", "dac", "adc")},
            "programming": {k: g[k] for k in ("pulses", "set_pulses", "resets", "verify_reads", "initial_set_pulses",
                                              "initial_resets", "initial_verify_reads")},
            "programming_energy_j": {"training": g["programming_j"], "verify": g["verify_j"],
                                     "initial": g["initial_programming_j"]},
        })
    return {
        "profile": p.name,
        "train": {
            "energy_j": train_energy, "energy_j_total": e_train, "energy_j_per_epoch": e_train / epochs,
            "latency_s": train_latency, "latency_s_total": t_train, "latency_s_per_epoch": t_train / epochs,
            "digital_flops": chip_digital_flops, "neuron_flops": neuron_train_flops,
            "set_pulses": _sum(prog, "set_pulses"), "resets": _sum(prog, "resets"),
            "verify_reads_estimated": _sum(prog, "verify_reads"),
            "initial_verify_reads": _sum(prog, "initial_verify_reads"),
        },
        "inference": {"energy_j_per_step": inf_energy, "energy_j_per_step_total": sum(inf_energy.values()),
                      "latency_s_per_step": inf_latency, "steps_measured": eval_rows,
                      "energy_j_per_sequence": seq_energy, "latency_s_per_sequence": seq_latency},
        "baseline": base,
        "area_mm2": {"array": devices * p.device_area_um2 * 1e-6, "periphery": periphery * 1e-6,
                     "total": (devices * p.device_area_um2 + periphery) * 1e-6, "unit_cells": cells,
                     "devices": devices},
        "layers": per_layer,
        "excluded": list(EXCLUDED),
    }
