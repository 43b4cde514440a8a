"""Time, drift compensation and evaluation over drift for any model with analog layers.

These walk a whole model, whatever built it (pcmsim's networks, :func:`pcmsim.convert`,
:func:`pcmsim.nir.load`): every :class:`pcmsim.analog.AnalogLinear` (also the one inside each
analog convolution) keeps the one analog-layer contract: it is read at its own simulated time
``time_s`` (s), and ``read_weights()`` gives what its devices hold then, times its compensation.

- :func:`set_time` moves every layer's time (the devices drift as ``G·((t − t_p)/T0)^−ν``);
- :func:`calibrate` takes every layer's reference readout (right after programming) and
  :func:`compensate` turns a later readout into the factors α of a compensation mode
  (:mod:`pcmsim.compensation`, as aihwkit's ``GlobalDriftCompensation``);
- :func:`evaluate_over_drift` evaluates a model at a list of delays with each compensation mode:
  the command line (``pcmsim evaluate``), the trainer's drift table and converted models all run
  through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from .analog import analog_layers
from .compensation import calibrate_network, check_mode, recalibrate_network
from .units import parse_duration_s

__all__ = ["Metrics", "Times", "calibrate", "compensate", "evaluate_over_drift", "model_time", "set_time"]

Metrics = Mapping[str, float] | float
"""What an ``evaluate()`` callback returns: a number, or a mapping of metric names to numbers."""

Times = Mapping[str, float] | Sequence[tuple[str, float]] | Sequence[str | float]
"""Delays after the end of training: label → s, ``(label, s)`` pairs, or labels parsed as durations
(``"1h"``, ``"1d"``, ``"1y"``, or seconds)."""


def set_time(model: nn.Module, t_s: float) -> int:
    """Read every analog layer of ``model`` at the simulated time ``t_s`` (s) from now on; returns how many.

    Devices are not programmed: their conductances at ``t_s`` follow from the time since each was
    last programmed (drift), so moving the time forward ages the whole model.
    """
    t = float(t_s)
    if not math.isfinite(t):
        raise ValueError(f"t_s={t_s!r} is invalid: expected a finite time in s")
    layers = analog_layers(model)
    for layer in layers:
        layer.set_time(t)
    return len(layers)


def model_time(model: nn.Module) -> float:
    """The simulated time (s) at which every analog layer of ``model`` is read.

    Raises:
        ValueError: the model has no analog layer, or its layers are at different times.
    """
    times = sorted({layer.time_s for layer in analog_layers(model)})
    if not times:
        raise ValueError(f"the model ({type(model).__name__}) has no analog layer: expected one made by "
                         "pcmsim.convert, pcmsim.nir.load or a pcm network builder")
    if len(times) > 1:
        raise ValueError(f"the model's analog layers are at different times ({times[0]:g} … {times[-1]:g} s): "
                         "pass t_end_s, or move them together with pcmsim.set_time")
    return times[0]


def calibrate(model: nn.Module, t_s: float | None = None) -> int:
    """Take every analog layer's drift-compensation reference readout at ``t_s`` (s; default: each layer's
    time), normally right after programming; returns the number of layers.

    The readout is one read of one-hot inputs through the full periphery (with its noise), as on a chip.
    """
    return calibrate_network(model, t_s)


def compensate(model: nn.Module, mode: str, t_s: float | None = None) -> int:
    """Apply drift compensation ``mode`` (``none``, ``global`` or ``per-column``) to every analog layer:
    read it at ``t_s`` (s; default: each layer's time) and set its factors α against the reference of
    :func:`calibrate`. ``none`` sets α = 1. Returns the number of layers.

    Raises:
        ValueError: an unknown mode.
        RuntimeError: a mode other than ``none`` on a layer that has no reference readout.
    """
    return recalibrate_network(model, t_s, mode)


def _labelled(times: Times) -> list[tuple[str, float]]:
    if isinstance(times, Mapping):
        pairs = [(str(k), float(v)) for k, v in times.items()]
    else:
        pairs = []
        for item in times:
            if isinstance(item, tuple):
                label, value = item
                pairs.append((str(label), parse_duration_s(value)))
            else:
                pairs.append((str(item).strip(), parse_duration_s(item)))
    for label, value in pairs:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"delay {label!r} = {value!r} s is invalid: expected a finite delay ≥ 0 s")
    return pairs


def evaluate_over_drift(
    model: nn.Module,
    evaluate: Callable[[], Metrics],
    times: Times,
    compensation: Sequence[str] | str = ("none", "global"),
    *,
    t_end_s: float | None = None,
) -> list[dict[str, Any]]:
    """Metrics of a model on crossbars at each delay after ``t_end_s``, per drift-compensation mode.

    The reference readout of every layer is taken at ``t_end_s`` (s; default: the layers' common time,
    :func:`model_time`), then for each mode and each delay (``0s`` first) every layer is read at
    ``t_end_s + delay`` with its compensation factors and ``evaluate()`` is called. Devices are only
    read, never programmed; afterwards the layers are back at ``t_end_s`` without compensation.

    Args:
        model: any model with analog layers.
        evaluate: called once per row with the model at the row's time; returns a number or a mapping
            of metrics.
        times: the delays (:data:`Times`), e.g. ``["1h", "1d", "1y"]`` or ``{"1 h": 3600.0}``.
        compensation: the modes, e.g. ``("none", "global")``.
        t_end_s: the end of training, s.

    Returns:
        rows ``{"delay", "delay_s", "compensation", **metrics}`` (a number becomes ``"metric"``).
    """
    modes = [compensation] if isinstance(compensation, str) else list(compensation)
    for mode in modes:
        check_mode(mode)
    pairs = _labelled(times)
    t_end = model_time(model) if t_end_s is None else float(t_end_s)
    if any(mode != "none" for mode in modes):
        calibrate_network(model, t_end)
    rows: list[dict[str, Any]] = []
    try:
        for mode in modes:
            for label, delay in [("0s", 0.0), *pairs]:
                t = t_end + delay
                set_time(model, t)
                recalibrate_network(model, t, mode)
                result = evaluate()
                metrics = dict(result) if isinstance(result, Mapping) else {"metric": float(result)}
                rows.append({"delay": label, "delay_s": delay, "compensation": mode, **metrics})
    finally:
        set_time(model, t_end)
        recalibrate_network(model, t_end, "none")
    return rows
