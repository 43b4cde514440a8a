"""The layout of a weight matrix on devices and its periphery: :class:`CrossbarConfig`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..periphery import PeripheryConfig

Significance = Literal["equal", "graded"]


def check_positive_int(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer ≥ 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer ≥ 1")


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
    """

    devices_per_sign: int = 1
    significance: Significance = "equal"
    significance_base: float = 2.0
    tile_rows: int = 256
    tile_cols: int = 256
    weight_scale: Literal["auto"] | float = "auto"
    auto_scale_fill: float = 1.0
    per_column_scale: bool = False
    periphery: PeripheryConfig = field(default_factory=PeripheryConfig)
    read_noise: bool = True
    exact_read_noise: bool = False
    exact_chunk_elements: int = 1 << 23

    def __post_init__(self) -> None:
        check_positive_int("devices_per_sign", self.devices_per_sign)
        check_positive_int("tile_rows", self.tile_rows)
        check_positive_int("tile_cols", self.tile_cols)
        check_positive_int("exact_chunk_elements", self.exact_chunk_elements)
        if self.significance not in ("equal", "graded"):
            raise ValueError(f"significance={self.significance!r} is invalid: expected 'equal' or 'graded'")
        base = self.significance_base
        if not isinstance(base, (int, float)) or not math.isfinite(base) or base <= 1.0:
            raise ValueError(f"significance_base={base!r} is invalid: expected a finite number > 1")
        ws = self.weight_scale
        if isinstance(ws, str):
            if ws != "auto":
                raise ValueError(f"weight_scale={ws!r} is invalid: expected 'auto' or a weight per µS > 0")
        elif isinstance(ws, bool) or not isinstance(ws, (int, float)) or not math.isfinite(ws) or ws <= 0:
            raise ValueError(f"weight_scale={ws!r} is invalid: expected 'auto' or a finite weight per µS > 0")
        fill = self.auto_scale_fill
        if not isinstance(fill, (int, float)) or not 0.0 < fill <= 1.0:
            raise ValueError(f"auto_scale_fill={fill!r} is invalid: expected a number in (0, 1]")
        if not isinstance(self.periphery, PeripheryConfig):
            raise ValueError(f"periphery={self.periphery!r} is invalid: expected a PeripheryConfig")

    @property
    def significances(self) -> tuple[float, ...]:
        """``c_k`` for k = 0 … N−1."""
        n = self.devices_per_sign
        if self.significance == "equal":
            return (1.0,) * n
        return tuple(float(self.significance_base) ** (-k) for k in range(n))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CrossbarConfig:
        """Build from plain data (``periphery`` may be a dict); unknown keys are refused by name."""
        d = dict(d or {})
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(f"unknown crossbar option(s) {unknown}; valid: {sorted(valid)}")
        per = d.get("periphery")
        if isinstance(per, str):
            if per != "ideal":
                raise ValueError(
                    f"periphery={per!r} is invalid: expected 'ideal' or a dict of PeripheryConfig fields"
                )
            d["periphery"] = PeripheryConfig.ideal()
        elif isinstance(per, dict):
            pvalid = {f.name for f in dataclasses.fields(PeripheryConfig)}
            punknown = sorted(set(per) - pvalid)
            if punknown:
                raise ValueError(f"unknown periphery option(s) {punknown}; valid: {sorted(pvalid)}")
            d["periphery"] = PeripheryConfig(**per)
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready); the inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)
