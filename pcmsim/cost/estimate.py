"""Energy, latency and area of a run from the counts it gathered and a :class:`CostProfile`.

The counts (``results.json`` → ``hardware_counts``, gathered by
:mod:`hardware_in_loop.cost_counts`) come from the simulation: per analog layer and phase
(``train``: the forward MVMs of the training batches; ``eval``: the evaluations after every
epoch) the periphery's :class:`~pcmsim.periphery.PeripheryStats`; per layer the programming
pulses its devices received during training and those of the initial transfer, the full-array
readbacks (``backward_reads``: one per training forward call when the backward pass reads the
array, ``backward_weights="read"``; ``sync_reads``: one per optimiser step and one after the
initial transfer, behind :meth:`~pcmsim.analog.AnalogLinear.sync_weight`); for the run the SET
and RESET pulses, pulse rounds and refreshes per optimiser step (``batch_updates``). The model:

- array: ``V_read² · t_read · Σ|x̂|·G_row`` (pulse-width-modulated inputs; a zero input draws
  nothing); DAC: ``FoM_DAC · 2^bits`` per nonzero conversion; ADC: ``FoM_Walden · 2^bits`` per
  conversion (every output column of every tile read, bound-management rereads included);
  column overhead: ``column_overhead_j`` per conversion (the local digital unit, clocking, control
  and leakage, calibrated on HERMES-Core: :mod:`pcmsim.cost.calibration`);
- partial sums: a layer spanning ``n`` input tiles adds ``n − 1`` partial sums per output and row
  in digital (32-bit integer additions);
- transfers between the tiles and the digital side: every input of a tile read as a DAC word
  (``dac_bits + 1`` bits, with the sign) and every conversion as an ADC word (``adc_bits``), at
  ``e_transfer_j_per_bit``; the readbacks' words too;
- readbacks (backward and sync): one row at a time at full scale, every column converted: ``in ·
  out`` conversions with their overhead and transfers, and the array energy of all devices (their
  conductance estimated from the mean conductance per driven row of the layer's reads, exact for
  spike inputs); ``tile_in`` reads in sequence (tiles in parallel);
- programming: a pulse draws ``I · V_write · t`` from the write rail (``programming``), and the
  charge pump that makes the rail loses ``(1/η − 1)`` of it again (``write_drivers``). The schemes
  report a refresh's pulses as ``pulses_set`` (RESETs among them) and its RESETs as
  ``pulses_reset``, so the SET pulses are ``pulses_set − pulses_reset``; per layer the pulses are
  counted on the devices, the run's RESETs shared out in proportion;
- initial transfer (program-and-verify), per layer from its pulses ``P`` and ``N·W`` weight
  pairs: ``2·N·W`` RESETs, ``P − 2·N·W`` SETs and ``P − N·W`` verify reads (one conversion each),
  the write drivers' losses included; the refreshes' verify reads are estimated with the mean
  pulses per device of the layer's initial transfer (the schemes report no reads);
- the digital side: the one digital cost model (:mod:`pcmsim.cost.digital`): FLOPs of the
  backward pass (input and weight gradients ``4·in·out`` per row; ``2·in·out`` when the input
  gradient is the crossbar's transposed read), the optimiser (:data:`OPTIMISER_FLOPS_PER_WEIGHT`),
  the accumulator χ (2 per weight), the neurons (:data:`NEURON_FLOPS_PER_UPDATE` forward, twice
  that backward); its stores: the training state (FP32 weights, gradients, the optimiser's
  moments, χ) and the BPTT state (every layer's inputs and its neurons' two state variables per
  row), placed in SRAM or DRAM by size;
- latency: tiles of a layer in parallel, input vectors and layers in sequence, ``t_read + t_ADC``
  per read; programming: per optimiser step the longer of its pulse rounds in sequence and the
  steps the write drivers' current budget allows (every tile its own budget: ``⌊budget / I⌋``
  devices per step); the initial transfer likewise per layer, the layers in parallel; the digital
  side at ``digital_flops_per_s``.

The baselines price the same network on equal terms with the same digital cost model: a dense
FP32 GPU and CPU (every product computed; the weights read once per batch forward; they differ
only in throughput), and an event-driven digital SNN accelerator that pays ``snn_j_per_synop`` per
nonzero synaptic event (a nonzero input times its fan-out) forward and trains with the same dense
digital backward pass. TOPS/W counts ``2·in·out`` operations per row (the dense-equivalent
operations of the measured chips): the analog core (array, converters, column overhead, partial
sums), the chip (and its transfers) and the system (and its neurons), per inference step.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

from . import digital
from .digital import DigitalWork, Store
from .profile import CostProfile

OPTIMISER_FLOPS_PER_WEIGHT = {"adam": 10, "sgd": 4}
"""FLOPs per weight and step: Adam (two moment updates of 3 FLOPs, square root, division, ε and
the learning rate: ≈10); SGD with momentum (≈4). Our count of the arithmetic, not measurements."""
OPTIMISER_STATE_PER_WEIGHT = {"adam": 2, "sgd": 1}
"""FP32 values of optimiser state per weight (Adam's two moments; SGD's momentum)."""
CHI_FLOPS_PER_WEIGHT = 2  # mixed precision: χ += ΔW, and the comparison with ε
NEURON_FLOPS_PER_UPDATE = 5
"""A leaky integrate-and-fire update: ``v ← β·v + I`` (2), the threshold comparison (1) and the
reset ``v ← v − s·θ`` (2). Our count of the arithmetic; other neuron models differ. The backward
pass through a neuron (surrogate gradient) is taken as twice that."""
NEURON_STATE_PER_OUTPUT = 2  # BPTT keeps a neuron's membrane and output per step
BYTES_PER_VALUE = 4  # FP32
TRAIN_COMPONENTS = ("array", "dac", "adc", "column_overhead", "partial_sums", "transfers", "readback",
                    "programming", "write_drivers", "verify", "initial_programming", "digital", "neurons", "sram",
                    "dram")
INFERENCE_COMPONENTS = ("array", "dac", "adc", "column_overhead", "partial_sums", "transfers", "neurons")
CORE_COMPONENTS = ("array", "dac", "adc", "column_overhead", "partial_sums")
LAYER_COMPONENTS = (*CORE_COMPONENTS, "transfers")
EXCLUDED = (
    "static and leakage power outside the tiles' reads, and control logic outside the tiles (the tiles' own "
    "overhead is the calibrated column overhead)",
    "instruction fetch and control of the programmable digital processors (every platform alike)",
    "neuron state traffic at inference (every platform alike)",
    "the refreshes' verify reads are estimated (the update schemes report no reads), not counted",
    "program-and-verify overshoot RESETs are charged as SET pulses (the device models report pulses, not kinds)",
)


class _Readbacks(TypedDict):
    """A layer's full-array readbacks: one's cost (:func:`readback`) and how many (backward, sync, both)."""

    one: dict[str, float]
    backward: float
    sync: float
    n: float


def _bits(bits: int | None) -> int:
    return 32 if bits is None else int(bits)


def _layer_phase(layer: dict[str, Any], phase: str, p: CostProfile) -> dict[str, float]:
    """Energy (J) by component, latency (s) and counts of one layer's analog reads in one phase."""
    s = layer[phase]
    n_ti, n_to = layer["n_tiles_in"], layer["n_tiles_out"]
    conversions = s["input_vectors"] * layer["out"] + s["bm_rereads"] * layer["tile_out"]
    dac_bits, adc_bits = layer.get("dac_bits"), layer.get("adc_bits")
    rows = s["input_vectors"] / n_ti
    adds = rows * layer["out"] * (n_ti - 1)
    word = _bits(dac_bits) + (dac_bits is not None)  # a DAC word and its sign
    in_bits = (s["input_vectors"] + s["bm_rereads"] / n_to) * layer["tile_in"] * word
    out_bits = conversions * _bits(adc_bits)
    tile_reads = s["input_vectors"] * n_to + s["bm_rereads"]
    first = s["input_vectors"] * n_to / tile_reads if tile_reads else 0.0
    return {
        "array": p.v_read_v**2 * p.t_read_s * s["array_gx_us"] * 1e-6,
        "dac": 0.0 if dac_bits is None else s["dac_nonzero"] * p.dac_fom_j_per_step * 2**dac_bits,
        "adc": 0.0 if adc_bits is None else conversions * p.adc_fom_j_per_step * 2**adc_bits,
        "column_overhead": conversions * p.column_overhead_j,
        "partial_sums": adds * p.e_int32_add_j,
        "transfers": (in_bits + out_bits) * p.e_transfer_j_per_bit,
        "latency_s": (s["input_vectors"] / n_ti + s["bm_rereads"] / (n_ti * n_to)) * p.read_s,
        "rows": rows,
        "partial_sum_adds": adds,
        "transfer_bits": in_bits + out_bits,
        "conversions": conversions,
        "synops": s["dac_nonzero"] * first * layer["out"] / n_to,
        "neuron_updates": rows * layer["out"],
        "ops": 2.0 * layer["in"] * layer["out"] * rows,
    }


