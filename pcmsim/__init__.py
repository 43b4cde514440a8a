"""pcmsim: spiking neural networks on simulated phase-change-memory crossbars.

Crossbar arrays and their periphery, analog layers, neuron models (SNU, sSNU, LIF), networks,
datasets, metrics and plots. Builds on ``device_models``; ``hardware_in_loop`` builds on it.
"""

__version__ = "0.1.0"
