"""Drift compensation of a crossbar's outputs (global, or one factor per output column).

PCM conductances decay as ``(t/t0)^−ν`` (Joshi et al., Nat. Commun. 11, 2473, 2020), so the
outputs of a tile shrink over time. Global drift compensation, as aihwkit's
``GlobalDriftCompensation`` (src/aihwkit/inference/compensation/drift.py, commit 4545f11):

1. right after programming, read the tile with one-hot inputs (the identity matrix: every input
   line alone, through the full periphery with its noise) and keep the reference
   ``ref = mean |y|`` over all outputs of all reads;
2. at a later time ``t``, read again: ``cur = mean |y|``;
3. multiply the digital outputs by ``α = ref / cur``.

The per-column variant keeps one reference per output column (the mean over that column's
reads) and one ``α_j = ref_j / cur_j``, which also corrects drift that differs between columns
(e.g. columns of small weights, whose drift exponent is larger).

The factors are applied in digital after the ADC; they cost one read of ``in`` one-hot vectors
per crossbar per calibration.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .crossbar import Crossbar

CompensationMode = Literal["none", "global", "per-column"]
MODES: tuple[str, ...] = ("none", "global", "per-column")

_FLOOR = 1e-6
"""Readouts are floored at this fraction of the reference mean (aihwkit floors at 1e-4 of w_max)."""


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is a compensation mode, else raise naming the valid ones."""
    if mode not in MODES:
        raise ValueError(f"unknown drift compensation {mode!r}; expected one of {', '.join(MODES)}")
    return mode


@torch.no_grad()
def column_readout(crossbar: Crossbar, t_s: float) -> Tensor:
    """Mean ``|y|`` per output column of one-hot reads of ``crossbar`` at ``t_s``, ``[out]`` (weight units).

    The reads go through the periphery (DAC, ADC, read and output noise), as on the chip.
    """
    eye = torch.eye(crossbar.in_features, dtype=torch.float32, device=crossbar.device)
    return crossbar.mvm(eye, t_s).abs().mean(dim=0)


def compensation_factors(mode: str, reference: Tensor, current: Tensor) -> Tensor:
    """α per output column ``[out]`` from the per-column readouts at calibration and now.

    ``global``: one α = mean(reference)/mean(current) for all columns (every column has the same
    number of reads, so this is aihwkit's mean over all outputs); ``per-column``: ``α_j = ref_j /
    cur_j``; ``none``: 1.
    """
    check_mode(mode)
    if reference.shape != current.shape:
        raise ValueError(
            f"reference {tuple(reference.shape)} and current {tuple(current.shape)} differ in shape"
        )
    if mode == "none":
        return torch.ones_like(reference)
    floor = _FLOOR * float(reference.abs().mean()) + 1e-30
    if mode == "global":
        alpha = reference.mean().clamp(min=floor) / current.mean().clamp(min=floor)
        return alpha.expand_as(reference).clone()
    return reference.clamp(min=floor) / current.clamp(min=floor)


class CompensatedLayer(nn.Module):
    """A layer whose outputs carry drift compensation: what :func:`calibrate_network` and
    :func:`recalibrate_network` find in a network (:class:`pcmsim.analog.AnalogLinear` is one).

    Subclasses take a reference readout right after programming (:meth:`calibrate`) and turn a
    later readout into their factors α (:meth:`recalibrate`), e.g. with :func:`column_readout`
    and :func:`compensation_factors`. The interface lives here, and the layers import it, so that
    this module needs no layer module (imports run one way).
    """

    def calibrate(self, t_s: float | None = None) -> None:
        """Take the reference readout at ``t_s`` (s); α ← 1."""
        raise NotImplementedError

    def recalibrate(self, t_s: float | None = None, mode: str | None = None) -> Tensor:
        """Compute and apply the factors α at ``t_s`` (s) for ``mode``; returns α ``[out]``."""
        raise NotImplementedError


def compensated_layers(model: nn.Module) -> list[CompensatedLayer]:
    """The :class:`CompensatedLayer` modules of ``model`` in registration order."""
    return [m for m in model.modules() if isinstance(m, CompensatedLayer)]


def calibrate_network(model: nn.Module, t_s: float | None = None) -> int:
    """Take the reference readout of every :class:`CompensatedLayer` (AnalogLinear) in ``model`` at
    ``t_s`` (s; default: each layer's own time; right after programming); returns the number of layers."""
    layers = compensated_layers(model)
    for layer in layers:
        layer.calibrate(None if t_s is None else float(t_s))
    return len(layers)


def recalibrate_network(model: nn.Module, t_s: float | None, mode: str) -> int:
    """Set every :class:`CompensatedLayer`'s (AnalogLinear's) compensation to ``mode`` and compute its
    factors at ``t_s`` (s; ``None``: each layer's own time); returns the number of layers. Needs
    :func:`calibrate_network` first (unless ``mode="none"``)."""
    check_mode(mode)
    layers = compensated_layers(model)
    for layer in layers:
        layer.recalibrate(None if t_s is None else float(t_s), mode=mode)
    return len(layers)
