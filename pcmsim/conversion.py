"""Bring your own network: put any PyTorch model's linear and convolutional layers on PCM crossbars.

:func:`convert` (exported as ``pcmsim.convert``) walks a model — plain PyTorch, snnTorch, Norse,
SpikingJelly: anything built of ``nn.Module`` s — and replaces every selected ``nn.Linear`` by a
:class:`pcmsim.analog.AnalogLinear` and every ``nn.Conv1d`` / ``nn.Conv2d`` by an
:class:`pcmsim.analog_conv.AnalogConv1d` / :class:`~pcmsim.analog_conv.AnalogConv2d` (the unfolded
input patches through one crossbar per convolution). The layer's current weights are programmed
onto the devices (the device model's program-and-verify where it has one); biases stay digital;
neurons and everything else stay as they are. ::

    import pcmsim
    from hardware_in_loop.updater import HardwareInTheLoop

    analog, report = pcmsim.convert(net, device_model="pcm-joshi2020", exclude=["readout"])
    print(report.table())                        # devices, pulses and programming error per layer
    hil = HardwareInTheLoop(analog, torch.optim.Adam(analog.parameters(), lr=1e-3))
    ...; loss.backward(); hil.step()             # ΔW of Adam → pulses on the devices

The converted model keeps the analog-layer contract of the built-in networks: it is read at the
simulated time of its layers (:func:`pcmsim.set_time`; ``HardwareInTheLoop`` keeps it at its clock's
time), ``layer.read_weights()`` gives what its devices hold, and :func:`pcmsim.evaluate_over_drift`
evaluates it after drift, with or without drift compensation.

Selection: ``include`` and ``exclude`` take module names (``fnmatch`` patterns on the dotted names of
``model.named_modules()``, which also select everything under a matching module) and module types.
By default every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` is converted; a layer with weights
that cannot map (``nn.Conv3d``, transposed convolutions, ``nn.Bilinear``, recurrent layers, attention, grouped
convolutions) is refused with its name and type unless excluded (it would otherwise stay digital
unnoticed).
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

import torch
from torch import nn

import device_models
from device_models import DeviceModel, DeviceParams

from .analog import AnalogLinear, check_backward_weights, derive_seed, resolve_crossbar
from .analog_conv import AnalogConv1d, AnalogConv2d, check_conv
from .compensation import check_mode
from .crossbar import CrossbarConfig, CrossbarProgramReport

__all__ = [
    "MAPPABLE",
    "ConversionReport",
    "Converted",
    "LayerReport",
    "convert",
]

Selector = str | type
"""A module name (``fnmatch`` pattern on the dotted name) or a module type."""

MAPPABLE: tuple[type[nn.Linear], type[nn.Conv1d], type[nn.Conv2d]] = (nn.Linear, nn.Conv1d, nn.Conv2d)
"""Layers that map onto crossbars."""

UNMAPPABLE: tuple[type[nn.Module], ...] = (
    nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Bilinear, nn.RNNBase,
    nn.RNNCellBase, nn.MultiheadAttention,  # attention reads its projections' weights itself, not by calling them
)
"""Layers with synaptic weights that do not map onto one crossbar: refused unless excluded."""

_EXPECTED = "expected nn.Linear, nn.Conv1d or nn.Conv2d"


@dataclass(frozen=True)
class LayerReport:
    """One converted layer.

    Attributes:
        name: its dotted name in the model (``""`` for the model itself).
        kind: the type it had (``Linear``, ``Conv2d``, ...).
        weight_shape: the shape of its weight.
        crossbar_shape: the matrix on the crossbar, ``(out, in)`` (``in = C_in·k`` for a convolution).
        n_devices: devices of its crossbar.
        program: the report of programming its weights (:class:`pcmsim.crossbar.CrossbarProgramReport`).
    """

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    crossbar_shape: tuple[int, int]
    n_devices: int
    program: CrossbarProgramReport

    def as_dict(self) -> dict[str, Any]:
        p = self.program
        return {"name": self.name, "kind": self.kind, "weight_shape": list(self.weight_shape),
                "crossbar_shape": list(self.crossbar_shape), "n_devices": self.n_devices,
                "pulses": p.total_pulses, "rms_error": p.rms_error, "max_abs_error": p.max_abs_error,
                "n_clipped": p.n_clipped, "converged": float(p.converged.float().mean())}


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert` did: the device model and one :class:`LayerReport` per converted layer."""

    device_model: str
    layers: tuple[LayerReport, ...]

    @property
    def n_devices(self) -> int:
        """Devices of all crossbars."""
        return sum(layer.n_devices for layer in self.layers)

    @property
    def total_pulses(self) -> int:
        """Programming pulses of all layers."""
        return sum(layer.program.total_pulses for layer in self.layers)

    def as_dict(self) -> dict[str, Any]:
        return {"device_model": self.device_model, "n_devices": self.n_devices, "total_pulses": self.total_pulses,
                "layers": [layer.as_dict() for layer in self.layers]}

    def table(self) -> str:
        """A plain-text table: one row per layer and the total."""
        head = f"{'layer':<24} {'type':<8} {'crossbar':>12} {'devices':>9} {'pulses':>9} {'rms err':>9} {'clipped':>7}"
        rows = [head, "-" * len(head)]
        for r in self.layers:
            d = r.as_dict()
            shape = f"{r.crossbar_shape[0]}×{r.crossbar_shape[1]}"
            rows.append(f"{r.name or '(model)':<24} {r.kind:<8} {shape:>12} {r.n_devices:>9,} "
                        f"{d['pulses']:>9,} {d['rms_error']:>9.2e} {d['n_clipped']:>7}")
        rows.append(f"{'total on ' + self.device_model:<33} {'':>12} {self.n_devices:>9,} {self.total_pulses:>9,}")
        return "\n".join(rows)


