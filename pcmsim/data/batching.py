"""Padded, time-major batches of piano rolls for next-step prediction.

A batch of sequences ``x_b`` of lengths ``T_b`` (each ``[T_b, 88]``) becomes ``inputs[t, b] = x_b[t]``
and ``targets[t, b] = x_b[t + 1]`` for ``t = 0 .. T_b - 2``, zero-padded to the longest sequence,
with ``mask[t, b] = 1`` on the real steps. This is the set-up of Boulanger-Lewandowski et al.
(ICML 2012) for the polyphonic music datasets: predict each step's 88-key vector from the steps
before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from .formats import N_KEYS

__all__ = ["Batch", "make_batches", "pad_batch"]


@dataclass(frozen=True)
class Batch:
    """A time-major batch for next-step prediction.

    Attributes:
        inputs: ``[T-1, B, 88]`` float32, steps ``0 .. T_b-2`` of each sequence, zero after its end.
        targets: ``[T-1, B, 88]`` float32, steps ``1 .. T_b-1`` (the step after each input), zero
            after its end.
        mask: ``[T-1, B]`` float32, 1 on real (input, target) pairs, 0 on padding.
        lengths: ``[B]`` int64, real (input, target) pairs per column, ``T_b - 1`` (= ``mask.sum(0)``).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def num_steps(self) -> int:
        """Number of real predicted steps in the batch (the weight of this batch in a per-step mean)."""
        return int(self.lengths.sum())

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        return Batch(*(t.to(device) for t in (self.inputs, self.targets, self.mask, self.lengths)))


def _check(seq: torch.Tensor, index: int) -> None:
    if not isinstance(seq, torch.Tensor) or seq.ndim != 2 or seq.shape[1] != N_KEYS:
        shape = tuple(seq.shape) if isinstance(seq, torch.Tensor) else type(seq).__name__
        raise ValueError(f"sequence {index} has shape {shape}; expected a [T, {N_KEYS}] tensor")


def pad_batch(seqs: Sequence[torch.Tensor], device: torch.device | str | None = None) -> Batch:
    """Pad sequences (each ``[T_b, 88]``) into one :class:`Batch`.

    Sequences shorter than 2 steps have nothing to predict and are dropped silently; if none is
    left, ``ValueError``. The batch lies on ``device`` (default: that of the first sequence).
    """
    for i, s in enumerate(seqs):
        _check(s, i)
    kept = [s for s in seqs if s.shape[0] >= 2]
    if not kept:
        raise ValueError("pad_batch: no sequence with at least 2 time steps")
    device = kept[0].device if device is None else torch.device(device)
    padded = pad_sequence([s.to(device=device, dtype=torch.float32) for s in kept])  # [T, B, 88]
    lengths = torch.tensor([s.shape[0] - 1 for s in kept], dtype=torch.int64, device=device)
    steps = torch.arange(padded.shape[0] - 1, device=device)
    mask = (steps[:, None] < lengths[None, :]).to(torch.float32)  # [T-1, B]
    inputs = padded[:-1] * mask[:, :, None]  # zero the last real step where it falls into padding
    targets = padded[1:]  # already zero after each end
    return Batch(inputs=inputs, targets=targets, mask=mask, lengths=lengths)


def make_batches(
    seqs: Sequence[torch.Tensor],
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    *,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> Iterator[Batch]:
    """Batches of ``batch_size`` sequences, in order or shuffled with ``generator``.

    Sequences shorter than 2 steps are dropped first (no error), so every batch but possibly the
    last holds ``batch_size`` sequences (the last is dropped if ``drop_last``). Shuffling draws only
    from ``generator`` (required when ``shuffle``), so the order repeats for a given seed. Arguments
    are checked at the call, not at the first ``next``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if shuffle and generator is None:
        raise ValueError("shuffle=True needs a torch.Generator (derived from the run's seed)")
    for i, s in enumerate(seqs):
        _check(s, i)
    kept = [s for s in seqs if s.shape[0] >= 2]
    if shuffle:
        assert generator is not None
        order = torch.randperm(len(kept), generator=generator, device=generator.device).tolist()
    else:
        order = list(range(len(kept)))
    stop = len(order) - len(order) % batch_size if drop_last else len(order)

    def batches() -> Iterator[Batch]:
        for start in range(0, stop, batch_size):
            yield pad_batch([kept[i] for i in order[start : start + batch_size]], device=device)

    return batches()
