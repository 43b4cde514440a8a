"""Hardware in the loop: a digital optimiser proposes ΔW, an update scheme turns it into pulses.

Usage (any model with analog layers: built in, converted by ``pcmsim.convert``, or NIR-loaded)::

    hil = HardwareInTheLoop(model, optimizer, scheme="mixed-precision", clock=clock, generator=g)
    for epoch in range(epochs):
        for x, y in batches:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            hil.step()          # instead of optimizer.step(): pulses, and the clock moves on
        hil.epoch_done()        # the idle time between epochs (evaluation on the host)

``HardwareInTheLoop`` owns the simulated clock: :meth:`HardwareInTheLoop.step` advances it by the
forward pass's time steps (counted by the analog layers), by the pulse rounds of the update and by
the host's per-batch overhead, and leaves every layer at the clock's time, so a loop written by hand
and :class:`hardware_in_loop.Trainer` give the same simulated time, the same drift and the same
numbers. For every analog layer the optimiser's step on the layer's digital weight estimate is read
as the desired change ``ΔW = W_proposed − W_estimate``; the estimate is put back, the scheme
programs the devices at the clock's time, and the estimate is re-read from the devices. Parameters
that live in digital (biases, thresholds, decays) take the optimiser's step as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pcmsim.analog import analog_layers
from pcmsim.crossbar import threads_for

from .clock import Clock
from .schemes import SchemeParams, UpdateScheme, UpdateStats, make_scheme


class HardwareInTheLoop:
    """Wraps a torch optimiser so that its steps on analog weights become device pulses."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheme: str | UpdateScheme = "mixed-precision",
        clock: Clock | None = None,
        generator: torch.Generator | None = None,
        params: SchemeParams | Mapping[str, Any] | None = None,
        **scheme_params: Any,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.layers = analog_layers(model)
        if not self.layers:
            raise ValueError(f"the model ({type(model).__name__}) has no analog layer: nothing to train in the loop "
                             "(expected one made by pcmsim.convert, pcmsim.nir.load or a pcm network builder)")
        crossbars = [layer.crossbar for layer in self.layers]
        self.scheme = (scheme if isinstance(scheme, UpdateScheme)
                       else make_scheme(scheme, crossbars, params, **scheme_params))
        self.clock = clock or Clock()
        self.generator = generator
        self.totals = UpdateStats()
        self.set_time(self.clock.now_s)

    def set_time(self, t_s: float) -> None:
        for layer in self.layers:
            layer.set_time(t_s)

    @torch.no_grad()
    def sync(self) -> None:
        """Re-read every layer's digital weight estimate from its devices at the clock's time."""
        self.set_time(self.clock.now_s)
        for layer in self.layers:
            layer.sync_weight()

    def step(self, time_steps: int | None = None) -> UpdateStats:
        """One training step on the hardware; returns what the update did.

        1. The clock advances by the forward pass: ``time_steps`` (default: the most time steps any
           analog layer counted in its training forward passes since the last step,
           :meth:`pcmsim.analog.AnalogLinear.take_time_steps`) × ``mvm_per_step_s``.
        2. The optimiser steps; each analog layer's ΔW becomes pulses at the clock's time; the clock
           advances by the pulse rounds; the digital estimates are re-read from the devices.
        3. The clock advances by the host's per-batch overhead, and every layer is set to the clock's
           time (the next forward pass reads there).

        Small arrays take the step on one CPU thread (:func:`pcmsim.crossbar.threads_for`).
        """
        counted = max(layer.take_time_steps() for layer in self.layers)
        steps = counted if time_steps is None else int(time_steps)
        if steps < 0:
            raise ValueError(f"time_steps={time_steps!r} is invalid: expected a number of time steps ≥ 0")
        self.clock.forward_pass(steps)
        largest = max(layer.crossbar.n_devices for layer in self.layers)
        with threads_for(largest, self.layers[0].crossbar.device):
            stats = self._step()
        self.clock.batch_done()
        self.set_time(self.clock.now_s)
        return stats

    def epoch_done(self) -> float:
        """The idle time between two epochs (``epoch_gap_s``: validation on the host, logging) passes;
        every layer is set to the clock's new time, which is returned (s)."""
        t = self.clock.epoch_done()
        self.set_time(t)
        return t

    def _step(self) -> UpdateStats:
        with torch.no_grad():
            before = [layer.weight.detach().clone() for layer in self.layers]
        self.optimizer.step()
        t_s = self.clock.now_s
        stats = UpdateStats()
        with torch.no_grad():
            for i, (layer, w0) in enumerate(zip(self.layers, before)):
                delta_w = layer.weight.detach() - w0
                layer.weight.copy_(w0)
                stats.add(self.scheme.apply(i, delta_w, t_s, self.generator))
            refresh = self.scheme.end_step(t_s, self.generator)
        rounds = stats.pulse_rounds + refresh.pulse_rounds
        stats.add(refresh)
        stats.pulse_rounds = rounds
        self.clock.pulse_rounds(rounds)
        self.sync()
        self.totals.add(stats)
        self.totals.pulse_rounds = 0
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme.state_dict(), "totals": self.totals.as_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheme.load_state_dict(state["scheme"])
        self.totals = UpdateStats(**state["totals"])
