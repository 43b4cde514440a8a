"""Foreign devices for the validation of ``pcmsim device fit`` (issue 23): generators written here,
not pcmsim models, with laws the fitted model does not contain, read noise on every read, and the
observables the fit is judged by.

- ``exp-sat``: SET steps ``f_d·α·(G_sat − G)`` (exponential approach to saturation, no clip), each
  device's factor ``f_d = 1 + 0.15·z`` normal, cycle-to-cycle std ``0.15 + 0.03·G``; RESET
  log-normal; drift ν = 0.03 + 0.002·G (G-dependent), onset at 1 s; read σ = 2 % of G + 0.1 µS.
- ``power-sat``: steps ``f_d·β·(1 − G/G_sat)^1.5`` times a log-normal cycle-to-cycle factor
  (σ_ln 0.35, mean 1), ``f_d = exp(0.12·z)`` (log-normal device to device); drift ν = 0.06 −
  0.002·G, shifted law t0 = 5 s; read σ = 3 % of G + 0.1 µS.
- ``mixed-sat``: steps ``f_d·β·sgn(1 − G/G_sat)·|1 − G/G_sat|^1.5`` (restoring above G_sat), ``f_d =
  exp(0.3·z)``, and a normal cycle-to-cycle scatter with both parts: std ``0.05 + 0.05·G +
  0.3·|the device's own mean step|`` (an additive part growing with G and a multiplicative part that
  scales with the device's factor, as aihwkit's PCM preset); drift as ``power-sat``; read σ = 2 % of
  G + 0.1 µS.
- ``clip-sat`` (bench only): steps ``f_d·1.3 µS·(1 − G/G_d)·exp(−G/8 µS)`` cut at each device's own
  saturation ``G_d = 16 µS·(1 + 0.04·z)`` (a clip per device, as aihwkit's ``w_max_dtod``, but
  seeded), a gamma-distributed device factor (shape 40: std 0.158), a normal cycle-to-cycle std
  ``0.08 + 0.3·|the device's own mean step|``, RESET uniform in 0.1–0.6 µS; drift ν = 0.04 +
  0.001·G, onset at 1 s; read σ = 2.5 % of G + 0.1 µS.
- ``clip-dev``: as ``clip-sat``, but the mean step never vanishes, ``f_d·(0.8 + 2·exp(−G/3 µS))``
  µS, and the devices reach their own clip ``G_d = 12 µS·(1 + 0.08·z)`` within ~12 pulses and stay
  at it (a clip per device that the reads show, as aihwkit's preset, but seeded); read σ = 2 % of G
  + 0.1 µS.

Every draw comes from an explicit ``torch.Generator`` (float64 on the CPU).
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


def write_pulse_file(source, path: Path, n_devices: int, n_pulses: int, n_cycles: int, seed: int) -> str:  # noqa: ANN001
    """A lab's pulse-response file ``device,pulse,g_us`` written by hand (not by pcmsim's writer): the latent
    traces of ``source`` (a generator with ``traces`` and ``read``), each read with its read noise."""
    lat, dev = source.traces(n_devices, n_pulses, n_cycles, seed)
    obs = source.read(lat, torch.Generator().manual_seed(seed + 1000)).tolist()
    rows = ["device,pulse,g_us"] + [f"{int(d)},{k},{v:.6g}" for d, tr in zip(dev.tolist(), obs)
                                    for k, v in enumerate(tr)]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def write_read_noise_file(source, path: Path, n: int, n_reads: int, seed: int) -> str:  # noqa: ANN001
    """A lab's read-noise file ``device,t_s,g_us`` written by hand: ``n`` devices set uniformly in 5–95 % of
    ``source.g_sat_us``, each read ``n_reads`` times (1 s apart) with ``source``'s read noise."""
    gen = torch.Generator().manual_seed(seed)
    g0 = 0.05 * source.g_sat_us + 0.9 * source.g_sat_us * torch.rand(n, generator=gen, dtype=torch.float64)
    obs = source.read(g0[:, None].expand(n, n_reads), gen).tolist()
    rows = ["device,t_s,g_us"] + [f"{d},{1.0 + k:.6g},{v:.6g}" for d in range(n) for k, v in enumerate(obs[d])]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def fit_on_one_thread(files: dict[str, str], n_knots: int = 10):  # noqa: ANN201
    """``fit_measurements(files)`` on one torch thread (as the bench; the thread count is restored):
    the result, and its model, as ``.result`` and ``.model``."""
    from device_models import fit  # noqa: PLC0415

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = fit.fit_measurements(files, n_knots=n_knots)
    finally:
        torch.set_num_threads(n)
    return types.SimpleNamespace(result=result, model=result.model())


