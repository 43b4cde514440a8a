"""Metrics of polyphonic music prediction (Boulanger-Lewandowski et al., ICML 2012).

NLL: negative log-likelihood of the next step's 88-key binary vector, summed over the keys,
averaged over all time steps (every step of every sequence weighs the same).
Frame accuracy: TP / (TP + FP + FN) over all keys and steps, with the prediction
``p > 0.5`` (Bay et al., ISMIR 2009, as used by Boulanger-Lewandowski et al.).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def nll_sum_over_keys(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Sum over valid steps of the per-step NLL (summed over keys), in nats. Shapes [T,B,K], [T,B]."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(-1)
    return (bce * mask).sum()


@dataclass
class MusicMetrics:
    """Running totals over batches; ``nll`` and ``frame_accuracy`` read them out."""

    nll_total: float = 0.0
    steps: float = 0.0
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0

    def update(self, logits: Tensor, targets: Tensor, mask: Tensor) -> None:
        with torch.no_grad():
            self.nll_total += float(nll_sum_over_keys(logits, targets, mask))
            self.steps += float(mask.sum())
            pred = (logits > 0).to(targets.dtype) * mask.unsqueeze(-1)
            tgt = targets * mask.unsqueeze(-1)
            self.tp += float((pred * tgt).sum())
            self.fp += float((pred * (1 - tgt)).sum())
            self.fn += float(((1 - pred) * tgt).sum())

    @property
    def nll(self) -> float:
        return self.nll_total / max(self.steps, 1.0)

    @property
    def frame_accuracy(self) -> float:
        denom = self.tp + self.fp + self.fn
        return self.tp / denom if denom > 0 else 0.0
