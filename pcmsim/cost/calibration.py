"""Calibration of the cost model against two measured PCM chips.

- HERMES-Core (Khaddam-Aljameh et al., IEEE JSSC 2022, abstract): one 256×256 core in 14-nm CMOS,
  8-bit MVMs, **10.5 TOPS/W** measured;
- the 64-core chip (Le Gallo et al., Nat. Electron. 6, 680 (2023), abstract): 64 such cores on an
  on-chip network, 8-bit input/output MVMs in one-phase mode, 63.1 TOPS at **9.76 TOPS/W**.

A full-array MVM is built as the counts of one read of one 256×256 layer (:func:`full_array_counts`)
and priced by :func:`pcmsim.cost.estimate`, the same code that prices a run. The conditions of
the published measurements are not given in the abstracts; ours (*our assumption*,
:data:`CONDITIONS`): uniformly distributed signed 8-bit inputs (sign and a 7-bit pulse width,
mean ``|x̂| = 0.5``, none zero), an 8-bit ADC, four PCM devices per weight (HERMES-Core's unit
cell) at a mean 2.5 µS each (a mean ``|w|`` of 0.2 of a 25-µS ``g_max`` (Joshi et al., Nat. Commun.
11, 2473 (2020)) on the two devices of one sign, the other sign's two near 0).

The array, DAC and ADC models explain about a quarter of HERMES-Core's measured energy per MVM
(:func:`modelled_core_j`); the rest (the local digital unit's affine scaling and ReLU, clocking,
control, leakage, and what the CCO-based ADCs cost beyond the survey's median) is the one
calibrated constant, ``column_overhead_j`` (:func:`calibrate_column_overhead_j`), fitted on
HERMES-Core alone. The 64-core chip is then a check with no further fit: the same cores plus the
transfer of every MVM's inputs and outputs over its network (``e_transfer_j_per_bit``, assumed).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .estimate import estimate
from .profile import HERMES_CORE, LEGALLO_64CORE, CostProfile

HERMES_TOPS_PER_W = 10.5
"""HERMES-Core, measured (Khaddam-Aljameh et al., IEEE JSSC 2022, abstract)."""
LEGALLO_TOPS_PER_W = 9.76
"""The 64-core chip, one-phase 8-bit MVMs, measured (Le Gallo et al., Nat. Electron. 2023, abstract)."""

CONDITIONS: dict[str, float] = {"rows": 256, "cols": 256, "devices_per_weight": 4, "dac_bits": 7, "adc_bits": 8,
                                "mean_input": 0.5, "mean_device_g_us": 2.5}
"""The calibration MVM (our assumption, see the module docstring)."""


def full_array_counts(rows: int = 256, cols: int = 256, devices_per_weight: int = 4, dac_bits: int = 7,
                      adc_bits: int = 8, mean_input: float = 0.5, mean_device_g_us: float = 2.5,
                      reads: int = 1) -> dict[str, Any]:
    """The counts of ``reads`` full-array MVMs of one ``rows × cols`` tile (every input nonzero, at
    a mean ``|x̂|``; every device at ``mean_device_g_us``), in the ``eval`` phase."""
    g_row_us = cols * devices_per_weight * mean_device_g_us
    stats = {"mvm_calls": reads, "input_vectors": reads, "outputs": reads * cols, "adc_clipped": 0, "dac_clipped": 0,
             "bm_rereads": 0, "dac_nonzero": reads * rows, "array_gx_us": reads * rows * mean_input * g_row_us}
    zero = {k: 0 for k in stats} | {"array_gx_us": 0.0}
    layer = {"in": rows, "out": cols, "devices_per_sign": devices_per_weight // 2, "n_tiles_in": 1, "n_tiles_out": 1,
             "tile_in": rows, "tile_out": cols, "dac_bits": dac_bits, "adc_bits": adc_bits, "pulses": 0,
             "initial": {"pulses": 0, "weight_pairs": 0, "rounds": 0}, "train": zero, "eval": stats,
             "backward_reads": 0, "sync_reads": 0}
    return {"layers": [layer], "batches": 0, "pulse_rounds": 0, "refresh_steps": 0, "pulses_set": 0,
            "pulses_reset": 0, "epochs": 1, "optimizer": "adam", "batch_updates": []}


def mvm(profile: CostProfile, **conditions: float) -> dict[str, Any]:
    """One full-array MVM at ``conditions`` (default :data:`CONDITIONS`): its energy by component
    (J), the core's and the chip's TOPS/W, and the MVM's time (s)."""
    c = {**CONDITIONS, **conditions}
    counts = full_array_counts(**{k: int(v) for k, v in c.items() if k not in ("mean_input", "mean_device_g_us")},
                               mean_input=float(c["mean_input"]), mean_device_g_us=float(c["mean_device_g_us"]))
    inf = estimate(counts, profile)["inference"]
    return {"energy_j": inf["energy_j_per_step"], "tops_per_w": inf["tops_per_w"],
            "latency_s": inf["latency_s_per_step"], "ops": inf["ops_per_step"]}


def modelled_core_j(profile: CostProfile, **conditions: float) -> float:
    """The core's energy of one MVM without the column overhead: array, DACs, ADCs, J."""
    e = mvm(dataclasses.replace(profile, column_overhead_j=0.0), **conditions)["energy_j"]
    return e["array"] + e["dac"] + e["adc"] + e["partial_sums"]


def calibrate_column_overhead_j(profile: CostProfile = HERMES_CORE, tops_per_w: float = HERMES_TOPS_PER_W,
                                **conditions: float) -> float:
    """The column overhead that makes the core's MVM cost what ``tops_per_w`` says, J per column:
    ``(2·rows·cols / TOPS/W − modelled) / cols``."""
    c = {**CONDITIONS, **conditions}
    measured = 2.0 * c["rows"] * c["cols"] / (tops_per_w * 1e12)
    return (measured - modelled_core_j(profile, **conditions)) / c["cols"]


def calibration_report() -> dict[str, Any]:
    """Both chips: measured and estimated TOPS/W, the deviation, and the energy by component."""
    out = {}
    for name, profile, measured, level in (("HERMES-Core", HERMES_CORE, HERMES_TOPS_PER_W, "core"),
                                           ("64-core chip", LEGALLO_64CORE, LEGALLO_TOPS_PER_W, "chip")):
        m = mvm(profile)
        est = m["tops_per_w"][level]
        out[name] = {"profile": profile.name, "level": level, "measured_tops_per_w": measured,
                     "estimated_tops_per_w": est, "deviation": est / measured - 1.0, "energy_j": m["energy_j"],
                     "latency_s": m["latency_s"]}
    return out
