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

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nir  # the NIR package itself (this module is pcmsim.nir; absolute imports reach the package)
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import device_models
from device_models import DeviceModel

from .analog import AnalogLinear, derive_seed, resolve_crossbar
from .analog_conv import AnalogConv1d, AnalogConv2d
from .conversion import ConversionReport, LayerReport
from .crossbar import CrossbarConfig
from .neuron_models import CubaLIFLayer, IntegratorReadout, LeakyLayer

__all__ = ["SUPPORTED_NODES", "NIRNetwork", "NeuronNode", "export", "load"]

SUPPORTED_NODES: tuple[str, ...] = (
    "Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "LIF", "IF", "LI", "I", "CubaLIF", "Flatten",
    "Scale", "SumPool2d", "AvgPool2d",
)
"""NIR node types :func:`load` maps (the one list the errors and docs name)."""

DEFAULT_DT_S = 1e-4
"""The Euler step when none is given, s: the step snnTorch's NIR export assumes."""


def _np(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _t(value: Any) -> Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64).reshape(-1), dtype=torch.float32)


class NeuronNode(nn.Module):
    """A NIR neuron node: a pcmsim neuron layer over ``[T, B, *shape]`` (flattened to ``n`` units).

    Attributes:
        layer: the :class:`LeakyLayer` or :class:`CubaLIFLayer` (its synapse is ``nn.Identity``).
        shape: the units' shape (``(n,)``, or ``(C, H, W)`` after a convolution).
        kind: the NIR node type (``LIF``, ``IF``, ``LI``, ``I``, ``CubaLIF``).
        potential: the membrane potential of the last call, ``[T, B, *shape]`` (detached).
    """

    def __init__(self, layer: LeakyLayer | CubaLIFLayer, shape: tuple[int, ...], kind: str) -> None:
        super().__init__()
        self.layer = layer
        self.shape = tuple(int(s) for s in shape)
        self.kind = kind
        self.potential: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        steps, batch = x.shape[0], x.shape[1]
        out = self.layer(x.reshape(steps, batch, -1))
        self.potential = out.v.detach().reshape(steps, batch, *self.shape)
        return out.activity.reshape(steps, batch, *self.shape)


class _Flatten(nn.Module):
    """NIR ``Flatten`` (dims counted without the batch) on ``[T, B, ...]``."""

    def __init__(self, start_dim: int, end_dim: int) -> None:
        super().__init__()
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Tensor) -> Tensor:
        start = self.start_dim + 2 if self.start_dim >= 0 else self.start_dim
        end = self.end_dim + 2 if self.end_dim >= 0 else self.end_dim
        return torch.flatten(x, start, end)


