"""When a differential pair of SET-only devices is refreshed: :class:`RefreshPolicy`.

A weight on a pair ``W ∝ G⁺ − G⁻`` of devices that only SET pulses can raise (depression is a SET
on G⁻) drifts upwards on both devices until they saturate. A refresh RESETs both devices of a
pair and writes the difference onto one of them. Each device model states when (its
:meth:`~device_models.base.DeviceModel.refresh_policy`, with its source); the update schemes of
``hardware_in_loop`` apply it, and a run config may override each threshold.

A pair is refreshed where ``max(G⁺, G⁻) > upper_us`` and, for each condition that is set,
``min(G⁺, G⁻) > lower_us`` and ``|G⁺ − G⁻| < max_diff_us``. The two rules in use:

- srnn-pcm (YigitDemirag/srnn-pcm ``xbar.py``, ``XBar.target_write``, method
  ``mixed-precision``): ``reset_thr = 6`` µS; refresh where ``G⁺ > 6 or G⁻ > 6`` and
  ``|G⁺ − G⁻| < reset_thr/4 = 1.5`` µS (absolute µS, whatever G_max);
- aihwkit ``OneSidedUnitCell`` (``src/rpucuda/rpu_onesided_device.cpp``,
  ``OneSidedRPUDevice::refreshCriterion``; thresholds ``refresh_upper_thres = 0.75`` and
  ``refresh_lower_thres = 0.25`` in ``simulator/configs/compounds.py``): refresh where the larger
  device exceeds 0.75·w_max and the smaller exceeds 0.25·w_max (strict inequalities; w_max is the
  devices' nominal maximum, G_max here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SRNN_PCM_RESET_THR_US = 6.0
"""srnn-pcm ``xbar.py`` ``target_write(method='mixed-precision')``: ``reset_thr = 6`` (µS)."""
SRNN_PCM_DIFF_DIVISOR = 4.0
"""srnn-pcm ``xbar.py``: the pair's difference must be below ``reset_thr/4``."""
SRNN_PCM_G_MAX_US = 12.0
"""srnn-pcm ``xbar.py`` ``XBar.Gmax = 12`` (µS), the range the 6 µS threshold was chosen for."""
AIHWKIT_REFRESH_UPPER = 0.75
"""aihwkit ``OneSidedUnitCell.refresh_upper_thres`` (``simulator/configs/compounds.py``), of w_max."""
AIHWKIT_REFRESH_LOWER = 0.25
"""aihwkit ``OneSidedUnitCell.refresh_lower_thres`` (``simulator/configs/compounds.py``), of w_max."""


@dataclass(frozen=True)
class RefreshPolicy:
    """Refresh a pair where ``max(G⁺, G⁻) > upper_us`` and, where set, ``min(G⁺, G⁻) > lower_us``
    and ``|G⁺ − G⁻| < max_diff_us`` (µS; ``None``: no such condition). ``source`` says where the
    rule comes from (one line)."""

    upper_us: float
    lower_us: float | None = None
    max_diff_us: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for name, lo_open in (("upper_us", True), ("lower_us", False), ("max_diff_us", True)):
            value = getattr(self, name)
            if value is None and name != "upper_us":
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and (
                value > 0 if lo_open else value >= 0)
            if not ok:
                raise ValueError(f"refresh policy {name}={value!r} is invalid: expected a finite number "
                                 f"{'> 0' if lo_open else '≥ 0'} (µS){'' if name == 'upper_us' else ' or None'}")

    @classmethod
    def srnn_pcm(cls) -> RefreshPolicy:
        """The srnn-pcm rule: max(G⁺, G⁻) > 6 µS and |G⁺ − G⁻| < 6/4 µS (absolute)."""
        return cls(upper_us=SRNN_PCM_RESET_THR_US, max_diff_us=SRNN_PCM_RESET_THR_US / SRNN_PCM_DIFF_DIVISOR,
                   source="srnn-pcm xbar.py target_write (mixed-precision): reset_thr = 6 µS, diff < reset_thr/4")

    @classmethod
    def aihwkit_one_sided(cls, g_max_us: float, source: str | None = None) -> RefreshPolicy:
        """aihwkit's OneSidedUnitCell rule for devices of nominal maximum ``g_max_us``: the larger
        device above 0.75·G_max and the smaller above 0.25·G_max."""
        return cls(upper_us=AIHWKIT_REFRESH_UPPER * g_max_us, lower_us=AIHWKIT_REFRESH_LOWER * g_max_us,
                   source=source or "aihwkit OneSidedUnitCell: refresh_upper_thres = 0.75, refresh_lower_thres = 0.25 "
                                    "of w_max (rpu_onesided_device.cpp refreshCriterion)")

    def describe(self) -> str:
        """The rule in one line, e.g. ``max(G⁺,G⁻) > 6 µS and |G⁺−G⁻| < 1.5 µS``."""
        parts = [f"max(G⁺,G⁻) > {self.upper_us:g} µS"]
        if self.lower_us is not None:
            parts.append(f"min(G⁺,G⁻) > {self.lower_us:g} µS")
        if self.max_diff_us is not None:
            parts.append(f"|G⁺−G⁻| < {self.max_diff_us:g} µS")
        return " and ".join(parts)
