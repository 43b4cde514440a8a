"""The one digital cost model: the energy and latency of digital work, for the PCM chip's digital
side and for every digital baseline alike (dense FP32 CPU and GPU, the event-driven SNN
accelerator's dense training part), at one CMOS node (:attr:`CostProfile.node_nm`).

Digital work is FLOPs (FP32, half a multiply-accumulate each: ``(E_mult + E_add) / 2``), integer
additions (the partial sums of a layer that spans several input tiles) and the bytes it moves
to and from the stores that hold its data. A store has a size (bytes) and a traffic (bytes read
and written); :func:`place` puts the stores into on-chip SRAM in the given order while they fit
into ``sram_bytes`` and the rest into DRAM (the choice a hardware architect makes: the small,
hot data on chip). An SRAM access costs more in a larger array: ``E_SRAM(S) = E_8KB · √(S / 8 KB)``
per 64 bits (Horowitz's 45-nm figures, 10 pJ at 8 KB, 20 pJ at 32 KB and 100 pJ at 1 MB, follow
this law, the 1-MB one within 14 %; below 8 KB the 8-KB figure); a DRAM access ``E_DRAM`` per 64 bits.

What differs between the platforms is only what they compute (the PCM chip leaves the forward
products to its arrays; the SNN accelerator pays its forward per synaptic event) and how fast
(their throughput sets the latency): the energy of a FLOP and of a byte is the same everywhere,
so a comparison is on equal terms. Left out for every platform alike: instruction fetch and
control of a programmable processor, static power, and the register-file traffic of the
arithmetic (part of the per-operation energies above in Horowitz's accounting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .profile import CostProfile

SRAM_REFERENCE_BYTES = 8 * 1024
"""The SRAM size of ``e_sram_64b_j`` (Horowitz's 8-KB array)."""


@dataclass(frozen=True)
class Store:
    """Data that digital work keeps and moves: ``size_bytes`` held, ``traffic_bytes`` read and written."""

    name: str
    size_bytes: float
    traffic_bytes: float


@dataclass(frozen=True)
class DigitalWork:
    """FLOPs, integer additions and the stores (in placement order: first placed first)."""

    flops: float = 0.0
    int_adds: float = 0.0
    stores: tuple[Store, ...] = ()


def sram_j_per_64b(size_bytes: float, p: CostProfile) -> float:
    """One 64-bit access of an SRAM of ``size_bytes``: ``E_8KB · √(max(S, 8 KB) / 8 KB)``, J."""
    return p.e_sram_64b_j * math.sqrt(max(float(size_bytes), SRAM_REFERENCE_BYTES) / SRAM_REFERENCE_BYTES)


def place(stores: tuple[Store, ...], sram_bytes: float) -> dict[str, str]:
    """``"sram"`` or ``"dram"`` per store: in order, on chip while the stores so far fit."""
    used = 0.0
    out: dict[str, str] = {}
    for s in stores:
        if used + s.size_bytes <= sram_bytes:
            used += s.size_bytes
            out[s.name] = "sram"
        else:
            out[s.name] = "dram"
    return out


def memory_j(stores: tuple[Store, ...], p: CostProfile) -> dict[str, float]:
    """Energy of the stores' traffic, J, split into ``sram`` and ``dram``. The SRAM stores share
    one array (its size: all of them together)."""
    where = place(stores, p.sram_bytes)
    on_chip = sum(s.size_bytes for s in stores if where[s.name] == "sram")
    e_sram = sram_j_per_64b(on_chip, p)
    out = {"sram": 0.0, "dram": 0.0}
    for s in stores:
        words = s.traffic_bytes / 8.0
        if where[s.name] == "sram":
            out["sram"] += words * e_sram
        else:
            out["dram"] += words * p.e_dram_64b_j
    return out


def energy_j(work: DigitalWork, p: CostProfile) -> dict[str, float]:
    """Energy of ``work`` by part (``arithmetic``, ``sram``, ``dram``), J."""
    return {"arithmetic": work.flops * p.e_flop_j + work.int_adds * p.e_int32_add_j, **memory_j(work.stores, p)}


def latency_s(work: DigitalWork, flops_per_s: float) -> float:
    """The time of ``work`` at a throughput, s (integer additions counted as FLOPs)."""
    return (work.flops + work.int_adds) / flops_per_s


def placement_report(stores: tuple[Store, ...], p: CostProfile) -> list[dict[str, object]]:
    """Where every store lives and its size and traffic (for the report)."""
    where = place(stores, p.sram_bytes)
    return [{"store": s.name, "size_bytes": s.size_bytes, "traffic_bytes": s.traffic_bytes, "memory": where[s.name]}
            for s in stores]
