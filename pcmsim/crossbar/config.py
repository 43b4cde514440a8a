"""The layout of a weight matrix on devices and its periphery: :class:`CrossbarConfig`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ..periphery import PeripheryConfig
from ..typedconfig import at_least, bad_value, check, check_fields, load
from .ir_drop import IRDropMode

Significance = Literal["equal", "graded"]


def check_positive_int(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer ≥ 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer ≥ 1")


def _load_periphery(value: Any, source: str, path: str) -> PeripheryConfig:
    """``"ideal"`` (:meth:`PeripheryConfig.ideal`), an object of PeripheryConfig fields, or one."""
    if isinstance(value, PeripheryConfig):
        return value
    if value == "ideal":
        return PeripheryConfig.ideal()
    if not isinstance(value, dict):
        raise bad_value(source, path, value, "'ideal' or an object of periphery fields")
    return load(PeripheryConfig, value, source=source, path=path)


def _weight_scale_ok(v: Any) -> bool:
    return v == "auto" or (not isinstance(v, (bool, str)) and v > 0)


@dataclass(frozen=True)
class CrossbarConfig:
    """How a weight matrix is laid out on devices and read.

    Attributes:
        devices_per_sign: N device pairs per weight (1: one differential pair G⁺, G⁻).
        significance: ``"equal"`` (every pair weighs 1) or ``"graded"`` (pair k weighs
            ``significance_base^−k``).
        significance_base: the base of graded significance (> 1).
        tile_rows: most inputs (unit-cell rows) per tile.
        tile_cols: most outputs (unit-cell columns) per tile.
        weight_scale: ``"auto"``: at programming, ``w_per_us`` is chosen so that ``max|W|`` lands
            at ``auto_scale_fill`` of the full range (``s = g_max/max|W|`` for one pair and fill 1,
            aihwkit's mapping); or a fixed weight per µS (float > 0).
        auto_scale_fill: fraction of the full range (``g_max · Σ c_k``) where ``max|W|`` lands
            with ``weight_scale="auto"`` (1: the largest weight saturates its device; < 1 leaves
            headroom for training updates).
        per_column_scale: one ``w_per_us`` per output column (``[out, 1]``) instead of a scalar.
        periphery: DAC, ADC, noise; :meth:`PeripheryConfig.ideal` turns it all off.
        read_noise: draw the device model's read noise at each read (False: drift only).
        exact_read_noise: sample a noisy array per batch element through the model's ``read``
            instead of the Gaussian output-noise shortcut (see the module docstring).
        exact_chunk_elements: with ``exact_read_noise``, the most device reads held at once.
        ir_drop: resistance of the wires in every read (:mod:`pcmsim.crossbar.ir_drop`):
            ``"off"`` (the ideal product ``Σ x·G``), ``"exact"`` (the tile's resistive network
            solved once per read of the devices), ``"first-order"`` (first order in the wire
            resistance, in torch; its error: ``docs/ir-drop.md``). Read noise and output noise
            are added to the product as without IR drop.
        wire_ohm: resistance of one wire segment (cell to cell, driver to the first cell, last
            cell to the sense amplifier), Ω. 0.35 Ω: aihwkit's wire resistance between two PCM
            cells (``IOParameters.ir_drop_g_ratio = 1/(0.35 Ω · 5 µS)``, aihwkit 1.1
            ``simulator/parameters/io.py``).
        access_ohm: series resistance of each cell's access device, Ω (0: none). No published
            on-resistance of a PCM array's access transistor is cited here: set it from the
            array being modelled.
    """

    devices_per_sign: int = field(default=1, metadata=at_least(1))
    significance: Significance = "equal"
    significance_base: float = field(default=2.0, metadata=check(lambda v: v > 1, "a finite number > 1"))
    tile_rows: int = field(default=256, metadata=at_least(1))
    tile_cols: int = field(default=256, metadata=at_least(1))
    weight_scale: Literal["auto"] | float = field(
        default="auto", metadata=check(_weight_scale_ok, "'auto' or a finite weight per µS > 0"))
    auto_scale_fill: float = field(default=1.0, metadata=check(lambda v: 0 < v <= 1, "a number in (0, 1]"))
    per_column_scale: bool = False
    periphery: PeripheryConfig = field(default_factory=PeripheryConfig, metadata={"load": _load_periphery})
    read_noise: bool = True
    exact_read_noise: bool = False
    exact_chunk_elements: int = field(default=1 << 23, metadata=at_least(1))
    ir_drop: IRDropMode = "off"
    wire_ohm: float = field(default=0.35, metadata=check(lambda v: v > 0, "a finite resistance > 0 Ω"))
    access_ohm: float = field(default=0.0, metadata=check(lambda v: v >= 0, "a finite resistance ≥ 0 Ω"))

    def __post_init__(self) -> None:
        check_fields(self)
        if not isinstance(self.periphery, PeripheryConfig):
            raise ValueError(f"periphery={self.periphery!r} is invalid: expected a PeripheryConfig")
        if self.ir_drop != "off" and self.exact_read_noise:
            raise ValueError(f"ir_drop={self.ir_drop!r} with exact_read_noise=True is not supported: "
                             "IR drop solves the noise-free array once per read (set exact_read_noise=False)")

    @property
    def significances(self) -> tuple[float, ...]:
        """``c_k`` for k = 0 … N−1."""
        n = self.devices_per_sign
        if self.significance == "equal":
            return (1.0,) * n
        return tuple(float(self.significance_base) ** (-k) for k in range(n))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, *, source: str = "crossbar config", path: str = "") -> CrossbarConfig:
        """Build from plain data through :func:`pcmsim.typedconfig.load`: unknown fields, wrong types
        and bad values are refused in one line naming the field (``periphery`` may be ``"ideal"`` or
        an object of :class:`PeripheryConfig` fields)."""
        return load(cls, dict(d or {}), source=source, path=path)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready); the inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)
