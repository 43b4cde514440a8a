"""A weight matrix stored as conductances of a population of devices, read through a periphery.

One job per module:

- :mod:`~pcmsim.crossbar.config`: :class:`CrossbarConfig`, the layout, scale and periphery;
- :mod:`~pcmsim.crossbar.mapping`: weights ↔ conductances (pairs, significances, weight scale);
- :mod:`~pcmsim.crossbar.tiles`: the cut into tiles;
- :mod:`~pcmsim.crossbar.reading`: drift, read noise, the read cache and the exact-noise path;
- :mod:`~pcmsim.crossbar.ir_drop`: IR drop on the wires of a tile (an exact resistive-network
  solve and a first-order approximation), switched on by ``CrossbarConfig.ir_drop``;
- :mod:`~pcmsim.crossbar.product`: the analog product through the periphery (DAC, ADC, noise and
  bound management: :mod:`pcmsim.periphery`);
- :mod:`~pcmsim.crossbar.programming`: the one programming path (a whole matrix is an all-true
  mask);
- :mod:`~pcmsim.crossbar.threads`: one CPU thread for a small array;
- :mod:`~pcmsim.crossbar.core`: :class:`Crossbar`, which holds the devices and ties these together.
"""

from .config import CrossbarConfig, Significance
from .core import Crossbar
from .ir_drop import IRDrop, column_currents
from .mapping import WeightMapping
from .programming import CrossbarProgramReport, SelectedProgram
from .reading import ArrayReader, CachedRead
from .threads import SINGLE_THREAD_MAX_DEVICES, threads_for
from .tiles import TileLayout

__all__ = [
    "SINGLE_THREAD_MAX_DEVICES",
    "ArrayReader",
    "CachedRead",
    "Crossbar",
    "CrossbarConfig",
    "CrossbarProgramReport",
    "IRDrop",
    "SelectedProgram",
    "Significance",
    "TileLayout",
    "WeightMapping",
    "column_currents",
    "threads_for",
]
