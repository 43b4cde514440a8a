"""How a trained hardware network ages: its test metrics after drift, with and without compensation.

After training, the devices keep drifting (``G(t) = G·((t − t_p)/T0)^−ν``). For each delay the
network is read at ``t_end + delay``; with compensation, the digital periphery rescales the
outputs by ``α = ref/cur`` from a reference read taken right after training (global: one α per
crossbar; per column: one per output), as aihwkit's drift compensation does.
"""

from __future__ import annotations

from typing import Any

from pcmsim.compensation import calibrate_network, recalibrate_network

from .trainer import Trainer


def evaluate_over_drift(trainer: Trainer, times: list[tuple[str, float]], modes: list[str],
                        split: str = "test") -> list[dict[str, Any]]:
    """Rows ``{"delay", "delay_s", "compensation", **metrics}`` for delay 0 and every delay × mode.

    The trainer's clock is restored afterwards; devices are only read, never programmed.
    """
    t_end = trainer.clock.now_s
    if any(mode != "none" for mode in modes):
        calibrate_network(trainer.model, t_end)
    rows: list[dict[str, Any]] = []
    try:
        for mode in modes:
            for label, delay_s in [("0s", 0.0), *times]:
                trainer.clock.now_s = t_end + delay_s
                recalibrate_network(trainer.model, t_end + delay_s, mode)
                rows.append({"delay": label, "delay_s": delay_s, "compensation": mode,
                             **trainer.evaluate(split)})
    finally:
        trainer.clock.now_s = t_end
        recalibrate_network(trainer.model, t_end, "none")
        trainer.set_time()
    return rows