@dataclass(frozen=True)
class Foreign:
    name: str
    kind: str  # "exp", "power" or "mixed"
    g_sat_us: float
    rate: float  # α (exp) or β µS (power)
    d2d: float  # normal factor std (exp) or log-normal σ (power)
    read_rel: float
    read_add_us: float = 0.1
    nu0: float = 0.03
    nu1: float = 0.002  # ν = nu0 + nu1·G_prog
    nu_std: float = 0.005
    drift: str = "onset"
    t0_s: float = 1.0
    c2c: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mixed: std s0 + s1·G + κ·|f·mean step|

    # ---- the laws ------------------------------------------------------------------------------
    def factor(self, z: torch.Tensor) -> torch.Tensor:
        return 1.0 + self.d2d * z if self.kind == "exp" else torch.exp(self.d2d * z)

    def d2d_rel_std(self) -> float:
        """Std of the device's factor on its mean step (relative to its mean)."""
        if self.kind == "exp":
            return self.d2d
        return math.sqrt(math.exp(self.d2d ** 2) - 1.0)

    def mean_step(self, g: torch.Tensor) -> torch.Tensor:
        """Mean step over the population (factor mean 1 for exp; exp(σ²/2) for the log-normal)."""
        if self.kind == "exp":
            return self.rate * (self.g_sat_us - g)
        return self._shape(g) * math.exp(self.d2d ** 2 / 2)

    def _shape(self, g: torch.Tensor) -> torch.Tensor:
        """The mean step of a device with factor 1 (power, mixed)."""
        u = 1.0 - g / self.g_sat_us
        if self.kind == "mixed":
            return self.rate * torch.sign(u) * u.abs() ** 1.5
        return self.rate * u.clamp(min=0.0) ** 1.5

    def c2c_std(self, g: torch.Tensor) -> torch.Tensor:
        """Cycle-to-cycle std of a step at G of a device with factor 1."""
        if self.kind == "exp":
            return 0.15 + 0.03 * g
        if self.kind == "mixed":
            s0, s1, kappa = self.c2c
            return s0 + s1 * g + kappa * self._shape(g).abs()
        return self.rate * (1.0 - g / self.g_sat_us).clamp(min=0.0) ** 1.5 * math.sqrt(math.exp(0.35 ** 2) - 1.0)

    def step(self, g: torch.Tensor, f: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        xi = torch.randn(g.shape, generator=gen, dtype=torch.float64)
        if self.kind == "exp":
            return (g + f * self.rate * (self.g_sat_us - g) + (0.15 + 0.03 * g) * xi).clamp(min=0.0)
        if self.kind == "mixed":
            s0, s1, kappa = self.c2c
            m = f * self._shape(g)
            return (g + m + (s0 + s1 * g + kappa * m.abs()) * xi).clamp(min=0.0)
        c2c = torch.exp(0.35 * xi - 0.35 ** 2 / 2)
        return g + f * c2c * self.rate * (1.0 - g / self.g_sat_us).clamp(min=0.0) ** 1.5

    def reset(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return 0.3 * torch.exp(0.3 * torch.randn(n, generator=gen, dtype=torch.float64))

    def read_std(self, g: torch.Tensor) -> torch.Tensor:
        return self.read_rel * g + self.read_add_us

    def read(self, g: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return (g + self.read_std(g) * torch.randn(g.shape, generator=gen, dtype=torch.float64)).clamp(min=0.0)

    def drift_x(self, t: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(t / self.t0_s, 1.0)) if self.drift == "onset" else np.log1p(t / self.t0_s)

    # ---- protocols -----------------------------------------------------------------------------
    def traces(self, n_devices: int, n_pulses: int, n_cycles: int, seed: int,
               start_us: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent ``[cycles, n_pulses + 1]`` conductances and each cycle's device; cycles from RESET,
        or (``start_us``) from a partial RESET uniform in that range."""
        gen = torch.Generator().manual_seed(seed)
        f = self.factor(torch.randn(n_devices, generator=gen, dtype=torch.float64))
        out, devs = [], []
        for _ in range(n_cycles):
            if start_us is None:
                g = self.reset(n_devices, gen)
            else:
                g = start_us[0] + (start_us[1] - start_us[0]) * torch.rand(n_devices, generator=gen,
                                                                           dtype=torch.float64)
            tr = [g]
            for _ in range(n_pulses):
                g = self.step(g, f, gen)
                tr.append(g)
            out.append(torch.stack(tr, 1))
            devs.append(torch.arange(n_devices))
        return torch.cat(out), torch.cat(devs)

    def write_pulses(self, path: Path, n_devices: int, n_pulses: int, n_cycles: int, seed: int) -> str:
        return write_pulse_file(self, path, n_devices, n_pulses, n_cycles, seed)

    def drift_devices(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        g0 = 0.1 * self.g_sat_us + 0.8 * self.g_sat_us * torch.rand(n, generator=gen, dtype=torch.float64)
        nu = (self.nu0 + self.nu1 * g0 + self.nu_std * torch.randn(n, generator=gen, dtype=torch.float64)
              ).clamp(min=0.0)
        return g0, nu

    def write_drift(self, path: Path, n: int, seed: int, times_s: np.ndarray) -> str:
        g0, nu = self.drift_devices(n, seed)
        x = torch.as_tensor(self.drift_x(times_s))
        lat = g0[:, None] * torch.exp(-nu[:, None] * x[None, :])
        obs = self.read(lat, torch.Generator().manual_seed(seed + 1)).tolist()
        rows = ["device,t_s,g_us"] + [f"{d},{t:.6g},{v:.6g}" for d in range(n) for t, v in zip(times_s, obs[d])]
        path.write_text("\n".join(rows) + "\n")
        return str(path)

    def write_reads(self, path: Path, n: int, n_reads: int, seed: int) -> str:
        return write_read_noise_file(self, path, n, n_reads, seed)


@dataclass(frozen=True)
class ClipSat(Foreign):
    """``clip-sat`` (see the module docstring): a saturation and a clip per device."""

    clip_rel: float = 0.04  # device-to-device std of the clip, relative to g_sat_us

    def factor(self, z: torch.Tensor) -> torch.Tensor:  # (z unused: the gamma factor draws its own)
        raise NotImplementedError("clip-sat draws its device factors in traces()")

    def d2d_rel_std(self) -> float:
        return math.sqrt(2.0 / 80.0)  # Gamma(40, 40) as the mean of 80 squared normals

    def _shape(self, g: torch.Tensor, g_d: torch.Tensor | float = 16.0) -> torch.Tensor:
        return 1.3 * (1.0 - g / g_d).clamp(min=0.0) * torch.exp(-g / 8.0)

    def mean_step(self, g: torch.Tensor) -> torch.Tensor:
        return self._shape(g)

    def c2c_std(self, g: torch.Tensor) -> torch.Tensor:
        return 0.08 + 0.3 * self._shape(g)

    def _devices(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Each device's factor (gamma) and clip, the first draws of ``gen``."""
        f = (torch.randn(n, 80, generator=gen, dtype=torch.float64) ** 2).mean(1)
        return f, self.g_sat_us * (1.0 + self.clip_rel * torch.randn(n, generator=gen, dtype=torch.float64))

    def clips(self, n_devices: int, seed: int) -> torch.Tensor:
        """The clips of the devices of :meth:`traces` with ``seed`` (the same draws)."""
        return self._devices(n_devices, torch.Generator().manual_seed(seed))[1]

    def traces(self, n_devices: int, n_pulses: int, n_cycles: int, seed: int,
               start_us: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        f, g_d = self._devices(n_devices, gen)
        out, devs = [], []
        for _ in range(n_cycles):
            lo, hi = start_us if start_us is not None else (0.1, 0.6)
            g = lo + (hi - lo) * torch.rand(n_devices, generator=gen, dtype=torch.float64)
            tr = [g]
            for _ in range(n_pulses):
                m = f * self._shape(g, g_d)
                xi = torch.randn(n_devices, generator=gen, dtype=torch.float64)
                g = torch.minimum((g + m + (0.08 + 0.3 * m) * xi).clamp(min=0.0), g_d)
                tr.append(g)
            out.append(torch.stack(tr, 1))
            devs.append(torch.arange(n_devices))
        return torch.cat(out), torch.cat(devs)


@dataclass(frozen=True)
class ClipDev(ClipSat):
    """``clip-dev`` (see the module docstring): a mean step that does not vanish, cut at a clip per device."""

    def _shape(self, g: torch.Tensor, g_d: torch.Tensor | float = 0.0) -> torch.Tensor:  # (g_d: the cut alone)
        return 0.8 + 2.0 * torch.exp(-g / 3.0)


EXP_SAT = Foreign("exp-sat", "exp", g_sat_us=20.0, rate=0.12, d2d=0.15, read_rel=0.02)
POWER_SAT = Foreign("power-sat", "power", g_sat_us=15.0, rate=1.6, d2d=0.12, read_rel=0.03, nu0=0.06, nu1=-0.002,
                    drift="shifted", t0_s=5.0)
MIXED_SAT = Foreign("mixed-sat", "mixed", g_sat_us=15.0, rate=1.6, d2d=0.3, read_rel=0.02, nu0=0.06, nu1=-0.002,
                    drift="shifted", t0_s=5.0, c2c=(0.05, 0.05, 0.3))
CLIP_SAT = ClipSat("clip-sat", "clip", g_sat_us=16.0, rate=1.3, d2d=0.158, read_rel=0.025, nu0=0.04, nu1=0.001)
CLIP_DEV = ClipDev("clip-dev", "clip", g_sat_us=12.0, rate=0.8, d2d=0.158, read_rel=0.02, nu0=0.04, nu1=0.001,
                   clip_rel=0.08)
FOREIGN = (EXP_SAT, POWER_SAT, MIXED_SAT, CLIP_SAT, CLIP_DEV)
DRIFT_TIMES_S = np.r_[np.logspace(0.0, 6.0, 19)]
"""Drift reads from 1 s to 11.6 days, three per decade (the first read at 1 s, as a lab's)."""


# ---- the comparisons (issue 23's targets) ------------------------------------------------------------
def model_traces(model, n: int, n_pulses: int, seed: int, start_us: tuple[float, float] | None = None) -> torch.Tensor:
    """Latent ``[n, n_pulses + 1]`` conductances of a fitted model (noise-free), from RESET or from a
    partial RESET uniform in ``start_us``."""
    gen = torch.Generator().manual_seed(seed)
    state = model.init_state((n,), generator=gen)
    if start_us is not None:
        state.g_us.copy_(start_us[0] + (start_us[1] - start_us[0]) * torch.rand(n, generator=gen))
    out = [state.g_us.double().clone()]
    for _ in range(n_pulses):
        model.set_pulse(state, None, 0.0, gen)
        out.append(state.g_us.double().clone())
    return torch.stack(out, 1)


def curve_warnings(result) -> list[str]:  # noqa: ANN001
    """The fit's goodness-of-fit warnings (the model against the data through the measured protocol)."""
    return [w for w in result.quality["warnings"] if "the fitted model's" in w]


def curve_errors(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Largest relative errors of the mean and the std of G over pulses 1 … (generator ``a``, model ``b``)."""
    ma, mb = a[:, 1:].mean(0), b[:, 1:].mean(0)
    sa, sb = a[:, 1:].std(0), b[:, 1:].std(0)
    return float(((mb - ma).abs() / ma).max()), float(((sb - sa).abs() / sa).max())


def dg_bin_table(a: torch.Tensor, b: torch.Tensor, data_g_before: np.ndarray, min_count: int = 400,
                 min_data: int = 500) -> dict[str, list]:
    """The mean ΔG per 1-µS bin of G before the pulse of the generator's traces ``a`` and the model's
    ``b``, over the bins that the measured file covers (``min_data`` steps of ``data_g_before``
    there) and both simulations hold ``min_count`` steps: each bin's lower edge, both means, and the
    error relative to the generator's mean floored at 10 % of its largest (where the mean step crosses
    0 at saturation a relative error has no meaning). Beside it, what the measured file can say of
    that mean: ``data_se_rel``, the standard error of a bin's mean ΔG from the file's steps there, the
    generator's std of ΔG in the bin over the root of the file's steps in it (a lower bound: the
    file's reads add their noise), relative to the same reference; ``data_steps``, those steps."""
    def binned(gb: np.ndarray, dg: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.clip(np.floor(gb).astype(int), 0, n - 1)
        cnt = np.bincount(idx, minlength=n)
        mean = np.bincount(idx, weights=dg, minlength=n) / np.maximum(cnt, 1)
        var = np.bincount(idx, weights=dg * dg, minlength=n) / np.maximum(cnt, 1) - mean * mean
        return mean, cnt, np.sqrt(np.clip(var, 0.0, None))

    n = int(max(float(a.max()), float(b.max()), float(data_g_before.max()))) + 1
    ma, ca, sa = binned(a[:, :-1].reshape(-1).numpy(), torch.diff(a, dim=1).reshape(-1).numpy(), n)
    mb, cb, _ = binned(b[:, :-1].reshape(-1).numpy(), torch.diff(b, dim=1).reshape(-1).numpy(), n)
    cd = np.bincount(np.clip(np.floor(data_g_before).astype(int), 0, n - 1), minlength=n)
    ok = (ca >= min_count) & (cb >= min_count) & (cd >= min_data)
    ref = np.maximum(np.abs(ma), 0.1 * np.abs(ma[ok]).max())
    se = sa / np.sqrt(np.maximum(cd, 1))
    return {"g_us": np.flatnonzero(ok).tolist(), "generator_dg_us": ma[ok].tolist(), "model_dg_us": mb[ok].tolist(),
            "rel_error": (np.abs(mb - ma)[ok] / ref[ok]).tolist(), "data_se_rel": (se[ok] / ref[ok]).tolist(),
            "data_steps": cd[ok].tolist()}


def dg_bin_error(a: torch.Tensor, b: torch.Tensor, data_g_before: np.ndarray, min_count: int = 400,
                 min_data: int = 500) -> float:
    """The largest error of :func:`dg_bin_table`."""
    return float(max(dg_bin_table(a, b, data_g_before, min_count, min_data)["rel_error"]))