class _Scale(nn.Module):
    def __init__(self, scale: Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class _Pool2d(nn.Module):
    """NIR ``SumPool2d`` / ``AvgPool2d`` on ``[T, B, C, H, W]`` (digital)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], sum_: bool) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding, self.sum = kernel, stride, padding, sum_

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        y = F.avg_pool2d(x.reshape(-1, *x.shape[-3:]), self.kernel, self.stride, self.padding,
                         count_include_pad=True)
        if self.sum:
            y = y * (self.kernel[0] * self.kernel[1])
        return y.reshape(*lead, *y.shape[-3:])


def _pair(value: Any) -> tuple[int, int]:
    arr = np.asarray(value).reshape(-1)
    return (int(arr[0]), int(arr[0])) if arr.size == 1 else (int(arr[0]), int(arr[1]))


def _module_key(name: str) -> str:
    """A ``ModuleDict`` key for a node name (no dots)."""
    return "n_" + re.sub(r"[^0-9A-Za-z_]", "_", name)


@dataclass(frozen=True)
class _Settings:
    device_model: DeviceModel
    crossbar: CrossbarConfig
    dt_s: float
    seed: int
    t_s: float
    compensation: str
    backward_weights: str
    surrogate: str
    device: torch.device | None


def _topological(nodes: Mapping[str, Any], edges: list[tuple[str, str]]) -> list[str]:
    incoming: dict[str, list[str]] = {k: [] for k in nodes}
    for src, dst in edges:
        incoming[dst].append(src)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"NIR graph has a cycle through node {name!r}: recurrent graphs are not supported")
        state[name] = 1
        for src in incoming[name]:
            visit(src)
        state[name] = 2
        order.append(name)

    for name in nodes:
        visit(name)
    return order


def _units(name: str, node: Any, params: list[np.ndarray], incoming_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape of a neuron node's units: its parameters', its input type, or its input's shape."""
    sizes = [p.size for p in params]
    for p in params:
        if p.size > 1:
            return tuple(int(s) for s in p.shape)
    types = getattr(node, "input_type", None)
    declared = types.get("input") if isinstance(types, dict) else None
    if declared is not None and np.asarray(declared).size > 0:
        return tuple(int(s) for s in np.asarray(declared).reshape(-1))
    if incoming_shape is not None:
        return incoming_shape
    raise ValueError(f"NIR node {name!r} ({type(node).__name__}) has {max(sizes)} parameter value(s) and no input "
                     "shape: cannot tell its number of units")


_TAU_RTOL = 1e-6
"""A time constant this close below the step still counts as one step: snnTorch's ``beta=0`` exports
τ = float32(dt/(1 − 0)), one float32 rounding below dt."""


def _dt_over_tau(name: str, label: str, tau: np.ndarray, dt_s: float) -> np.ndarray:
    """``dt/τ`` of a forward-Euler decay ``1 − dt/τ``, checked: τ ≥ dt (within float32 rounding; τ = dt is the
    exact decay 0 of snnTorch's ``beta=0``) or τ = +inf (the exact decay 1 of ``beta=1``: no leak)."""
    tau = np.asarray(tau, dtype=np.float64)
    infinite = np.isposinf(tau)
    if not bool((infinite | (tau >= dt_s * (1 - _TAU_RTOL))).all()):
        bad = float(tau[~(infinite | (tau >= dt_s * (1 - _TAU_RTOL)))].min())
        raise ValueError(f"NIR node {name!r}: {label} = {bad:g} s is shorter than the step "
                         f"dt_s = {dt_s:g} s: expected {label} ≥ dt_s (pass a smaller dt_s) or inf")
    return np.where(infinite, 0.0, np.minimum(dt_s / np.where(infinite, 1.0, tau), 1.0))


def _euler_gain(tau: np.ndarray, ratio: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The input gain ``dt·R/τ`` (``ratio`` = dt/τ). τ = inf with R = inf (snnTorch's ``beta=1`` exports
    R = τ/dt) gives the limit 1; τ = inf with a finite R gives 0."""
    r = np.asarray(r, dtype=np.float64)
    both = np.isposinf(np.asarray(tau, dtype=np.float64)) & np.isposinf(r)
    with np.errstate(invalid="ignore"):
        return np.where(both, 1.0, ratio * np.where(both, 0.0, r))


def _neuron(name: str, node: Any, s: _Settings, incoming_shape: tuple[int, ...] | None) -> NeuronNode:
    """A NIR neuron node as a pcmsim neuron layer (the forward-Euler mapping of the module docstring)."""
    dt = s.dt_s
    kind = type(node).__name__
    if isinstance(node, nir.CubaLIF):
        names = ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")
        fields = [_np(getattr(node, f)) for f in names]
    elif isinstance(node, (nir.LIF, nir.LI)):
        fields = [_np(getattr(node, f)) for f in ("tau", "r", "v_leak")]
        if isinstance(node, nir.LIF):
            fields += [_np(node.v_threshold), _np(node.v_reset)]
    elif isinstance(node, nir.IF):
        fields = [_np(node.r), _np(node.v_threshold), _np(node.v_reset)]
    else:
        fields = [_np(node.r)]
    shape = _units(name, node, fields, incoming_shape)
    n = int(np.prod(shape))
    layer: LeakyLayer | CubaLIFLayer
    if isinstance(node, nir.CubaLIF):
        tau_syn, tau_mem, r, v_leak, thr, v_reset, w_in = fields
        k_syn = _dt_over_tau(name, "tau_syn", tau_syn, dt)
        k_mem = _dt_over_tau(name, "tau_mem", tau_mem, dt)
        layer = CubaLIFLayer(
            nn.Identity(), n, syn_decay=_t(1 - k_syn), mem_decay=_t(1 - k_mem),
            syn_gain=_t(_euler_gain(tau_syn, k_syn, w_in)), mem_gain=_t(_euler_gain(tau_mem, k_mem, r)),
            leak_bias=_t(k_mem * v_leak), threshold=_t(thr), v_reset=_t(v_reset), surrogate=s.surrogate,
        )
    elif isinstance(node, (nir.LIF, nir.LI)):
        tau, r, v_leak = fields[:3]
        k = _dt_over_tau(name, "tau", tau, dt)
        spiking = isinstance(node, nir.LIF)
        layer = LeakyLayer(
            nn.Identity(), n, decay=_t(1 - k), gain=_t(_euler_gain(tau, k, r)), leak_bias=_t(k * v_leak),
            threshold=_t(fields[3]) if spiking else 1.0, v_reset=_t(fields[4]) if spiking else 0.0,
            spiking=spiking, surrogate=s.surrogate,
        )
    elif isinstance(node, nir.IF):
        r, thr, v_reset = fields
        layer = LeakyLayer(nn.Identity(), n, decay=1.0, gain=_t(dt * r), threshold=_t(thr), v_reset=_t(v_reset),
                           surrogate=s.surrogate)
    else:  # nir.I
        layer = LeakyLayer(nn.Identity(), n, decay=1.0, gain=_t(dt * fields[0]), spiking=False, surrogate=s.surrogate)
    return NeuronNode(layer, shape, kind)


def _synapse(name: str, node: Any, s: _Settings) -> tuple[nn.Module, AnalogLinear]:
    weight = torch.as_tensor(np.asarray(node.weight, dtype=np.float32))
    bias = getattr(node, "bias", None)
    has_bias = isinstance(node, (nir.Affine, nir.Conv1d, nir.Conv2d)) and bias is not None
    options: dict[str, Any] = {"device_model": s.device_model, "config": s.crossbar,
                               "seed": derive_seed(s.seed, "nir", name), "device": s.device, "t_s": s.t_s,
                               "program": False, "backward_weights": s.backward_weights}
    module: nn.Module
    if isinstance(node, (nir.Affine, nir.Linear)):
        if weight.dim() != 2:
            raise ValueError(f"NIR node {name!r} ({type(node).__name__}) has a weight of shape {tuple(weight.shape)}: "
                             "expected [out, in]")
        module = AnalogLinear(weight.shape[1], weight.shape[0], has_bias, **options)
        linear = module
    else:
        groups = int(getattr(node, "groups", 1))
        if groups != 1:
            raise ValueError(f"NIR node {name!r} ({type(node).__name__}) has groups={groups}: expected groups=1")
        padding = (node.padding if isinstance(node.padding, str)
                   else tuple(np.asarray(node.padding).reshape(-1).tolist()))
        conv = AnalogConv1d if isinstance(node, nir.Conv1d) else AnalogConv2d
        stride = tuple(np.asarray(node.stride).reshape(-1).tolist())
        dilation = tuple(np.asarray(node.dilation).reshape(-1).tolist())
        module = conv(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride, padding,  # type: ignore[arg-type]
                      dilation, has_bias, **options)
        linear = module.linear  # type: ignore[assignment]
    linear.program_from(weight.reshape(weight.shape[0], -1).to(linear.weight.device), s.t_s)
    if has_bias:
        assert linear.bias is not None
        with torch.no_grad():
            linear.bias.copy_(torch.as_tensor(np.asarray(bias, dtype=np.float32)).reshape(-1))
    if s.compensation != "none":
        linear.compensation = s.compensation
        linear.calibrate(s.t_s)
    return module, linear


def _shape_of(node: Any, port: str) -> tuple[int, ...] | None:
    types = getattr(node, port + "_type", None)
    if not isinstance(types, dict) or not types:
        return None
    value = next(iter(types.values()))
    if value is None or np.asarray(value).size == 0:
        return None
    return tuple(int(v) for v in np.asarray(value).reshape(-1))


class NIRNetwork(nn.Module):
    """A NIR graph as a pcmsim network: ``forward(x)`` with ``x`` ``[T, B, *input_shape]``.

    Returns the output ``[T, B, *output_shape]`` (the activity reaching the graph's ``Output`` node;
    a dict by output name for several). :meth:`run` returns every node's output. Nodes whose inputs
    are several edges receive their sum, as NIR defines.

    Attributes:
        nodes: the node modules (``ModuleDict``; keys from the NIR names, see :attr:`keys`).
        order: node names in execution order.
        keys: NIR name → ``ModuleDict`` key.
        kinds: NIR name → NIR type name.
        incoming: NIR name → names of the nodes feeding it.
        dt_s: the Euler step, s.
        report: what programming the synapses did (a :class:`pcmsim.conversion.ConversionReport`).
        graph_metadata: the graph's metadata.
    """

    def __init__(self, nodes: dict[str, nn.Module], kinds: dict[str, str], order: list[str],
                 incoming: dict[str, list[str]], dt_s: float, report: ConversionReport,
                 shapes: dict[str, tuple[int, ...] | None]) -> None:
        super().__init__()
        self.keys = {name: _module_key(name) for name in nodes}
        self.nodes = nn.ModuleDict({self.keys[n]: m for n, m in nodes.items()})
        self.kinds, self.order, self.incoming = kinds, order, incoming
        self.dt_s = float(dt_s)
        self.report = report
        self.shapes = shapes
        self.inputs = [n for n in order if kinds[n] == "Input"]
        self.outputs = [n for n in order if kinds[n] == "Output"]
        self.graph_metadata: dict[str, Any] = {}

    def node(self, name: str) -> nn.Module:
        """The module of NIR node ``name``."""
        return self.nodes[self.keys[name]]

    def run(self, x: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Every node's output over ``x`` (``[T, B, ...]``, or a mapping by input name), by node name."""
        if isinstance(x, Tensor):
            if len(self.inputs) != 1:
                raise ValueError(f"the graph has {len(self.inputs)} inputs ({', '.join(self.inputs)}): "
                                 "expected a mapping of input name → tensor")
            feeds = {self.inputs[0]: x}
        else:
            feeds = dict(x)
        if any(t.dim() < 2 for t in feeds.values()):
            raise ValueError("inputs are invalid: expected time-major tensors [T, B, ...]")
        values: dict[str, Tensor] = {}
        for name in self.order:
            if self.kinds[name] == "Input":
                if name not in feeds:
                    raise ValueError(f"no tensor for the graph input {name!r}")
                values[name] = feeds[name]
                continue
            srcs = self.incoming[name]
            if not srcs:
                raise ValueError(f"NIR node {name!r} has no input edge")
            h = values[srcs[0]]
            for src in srcs[1:]:
                h = h + values[src]
            values[name] = self.node(name)(h)
        return values

    def forward(self, x: Tensor | Mapping[str, Tensor]) -> Tensor | dict[str, Tensor]:
        values = self.run(x)
        if len(self.outputs) == 1:
            return values[self.outputs[0]]
        return {name: values[name] for name in self.outputs}


def load(
    graph_or_file: nir.NIRGraph | str | os.PathLike[str],
    device_model: DeviceModel | str = "pcm-joshi2020",
    crossbar: CrossbarConfig | Mapping[str, Any] | None = None,
    *,
    dt_s: float = DEFAULT_DT_S,
    device_params: Mapping[str, Any] | None = None,
    seed: int = 0,
    t_s: float = 0.0,
    compensation: str = "none",
    backward_weights: str = "exact",
    surrogate: str = "superspike",
    device: torch.device | str | None = None,
) -> NIRNetwork:
    """A pcmsim network from a NIR graph or ``.nir`` file: synapses programmed onto crossbars.

    Args:
        graph_or_file: a ``nir.NIRGraph`` or the path of a file ``nir.write`` wrote.
        device_model, device_params, crossbar: the devices and their layout, as :func:`pcmsim.convert`.
        dt_s: the forward-Euler step of the neuron dynamics, s (see the module docstring).
        seed: the crossbar of node ``name`` is seeded ``derive_seed(seed, "nir", name)``.
        t_s: simulated time of programming, s.
        compensation, backward_weights: as :func:`pcmsim.convert`.
        surrogate: the spikes' surrogate derivative for training (a name of the surrogate table).
        device: torch device.

    Raises:
        ValueError: one line: an unsupported node (named), a cycle, a time constant below ``dt_s``.
    """
    from .compensation import check_mode

    graph = nir.read(os.fspath(graph_or_file)) if isinstance(graph_or_file, (str, os.PathLike)) else graph_or_file
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"graph_or_file of type {type(graph).__name__} is invalid: expected a nir.NIRGraph or a path")
    if not (isinstance(dt_s, (int, float)) and math.isfinite(dt_s) and dt_s > 0):
        raise ValueError(f"dt_s={dt_s!r} is invalid: expected a finite step > 0 s")
    check_mode(compensation)
    settings = _Settings(device_models.resolve(device_model, device_params), resolve_crossbar(crossbar), float(dt_s),
                         int(seed), float(t_s), compensation, backward_weights, surrogate,
                         torch.device(device) if device is not None else None)
    supported = tuple(getattr(nir, k) for k in SUPPORTED_NODES)
    for name, node in graph.nodes.items():
        if type(node) not in supported:
            raise ValueError(f"NIR node {name!r} ({type(node).__name__}) is not supported: expected one of "
                             f"{', '.join(SUPPORTED_NODES)}")
    edges = [(str(a), str(b)) for a, b in graph.edges]
    for src, dst in edges:
        for end in (src, dst):
            if end not in graph.nodes:
                raise ValueError(f"NIR edge {src!r} → {dst!r} names an unknown node {end!r}")
    order = _topological(graph.nodes, edges)
    incoming: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for src, dst in edges:
        incoming[dst].append(src)
    modules: dict[str, nn.Module] = {}
    kinds: dict[str, str] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}
    layers: list[LayerReport] = []
    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        kinds[name] = kind
        src_shape = shapes.get(incoming[name][0]) if incoming[name] else None
        module: nn.Module
        if isinstance(node, (nir.Input, nir.Output)):
            module = nn.Identity()
            shapes[name] = _shape_of(node, "output") or src_shape
        elif isinstance(node, (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d)):
            module, linear = _synapse(name, node, settings)
            assert linear.program_report is not None
            layers.append(LayerReport(name, kind, tuple(np.asarray(node.weight).shape),
                                      (linear.out_features, linear.in_features), int(linear.crossbar.n_devices),
                                      linear.program_report))
            dense = isinstance(node, (nir.Affine, nir.Linear))
            shapes[name] = (linear.out_features,) if dense else _shape_of(node, "output")
        elif isinstance(node, (nir.LIF, nir.IF, nir.LI, nir.I, nir.CubaLIF)):
            module = _neuron(name, node, settings, src_shape)
            shapes[name] = module.shape  # type: ignore[assignment]
        elif isinstance(node, nir.Flatten):
            module = _Flatten(node.start_dim, node.end_dim)
            shapes[name] = _shape_of(node, "output")
        elif isinstance(node, nir.Scale):
            module = _Scale(_t(node.scale).reshape(np.asarray(node.scale).shape or (1,)))
            shapes[name] = src_shape
        else:  # SumPool2d, AvgPool2d
            module = _Pool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding),
                             isinstance(node, nir.SumPool2d))
            shapes[name] = _shape_of(node, "output")
        modules[name] = module
    net = NIRNetwork(modules, kinds, order, incoming, settings.dt_s,
                     ConversionReport(settings.device_model.name, tuple(layers)), shapes)
    net.graph_metadata = dict(graph.metadata) if isinstance(graph.metadata, dict) else {}
    if settings.device is not None:
        net.to(settings.device)
    return net


