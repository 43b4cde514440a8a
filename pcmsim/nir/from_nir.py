"""NIR → pcmsim: :func:`load` a graph (synapses on crossbars, neurons as pcmsim layers; see the package docstring)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nir  # the NIR package itself (absolute imports reach it from inside pcmsim.nir)
import numpy as np
import torch
from torch import nn

import device_models
from device_models import DeviceModel, DeviceParams

from ..analog import AnalogLinear, derive_seed, resolve_crossbar
from ..analog_conv import AnalogConv1d, AnalogConv2d
from ..conversion import ConversionReport, LayerReport
from ..crossbar import CrossbarConfig
from ..neuron_models import CubaLIFLayer, LeakyLayer
from .modules import (
    DEFAULT_DT_S,
    SUPPORTED_NODES,
    NeuronNode,
    NIRNetwork,
    _Flatten,
    _np,
    _pair,
    _Pool2d,
    _Scale,
    _shape_of,
    _t,
)


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
        module = conv(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride, padding,
                      dilation, has_bias, **options)
        linear = module.linear
    linear.program_from(weight.reshape(weight.shape[0], -1).to(linear.weight.device), s.t_s)
    if has_bias:
        assert linear.bias is not None
        with torch.no_grad():
            linear.bias.copy_(torch.as_tensor(np.asarray(bias, dtype=np.float32)).reshape(-1))
    if s.compensation != "none":
        linear.compensation = s.compensation
        linear.calibrate(s.t_s)
    return module, linear



def load(
    graph_or_file: nir.NIRGraph | str | os.PathLike[str],
    device_model: DeviceModel | str = "pcm-joshi2020",
    crossbar: CrossbarConfig | Mapping[str, Any] | None = None,
    *,
    dt_s: float = DEFAULT_DT_S,
    device_params: DeviceParams | Mapping[str, Any] | None = None,
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
        device_model: the devices' model (name, fitted file or instance), as :func:`pcmsim.convert`.
        device_params: overrides of the device model's parameters, as :func:`pcmsim.convert`.
        crossbar: the layout and periphery, as :func:`pcmsim.convert`.
        dt_s: the forward-Euler step of the neuron dynamics, s (see the module docstring).
        seed: the crossbar of node ``name`` is seeded ``derive_seed(seed, "nir", name)``.
        t_s: simulated time of programming, s.
        compensation: drift compensation of every layer, as :func:`pcmsim.convert`.
        backward_weights: what the backward pass multiplies the errors with, as :func:`pcmsim.convert`.
        surrogate: the spikes' surrogate derivative for training (a name of the surrogate table).
        device: torch device.

    Raises:
        ValueError: one line: an unsupported node (named), a cycle, a time constant below ``dt_s``.
    """
    from ..compensation import check_mode

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
            shapes[name] = module.shape
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


