"""Neuron models of :mod:`pcmsim.neuron_models`: SNU / sSNU dynamics of Woźniak et al. (2020) against
hand-computed sequences, the surrogate table, the step functions as pure functions, the time loop
and the registries."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from pcmsim import neuron_models as nm
from pcmsim.network_config import NetworkConfig
from pcmsim.networks import build_snu_network
from pcmsim.neuron_models import (
    SURROGATES,
    IntegratorParams,
    IntegratorState,
    LIFParams,
    LIFState,
    NeuronLayer,
    SNULayer,
    SNUParams,
    SNUState,
    Surrogate,
    integrator_step,
    lif_step,
    snu_step,
    spike,
)
from pcmsim.neuron_models.base import set_neuron_loop


def identity_linear(n: int) -> nn.Linear:
    lin = nn.Linear(n, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(n))
    return lin


# -- SNU dynamics -----------------------------------------------------------------------------


def test_snu_hand_computed_sequence_with_reset_and_decay() -> None:
    # One unit, W = 1, decay 0.8, threshold 1 (b = -1). Input 0.6 every step:
    # t0: s = 0.6,                 y = 1[0.6 - 1 > 0] = 0
    # t1: s = 0.6 + 0.8*0.6 = 1.08, y = 1           (fires)
    # t2: s = 0.6 + 0.8*1.08*(1-1) = 0.6, y = 0      (reset after the spike)
    # t3: s = 0.6 + 0.48 = 1.08,     y = 1
    layer = SNULayer(identity_linear(1), 1, decay=0.8, threshold=1.0)
    out = layer(torch.full((4, 1, 1), 0.6))
    s_expected = [0.6, 1.08, 0.6, 1.08]
    y_expected = [0.0, 1.0, 0.0, 1.0]
    assert out.y.flatten().tolist() == y_expected
    assert torch.allclose(out.pre.flatten() + 1.0, torch.tensor(s_expected))
    assert out.activity is out.y


def test_snu_decay_without_input() -> None:
    # s_t = 0.5 * s_{t-1} after one input of 0.8 (below threshold): 0.8, 0.4, 0.2, 0.1
    layer = SNULayer(identity_linear(1), 1, decay=0.5, threshold=1.0)
    x = torch.zeros(4, 1, 1)
    x[0] = 0.8
    out = layer(x)
    assert torch.allclose(out.pre.flatten() + 1.0, torch.tensor([0.8, 0.4, 0.2, 0.1]))
    assert out.y.sum() == 0


def test_relu_clips_negative_state() -> None:
    layer = SNULayer(identity_linear(1), 1, decay=0.8)
    out = layer(torch.tensor([[[-2.0]], [[0.5]]]))
    assert torch.allclose(out.pre.flatten() + 1.0, torch.tensor([0.0, 0.5]))


def test_soft_snu_is_sigmoid_with_soft_reset() -> None:
    # sSNU: y = sigmoid(s + b); the reset term is (1 - y) with the analog y.
    layer = SNULayer(identity_linear(1), 1, soft=True, decay=0.8, threshold=1.0)
    out = layer(torch.full((2, 1, 1), 0.6))
    s0 = 0.6
    y0 = 1 / (1 + math.exp(-(s0 - 1)))
    s1 = 0.6 + 0.8 * s0 * (1 - y0)
    y1 = 1 / (1 + math.exp(-(s1 - 1)))
    assert out.y.flatten().tolist() == pytest.approx([y0, y1], rel=1e-6)


def test_snu_step_is_strict_and_uses_the_tanh_pseudo_derivative() -> None:
    # the SNU's step is 1[x > 0] (the LIF's Θ is 1[x ≥ 0]); backward: 1 − tanh²(x)
    x = torch.tensor([-2.0, -0.3, 0.0, 0.5, 3.0], requires_grad=True)
    y = spike(x, Surrogate("tanh"), inclusive=False)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert torch.allclose(x.grad, 1 - torch.tanh(x.detach()) ** 2)
    assert SNULayer(nn.Identity(), 1).surrogate == Surrogate("tanh")
    assert SNULayer(nn.Identity(), 1, surrogate="esser", gamma=0.3).surrogate == Surrogate("esser", gamma=0.3)


def test_snu_gradients_flow_through_time() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(3, 4, bias=False)
    layer = SNULayer(lin, 4, decay=0.8)
    x = torch.rand(6, 2, 3) * 2
    layer(x).pre.sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    assert layer.bias.grad is not None


def test_snu_step_function_matches_layer() -> None:
    torch.manual_seed(1)
    wx = torch.randn(5, 3, 4)
    params = SNUParams(decay=0.8, bias=torch.full((4,), -1.0))
    state = SNUState(torch.zeros(3, 4), torch.zeros(3, 4))
    ys = []
    for t in range(5):
        out, state = snu_step(wx[t], state, params)
        ys.append(out.y)
    layer = SNULayer(nn.Identity(), 4, decay=0.8)
    assert torch.equal(layer(wx).y, torch.stack(ys))


def test_recurrent_input_is_added() -> None:
    rec = identity_linear(1)
    layer = SNULayer(identity_linear(1), 1, decay=0.0, threshold=1.0, recurrent=rec)
    # t0: s = 1.5 -> y = 1; t1: s = 0 + H*y0 = 1 -> y = 0 (1 - 1 = 0 is not > 0)
    out = layer(torch.tensor([[[1.5]], [[0.0]]]))
    assert out.y.flatten().tolist() == [1.0, 0.0]
    assert torch.allclose(out.pre.flatten() + 1.0, torch.tensor([1.5, 1.0]))


def test_snu_layer_continues_from_a_state() -> None:
    torch.manual_seed(2)
    layer = SNULayer(nn.Linear(3, 4), 4, soft=True, decay=0.7)
    x = torch.rand(6, 2, 3)
    whole = layer(x)
    first = layer(x[:3])
    second = layer(x[3:], (whole.pre[2] - layer.bias, first.y[-1]))  # s = pre − b; a tuple is accepted
    assert torch.allclose(second.y, whole.y[3:], atol=1e-6)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="decay"):
        SNULayer(identity_linear(1), 1, decay=1.5)
    with pytest.raises(ValueError, match="activation"):
        SNULayer(identity_linear(1), 1, activation="tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layers"):
        NetworkConfig(layers=(88,))
    with pytest.raises(ValueError, match="flavour"):
        build_snu_network(NetworkConfig(), "gpu-magic")


def test_network_shapes_and_output_kinds() -> None:
    x = torch.rand(7, 3, 88).round()
    for output in ("ssnu", "sigmoid"):
        net = build_snu_network(NetworkConfig(layers=(88, 20, 88), readout=output))
        assert net(x).shape == (7, 3, 88)


# -- surrogate gradients ------------------------------------------------------------------------

FORMULAS: dict[str, Callable[[Tensor, float, float], Tensor]] = {
    "flat": lambda x, b, g: torch.ones_like(x),
    "superspike": lambda x, b, g: (1 + b * x.abs()) ** -2,
    "sigmoid": lambda x, b, g: b * torch.exp(-b * x) / (1 + torch.exp(-b * x)) ** 2,
    "esser": lambda x, b, g: g * torch.relu(1 - x.abs()),
    "tanh": lambda x, b, g: 1 / torch.cosh(x) ** 2,
}
"""σ'(x) of every surrogate, written independently of the table."""

