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
from typing import Any

import torch
from torch import Tensor, nn

from .network_config import NetworkConfig
from .neuron_models import NEURONS, NeuronLayer, SNULayer, apply_synapse
from .readouts import READOUTS, check_readout_kind

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


def hidden_layers(config: NetworkConfig, linear_factory: LinearFactory, *,
                  generator: torch.Generator | None = None) -> nn.ModuleList:
    """The hidden layers of ``config``: one layer of the registered neuron model ``config.neuron`` per
    hidden width, each over a synapse from ``linear_factory`` (no bias: the neuron has its own)."""
    model = NEURONS[config.neuron]
    options = {**config.neuron_options(), "generator": generator}
    layers = config.layers
    return nn.ModuleList(
        model.build(linear_factory(n_in, n_out, False), n_out, **options)
        for n_in, n_out in zip(layers[:-2], layers[1:-1])
    )


class SNUNetwork(nn.Module):
    """Feed-forward spiking network over sequences with a per-step readout: ``forward`` returns output
    logits ``[T, B, out]`` (next-step prediction, e.g. of piano rolls).

    The hidden layers are of any registered neuron model (SNUs in Woźniak et al. 2020); the readout is
    ``ssnu`` (logit ``s_t + b``) or ``sigmoid`` (a stateless linear layer plus ``output_bias``).
    The probability of each output unit is ``sigmoid(logit)``.
    """

    def __init__(self, config: NetworkConfig, linear_factory: LinearFactory = fp32_linear, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_readout_kind(config.readout, per_step=True, network="sequence-prediction network (SNUNetwork)",
                           use="sequence prediction")
        self.config = config
        self.hidden = hidden_layers(config, linear_factory, generator=generator)
        n_in, n_out = config.layers[-2], config.layers[-1]
        self.output: nn.Module = READOUTS[config.readout].build(
            linear_factory(n_in, n_out, False), n_out, {**config.neuron_options(), "generator": generator})
        if not isinstance(self.output, NeuronLayer):  # a stateless synapse: the logits need a bias
            self.output_bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for layer in self.hidden:
            h = layer(h).activity
        if isinstance(self.output, SNULayer):
            return self.output(h).pre
        return apply_synapse(self.output, h, self.config.layers[-1]) + self.output_bias


def build_snu_network(config: NetworkConfig | None = None, flavour: str = "fp32", *,
                      generator: torch.Generator | None = None, **options: Any) -> SNUNetwork:
    """Build a sequence-prediction network (default: the 88-150-88 SNU network) in a flavour (``fp32``,
    ``pcm``, ``aihwkit``, ``hwa``); ``options`` go to the flavour's layers (for ``pcm``:
    :func:`pcmsim.analog.pcm_linear_factory`'s ``device_model``, ``crossbar``, ``seed``, ``t_s`` (s), ...)."""
    return SNUNetwork(config or NetworkConfig(), make_linear_factory(flavour, **options), generator=generator)


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