# ---- export --------------------------------------------------------------------------------------


def _weights(linear: AnalogLinear) -> np.ndarray:
    """What the devices hold (noise-free at the layer's time), with its compensation factors."""
    return linear.read_weights().cpu().numpy().astype(np.float32)


def _np32(t: Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _synapse_node(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> Any:
    """The NIR node of a synapse; ``input_shape``: a convolution's input ``(C, H, W)`` / ``(C, L)`` if known."""
    if isinstance(module, AnalogConv2d):
        lin = module.linear
        w = _weights(lin).reshape(module.out_channels, module.in_channels, *module.kernel_size)
        bias = _np32(lin.bias).astype(np.float32) if lin.bias is not None else np.zeros(module.out_channels, np.float32)
        padding = module.padding
        if isinstance(module, AnalogConv1d):
            pad1 = padding if isinstance(padding, str) else padding[1]
            length = int(input_shape[-1]) if input_shape is not None else None
            return nir.Conv1d(length, w[:, :, 0, :], module.stride[1], pad1, module.dilation[1], 1, bias)
        hw = (int(input_shape[-2]), int(input_shape[-1])) if input_shape is not None else None
        return nir.Conv2d(hw, w, module.stride, padding, module.dilation, 1, bias)
    if isinstance(module, (AnalogLinear, nn.Linear)):
        w = _weights(module) if isinstance(module, AnalogLinear) else module.weight.detach().cpu().numpy()
        if module.bias is not None:
            return nir.Affine(weight=w, bias=module.bias.detach().cpu().numpy().astype(np.float32))
        return nir.Linear(weight=w)
    raise ValueError(f"layer of type {type(module).__name__} has no NIR equivalent: expected AnalogLinear, nn.Linear, "
                     "AnalogConv1d or AnalogConv2d")


def _tau(decay: np.ndarray, dt: float) -> np.ndarray:
    a = 1.0 - decay
    return np.where(a > 0, dt / np.where(a > 0, a, 1.0), np.inf)


def _neuron_node(layer: nn.Module, dt: float, shape: tuple[int, ...] | None = None) -> Any:
    """The NIR node of a pcmsim neuron layer (the inverse of the Euler mapping)."""
    def arr(t: Tensor) -> np.ndarray:
        a = _np32(t)
        return (a.reshape(shape) if shape is not None else a).astype(np.float32)

    if isinstance(layer, CubaLIFLayer):
        tau_syn, tau_mem = _tau(_np32(layer.syn_decay), dt), _tau(_np32(layer.mem_decay), dt)
        if not (np.isfinite(tau_syn).all() and np.isfinite(tau_mem).all()):
            raise ValueError("CubaLIFLayer with a decay of 1 has no NIR CubaLIF equivalent: expected decays < 1")
        f = np.float32
        return nir.CubaLIF(tau_syn=arr(torch.as_tensor(tau_syn)), tau_mem=arr(torch.as_tensor(tau_mem)),
                           r=arr(torch.as_tensor(_np32(layer.mem_gain) * tau_mem / dt)),
                           v_leak=arr(torch.as_tensor(_np32(layer.leak_bias) * tau_mem / dt)),
                           v_threshold=arr(layer.threshold), v_reset=arr(layer.v_reset),
                           w_in=arr(torch.as_tensor(_np32(layer.syn_gain) * tau_syn / dt)).astype(f))
    if isinstance(layer, LeakyLayer):
        decay = _np32(layer.decay.clamp(0, 1))
        gain, leak = _np32(layer.gain), _np32(layer.leak_bias)
        if bool((decay >= 1).all()):
            if bool((leak != 0).any()):
                raise ValueError("LeakyLayer with decay 1 and a leak_bias has no NIR equivalent: expected leak_bias 0")
            r = arr(torch.as_tensor(gain / dt))
            if layer.spiking:
                return nir.IF(r=r, v_threshold=arr(layer.threshold), v_reset=arr(layer.v_reset))
            return nir.I(r=r)
        if bool((decay >= 1).any()):
            raise ValueError("LeakyLayer mixes decays of 1 and below 1: NIR has no such node")
        tau = _tau(decay, dt)
        common = {"tau": arr(torch.as_tensor(tau)), "r": arr(torch.as_tensor(gain * tau / dt)),
                  "v_leak": arr(torch.as_tensor(leak * tau / dt))}
        if layer.spiking:
            return nir.LIF(**common, v_threshold=arr(layer.threshold), v_reset=arr(layer.v_reset))
        return nir.LI(**common)
    if isinstance(layer, IntegratorReadout):
        n = layer.out_features
        return nir.I(r=np.full(n, layer.dt / dt, dtype=np.float32))
    raise ValueError(f"layer of type {type(layer).__name__} has no NIR equivalent: expected LeakyLayer, "
                     "CubaLIFLayer or IntegratorReadout (the LIF of Gerum & Schilling rectifies its potential; "
                     "SNUs have no NIR node)")


def _export_network(net: NIRNetwork, dt: float) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    nodes: dict[str, Any] = {}
    for name in net.order:
        module, kind = net.node(name), net.kinds[name]
        src_shape = net.shapes.get(net.incoming[name][0]) if net.incoming[name] else None
        if kind in ("Input", "Output"):
            shape = net.shapes.get(name)
            if shape is None:
                raise ValueError(f"node {name!r} ({kind}) has no known shape to export")
            nodes[name] = nir.Input(input_type=np.array(shape)) if kind == "Input" else nir.Output(
                output_type=np.array(shape))
        elif isinstance(module, (AnalogLinear, AnalogConv2d)):
            nodes[name] = _synapse_node(module, src_shape)
        elif isinstance(module, NeuronNode):
            node = _neuron_node(module.layer, dt, module.shape)
            nodes[name] = node
        elif isinstance(module, _Flatten):
            in_type = {"input": np.array(src_shape)} if src_shape is not None else None
            nodes[name] = nir.Flatten(input_type=in_type, start_dim=module.start_dim, end_dim=module.end_dim)
        elif isinstance(module, _Scale):
            nodes[name] = nir.Scale(scale=_np32(module.scale).astype(np.float32))
        elif isinstance(module, _Pool2d):
            cls = nir.SumPool2d if module.sum else nir.AvgPool2d
            nodes[name] = cls(kernel_size=np.array(module.kernel), stride=np.array(module.stride),
                              padding=np.array(module.padding))
        else:
            raise ValueError(f"node {name!r} ({type(module).__name__}) has no NIR equivalent")
    edges = [(src, dst) for dst in net.order for src in net.incoming[dst]]
    return nodes, edges


def _layer_pair(prefix: str, synapse: nn.Module, neuron: nn.Module, dt: float, bias: Tensor | None,
                nodes: dict[str, Any], edges: list[tuple[str, str]], prev: str) -> str:
    """A synapse (with the neuron layer's digital bias folded into an Affine) and its neuron node."""
    syn = _synapse_node(synapse)
    if bias is not None:
        b = bias.detach().cpu().numpy().astype(np.float32)
        if isinstance(syn, nir.Affine):
            syn = nir.Affine(weight=syn.weight, bias=syn.bias + b)
        elif isinstance(syn, nir.Linear):
            syn = nir.Affine(weight=syn.weight, bias=b)
        else:
            raise ValueError(f"{prefix}: a neuron bias after a convolution cannot be exported")
    nodes[f"{prefix}.synapse"] = syn
    nodes[f"{prefix}.neuron"] = _neuron_node(neuron, dt)
    edges += [(prev, f"{prefix}.synapse"), (f"{prefix}.synapse", f"{prefix}.neuron")]
    return f"{prefix}.neuron"


def _export_classifier(net: nn.Module, dt: float) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    sizes = net.config.sizes  # type: ignore[attr-defined]
    nodes["input"] = nir.Input(input_type=np.array([sizes[0]]))
    prev = "input"
    for i, layer in enumerate(net.hidden):  # type: ignore[attr-defined]
        if not isinstance(layer, (LeakyLayer, CubaLIFLayer)):
            _neuron_node(layer, dt)  # raises the one-line reason
        # I = gain·(W x + b): b folds into the Affine, the gain into R
        prev = _layer_pair(f"hidden{i}", layer.linear, layer, dt, layer.bias, nodes, edges, prev)
    readout = net.readout  # type: ignore[attr-defined]
    if not isinstance(readout, IntegratorReadout):
        raise ValueError(f"readout of type {type(readout).__name__} has no NIR equivalent: expected the integrator")
    prev = _layer_pair("readout", readout.linear, readout, dt, readout.bias, nodes, edges, prev)
    nodes["output"] = nir.Output(output_type=np.array([sizes[-1]]))
    edges.append((prev, "output"))
    return nodes, edges


def export(
    network: nn.Module, path: str | os.PathLike[str] | None = None, *, dt_s: float | None = None
) -> nir.NIRGraph:
    """A NIR graph of a pcmsim network, its weights read from the devices (noise-free, at each layer's
    time, with its drift-compensation factors); written to ``path`` (``nir.write``) if given.

    Exports :class:`NIRNetwork` (what :func:`load` built: a round trip) and
    :class:`pcmsim.classifier.SpikingClassifier` with ``leaky`` / ``cuba-lif`` hidden layers and the
    integrator readout (whose output, in NIR, is the integrator's potential at every step).
    ``dt_s``: the Euler step the neuron parameters are mapped back with (default: the network's, else
    ``1e-4`` s). Other layers are refused in one line naming their type (the LIF of Gerum &
    Schilling rectifies its potential and SNUs have no NIR node).
    """
    from .classifier import SpikingClassifier

    if isinstance(network, NIRNetwork):
        dt = float(dt_s) if dt_s is not None else network.dt_s
        nodes, edges = _export_network(network, dt)
        metadata = dict(network.graph_metadata)
    elif isinstance(network, SpikingClassifier):
        dt = float(dt_s) if dt_s is not None else DEFAULT_DT_S
        nodes, edges = _export_classifier(network, dt)
        metadata = {}
    else:
        raise ValueError(f"network of type {type(network).__name__} cannot be exported: expected a NIRNetwork "
                         "(pcmsim.nir.load) or a SpikingClassifier")
    metadata["pcmsim_dt_s"] = dt
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)
    if path is not None:
        nir.write(os.fspath(path), graph)
    return graph