def _conversion_j(layer: dict[str, Any], p: CostProfile) -> float:
    """One ADC conversion of the layer's periphery with its column overhead, J."""
    bits = layer.get("adc_bits")
    return (0.0 if bits is None else p.adc_fom_j_per_step * 2**bits) + p.column_overhead_j


def _mean_row_g_us(layer: dict[str, Any]) -> float:
    """Mean conductance of a driven tile row (all its devices), µS: ``Σ|x̂|G_row / nonzero inputs``
    of the layer's reads (eval, else train); exact for spike inputs (|x̂| = 1)."""
    for phase in ("eval", "train"):
        s = layer[phase]
        if s["dac_nonzero"]:
            return s["array_gx_us"] / s["dac_nonzero"]
    return 0.0


def readback(layer: dict[str, Any], p: CostProfile) -> dict[str, float]:
    """One full-array readback of a layer: energy by component (J), latency (s), conversions."""
    conversions = float(layer["in"] * layer["out"])
    g_total_us = _mean_row_g_us(layer) * layer["in"] * layer["n_tiles_out"]
    words = conversions * _bits(layer.get("adc_bits"))
    return {
        "array": p.v_read_v**2 * p.t_read_s * g_total_us * 1e-6,
        "adc": conversions * (_conversion_j(layer, p) - p.column_overhead_j),
        "column_overhead": conversions * p.column_overhead_j,
        "transfers": words * p.e_transfer_j_per_bit,
        "latency_s": layer["tile_in"] * p.read_s,
        "conversions": conversions,
    }


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


