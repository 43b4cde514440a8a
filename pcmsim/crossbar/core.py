"""A weight matrix stored as conductances of a population of devices, read through a periphery.

:class:`Crossbar` ties the parts together: the mapping of weights onto device pairs
(:mod:`~pcmsim.crossbar.mapping`), the tiles (:mod:`~pcmsim.crossbar.tiles`), the reads with
drift, read noise and their cache (:mod:`~pcmsim.crossbar.reading`), the analog product through
the periphery (:mod:`~pcmsim.crossbar.product`, :mod:`pcmsim.periphery`) and the one programming
path (:mod:`~pcmsim.crossbar.programming`). It holds the devices (``state``), the weight scale
(``w_per_us``), the generator of every random draw and the periphery's counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

import device_models
from device_models import DeviceModel, DeviceParams, DeviceState

from ..periphery import PeripheryStats
from .config import CrossbarConfig, check_positive_int
from .ir_drop import IRDrop
from .mapping import WeightMapping
from .product import AnalogProduct, NoisyProduct
from .programming import CrossbarProgramReport, SelectedProgram, full_report, on_pair, program_selected
from .reading import ArrayReader
from .threads import threads_for
from .tiles import TileLayout
from .transposed import TransposedProduct


class Crossbar:
    """A weight matrix ``[out, in]`` on pairs of devices of any :class:`DeviceModel`.

    Args:
        out_features: rows of the weight matrix (outputs).
        in_features: columns of the weight matrix (inputs).
        model: a DeviceModel, or a registry name (``device_models.get(model, **device_params)``).
        config: layout, scale and periphery (:class:`CrossbarConfig`).
        generator: the ``torch.Generator`` of every random draw of this crossbar (programming
            noise, read noise, output noise); made from ``seed`` on ``device`` if not given.
        seed: seed of the generator made here.
        device: torch device of the state.
        t_s: simulated time of the initial RESET of every device, s.
        device_params: parameter overrides when ``model`` is a name.

    Attributes:
        model: the device model.
        config: the layout, scale and periphery.
        state: every device, ``[N, 2, out, in]`` (see :mod:`pcmsim.crossbar.mapping`).
        w_per_us: weight per µS: scalar tensor, or ``[out, 1]`` with ``per_column_scale``.
        generator: the generator of every random draw.
        stats: the periphery's running counts.
        mapping: weights ↔ conductances.
        tiles: the tile geometry.
        reader: noise-free reads and their cache.
        product: the analog product through the periphery.
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
        device_params: DeviceParams | Mapping[str, Any] | None = None,
    ) -> None:
        check_positive_int("out_features", out_features)
        check_positive_int("in_features", in_features)
        model = device_models.resolve(model, device_params)
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
        cfg = self.config
        self.state: DeviceState = self.model.init_state(
            (cfg.devices_per_sign, 2, self.out_features, self.in_features),
            device=dev,
            generator=self.generator,
            t_s=float(t_s),
        )
        self.mapping = WeightMapping(cfg, float(self.model.g_max_us), self.out_features, dev)
        self.w_per_us: Tensor = self.mapping.initial_w_per_us()
        """Weight per µS: scalar tensor, or ``[out, 1]`` with ``per_column_scale``."""
        self.stats = PeripheryStats.zeros(dev)
        self.tiles = TileLayout.of(self.out_features, self.in_features, cfg.tile_rows, cfg.tile_cols)
        self.product = AnalogProduct(cfg.periphery, self.tiles)
        self._transposed: TransposedProduct | None = None
        self.reader = ArrayReader(
            self.model,
            self.mapping,
            self.tiles,
            tile_factor=1.0 / (self.mapping.g_norm_us * self.product.out_unit),  # µS → ADC units
            read_noise=cfg.read_noise,
            exact_chunk_elements=cfg.exact_chunk_elements,
            ir_drop=IRDrop.of(cfg.ir_drop, cfg.wire_ohm, cfg.access_ohm, cfg.tile_rows),
        )

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
    def n_tiles_in(self) -> int:
        """Tiles along the inputs."""
        return self.tiles.n_tiles_in

    @property
    def n_tiles_out(self) -> int:
        """Tiles along the outputs."""
        return self.tiles.n_tiles_out

    @property
    def n_tiles(self) -> int:
        return self.tiles.n_tiles_in * self.tiles.n_tiles_out

    @property
    def g_norm_us(self) -> float:
        """Normalising conductance ``g_max · Σ c_k``, µS (the largest |Σ c_k ΔG_k|)."""
        return self.mapping.g_norm_us

    @property
    def significances(self) -> Tensor:
        """``c_k``, ``[N]``."""
        return self.mapping.c

    @property
    def version(self) -> int:
        """Bumped by every programming method of this class (reads are cached per version and time)."""
        return self.reader.version

    def invalidate(self) -> None:
        """Forget cached reads. Rarely needed: in-place changes of ``state`` made outside this class
        are noticed through the tensors' version counters, and replaced tensors by their identity."""
        self.reader.invalidate()

    def __repr__(self) -> str:
        return (
            f"Crossbar({self.out_features}×{self.in_features}, model={self.model.name!r}, "
            f"N={self.config.devices_per_sign}, tiles={self.n_tiles_out}×{self.n_tiles_in}, "
            f"devices={self.n_devices})"
        )

    # ---- reading ------------------------------------------------------------------------
    def conductances(self, t_s: float, *, noise: bool = False) -> Tensor:
        """Every device's conductance at ``t_s``, ``[N, 2, out, in]``, µS (noise-free by default).

        A new tensor, the caller's to keep or change; :meth:`drifted_conductances` gives the
        noise-free one from the read cache without a copy.
        """
        if noise:
            return self.model.read(self.state, float(t_s), self.generator, noise=True)
        return self.model.drifted(self.state, float(t_s))

    def drifted_conductances(self, t_s: float) -> Tensor:
        """Every device's noise-free conductance at ``t_s``, ``[N, 2, out, in]`` (µS), through the
        read cache: a :meth:`weights` or :meth:`mvm` at the same time and version then reuses the
        read. Read-only: the tensor is the cache's own (the same values as
        ``conductances(t_s)``)."""
        return self.reader.drifted(self.state, t_s)

    def weights(self, t_s: float, *, noise: bool = False) -> Tensor:
        """The weights the devices hold at ``t_s``, ``[out, in]`` (weight units).

        ``noise=False`` (default): drift only, the digital side's estimate; ``noise=True``: one
        read with a fresh draw of read noise.
        """
        if noise:
            g = self.model.read(self.state, float(t_s), self.generator, noise=True)
            return self.mapping.combine(g) * self.w_per_us
        return self.reader.weights_us(self.state, t_s) * self.w_per_us

    def weights_into(self, out: Tensor, t_s: float) -> None:
        """``out.copy_(self.weights(t_s))`` (``out``: ``[out, in]``) without the intermediate tensor
        where ``out`` is float32 on the crossbar's device (the same values either way)."""
        g_eff = self.reader.weights_us(self.state, t_s)
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
        read = self.reader.read(self.state, t_s)
        noisy: NoisyProduct | None = None
        if self.config.exact_read_noise:

            def noisy(xh: Tensor) -> Tensor:
                return self.reader.exact_product(self.state, xh, read.t_s, self.generator)

        out = self.product(x2, read, self.generator, self.stats, noisy)
        out = out * self._output_scale_cached()
        return out.reshape(*lead, self.out_features)

    @torch.no_grad()
    def mvm_transposed(self, d: Tensor, t_s: float) -> Tensor:
        """The transposed analog product ``d·W`` on the array itself (:mod:`.transposed`): ``d``
        ``[B, out]`` → ``[B, in]`` (weight units), the devices read at ``t_s`` with fresh read and
        output noise through a periphery of the same configuration. On one thread for a small array."""
        if d.dim() != 2 or d.shape[1] != self.out_features:
            raise ValueError(
                f"transposed input of shape {tuple(d.shape)} is invalid: expected [B, {self.out_features}]"
            )
        if self._transposed is None:
            cfg = self.config
            self._transposed = TransposedProduct(self.model, self.mapping, cfg.periphery, self.out_features,
                                                 self.in_features, cfg.tile_rows, cfg.tile_cols,
                                                 read_noise=cfg.read_noise, ir_drop=self.reader.ir_drop)
        with threads_for(self.n_devices, self.device):
            return self._transposed(d, self.state, self.w_per_us, float(t_s), self.generator, self.stats)

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

    @torch.no_grad()
    def auto_scale(self, w: Tensor) -> Tensor:
        """The ``w_per_us`` that ``weight_scale="auto"`` picks for ``w``: ``max|W| / (fill · g_norm)``."""
        return self.mapping.auto_scale(w)

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
        first (a residual of the other sign goes onto that pair's other device). No mask is the
        all-true mask: one path (:meth:`program_selected`) either way.

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
            self.w_per_us = self.mapping.auto_scale(w)
        if mask is None:
            mask = torch.ones(self.shape, dtype=torch.bool, device=self.device)
        t = float(t_s)
        sel = self._program_selected(w, mask, t, tolerance_us=tolerance_us, max_pulses=max_pulses)
        return full_report(sel, self.model, self.state, self.mapping, self.w_per_us, t)

    @torch.no_grad()
    def program_selected(
        self,
        w: Tensor,
        mask: Tensor,
        t_s: float,
        *,
        tolerance_us: float | None = None,
        max_pulses: int | None = None,
    ) -> SelectedProgram:
        """:meth:`program_weights` ``(w, t_s, mask=mask)`` with its results on the selected weights
        only (:class:`SelectedProgram`: no ``[out, in]`` report is formed).

        The same devices, draws and pulses as :meth:`program_weights`; the scale is kept
        (``rescale=False``) and the targets are not checked for being finite (callers pass
        weights read from the devices, as the refresh of the update schemes does). ``w``:
        ``[out, in]`` weight units; ``mask``: ``[out, in]`` bool; ``t_s``: s.
        """
        w = self._check_matrix("w", w).to(torch.float32)
        mask = self._check_matrix("mask", mask, dtype_kind="bool")
        return self._program_selected(w, mask, float(t_s), tolerance_us=tolerance_us, max_pulses=max_pulses)

    def _program_selected(
        self, w: Tensor, mask: Tensor, t_s: float, *, tolerance_us: float | None, max_pulses: int | None
    ) -> SelectedProgram:
        sel = program_selected(
            self.model, self.state, self.generator, self.mapping, self.w_per_us, w, mask, t_s,
            tolerance_us=tolerance_us, max_pulses=max_pulses,
        )  # fmt: skip
        self.invalidate()
        return sel

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
        self._apply_pulse_counts(n, float(t_s), k)

    @torch.no_grad()
    def apply_pulse_counts(self, counts: Tensor, t_s: float, *, device_index: int = 0) -> None:
        """SET ``counts[0]`` pulses on G⁺ and ``counts[1]`` on G⁻ of pair ``device_index`` at ``t_s`` (s).

        The lean form of :meth:`apply_pulses` for callers that build the counts themselves (the
        update schemes): ``counts`` is one int32 tensor ``[2, out, in]`` on the crossbar's
        device, and its values are trusted to be ≥ 0 (not checked: that would cost a pass and a
        synchronisation per update). The shape, dtype, device and index are checked.
        """
        k = self._check_index(device_index)
        if not isinstance(counts, Tensor) or tuple(counts.shape) != (2, *self.shape) or counts.dtype != torch.int32:
            raise ValueError(
                f"counts must be an int32 tensor of shape [2, {self.out_features}, {self.in_features}]; got "
                f"{getattr(counts, 'dtype', type(counts).__name__)} {tuple(getattr(counts, 'shape', ()))}"
            )
        if counts.device != self.device:
            raise ValueError(f"counts are on {counts.device} but the crossbar is on {self.device}")
        self._apply_pulse_counts(counts, float(t_s), k)

    def _apply_pulse_counts(self, n: Tensor, t_s: float, k: int) -> None:
        on_pair(self.state, k, lambda s: self.model.set_pulses(s, n, t_s, self.generator))
        self.invalidate()

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
        on_pair(self.state, k, lambda s: self.model.reset(s, m, float(t_s), self.generator))
        self.invalidate()

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
        self.mapping.to(device)
        self.stats = self.stats.to(device)
        if torch.device(self.generator.device).type != device.type:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self.generator.device))
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(seed)
        self.invalidate()
        return self
