"""aihwkit's ``PCMPresetDevice`` through its C++ simulator as a foreign device for ``pcmsim device fit``
(issue 23): pulse-response files measured from ``AnalogTile``s, read noise added on every read, and
the observables the fit is judged by (the interface of :class:`device_fit_generators.Foreign`).

The tiles are rows×1 ``PCMPresetDevice``s with single-pulse updates (``desired_bl = 1``, no update
management, learning rate 1: every update is one up pulse; as ``tests/test_devices_aihwkit.py``),
RESET by ``reset_columns``; weights w ∈ [0, w_max = 2] are read noise-free with ``get_weights`` and
scaled to µS by ``pcm-aihwkit-preset``'s ``us_per_w`` (25 µS at w_max). Devices are spread over
tiles of :data:`ROWS` rows (aihwkit's CPU simulator draws its Gaussians from a fixed table per tile,
whose bias adds up over pulses on one large tile; see ``tests/test_devices_aihwkit.py``).

Truths (aihwkit ``ExpStepRPUDevice``, ``src/rpucuda/rpu_expstep_device.cpp``, at a device with the
mean device-to-device draws): the step ``dw = max(1 − A_up·exp(γ_up·z), 0)·dw_min`` with
``z = 2w/(w_max − w_min)·a + b``, cycle-to-cycle std ``dw_min_std·(|dw| + dw_min_std_add +
dw_min_std_slope·|w|)`` (multiplicative and additive parts together: neither law of the fit
alone), device-to-device std of the step's scale ``hypot(dw_min_dtod, up_down_dtod)`` and of the
clip ``w_max_dtod`` (a clip per device: ``clip_rel``). No drift.
The read noise is ours (the instrument's): σ = 2 % of G + 0.1 µS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from device_fit_generators import write_pulse_file, write_read_noise_file

from device_models.aihwkit_preset import AihwkitPresetDevice

ROWS = 100
"""Devices per aihwkit tile (many tiles: independent noise tables)."""


def _tiles(n: int, seed: int) -> list:
    """Tiles of ``n`` devices; each tile's device-to-device draws (aihwkit's hidden parameters) from its own
    ``construction_seed``, so the devices repeat across runs (the cycle-to-cycle draws of aihwkit's C++
    generator do not: it takes no seed)."""
    from aihwkit.simulator.configs import SingleRPUConfig
    from aihwkit.simulator.presets.devices import PCMPresetDevice
    from aihwkit.simulator.tiles import AnalogTile

    tiles = []
    for i in range(math.ceil(n / ROWS)):
        cfg = SingleRPUConfig(device=PCMPresetDevice(construction_seed=1 + 1000 * seed + i))
        cfg.update.update_bl_management = False
        cfg.update.update_management = False
        cfg.update.desired_bl = 1
        tile = AnalogTile(ROWS, 1, cfg)
        tile.set_learning_rate(1.0)
        tiles.append(tile)
    return tiles


@dataclass(frozen=True)
class AihwkitPreset:
    name: str = "aihwkit-preset"
    read_rel: float = 0.02
    read_add_us: float = 0.1
    drift: str | None = None  # no drift: no drift file
    preset: AihwkitPresetDevice = field(default_factory=AihwkitPresetDevice)

    @property
    def g_sat_us(self) -> float:
        return self.preset.g_max_us

    # ---- the truths --------------------------------------------------------------------------
    def _dw(self, w: torch.Tensor) -> torch.Tensor:
        p = self.preset.params
        z = 2.0 * w / (p.w_max - p.w_min) * p.a + p.b
        return (1.0 - p.A_up * torch.exp(p.gamma_up * z)).clamp(min=0.0) * p.dw_min

    def c2c_std(self, g: torch.Tensor) -> torch.Tensor:
        p = self.preset.params
        w = g / self.preset.us_per_w
        std_w = p.dw_min_std * (self._dw(w).abs() + p.dw_min_std_add + p.dw_min_std_slope * w.abs())
        return std_w * self.preset.us_per_w

    @property
    def clip_rel(self) -> float:
        """Device-to-device std of the clip, relative (aihwkit's ``w_max_dtod``)."""
        return float(self.preset.params.w_max_dtod)

    def d2d_rel_std(self) -> float:
        p = self.preset.params
        return math.hypot(p.dw_min_dtod, p.up_down_dtod)

    def read_std(self, g: torch.Tensor) -> torch.Tensor:
        return self.read_rel * g + self.read_add_us

    def read(self, g: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return (g + self.read_std(g) * torch.randn(g.shape, generator=gen, dtype=torch.float64)).clamp(min=0.0)

    # ---- protocols -----------------------------------------------------------------------------
    def traces(self, n_devices: int, n_pulses: int, n_cycles: int, seed: int,
               start_us: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent ``[cycles, n_pulses + 1]`` conductances (µS) from aihwkit and each cycle's device;
        cycles from RESET, or (``start_us``) from weights set uniform in that range."""
        torch.manual_seed(seed)  # aihwkit's own generators are not ours; this seeds what it takes from torch
        gen = torch.Generator().manual_seed(seed)
        tiles = _tiles(n_devices, seed)
        x, d = -torch.ones(1, 1), torch.ones(1, ROWS)  # Δw = −lr·x·d = +1: one up pulse per device
        uw = self.preset.us_per_w
        out, devs = [], []
        for _ in range(n_cycles):
            for t in tiles:
                if start_us is None:
                    t.reset_columns(0, 1, 1.0)
                else:
                    g0 = start_us[0] + (start_us[1] - start_us[0]) * torch.rand(ROWS, 1, generator=gen)
                    t.set_weights(g0 / uw)
            tr = []
            for k in range(n_pulses + 1):
                if k:
                    for t in tiles:
                        t.update(x, d)
                tr.append(torch.cat([t.get_weights()[0].reshape(-1) for t in tiles]).double() * uw)
            out.append(torch.stack(tr, 1)[:n_devices])
            devs.append(torch.arange(n_devices))
        return torch.cat(out), torch.cat(devs)

    def sample_d2d_rel_std(self, n_devices: int, seed: int) -> float:
        """The device-to-device std of the step's scale over the ``n_devices`` devices that
        :meth:`traces` with ``seed`` measures (aihwkit's hidden ``dwmin_up``, relative to its mean):
        the truth for that file, where :meth:`d2d_rel_std` is the population's."""
        h = torch.cat([t.get_hidden_parameters()["dwmin_up"].reshape(-1) for t in _tiles(n_devices, seed)])
        h = h[:n_devices].double()
        return float(h.std() / h.mean())

    def write_pulses(self, path: Path, n_devices: int, n_pulses: int, n_cycles: int, seed: int) -> str:
        return write_pulse_file(self, path, n_devices, n_pulses, n_cycles, seed)

    def write_reads(self, path: Path, n: int, n_reads: int, seed: int) -> str:
        return write_read_noise_file(self, path, n, n_reads, seed)


AIHWKIT_PRESET = AihwkitPreset()


def model_cycles(dev, n_devices: int, n_pulses: int, n_cycles: int,  # noqa: ANN001 - a pcmsim device model
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent ``[cycles, n_pulses + 1]`` conductances of a pcmsim device model's ``n_devices`` devices,
    each RESET ``n_cycles`` times and SET ``n_pulses`` times per cycle (noise-free), and each cycle's
    device; every draw from one generator seeded ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    state = dev.init_state((n_devices,), generator=gen)
    out = []
    for c in range(n_cycles):
        if c:
            dev.reset(state, None, 0.0, gen)
        tr = [state.g_us.double().clone()]
        for _ in range(n_pulses):
            dev.set_pulse(state, None, 0.0, gen)
            tr.append(state.g_us.double().clone())
        out.append(torch.stack(tr, 1))
    return torch.cat(out), torch.arange(n_devices).repeat(n_cycles)


@dataclass(frozen=True)
class AihwkitPresetPort(AihwkitPreset):
    """The same preset through pcmsim's seeded port ``pcm-aihwkit-preset`` (every draw from our
    generator, the same laws; ``tests/test_devices_aihwkit.py`` checks it against the C++ simulator):
    runs that repeat, and devices whose hidden factors we can read."""

    name: str = "aihwkit-preset-port"
    preset_overrides: tuple[tuple[str, float], ...] = ()  # (field, value) pairs on the preset's parameters

    def _device(self) -> AihwkitPresetDevice:
        return AihwkitPresetDevice(**dict(self.preset_overrides))

    def traces(self, n_devices: int, n_pulses: int, n_cycles: int, seed: int,
               start_us: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if start_us is not None:
            raise ValueError("the port measures from RESET only")
        return model_cycles(self._device(), n_devices, n_pulses, n_cycles, seed)

    def sample_d2d_rel_std(self, n_devices: int, seed: int) -> float:
        dev = self._device()
        scale = dev.scale_up(dev.init_state((n_devices,), generator=torch.Generator().manual_seed(seed))).double()
        return float(scale.std() / scale.mean())
