"""Writing weights onto the devices: one programming path for a whole matrix or a masked part.

For every selected weight and pair k: the device of the other sign is RESET, and ``|share|`` µS
plus that partner's conductance after its RESET is programmed onto G⁺_k (share > 0) or G⁻_k
(share < 0) with the model's ``program`` (program-and-verify for pulse-level models, centred so
that it is unbiased on average), so that the *difference* G⁺_k − G⁻_k is the share; a zero share
RESETs both. With N pairs the target
``w/w_per_us`` (µS) is spread over the pairs one after the other, each pair taking its part of the
residual left by the pairs before it (read back noise-free; :meth:`WeightMapping.share`).

:func:`program_selected` does this for the weights of a mask in compact form: the arithmetic on
targets and shares runs on the m selected weights only, so that a refresh of a few saturated
pairs costs O(m) plus the model's own passes. Programming the whole matrix is the same call with
an all-true mask; :func:`full_report` spreads its compact result over the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from device_models import DeviceModel, DeviceState

from .mapping import WeightMapping


@dataclass(frozen=True)
class CrossbarProgramReport:
    """Outcome of :meth:`Crossbar.program_weights`.

    Attributes:
        pulses: programming pulses (SET and RESET) each device received in this call,
            ``[N, 2, out, in]`` int32.
        error: weights read back (noise-free, at the programming time) minus the *requested*
            targets, in weight units, ``[out, in]``; 0 where not programmed (``mask``).
            Clipped weights carry their clipping error.
        converged: every programmed device of the weight ended within the model's tolerance.
        clipped: weights whose target was beyond the representable range ``±w_per_us·g_norm``.
        n_clipped: number of clipped weights.
        w_per_us: the weight per µS used (scalar or ``[out, 1]``).
    """

    pulses: Tensor
    error: Tensor
    converged: Tensor
    clipped: Tensor
    n_clipped: int
    w_per_us: Tensor

    @property
    def total_pulses(self) -> int:
        return int(self.pulses.sum())

    @property
    def max_abs_error(self) -> float:
        return float(self.error.abs().max()) if self.error.numel() else 0.0

    @property
    def rms_error(self) -> float:
        return float(self.error.pow(2).mean().sqrt()) if self.error.numel() else 0.0


@dataclass(frozen=True)
class SelectedProgram:
    """What :func:`program_selected` (:meth:`Crossbar.program_selected`) did, on the m selected
    weights only.

    Attributes:
        flat: the selected weights' row-major indices into ``[out·in]``, ``[m]``.
        targets: their requested weights, ``[m]`` (weight units).
        w_per_us: their weight per µS (``[m]``, or the scalar tensor).
        clipped: targets beyond the representable range, ``[m]``.
        pulses: programming pulses (SET and RESET) of their devices, ``[N, 2, m]`` int32.
        converged: their devices ended within the model's tolerance, ``[N, 2, m]``.
    """

    flat: Tensor
    targets: Tensor
    w_per_us: Tensor
    clipped: Tensor
    pulses: Tensor
    converged: Tensor


def on_pair(state: DeviceState, k: int, fn: Callable[[DeviceState], Any]) -> Any:
    """Run ``fn`` on the view state of pair ``k`` (``[2, out, in]``) of ``state`` ``[N, 2, out, in]``;
    fields that ``fn`` rebinds (instead of changing them in place) are copied back."""
    sub = state.index(k)
    views = {f: getattr(sub, f) for f in DeviceState.FIELDS}
    result = fn(sub)
    for f, v in views.items():
        new = getattr(sub, f)
        if new is not v:
            v.copy_(new)
    return result


def program_selected(
    model: DeviceModel,
    state: DeviceState,
    generator: torch.Generator | None,
    mapping: WeightMapping,
    w_per_us: Tensor,
    w: Tensor,
    mask: Tensor,
    t_s: float,
    *,
    tolerance_us: float | None = None,
    max_pulses: int | None = None,
) -> SelectedProgram:
    """Program the weights where ``mask`` (``[out, in]`` bool) to ``w`` (``[out, in]`` float32, weight
    units) onto ``state`` ``[N, 2, out, in]`` at ``t_s`` (s); compact results.

    Per pair k (in order): one ``model.reset`` on the pair's view with the full ``[2, out, in]``
    mask of the devices to RESET, one ``model.program`` on the selected devices to program,
    gathered sign-major then row-major (the order of a boolean mask), written back, and the
    residual for pair k+1 read noise-free from the pair's view. Every random draw comes from
    ``generator``, in that order. No argument checks: callers pass tensors of the state's shape
    on its device.
    """
    n, _, out_f, in_f = state.shape
    n_w = out_f * in_f
    t_s = float(t_s)
    cs = mapping.significances
    flat = mask.reshape(-1).nonzero().squeeze(1)  # selected weights, row-major (the order of a bool mask)
    m = flat.numel()
    w_c = w.reshape(-1)[flat]
    wpu_c = w_per_us.reshape(-1)[torch.div(flat, in_f, rounding_mode="floor")] if w_per_us.dim() > 0 else w_per_us
    clipped_c, residual = mapping.clip(w_c, wpu_c)  # residual: µS of Σ_k c_k ΔG_k
    before = state.pulse_count.reshape(n, 2, n_w)[:, :, flat]
    conv_c = torch.ones((n, 2, m), dtype=torch.bool, device=state.device)
    for k in range(n):  # over the pairs of a weight (a handful), never over devices
        share = mapping.share(residual, k)
        pos, neg = share > 0, share < 0
        reset_c = torch.stack([~pos, ~neg])
        if bool(reset_c.any()):
            reset_mask = torch.zeros((2, n_w), dtype=torch.bool, device=state.device)
            reset_mask[:, flat] = reset_c
            rm = reset_mask.view(2, out_f, in_f)

            def reset_pair(s: DeviceState, rm: Tensor = rm) -> None:
                model.reset(s, rm, t_s, generator)

            on_pair(state, k, reset_pair)
        prog = torch.stack([pos, neg])
        if bool(prog.any()):
            targets = torch.stack([share.clamp(min=0.0), (-share).clamp(min=0.0)])
            sign, j = prog.nonzero(as_tuple=True)  # sign-major, then row-major: the bool-mask order
            dev = sign * n_w + flat[j]  # into the pair's [2·out·in] devices
            pair = state.index(k)
            views = [getattr(pair, f).reshape(-1) for f in DeviceState.FIELDS]
            # the difference is what is meant: the programmed device gets |share| plus its partner's
            # conductance right after that partner's RESET (noise-free; at the programming instant
            # no model has drifted yet, so the conductance as programmed)
            partner_g = views[DeviceState.FIELDS.index("g_us")][(1 - sign) * n_w + flat[j]]
            sub = DeviceState(**{f: v[dev] for f, v in zip(DeviceState.FIELDS, views)})
            report = model.program(sub, targets[sign, j] + partner_g, t_s, generator,
                                   tolerance_us=tolerance_us, max_pulses=max_pulses)
            for f, v in zip(DeviceState.FIELDS, views):
                v.index_copy_(0, dev, getattr(sub, f))
                dst = getattr(pair, f)
                if v.data_ptr() != dst.data_ptr() or not dst.is_contiguous():  # reshape made a copy
                    dst.copy_(v.view(dst.shape))
            conv_c[k, sign, j] = report.converged.to(torch.bool).reshape(-1)
        if k < n - 1:
            g_k = model.drifted(state.index(k), t_s)
            residual = residual - cs[k] * (g_k[0] - g_k[1]).reshape(-1)[flat]
    pulses_c = (state.pulse_count.reshape(n, 2, n_w)[:, :, flat] - before).to(torch.int32)
    return SelectedProgram(
        flat=flat, targets=w_c, w_per_us=wpu_c, clipped=clipped_c, pulses=pulses_c, converged=conv_c
    )


def full_report(
    sel: SelectedProgram,
    model: DeviceModel,
    state: DeviceState,
    mapping: WeightMapping,
    w_per_us: Tensor,
    t_s: float,
) -> CrossbarProgramReport:
    """The report of the whole matrix from the compact result ``sel`` of a programming at ``t_s``:
    the selected weights' values, zeros (pulses, error, clipped) and True (converged) elsewhere.

    The error is read from the selected weights' devices only: every one of them was just RESET
    or programmed at ``t_s`` (drift factor exactly 1), so these are the values a read of the whole
    array gives at those weights.
    """
    n, _, out_f, in_f = state.shape
    n_w = out_f * in_f
    dev = state.device
    flat = sel.flat
    pulses = torch.zeros((n, 2, n_w), dtype=torch.int32, device=dev)
    pulses[:, :, flat] = sel.pulses
    selected = DeviceState(
        **{f: getattr(state, f).reshape(n, 2, n_w)[:, :, flat].unsqueeze(2) for f in DeviceState.FIELDS}
    )
    error = torch.zeros(n_w, dtype=torch.float32, device=dev)
    error[flat] = mapping.combine(model.drifted(selected, float(t_s))).reshape(-1) * sel.w_per_us - sel.targets
    converged = torch.ones(n_w, dtype=torch.bool, device=dev)
    converged[flat] = sel.converged.all(0).all(0)
    clipped = torch.zeros(n_w, dtype=torch.bool, device=dev)
    clipped[flat] = sel.clipped
    return CrossbarProgramReport(
        pulses=pulses.view(n, 2, out_f, in_f),
        error=error.view(out_f, in_f),
        converged=converged.view(out_f, in_f),
        clipped=clipped.view(out_f, in_f),
        n_clipped=int(sel.clipped.sum()),
        w_per_us=w_per_us.clone(),
    )
