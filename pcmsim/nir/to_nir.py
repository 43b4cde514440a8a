"""pcmsim → NIR: :func:`export` a network, its weights read from the devices at each layer's time."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NoReturn

import nir  # the NIR package itself (absolute imports reach it from inside pcmsim.nir)
import numpy as np
import torch
from torch import Tensor, nn

from ..analog import AnalogLinear
from ..analog_conv import AnalogConv1d, AnalogConv2d
from ..neuron_models import CubaLIFLayer, IntegratorReadout, LeakyLayer
from .modules import DEFAULT_DT_S, NeuronNode, NIRNetwork, _Flatten, _Pool2d, _Scale

if TYPE_CHECKING:
    from ..classifier import SpikingClassifier


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
    _no_neuron_node(layer)


def _no_neuron_node(layer: nn.Module) -> NoReturn:
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


def _export_classifier(net: SpikingClassifier, dt: float) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    sizes = net.config.layers
    nodes["input"] = nir.Input(input_type=np.array([sizes[0]]))
    prev = "input"
    for i, layer in enumerate(net.hidden):
        if not isinstance(layer, (LeakyLayer, CubaLIFLayer, IntegratorReadout)):
            _no_neuron_node(layer)  # the one-line reason
        # I = gain·(W x + b): b folds into the Affine, the gain into R
        prev = _layer_pair(f"hidden{i}", layer.linear, layer, dt, layer.bias, nodes, edges, prev)
    readout = net.readout
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
    from ..classifier import SpikingClassifier

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

