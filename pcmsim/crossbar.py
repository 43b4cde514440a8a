"""A weight matrix stored as conductances of a population of devices, read through a periphery.

Layout (fixed: the update schemes of ``hardware_in_loop`` index it directly): one
:class:`device_models.DeviceState` of shape ``[N, 2, out, in]``; dim 0 the N device pairs of a
weight (``devices_per_sign``), dim 1 the sign (0 = G⁺, 1 = G⁻). The weight is::

    W = w_per_us · Σ_k c_k (G⁺_k − G⁻_k)            (weight units; G in µS)

with the significances ``c_k`` (``equal``: 1; ``graded``: ``base^−k``) and ``w_per_us`` the
weight per µS (a scalar, or ``[out, 1]`` with ``per_column_scale``).

Tiles: the array is cut into tiles of at most ``tile_rows`` inputs × ``tile_cols`` outputs *unit
cells* (a unit cell holds the 2N devices of one weight, as the 256×256 unit cells of four PCM
devices of IBM's HERMES chip). Every tile has its own periphery (DAC, ADC, noise and bound
management, see :mod:`pcmsim.periphery`); the outputs of the tiles along the input dimension are
summed in digital. Tiles along the output dimension share the inputs and hence their DAC scaling
(noise management); bound management is decided per tile.

Normalisation: the periphery works on ``Ĝ = Σ_k c_k (G⁺_k − G⁻_k) / g_norm`` with
``g_norm = g_max · Σ_k c_k`` (µS), so ``|Ĝ| ≤ 1``; a tile's normalised output ``ŷ`` becomes
weight units by ``y = ŷ · α · g_norm · w_per_us``.

Read noise: a read at time ``t`` sees the drifted conductance plus a fresh Gaussian draw per read.
For an input vector ``x̂`` the output noise of independent Gaussian device noise is Gaussian with
variance ``Σ_j x̂_j² σ̂_ij²``, so the whole batch takes one extra matmul
(``y = x̂·Ĝᵀ + sqrt(x̂²·(σ̂²)ᵀ + σ_out²)·ξ``) instead of a noisy matrix per batch element. This is
exact in distribution for unclamped Gaussian read noise. Where a model clamps noisy reads at 0
(``pcm-joshi2020``: ``G = max(0, G_drift + σξ)``), the shortcut ignores the clamp, an
approximation that matters only for devices within a few σ of 0 µS. Measured on a 150×88
``pcm-joshi2020`` array with ``nn.Linear``-initialised weights (3000 reads of one input, at 0 s and
after one day): output means differ by 0.1–0.15 % of mean |y| (the sampling error) and the output
std by 0.1 %. ``CrossbarConfig(exact_read_noise=True)`` samples a noisy array per batch element
through the model's own ``read`` instead (chunked over the batch; memory
``chunk × 2N × out × in``; about 300× slower).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

import device_models
from device_models import DeviceModel, DeviceState

from .periphery import PeripheryConfig, PeripheryStats, noise_management_scale

Significance = Literal["equal", "graded"]

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


def _positive_int(name: str, value: Any) -> None:
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
        _positive_int("devices_per_sign", self.devices_per_sign)
        _positive_int("tile_rows", self.tile_rows)
        _positive_int("tile_cols", self.tile_cols)
        _positive_int("exact_chunk_elements", self.exact_chunk_elements)
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


@dataclass(frozen=True)
class CrossbarProgramReport:
    """Outcome of :meth:`Crossbar.program_weights`.

    Attributes:
        pulses: programming pulses (SET and RESET) each device received in this call,
            ``[N, 2, out, in]`` int32.
        error: weights read back (noise-free, at the programming time) minus the *requested*
            targets, in weight units, ``[out, in]``; 0 where not programmed (``mask``).
            Clipped weights carry their clipping error.
        converged: every programmed device of the weight ended within the model's tolerance.
        clipped: weights whose target was beyond the representable range ``±w_per_us·g_norm``.
        n_clipped: number of clipped weights.
        w_per_us: the weight per µS used (scalar or ``[out, 1]``).
    """

    pulses: Tensor
    error: Tensor
    converged: Tensor
    clipped: Tensor
    n_clipped: int
    w_per_us: Tensor

    @property
    def total_pulses(self) -> int:
        return int(self.pulses.sum())

    @property
    def max_abs_error(self) -> float:
        return float(self.error.abs().max()) if self.error.numel() else 0.0

    @property
    def rms_error(self) -> float:
        return float(self.error.pow(2).mean().sqrt()) if self.error.numel() else 0.0


@dataclass(frozen=True)
class _SelectedProgram:
    """What :meth:`Crossbar._program_selected_weights` did, on the m selected weights only.

    Attributes:
        flat: the selected weights' row-major indices into ``[out·in]``, ``[m]``.
        targets: their requested weights, ``[m]`` (weight units).
        w_per_us: their weight per µS (``[m]``, or the scalar tensor).
        clipped: targets beyond the representable range, ``[m]``.
        pulses: programming pulses (SET and RESET) of their devices, ``[N, 2, m]`` int32.
        converged: their devices ended within the model's tolerance, ``[N, 2, m]``.
    """

    flat: Tensor
    targets: Tensor
    w_per_us: Tensor
    clipped: Tensor
    pulses: Tensor
    converged: Tensor


@dataclass
class _Read:
    """A cached noise-free read of the array at one time (µS, and tiles in ADC units).

    Parts are formed on first need: ``g_eff_us`` always (the digital side's weights), the tiles
    only for an analog product, the variance only with read noise. ``g_drift_us`` (4 bytes per
    device) is dropped once the variance is formed: nothing else needs it then.
    """

    key: tuple | None
    t_s: float
    g_drift_us: Tensor | None  # every device at t, [N, 2, out, in], µS (None once var_done)
    g_eff_us: Tensor  # Σ_k c_k (G⁺_k − G⁻_k) at t, [out, in], µS
    g_tiles: Tensor | None = None  # Ĝᵀ in ADC units as tiles, [n_ti, tile_in, out_p] (None: not yet)
    var_tiles: Tensor | None = None  # Var(Ĝ)ᵀ in ADC units² as tiles (None: no read noise)
    var_done: bool = False  # var_tiles computed


class Crossbar:
    """A weight matrix ``[out, in]`` on pairs of devices of any :class:`DeviceModel`.

    Args:
        out_features, in_features: matrix shape.
        model: a DeviceModel, or a registry name (``device_models.get(model, **device_params)``).
        config: layout, scale and periphery (:class:`CrossbarConfig`).
        generator: the ``torch.Generator`` of every random draw of this crossbar (programming
            noise, read noise, output noise); made from ``seed`` on ``device`` if not given.
        seed: seed of the generator made here.
        device: torch device of the state.
        t_s: simulated time of the initial RESET of every device, s.
        device_params: parameter overrides when ``model`` is a name.
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        model: DeviceModel | str,
        config: CrossbarConfig | None = None,
        *,
        generator: torch.Generator | None = None,
        seed: int = 0,
        device: torch.device | str | None = None,
        t_s: float = 0.0,
        device_params: dict[str, Any] | None = None,
    ) -> None:
        _positive_int("out_features", out_features)
        _positive_int("in_features", in_features)
        if isinstance(model, str):
            model = device_models.get(model, **(device_params or {}))
        elif device_params:
            raise ValueError("device_params are only taken with a model name; got a DeviceModel instance")
        if not isinstance(model, DeviceModel):
            raise TypeError(f"model={model!r} is invalid: expected a DeviceModel or a registered name")
        self.model: DeviceModel = model
        self.config: CrossbarConfig = config if config is not None else CrossbarConfig()
        if not isinstance(self.config, CrossbarConfig):
            raise TypeError(f"config={config!r} is invalid: expected a CrossbarConfig")
        self.out_features = int(out_features)
        self.in_features = int(in_features)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if generator is None:
            generator = torch.Generator(device=dev)
            generator.manual_seed(int(seed))
        self.generator: torch.Generator = generator
        n = self.config.devices_per_sign
        self.state: DeviceState = self.model.init_state(
            (n, 2, self.out_features, self.in_features), device=dev, generator=self.generator, t_s=float(t_s)
        )
        self._c = torch.tensor(self.config.significances, dtype=torch.float32, device=dev)
        self.g_norm_us: float = float(self.model.g_max_us) * float(sum(self.config.significances))
        """Normalising conductance ``g_max · Σ c_k``, µS (the largest |Σ c_k ΔG_k|)."""
        ws = self.config.weight_scale
        w0 = (1.0 / (self.g_norm_us * self.config.auto_scale_fill)) if ws == "auto" else float(ws)
        shape = (self.out_features, 1) if self.config.per_column_scale else ()
        self.w_per_us: Tensor = torch.full(shape, w0, dtype=torch.float32, device=dev)
        """Weight per µS: scalar tensor, or ``[out, 1]`` with ``per_column_scale``."""
        self.stats = PeripheryStats.zeros(dev)
        self._version = 0
        self._cache: _Read | None = None
        # tile geometry
        cfg = self.config
        self.n_tiles_in = -(-self.in_features // cfg.tile_rows)
        self.n_tiles_out = -(-self.out_features // cfg.tile_cols)
        self._tile_in = self.in_features if self.n_tiles_in == 1 else cfg.tile_rows
        self._tile_out = self.out_features if self.n_tiles_out == 1 else cfg.tile_cols
        self._in_p = self.n_tiles_in * self._tile_in
        self._out_p = self.n_tiles_out * self._tile_out
        # analog sums are formed in ADC units: one ADC step (normalised units) if the ADC has bits
        per = cfg.periphery
        self._out_unit: float = per.adc_step if per.adc_step is not None else 1.0
        self._out_limit: float | None = (
            float(2 ** (per.adc_bits - 1) - 1) if per.adc_bits is not None else per.out_bound
        )
        self._out_noise_units: float = per.out_noise / self._out_unit
        self._tile_factor: float = 1.0 / (self.g_norm_us * self._out_unit)
        """µS → ADC units of the cached tiles: ``1 / (g_norm · ADC step)``."""

    # ---- description --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(out, in)``."""
        return (self.out_features, self.in_features)

    @property
    def device(self) -> torch.device:
        return self.state.device

    @property
    def n_devices(self) -> int:
        """Physical devices: ``2 · N · out · in`` (88-150-88 on pairs: 52,800)."""
        return 2 * self.config.devices_per_sign * self.out_features * self.in_features

    @property
    def n_tiles(self) -> int:
        return self.n_tiles_in * self.n_tiles_out

    @property
    def significances(self) -> Tensor:
        """``c_k``, ``[N]``."""
        return self._c

    @property
    def version(self) -> int:
        """Bumped by every programming method of this class (reads are cached per version and time)."""
        return self._version

    def invalidate(self) -> None:
        """Forget cached reads. Rarely needed: in-place changes of ``state`` made outside this class
        are noticed through the tensors' version counters, and replaced tensors by their identity."""
        self._version += 1
        self._cache = None

    def __repr__(self) -> str:
        return (
            f"Crossbar({self.out_features}×{self.in_features}, model={self.model.name!r}, "
            f"N={self.config.devices_per_sign}, tiles={self.n_tiles_out}×{self.n_tiles_in}, "
            f"devices={self.n_devices})"
        )

    # ---- reading ------------------------------------------------------------------------
    def _combine(self, g: Tensor) -> Tensor:
        """``Σ_k c_k (g[..., k, 0] − g[..., k, 1])`` over the trailing ``[N, 2, out, in]``."""
        if self.config.devices_per_sign == 1:
            return g[..., 0, 0, :, :] - g[..., 0, 1, :, :]
        diff = g[..., :, 0, :, :] - g[..., :, 1, :, :]
        return (diff * self._c.view(-1, 1, 1)).sum(dim=-3)

    def _combine_var(self, sigma: Tensor) -> Tensor:
        """``Σ_k c_k² (σ⁺_k² + σ⁻_k²)``, µS²."""
        s2 = sigma * sigma
        if self.config.devices_per_sign == 1:
            return s2[0, 0] + s2[0, 1]
        return ((s2[:, 0] + s2[:, 1]) * (self._c * self._c).view(-1, 1, 1)).sum(dim=0)

    def _to_tiles(self, m: Tensor) -> Tensor:
        """``[..., out, in]`` → transposed tiles ``[..., n_ti, tile_in, out_p]`` (zero-padded)."""
        mt = m.transpose(-1, -2)
        pad_in, pad_out = self._in_p - self.in_features, self._out_p - self.out_features
        if pad_in or pad_out:
            mt = F.pad(mt, (0, pad_out, 0, pad_in))
        return mt.reshape(*mt.shape[:-2], self.n_tiles_in, self._tile_in, self._out_p).contiguous()

    def _cache_key(self, t_s: float) -> tuple | None:
        # Tensors' in-place version counters catch changes made to the state outside this class.
        try:
            tv = tuple((id(t), t._version) for t in (getattr(self.state, f) for f in DeviceState.FIELDS))
        except RuntimeError:  # inference-mode tensors have no version counter: never cache
            return None
        return (float(t_s), self._version, tv)

    def _read(
        self, t_s: float, *, with_var: bool = True, with_tiles: bool | None = None, keep_drift: bool = True
    ) -> _Read:
        """The noise-free read at ``t_s`` from the cache, or computed (one elementwise pass over the
        devices); the tiles (``with_tiles``, default ``with_var``) and the read-noise variance
        (``with_var``) are added on first need. ``keep_drift=False`` lets a fresh read drop the
        conductance of every device once the weights are formed (4 bytes per device fewer held;
        the variance, if asked for later at the same time, recomputes it: same values)."""
        key = self._cache_key(t_s)
        c = self._cache
        if c is None or key is None or c.key != key:
            with torch.no_grad():
                g = self.model.drifted(self.state, float(t_s))
                g_eff = self._combine(g)
            c = _Read(key=key, t_s=float(t_s), g_drift_us=g if keep_drift else None, g_eff_us=g_eff)
            del g
            self._cache = c
        if (with_var if with_tiles is None else with_tiles) and c.g_tiles is None:
            with torch.no_grad():
                c.g_tiles = self._to_tiles(c.g_eff_us * self._tile_factor)
        if with_var and not c.var_done:
            if self.config.read_noise:
                with torch.no_grad():
                    g = c.g_drift_us if c.g_drift_us is not None else self.model.drifted(self.state, c.t_s)
                    c.g_drift_us = None
                    sigma = self.model.read_noise_std(self.state, c.t_s, g)
                    del g  # (freed before the variance is formed: a lower peak)
                    var = self._combine_var(sigma)
                    del sigma
                    if bool((var > 0).any()):
                        c.var_tiles = self._to_tiles(var.mul_(self._tile_factor**2))
            c.var_done = True
            c.g_drift_us = None
        return c

    def _drifted_cached(self, t_s: float) -> Tensor:
        """Every device's noise-free conductance at ``t_s`` ``[N, 2, out, in]`` (µS), through the read
        cache (a later :meth:`weights` at the same time and version then costs nothing). Read-only:
        the tensor is the cache's own."""
        c = self._read(t_s, with_var=False, with_tiles=False)
        if c.g_drift_us is None:  # dropped after the variance: recompute (and keep) it
            c.g_drift_us = self.model.drifted(self.state, c.t_s)
        return c.g_drift_us

    def conductances(self, t_s: float, *, noise: bool = False) -> Tensor:
        """Every device's conductance at ``t_s``, ``[N, 2, out, in]``, µS (noise-free by default)."""
        if noise:
            return self.model.read(self.state, float(t_s), self.generator, noise=True)
        return self.model.drifted(self.state, float(t_s))

    def weights(self, t_s: float, *, noise: bool = False) -> Tensor:
        """The weights the devices hold at ``t_s``, ``[out, in]`` (weight units).

        ``noise=False`` (default): drift only, the digital side's estimate; ``noise=True``: one
        read with a fresh draw of read noise.
        """
        if noise:
            g = self.model.read(self.state, float(t_s), self.generator, noise=True)
            return self._combine(g) * self.w_per_us
        return self._read(t_s, with_var=False, keep_drift=False).g_eff_us * self.w_per_us

    def _weights_into(self, out: Tensor, t_s: float) -> None:
        """``out.copy_(self.weights(t_s))`` without the intermediate tensor (same values)."""
        g_eff = self._read(t_s, with_var=False, keep_drift=False).g_eff_us
        if out.dtype == g_eff.dtype and out.shape == g_eff.shape and out.device == g_eff.device:
            torch.mul(g_eff, self.w_per_us, out=out)
        else:
            out.copy_(g_eff * self.w_per_us)

    @property
    def output_scale(self) -> Tensor:
        """Normalised output → weight units: ``g_norm · w_per_us`` (``[1]`` or ``[out]``)."""
        return self.w_per_us.reshape(-1) * self.g_norm_us

    def _output_scale_cached(self) -> Tensor:
        """:attr:`output_scale`, recomputed only when ``w_per_us`` is replaced or changed in place."""
        w = self.w_per_us
        cached = self.__dict__.get("_os_cache")  # (the tensor itself, its version, the scale)
        if cached is None or cached[0] is not w or cached[1] != w._version:
            cached = (w, w._version, self.output_scale)
            self.__dict__["_os_cache"] = cached
        return cached[2]

    # ---- the analog product ---------------------------------------------------------------
    def _dac(self, xt: Tensor, scale: Tensor) -> Tensor:
        """DAC of ``xt / scale`` (``scale`` = α · bound-management factor, ``[n_ti, M, 1]``)."""
        per = self.config.periphery
        bound = per.inp_bound
        if per.dac_bits is None:
            xs = xt / scale
            if bound is None:
                return xs
            if not per.noise_management:  # with it |x/α| ≤ 1: no clipping to count
                self.stats.dac_clipped += (xs.abs() > bound).count_nonzero()
            return xs.clamp_(-bound, bound)
        step = per.dac_step
        top = float(2 ** (per.dac_bits - 1) - 1)
        level = (xt * (scale * step).reciprocal_()).round_()  # (= xt · (1.0 / (scale·step)), bit for bit)
        if not (per.noise_management and bound >= 1.0):
            if not per.noise_management:
                self.stats.dac_clipped += (level.abs() > top).count_nonzero()
            level.clamp_(-top, top)
        return level.mul_(step)

    def _analog(self, xt: Tensor, scale: Tensor, read: _Read) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """One analog read of the tiles for inputs ``xt`` ``[n_ti, M, tile_in]`` scaled by ``1/scale``.

        The sums are formed in ADC units (one ADC step, or normalised units without ADC bits:
        the cached tiles carry the factor), so the ADC is a rounding. Returns ``(y, blocks,
        clipped)``: ``y`` ``[n_ti, M, out_p]`` after the ADC (in ADC units), ``blocks``
        ``[n_ti, M, n_to]`` where a tile's outputs clipped and ``clipped`` the clipped outputs
        (both None where nothing clipped or the output is unbounded).
        """
        per = self.config.periphery
        xh = self._dac(xt, scale)
        sigma_out = self._out_noise_units
        if read.var_tiles is not None and self.config.exact_read_noise:
            y = self._exact_noisy_product(xh, read.t_s)
            if sigma_out > 0:
                y.add_(self._randn(y.shape, y), alpha=sigma_out)
        else:
            y = torch.bmm(xh, read.g_tiles)
            if read.var_tiles is not None:
                var = torch.bmm(xh * xh, read.var_tiles)
                if sigma_out > 0:
                    var.add_(sigma_out**2)
                y.addcmul_(var.sqrt_(), self._randn(y.shape, y))
            elif sigma_out > 0:
                y.add_(self._randn(y.shape, y), alpha=sigma_out)
        if per.adc_bits is not None:
            y.round_()
        lim = self._out_limit
        if lim is None:
            return y, None, None
        lo, hi = torch.aminmax(y)
        if not max(-float(lo), float(hi)) > lim:  # the common case: nothing clips (one reduction, no masks)
            return y, None, None
        y_abs = y.abs()
        n_ti, m = y.shape[0], y.shape[1]
        blocks = y_abs.view(n_ti, m, self.n_tiles_out, self._tile_out).amax(-1) > lim
        clipped = y_abs > lim
        return y.clamp_(-lim, lim), blocks, clipped

    def _randn(self, shape: torch.Size, like: Tensor) -> Tensor:
        return torch.randn(shape, generator=self.generator, device=like.device, dtype=like.dtype)

    def _exact_noisy_product(self, xh: Tensor, t_s: float) -> Tensor:
        """``Ĝ_b x̂_b`` (ADC units) with an independent noisy read ``Ĝ_b`` of the array per batch element."""
        n_ti, m, _ = xh.shape
        per_elem = 2 * self.config.devices_per_sign * self.out_features * self.in_features
        chunk = max(1, self.config.exact_chunk_elements // per_elem)
        outs = []
        for start in range(0, m, chunk):  # chunks of the batch, not single elements
            stop = min(m, start + chunk)
            st = DeviceState(
                **{
                    f: getattr(self.state, f).unsqueeze(0).expand(stop - start, *self.state.shape)
                    for f in DeviceState.FIELDS
                }
            )
            g = self.model.read(st, t_s, self.generator, noise=True)
            g_tiles = self._to_tiles(self._combine(g) * self._tile_factor)  # [c, n_ti, tile_in, out_p]
            outs.append(torch.einsum("tcr,ctro->tco", xh[:, start:stop], g_tiles))
        return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]

    @torch.no_grad()
    def mvm(self, x: Tensor, t_s: float) -> Tensor:
        """The analog forward ``y ≈ x Wᵀ`` of the devices read at ``t_s`` (s).

        ``x``: ``[B, in]`` (or ``[..., in]``) → ``[B, out]`` (``[..., out]``), weight units. Every
        call draws fresh read and output noise. Runs without autograd (the backward pass is
        digital: see :class:`pcmsim.analog.AnalogLinear`); on one thread for a small array
        (:func:`threads_for`).
        """
        with threads_for(self.n_devices, self.device):
            return self._mvm(x, t_s)

    def _mvm(self, x: Tensor, t_s: float) -> Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"mvm input of shape {tuple(x.shape)} is invalid: "
                f"expected [..., {self.in_features}] (in_features)"
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).to(dtype=torch.float32)
        if x2.device != self.device:
            raise ValueError(f"mvm input is on {x2.device} but the crossbar is on {self.device}")
        b = x2.shape[0]
        per = self.config.periphery
        read = self._read(t_s)
        n_ti, n_to, t_out = self.n_tiles_in, self.n_tiles_out, self._tile_out
        if n_ti == 1:
            xt = x2.unsqueeze(0)
        else:
            xt = F.pad(x2, (0, self._in_p - self.in_features)).view(b, n_ti, self._tile_in).transpose(0, 1)
        alpha = noise_management_scale(xt, per)  # [n_ti, B, 1]
        y, blocks, clipped = self._analog(xt, alpha, read)
        self.stats.mvm_calls += 1
        self.stats.input_vectors += n_ti * b
        if clipped is not None and per.uses_bound_management:
            assert blocks is not None
            reduction = torch.ones(n_ti, b, n_to, 1, dtype=y.dtype, device=y.device)
            for r in range(1, per.bm_max_halvings + 1):
                idx = blocks.any(-1).any(0).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                factor = float(2**r)
                y_s, b_s, c_s = self._analog(xt[:, idx], alpha[:, idx] * factor, read)
                upd = blocks[:, idx]  # the blocks still clipping are read again at 2^r
                upd_o = (
                    upd.unsqueeze(-1).expand(n_ti, idx.numel(), n_to, t_out).reshape(n_ti, -1, self._out_p)
                )
                y[:, idx] = torch.where(upd_o, y_s, y[:, idx])
                if c_s is None or b_s is None:
                    c_s = torch.zeros_like(y_s, dtype=torch.bool)
                    b_s = torch.zeros_like(upd)
                clipped[:, idx] = torch.where(upd_o, c_s, clipped[:, idx])
                reduction[:, idx] = torch.where(upd.unsqueeze(-1), factor, reduction[:, idx])
                blocks[:, idx] = upd & b_s
                self.stats.bm_rereads += upd.count_nonzero()
            y = (y.view(n_ti, b, n_to, t_out) * reduction).view(n_ti, b, self._out_p)
        if self._out_limit is not None:
            self.stats.outputs += n_ti * b * self.out_features
            if clipped is not None:
                self.stats.adc_clipped += clipped[..., : self.out_features].count_nonzero()
        y.mul_(alpha * self._out_unit)
        out = y[0] if n_ti == 1 else y.sum(0)
        if self._out_p != self.out_features:
            out = out[:, : self.out_features]
        out = out * self._output_scale_cached()
        return out.reshape(*lead, self.out_features)

    # ---- programming --------------------------------------------------------------------
    def _check_matrix(self, name: str, m: Tensor, *, dtype_kind: str | None = None) -> Tensor:
        if not isinstance(m, Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor of shape [{self.out_features}, {self.in_features}]"
            )
        if tuple(m.shape) != self.shape:
            raise ValueError(
                f"{name} of shape {tuple(m.shape)} is invalid: "
                f"expected [{self.out_features}, {self.in_features}] "
                "(out, in)"
            )
        if dtype_kind == "bool" and m.dtype != torch.bool:
            raise ValueError(f"{name} has dtype {m.dtype}: expected torch.bool")
        if dtype_kind == "int" and (m.dtype.is_floating_point or m.dtype.is_complex or m.dtype == torch.bool):
            raise ValueError(f"{name} has dtype {m.dtype}: expected an integer dtype (pulse counts)")
        return m.to(self.device)

    def _check_index(self, device_index: int) -> int:
        n = self.config.devices_per_sign
        if isinstance(device_index, bool) or not isinstance(device_index, int) or not 0 <= device_index < n:
            raise ValueError(f"device_index={device_index!r} is invalid: expected an integer in [0, {n - 1}]")
        return device_index

    def _on_pair(self, k: int, fn: Callable[[DeviceState], Any]) -> Any:
        """Run ``fn`` on the view state of pair ``k`` (``[2, out, in]``); write back rebound fields."""
        sub = self.state.index(k)
        views = {f: getattr(sub, f) for f in DeviceState.FIELDS}
        result = fn(sub)
        for f, v in views.items():
            new = getattr(sub, f)
            if new is not v:
                v.copy_(new)
        return result

    def _program_selected(self, k: int, sel: Tensor, target_us: Tensor, t_s: float, **kw: Any) -> Tensor:
        """Program the devices of pair ``k`` where ``sel`` ([2, out, in]) to ``target_us``; converged."""
        sub_all = self.state.index(k)
        sub = DeviceState(**{f: getattr(sub_all, f)[sel] for f in DeviceState.FIELDS})
        report = self.model.program(sub, target_us[sel], t_s, self.generator, **kw)
        for f in DeviceState.FIELDS:
            getattr(sub_all, f)[sel] = getattr(sub, f)
        conv = torch.ones_like(sel)
        conv[sel] = report.converged.to(torch.bool)
        return conv

    @torch.no_grad()
    def auto_scale(self, w: Tensor) -> Tensor:
        """The ``w_per_us`` that ``weight_scale="auto"`` picks for ``w``: ``max|W| / (fill · g_norm)``."""
        full = self.g_norm_us * self.config.auto_scale_fill
        if self.config.per_column_scale:
            m = w.abs().amax(dim=1, keepdim=True)
        else:
            m = w.abs().max()
        m = torch.where(m > 0, m, torch.ones_like(m))
        return (m / full).to(torch.float32)

    @torch.no_grad()
    def program_weights(
        self,
        w: Tensor,
        t_s: float,
        *,
        mask: Tensor | None = None,
        tolerance_us: float | None = None,
        max_pulses: int | None = None,
        rescale: bool | None = None,
    ) -> CrossbarProgramReport:
        """Program the targets ``w`` ``[out, in]`` (weight units) onto the device pairs at ``t_s``.

        For every selected weight (``mask`` ``[out, in]`` bool, or all) and pair k: the device of
        the other sign is RESET, and ``|share|`` µS is programmed onto G⁺_k (share > 0) or G⁻_k
        (share < 0) with the model's ``program`` (program-and-verify for pulse-level models;
        ``tolerance_us``, ``max_pulses`` go to it); a zero share RESETs both. With N pairs the
        target ``w/w_per_us`` (µS) is spread over the pairs one after the other, each pair taking
        its part of the residual left by the pairs before it (read back noise-free): ``equal``
        splits it evenly over the remaining pairs, ``graded`` fills the most significant pair
        first (a residual of the other sign goes onto that pair's other device).

        ``weight_scale="auto"``: a call without ``mask`` first chooses ``w_per_us``
        (:meth:`auto_scale`); a masked call keeps the current one (``rescale`` overrides either
        way; with a fixed ``weight_scale`` the scale never changes). Targets beyond
        ``±w_per_us · g_norm`` are clipped and counted.
        """
        w = self._check_matrix("w", w).to(torch.float32)
        if not bool(torch.isfinite(w).all()):
            raise ValueError("w has NaN or infinite entries: expected finite target weights")
        if mask is not None:
            mask = self._check_matrix("mask", mask, dtype_kind="bool")
        if rescale is None:
            rescale = mask is None
        if self.config.weight_scale == "auto" and rescale:
            self.w_per_us = self.auto_scale(w)
        if mask is not None:
            return self._program_masked(w, mask, float(t_s), tolerance_us=tolerance_us, max_pulses=max_pulses)
        sel = torch.ones(self.shape, dtype=torch.bool, device=self.device)
        cap = self.w_per_us * self.g_norm_us  # largest representable |W|
        clipped = (w.abs() > cap * (1.0 + 1e-6)) & sel
        residual = torch.maximum(torch.minimum(w, cap), -cap) / self.w_per_us  # µS, Σ_k c_k ΔG_k
        before = self.state.pulse_count.clone()
        g_max = float(self.model.g_max_us)
        n = self.config.devices_per_sign
        cs = self.config.significances
        converged = torch.ones((n, 2, *self.shape), dtype=torch.bool, device=self.device)
        kw = {"tolerance_us": tolerance_us, "max_pulses": max_pulses}
        t_s = float(t_s)
        for k in range(n):  # over the pairs of a weight (a handful), never over devices
            divisor = (n - k) if self.config.significance == "equal" else 1
            share = (residual / (cs[k] * divisor)).clamp(-g_max, g_max)
            pos, neg = sel & (share > 0), sel & (share < 0)
            reset_mask = torch.stack([sel & ~pos, sel & ~neg])
            if bool(reset_mask.any()):
                self._on_pair(k, lambda s, m=reset_mask: self.model.reset(s, m, t_s, self.generator))
            prog = torch.stack([pos, neg])
            if bool(prog.any()):
                targets = torch.stack([share.clamp(min=0.0), (-share).clamp(min=0.0)])
                converged[k] = self._program_selected(k, prog, targets, t_s, **kw)
            if k < n - 1:
                g_k = self.model.drifted(self.state.index(k), t_s)
                residual = residual - cs[k] * (g_k[0] - g_k[1])
        self._version += 1
        self._cache = None
        pulses = (self.state.pulse_count - before).to(torch.int32)
        error = torch.where(sel, self.weights(t_s) - w, torch.zeros_like(w))
        return CrossbarProgramReport(
            pulses=pulses,
            error=error,
            converged=converged.all(0).all(0) | ~sel,
            clipped=clipped,
            n_clipped=int(clipped.sum()),
            w_per_us=self.w_per_us.clone(),
        )

    def _program_masked(
        self, w: Tensor, mask: Tensor, t_s: float, *, tolerance_us: float | None, max_pulses: int | None
    ) -> CrossbarProgramReport:
        """:meth:`program_weights` for the weights where ``mask``, in compact form
        (:meth:`_program_selected_weights`), with the report of the whole matrix."""
        sel = self._program_selected_weights(w, mask, t_s, tolerance_us=tolerance_us, max_pulses=max_pulses)
        out_f, in_f = self.shape
        n_w = out_f * in_f
        n = self.config.devices_per_sign
        flat = sel.flat
        pulses = torch.zeros((n, 2, n_w), dtype=torch.int32, device=self.device)
        pulses[:, :, flat] = sel.pulses
        # the error from the selected weights' devices only: every one of them was just RESET or
        # programmed at t_s (drift factor exactly 1), so these are the values a read of the whole
        # array gives at those weights
        selected = DeviceState(
            **{f: getattr(self.state, f).reshape(n, 2, n_w)[:, :, flat].unsqueeze(2) for f in DeviceState.FIELDS}
        )
        error = torch.zeros(n_w, dtype=torch.float32, device=self.device)
        error[flat] = self._combine(self.model.drifted(selected, t_s)).reshape(-1) * sel.w_per_us - sel.targets
        converged = torch.ones(n_w, dtype=torch.bool, device=self.device)
        converged[flat] = sel.converged.all(0).all(0)
        clipped = torch.zeros(n_w, dtype=torch.bool, device=self.device)
        clipped[flat] = sel.clipped
        return CrossbarProgramReport(
            pulses=pulses.view(n, 2, out_f, in_f),
            error=error.view(out_f, in_f),
            converged=converged.view(out_f, in_f),
            clipped=clipped.view(out_f, in_f),
            n_clipped=int(sel.clipped.sum()),
            w_per_us=self.w_per_us.clone(),
        )

    def _program_selected_weights(
        self, w: Tensor, mask: Tensor, t_s: float, *, tolerance_us: float | None, max_pulses: int | None
    ) -> _SelectedProgram:
        """Program the weights where ``mask`` (``[out, in]`` bool) to ``w`` at ``t_s``; compact results.

        The same device-model calls with the same arguments as the full-matrix form of
        :meth:`program_weights` (RESET on the pair's view with the full mask, ``program`` on the
        selected devices gathered in the same order, the residual of the next pair read from the
        pair's view), hence the same random draws in the same order and the same devices bit for
        bit; the arithmetic on targets and shares runs on the m selected weights only, so that a
        refresh of a few saturated pairs costs O(m) plus the model's own passes, not some 60
        passes over the array. No argument checks: callers pass a float32 ``w`` and a bool
        ``mask`` of the crossbar's shape, on its device.
        """
        out_f, in_f = self.shape
        n_w = out_f * in_f
        n = self.config.devices_per_sign
        cs = self.config.significances
        g_max = float(self.model.g_max_us)
        flat = mask.reshape(-1).nonzero().squeeze(1)  # selected weights, row-major (the order of a bool mask)
        m = flat.numel()
        w_c = w.reshape(-1)[flat]
        wpu = self.w_per_us
        wpu_c = wpu.reshape(-1)[torch.div(flat, in_f, rounding_mode="floor")] if wpu.dim() > 0 else wpu
        cap_c = wpu_c * self.g_norm_us  # largest representable |W|
        clipped_c = w_c.abs() > cap_c * (1.0 + 1e-6)
        residual = torch.maximum(torch.minimum(w_c, cap_c), -cap_c) / wpu_c  # µS, Σ_k c_k ΔG_k
        before = self.state.pulse_count.reshape(n, 2, n_w)[:, :, flat]
        conv_c = torch.ones((n, 2, m), dtype=torch.bool, device=self.device)
        kw = {"tolerance_us": tolerance_us, "max_pulses": max_pulses}
        for k in range(n):  # over the pairs of a weight (a handful), never over devices
            divisor = (n - k) if self.config.significance == "equal" else 1
            share = (residual / (cs[k] * divisor)).clamp(-g_max, g_max)
            pos, neg = share > 0, share < 0
            reset_c = torch.stack([~pos, ~neg])
            if bool(reset_c.any()):
                reset_mask = torch.zeros((2, n_w), dtype=torch.bool, device=self.device)
                reset_mask[:, flat] = reset_c
                rm = reset_mask.view(2, out_f, in_f)
                self._on_pair(k, lambda s, rm=rm: self.model.reset(s, rm, t_s, self.generator))
            prog = torch.stack([pos, neg])
            if bool(prog.any()):
                targets = torch.stack([share.clamp(min=0.0), (-share).clamp(min=0.0)])
                sign, j = prog.nonzero(as_tuple=True)  # sign-major, then row-major: the bool-mask order
                dev = sign * n_w + flat[j]  # into the pair's [2·out·in] devices
                pair = self.state.index(k)
                views = [getattr(pair, f).reshape(-1) for f in DeviceState.FIELDS]
                sub = DeviceState(**{f: v[dev] for f, v in zip(DeviceState.FIELDS, views)})
                report = self.model.program(sub, targets[sign, j], t_s, self.generator, **kw)
                for f, v in zip(DeviceState.FIELDS, views):
                    v.index_copy_(0, dev, getattr(sub, f))
                    dst = getattr(pair, f)
                    if v.data_ptr() != dst.data_ptr() or not dst.is_contiguous():  # reshape made a copy
                        dst.copy_(v.view(dst.shape))
                conv_c[k, sign, j] = report.converged.to(torch.bool).reshape(-1)
            if k < n - 1:
                g_k = self.model.drifted(self.state.index(k), t_s)
                residual = residual - cs[k] * (g_k[0] - g_k[1]).reshape(-1)[flat]
        self._version += 1
        self._cache = None
        pulses_c = (self.state.pulse_count.reshape(n, 2, n_w)[:, :, flat] - before).to(torch.int32)
        return _SelectedProgram(flat=flat, targets=w_c, w_per_us=wpu_c, clipped=clipped_c, pulses=pulses_c,
                                converged=conv_c)

    @torch.no_grad()
    def apply_pulses(self, n_plus: Tensor, n_minus: Tensor, t_s: float, *, device_index: int = 0) -> None:
        """Apply ``n_plus[i, j]`` SET pulses to G⁺ and ``n_minus[i, j]`` to G⁻ of pair ``device_index``.

        Integer tensors ``[out, in]`` ≥ 0; one loop over pulse rounds (the model's ``set_pulses``).
        """
        k = self._check_index(device_index)
        n_plus = self._check_matrix("n_plus", n_plus, dtype_kind="int")
        n_minus = self._check_matrix("n_minus", n_minus, dtype_kind="int")
        n = torch.stack([n_plus, n_minus]).to(torch.int32)
        if n.numel() and int(n.min()) < 0:
            raise ValueError("n_plus/n_minus have negative entries: expected pulse counts ≥ 0")
        if not bool(n.any()):
            return
        self._apply_pulse_counts(n, t_s, k)

    def _apply_pulse_counts(self, n: Tensor, t_s: float, k: int = 0) -> None:
        """SET ``n[0]`` pulses on G⁺ and ``n[1]`` on G⁻ of pair ``k`` (``n``: ``[2, out, in]`` int32 on the
        crossbar's device, ≥ 0, not all zero: the caller has checked)."""
        self._on_pair(k, lambda s: self.model.set_pulses(s, n, float(t_s), self.generator))
        self._version += 1
        self._cache = None

    @torch.no_grad()
    def reset_devices(
        self, mask_plus: Tensor, mask_minus: Tensor, t_s: float, *, device_index: int = 0
    ) -> None:
        """RESET G⁺ where ``mask_plus`` and G⁻ where ``mask_minus`` (bool ``[out, in]``) of one pair."""
        k = self._check_index(device_index)
        m = torch.stack(
            [
                self._check_matrix("mask_plus", mask_plus, dtype_kind="bool"),
                self._check_matrix("mask_minus", mask_minus, dtype_kind="bool"),
            ]
        )
        if not bool(m.any()):
            return
        self._on_pair(k, lambda s: self.model.reset(s, m, float(t_s), self.generator))
        self._version += 1
        self._cache = None

    # ---- persistence --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Tensors only (``torch.load(weights_only=True)`` reads it): devices, scale, RNG, counters."""
        d: dict[str, Tensor] = {f"state.{f}": getattr(self.state, f) for f in DeviceState.FIELDS}
        d["w_per_us"] = self.w_per_us
        d["generator_state"] = self.generator.get_state()
        for f, v in self.stats.state_dict().items():
            d[f"stats.{f}"] = v
        return d

    def load_state_dict(self, d: dict[str, Tensor]) -> None:
        """Restore :meth:`state_dict` (shapes must match this crossbar)."""
        missing = [k for k in [f"state.{f}" for f in DeviceState.FIELDS] + ["w_per_us"] if k not in d]
        if missing:
            raise ValueError(f"crossbar state is missing {missing}")
        for f in DeviceState.FIELDS:
            src = d[f"state.{f}"]
            dst = getattr(self.state, f)
            if tuple(src.shape) != tuple(dst.shape):
                raise ValueError(
                    f"crossbar state field {f!r} has shape {tuple(src.shape)}; expected {tuple(dst.shape)}"
                )
            dst.copy_(src.to(dst.device, dst.dtype))
        w = d["w_per_us"]
        if tuple(w.shape) != tuple(self.w_per_us.shape):
            raise ValueError(f"w_per_us has shape {tuple(w.shape)}; expected {tuple(self.w_per_us.shape)}")
        self.w_per_us = w.to(self.device, torch.float32).clone()
        if "generator_state" in d:
            self.generator.set_state(d["generator_state"].cpu())
        self.stats.load_state_dict({k[len("stats.") :]: v for k, v in d.items() if k.startswith("stats.")})
        self.invalidate()

    def to(self, device: torch.device | str) -> Crossbar:
        """Move the state to ``device`` (in place; returns self). A new generator on another device
        type is seeded from a draw of the old one (deterministic)."""
        device = torch.device(device)
        if device == self.device:
            return self
        self.state = self.state.to(device)
        self.w_per_us = self.w_per_us.to(device)
        self._c = self._c.to(device)
        self.stats = self.stats.to(device)
        if torch.device(self.generator.device).type != device.type:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self.generator.device))
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(seed)
        self.invalidate()
        return self
