"""Current-based leaky integrate-and-fire neurons (NIR's ``CubaLIF``; snnTorch's ``Synaptic``).

NIR's continuous model (Pedersen et al., Nat. Commun. 15, 8122 (2024))::

    τ_syn dI/dt = −I + w_in·S            τ_mem dv/dt = (v_leak − v) + R·I
    z = 1 if v > v_threshold;  v ← v_reset where z = 1

integrated with one forward-Euler step of ``dt``, the current first and the potential from the
*new* current (snnTorch's ``Synaptic`` order)::

    i_t = syn_decay · i_{t−1} + I_t               syn_decay = 1 − dt/τ_syn, I_t = syn_gain · (W x_t + b),
                                                  syn_gain = dt·w_in/τ_syn
    v_t = mem_decay · v_{t−1} + leak_bias + mem_gain · i_t
                                                  mem_decay = 1 − dt/τ_mem, leak_bias = (dt/τ_mem)·v_leak,
                                                  mem_gain = dt·R/τ_mem
    s_t = Θ(v_t − threshold);  v_t ← v_reset where s_t = 1 (the current is not reset)

snnTorch's export (``τ_syn = dt/(1 − α)``, ``w_in = τ_syn/dt``, ``τ_mem = dt/(1 − β)``,
``R = τ_mem/dt``) gives ``syn_decay = α``, ``mem_decay = β`` and unit gains: ``i ← α·i + W x``,
``v ← β·v + i``. The reset is detached in the backward pass; the spike takes a surrogate
derivative (``superspike`` by default).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .base import NeuronLayer, NeuronModel
from .leaky import Scalar, fire_and_reset, per_unit
from .surrogates import Surrogate, as_surrogate

SOURCE = "NIR CubaLIF (Pedersen et al., Nat. Commun. 15, 8122, 2024), forward Euler; snnTorch Synaptic"


class CubaLIFState(NamedTuple):
    """State between steps, both ``[B, n]``: the synaptic current ``i_{t−1}`` and potential ``v_{t−1}``."""

    i: Tensor
    v: Tensor


class CubaLIFParams(NamedTuple):
    """Parameters of a CubaLIF step (numbers or per-unit tensors ``[n]``); see the module docstring."""

    syn_decay: Scalar
    mem_decay: Scalar
    mem_gain: Scalar = 1.0
    leak_bias: Scalar = 0.0
    threshold: Scalar = 1.0
    v_reset: Scalar = 0.0
    surrogate: Surrogate = Surrogate("superspike")


class CubaLIFStepOutput(NamedTuple):
    """Output of a step or sequence: ``activity`` (spikes), ``v`` (after reset) and current ``i``."""

    activity: Tensor
    v: Tensor
    i: Tensor


def cuba_lif_step(
    input_t: Tensor, state: CubaLIFState, params: CubaLIFParams
) -> tuple[CubaLIFStepOutput, CubaLIFState]:
    """One forward-Euler step of NIR's CubaLIF (a pure function); see the module docstring.

    Args:
        input_t: ``I_t = syn_gain · (W x_t + b)``, ``[B, n]``.
        state: ``i_{t−1}``, ``v_{t−1}``.
        params: see :class:`CubaLIFParams`.
    """
    i = params.syn_decay * state.i + input_t
    v = params.mem_decay * state.v + params.leak_bias + params.mem_gain * i
    s, v = fire_and_reset(v, params.threshold, params.v_reset, params.surrogate)
    return CubaLIFStepOutput(s, v, i), CubaLIFState(i, v)


class CubaLIFLayer(NeuronLayer[CubaLIFState, CubaLIFParams, CubaLIFStepOutput]):
    """A layer of current-based LIF units over any synapse: ``I_t = syn_gain · (linear(x_t) + b)``.

    Args:
        linear: the synapse ``[N, in] → [N, out]`` (``nn.Identity()`` in a NIR graph).
        out_features: number of units ``n``.
        syn_decay, mem_decay: ``1 − dt/τ_syn``, ``1 − dt/τ_mem`` (snnTorch's α, β).
        syn_gain, mem_gain: ``dt·w_in/τ_syn``, ``dt·R/τ_mem``.
        leak_bias: ``(dt/τ_mem)·v_leak``.
        threshold, v_reset: firing threshold and reset potential.
        surrogate, beta, gamma: the spike's surrogate derivative.
        bias: a per-unit digital bias ``b`` (zeros initially) on the synapse output.
    """

    step = staticmethod(cuba_lif_step)
    syn_decay: Tensor  # buffers [n]
    mem_decay: Tensor
    syn_gain: Tensor
    mem_gain: Tensor
    leak_bias: Tensor
    threshold: Tensor
    v_reset: Tensor

    def __init__(
        self,
        linear: nn.Module,
        out_features: int,
        *,
        syn_decay: Scalar = 0.5,
        mem_decay: Scalar = 0.9,
        syn_gain: Scalar = 1.0,
        mem_gain: Scalar = 1.0,
        leak_bias: Scalar = 0.0,
        threshold: Scalar = 1.0,
        v_reset: Scalar = 0.0,
        surrogate: Surrogate | str | None = "superspike",
        beta: float = 10.0,
        gamma: float = 1.0,
        bias: bool = False,
    ) -> None:
        super().__init__(linear, out_features)
        n = int(out_features)
        for name, value in (("syn_decay", syn_decay), ("mem_decay", mem_decay)):
            t = per_unit(name, value, n)
            if not bool(((t >= 0) & (t <= 1)).all()):
                raise ValueError(f"{name} is invalid: expected values in [0, 1] (dt ≤ τ)")
            self.register_buffer(name, t)
        for name, value in (("syn_gain", syn_gain), ("mem_gain", mem_gain), ("leak_bias", leak_bias),
                            ("threshold", threshold), ("v_reset", v_reset)):
            self.register_buffer(name, per_unit(name, value, n))
        self.surrogate = as_surrogate(surrogate, "superspike", beta, gamma)
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def input_current(self, wx: Tensor) -> Tensor:
        """``I_t = syn_gain · (W x_t + b)`` for all steps."""
        if self.bias is not None:
            wx = wx + self.bias
        return self.syn_gain * wx

    def initial_state(self, batch: int, like: Tensor) -> CubaLIFState:
        zeros = like.new_zeros(batch, self.out_features)
        return CubaLIFState(zeros, zeros.clone())

    def step_params(self) -> CubaLIFParams:
        return CubaLIFParams(
            syn_decay=self.syn_decay, mem_decay=self.mem_decay, mem_gain=self.mem_gain,
            leak_bias=self.leak_bias, threshold=self.threshold, v_reset=self.v_reset, surrogate=self.surrogate,
        )

    def forward(self, x: Tensor, state: CubaLIFState | None = None) -> CubaLIFStepOutput:
        """Run the layer over ``x`` (``[T, B, in]``): ``.activity``, ``.v``, ``.i``, each ``[T, B, n]``."""
        return self.run(x, state)[0]


def _registry_layer(linear: nn.Module, out_features: int, *, decay: float = 0.9, **options: object) -> CubaLIFLayer:
    """The registry's builder: ``decay`` sets both decays (the shared vocabulary has one)."""
    return CubaLIFLayer(linear, out_features, syn_decay=decay, mem_decay=decay, bias=True, **options)  # type: ignore[arg-type]


MODEL = NeuronModel(
    "cuba-lif", _registry_layer,
    ("threshold", "decay", "surrogate", "beta", "gamma"),
    "current-based LIF as NIR and snnTorch (Synaptic) define it: i ← decay·i + I, v ← decay·v + i, reset to 0",
    SOURCE,
)
