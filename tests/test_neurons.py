"""SNU / sSNU dynamics of Woźniak et al. (2020) against hand-computed sequences."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pcmsim.networks import SNUNetConfig, build_snu_network
from pcmsim.neurons import SNULayer, snu_step, step_fn


def identity_linear(n: int) -> nn.Linear:
    lin = nn.Linear(n, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(n))
    return lin


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


def test_step_pseudo_derivative_is_tanh_derivative() -> None:
    x = torch.tensor([-2.0, -0.3, 0.0, 0.5, 3.0], requires_grad=True)
    y = step_fn(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert torch.allclose(x.grad, 1 - torch.tanh(x.detach()) ** 2)


def test_snu_step_gradients_flow_through_time() -> None:
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
    b = torch.full((4,), -1.0)
    s = torch.zeros(3, 4)
    y = torch.zeros(3, 4)
    ys = []
    for t in range(5):
        s, y, _ = snu_step(wx[t], s, y, 0.8, b, soft=False)
        ys.append(y)

    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    layer = SNULayer(Fixed(), 4, decay=0.8)
    assert torch.equal(layer(wx).y, torch.stack(ys))


def test_recurrent_input_is_added() -> None:
    rec = identity_linear(1)
    layer = SNULayer(identity_linear(1), 1, decay=0.0, threshold=1.0, recurrent=rec)
    # t0: s = 1.5 -> y = 1; t1: s = 0 + H*y0 = 1 -> y = 0 (1 - 1 = 0 is not > 0)
    out = layer(torch.tensor([[[1.5]], [[0.0]]]))
    assert out.y.flatten().tolist() == [1.0, 0.0]
    assert torch.allclose(out.pre.flatten() + 1.0, torch.tensor([1.5, 1.0]))


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="decay"):
        SNULayer(identity_linear(1), 1, decay=1.5)
    with pytest.raises(ValueError, match="sizes"):
        SNUNetConfig(sizes=(88,))
    with pytest.raises(ValueError, match="flavour"):
        build_snu_network(SNUNetConfig(), "gpu-magic")


def test_network_shapes_and_output_kinds() -> None:
    x = torch.rand(7, 3, 88).round()
    for output in ("ssnu", "sigmoid"):
        net = build_snu_network(SNUNetConfig(sizes=(88, 20, 88), output=output))
        assert net(x).shape == (7, 3, 88)
