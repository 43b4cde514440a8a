"""Thread control of the CPU operations of a small array."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

SINGLE_THREAD_MAX_DEVICES = 1 << 18
"""Arrays of at most this many devices (262,144) run their operations on one CPU thread
(:func:`threads_for`)."""


@contextmanager
def threads_for(n_devices: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the torch operations of an array of ``n_devices`` devices on one CPU thread when it is small.

    The tensors of a small array (the 52,800 devices of the 88-150-88 network: at most ~10⁵
    elements) are too small for intra-op parallelism: forking and joining OpenMP threads costs
    more than the work (one analog product of a 150×88 array with 800 inputs: 2.8 ms on two
    threads, 1.7 ms on one; shared 2-core machine). Above :data:`SINGLE_THREAD_MAX_DEVICES`, or off
    the CPU, the thread setting is left alone. The results do not depend on it: the operations are
    elementwise, exact reductions (max, any, integer sums) or matrix products whose split over
    threads keeps each dot product's order (checked bit for bit on 1 and 2 threads,
    ``tests/test_perf.py``). ``torch.set_num_threads`` is process-wide: not for use while another
    Python thread runs torch operations.
    """
    if n_devices > SINGLE_THREAD_MAX_DEVICES or (device is not None and torch.device(device).type != "cpu"):
        yield
        return
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