def devices_per_step(p: CostProfile) -> tuple[int, int]:
    """SET and RESET pulses one tile's write drivers deliver at once (at least one)."""
    return (max(1, math.floor(p.write_current_budget_a / p.i_set_a + 1e-9)),
            max(1, math.floor(p.write_current_budget_a / p.i_reset_a + 1e-9)))


def _pulse_time(sets: float, resets: float, tiles: int, p: CostProfile) -> float:
    """The time the write drivers of ``tiles`` tiles need for ``sets`` SET and ``resets`` RESET pulses, s."""
    n_set, n_reset = devices_per_step(p)
    set_steps = math.ceil(sets / (n_set * tiles) - 1e-9)
    return set_steps * p.t_set_s + math.ceil(resets / (n_reset * tiles) - 1e-9) * p.t_reset_s


def programming_latency(counts: dict[str, Any], tiles: int, p: CostProfile) -> float:
    """Training programming time, s: per optimiser step the longer of its pulse rounds in sequence
    (with a RESET step when it refreshed) and the steps the write drivers' budget allows. Counts
    without ``batch_updates`` (older runs) take the run's totals: a lower bound."""
    updates = counts.get("batch_updates")
    if updates is None:
        updates = [[counts["pulses_set"] - counts["pulses_reset"], counts["pulses_reset"], counts["pulse_rounds"],
                    counts["refresh_steps"]]]
    total = 0.0
    for sets, resets, rounds, refreshed in updates:
        serial = rounds * p.t_set_s + refreshed * p.t_reset_s
        total += max(serial, _pulse_time(sets, resets, tiles, p))
    return total


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
    loss = 1.0 / p.write_driver_efficiency - 1.0
    out = []
    for ly, n in zip(layers, pulses):
        share = n / total if total else 0.0
        resets = total_reset * share
        init = initial_programming(ly.get("initial"))
        refresh_reads = total_reset / 2 * share * init["pv_pulses_per_device"]
        conv = _conversion_j(ly, p)
        rail = (n - resets) * p.e_set_cell_j + resets * p.e_reset_cell_j
        init_rail = init["set_pulses"] * p.e_set_cell_j + init["resets"] * p.e_reset_cell_j
        tiles = ly["n_tiles_in"] * ly["n_tiles_out"]
        init_rounds = float((ly.get("initial") or {}).get("rounds", 0))
        init_time = max(init_rounds * (p.t_set_s + p.read_s),
                        _pulse_time(init["set_pulses"], init["resets"], tiles, p)
                        + math.ceil(init["verify_reads"] / max(1, ly["tile_out"] * tiles)) * p.read_s)
        out.append({
            "pulses": n, "set_pulses": n - resets, "resets": resets, "verify_reads": refresh_reads,
            "programming_j": rail, "write_drivers_j": rail * loss,
            "verify_j": refresh_reads * conv,
            "initial_set_pulses": init["set_pulses"], "initial_resets": init["resets"],
            "initial_verify_reads": init["verify_reads"],
            "initial_programming_j": init_rail * (1.0 + loss) + init["verify_reads"] * conv,
            "initial_latency_s": init_time if init["set_pulses"] + init["resets"] else 0.0,
        })
    return out


