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
layer set to ``loop = "plain"`` (:func:`pcmsim.neuron_models.base.set_neuron_loop`;
``RunConfig.neuron_loop``). A model module registers its fused loop with :func:`register_fused`
(``snu.py``, ``lif.py``, ``integrator.py``); this module knows no model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

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
    def forward(
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
    def backward(ctx: Any, g_y: Tensor, g_pre: Tensor, g_s: Tensor) -> tuple[Any, ...]:
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
    def forward(
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
    def backward(ctx: Any, g_spk: Tensor, g_v: Tensor, g_r: Tensor) -> tuple[Any, ...]:
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


FUSED: dict[Callable[..., Any], Callable[..., Any]] = {}
"""Step function → its fused loop ``(inputs, state, params) -> (outputs, final_state) | None``
(None: this call cannot be fused). Filled by the model modules (:func:`register_fused`); a model
without an entry runs the plain loop."""


def register_fused(step: Callable[..., Any], loop: Callable[..., Any]) -> None:
    """Make ``loop`` the fused loop of the step function ``step``."""
    FUSED[step] = loop


def fused_loop(step: Callable[..., Any]) -> Callable[..., Any] | None:
    """The fused loop of a step function, or None."""
    return FUSED.get(step)


def snu_loop(inputs: Tensor, s0: Tensor, y0: Tensor, decay: Tensor | float, bias: Tensor, *, soft: bool,
             leaky: bool, surrogate: Any) -> tuple[Tensor, Tensor, Tensor]:
    """The SNU recurrence over ``inputs`` (``[T, B, n]``): ``(y, pre, s)``, each ``[T, B, n]``."""
    n = inputs.shape[-1]
    return _SNULoop.apply(inputs, _per_unit(decay, n, inputs), bias.to(inputs.dtype), s0.to(inputs.dtype),
                          y0.to(inputs.dtype), soft, leaky, surrogate)


def lif_loop(inputs: Tensor, v0: Tensor, r0: Tensor, leak: Tensor | float, *, threshold: float, refractory: int,
             surrogate: Any) -> tuple[Tensor, Tensor, Tensor]:
    """The LIF recurrence over ``inputs`` (``[T, B, n]``): ``(spikes, v, refractory counters)``."""
    return _LIFLoop.apply(inputs, _per_unit(leak, inputs.shape[-1], inputs), v0.to(inputs.dtype), r0,
                          float(threshold), int(refractory), surrogate)


def fusable(inputs: Tensor, *tensors: Tensor) -> bool:
    """Whether the compiled kernels can run on these tensors (CPU, float32 or float64)."""
    return inputs.device.type == "cpu" and inputs.dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" for t in tensors
    )
