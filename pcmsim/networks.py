"""Network builders. One builder makes the same network in several *flavours*:

- ``fp32``: ``nn.Linear`` synapses (ideal software),
- ``pcm``: :class:`pcmsim.analog.AnalogLinear` on simulated PCM crossbars,
- ``aihwkit``: IBM aihwkit analog layers (any aihwkit RPU config),
- ``hwa``: :class:`pcmsim.hwa.HWALinear`, ``nn.Linear`` trained in software with the device model's
  non-idealities in the forward pass (hardware-aware training), programmed once afterwards.

The neuron layers take any linear module, so only the linear factory differs between flavours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .neuron_models import Activation, SNULayer, apply_synapse
from .typedconfig import check, check_fields, loading

LinearFactory = Callable[[int, int, bool], nn.Module]
"""``factory(in_features, out_features, bias) -> module`` mapping ``[N, in] → [N, out]``."""

FLAVOURS = ("fp32", "pcm", "aihwkit", "hwa")


def fp32_linear(in_features: int, out_features: int, bias: bool) -> nn.Module:
    return nn.Linear(in_features, out_features, bias=bias)


def make_linear_factory(flavour: str, **options: Any) -> LinearFactory:
    """The linear-module factory of a flavour (``fp32``, ``pcm``, ``aihwkit``, ``hwa``).

    ``options`` go to the flavour's layer (device model, crossbar config, RPU config, seed, ...).
    """
    if flavour == "fp32":
        if options:
            raise ValueError(f"flavour 'fp32' takes no options; got {sorted(options)}")
        return fp32_linear
    if flavour == "pcm":
        from .analog import pcm_linear_factory

        return pcm_linear_factory(**options)
    if flavour == "aihwkit":
        from .aihwkit_bridge import aihwkit_linear_factory

        return aihwkit_linear_factory(**options)
    if flavour == "hwa":
        from .hwa import hwa_linear_factory

        return hwa_linear_factory(options.pop("base", fp32_linear), **options)
    raise ValueError(f"unknown network flavour {flavour!r}; expected one of {', '.join(FLAVOURS)}")


@dataclass(frozen=True)
class SNUNetConfig:
    """Topology and neuron settings of a feed-forward SNU network.

    The 52,800-device experiment of Woźniak et al. (2020) is ``sizes=(88, 150, 88)``: an SNU
    hidden layer of 150 units and an 88-unit output layer giving per-key probabilities.

    Attributes:
        sizes: layer widths, input first.
        hidden: ``"snu"`` (step) or ``"ssnu"`` (sigmoid) hidden units.
        output: ``"ssnu"`` (soft SNU output, per-key probabilities), or ``"sigmoid"`` (a
            stateless linear layer with a sigmoid).
        decay: ``l(τ)``; threshold: initial threshold (``b = −threshold``).
    """

    sizes: tuple[int, ...] = field(default=(88, 150, 88), metadata=check(
        lambda v: len(v) >= 2 and all(n >= 1 for n in v), "≥ 2 positive layer widths"))
    hidden: Literal["snu", "ssnu"] = "snu"
    output: Literal["ssnu", "sigmoid"] = "ssnu"
    decay: float = field(default=0.8, metadata=check(lambda v: 0 <= v <= 1, "0 ≤ decay ≤ 1"))
    threshold: float = 1.0
    output_threshold: float = 1.0
    activation: Activation = "relu"
    train_decay: bool = False

    def __post_init__(self) -> None:
        if not loading():  # the typed loader checks a loaded config's fields, naming the file
            check_fields(self)


class SNUNetwork(nn.Module):
    """Feed-forward SNU network over sequences; ``forward`` returns output logits ``[T, B, out]``.

    The probability of each output unit is ``sigmoid(logit)``; for an sSNU output layer the logit
    is ``s_t + b``.
    """

    def __init__(self, config: SNUNetConfig, linear_factory: LinearFactory = fp32_linear) -> None:
        super().__init__()
        self.config = config
        sizes = config.sizes
        layers: list[SNULayer] = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
            layers.append(
                SNULayer(
                    linear_factory(n_in, n_out, False), n_out, soft=config.hidden == "ssnu",
                    decay=config.decay, threshold=config.threshold, activation=config.activation,
                    train_decay=config.train_decay,
                )
            )
        self.hidden = nn.ModuleList(layers)
        n_in, n_out = sizes[-2], sizes[-1]
        if config.output == "ssnu":
            self.output: nn.Module = SNULayer(
                linear_factory(n_in, n_out, False), n_out, soft=True, decay=config.decay,
                threshold=config.output_threshold, activation=config.activation,
                train_decay=config.train_decay,
            )
        else:
            self.output = linear_factory(n_in, n_out, False)
            self.output_bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for layer in self.hidden:
            h = layer(h).y
        if isinstance(self.output, SNULayer):
            return self.output(h).pre
        return apply_synapse(self.output, h, self.config.sizes[-1]) + self.output_bias


def build_snu_network(config: SNUNetConfig | None = None, flavour: str = "fp32", **options: Any) -> SNUNetwork:
    """Build an SNU network in a flavour (``fp32``, ``pcm``, ``aihwkit``); ``options`` go to the flavour's
    layers (for ``pcm``: :func:`pcmsim.analog.pcm_linear_factory`'s ``device_model``, ``crossbar``,
    ``seed``, ``t_s`` (s), ...)."""
    return SNUNetwork(config or SNUNetConfig(), make_linear_factory(flavour, **options))


@torch.no_grad()
def set_marginal_output_bias(net: SNUNetwork, targets: Tensor | list[Tensor]) -> Tensor:
    """Set the output bias of a music network to the logit of each key's frequency in ``targets``.

    ``targets``: piano rolls ``[T, keys]`` (a list, e.g. the training sequences without their first
    step) or one tensor ``[..., keys]``. Training then starts from the marginal distribution of the
    keys (NLL ≈ 10.6 on JSB Chorales) instead of p = sigmoid(−threshold) for every key (NLL ≈ 61).
    Frequencies are clamped to [1e-3, 1 − 1e-3]. Returns the bias, ``[keys]``.
    """
    rolls = torch.cat(list(targets)) if isinstance(targets, list) else targets.reshape(-1, targets.shape[-1])
    freq = rolls.float().mean(0).clamp(1e-3, 1 - 1e-3)
    logit = torch.log(freq / (1 - freq))
    bias = net.output.bias if isinstance(net.output, SNULayer) else net.output_bias
    if not isinstance(bias, Tensor) or bias.shape != logit.shape:
        raise ValueError(f"the network's output bias cannot take the marginal of {logit.numel()} keys: "
                         f"expected an output layer of {logit.numel()} units")
    bias.copy_(logit.to(bias.device))
    return bias