SOFT_STEPS: dict[str, Callable[[Tensor, float, float], Tensor]] = {
    "flat": lambda x, b, g: x,
    "superspike": lambda x, b, g: x / (1 + b * x.abs()),
    "sigmoid": lambda x, b, g: torch.sigmoid(b * x),
    "esser": lambda x, b, g: g * (lambda c: c * (1 - c.abs() / 2))(x.clamp(-1, 1)),
    "tanh": lambda x, b, g: torch.tanh(x),
}
"""A smooth function whose derivative each surrogate is (the "soft step" it stands for)."""


def test_every_surrogate_of_the_table_is_tested() -> None:
    assert set(SURROGATES) == set(FORMULAS) == set(SOFT_STEPS)
    for row in SURROGATES.values():
        assert row.source and row.formula and set(row.parameters) <= {"beta", "gamma"}


@pytest.mark.parametrize("name", list(FORMULAS))
@pytest.mark.parametrize("beta,gamma", [(10.0, 1.0), (2.5, 0.3)])
def test_surrogate_backward_equals_its_formula(name: str, beta: float, gamma: float) -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.cat([torch.randn(200, generator=g, dtype=torch.float64) * 1.5,
                    torch.tensor([0.0, 0.5, -0.5, 1.0, -1.0, 3.0], dtype=torch.float64)])
    grad_out = torch.rand(x0.shape, generator=g, dtype=torch.float64) + 0.5
    x = x0.clone().requires_grad_(True)
    surrogate = Surrogate(name, beta, gamma)
    y = spike(x, surrogate)
    assert torch.equal(y, (x0 >= 0).double())  # the forward pass is the step, whatever the surrogate
    y.backward(grad_out)
    assert x.grad is not None
    torch.testing.assert_close(x.grad, grad_out * FORMULAS[name](x0, beta, gamma), rtol=1e-12, atol=1e-12)
    # autograd check: the surrogate is the derivative of its soft step (away from |x| = 1 for esser's kinks)
    away = (x0.abs() - 1).abs() > 1e-6
    xs = x0.clone().requires_grad_(True)
    (soft_grad,) = torch.autograd.grad(SOFT_STEPS[name](xs, beta, gamma).sum(), xs)
    torch.testing.assert_close(surrogate.derivative(x0)[away], soft_grad[away], rtol=1e-10, atol=1e-12)