class Converted(NamedTuple):
    """The converted model and the report: ``model, report = pcmsim.convert(...)``."""

    model: nn.Module
    report: ConversionReport


def _as_selectors(value: Selector | Iterable[Selector] | None, name: str) -> tuple[Selector, ...] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, (str, type)) else tuple(value)
    for item in items:
        if not (isinstance(item, str) or (isinstance(item, type) and issubclass(item, nn.Module))):
            raise ValueError(f"{name} entry {item!r} is invalid: expected a module name pattern or an nn.Module type")
    return items


def _matches(name: str, module: nn.Module, selectors: Sequence[Selector]) -> bool:
    for sel in selectors:
        if isinstance(sel, str):
            if fnmatch.fnmatchcase(name, sel):
                return True
        elif isinstance(module, sel):
            return True
    return False


def _under(name: str, modules: dict[str, nn.Module], selectors: Sequence[Selector]) -> bool:
    """Whether ``name`` or one of its ancestors matches ``selectors``."""
    parts = name.split(".") if name else []
    for i in range(len(parts), -1, -1):
        prefix = ".".join(parts[:i])
        if prefix in modules and _matches(prefix, modules[prefix], selectors):
            return True
    return False


def _select(model: nn.Module, include: Sequence[Selector] | None, exclude: Sequence[Selector]) -> list[str]:
    """Names of the layers to convert, in registration order; one-line errors for layers that cannot map."""
    # every name of every module: a module used at two places has two names, and either may select it
    modules = dict(model.named_modules(remove_duplicate=False))
    names_of: dict[int, list[str]] = {}
    for n, m in modules.items():
        names_of.setdefault(id(m), []).append(n)
    inside_analog = [n for n, m in modules.items() if isinstance(m, (AnalogLinear, AnalogConv2d))]
    chosen: list[str] = []
    for name, module in model.named_modules():  # each module once, at its first name
        names = names_of[id(module)]
        if any(n == a or n.startswith(a + ".") for n in names for a in inside_analog):
            continue  # on crossbars already
        if exclude and any(_under(n, modules, exclude) for n in names):
            continue
        kind = type(module).__name__
        if include is None:
            wanted = isinstance(module, MAPPABLE + UNMAPPABLE)
            direct = wanted
        else:
            direct = any(_matches(n, module, include) for n in names)
            wanted = direct or (any(_under(n, modules, include) for n in names)
                                and isinstance(module, MAPPABLE + UNMAPPABLE))
        if not wanted:
            continue
        label = name or "(model)"
        owner = _unmappable_ancestor(name, modules)
        if owner is not None and isinstance(module, MAPPABLE):
            raise ValueError(f"layer {label!r} ({kind}) sits inside {owner!r} ({type(modules[owner]).__name__}), "
                             f"which reads its weights itself and would bypass the crossbar; exclude {owner!r}")
        if isinstance(module, MAPPABLE):
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                check_conv(module, label)
            if isinstance(getattr(module, "weight", None), nn.parameter.UninitializedParameter):
                raise ValueError(f"layer {label!r} ({kind}) is not initialised yet: run one forward pass first")
            chosen.append(name)
        elif isinstance(module, UNMAPPABLE):
            raise ValueError(f"layer {label!r} ({kind}) cannot map onto a crossbar: {_EXPECTED} "
                             "(exclude it to keep it digital)")
        elif direct and not any(isinstance(m, MAPPABLE) for m in module.modules()):
            raise ValueError(f"layer {label!r} ({kind}) cannot map onto a crossbar: {_EXPECTED}")
    chosen = list(dict.fromkeys(chosen))
    by_weight: dict[int, list[str]] = {}
    for n in chosen:
        by_weight.setdefault(id(modules[n].weight), []).append(n)
    for group in by_weight.values():
        if len(group) > 1:  # two modules, one tensor: two crossbars would let the copies drift apart
            raise ValueError(f"layers {group[0]!r} and {group[1]!r} share one weight tensor: use one module at both "
                             f"places, or exclude one of them")
    _check_ties(modules, chosen)
    return chosen


