"""The ``aihwkit`` network flavour: IBM aihwkit's analog layers as linear modules of pcmsim networks.

aihwkit (https://github.com/IBM/aihwkit) is imported lazily, so pcmsim works without it; a missing
or broken install is reported when this flavour is first used. Only ``aihwkit.nn``,
``aihwkit.simulator`` and ``aihwkit.inference`` are imported (never the ``experiments`` or
``cloud`` subpackages, which pull in torchvision).

Presets (``preset=``):

- ``inference-pcm``: ``InferenceRPUConfig`` with aihwkit's statistical PCM model
  ``PCMLikeNoiseModel(g_max=25 µS)`` (Joshi et al. 2020; programming noise, drift, 1/f read noise
  when ``layer.drift_analog_weights(t)`` is called), ``GlobalDriftCompensation`` and the default
  periphery (7-bit DAC, 9-bit ADC, output noise 0.06); weights mapped with ``max|W| → 1``
  (``mapping.weight_scaling_omega = 1``). Training uses noise-free analog-aware SGD.
- ``mixed-precision-pcm``: ``MixedPrecisionPCMPreset``: a digital χ accumulator with pulsed updates
  onto ``PCMPresetUnitCell`` pairs (aihwkit's C++ simulator; train with ``aihwkit.optim.AnalogSGD``).
- ``pcm-preset``: ``PCMPreset``: stochastic-pulse SGD on ``PCMPresetUnitCell`` pairs.
- ``floating-point``: ``FloatingPointRPUConfig`` (an ideal tile, for checks).

Random draws of aihwkit layers come from aihwkit's own generators (torch's global RNG and its C++
RNG), not from a ``torch.Generator`` of pcmsim: runs of this flavour are not bit-reproducible.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .typedconfig import at_least, bad_value, check, check_fields, choices, loading

PRESETS: tuple[str, ...] = ("inference-pcm", "mixed-precision-pcm", "pcm-preset", "floating-point")


@dataclass(frozen=True)
class AihwkitOptions:
    """The options of the ``aihwkit`` flavour (a run config's ``aihwkit`` block).

    Attributes:
        preset: one of :data:`PRESETS`.
        tile_rows, tile_cols: most inputs / outputs per tile (``mapping.max_input_size`` /
            ``max_output_size``; None: aihwkit's default 512).
        g_max_us: ``g_max`` of the PCM noise model of ``inference-pcm``, µS (None: 25 µS, aihwkit's
            ``PCMLikeNoiseModel`` default).
        weight_scaling_omega: aihwkit's weight mapping (``max|W|`` onto this; 0: no remapping; None:
            the preset's).
    """

    preset: str = field(default="inference-pcm", metadata=choices(lambda: PRESETS))
    tile_rows: int | None = field(default=None, metadata=at_least(1))
    tile_cols: int | None = field(default=None, metadata=at_least(1))
    g_max_us: float | None = field(default=None, metadata=check(lambda v: v > 0, "a finite number > 0 (µS)"))
    weight_scaling_omega: float | None = field(default=None, metadata=check(lambda v: v >= 0, "a finite number ≥ 0"))

    def __post_init__(self) -> None:
        if not loading():
            check_fields(self)
            self.validate()

    def validate(self, source: str = "aihwkit options", path: str = "") -> None:
        """Checks across fields: ``g_max_us`` is the ``inference-pcm`` preset's."""
        if self.g_max_us is not None and self.preset != "inference-pcm":
            where = f"{path}.g_max_us" if path else "g_max_us"
            raise bad_value(source, where, self.g_max_us, f"null: g_max_us sets the noise model of preset "
                            f"'inference-pcm', not of {self.preset!r}")

    def factory_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`aihwkit_linear_factory` (the fields that are set)."""
        return {k: v for k, v in vars(self).items() if v is not None}

_OPTIONS = ("tile_rows", "tile_cols", "g_max_us", "weight_scaling_omega", "device")


class AihwkitUnavailableError(ImportError):
    """aihwkit is not installed or cannot be imported."""


def _import_aihwkit() -> Any:
    try:
        import aihwkit  # noqa: F401
        from aihwkit.nn import AnalogLinear
    except Exception as exc:  # noqa: BLE001 - any failure makes the flavour unusable
        raise AihwkitUnavailableError(
            "the 'aihwkit' network flavour needs IBM aihwkit (pip install aihwkit, or scripts/setup.sh, "
            f"which builds it against the installed torch); importing it failed: {type(exc).__name__}: {exc}"
        ) from exc
    return AnalogLinear


def preset_rpu_config(
    preset: str, *, g_max_us: float = 25.0, weight_scaling_omega: float | None = None
) -> Any:
    """A fresh aihwkit RPU config for one of :data:`PRESETS`."""
    _import_aihwkit()
    if preset == "inference-pcm":
        from aihwkit.inference.compensation.drift import GlobalDriftCompensation
        from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
        from aihwkit.simulator.configs import InferenceRPUConfig

        cfg = InferenceRPUConfig()
        cfg.noise_model = PCMLikeNoiseModel(g_max=float(g_max_us))
        cfg.drift_compensation = GlobalDriftCompensation()
        cfg.mapping.weight_scaling_omega = (
            1.0 if weight_scaling_omega is None else float(weight_scaling_omega)
        )
        return cfg
    if preset == "mixed-precision-pcm":
        from aihwkit.simulator.presets import MixedPrecisionPCMPreset

        cfg = MixedPrecisionPCMPreset()
    elif preset == "pcm-preset":
        from aihwkit.simulator.presets import PCMPreset

        cfg = PCMPreset()
    elif preset == "floating-point":
        from aihwkit.simulator.configs import FloatingPointRPUConfig

        cfg = FloatingPointRPUConfig()
    else:
        raise ValueError(f"unknown aihwkit preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if weight_scaling_omega is not None:
        cfg.mapping.weight_scaling_omega = float(weight_scaling_omega)
    return cfg


def aihwkit_linear_factory(
    rpu_config: Any | None = None, preset: str = "inference-pcm", **options: Any
) -> Callable[[int, int, bool], nn.Module]:
    """A :data:`pcmsim.networks.LinearFactory` of aihwkit ``AnalogLinear`` layers.

    Args:
        rpu_config: any aihwkit RPU config (copied per layer); overrides ``preset``.
        preset: one of :data:`PRESETS` (used without ``rpu_config``).
        tile_rows, tile_cols: most inputs / outputs per tile (``mapping.max_input_size`` /
            ``max_output_size``; aihwkit's default 512).
        g_max_us: ``g_max`` of the PCM noise model of ``inference-pcm``, µS (25).
        weight_scaling_omega: aihwkit's weight mapping (``max|W|`` onto this; 0: no remapping).
        device: move each layer to this torch device.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown aihwkit flavour option(s) {unknown}; valid: rpu_config, preset, {', '.join(_OPTIONS)}"
        )
    if "g_max_us" in options and preset != "inference-pcm" and rpu_config is None:
        raise ValueError(f"g_max_us only applies to preset='inference-pcm'; got preset={preset!r}")
    if rpu_config is None and preset not in PRESETS:
        raise ValueError(f"unknown aihwkit preset {preset!r}; expected one of {', '.join(PRESETS)}")
    analog_linear = _import_aihwkit()
    if rpu_config is None:
        base = preset_rpu_config(
            preset,
            g_max_us=float(options.get("g_max_us", 25.0)),
            weight_scaling_omega=options.get("weight_scaling_omega"),
        )
    else:
        if "g_max_us" in options:
            raise ValueError("g_max_us only applies to preset='inference-pcm' without an rpu_config")
        base = copy.deepcopy(rpu_config)
        if options.get("weight_scaling_omega") is not None:
            base.mapping.weight_scaling_omega = float(options["weight_scaling_omega"])
    for key, name in (("tile_rows", "max_input_size"), ("tile_cols", "max_output_size")):
        if key in options:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r} is invalid: expected an integer ≥ 1")
            setattr(base.mapping, name, value)
    device = options.get("device")

    def factory(in_features: int, out_features: int, bias: bool) -> nn.Module:
        layer = analog_linear(in_features, out_features, bias=bias, rpu_config=copy.deepcopy(base))
        return layer.to(device) if device is not None else layer

    return factory
