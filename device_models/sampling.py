"""Work buffers and fast normal draws shared by the device models (no physics here)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor


class ScratchBuffers:
    """Reusable work tensors: one flat buffer per (name, device, dtype), grown on demand and handed
    out as a view of the size asked for, so pulse loops over large populations neither allocate nor
    page-fault per round (also when the population shrinks round by round). Below :attr:`SMALL`
    elements nothing is kept: :meth:`out` gives ``None`` (the op allocates its result, one
    dispatch fewer than filling a view) and :meth:`normal` a fresh ``torch.randn``. Holds memory
    until :meth:`clear`; not thread-safe."""

    SMALL = 1 << 14
    """Fewer elements than this are allocated afresh: small blocks come from the allocator's free
    lists without page faults, and an allocating op is cheaper than a view of a buffer."""

    def __init__(self) -> None:
        self._bufs: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}

    def out(self, name: str, like: Tensor, dtype: torch.dtype | None = None) -> Tensor | None:
        """An ``out=`` argument of ``like``'s shape (contiguous, contents undefined), or ``None`` for a
        population under :attr:`SMALL` devices."""
        n = like.numel()
        if n < self.SMALL:
            return None
        dt = dtype or like.dtype
        key = (name, like.device, dt)
        buf = self._bufs.get(key)
        if buf is None or buf.numel() < n:
            buf = torch.empty(n, dtype=dt, device=like.device)
            self._bufs[key] = buf
        return buf[:n].view(like.shape)

    def normal(self, name: str, like: Tensor, generator: torch.Generator | None) -> Tensor:
        """Standard normal draws of ``like``'s shape and dtype from ``generator`` (:func:`fill_normal_`
        into the buffer ``name``; for a small population a fresh ``torch.randn``: the same draws)."""
        buf = self.out(name, like)
        if buf is not None:
            return fill_normal_(buf, generator)
        if like.is_contiguous():  # (the same as torch.randn of the shape, with less argument parsing)
            return torch.empty_like(like).normal_(generator=generator)
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    def clear(self) -> None:
        self._bufs.clear()


NORMAL_CHUNK = 1 << 18  # elements per independently seeded block of fill_normal_
_POOL: Any = None
_POOL_KEY: tuple[int, int] = (0, 0)


def _normal_pool(workers: int) -> Any:
    """A thread pool for fill_normal_, rebuilt after a fork or a change of thread count."""
    global _POOL, _POOL_KEY
    from concurrent.futures import ThreadPoolExecutor

    key = (os.getpid(), workers)
    if _POOL is None or _POOL_KEY != key:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="device_models-randn")
        _POOL_KEY = key
    return _POOL


def fill_normal_(out: Tensor, generator: torch.Generator | None) -> Tensor:
    """Fill ``out`` with standard normal draws from ``generator``, in parallel for large CPU tensors.

    torch's CPU ``normal_`` runs on one thread (a single Mersenne-Twister stream) and dominates a
    SET pulse. For a contiguous CPU tensor of more than ``NORMAL_CHUNK`` elements this draws one
    64-bit seed per block of ``NORMAL_CHUNK`` elements from ``generator`` and fills the blocks from
    their own generators on ``torch.get_num_threads()`` threads. The result depends only on
    ``generator`` and ``out.numel()`` (never on the thread count or scheduling): bit-reproducible.
    Smaller, non-contiguous or non-CPU tensors use a plain ``normal_`` with ``generator``.
    """
    n = out.numel()
    if out.device.type != "cpu" or n <= NORMAL_CHUNK or not out.is_contiguous():
        return out.normal_(generator=generator)
    flat = out.view(-1)
    n_chunks = (n + NORMAL_CHUNK - 1) // NORMAL_CHUNK
    seeds = torch.randint(0, 2**62, (n_chunks,), generator=generator, dtype=torch.int64).tolist()

    def fill(i: int) -> None:
        g = torch.Generator().manual_seed(seeds[i])
        flat[i * NORMAL_CHUNK:(i + 1) * NORMAL_CHUNK].normal_(generator=g)

    workers = max(1, min(torch.get_num_threads(), n_chunks))
    if workers == 1:
        for i in range(n_chunks):
            fill(i)
    else:
        list(_normal_pool(workers).map(fill, range(n_chunks)))
    return out
