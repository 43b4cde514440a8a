"""The modules of a loaded NIR graph: its neuron nodes, digital reshaping and pooling, and the network."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..conversion import ConversionReport
from ..neuron_models import CubaLIFLayer, LeakyLayer

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
    scale: Tensor  # a buffer

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


