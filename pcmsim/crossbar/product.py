"""The analog product of a tiled array through its periphery (:mod:`pcmsim.periphery`).

Per tile and input vector: noise management scales the input by ``1/α`` (``α = max|x|`` of the
tile's slice), the DAC quantises it, the tile forms ``x̂·Ĝᵀ`` plus read and output noise
(:mod:`pcmsim.crossbar.reading`), the ADC quantises and clips the sums, and bound management
reads the vectors whose outputs clipped again at ``α · 2^r`` (``r = 1 … bm_max_halvings``). The
sums are formed in ADC units (one ADC step; normalised units without ADC bits: the cached tiles
carry the factor), so the ADC is a rounding. The digital side multiplies by α, the
bound-management factor and the ADC unit, and sums the input tiles: the output is in normalised
units (a weight at ``g_norm`` times a full-scale input gives 1); the crossbar turns it into
weight units with ``g_norm · w_per_us``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..periphery import PeripheryConfig, PeripheryStats, adc_in_units, dac, noise_management_scale
from .reading import CachedRead
from .tiles import TileLayout

NoisyProduct = Callable[[Tensor], Tensor]
"""``xh`` ``[n_tiles_in, B, tile_in]`` → ``Ĝ_b x̂_b`` with a noisy array per batch element (ADC units)."""


class AnalogProduct:
    """The tiles' analog product ``x → ŷ`` with DAC, noise, ADC and bound management.

    Args:
        periphery: the converters, output noise and management of every tile.
        tiles: the tile geometry.

    Attributes:
        out_unit: the unit of the analog sums (:attr:`PeripheryConfig.adc_unit`).
        out_noise_units: σ_out in ADC units.
    """

    def __init__(self, periphery: PeripheryConfig, tiles: TileLayout) -> None:
        self.periphery = periphery
        self.tiles = tiles
        self.out_unit: float = periphery.adc_unit
        self.out_noise_units: float = periphery.out_noise / self.out_unit
        # DAC clipping is counted only without noise management (with it, |x/α| ≤ 1)
        self._count_dac_clipping = not periphery.noise_management and periphery.inp_bound is not None

    @staticmethod
    def _randn(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def read_tiles(
        self,
        xt: Tensor,
        scale: Tensor,
        read: CachedRead,
        generator: torch.Generator | None,
        stats: PeripheryStats,
        noisy_product: NoisyProduct | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """One analog read of the tiles for inputs ``xt`` ``[n_ti, M, tile_in]`` scaled by ``1/scale``.

        ``noisy_product``: with read noise, the exact path (a noisy array per batch element)
        instead of the Gaussian output-noise shortcut. Returns ``(y, blocks, clipped)``: ``y``
        ``[n_ti, M, out_padded]`` after the ADC (in ADC units), ``blocks`` ``[n_ti, M, n_to]``
        where a tile's outputs clipped and ``clipped`` the clipped outputs (both None where
        nothing clipped or the output is unbounded).
        """
        xh, dac_clipped = dac(xt, self.periphery, scale, find_clipped=self._count_dac_clipping)
        if dac_clipped is not None:
            stats.dac_clipped += dac_clipped.count_nonzero()
        # energy counts (read only: no value or random draw changes): nonzero DAC levels, per tile
        # along the outputs, and Σ |x̂|·G_row (PeripheryStats.array_gx_us)
        stats.dac_nonzero += xh.count_nonzero() * self.tiles.n_tiles_out
        if read.y_rows_us is not None:  # IR drop: Σ x̂·(Y·sign x̂), the rows' solved currents
            stats.array_gx_us += torch.einsum("tmr,tmr->", xh, torch.bmm(xh.sign(), read.y_rows_us)).to(torch.float64)
        elif read.g_rows_us is not None:
            stats.array_gx_us += torch.einsum("tmr,tr->", xh.abs(), read.g_rows_us).to(torch.float64)
        sigma_out = self.out_noise_units
        if read.var_tiles is not None and noisy_product is not None:
            y = noisy_product(xh)
            if sigma_out > 0:
                y.add_(self._randn(y.shape, y, generator), alpha=sigma_out)
        else:
            if read.g_tiles is None:
                raise RuntimeError("the read's tiles are not formed: read the array for an analog product")
            y = torch.bmm(xh, read.g_tiles)
            if read.var_tiles is not None:
                var = torch.bmm(xh * xh, read.var_tiles)
                if sigma_out > 0:
                    var.add_(sigma_out**2)
                y.addcmul_(var.sqrt_(), self._randn(y.shape, y, generator))
            elif sigma_out > 0:
                y.add_(self._randn(y.shape, y, generator), alpha=sigma_out)
        y, clipped = adc_in_units(y, self.periphery)
        if clipped is None:
            return y, None, None
        n_ti, m = y.shape[0], y.shape[1]
        blocks = clipped.view(n_ti, m, self.tiles.n_tiles_out, self.tiles.tile_out).any(-1)
        return y, blocks, clipped

    def __call__(
        self,
        x: Tensor,
        read: CachedRead,
        generator: torch.Generator | None,
        stats: PeripheryStats,
        noisy_product: NoisyProduct | None = None,
    ) -> Tensor:
        """The analog product of the input vectors ``x`` ``[B, in]`` (float32) with the array read
        ``read`` (its tiles and read-noise variance formed): ``[B, out]`` in normalised output
        units. Draws fresh noise from ``generator``; counts into ``stats``."""
        per, tl = self.periphery, self.tiles
        n_ti, n_to, t_out, out_p = tl.n_tiles_in, tl.n_tiles_out, tl.tile_out, tl.out_padded
        b = x.shape[0]
        xt = tl.split_inputs(x)
        alpha = noise_management_scale(xt, per)  # [n_ti, B, 1]
        y, blocks, clipped = self.read_tiles(xt, alpha, read, generator, stats, noisy_product)
        stats.mvm_calls += 1
        stats.input_vectors += n_ti * b
        if clipped is not None and per.uses_bound_management:
            assert blocks is not None
            reduction = torch.ones(n_ti, b, n_to, 1, dtype=y.dtype, device=y.device)
            for r in range(1, per.bm_max_halvings + 1):
                idx = blocks.any(-1).any(0).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                factor = float(2**r)
                y_s, b_s, c_s = self.read_tiles(
                    xt[:, idx], alpha[:, idx] * factor, read, generator, stats, noisy_product
                )
                upd = blocks[:, idx]  # the blocks still clipping are read again at 2^r
                upd_o = upd.unsqueeze(-1).expand(n_ti, idx.numel(), n_to, t_out).reshape(n_ti, -1, out_p)
                y[:, idx] = torch.where(upd_o, y_s, y[:, idx])
                if c_s is None or b_s is None:
                    c_s = torch.zeros_like(y_s, dtype=torch.bool)
                    b_s = torch.zeros_like(upd)
                clipped[:, idx] = torch.where(upd_o, c_s, clipped[:, idx])
                reduction[:, idx] = torch.where(upd.unsqueeze(-1), factor, reduction[:, idx])
                blocks[:, idx] = upd & b_s
                stats.bm_rereads += upd.count_nonzero()
            y = (y.view(n_ti, b, n_to, t_out) * reduction).view(n_ti, b, out_p)
        if per.adc_limit is not None:
            stats.outputs += n_ti * b * tl.out_features
            if clipped is not None:
                stats.adc_clipped += clipped[..., : tl.out_features].count_nonzero()
        y.mul_(alpha * self.out_unit)
        return tl.sum_outputs(y)