def test_surrogate_hand_values() -> None:
    # superspike 1/(1 + 10|x|)²; sigmoid β σ(βx)(1 − σ(βx)) = 2.5 at 0 for β = 10; esser γ max(0, 1 − |x|)
    x = torch.tensor([0.0, 0.5, -0.2, 2.0])
    assert Surrogate("superspike").derivative(x).tolist() == pytest.approx([1.0, 1 / 36, 1 / 9, 1 / 441])
    assert Surrogate("sigmoid").derivative(torch.zeros(1)).tolist() == pytest.approx([2.5])
    assert Surrogate("esser", gamma=0.3).derivative(x).tolist() == pytest.approx([0.3, 0.15, 0.24, 0.0])


def test_heaviside_at_zero() -> None:
    x = torch.tensor([-0.5, -1e-6, 0.0, 1e-6, 3.0])
    for name in SURROGATES:
        assert spike(x, Surrogate(name)).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
        assert spike(x, Surrogate(name), inclusive=False).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_surrogate_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="beta"):
        Surrogate("superspike", beta=0.0)
    with pytest.raises(ValueError, match="gamma"):
        Surrogate("esser", gamma=float("nan"))


# -- step functions are pure --------------------------------------------------------------------


def _snapshot(obj: Any) -> list[tuple[Tensor, int]]:
    tensors = [t for t in obj if isinstance(t, Tensor)] if isinstance(obj, tuple) else [obj]
    return [(t.clone(), t._version) for t in tensors]


def _unchanged(obj: Any, snap: list[tuple[Tensor, int]]) -> bool:
    tensors = [t for t in obj if isinstance(t, Tensor)] if isinstance(obj, tuple) else [obj]
    return all(torch.equal(t, c) and t._version == v for t, (c, v) in zip(tensors, snap))


def _step_cases() -> list[tuple[str, Callable[..., Any], Tensor, Any, Any]]:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, generator=g) + 0.8
    b = torch.full((5,), -0.7)
    snu_state = SNUState(torch.rand(3, 5, generator=g), (torch.rand(3, 5, generator=g) > 0.5).float())
    rec = identity_linear(5)
    lif_state = LIFState(torch.rand(3, 5, generator=g) * 1.5, torch.tensor([[0.0, 1, 2, 0, 0]] * 3))
    return [
        ("snu", snu_step, x, snu_state, SNUParams(torch.full((5,), 0.8), b)),
        ("ssnu-rec", snu_step, x, snu_state, SNUParams(0.6, b, soft=True, activation="leaky_relu", recurrent=rec)),
        ("lif", lif_step, x, lif_state, LIFParams(torch.full((5,), 0.1), 1.0, Surrogate("superspike"), 0)),
        ("lif-refractory", lif_step, x, lif_state, LIFParams(torch.full((5,), 0.2), 0.9, Surrogate("esser"), 2)),
        ("integrator", integrator_step, x, IntegratorState(torch.rand(3, 5, generator=g)), IntegratorParams()),
    ]


@pytest.mark.parametrize("case", _step_cases(), ids=lambda c: c[0])
def test_step_functions_are_pure(case: tuple[str, Callable[..., Any], Tensor, Any, Any]) -> None:
    _, step, x, state, params = case
    snaps = (_snapshot(x), _snapshot(state), _snapshot(params))
    out1, new1 = step(x, state, params)
    out2, new2 = step(x, state, params)
    assert _unchanged(x, snaps[0]) and _unchanged(state, snaps[1]) and _unchanged(params, snaps[2])
    assert type(new1) is type(state)
    for a, b in zip(_snapshot(out1) + _snapshot(new1), _snapshot(out2) + _snapshot(new2)):
        assert torch.equal(a[0], b[0])


def test_step_functions_carry_gradients_of_their_inputs() -> None:
    for name, step, x, state, params in _step_cases():
        xg = x.clone().requires_grad_(True)
        out, new = step(xg, state, params)
        first = out if isinstance(out, Tensor) else out[0]
        (first.sum() + new[0].sum()).backward()
        assert xg.grad is not None and xg.grad.abs().sum() > 0, name


# -- the time loop ------------------------------------------------------------------------------


class _Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.shapes.append(tuple(x.shape))
        return self.inner(x)


