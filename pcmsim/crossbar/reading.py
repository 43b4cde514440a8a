"""Reading the devices of a crossbar: drift, read noise, the read cache, the exact-noise path.

A read at time ``t`` sees the drifted conductance plus a fresh Gaussian draw of read noise per
read. For an input vector ``x̂`` the output noise of independent Gaussian device noise is
Gaussian with variance ``Σ_j x̂_j² σ̂_ij²``, so the whole batch takes one extra matmul
(``y = x̂·Ĝᵀ + sqrt(x̂²·(σ̂²)ᵀ + σ_out²)·ξ``) instead of a noisy matrix per batch element. This is
exact in distribution for unclipped Gaussian read noise. Where a model clips its noisy reads
(``read_clip_us``: ``pcm-nandakumar2018`` to ``[0.1 µS, G_max]``, ``pcm-joshi2020`` at 0 µS), the
shortcut uses each device's exact clipped-read mean and variance (:func:`clipped_normal_moments`);
the output noise is then a sum of independent non-Gaussian terms drawn as a Gaussian of the same
mean and variance, which is accurate when many inputs contribute (central limit) and is held
against explicit sampling in ``tests/test_fidelity.py``. ``CrossbarConfig(exact_read_noise=True)``
samples a noisy array per batch element through the model's own ``read`` instead
(:meth:`ArrayReader.exact_product`; chunked over the batch; memory ``chunk × 2N × out × in``;
about 300× slower).

The noise-free part of a read (the drifted conductances, the weights, the tiles and the
read-noise variance) depends only on the devices and the time; :class:`ArrayReader` keeps the
last one (:class:`CachedRead`) until the devices change or another time is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from device_models import DeviceModel, DeviceState
from device_models.clipped import clipped_normal_moments

from .ir_drop import IRDrop
from .mapping import WeightMapping
from .tiles import TileLayout


@dataclass
class CachedRead:
    """A noise-free read of the array at one time (µS, and tiles in ADC units).

    Parts are formed on first need: ``g_eff_us`` always (the digital side's weights), the tiles
    only for an analog product, the variance only with read noise. ``g_drift_us`` (4 bytes per
    device) is dropped once the variance is formed: nothing else needs it then.

    Attributes:
        key: what the read is valid for (time, reader version, the state tensors and their
            in-place version counters); None: never reused.
        t_s: the time of the read, s.
        g_drift_us: every device at ``t_s``, ``[N, 2, out, in]``, µS (None once dropped).
        g_eff_us: ``Σ_k c_k (G⁺_k − G⁻_k)`` at ``t_s``, ``[out, in]``, µS.
        g_tiles: ``Ĝᵀ`` in ADC units as tiles, ``[n_tiles_in, tile_in, out_padded]`` (None: not yet).
        var_tiles: ``Var(Ĝ)ᵀ`` in ADC units² as tiles (None: no read noise, or not yet).
        var_done: ``var_tiles`` has been formed (or there is no read noise).
        g_rows_us: the total noise-free conductance on every input row, ``Σ`` over pairs, signs
            and outputs, as tiles ``[n_tiles_in, tile_in]`` (µS; zero-padded): what a full-scale
            input on that row draws, for the energy count (:class:`pcmsim.periphery.PeripheryStats`).
            None: not formed (no energy is counted for the read).
        y_rows_us: with IR drop (:mod:`pcmsim.crossbar.ir_drop`), the input admittance of the
            tiles' driven lines, summed over the tiles along the outputs, ``[n_tiles_in, tile_in,
            tile_in]`` (µS): the row currents per unit of row voltage with the wires' resistance;
            the energy count then takes it instead of ``g_rows_us``. None: no IR drop.
    """

    key: tuple | None
    t_s: float
    g_drift_us: Tensor | None
    g_eff_us: Tensor
    g_tiles: Tensor | None = None
    var_tiles: Tensor | None = None
    var_done: bool = False
    g_rows_us: Tensor | None = None
    y_rows_us: Tensor | None = None


def read_moments(model: DeviceModel, state: DeviceState, t_s: float, g_drift_us: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of one noisy read of every device at ``t_s`` (µS): the drifted
    conductance and the model's read-noise σ, or, where the model clips its reads
    (``read_clip_us``), the exact moments of the clipped normal. At ``pcm-nandakumar2018``'s RESET
    level (0.1 µS, σ = 0.133 µS, clip at 0.1 µS) a read has mean 0.153 µS and std 0.078 µS, not
    0.100 / 0.133."""
    sigma = model.read_noise_std(state, t_s, g_drift_us)
    clip = model.read_clip_us
    return clipped_normal_moments(g_drift_us, sigma, *clip) if clip is not None else (g_drift_us, sigma)


