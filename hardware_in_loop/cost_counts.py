"""The counts behind a run's energy, latency and area estimate (:mod:`pcmsim.cost`).

Per analog layer the crossbar's :class:`~pcmsim.periphery.PeripheryStats` run on (0-d tensors,
no host synchronisation per batch); at the end of every epoch :class:`RunCounts` reads them once
before and once after the evaluation and credits the differences to the phases ``train`` (the
forward MVMs of the training batches) and ``eval``. Per batch it records the update's SET and RESET
pulses, its pulse rounds and whether it refreshed (host integers the update already returns; the
write drivers' current budget turns them into programming time). The full-array readbacks follow
from the counts: with ``backward_weights="read"`` every training forward call reads its layer's
array once for the backward pass (``backward_reads``: the layer's training MVM calls), and every
optimiser step re-reads every layer's weights into its digital copy, as does the initial transfer
(``sync_reads``: :meth:`pcmsim.analog.AnalogLinear.sync_weight`). Its state travels in the
checkpoint and the crossbars' counts in the layers' extra state, so a resumed run ends with the
same counts as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

from pcmsim.analog import AnalogLinear
from pcmsim.periphery import PeripheryStats

from .schemes import UpdateStats

PHASES = ("train", "eval")


def _zeros() -> dict[str, int | float]:
    return {f: (0.0 if f in PeripheryStats.FLOAT_FIELDS else 0) for f in PeripheryStats.FIELDS}


def _pulse_total(layer: AnalogLinear) -> int:
    """All programming pulses the layer's devices have received (synchronises once)."""
    return int(layer.crossbar.state.pulse_count.sum())


def _initial(layer: AnalogLinear) -> dict[str, int]:
    """The layer's last programming (at the start of a run: the initial transfer): its pulses, the
    weight pairs programmed (``N·out·in``) and the most pulses one device received (the rounds)."""
    report = layer.program_report
    if report is None:  # built without programming: nothing was transferred
        return {"pulses": 0, "weight_pairs": 0, "rounds": 0}
    pulses = report.pulses
    return {"pulses": int(pulses.sum()), "weight_pairs": int(pulses.shape[0] * pulses.shape[2] * pulses.shape[3]),
            "rounds": int(pulses.max()) if pulses.numel() else 0}


class RunCounts:
    """Phase-resolved periphery counts of ``layers`` and the run's update counts."""

    def __init__(self, layers: list[AnalogLinear]) -> None:
        self.layers = layers
        self.marks = [m.crossbar.stats.as_dict() for m in layers]
        self.initial = [_initial(m) for m in layers]
        self.pulse_marks = [_pulse_total(m) for m in layers]
        self.pulses = [0 for _ in layers]
        self.phases = {ph: [_zeros() for _ in layers] for ph in PHASES}
        self.batches = 0
        self.pulse_rounds = 0
        self.refresh_steps = 0
        self.batch_updates: list[list[int]] = []

    def batch(self, stats: UpdateStats) -> None:
        """One optimiser step that did ``stats``."""
        self.batches += 1
        self.pulse_rounds += int(stats.pulse_rounds)
        self.refresh_steps += int(stats.refreshes > 0)
        resets = int(stats.pulses_reset)
        self.batch_updates.append([int(stats.pulses_set) - resets, resets, int(stats.pulse_rounds),
                                   int(stats.refreshes > 0)])

    def end_phase(self, phase: str) -> None:
        """Credit every count since the last call to ``phase`` (synchronises once per layer)."""
        for i, m in enumerate(self.layers):
            now = m.crossbar.stats.as_dict()
            acc = self.phases[phase][i]
            for f in PeripheryStats.FIELDS:
                acc[f] += now[f] - self.marks[i][f]
            self.marks[i] = now
            total = _pulse_total(m)
            self.pulses[i] += total - self.pulse_marks[i]
            self.pulse_marks[i] = total

    def state_dict(self) -> dict[str, Any]:
        return {"marks": [dict(m) for m in self.marks],
                "phases": {ph: [dict(d) for d in v] for ph, v in self.phases.items()},
                "batches": self.batches, "pulse_rounds": self.pulse_rounds, "refresh_steps": self.refresh_steps,
                "initial": [dict(d) for d in self.initial], "pulse_marks": list(self.pulse_marks),
                "pulses": list(self.pulses), "batch_updates": [list(u) for u in self.batch_updates]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.marks = [dict(m) for m in state["marks"]]
        self.phases = {ph: [dict(d) for d in state["phases"][ph]] for ph in PHASES}
        self.batches = int(state["batches"])
        self.pulse_rounds = int(state["pulse_rounds"])
        self.refresh_steps = int(state["refresh_steps"])
        if "pulses" in state:  # checkpoints written before the layers' pulses were counted keep the fresh marks
            self.initial = [dict(d) for d in state["initial"]]
            self.pulse_marks = [int(v) for v in state["pulse_marks"]]
            self.pulses = [int(v) for v in state["pulses"]]
        self.batch_updates = [[int(x) for x in u] for u in state.get("batch_updates", [])]

    def summary(self, *, pulses_set: int, pulses_reset: int, epochs: int, optimizer: str,
                eval_sequences: int | None = None) -> dict[str, Any]:
        """The ``hardware_counts`` of ``results.json``: what :func:`pcmsim.cost.estimate` takes.
        ``eval_sequences``: the sequences (samples) the ``eval`` phase read, if known."""
        layers = []
        for i, m in enumerate(self.layers):
            xb = m.crossbar
            per = xb.config.periphery
            programmed = int(self.initial[i]["weight_pairs"] > 0)
            train_calls = int(self.phases["train"][i]["mvm_calls"])
            layers.append({
                "backward_weights": m.backward_weights,
                "backward_reads": train_calls if m.backward_weights == "read" else 0,
                "sync_reads": self.batches + programmed,
                "in": xb.in_features, "out": xb.out_features, "devices_per_sign": xb.config.devices_per_sign,
                "n_tiles_in": xb.tiles.n_tiles_in, "n_tiles_out": xb.tiles.n_tiles_out,
                "tile_in": xb.tiles.tile_in, "tile_out": xb.tiles.tile_out,
                "dac_bits": per.dac_bits, "adc_bits": per.adc_bits,
                "pulses": self.pulses[i], "initial": dict(self.initial[i]),
                **{ph: dict(self.phases[ph][i]) for ph in PHASES},
            })
        return {"layers": layers, "batches": self.batches, "pulse_rounds": self.pulse_rounds,
                "refresh_steps": self.refresh_steps, "pulses_set": int(pulses_set),
                "pulses_reset": int(pulses_reset), "epochs": int(epochs), "optimizer": optimizer,
                "eval_sequences": eval_sequences, "batch_updates": [list(u) for u in self.batch_updates]}
