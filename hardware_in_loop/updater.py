"""Hardware in the loop: a digital optimiser proposes ΔW, an update scheme turns it into pulses.

Usage::

    hil = HardwareInTheLoop(model, optimizer, scheme="mixed-precision", clock=clock, generator=g)
    loss.backward()
    hil.step()          # instead of optimizer.step()

For every :class:`pcmsim.analog.AnalogLinear` in ``model`` the optimiser's step on the layer's
digital weight estimate is read as the desired change ``ΔW = W_proposed − W_estimate``; the
estimate is put back, the scheme programs the devices at the clock's time, and the estimate is
re-read from the devices. Parameters that live in digital (biases, thresholds, decays) take the
optimiser's step as is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pcmsim.analog import analog_layers
from pcmsim.crossbar import threads_for

from .clock import Clock
from .schemes import UpdateScheme, UpdateStats, make_scheme


class HardwareInTheLoop:
    """Wraps a torch optimiser so that its steps on analog weights become device pulses."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheme: str | UpdateScheme = "mixed-precision",
        clock: Clock | None = None,
        generator: torch.Generator | None = None,
        **scheme_params: Any,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.layers = analog_layers(model)
        if not self.layers:
            raise ValueError("the model has no AnalogLinear layer: nothing to train in the loop")
        crossbars = [layer.crossbar for layer in self.layers]
        self.scheme = scheme if isinstance(scheme, UpdateScheme) else make_scheme(scheme, crossbars, **scheme_params)
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

    def step(self) -> UpdateStats:
        """One optimiser step with the updates applied to the devices; returns what it did.

        Small arrays take the step on one CPU thread (:func:`pcmsim.crossbar.threads_for`).
        """
        largest = max(layer.crossbar.n_devices for layer in self.layers)
        with threads_for(largest, self.layers[0].crossbar.device):
            return self._step()

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
