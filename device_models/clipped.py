"""Moments of a clipped normal read: the mean and spread of ``clip(mean + std·ξ, lo, hi)`` per device."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

CLIP_FAR_SIGMAS = 9.0
"""Distance from both clip bounds, in σ, beyond which a clipped read's moments are the unclipped
ones: Φ(−9) ≈ 1.1·10⁻¹⁹ and φ(9) ≈ 1.0·10⁻¹⁸ move the float64 mean and variance by less than their
own rounding, so the float32 results of :func:`clipped_normal_moments` equal ``(mean, std)`` bit for
bit there (held in ``tests/test_perf.py``); only the devices nearer a bound take the full formula."""

CLIP_CHUNK = 1 << 22
"""The formula's float64 temporaries (about 15 of 8 bytes per element) are formed for at most this
many elements at a time, so that a read of 10⁹ devices does not hold them for all at once."""


def clipped_normal_moments(mean: Tensor, std: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of ``clip(mean + std·ξ, lo, hi)``, ξ standard normal, elementwise
    (``hi`` may be ``inf``; ``std = 0`` gives the clipped mean and 0). Computed in float64 for the
    elements within :data:`CLIP_FAR_SIGMAS` σ of a bound; the others are ``(mean, std)`` unchanged,
    which is what the formula gives them in ``mean``'s dtype. Float32 CPU tensors go through one
    compiled pass (:mod:`device_models.clipped_kernel`), anything else through torch operations."""
    mean, std = torch.broadcast_tensors(mean, std)
    if mean.device.type == "cpu" and mean.dtype == torch.float32 and std.dtype == torch.float32:
        return _clipped_normal_moments_cpu(mean, std, lo, hi)
    return _clipped_normal_moments_torch(mean, std, lo, hi)


def _clipped_normal_moments_torch(mean: Tensor, std: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """:func:`clipped_normal_moments` in torch operations (any device and dtype): the formula for the
    elements near a bound, in chunks of :data:`CLIP_CHUNK`; ``(mean, std)`` for the others."""
    far = mean - lo >= CLIP_FAR_SIGMAS * std
    if not math.isinf(hi):
        far &= hi - mean >= CLIP_FAR_SIGMAS * std
    near = (~far).reshape(-1).nonzero().squeeze(1)
    del far
    if near.numel() == mean.numel() and near.numel() <= CLIP_CHUNK:
        return _clipped_normal_moments_full(mean, std, lo, hi)
    m_out, s_out = mean.clone(memory_format=torch.contiguous_format), std.clone(memory_format=torch.contiguous_format)
    m_flat, s_flat = mean.reshape(-1), std.reshape(-1)
    for start in range(0, near.numel(), CLIP_CHUNK):
        idx = near[start:start + CLIP_CHUNK]
        m_near, s_near = _clipped_normal_moments_full(m_flat[idx], s_flat[idx], lo, hi)
        m_out.view(-1)[idx] = m_near
        s_out.view(-1)[idx] = s_near
    return m_out, s_out


def _clipped_normal_moments_cpu(mean: Tensor, std: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """:func:`clipped_normal_moments` of float32 CPU tensors in one compiled pass
    (:mod:`device_models.clipped_kernel`)."""
    from .clipped_kernel import clipped_moments

    m_in, s_in = mean.detach().contiguous().reshape(-1), std.detach().contiguous().reshape(-1)
    m_out, s_out = torch.empty_like(m_in), torch.empty_like(s_in)
    hi_inf = math.isinf(hi)
    f32 = np.float32
    clipped_moments(m_in.numpy(), s_in.numpy(), f32(lo), f32(0.0 if hi_inf else hi), float(lo),
                    0.0 if hi_inf else float(hi), hi_inf, f32(CLIP_FAR_SIGMAS), m_out.numpy(), s_out.numpy())
    return m_out.view(mean.shape), s_out.view(std.shape)


def _clipped_normal_moments_full(mean: Tensor, std: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """:func:`clipped_normal_moments` by the formula for every element (float64)."""
    mu, sd = mean.double(), std.double()
    safe = sd.clamp(min=1e-30)
    a, b = (lo - mu) / safe, (hi - mu) / safe
    cdf_a, cdf_b = torch.special.ndtr(a), torch.special.ndtr(b)
    c = 1.0 / math.sqrt(2.0 * math.pi)
    pdf_a, pdf_b = c * torch.exp(-0.5 * a * a), c * torch.exp(-0.5 * b * b)
    a_pdf_a = torch.where(torch.isfinite(a), a * pdf_a, torch.zeros_like(a))
    b_pdf_b = torch.where(torch.isfinite(b), b * pdf_b, torch.zeros_like(b))
    inside = cdf_b - cdf_a
    above = torch.zeros_like(b) if math.isinf(hi) else 1.0 - cdf_b  # P(clipped at hi); 0 for hi = inf
    hi_f = 0.0 if math.isinf(hi) else hi
    m1 = lo * cdf_a + hi_f * above + mu * inside + sd * (pdf_a - pdf_b)
    m2 = (lo * lo * cdf_a + hi_f * hi_f * above + (mu * mu + sd * sd) * inside + 2 * mu * sd * (pdf_a - pdf_b)
          + sd * sd * (a_pdf_a - b_pdf_b))
    var = (m2 - m1 * m1).clamp(min=0.0)
    m1 = torch.where(sd > 0, m1, mu.clamp(lo, hi))
    return m1.to(mean.dtype), var.sqrt().to(mean.dtype)
