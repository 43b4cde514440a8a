"""Compiled time loops: the SNU and LIF recurrences over all steps as one numba kernel each way.

The plain loop (:func:`pcmsim.neuron_models.base.run_steps`) calls a model's step function once
per time step, so an epoch of the 88-150-88 JSB network spends most of its time in the Python and
autograd overhead of tens of small elementwise operations per step on ``[8, 150]`` tensors. Here
the recurrence after the synapse (``W x_t`` for all ``T`` is one matmul before the loop) runs in
one compiled kernel for the forward and one for the backward pass over all steps, wrapped in a
:class:`torch.autograd.Function`; gradients flow to the step inputs, the initial state and the
trainable parameters (SNU bias and decay, LIF leak). The surrogate derivative of a spike is
evaluated by torch over all steps at once (one call, any row of
:data:`~pcmsim.neuron_models.surrogates.SURROGATES`) and handed to the backward kernel.

Why numba: the kernels are a few loops of scalar arithmetic; numba compiles them with LLVM from a
pip wheel (no compiler on the user's machine, unlike a C++ extension built at setup) and caches the
machine code beside the module (``cache=True``), so the compile (a few seconds) is paid once per
machine. The kernels keep the plain loop's order of floating-point operations in the array's
dtype (constants are passed in that dtype, and numba does not contract to FMA without
``fastmath``), so the SNU forward matches the plain loop bit for bit and gradients agree to float
rounding (``tests/test_fused.py``).

Where a loop cannot be fused it runs plain: a recurrent SNU (``H y_{t−1}`` needs a matmul per
step), tensors on a GPU (torch's own kernels there; the plain loop is the CUDA path), or a
layer set to ``loop = "plain"`` (:func:`set_neuron_loop`; ``RunConfig.neuron_loop``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .integrator import IntegratorParams, IntegratorState, integrator_step
from .lif import LIFParams, LIFState, LIFStepOutput, lif_step
from .snu import SNUOutput, SNUParams, SNUState, snu_step

NEURON_LOOPS: tuple[str, ...] = ("fused", "plain")
"""How a neuron layer runs its time loop: ``fused`` (compiled, where possible) or ``plain``."""

LEAKY_SLOPE = 0.01
"""Negative slope of the SNU's leaky-ReLU ``g`` (:func:`pcmsim.neuron_models.snu.membrane_activation`)."""

def _kernels() -> Any:
    """The numba kernels (:mod:`.fused_kernels`), imported on first use: importing numba costs
    ~0.3 s, and most runs import pcmsim without training."""
    from . import fused_kernels

    return fused_kernels


def _dtype(t: Tensor) -> type:
    """The numpy scalar type of ``t`` (float32 or float64): constants go to the kernels in it."""
    return np.float64 if t.dtype == torch.float64 else np.float32


def _np(t: Tensor) -> np.ndarray:
    """A contiguous CPU numpy view (a copy only where ``t`` is not contiguous)."""
    return t.detach().contiguous().numpy()


def _per_unit(value: Tensor | float, n: int, like: Tensor) -> Tensor:
    """A scalar or ``[n]`` parameter as a ``[n]`` tensor in ``like``'s dtype (autograd kept)."""
    if not isinstance(value, Tensor):
        return torch.full((n,), float(value), dtype=like.dtype)
    return value.to(like.dtype).expand(n) if value.dim() == 0 else value.to(like.dtype)


