"""The cut of a crossbar into tiles, each with its own periphery.

The array is cut into tiles of at most ``tile_rows`` inputs × ``tile_cols`` outputs *unit cells*
(a unit cell holds the 2N devices of one weight, as the 256×256 unit cells of four PCM devices
of IBM's HERMES chip). Every tile has its own periphery (DAC, ADC, noise and bound management,
see :mod:`pcmsim.periphery`); the outputs of the tiles along the input dimension are summed in
digital. Tiles along the output dimension share the inputs and hence their DAC scaling (noise
management); bound management is decided per tile. A matrix that fits one tile in a dimension
takes its true size there; otherwise the last tile is zero-padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class TileLayout:
    """The tile geometry of an ``out × in`` matrix.

    Attributes:
        out_features, in_features: the matrix shape.
        n_tiles_in: tiles along the inputs.
        n_tiles_out: tiles along the outputs.
        tile_in: inputs (rows) per tile.
        tile_out: outputs (columns) per tile.
    """

    out_features: int
    in_features: int
    n_tiles_in: int
    n_tiles_out: int
    tile_in: int
    tile_out: int

    @classmethod
    def of(cls, out_features: int, in_features: int, tile_rows: int, tile_cols: int) -> TileLayout:
        """Tiles of at most ``tile_rows`` inputs × ``tile_cols`` outputs."""
        n_in = -(-in_features // tile_rows)
        n_out = -(-out_features // tile_cols)
        return cls(
            out_features=out_features,
            in_features=in_features,
            n_tiles_in=n_in,
            n_tiles_out=n_out,
            tile_in=in_features if n_in == 1 else tile_rows,
            tile_out=out_features if n_out == 1 else tile_cols,
        )

    @property
    def in_padded(self) -> int:
        """Inputs including the zero padding of the last input tile."""
        return self.n_tiles_in * self.tile_in

    @property
    def out_padded(self) -> int:
        """Outputs including the zero padding of the last output tile."""
        return self.n_tiles_out * self.tile_out

    def to_tiles(self, m: Tensor) -> Tensor:
        """``[..., out, in]`` → transposed tiles ``[..., n_tiles_in, tile_in, out_padded]`` (zero-padded)."""
        mt = m.transpose(-1, -2)
        pad_in, pad_out = self.in_padded - self.in_features, self.out_padded - self.out_features
        if pad_in or pad_out:
            mt = F.pad(mt, (0, pad_out, 0, pad_in))
        return mt.reshape(*mt.shape[:-2], self.n_tiles_in, self.tile_in, self.out_padded).contiguous()

    def split_inputs(self, x: Tensor) -> Tensor:
        """Input vectors ``[B, in]`` → one slice per input tile, ``[n_tiles_in, B, tile_in]`` (zero-padded)."""
        if self.n_tiles_in == 1:
            return x.unsqueeze(0)
        b = x.shape[0]
        return F.pad(x, (0, self.in_padded - self.in_features)).view(b, self.n_tiles_in, self.tile_in).transpose(0, 1)

    def row_tiles(self, v: Tensor) -> Tensor:
        """One value per input ``[in]`` → per input tile ``[n_tiles_in, tile_in]`` (zero-padded)."""
        return self.split_inputs(v.unsqueeze(0))[:, 0]

    def sum_outputs(self, y: Tensor) -> Tensor:
        """Tile outputs ``[n_tiles_in, B, out_padded]`` → ``[B, out]``: the digital sum over the input
        tiles, padding dropped."""
        out = y[0] if self.n_tiles_in == 1 else y.sum(0)
        if self.out_padded != self.out_features:
            out = out[:, : self.out_features]
        return out
