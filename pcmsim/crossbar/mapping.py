"""Weights ↔ conductances: device pairs, their significances and the weight scale.

Layout (fixed: the update schemes of ``hardware_in_loop`` index it directly): one
:class:`device_models.DeviceState` of shape ``[N, 2, out, in]``; dim 0 the N device pairs of a
weight (``devices_per_sign``), dim 1 the sign (0 = G⁺, 1 = G⁻). The weight is::

    W = w_per_us · Σ_k c_k (G⁺_k − G⁻_k)            (weight units; G in µS)

with the significances ``c_k`` (``equal``: 1; ``graded``: ``base^−k``) and ``w_per_us`` the
weight per µS (a scalar, or ``[out, 1]`` with ``per_column_scale``).

Normalisation: the periphery works on ``Ĝ = Σ_k c_k (G⁺_k − G⁻_k) / g_norm`` with
``g_norm = g_max · Σ_k c_k`` (µS), so ``|Ĝ| ≤ 1``; the largest representable ``|W|`` is
``w_per_us · g_norm``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import CrossbarConfig


class WeightMapping:
    """The arithmetic of the mapping ``W = w_per_us · Σ_k c_k (G⁺_k − G⁻_k)`` of one crossbar.

    Holds no weights and no scale: ``w_per_us`` is the crossbar's (it changes at programming and
    loading); the methods take it.

    Args:
        config: the crossbar's layout (pairs, significances, weight scale).
        g_max_us: the device model's largest conductance, µS.
        out_features: rows of the matrix (the shape of a per-column scale).
        device: torch device of the significance tensor.

    Attributes:
        devices_per_sign: N pairs per weight.
        significances: ``c_k`` as floats, k = 0 … N−1.
        c: ``c_k`` as a float32 tensor ``[N]``.
        g_max_us: the largest conductance of one device, µS.
        g_norm_us: ``g_max · Σ_k c_k``, µS: the largest ``|Σ_k c_k ΔG_k|``.
    """

    def __init__(
        self, config: CrossbarConfig, g_max_us: float, out_features: int, device: torch.device
    ) -> None:
        self.config = config
        self.out_features = int(out_features)
        self.devices_per_sign: int = config.devices_per_sign
        self.significances: tuple[float, ...] = config.significances
        self.c: Tensor = torch.tensor(self.significances, dtype=torch.float32, device=device)
        self.g_max_us: float = float(g_max_us)
        self.g_norm_us: float = float(g_max_us) * float(sum(self.significances))

    def to(self, device: torch.device) -> WeightMapping:
        """Move the significance tensor to ``device`` (in place; returns self)."""
        self.c = self.c.to(device)
        return self

    # ---- the scale ------------------------------------------------------------------------
    def initial_w_per_us(self) -> Tensor:
        """``w_per_us`` before any programming: the fixed ``weight_scale``, or with ``"auto"`` the
        scale at which a weight of 1 fills ``auto_scale_fill`` of the range; a scalar tensor, or
        ``[out, 1]`` with ``per_column_scale``."""
        cfg = self.config
        ws = cfg.weight_scale
        w0 = (1.0 / (self.g_norm_us * cfg.auto_scale_fill)) if ws == "auto" else float(ws)
        shape = (self.out_features, 1) if cfg.per_column_scale else ()
        return torch.full(shape, w0, dtype=torch.float32, device=self.c.device)

    def auto_scale(self, w: Tensor) -> Tensor:
        """The ``w_per_us`` that ``weight_scale="auto"`` picks for ``w``: ``max|W| / (fill · g_norm)``
        (per row with ``per_column_scale``; an all-zero matrix or row counts as ``max|W| = 1``)."""
        full = self.g_norm_us * self.config.auto_scale_fill
        if self.config.per_column_scale:
            m = w.abs().amax(dim=1, keepdim=True)
        else:
            m = w.abs().max()
        m = torch.where(m > 0, m, torch.ones_like(m))
        return (m / full).to(torch.float32)

    def clip(self, w: Tensor, w_per_us: Tensor) -> tuple[Tensor, Tensor]:
        """Targets ``w`` (weight units) against the range ``±w_per_us · g_norm`` (elementwise; shapes
        broadcast). Returns ``(clipped, residual_us)``: the targets beyond the range (by more than
        a relative 10⁻⁶), and the clipped targets in µS of ``Σ_k c_k ΔG_k``."""
        cap = w_per_us * self.g_norm_us  # largest representable |W|
        clipped = w.abs() > cap * (1.0 + 1e-6)
        residual = torch.maximum(torch.minimum(w, cap), -cap) / w_per_us
        return clipped, residual

    def share(self, residual_us: Tensor, k: int) -> Tensor:
        """Pair ``k``'s part of the ``residual_us`` (µS) still to be programmed, as one device's
        conductance (µS, signed: > 0 on G⁺, < 0 on G⁻, at most ``g_max``): ``equal`` splits the
        residual evenly over the pairs k … N−1, ``graded`` gives all of it to pair k."""
        n = self.devices_per_sign
        divisor = (n - k) if self.config.significance == "equal" else 1
        return (residual_us / (self.significances[k] * divisor)).clamp(-self.g_max_us, self.g_max_us)

    # ---- conductances → weights -------------------------------------------------------------
    def combine(self, g: Tensor) -> Tensor:
        """``Σ_k c_k (g[..., k, 0] − g[..., k, 1])`` over the trailing ``[N, 2, out, in]`` (µS)."""
        if self.devices_per_sign == 1:
            return g[..., 0, 0, :, :] - g[..., 0, 1, :, :]
        diff = g[..., :, 0, :, :] - g[..., :, 1, :, :]
        return (diff * self.c.view(-1, 1, 1)).sum(dim=-3)

    def combine_var(self, sigma: Tensor) -> Tensor:
        """``Σ_k c_k² (σ⁺_k² + σ⁻_k²)`` (µS²) of independent device noise ``sigma`` ``[N, 2, out, in]`` (µS)."""
        s2 = sigma * sigma
        if self.devices_per_sign == 1:
            return s2[0, 0] + s2[0, 1]
        return ((s2[:, 0] + s2[:, 1]) * (self.c * self.c).view(-1, 1, 1)).sum(dim=0)