class ArrayReader:
    """Noise-free reads of a device array, cached per time and state, and noisy reads.

    Args:
        model: the device model (drift, read noise).
        mapping: conductances → weights.
        tiles: the tile geometry.
        tile_factor: µS → ADC units of the tiles: ``1 / (g_norm · ADC unit)``.
        read_noise: form the read-noise variance (False: drift only).
        exact_chunk_elements: the most device reads :meth:`exact_product` holds at once.
        ir_drop: the wires' resistance in the tiles (None: the ideal product).

    Attributes:
        version: bumped by :meth:`invalidate` (every change of the devices by the crossbar).
        cache: the last read (None: none kept).
    """

    def __init__(
        self,
        model: DeviceModel,
        mapping: WeightMapping,
        tiles: TileLayout,
        *,
        tile_factor: float,
        read_noise: bool,
        exact_chunk_elements: int,
        ir_drop: IRDrop | None = None,
    ) -> None:
        self.model = model
        self.mapping = mapping
        self.tiles = tiles
        self.tile_factor = tile_factor
        self.read_noise = read_noise
        self.exact_chunk_elements = exact_chunk_elements
        self.ir_drop = ir_drop
        self.version = 0
        self.cache: CachedRead | None = None

    def invalidate(self) -> None:
        """Forget the cached read (the devices changed)."""
        self.version += 1
        self.cache = None

    def _key(self, state: DeviceState, t_s: float) -> tuple | None:
        # Tensors' in-place version counters catch changes made to the state outside the crossbar.
        try:
            tv = tuple((id(t), t._version) for t in (getattr(state, f) for f in DeviceState.FIELDS))
        except RuntimeError:  # inference-mode tensors have no version counter: never cache
            return None
        return (float(t_s), self.version, tv)

    def read(
        self,
        state: DeviceState,
        t_s: float,
        *,
        with_var: bool = True,
        with_tiles: bool | None = None,
        keep_drift: bool = True,
    ) -> CachedRead:
        """The noise-free read of ``state`` at ``t_s`` from the cache, or computed (one elementwise
        pass over the devices); the tiles (``with_tiles``, default ``with_var``) and the read-noise
        variance (``with_var``) are added on first need. ``keep_drift=False`` lets a fresh read
        drop the conductance of every device once the weights are formed (4 bytes per device
        fewer held; the variance, if asked for later at the same time, recomputes it: same
        values)."""
        key = self._key(state, t_s)
        c = self.cache
        if c is None or key is None or c.key != key:
            with torch.no_grad():
                g = self.model.drifted(state, float(t_s))
                g_eff = self.mapping.combine(g)
            c = CachedRead(key=key, t_s=float(t_s), g_drift_us=g if keep_drift else None, g_eff_us=g_eff)
            del g
            self.cache = c
        clip = self.model.read_clip_us if self.read_noise else None
        if clip is not None and c.g_tiles is None and (with_var or with_tiles):
            self._clipped_moments(state, c)
        if (with_var if with_tiles is None else with_tiles) and c.g_tiles is None:
            with torch.no_grad():
                if self.ir_drop is not None:
                    self._ir_tiles(c, self._drift_of(state, c))
                else:
                    c.g_tiles = self.tiles.to_tiles(c.g_eff_us * self.tile_factor)
                c.g_rows_us = self.tiles.row_tiles(self._drift_of(state, c).sum(dim=(0, 1, 2)))
        if with_var and not c.var_done:
            if self.read_noise:
                with torch.no_grad():
                    g = c.g_drift_us if c.g_drift_us is not None else self.model.drifted(state, c.t_s)
                    c.g_drift_us = None
                    sigma = self.model.read_noise_std(state, c.t_s, g)
                    del g  # (freed before the variance is formed: a lower peak)
                    var = self.mapping.combine_var(sigma)
                    del sigma
                    if bool((var > 0).any()):
                        c.var_tiles = self.tiles.to_tiles(var.mul_(self.tile_factor**2))
            c.var_done = True
            c.g_drift_us = None
        return c

    def _ir_tiles(self, c: CachedRead, g_us: Tensor) -> None:
        """The tiles of the devices ``g_us`` ``[N, 2, out, in]`` (µS) read through wires with
        resistance, and their input admittance (:class:`pcmsim.crossbar.ir_drop.IRDrop`)."""
        assert self.ir_drop is not None
        m_us, y_us = self.ir_drop.forward_tiles(g_us, self.mapping.c, self.tiles)
        c.g_tiles = m_us.mul_(self.tile_factor)
        c.y_rows_us = y_us

    def _drift_of(self, state: DeviceState, c: CachedRead) -> Tensor:
        """The cached read's conductances, or (once dropped) the same values computed again."""
        return c.g_drift_us if c.g_drift_us is not None else self.model.drifted(state, c.t_s)

    @torch.no_grad()
    def _clipped_moments(self, state: DeviceState, c: CachedRead) -> None:
        """Tiles and variance of a model whose noisy reads are clipped (``read_clip_us``): the
        analog product sees each device's clipped-read mean and variance (:func:`read_moments`),
        while ``g_eff_us`` (the digital side's weights) stays the drifted conductance."""
        g = self._drift_of(state, c)
        c.g_rows_us = self.tiles.row_tiles(g.sum(dim=(0, 1, 2)))
        mean, std = read_moments(self.model, state, c.t_s, g)
        del g
        if self.ir_drop is not None:
            self._ir_tiles(c, mean)
        else:
            c.g_tiles = self.tiles.to_tiles(self.mapping.combine(mean) * self.tile_factor)
        var = self.mapping.combine_var(std)
        c.var_tiles = self.tiles.to_tiles(var.mul_(self.tile_factor**2)) if bool((var > 0).any()) else None
        c.var_done = True
        c.g_drift_us = None

    def drifted(self, state: DeviceState, t_s: float) -> Tensor:
        """Every device's noise-free conductance at ``t_s`` ``[N, 2, out, in]`` (µS), through the
        cache (a later weight read at the same time and state then costs nothing). Read-only: the
        tensor is the cache's own."""
        c = self.read(state, t_s, with_var=False, with_tiles=False)
        if c.g_drift_us is None:  # dropped after the variance: recompute (and keep) it
            c.g_drift_us = self.model.drifted(state, c.t_s)
        return c.g_drift_us

    def weights_us(self, state: DeviceState, t_s: float) -> Tensor:
        """``Σ_k c_k (G⁺_k − G⁻_k)`` at ``t_s``, ``[out, in]`` (µS), noise-free, through the cache.
        Read-only: the tensor is the cache's own."""
        return self.read(state, t_s, with_var=False, keep_drift=False).g_eff_us

    def exact_product(
        self, state: DeviceState, xh: Tensor, t_s: float, generator: torch.Generator | None
    ) -> Tensor:
        """``Ĝ_b x̂_b`` (ADC units) with an independent noisy read ``Ĝ_b`` of the array per batch
        element, through the model's own ``read``.

        ``xh``: DAC outputs ``[n_tiles_in, B, tile_in]`` → ``[n_tiles_in, B, out_padded]``. The
        batch goes in chunks of at most ``exact_chunk_elements`` device reads.
        """
        n_ti, m, _ = xh.shape
        per_elem = state.g_us.numel()
        chunk = max(1, self.exact_chunk_elements // per_elem)
        outs = []
        for start in range(0, m, chunk):  # chunks of the batch, not single elements
            stop = min(m, start + chunk)
            st = DeviceState(
                **{f: getattr(state, f).unsqueeze(0).expand(stop - start, *state.shape) for f in DeviceState.FIELDS}
            )
            g = self.model.read(st, t_s, generator, noise=True)
            g_tiles = self.tiles.to_tiles(self.mapping.combine(g) * self.tile_factor)  # [c, n_ti, tile_in, out_p]
            outs.append(torch.einsum("tcr,ctro->tco", xh[:, start:stop], g_tiles))
        return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