@pytest.mark.parametrize("name", nm.available())
def test_every_registered_model_runs_through_the_one_time_loop(name: str) -> None:
    synapse = _Counting(nn.Linear(5, 3))
    layer = nm.build_layer(name, synapse, 3, generator=torch.Generator().manual_seed(0))
    assert isinstance(layer, NeuronLayer)
    x = torch.rand(7, 2, 5)
    out = layer(x)
    assert synapse.shapes == [(14, 5)]  # the synapse sees all T·B inputs in one call
    if nm.get(name).hidden:
        assert out.activity.shape == (7, 2, 3)
    # the plain loop is the step applied in order (the fused loops are held to it in test_fused.py)
    set_neuron_loop(layer, "plain")
    stacked, final = layer.run(x)
    first = stacked if isinstance(stacked, Tensor) else stacked[0]
    assert first.shape == (7, 2, 3) and type(final) is type(layer.initial_state(2, first))
    # the loop is the step applied in order
    state = layer.initial_state(2, first)
    inputs = layer.synaptic_input(x)
    params = layer.step_params()
    for t in range(7):
        o, state = type(layer).step(inputs[t], state, params)
        got = o if isinstance(o, Tensor) else o[0]
        assert torch.equal(got, first[t])


def test_apply_synapse_and_stack_outputs() -> None:
    x = torch.rand(4, 3, 2)
    lin = nn.Linear(2, 5)
    y = nm.apply_synapse(lin, x, 5)
    assert torch.equal(y, lin(x.reshape(12, 2)).reshape(4, 3, 5))
    outs = [nm.SNUOutput(torch.full((1,), float(t)), torch.full((1,), -float(t))) for t in range(3)]
    stacked = nm.stack_outputs(outs)
    assert isinstance(stacked, nm.SNUOutput) and stacked.y.flatten().tolist() == [0.0, 1.0, 2.0]


# -- registries -----------------------------------------------------------------------------------


def _one_line_listing(exc: pytest.ExceptionInfo[ValueError], names: Any) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert all(n in msg for n in names), msg


def test_neuron_registry_names() -> None:
    assert nm.available() == ("lif", "snu", "ssnu", "integrator", "leaky", "cuba-lif")
    assert nm.available(hidden=True) == ("lif", "snu", "ssnu", "leaky", "cuba-lif")
    assert nm.available(hidden=False) == ("integrator",)
    for model in nm.NEURONS.values():
        assert model.source and model.summary


def test_registries_refuse_unknown_names_in_one_line() -> None:
    with pytest.raises(ValueError, match="unknown neuron model 'izhikevich'") as exc:
        nm.get("izhikevich")
    _one_line_listing(exc, nm.NEURONS)
    with pytest.raises(ValueError, match="unknown neuron model") as exc:
        nm.build_layer("izhikevich", nn.Identity(), 1)
    _one_line_listing(exc, nm.NEURONS)
    with pytest.raises(ValueError, match="unknown surrogate 'box'") as exc:
        Surrogate("box")
    _one_line_listing(exc, SURROGATES)
    with pytest.raises(ValueError, match="unknown surrogate 'box'") as exc:
        nm.surrogate_gradient("box")
    _one_line_listing(exc, SURROGATES)
    with pytest.raises(ValueError, match="surrogate") as exc:
        SNULayer(nn.Identity(), 1, surrogate="box")
    _one_line_listing(exc, SURROGATES)


def test_registry_builds_with_shared_settings() -> None:
    # every model picks its own options from one set of network settings
    settings = {"threshold": 0.5, "decay": 0.75, "dt": 0.5, "refractory": 2, "surrogate": "esser", "gamma": 0.3}
    snu = nm.build_layer("ssnu", nn.Identity(), 2, **settings)
    assert isinstance(snu, SNULayer) and snu.soft and snu.bias.tolist() == [-0.5, -0.5]
    assert snu.decay.tolist() == [0.75, 0.75] and snu.surrogate == Surrogate("tanh")
    lif = nm.build_layer("lif", nn.Identity(), 2, **settings)
    assert isinstance(lif, nm.LIFLayer) and lif.refractory == 2 and lif.surrogate == Surrogate("esser", gamma=0.3)
    readout = nm.build_layer("integrator", nn.Identity(), 2, **settings)
    assert isinstance(readout, nm.IntegratorReadout) and readout.dt == 0.5


def test_sequence_network_takes_any_registered_neuron() -> None:
    """The music network builds its hidden layers through the neuron registry, as the classifier does:
    LIF units of Gerum & Schilling in a next-step predictor train (gradients reach every parameter)."""
    from pcmsim.neuron_models import LIFLayer

    net = build_snu_network(NetworkConfig(layers=(88, 12, 88), neuron="lif", readout="sigmoid"),
                            generator=torch.Generator().manual_seed(0))
    assert isinstance(net.hidden[0], LIFLayer)
    out = net(torch.rand(6, 2, 88).round() * 4)
    assert out.shape == (6, 2, 88)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="readout 'integrator' does not fit a sequence-prediction network"):
        build_snu_network(NetworkConfig(layers=(88, 12, 88), readout="integrator"))
