"""LIF layers of Gerum & Schilling (2021): dynamics, surrogates, reset, refractory period, leak init;
the integrator readout and the spiking classifier."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pcmsim.classifier import SpikingClassifier, build_spiking_classifier
from pcmsim.network_config import SURROGATES, NetworkConfig
from pcmsim.networks import fp32_linear
from pcmsim.neuron_models import (
    IntegratorReadout,
    LIFLayer,
    LIFParams,
    LIFState,
    Surrogate,
    available,
    lif_step,
    spike,
)
from pcmsim.readouts import READOUTS


def _layer(leak: float, refractory: int = 0, dt: float = 1.0) -> LIFLayer:
    """One-unit layer whose current is its input (identity synapse, no bias), fixed leak."""
    layer = LIFLayer(nn.Identity(), 1, dt=dt, bias=False, train_leak=False, refractory=refractory)
    layer.leak.fill_(leak)
    return layer


def _run(layer: LIFLayer, currents: list[float]) -> tuple[list[float], list[float]]:
    out = layer(torch.tensor(currents).view(-1, 1, 1))
    return out.v.flatten().tolist(), out.spikes.flatten().tolist()


# -- dynamics ---------------------------------------------------------------------------------


def test_membrane_sequence_by_hand() -> None:
    # leak 0.5: V = ReLU(I + 0.5·V_prev) while V_prev < 1; 0.5, 0.85, 0.725, 0.3625, 1.38125 (spike),
    # then reset: 0.2 starts from 0.
    v, s = _run(_layer(0.5), [0.5, 0.6, 0.3, 0.0, 1.2, 0.2])
    assert v == pytest.approx([0.5, 0.85, 0.725, 0.3625, 1.38125, 0.2])
    assert s == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_threshold_is_inclusive_and_resets() -> None:
    v, s = _run(_layer(0.0), [1.0, 0.3, 0.9, 0.2])
    # V = 1 spikes (Θ(0) = 1); the next step starts from 0 (0.3); 0.3 + 0.9 = 1.2 spikes; reset to 0.2.
    assert s == [1.0, 0.0, 1.0, 0.0]
    assert v == pytest.approx([1.0, 0.3, 1.2, 0.2])


def test_relu_clips_negative_potential() -> None:
    v, s = _run(_layer(0.0), [0.5, -1.0, 0.2])
    assert v == pytest.approx([0.5, 0.0, 0.2])
    assert s == [0.0, 0.0, 0.0]


def test_no_leak_integrates_exactly() -> None:
    v, s = _run(_layer(0.0), [0.25, 0.25, 0.25, 0.25, 0.25])
    assert v == pytest.approx([0.25, 0.5, 0.75, 1.0, 0.25])
    assert s == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_dt_scales_current() -> None:
    v, _ = _run(_layer(0.0, dt=0.5), [1.0, 1.0, 1.0])
    assert v == pytest.approx([0.5, 1.0, 0.5])


def test_refractory_period_silences_and_discards_input() -> None:
    # R = 2: after the spike at t=0, steps 1 and 2 are held at 0 (inputs discarded); integration
    # resumes from 0 at t=3: 0.5, 0.5·0.5 + 0.7 = 0.95, 0.95·0.5 + 0.5 = 0.975.
    v, s = _run(_layer(0.5, refractory=2), [1.0, 0.5, 0.5, 0.5, 0.7, 0.5])
    assert v == pytest.approx([1.0, 0.0, 0.0, 0.5, 0.95, 0.975])
    assert s == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # R = 1 with strong input: spikes every other step at most.
    v, s = _run(_layer(0.0, refractory=1), [1.0, 2.0, 2.0, 2.0, 0.2])
    assert s == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert v == pytest.approx([1.0, 0.0, 2.0, 0.0, 0.2])
    # R = 0: spikes every step under strong input.
    _, s = _run(_layer(0.0), [2.0, 2.0, 2.0])
    assert s == [1.0, 1.0, 1.0]


def test_lif_step_function_is_plain() -> None:
    state = LIFState(v=torch.tensor([[0.5, 1.5]]), refractory=torch.zeros(1, 2))
    out, new = lif_step(torch.tensor([[0.6, 0.3]]), state, LIFParams(leak=torch.tensor([0.2, 0.2])))
    assert new.v.tolist()[0] == pytest.approx([0.6 + 0.8 * 0.5, 0.3])  # second unit was reset
    assert out.spikes.tolist() == [[1.0, 0.0]]
    assert out.v is new.v and state.v.tolist() == [[0.5, 1.5]]  # the state passed in is unchanged


def test_lif_step_function_matches_layer() -> None:
    layer = LIFLayer(nn.Linear(3, 4), 4, dt=0.5, refractory=1, surrogate="sigmoid",
                     generator=torch.Generator().manual_seed(0))
    x = torch.rand(6, 2, 3, generator=torch.Generator().manual_seed(1)) * 4
    currents = layer.currents(x)
    params = LIFParams(layer.leak.clamp(0, 1), 1.0, Surrogate("sigmoid"), 1)
    state = LIFState(torch.zeros(2, 4), torch.zeros(2, 4))
    spikes = []
    for t in range(6):
        out, state = lif_step(currents[t], state, params)
        spikes.append(out.spikes)
    res = layer(x)
    assert torch.equal(res.spikes, torch.stack(spikes)) and torch.equal(res.state.v, state.v)
    assert res.activity is res.spikes


# -- surrogates (the table itself is tested in test_neurons.py) ----------------------------


def _grad(name: str, xs: list[float], **kw: float) -> list[float]:
    """d spikes / d V of a one-unit layer at potentials ``threshold + xs`` (threshold 1)."""
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    layer = LIFLayer(nn.Identity(), len(xs), bias=False, train_leak=False, surrogate=name, **kw)
    layer.double()
    layer(1.0 + x.view(1, 1, -1)).spikes.sum().backward()
    assert x.grad is not None
    return x.grad.tolist()


def test_forward_is_heaviside_for_every_surrogate() -> None:
    x = torch.tensor([-0.5, -1e-6, 0.0, 1e-6, 3.0])
    for name in SURROGATES:
        assert spike(x, Surrogate(name)).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_flat_surrogate_is_one_everywhere() -> None:
    assert _grad("flat", [-0.9, -0.2, 0.0, 0.5, 7.0]) == [1.0, 1.0, 1.0, 1.0, 1.0]


def test_superspike_values() -> None:
    # 1 / (1 + 10|x|)²: x=0 → 1, 0.5 → 1/36, −0.2 → 1/9, 2 → 1/441
    assert _grad("superspike", [0.0, 0.5, -0.2, 2.0]) == pytest.approx([1.0, 1 / 36, 1 / 9, 1 / 441])
    assert _grad("superspike", [0.5], beta=2.0) == pytest.approx([1 / 4])


def test_sigmoid_values() -> None:
    # β σ(βx)(1 − σ(βx)), β = 10: x=0 → 2.5; x=0.1 → 10·σ(1)(1−σ(1)); x=−0.3 → 10·σ(3)(1−σ(3))
    s1 = 1 / (1 + math.exp(-1.0))
    s3 = 1 / (1 + math.exp(-3.0))
    assert _grad("sigmoid", [0.0, 0.1, -0.3]) == pytest.approx([2.5, 10 * s1 * (1 - s1), 10 * s3 * (1 - s3)])
    assert _grad("sigmoid", [0.0], beta=1.0) == pytest.approx([0.25])


def test_esser_values() -> None:
    # γ · max(0, 1 − |x|)
    assert _grad("esser", [0.0, 0.5, -0.25, 1.5]) == pytest.approx([1.0, 0.5, 0.75, 0.0])
    assert _grad("esser", [0.5], gamma=0.3) == pytest.approx([0.15])


def test_tanh_surrogate_serves_lif_too() -> None:
    assert _grad("tanh", [0.0, 0.5]) == pytest.approx([1.0, 1 - math.tanh(0.5) ** 2])


def test_unknown_surrogate_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown surrogate 'box'"):
        LIFLayer(nn.Identity(), 1, surrogate="box")


def test_bptt_through_leak_and_not_through_reset() -> None:
    # Two steps, flat surrogate, loss = s_2: dV2/dI1 = (1 − leak) when unit 0 did not spike at t=1;
    # 0 when it did (the reset factor carries no gradient).
    layer = _layer(0.25)
    currents = torch.tensor([[[0.5]], [[0.3]]], requires_grad=True)
    layer(currents).spikes[1].sum().backward()
    assert currents.grad is not None
    assert currents.grad.flatten().tolist() == pytest.approx([0.75, 1.0])
    currents = torch.tensor([[[1.5]], [[0.3]]], requires_grad=True)
    layer(currents).spikes[1].sum().backward()
    assert currents.grad is not None
    assert currents.grad.flatten().tolist() == pytest.approx([0.0, 1.0])


def test_leak_is_trained() -> None:
    lin = nn.Linear(3, 4)
    with torch.no_grad():  # small positive drive: the units integrate below threshold and leak
        lin.weight.fill_(0.05)
        lin.bias.zero_()
    layer = LIFLayer(lin, 4, generator=torch.Generator().manual_seed(0))
    x = torch.rand(6, 2, 3, generator=torch.Generator().manual_seed(1)) * 3
    layer(x).v.sum().backward()
    assert isinstance(layer.leak, nn.Parameter)
    assert layer.leak.grad is not None and float(layer.leak.grad.abs().sum()) > 0


# -- initialisation ---------------------------------------------------------------------------


def test_leak_init_range_and_reproducibility() -> None:
    gen = torch.Generator().manual_seed(3)
    layer = LIFLayer(nn.Identity(), 20000, generator=gen)
    leak = layer.leak.detach()
    assert float(leak.min()) > 0.0 and float(leak.max()) <= 0.1
    assert float(leak.mean()) == pytest.approx(0.05, abs=0.002)
    half = LIFLayer(nn.Identity(), 20000, dt=0.5, generator=torch.Generator().manual_seed(3)).leak.detach()
    assert float(half.max()) <= 0.05 and torch.allclose(half, leak * 0.5)
    again = LIFLayer(nn.Identity(), 20000, generator=torch.Generator().manual_seed(3)).leak.detach()
    assert torch.equal(again, leak)


def test_invalid_layer_arguments() -> None:
    with pytest.raises(ValueError, match="refractory"):
        LIFLayer(nn.Identity(), 1, refractory=-1)
    with pytest.raises(ValueError, match="dt"):
        LIFLayer(nn.Identity(), 1, dt=0.0)
    with pytest.raises(ValueError, match="threshold"):
        LIFLayer(nn.Identity(), 1, threshold=0.0)
    with pytest.raises(ValueError, match="leak_init_max"):
        LIFLayer(nn.Identity(), 1, leak_init_max=1.5)


# -- modules ----------------------------------------------------------------------------------


class _Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.inner(x)


def test_layer_applies_linear_once_to_all_steps() -> None:
    lin = _Counting(nn.Linear(5, 3))
    out = LIFLayer(lin, 3)(torch.rand(7, 2, 5))
    assert lin.shapes == [(14, 5)]
    assert out.spikes.shape == (7, 2, 3) and out.v.shape == (7, 2, 3)


def test_integrator_readout_last_step() -> None:
    readout = IntegratorReadout(nn.Identity(), 2, bias=False)
    x = torch.tensor([[[1.0, 0.0]], [[0.5, 2.0]], [[0.25, -1.0]]])
    out = readout(x)
    assert out.potential.flatten().tolist() == pytest.approx([1.0, 0.0, 1.5, 2.0, 1.75, 1.0])
    assert out.logits.flatten().tolist() == pytest.approx([1.75, 1.0])
    p = out.probabilities()
    assert float(p.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "neuron,readout",
    [("lif", "integrator"), ("snu", "integrator"), ("ssnu", "integrator"), ("lif", "spike_count")],
)
def test_classifier_shapes_and_gradients(neuron: str, readout: str) -> None:
    cfg = NetworkConfig(layers=(6, 8, 5, 3), neuron=neuron, readout=readout)
    torch.manual_seed(0)
    net = SpikingClassifier(cfg, fp32_linear, generator=torch.Generator().manual_seed(0))
    out = net(torch.rand(4, 2, 6) * 4)
    assert out.logits.shape == (2, 3) and out.potential.shape == (4, 2, 3)
    out.logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_classifier_readouts_are_spike_counts_or_integrator() -> None:
    cfg = NetworkConfig(layers=(6, 5, 3), neuron="lif", readout="spike_count")
    net = SpikingClassifier(cfg, fp32_linear, generator=torch.Generator().manual_seed(0))
    out = net(torch.rand(5, 2, 6) * 4)
    assert torch.equal(out.logits, out.potential[-1])
    assert torch.equal(out.potential.diff(dim=0) >= 0, torch.ones_like(out.potential[1:], dtype=torch.bool))
    acts = net.hidden_activity(torch.rand(5, 2, 6))
    assert len(acts) == 1 and acts[0].shape == (5, 2, 5)


def test_classifier_choices_come_from_the_registries() -> None:
    neurons = available(hidden=True)
    assert neurons == ("lif", "snu", "ssnu", "leaky", "cuba-lif")
    assert tuple(READOUTS) == ("integrator", "spike_count", "ssnu", "sigmoid")
    assert set(SURROGATES) >= {"flat", "superspike", "sigmoid", "esser", "tanh"}
    for field, value, names in (("neuron", "izhikevich", neurons), ("surrogate", "box", SURROGATES),
                                ("readout", "max", tuple(READOUTS))):
        with pytest.raises(ValueError, match=field) as exc:
            NetworkConfig(layers=(4, 3), **{field: value})
        msg = str(exc.value)
        assert "\n" not in msg and all(n in msg for n in names), msg
    with pytest.raises(ValueError, match="layers"):
        NetworkConfig(layers=(4,))
    # a readout of the other kind is refused by the network that cannot use it, in one line
    with pytest.raises(ValueError, match="readout 'ssnu' does not fit a classifier.*integrator, spike_count"):
        build_spiking_classifier(NetworkConfig(layers=(4, 3), readout="ssnu"))


def test_snu_classifier_keeps_the_tanh_surrogate() -> None:
    # the classifier's surrogate setting is the LIF's; SNU layers keep the SNU toolkit's tanh′
    net = build_spiking_classifier(NetworkConfig(layers=(4, 5, 3), neuron="snu", readout="integrator",
                                                  surrogate="esser"))
    assert net.hidden[0].surrogate == Surrogate("tanh")
    lif = build_spiking_classifier(NetworkConfig(layers=(4, 5, 3), neuron="lif", readout="integrator",
                                                  surrogate="esser", gamma=0.3))
    assert lif.hidden[0].surrogate == Surrogate("esser", gamma=0.3)
