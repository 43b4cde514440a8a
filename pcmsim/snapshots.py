"""The conductance snapshots of a run folder: what every device held at the start, at chosen epochs
and at the end of training.

A pcm run of ``pcmsim train`` / ``pcmsim reproduce`` / ``hardware_in_loop.train`` writes
``snapshots/<tag>.pt`` (``start``, ``epoch<N>`` for each of ``snapshot_epochs``, and ``end`` unless
the last epoch's snapshot already holds the end)::

    import pcmsim
    for snap in pcmsim.load_snapshots("runs/jsb-52800/hil"):
        print(snap.tag, snap.epoch, snap.t_s, {name: g.shape for name, g in snap.g_us.items()})

Each layer's conductances are those of its devices at the snapshot's simulated time ``t_s`` (drifted,
without read noise), shaped like the crossbar's state ``[N, 2, out, in]`` (N pairs of G⁺ / G⁻ per
weight), in µS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .fileio import load_tensors

__all__ = ["Snapshot", "SnapshotError", "load_snapshot", "load_snapshots"]

_EPOCH_TAG = re.compile(r"epoch(\d+)$")


class SnapshotError(ValueError):
    """A snapshot folder or file that is missing or unreadable (a one-line message)."""


@dataclass(frozen=True)
class Snapshot:
    """One snapshot of a run.

    Attributes:
        tag: the file's name without ``.pt``: ``start``, ``epoch<N>`` or ``end``.
        epoch: the epochs trained when it was taken (0 for ``start``).
        t_s: the simulated time of the snapshot, s.
        g_us: layer name → the conductance of each device, µS, ``[N, 2, out, in]``.
        pulse_count: layer name → programming pulses (SET and RESET) each device has received.
        path: the file it was read from.
    """

    tag: str
    epoch: int | None
    t_s: float
    g_us: dict[str, Tensor]
    pulse_count: dict[str, Tensor]
    path: Path

    def all_g_us(self) -> Tensor:
        """Every device's conductance of every layer in one flat tensor, µS."""
        return torch.cat([g.flatten() for g in self.g_us.values()]) if self.g_us else torch.empty(0)


def _epoch_of(tag: str, stored: object) -> int | None:
    if isinstance(stored, int):
        return stored
    if tag == "start":
        return 0
    match = _EPOCH_TAG.match(tag)
    return int(match.group(1)) if match else None


def load_snapshot(path: str | Path) -> Snapshot:
    """One snapshot file (``torch.load`` with ``weights_only=True``); a bad file is one :class:`SnapshotError`."""
    p = Path(path)
    data = load_tensors(p, SnapshotError, noun="snapshot", readable="snapshot")
    if not isinstance(data, dict) or not isinstance(data.get("g_us"), list) or "t_s" not in data:
        raise SnapshotError(f"{p}: not a pcmsim snapshot (expected the fields 'g_us' (a list) and 't_s')")
    g = data["g_us"]
    counts = data.get("pulse_count") or [None] * len(g)
    names = data.get("layers") or [f"layer{i}" for i in range(len(g))]
    if len(names) != len(g) or len(counts) != len(g):
        raise SnapshotError(f"{p}: 'layers', 'g_us' and 'pulse_count' have different lengths "
                            f"({len(names)}, {len(g)}, {len(counts)})")
    tag = str(data.get("tag", p.stem))
    return Snapshot(tag=tag, epoch=_epoch_of(tag, data.get("epoch")), t_s=float(data["t_s"]),
                    g_us=dict(zip(names, g)),
                    pulse_count={n: c for n, c in zip(names, counts) if c is not None}, path=p)


def load_snapshots(run_dir: str | Path) -> list[Snapshot]:
    """Every snapshot of a run folder, in the order they were taken (by simulated time, then epoch).

    Args:
        run_dir: a run folder (the one that holds ``snapshots/``), e.g. ``runs/jsb-52800/hil``.

    Returns:
        :class:`Snapshot` objects; ``snap.g_us[layer]`` is each layer's conductance (µS) and
        ``snap.epoch`` the epochs trained when it was taken.

    Raises:
        SnapshotError: one line when the folder, its ``snapshots/`` or a snapshot file is missing or
            unreadable (a run in the ``fp32`` flavour has no devices and so no snapshots).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise SnapshotError(f"{run}: no run folder there")
    folder = run / "snapshots"
    if not folder.is_dir():
        raise SnapshotError(f"{run}: no snapshots/ folder (only runs with devices, the pcm flavour, take snapshots)")
    files = sorted(folder.glob("*.pt"))
    if not files:
        raise SnapshotError(f"{folder}: no snapshot files (*.pt) in it")
    snaps = [load_snapshot(f) for f in files]
    order = {"start": 0, "end": 2}
    return sorted(snaps, key=lambda s: (s.t_s, order.get(s.tag, 1), s.epoch if s.epoch is not None else -1))
