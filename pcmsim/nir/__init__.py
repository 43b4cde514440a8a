"""NIR import and export: spiking networks from snnTorch, Norse, SpikingJelly, Lava ... on PCM crossbars.

The Neuromorphic Intermediate Representation (NIR; Pedersen et al., "Neuromorphic intermediate
representation: a unified instruction set for interoperable brain-inspired computing", Nat. Commun.
15, 8122 (2024); the ``nir`` package) describes a network as a graph of continuous-time nodes.
:func:`load` builds a pcmsim network from a graph (or a ``.nir`` file): the synapses on crossbars
of a device model, the neurons as pcmsim neuron layers; :func:`export` writes a pcmsim network back.

Supported nodes and what they become:

==============================  ============================================================================
NIR node                        pcmsim
==============================  ============================================================================
``Input``, ``Output``           the graph's input and output(s)
``Affine``, ``Linear``          :class:`pcmsim.analog.AnalogLinear` (weights on a crossbar, bias digital)
``Conv1d``, ``Conv2d``          :class:`pcmsim.analog_conv.AnalogConv1d` / ``AnalogConv2d`` (one crossbar,
                                unfolded input patches; ``groups=1``)
``LIF``, ``IF``, ``LI``, ``I``  :class:`pcmsim.neuron_models.LeakyLayer` (:mod:`pcmsim.neuron_models.leaky`)
``CubaLIF``                     :class:`pcmsim.neuron_models.CubaLIFLayer`
``Flatten``, ``Scale``          digital reshaping / scaling
``SumPool2d``, ``AvgPool2d``    digital pooling
==============================  ============================================================================

Any other node (``Delay``, ``Threshold``, ``CubaLI``, a nested ``NIRGraph`` such as a recurrent
layer, ...) and graphs with a cycle are refused in one line naming the node.

Continuous time → the discrete step. NIR's neurons are differential equations; pcmsim steps them
with one forward-Euler step of ``dt_s`` (default ``1e-4`` s, the step snnTorch's export assumes;
pass the step your graph was made for). With ``a = dt/τ``:

=========== ======================================================================================
node        discrete step (per unit; reset to ``v_reset`` in the same step, spike if ``v > v_threshold``)
=========== ======================================================================================
LIF         ``v ← (1 − a)·v + a·v_leak + a·R·x``
IF          ``v ← v + dt·R·x``
LI          ``v ← (1 − a)·v + a·v_leak + a·R·x`` (no spike; the output is ``v``)
I           ``v ← v + dt·R·x`` (no spike)
CubaLIF     ``i ← (1 − dt/τ_syn)·i + (dt/τ_syn)·w_in·x``; ``v ← (1 − dt/τ_mem)·v + (dt/τ_mem)·(v_leak + R·i)``
=========== ======================================================================================

``dt`` must not exceed any ``τ``. snnTorch's export (``τ = dt/(1 − β)``, ``R = τ/dt``) gives back
``v ← β·v + x`` exactly: a ``Leaky(reset_mechanism="zero")`` network of snnTorch runs the same in
pcmsim (snnTorch's default ``"subtract"`` reset has no NIR node: NIR resets to ``v_reset``).
:func:`export` inverts the mapping with the network's ``dt_s``.

Tensors are time-major, ``[T, B, *shape]``: every node processes the whole sequence at once (the
synapses all ``T·B`` inputs in one analog product, the neurons loop over time), which a graph
without cycles allows.
"""

from __future__ import annotations

from .from_nir import load
from .modules import DEFAULT_DT_S, SUPPORTED_NODES, NeuronNode, NIRNetwork
from .to_nir import export

__all__ = ["DEFAULT_DT_S", "SUPPORTED_NODES", "NIRNetwork", "NeuronNode", "export", "load"]