def _sum(parts: list[dict[str, float]], key: str) -> float:
    return float(sum(d[key] for d in parts))


def _stores(weights: int, state_values: int, rows_per_batch: float, layers: list[dict[str, Any]], batches: int,
            passes: int) -> tuple[Store, ...]:
    """The training state (``state_values`` FP32 values per weight, ``passes`` of the weights'
    bytes moved per optimiser step) and the BPTT state (written forward, read backward)."""
    w_bytes = BYTES_PER_VALUE * weights
    bptt = BYTES_PER_VALUE * rows_per_batch * sum(ly["in"] + NEURON_STATE_PER_OUTPUT * ly["out"] for ly in layers)
    return (Store("training state", state_values * w_bytes, passes * w_bytes * batches),
            Store("BPTT state", bptt, 2.0 * bptt * batches))


def _closest(chip: float, base: dict[str, float]) -> tuple[str, float]:
    """The baseline whose value is nearest the chip's (in ratio), and its ratio to the chip's."""
    valid = {k: v for k, v in base.items() if v > 0}
    if chip <= 0 or not valid:
        return "", 0.0
    name = min(valid, key=lambda k: abs(math.log(valid[k] / chip)))
    return name, valid[name] / chip


def estimate(counts: dict[str, Any], profile: CostProfile) -> dict[str, Any]:
    """The estimate of a run (see the module docstring): energy (J) and latency (s) of training
    (total, per epoch and per optimiser step, by component and per layer) and inference (per time
    step by component, TOPS/W; per sequence where the counts name ``eval_sequences``); the three
    baselines and the closest; the area (mm²); what is left out (``excluded``)."""
    p = profile
    layers = counts["layers"]
    epochs = max(1, int(counts.get("epochs", 1)))
    batches = int(counts["batches"])
    weights = sum(int(ly["in"]) * int(ly["out"]) for ly in layers)
    neurons = sum(int(ly["out"]) for ly in layers)
    optimizer = str(counts.get("optimizer", "adam"))
    opt_flops = OPTIMISER_FLOPS_PER_WEIGHT.get(optimizer, 10)
    opt_state = OPTIMISER_STATE_PER_WEIGHT.get(optimizer, 2)
    tiles = sum(ly["n_tiles_in"] * ly["n_tiles_out"] for ly in layers)

    train_parts = [_layer_phase(ly, "train", p) for ly in layers]
    eval_parts = [_layer_phase(ly, "eval", p) for ly in layers]
    prog = _programming(layers, counts, p)
    reads: list[_Readbacks] = []
    for ly in layers:
        one = readback(ly, p)
        n_back, n_sync = float(ly.get("backward_reads", 0)), float(ly.get("sync_reads", 0))
        reads.append({"one": one, "backward": n_back, "sync": n_sync, "n": n_back + n_sync})
    readback_j = sum(r["n"] * sum(r["one"][k] for k in ("array", "adc", "column_overhead", "transfers")) for r in reads)

    rows = [d["rows"] for d in train_parts]
    fwd_flops = sum(2.0 * ly["in"] * ly["out"] * r for ly, r in zip(layers, rows))
    bwd_dense = 2.0 * fwd_flops
    bwd_chip = sum((2.0 if ly.get("backward_weights") == "transpose" else 4.0) * ly["in"] * ly["out"] * r
                   for ly, r in zip(layers, rows))
    neuron_train_flops = 3.0 * NEURON_FLOPS_PER_UPDATE * _sum(train_parts, "neuron_updates")
    opt_total = float(opt_flops * weights * batches)
    chi_total = float(CHI_FLOPS_PER_WEIGHT * weights * batches)
    rows_per_batch = rows[0] / batches if batches and rows else 0.0
    # the chip: backward read of the (read-back) weights and gradient write (2), the optimiser (Adam:
    # reads w, g, m, v, writes w, m, v: 3 + 2·state), χ read and write (2), the sync's write (1): 12
    # passes for Adam; weights, gradients, moments and χ held
    chip_stores = _stores(weights, 3 + opt_state, rows_per_batch, layers, batches, 8 + 2 * opt_state)
    chip_work = DigitalWork(flops=bwd_chip + opt_total + chi_total, int_adds=_sum(train_parts, "partial_sum_adds"),
                            stores=chip_stores)
    chip_digital = digital.energy_j(chip_work, p)
    partial = _sum(train_parts, "partial_sums")

    train_energy = {k: _sum(train_parts, k) for k in ("array", "dac", "adc", "column_overhead", "transfers")}
    train_energy.update({
        "partial_sums": partial,
        "readback": readback_j,
        "programming": _sum(prog, "programming_j"),
        "write_drivers": _sum(prog, "write_drivers_j"),
        "verify": _sum(prog, "verify_j"),
        "initial_programming": _sum(prog, "initial_programming_j"),
        "digital": chip_digital["arithmetic"] - partial,
        "neurons": neuron_train_flops * p.e_flop_j,
        "sram": chip_digital["sram"],
        "dram": chip_digital["dram"],
    })
    train_energy = {k: train_energy[k] for k in TRAIN_COMPONENTS}
    train_latency = {
        "analog_mvm": _sum(train_parts, "latency_s"),
        "readback": sum(r["n"] * r["one"]["latency_s"] for r in reads),
        "programming": programming_latency(counts, tiles, p),
        "initial_programming": max((d["initial_latency_s"] for d in prog), default=0.0),
        "digital": (chip_work.flops + chip_work.int_adds + neuron_train_flops) / p.digital_flops_per_s,
    }
    e_train = sum(train_energy.values())
    t_train = sum(train_latency.values())
    steps = max(1, batches)

    # inference: per time step (one row of the first layer), from the evaluation's reads
    eval_rows = eval_parts[0]["rows"] if eval_parts else 0.0
    per = (lambda x: x / eval_rows) if eval_rows else (lambda x: 0.0)
    inf_energy = {k: per(_sum(eval_parts, k)) for k in INFERENCE_COMPONENTS if k != "neurons"}
    inf_energy["neurons"] = per(NEURON_FLOPS_PER_UPDATE * _sum(eval_parts, "neuron_updates") * p.e_flop_j)
    inf_energy = {k: inf_energy[k] for k in INFERENCE_COMPONENTS}
    inf_latency = per(_sum(eval_parts, "latency_s"))
    ops = per(_sum(eval_parts, "ops"))
    core = sum(inf_energy[k] for k in CORE_COMPONENTS)
    chip_e = core + inf_energy["transfers"]
    system = sum(inf_energy.values())
    tops = {name: (ops / e / 1e12 if e > 0 else 0.0) for name, e in (("core", core), ("chip", chip_e),
                                                                      ("system", system))}
    n_seq = counts.get("eval_sequences")
    eval_total = sum(_sum(eval_parts, k) for k in INFERENCE_COMPONENTS if k != "neurons")
    eval_total += NEURON_FLOPS_PER_UPDATE * _sum(eval_parts, "neuron_updates") * p.e_flop_j
    seq_energy = eval_total / n_seq if n_seq else None
    seq_latency = _sum(eval_parts, "latency_s") / n_seq if n_seq else None

    # baselines, on equal terms (the same digital cost model)
    # dense: the forward's weight read, then as the chip less χ and the sync: 10 passes for Adam
    dense_stores = _stores(weights, 2 + opt_state, rows_per_batch, layers, batches, 6 + 2 * opt_state)
    dense_work = DigitalWork(flops=fwd_flops + bwd_dense + opt_total + neuron_train_flops, stores=dense_stores)
    dense_e = digital.energy_j(dense_work, p)
    # the SNN accelerator reads its weights forward inside the synaptic operation's energy: 9 passes
    snn_stores = _stores(weights, 2 + opt_state, rows_per_batch, layers, batches, 5 + 2 * opt_state)
    snn_work = DigitalWork(flops=bwd_dense + opt_total + neuron_train_flops, stores=snn_stores)
    snn_digital = digital.energy_j(snn_work, p)
    snn_fwd = _sum(train_parts, "synops") * p.snn_j_per_synop
    step_flops = 2.0 * weights + NEURON_FLOPS_PER_UPDATE * neurons
    w_store = (Store("weights", BYTES_PER_VALUE * weights, BYTES_PER_VALUE * weights),)
    step_memory = sum(digital.memory_j(w_store, p).values())
    synops_step = per(_sum(eval_parts, "synops"))
    base: dict[str, Any] = {
        "flops": {"forward": fwd_flops, "backward": bwd_dense, "optimiser": opt_total, "neurons": neuron_train_flops},
        "memory": digital.placement_report(dense_stores, p),
    }
    for dev, fps in (("gpu", p.gpu_flops_per_s), ("cpu", p.cpu_flops_per_s)):
        base[dev] = {
            "train_energy_j": sum(dense_e.values()), "train_energy_parts_j": dense_e,
            "train_energy_j_per_step": sum(dense_e.values()) / steps,
            "train_latency_s": digital.latency_s(dense_work, fps),
            "train_latency_s_per_step": digital.latency_s(dense_work, fps) / steps,
            "inference_energy_j_per_step": step_flops * p.e_flop_j + step_memory,
            "inference_latency_s_per_step": step_flops / fps,
        }
    snn_train = snn_fwd + sum(snn_digital.values())
    base["snn"] = {
        "train_energy_j": snn_train, "train_energy_parts_j": {"synops": snn_fwd, **snn_digital},
        "train_energy_j_per_step": snn_train / steps, "train_latency_s": None, "train_latency_s_per_step": None,
        "inference_energy_j_per_step": synops_step * p.snn_j_per_synop
        + NEURON_FLOPS_PER_UPDATE * neurons * p.e_flop_j,
        "inference_latency_s_per_step": None, "synops_per_step": synops_step,
        "synops_train": _sum(train_parts, "synops"),
    }
    e_step = (e_train - train_energy["initial_programming"]) / steps
    t_step = (t_train - train_latency["initial_programming"]) / steps
    c_train, r_train = _closest(e_step, {k: base[k]["train_energy_j_per_step"] for k in ("gpu", "cpu", "snn")})
    c_inf, r_inf = _closest(sum(inf_energy.values()),
                            {k: base[k]["inference_energy_j_per_step"] for k in ("gpu", "cpu", "snn")})
    base["closest"] = {"train": c_train, "train_ratio": r_train, "inference": c_inf, "inference_ratio": r_inf}

    cells = devices = 0
    periphery = 0.0
    for ly in layers:  # whole tiles: a padded tile takes its full area
        n_tiles, t_in, t_out = ly["n_tiles_in"] * ly["n_tiles_out"], ly["tile_in"], ly["tile_out"]
        cells += n_tiles * t_in * t_out
        devices += n_tiles * t_in * t_out * 2 * ly["devices_per_sign"]
        periphery += n_tiles * (t_out * p.column_periphery_um2 + t_in * p.row_periphery_um2)
    per_layer = []
    for ly, d, e, g, r in zip(layers, train_parts, eval_parts, prog, reads):
        per_layer.append({
            "shape": [int(ly["in"]), int(ly["out"])],
            "train_energy_j": {k: d[k] for k in LAYER_COMPONENTS},
            "eval_energy_j": {k: e[k] for k in LAYER_COMPONENTS},
            "programming": {k: g[k] for k in ("pulses", "set_pulses", "resets", "verify_reads", "initial_set_pulses",
                                              "initial_resets", "initial_verify_reads")},
            "programming_energy_j": {"training": g["programming_j"] + g["write_drivers_j"], "verify": g["verify_j"],
                                     "initial": g["initial_programming_j"]},
            "readbacks": {"backward": r["backward"], "sync": r["sync"], "conversions_each": r["one"]["conversions"],
                          "energy_j_each": sum(r["one"][k] for k in ("array", "adc", "column_overhead", "transfers"))},
            "partial_sum_adds": d["partial_sum_adds"], "transfer_bits": d["transfer_bits"],
        })
    return {
        "profile": p.name,
        "train": {
            "energy_j": train_energy, "energy_j_total": e_train, "energy_j_per_epoch": e_train / epochs,
            "energy_j_per_step": e_step,
            "latency_s": train_latency, "latency_s_total": t_train, "latency_s_per_epoch": t_train / epochs,
            "latency_s_per_step": t_step, "steps": batches,
            "digital_flops": chip_work.flops, "neuron_flops": neuron_train_flops,
            "set_pulses": _sum(prog, "set_pulses"), "resets": _sum(prog, "resets"),
            "verify_reads_estimated": _sum(prog, "verify_reads"),
            "initial_verify_reads": _sum(prog, "initial_verify_reads"),
            "readbacks": {"backward": sum(r["backward"] for r in reads), "sync": sum(r["sync"] for r in reads)},
            "partial_sum_adds": _sum(train_parts, "partial_sum_adds"),
            "transfer_bits": _sum(train_parts, "transfer_bits")
            + sum(r["n"] * r["one"]["conversions"] * _bits(ly.get("adc_bits")) for r, ly in zip(reads, layers)),
            "write_devices_per_step": list(devices_per_step(p)),
            "memory": digital.placement_report(chip_stores, p),
        },
        "inference": {"energy_j_per_step": inf_energy, "energy_j_per_step_total": system,
                      "latency_s_per_step": inf_latency, "steps_measured": eval_rows, "ops_per_step": ops,
                      "tops_per_w": tops,
                      "energy_j_per_sequence": seq_energy, "latency_s_per_sequence": seq_latency},
        "baseline": base,
        "area_mm2": {"array": devices * p.device_area_um2 * 1e-6, "periphery": periphery * 1e-6,
                     "total": (devices * p.device_area_um2 + periphery) * 1e-6, "unit_cells": cells,
                     "devices": devices},
        "layers": per_layer,
        "excluded": list(EXCLUDED) + ([] if all("sync_reads" in ly for ly in layers) else [
            "the readbacks (backward and sync): not recorded in this run (written before pcmsim counted them)"]),
    }
