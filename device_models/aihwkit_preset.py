"""``pcm-aihwkit-preset``: IBM aihwkit's pulsed PCM training device (``PCMPresetDevice``).

aihwkit ``PCMPresetDevice`` (``src/aihwkit/simulator/presets/devices.py``) is an ``ExpStepDevice``
after Nandakumar et al., Front. Neurosci. 14, 406 (2020), simulated by the C++ class
``ExpStepRPUDevice`` (``src/rpucuda/rpu_expstep_device.cpp``, ``update_once_complex_noise``) with
the device-to-device draws of ``PulsedRPUDevice::populate`` (``src/rpucuda/rpu_pulsed_device.cpp``)
and the reset of ``PulsedRPUDevice::resetCols``. See the project notes PCM-MODELS.md §3.

Weights are normalised, ``w ∈ [min_bound, max_bound]``; the state keeps conductance
``G = w / w_max · g_max_us`` (µS). Per device (drawn once, at :meth:`init_state`)::

    max_bound = |w_max·(1 + w_max_dtod·ξ)|            min_bound = −|w_min·(1 + w_min_dtod·ξ)|
    scale_up  = |up_bias + 1 + dw_min_dtod·ξ + up_down_dtod·ξ'|·dw_min   (up_bias = min(up_down, 0))
    reset_bias = reset + reset_dtod·ξ

(``enforce_consistency=True`` as in aihwkit; the two normals of ``scale_up`` are drawn as one
normal of std ``sqrt(dw_min_dtod² + up_down_dtod²)``, the same distribution.) One up (SET) pulse::

    z    = 2·w/(max_bound − min_bound)·a + b
    dw   = max(1 − A_up·exp(γ_up·z), 0)·scale_up
    w   ← clip(w + dw + dw_min_std·(|dw| + dw_min_std_add + dw_min_std_slope·|w|)·ξ, min_bound, max_bound)

(when ``dw_min_std_add = dw_min_std_slope = 0``: ``w ← clip(w + dw·(1 + dw_min_std·ξ))``, aihwkit's
``update_once``). RESET: ``w ← clip(reset_bias + reset_std·ξ, min_bound, max_bound)``.
The preset has no drift and no device read noise (aihwkit models read noise in the periphery);
``read_noise_std_us`` adds an optional Gaussian read noise.

Update schemes, as aihwkit's ``MixedPrecisionCompound(device=PCMPresetUnitCell())`` (the
``MixedPrecisionPCMPreset`` config):

- granularity ε: aihwkit's weight granularity of the device, which the compound takes when its
  ``granularity`` is 0 (the default; ``MixedPrecRPUDeviceBase::populate`` in
  ``src/rpucuda/rpu_mixedprec_device_base.cpp``). ``ExpStep``'s ``calcWeightGranularity``
  (``src/rpucuda/rpu_expstep_device.h``) evaluates the step at w = 0 and returns
  ``(dw_down + dw_down)/2`` (the *down* step twice, as written there), so
  ``ε = dw_min·(1 + down_bias)·max(1 − A_down·exp(−γ_down·b), 0) = 0.01·3.235 = 0.03235`` in w,
  0.4044 µS at ``g_max_us`` = 25 (the mean up step at the RESET level is 8.5 times larger);
- refresh: ``PCMPresetUnitCell`` is a ``OneSidedUnitCell`` with ``refresh_every = 1`` mini-batch and
  the default thresholds ``refresh_upper_thres = 0.75``, ``refresh_lower_thres = 0.25``
  (``simulator/configs/compounds.py``): refresh where the larger device exceeds 0.75·w_max and the
  smaller 0.25·w_max (``OneSidedRPUDevice::refreshCriterion``, ``rpu_onesided_device.cpp``), i.e.
  18.75 and 6.25 µS at ``g_max_us`` = 25. aihwkit rewrites the difference open loop (a pulsed
  update of up to 31 pulses, no verify); the schemes here program it with program-and-verify.

Device-to-device factors within 20 bytes/device: ``aux`` holds a per-device 31-bit key (the bits
of a positive normal float32, drawn from the generator at init; never used as a number) and the
factors are regenerated from it on use by a 32-bit integer hash → uniform → inverse normal CDF.
Devices are independent unless two keys collide (probability ≈ N/2.1e9 per device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import DeviceParams
from .checks import DeviceParameterError, as_mask, param
from .refresh import RefreshPolicy
from .state import DeviceState
from .verify import PulseLevelDevice

_MASK32 = 0xFFFFFFFF
_HASH_MUL = 0x45D9F3B  # odd multiplier < 2^31 (products stay below 2^63 in int64)
_SALTS = {"max_bound": 0x2545F491, "scale_up": 0x6C8E9CF5, "reset_bias": 0x3C6EF372, "min_bound": 0x1B873593}
_KEY_LO, _KEY_HI = 0x00800000, 0x7F800000  # bit patterns of positive normal float32 values


def _hash32(x: Tensor) -> Tensor:
    """A 32-bit integer mixing hash (xorshift-multiply, 3 rounds) on int64 tensors holding uint32."""
    x = x ^ (x >> 16)
    x = (x * _HASH_MUL) & _MASK32
    x = x ^ (x >> 16)
    x = (x * _HASH_MUL) & _MASK32
    x = x ^ (x >> 16)
    x = (x * _HASH_MUL) & _MASK32
    return x ^ (x >> 16)


def _key_normal(key_f32: Tensor, salt: int) -> Tensor:
    """Standard normal per device from its key and a salt: deterministic, float32."""
    k = key_f32.view(torch.int32).to(torch.int64)
    h = _hash32(_hash32(k) ^ salt)
    u = ((h >> 8).to(torch.float64) + 0.5) * (1.0 / (1 << 24))  # (0, 1), 24 bits
    return torch.special.ndtri(u).to(torch.float32)


@dataclass(frozen=True)
class AihwkitPresetParams(DeviceParams):
    """Constants of aihwkit ``PCMPresetDevice`` (presets/devices.py) and its ``PulsedDevice`` defaults
    (simulator/configs/devices.py); weights in normalised units, ``g_max_us`` the µS scale."""

    dw_min: float = param(0.01, gt=0.0)  # PCMPresetDevice.dw_min (normalised weight per pulse)
    up_down: float = 0.0  # PCMPresetDevice.up_down
    w_max: float = param(2.0, gt=0.0)  # PCMPresetDevice.w_max
    w_min: float = param(0.0, le=0.0)  # PCMPresetDevice.w_min
    a: float = -1.0  # ExpStep es_a; PCMPresetDevice.a
    b: float = 0.0  # ExpStep es_b; PCMPresetDevice.b
    gamma_up: float = 2.5  # PCMPresetDevice.gamma_up
    gamma_down: float = 2.5  # PCMPresetDevice.gamma_down (SET-only device: enters only the granularity)
    A_up: float = -27.235  # PCMPresetDevice.A_up
    A_down: float = -2.235  # PCMPresetDevice.A_down (SET-only device: enters only the granularity)
    dw_min_dtod: float = param(0.2, ge=0.0)  # PCMPresetDevice.dw_min_dtod
    up_down_dtod: float = param(0.05, ge=0.0)  # PCMPresetDevice.up_down_dtod
    w_max_dtod: float = param(0.1, ge=0.0)  # PCMPresetDevice.w_max_dtod
    w_min_dtod: float = param(0.0, ge=0.0)  # PCMPresetDevice.w_min_dtod
    dw_min_std: float = param(0.6, ge=0.0)  # PCMPresetDevice.dw_min_std (cycle-to-cycle)
    dw_min_std_add: float = param(0.042, ge=0.0)  # PCMPresetDevice.dw_min_std_add
    dw_min_std_slope: float = param(0.108, ge=0.0)  # PCMPresetDevice.dw_min_std_slope
    reset: float = 0.01  # PCMPresetDevice.reset (weight after reset, mean)
    reset_dtod: float = param(0.02, ge=0.0)  # PCMPresetDevice.reset_dtod
    reset_std: float = param(0.01, ge=0.0)  # PulsedDevice.reset_std default (cycle-to-cycle)
    g_max_us: float = param(25.0, gt=0.0)  # µS of w = w_max; ours (aihwkit is unitless), same range as pcm-joshi2020
    read_noise_std_us: float = param(0.0, ge=0.0)  # optional Gaussian read noise, µS; ours (aihwkit: periphery)
    program_tolerance_us: float = param(1.0, ge=0.0)  # program-and-verify half-window, µS; ours (c2c ~1 µS/pulse)
    program_max_pulses: int = param(200, ge=1, integer=True)  # program-and-verify budget, pulses; ours


class AihwkitPresetDevice(PulseLevelDevice):
    """aihwkit's ``PCMPresetDevice`` (ExpStep) semantics, vectorised in torch; see module docstring."""

    name = "pcm-aihwkit-preset"
    Params = AihwkitPresetParams
    params: AihwkitPresetParams

    @property
    def g_max_us(self) -> float:
        return self.params.g_max_us

    @property
    def g_min_us(self) -> float:
        return max(self.params.reset, 0.0) * self.us_per_w

    @property
    def us_per_w(self) -> float:
        """µS per unit of normalised weight."""
        return self.params.g_max_us / self.params.w_max

    # ---- device-to-device factors -------------------------------------------------------
    def max_bound(self, state: DeviceState) -> Tensor:
        p = self.params
        mx = (1.0 + p.w_max_dtod * _key_normal(state.aux, _SALTS["max_bound"])) * p.w_max
        if p.w_min == 0.0:
            return mx.abs_()
        mn = self._raw_min_bound(state)
        return torch.maximum(mx, mn).abs_()  # enforce_consistency: swap if crossed, then |·|

    def _raw_min_bound(self, state: DeviceState) -> Tensor:
        p = self.params
        return (1.0 + p.w_min_dtod * _key_normal(state.aux, _SALTS["min_bound"])) * p.w_min

    def min_bound(self, state: DeviceState) -> Tensor:
        p = self.params
        if p.w_min == 0.0:
            return torch.zeros_like(state.g_us)
        mx = (1.0 + p.w_max_dtod * _key_normal(state.aux, _SALTS["max_bound"])) * p.w_max
        return torch.minimum(mx, self._raw_min_bound(state)).abs_().neg_()

    def scale_up(self, state: DeviceState) -> Tensor:
        p = self.params
        up_bias = p.up_down if p.up_down <= 0 else 0.0
        std = math.hypot(p.dw_min_dtod, p.up_down_dtod)
        xi = _key_normal(state.aux, _SALTS["scale_up"])
        return (xi.mul_(std).add_(1.0 + up_bias)).abs_().mul_(p.dw_min)

    def reset_bias(self, state: DeviceState) -> Tensor:
        p = self.params
        return _key_normal(state.aux, _SALTS["reset_bias"]).mul_(p.reset_dtod).add_(p.reset)

    # ---- life cycle -------------------------------------------------------------------
    def init_state(self, shape, *, device=None, generator=None, t_s: float = 0.0) -> DeviceState:
        """Draw each device's key (its device-to-device factors), then RESET all; no pulse counted."""
        state = DeviceState.empty(shape, device)
        keys = torch.randint(_KEY_LO, _KEY_HI, tuple(state.shape), generator=generator, dtype=torch.int32,
                             device=state.device)
        state.aux.copy_(keys.view(torch.float32))
        self.reset(state, None, t_s, generator)
        state.pulse_count.zero_()
        return state

    def _select(self, state: DeviceState, mask: Tensor | None) -> tuple[DeviceState, tuple | None]:
        if mask is None or bool(mask.all()):
            return state, None
        idx = mask.nonzero(as_tuple=True)
        return DeviceState(**{f: getattr(state, f)[idx] for f in DeviceState.FIELDS}), idx

    def _write_back(self, state: DeviceState, sub: DeviceState, idx: tuple | None, fields: tuple[str, ...]) -> None:
        if idx is None:
            return
        for f in fields:
            getattr(state, f).index_put_(idx, getattr(sub, f))

    def reset(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """``w ← clip(reset_bias + reset_std·ξ, min_bound, max_bound)`` where ``mask``."""
        mask = as_mask(mask, state)
        p = self.params
        sub, idx = self._select(state, mask)
        if sub.g_us.numel() == 0:
            return
        xi = torch.randn(sub.shape, generator=generator, device=sub.device, dtype=torch.float32)
        w = self.reset_bias(sub).add_(xi, alpha=p.reset_std)
        w = torch.minimum(torch.maximum(w, self.min_bound(sub)), self.max_bound(sub))
        sub.g_us.copy_(w.mul_(self.us_per_w))
        sub.t_prog_s.fill_(t_s)
        sub.pulse_count.add_(1)
        self._write_back(state, sub, idx, ("g_us", "t_prog_s", "pulse_count"))

    def set_pulse(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """One up pulse (ExpStep, complex cycle-to-cycle noise) where ``mask``."""
        mask = as_mask(mask, state)
        p = self.params
        sub, idx = self._select(state, mask)
        if sub.g_us.numel() == 0:
            return
        mx = self.max_bound(sub)
        mn = self.min_bound(sub)
        w = sub.g_us * (1.0 / self.us_per_w)
        b_diff = mx - mn
        dw = self._step_w(sub, w, b_diff)
        xi = torch.randn(sub.shape, generator=generator, device=sub.device, dtype=torch.float32)
        if p.dw_min_std > 0 and (p.dw_min_std_add != 0 or p.dw_min_std_slope != 0):
            std = (dw.abs() + p.dw_min_std_add + p.dw_min_std_slope * w.abs()).mul_(p.dw_min_std)
            w_new = w + dw + std * xi
        else:
            w_new = w + dw * (1.0 + p.dw_min_std * xi)
        w_new = torch.minimum(torch.maximum(w_new, mn), mx)
        w_new = torch.where(b_diff > 0, w_new, w)  # aihwkit skips devices without range
        sub.g_us.copy_(w_new.mul_(self.us_per_w))
        sub.t_prog_s.fill_(t_s)
        sub.pulse_count.add_(1)
        self._write_back(state, sub, idx, ("g_us", "t_prog_s", "pulse_count"))

    # ---- reading ----------------------------------------------------------------------
    def drifted(self, state: DeviceState, t_s: float) -> Tensor:
        """No drift in the preset: the programmed conductance."""
        return state.g_us.clone()

    def read_noise_std(self, state: DeviceState, t_s: float, g_drift_us: Tensor | None = None) -> Tensor:
        return torch.full_like(state.g_us, self.params.read_noise_std_us)

    def read(self, state: DeviceState, t_s: float, generator=None, *, noise: bool = True) -> Tensor:
        if not noise or self.params.read_noise_std_us == 0.0:
            return state.g_us.clone()
        return super().read(state, t_s, generator, noise=True)

    # ---- update schemes -------------------------------------------------------------------
    granularity_source = ("aihwkit MixedPrecisionCompound default (granularity = 0): the device's ExpStep "
                          "calcWeightGranularity, dw_min·(1 + down_bias)·(1 − A_down·exp(−γ_down·b))")

    def granularity_w(self) -> float:
        """aihwkit's weight granularity of the nominal device, normalised weight units: ExpStep's
        ``calcWeightGranularity`` (``rpu_expstep_device.h``), the down step at w = 0 (its
        ``(dw_down + dw_down)/2``), or ``dw_min`` where that step is 0. 0.03235 with the defaults."""
        p = self.params
        down_bias = -p.up_down if p.up_down > 0 else 0.0
        z = p.b  # z = 2·w/(w_max − w_min)·a + b at w = 0
        dw_down = (1.0 + down_bias) * p.dw_min * max(1.0 - p.A_down * math.exp(-p.gamma_down * z), 0.0)
        return dw_down if dw_down > 0 else p.dw_min

    def update_granularity_us(self) -> float:
        """ε = :meth:`granularity_w` in µS (0.4044 µS with the defaults); see the module docstring."""
        return self.granularity_w() * self.us_per_w

    def refresh_policy(self) -> RefreshPolicy:
        """aihwkit ``PCMPresetUnitCell`` (a ``OneSidedUnitCell``): the larger device above
        0.75·G_max and the smaller above 0.25·G_max (18.75 and 6.25 µS with the defaults)."""
        return RefreshPolicy.aihwkit_one_sided(
            self.params.g_max_us, source="aihwkit PCMPresetUnitCell = OneSidedUnitCell(refresh_upper_thres=0.75, "
                                         "refresh_lower_thres=0.25) of w_max, refresh_every = 1 mini-batch")

    # ---- programming ------------------------------------------------------------------
    def _step_w(self, state: DeviceState, w: Tensor, b_diff: Tensor) -> Tensor:
        """ExpStep's mean up step of each device at normalised weight ``w``, its curve on the device's own
        range ``b_diff`` (``z = 2a·w/b_diff + b``) times its own scale, before the noise and the clip."""
        p = self.params
        z = (2.0 * p.a) * w / b_diff.clamp(min=1e-30) + p.b
        return (1.0 - p.A_up * torch.exp(p.gamma_up * z)).clamp_(min=0.0).mul_(self.scale_up(state))

    def mean_step_w(self, state: DeviceState, w: Tensor | float) -> Tensor:
        """Mean up step of each device of ``state`` at normalised weight ``w`` (its own scale and range,
        as :meth:`set_pulse` takes it), before the cycle-to-cycle noise and the clip."""
        w = torch.as_tensor(w, dtype=state.g_us.dtype, device=state.g_us.device).expand(state.shape)
        return self._step_w(state, w, self.max_bound(state) - self.min_bound(state))

    def expected_step_w(self, w: Tensor | float) -> Tensor:
        """Mean up step of the nominal device (max_bound = w_max, min_bound = w_min, scale = dw_min·(1+up_bias))
        at normalised weight ``w``, before the cycle-to-cycle noise and the clip."""
        p = self.params
        w = torch.as_tensor(w, dtype=torch.float64)
        up_bias = p.up_down if p.up_down <= 0 else 0.0
        z = 2.0 * w / (p.w_max - p.w_min) * p.a + p.b
        return (1.0 - p.A_up * torch.exp(p.gamma_up * z)).clamp(min=0.0) * (p.dw_min * (1.0 + up_bias))

    def mean_set_increment_us(self, g_us: Tensor | float | None = None) -> float:
        """Mean up step of the nominal device at ``g_us`` (averaged; default: the RESET conductance), µS.

        With the defaults at the RESET weight 0.01: 0.2756 in w, i.e. 3.45 µS at ``g_max_us`` = 25.
        """
        w = self.params.reset if g_us is None else torch.as_tensor(g_us, dtype=torch.float64) / self.us_per_w
        val = float(self.expected_step_w(w).mean()) * self.us_per_w
        if not math.isfinite(val):
            raise DeviceParameterError(f"mean_set_increment_us: g_us must be finite, got {g_us!r}")
        return val
