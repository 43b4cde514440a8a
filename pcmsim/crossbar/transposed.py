"""The transposed analog product ``d → d·W`` on the crossbar itself, through its periphery.

A backward pass on the array (``backward_weights="transpose"`` of
:class:`pcmsim.analog.AnalogLinear`): the error vectors ``d`` ``[B, out]`` drive the output lines
and the input lines are read, as in the in-memory architectures that run both propagation
directions on the crossbar (Nandakumar et al., Front. Neurosci. 14, 406, 2020, mixed-precision
architecture). The same devices, read at the same time with fresh read noise, through a periphery
of the same configuration (DAC on ``d``, ADC on the sums, output noise, noise and bound
management): the tiles are the forward tiles transposed (``tile_cols`` inputs × ``tile_rows``
outputs). With a per-column weight scale the scale of output ``i`` multiplies ``d_i`` in digital
before the DAC.
"""

from __future__ import annotations

import torch
from torch import Tensor

from device_models import DeviceModel, DeviceState

from ..periphery import PeripheryConfig, PeripheryStats
from .ir_drop import IRDrop
from .mapping import WeightMapping
from .product import AnalogProduct
from .reading import CachedRead, read_moments
from .tiles import TileLayout


class TransposedProduct:
    """``d·W`` of an ``out × in`` array: the analog product of the transposed tiles.

    Args:
        model, mapping: the array's device model and weight mapping.
        periphery: the periphery configuration (the same as the forward direction's).
        out_features, in_features: the array's shape (forward orientation).
        tile_rows, tile_cols: the forward tile size; the transposed tiles are ``tile_cols × tile_rows``.
        read_noise: draw read noise.
        ir_drop: the wires' resistance (None: the ideal product); the columns are driven from
            their bottom ends and the rows sensed at their left ends
            (:meth:`pcmsim.crossbar.ir_drop.IRDrop.transposed_tiles`).
    """

    def __init__(self, model: DeviceModel, mapping: WeightMapping, periphery: PeripheryConfig, out_features: int,
                 in_features: int, tile_rows: int, tile_cols: int, *, read_noise: bool,
                 ir_drop: IRDrop | None = None) -> None:
        self.model = model
        self.mapping = mapping
        self.read_noise = read_noise
        self.tiles = TileLayout.of(in_features, out_features, tile_cols, tile_rows)
        self.forward_tiles = TileLayout.of(out_features, in_features, tile_rows, tile_cols)
        self.ir_drop = ir_drop
        self.product = AnalogProduct(periphery, self.tiles)
        self.tile_factor = 1.0 / (mapping.g_norm_us * self.product.out_unit)

    @torch.no_grad()
    def read(self, state: DeviceState, t_s: float) -> CachedRead:
        """The transposed tiles (and read-noise variance) of the devices at ``t_s``; clipped reads
        (``read_clip_us``) enter with their exact moments, as in the forward direction."""
        g = self.model.drifted(state, float(t_s))
        g_rows = self.tiles.row_tiles(g.sum(dim=(0, 1, 3)))  # the driven lines are the outputs here
        var_tiles = None
        if self.read_noise:
            g, sigma = read_moments(self.model, state, float(t_s), g)
            var = self.mapping.combine_var(sigma)
            if bool((var > 0).any()):
                var_tiles = self.tiles.to_tiles(var.t().mul(self.tile_factor**2))
        g_eff = self.mapping.combine(g)
        y_rows = None
        if self.ir_drop is not None:
            g_tiles, y_rows = self.ir_drop.transposed_tiles(g, self.mapping.c, self.forward_tiles)
            g_tiles.mul_(self.tile_factor)
        else:
            g_tiles = self.tiles.to_tiles(g_eff.t() * self.tile_factor)
        return CachedRead(key=None, t_s=float(t_s), g_drift_us=None, g_eff_us=g_eff, g_tiles=g_tiles,
                          var_tiles=var_tiles, var_done=True, g_rows_us=g_rows, y_rows_us=y_rows)

    def __call__(self, d: Tensor, state: DeviceState, w_per_us: Tensor, t_s: float,
                 generator: torch.Generator | None, stats: PeripheryStats) -> Tensor:
        """``d`` ``[B, out]`` → ``d·W`` ``[B, in]`` in weight units (``w_per_us``: scalar or ``[out, 1]``)."""
        scale: float | Tensor = self.mapping.g_norm_us
        if w_per_us.dim() > 0:  # per-column scale: a digital factor per driven line
            d = d * w_per_us.reshape(1, -1)
        else:
            scale = scale * w_per_us
        y = self.product(d.to(torch.float32), self.read(state, t_s), generator, stats)
        return y * scale
