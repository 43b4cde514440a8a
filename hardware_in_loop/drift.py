"""How a trained hardware network ages: its metrics after drift, with and without compensation.

A thin use of :func:`pcmsim.evaluate_over_drift` (the one implementation) with a trainer's model,
clock and task: the devices are read at ``t_end + delay`` for each delay; with compensation, the
digital periphery rescales the outputs by ``α = ref/cur`` from a reference read taken at the end of
training (global: one α per crossbar; per column: one per output), as aihwkit's drift compensation.
"""

from __future__ import annotations

from typing import Any

from pcmsim.compensation import MODES
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


def format_drift_table(rows: list[dict[str, Any]], split: str = "test") -> str:
    """The one text table of a drift evaluation: a row per delay, a column per compensation mode, of the
    rows' metric (``nll`` where present, else ``accuracy``, else the first number)."""
    if not rows:
        return f"{split}: no drift rows"
    numbers = [k for k, v in rows[0].items() if isinstance(v, float) and k != "delay_s"]
    metric = next((m for m in ("nll", "accuracy") if m in rows[0]), numbers[0] if numbers else "metric")
    modes = sorted({r["compensation"] for r in rows}, key=lambda m: MODES.index(m) if m in MODES else len(MODES))
    name = metric.upper() if metric == "nll" else metric
    lines = [f"{split} {name} after drift: " + "  ".join(f"{m:>12}" for m in modes)]
    pad = len(lines[0]) - 14 * len(modes) - 8
    for d in dict.fromkeys(r["delay"] for r in rows):
        vals = {r["compensation"]: r[metric] for r in rows if r["delay"] == d}
        lines.append(f"  {d:>6}" + " " * max(pad, 1) + "  ".join(f"{vals.get(m, float('nan')):>12.3f}" for m in modes))
    return "\n".join(lines)