def _check_ties(modules: Mapping[str, nn.Module], chosen: Sequence[str]) -> None:
    """Refuse a converted layer whose weight tensor another module also holds (a tied embedding): on the
    crossbar the layer's weight becomes the devices', and the other module would keep a digital copy that
    silently parts from it."""
    converted = {id(modules[n]) for n in chosen}
    owner = {id(modules[n].weight): n for n in chosen}
    for name, module in modules.items():
        if id(module) in converted:
            continue
        held = list(module._parameters.items()) + list(module._buffers.items())
        held += [(k, v) for k, v in vars(module).items() if isinstance(v, torch.Tensor)]
        for attr, tensor in held:
            if tensor is not None and id(tensor) in owner:
                layer = owner[id(tensor)]
                raise ValueError(
                    f"layer {layer!r} ({type(modules[layer]).__name__}) shares its weight with {name!r} "
                    f"({type(module).__name__}.{attr}), which stays digital: on a crossbar the tie would break; "
                    f"exclude {layer!r}, or untie the two weights before converting")


def _copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose modules are registered where their originals are: a class-level
    ``instances`` list (snnTorch's neurons, which ``snntorch.utils.reset`` and ``init_hidden=True`` state
    go through) gets the copy of each original it holds."""
    memo: dict[int, Any] = {}
    try:
        copied = copy.deepcopy(model, memo)
    except RuntimeError as err:
        for name, module in model.named_modules():
            held = list(module._buffers.items()) + [(k, v) for k, v in vars(module).items()
                                                    if isinstance(v, torch.Tensor)]
            for attr, tensor in held:
                if tensor is not None and tensor.grad_fn is not None:
                    raise ValueError(
                        f"cannot copy the model: module {name or '(model)'!r} ({type(module).__name__}) holds "
                        f"{attr!r}, a tensor computed with autograd (state left by a forward pass); reset the "
                        f"network's state first (snntorch.utils.reset), or convert with inplace=True") from None
        raise ValueError(f"cannot copy the model ({type(model).__name__}): {str(err).splitlines()[0]}; "
                         "convert with inplace=True") from None
    for original in model.modules():
        clone = memo.get(id(original))
        if clone is None:
            continue
        for cls in type(original).__mro__:
            registry = cls.__dict__.get("instances")
            if isinstance(registry, list) and any(x is original for x in registry):
                registry.append(clone)
    return copied


def _unmappable_ancestor(name: str, modules: Mapping[str, nn.Module]) -> str | None:
    """The nearest enclosing module of ``name`` that cannot map (it reads its layers' weights itself)."""
    parts = name.split(".") if name else []
    for i in range(len(parts) - 1, -1, -1):
        prefix = ".".join(parts[:i])
        if prefix in modules and isinstance(modules[prefix], UNMAPPABLE):
            return prefix
    return None


class _AnalogOptions(TypedDict):
    """The keyword arguments of every converted layer's AnalogLinear."""

    device_model: DeviceModel
    config: CrossbarConfig
    seed: int
    device: torch.device
    t_s: float
    program: bool
    backward_weights: str


def _analog_options(model: DeviceModel, config: CrossbarConfig, seed: int, name: str, device: torch.device,
                    t_s: float, backward_weights: str) -> _AnalogOptions:
    return {"device_model": model, "config": config, "seed": derive_seed(seed, "convert", name), "device": device,
            "t_s": t_s, "program": False, "backward_weights": backward_weights}


def _convert_one(name: str, layer: nn.Linear | nn.Conv1d | nn.Conv2d, options: _AnalogOptions, t_s: float,
                 program: dict[str, Any]) -> tuple[nn.Module, AnalogLinear, tuple[int, int]]:
    weight = layer.weight.detach()
    bias = layer.bias
    new: nn.Module
    if isinstance(layer, nn.Linear):
        linear = AnalogLinear(layer.in_features, layer.out_features, bias is not None, **options)
        new = linear
    else:
        conv_type = AnalogConv1d if isinstance(layer, nn.Conv1d) else AnalogConv2d
        conv = conv_type(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                         layer.padding, layer.dilation, bias is not None, **options)
        new, linear = conv, conv.linear
    matrix = weight.reshape(weight.shape[0], -1).to(device=linear.weight.device, dtype=torch.float32)
    linear.program_from(matrix, t_s, **program)
    with torch.no_grad():
        if bias is not None:
            assert linear.bias is not None
            linear.bias.copy_(bias.detach().to(linear.bias.dtype))
            linear.bias.requires_grad_(bias.requires_grad)
    linear.weight.requires_grad_(layer.weight.requires_grad)
    return new, linear, (linear.out_features, linear.in_features)


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> nn.Module:
    """``model`` with every reference to ``old`` (a layer may be shared: tied weights) pointing to ``new``."""
    if model is old:
        return new
    for parent in model.modules():
        for child_name, child in list(parent._modules.items()):
            if child is old:
                setattr(parent, child_name, new)
    return model


def convert(
    model: nn.Module,
    device_model: DeviceModel | str = "pcm-joshi2020",
    crossbar: CrossbarConfig | Mapping[str, Any] | None = None,
    *,
    include: Selector | Iterable[Selector] | None = None,
    exclude: Selector | Iterable[Selector] | None = None,
    device_params: DeviceParams | Mapping[str, Any] | None = None,
    seed: int = 0,
    t_s: float = 0.0,
    compensation: str = "none",
    backward_weights: str = "exact",
    program: Mapping[str, Any] | None = None,
    inplace: bool = False,
) -> Converted:
    """Put ``model``'s linear and convolutional layers on crossbars, its current weights programmed.

    Args:
        model: any ``nn.Module`` (a layer, an ``nn.Sequential``, an snnTorch network, ...).
        device_model: a device model or its registry name (``device_models.available()``).
        crossbar: the layout and periphery (:class:`pcmsim.crossbar.CrossbarConfig` or its plain data).
        include: names (``fnmatch`` patterns, which also select everything under a match) and types to
            convert; default: every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d``.
        exclude: names and types to leave digital (and everything under them).
        device_params: overrides of the device model's parameters (with a name).
        seed: layer ``name`` gets a crossbar seeded ``derive_seed(seed, "convert", name)``: the same
            seed gives the same devices, bit for bit on the CPU.
        t_s: the simulated time of programming, s (also the layers' read time).
        compensation: drift compensation of every layer (``none``, ``global``, ``per-column``); with a
            mode other than ``none`` the reference readout is taken right after programming.
        backward_weights: what the backward pass multiplies the errors with (``exact``, ``read``,
            ``transpose``: :data:`pcmsim.analog.BACKWARD_WEIGHTS`).
        program: options of :meth:`pcmsim.crossbar.Crossbar.program_weights` (``tolerance_us``,
            ``max_pulses``).
        inplace: change ``model`` itself (default: a deep copy is converted; ``model`` is untouched, and
            the copy's modules are registered where the originals are, so snnTorch's
            ``snntorch.utils.reset`` and ``init_hidden=True`` neurons work on the converted model).

    Returns:
        :class:`Converted` ``(model, report)``: the converted model (on the device of each layer's
        weights) and the :class:`ConversionReport` (devices, pulses, programming errors per layer).

    Raises:
        ValueError: one line: nothing to convert; a selected layer that cannot map (its name and
            type); a layer whose weight is tied to a module that stays digital (both names); a model
            that cannot be copied (the module holding autograd state); a bad option.
    """
    check_mode(compensation)
    check_backward_weights(backward_weights)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model of type {type(model).__name__} is invalid: expected a torch nn.Module")
    dev_model = device_models.resolve(device_model, device_params)
    config = resolve_crossbar(crossbar)
    inc = _as_selectors(include, "include")
    exc = _as_selectors(exclude, "exclude") or ()
    names = _select(model, inc, exc)
    if not names:
        what = ("layer selected by include/exclude" if inc is not None or exc
                else "nn.Linear, nn.Conv1d or nn.Conv2d layer")
        raise ValueError(f"nothing to convert: the model ({type(model).__name__}) has no {what}")
    target = model if inplace else _copy_model(model)
    t = float(t_s)
    reports: list[LayerReport] = []
    for name in names:
        layer = target.get_submodule(name) if name else target
        if not isinstance(layer, MAPPABLE):  # _select chose it: never true
            raise TypeError(f"layer {name!r} ({type(layer).__name__}) cannot map onto a crossbar: {_EXPECTED}")
        options = _analog_options(dev_model, config, seed, name, layer.weight.device, t, backward_weights)
        new, linear, shape = _convert_one(name, layer, options, t, dict(program or {}))
        if compensation != "none":
            linear.compensation = compensation
            linear.calibrate(t)
        assert linear.program_report is not None
        reports.append(LayerReport(name, type(layer).__name__, tuple(layer.weight.shape), shape,
                                   int(linear.crossbar.n_devices), linear.program_report))
        target = _replace(target, layer, new)
    return Converted(target, ConversionReport(dev_model.name, tuple(reports)))
