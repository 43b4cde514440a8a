"""How a trained hardware network ages: its metrics after drift, with and without compensation.

A thin use of :func:`pcmsim.evaluate_over_drift` (the one implementation) with a trainer's model,
clock and task: the devices are read at ``t_end + delay`` for each delay; with compensation, the
digital periphery rescales the outputs by ``α = ref/cur`` from a reference read taken at the end of
training (global: one α per crossbar; per column: one per output), as aihwkit's drift compensation.
"""

from __future__ import annotations

from typing import Any

from pcmsim.drift import evaluate_over_drift as evaluate_model_over_drift

from .trainer import Trainer


def evaluate_over_drift(trainer: Trainer, times: list[tuple[str, float]], modes: list[str],
                        split: str = "test") -> list[dict[str, Any]]:
    """Rows ``{"delay", "delay_s", "compensation", **metrics}`` for delay 0 and every delay × mode.

    The trainer's clock stays at the end of training; devices are only read, never programmed.
    """
    t_end = trainer.clock.now_s
    try:
        return evaluate_model_over_drift(trainer.model, lambda: trainer.evaluate(split, at_clock=False), times,
                                         modes, t_end_s=t_end)
    finally:
        trainer.set_time()