class _SNULoop(torch.autograd.Function):
    """The SNU recurrence over ``[T, B, n]`` inputs; outputs ``y``, ``pre``, ``s`` (all ``[T, B, n]``)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, u: Tensor, decay: Tensor, bias: Tensor, s0: Tensor, y0: Tensor, soft: bool, leaky: bool,
        surrogate: Any,
    ) -> tuple[Tensor, Tensor, Tensor]:
        dt = _dtype(u)
        s, y, pre, d = (torch.empty_like(u) for _ in range(4))
        _kernels().snu_forward(_np(u), _np(decay), _np(bias), _np(s0), _np(y0), soft, leaky, dt(LEAKY_SLOPE), dt(1.0),
                         dt(0.0), _np(s), _np(y), _np(pre), _np(d))
        ctx.save_for_backward(decay, s0, y0, s, y, pre, d)
        ctx.soft, ctx.leaky, ctx.surrogate = soft, leaky, surrogate
        ctx.mark_non_differentiable(d)
        return y, pre, s

    @staticmethod
    def backward(ctx: Any, g_y: Tensor, g_pre: Tensor, g_s: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        decay, s0, y0, s, y, pre, d = ctx.saved_tensors
        # dy/dpre for all steps at once: the sigmoid's y(1 − y), or the spike's surrogate σ'(pre)
        hprime = (1.0 - y) * y if ctx.soft else ctx.surrogate.derivative(pre)
        dt = _dtype(s)
        g_u = torch.empty_like(s)
        n = s.shape[-1]
        g_decay = torch.zeros(n, dtype=s.dtype)
        g_bias = torch.zeros(n, dtype=s.dtype)
        g_s0, g_y0 = torch.empty_like(s0), torch.empty_like(y0)
        _kernels().snu_backward(
            _np(g_y), _np(g_pre), _np(g_s), _np(hprime), _np(s), _np(y), _np(d), _np(s0), _np(y0),
            _np(decay), ctx.leaky, dt(LEAKY_SLOPE), dt(1.0), dt(0.0), _np(g_u), _np(g_decay),
            _np(g_bias), _np(g_s0), _np(g_y0),
        )
        return g_u, g_decay, g_bias, g_s0, g_y0, None, None, None


class _LIFLoop(torch.autograd.Function):
    """The LIF recurrence over ``[T, B, n]`` currents; outputs spikes, ``v`` and the refractory counters."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, u: Tensor, leak: Tensor, v0: Tensor, r0: Tensor, threshold: float, refractory: int,
        surrogate: Any,
    ) -> tuple[Tensor, Tensor, Tensor]:
        dt = _dtype(u)
        v, spk, d, r = (torch.empty_like(u) for _ in range(4))
        _kernels().lif_forward(_np(u), _np(leak), _np(v0), _np(r0.to(u.dtype)), dt(threshold), dt(refractory),
                                  dt(1.0), dt(0.0), _np(v), _np(spk), _np(d), _np(r))
        ctx.save_for_backward(leak, v0, r0, v, d, r)
        ctx.threshold, ctx.refractory, ctx.surrogate = threshold, refractory, surrogate
        ctx.mark_non_differentiable(r)
        return spk, v, r

    @staticmethod
    def backward(ctx: Any, g_spk: Tensor, g_v: Tensor, g_r: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        leak, v0, r0, v, d, r = ctx.saved_tensors
        hprime = ctx.surrogate.derivative(v - ctx.threshold)
        dt = _dtype(v)
        g_u = torch.empty_like(v)
        g_leak = torch.zeros(v.shape[-1], dtype=v.dtype)
        g_v0 = torch.empty_like(v0)
        _kernels().lif_backward(
            _np(g_v), _np(g_spk), _np(hprime), _np(v), _np(d), _np(r), _np(v0), _np(r0.to(v.dtype)),
            _np(leak), dt(ctx.threshold), dt(ctx.refractory), dt(1.0), dt(0.0), _np(g_u), _np(g_leak),
            _np(g_v0),
        )
        return g_u, g_leak, g_v0, None, None, None, None


def _fusable(inputs: Tensor, *tensors: Tensor) -> bool:
    return inputs.device.type == "cpu" and inputs.dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" for t in tensors
    )


def fused_snu(inputs: Tensor, state: SNUState, params: SNUParams) -> tuple[SNUOutput, SNUState] | None:
    """:func:`snu_step` over all steps of ``inputs`` (``[T, B, n]``) in one kernel; None where it
    cannot be fused (a recurrent layer, a GPU tensor)."""
    if params.recurrent is not None or not _fusable(inputs, state.s, state.y, params.bias):
        return None
    n = inputs.shape[-1]
    decay = _per_unit(params.decay, n, inputs)
    bias = params.bias.to(inputs.dtype)
    y, pre, s = _SNULoop.apply(inputs, decay, bias, state.s.to(inputs.dtype), state.y.to(inputs.dtype),
                               params.soft, params.activation == "leaky_relu", params.surrogate)
    return SNUOutput(y, pre), SNUState(s[-1], y[-1])


def fused_lif(inputs: Tensor, state: LIFState, params: LIFParams) -> tuple[LIFStepOutput, LIFState] | None:
    """:func:`lif_step` over all steps of ``inputs`` (``[T, B, n]``) in one kernel; None where it cannot be fused."""
    if not _fusable(inputs, state.v, state.refractory):
        return None
    leak = _per_unit(params.leak, inputs.shape[-1], inputs)
    spk, v, r = _LIFLoop.apply(inputs, leak, state.v.to(inputs.dtype), state.refractory,
                               float(params.threshold), int(params.refractory_steps), params.surrogate)
    return LIFStepOutput(spk, v), LIFState(v[-1], r[-1].to(state.refractory.dtype))


def fused_integrator(
    inputs: Tensor, state: IntegratorState, params: IntegratorParams
) -> tuple[Tensor, IntegratorState] | None:
    """:func:`integrator_step` over all steps: a cumulative sum (torch's own; any device)."""
    v = torch.cumsum(torch.cat([(state.v + inputs[0]).unsqueeze(0), inputs[1:]]), dim=0)
    return v, IntegratorState(v[-1])


FUSED: dict[Callable[..., Any], Callable[..., Any]] = {
    snu_step: fused_snu,
    lif_step: fused_lif,
    integrator_step: fused_integrator,
}
"""Step function → its fused loop ``(inputs, state, params) -> (outputs, final_state) | None``.
A model without an entry runs the plain loop."""


def fused_loop(step: Callable[..., Any]) -> Callable[..., Any] | None:
    """The fused loop of a step function, or None."""
    return FUSED.get(step)


def set_neuron_loop(module: nn.Module, loop: str) -> int:
    """Set ``loop`` (``fused`` or ``plain``) on every neuron layer in ``module``; returns how many."""
    from .base import NeuronLayer

    if loop not in NEURON_LOOPS:
        raise ValueError(f"neuron loop {loop!r} is invalid; expected one of {', '.join(NEURON_LOOPS)}")
    layers = [m for m in module.modules() if isinstance(m, NeuronLayer)]
    for m in layers:
        m.loop = loop
    return len(layers)
