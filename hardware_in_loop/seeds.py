"""Every random stream of a run, derived from its one seed.

A run never touches torch's global generator: each consumer gets its own ``torch.Generator``
seeded with ``derive_seed(seed, TAG, ...)``, and the checkpoint carries every generator's state,
so a run repeats bit for bit on the CPU, also across a resume.
"""

from __future__ import annotations

from enum import IntEnum

import torch


class Stream(IntEnum):
    """The tags of a run's random streams (their values fix the draws: never renumber)."""

    SHUFFLE = 1  # the order of the training examples, per epoch: derive_seed(seed, SHUFFLE, epoch)
    MODEL = 2  # initial weights and neuron parameters
    HARDWARE = 3  # the update scheme's draws (stochastic rounding, pulse noise)
    DEVICES = 4  # the crossbars' own generators (programming, read noise)
    EVAL_INPUT = 5  # input encoding during evaluation (re-seeded for every evaluation)
    TRAIN_INPUT = 6  # input encoding during training (one stream over the whole run)
    VALID_SPLIT = 7  # which training examples are held out for validation
    HWA = 8  # hardware-aware training's draws (devices, programming, read noise, delays: pcmsim.hwa)


def derive_seed(seed: int, *tags: int) -> int:
    """A 63-bit seed from ``seed`` and a path of tags (a 64-bit LCG step per tag).

    Seeds below 2³² give the values of every earlier version; larger seeds are kept to 63 bits (they
    were once cut to 32, so that seed 2³² ran as seed 0)."""
    if seed < 0:
        raise ValueError(f"seed={seed!r} is invalid: expected an integer ≥ 0")
    s = seed & 0x7FFFFFFFFFFFFFFF
    for tag in tags:
        s = (s * 6364136223846793005 + 1442695040888963407 + int(tag)) & 0x7FFFFFFFFFFFFFFF
    return s


def generator(seed: int, *tags: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``derive_seed(seed, *tags)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *tags))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of ``n`` training examples in ``epoch`` (a pure function of seed and epoch)."""
    return torch.randperm(n, generator=generator(seed, Stream.SHUFFLE, epoch)).tolist()
