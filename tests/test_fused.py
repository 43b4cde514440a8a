"""The compiled neuron loops (pcmsim.neuron_models.fused) against the plain step-by-step loop.

Outputs and gradients (inputs, initial state, synapse weights, bias, trainable decay and leak)
of every fused model agree with the plain loop to float rounding, for every surrogate, hard and
soft SNUs, ReLU and leaky ReLU, LIF with and without a refractory period; the SNU forward
agrees bit for bit. Where a loop cannot be fused (a recurrent SNU, ``loop = "plain"``) the
plain loop runs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pcmsim.neuron_models import (
    SURROGATES,
    IntegratorReadout,
    LIFLayer,
    LIFState,
    SNULayer,
    SNUState,
)
from pcmsim.neuron_models.base import set_neuron_loop
from pcmsim.neuron_models.fused import NEURON_LOOPS, fused_loop
from pcmsim.neuron_models.snu import snu_step

STEPS, BATCH, N_IN, N_OUT = 37, 5, 12, 16


def _inputs(seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(STEPS, BATCH, N_IN, generator=g) < 0.4).to(dtype)


def _run_both(layer: nn.Module, x: torch.Tensor, loss_fn, state_fn=None) -> dict[str, list[torch.Tensor]]:  # noqa: ANN001
    """Forward, loss and backward under both loops; returns outputs and gradients of each."""
    results: dict[str, list[torch.Tensor]] = {}
    for loop in NEURON_LOOPS:
        set_neuron_loop(layer, loop)
        layer.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        state = state_fn() if state_fn is not None else None
        out = layer(xi, state) if state is not None else layer(xi)
        loss = loss_fn(out)
        leaves = [xi, *[p for p in layer.parameters() if p.requires_grad]]
        if state is not None:
            leaves += [s for s in state if s.requires_grad]
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        outs = [o.detach() for o in (out if isinstance(out, tuple) else (out.spikes, out.v))]
        results[loop] = outs + [g if g is not None else torch.zeros(()) for g in grads]
    return results


def _close(results: dict[str, list[torch.Tensor]], rtol: float = 1e-4, atol: float = 1e-5) -> None:
    for i, (a, b) in enumerate(zip(results["plain"], results["fused"])):
        assert a.shape == b.shape, i
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m, i=i: f"tensor {i}: {m}")


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("soft", [False, True])
def test_snu_fused_matches_plain(surrogate: str, soft: bool) -> None:
    torch.manual_seed(1)
    layer = SNULayer(nn.Linear(N_IN, N_OUT), N_OUT, soft=soft, surrogate=surrogate, train_decay=True,
                     threshold=0.3)
    with torch.no_grad():
        layer.decay.uniform_(0.5, 0.95)
    res = _run_both(layer, _inputs(2), lambda o: (o.y * torch.linspace(-1, 1, N_OUT)).sum() + (o.pre**2).mean())
    if not soft:  # the step output: the same operations in the same order, bit for bit
        assert torch.equal(res["plain"][0], res["fused"][0]) and torch.equal(res["plain"][1], res["fused"][1])
    assert res["fused"][0].abs().sum() > 0  # the layer is active
    _close(res)


def test_snu_leaky_relu_initial_state_and_float64() -> None:
    torch.manual_seed(3)
    layer = SNULayer(nn.Linear(N_IN, N_OUT).double(), N_OUT, activation="leaky_relu", train_decay=True).double()
    g = torch.Generator().manual_seed(4)
    s0 = torch.rand(BATCH, N_OUT, generator=g, dtype=torch.float64)
    y0 = (torch.rand(BATCH, N_OUT, generator=g, dtype=torch.float64) < 0.5).double()

    def state() -> SNUState:  # the same start for both loops, as fresh leaves
        return SNUState(s0.clone().requires_grad_(True), y0.clone().requires_grad_(True))

    x = _inputs(5, torch.float64) - 0.3  # negative drive too: the leaky slope is used
    res = _run_both(layer, x, lambda o: (o.y.sum(0) ** 2).sum() + o.pre.sum(), state)
    _close(res, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("refractory", [0, 3])
@pytest.mark.parametrize("surrogate", ["flat", "superspike", "esser"])
def test_lif_fused_matches_plain(refractory: int, surrogate: str) -> None:
    torch.manual_seed(6)
    layer = LIFLayer(nn.Linear(N_IN, N_OUT), N_OUT, dt=1.0, leak_init_max=0.5, refractory=refractory,
                     surrogate=surrogate, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        layer.linear.weight.mul_(3.0)
    g = torch.Generator().manual_seed(8)
    v0 = torch.rand(BATCH, N_OUT, generator=g)
    r0 = torch.randint(0, 2, (BATCH, N_OUT), generator=g).float()

    def state() -> LIFState:  # the same start for both loops, as fresh leaves
        return LIFState(v0.clone().requires_grad_(True), r0.clone())

    res = _run_both(layer, _inputs(9), lambda o: (o.spikes.sum(0) ** 2).sum() * 0.1 + (o.v**2).mean(), state)
    assert res["fused"][0].sum() > 0  # spikes happen
    _close(res)


def test_integrator_fused_matches_plain() -> None:
    torch.manual_seed(10)
    layer = IntegratorReadout(nn.Linear(N_IN, N_OUT), N_OUT, dt=0.5)
    results = {}
    for loop in NEURON_LOOPS:
        set_neuron_loop(layer, loop)
        layer.zero_grad()
        out = layer(_inputs(11))
        (out.logits**2).sum().backward()
        results[loop] = [out.potential.detach(), layer.linear.weight.grad.clone(), layer.bias.grad.clone()]
    _close(results)


def test_recurrent_snu_and_plain_setting_run_the_plain_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    import pcmsim.neuron_models.base as base

    real = base.run_steps
    monkeypatch.setattr(base, "run_steps", lambda *a: calls.append(1) or real(*a))
    x = _inputs(12)
    SNULayer(nn.Linear(N_IN, N_OUT), N_OUT, recurrent=nn.Linear(N_OUT, N_OUT, bias=False))(x)
    assert calls == [1]
    layer = SNULayer(nn.Linear(N_IN, N_OUT), N_OUT)
    layer(x)
    assert calls == [1]  # fused: the plain loop not called
    assert set_neuron_loop(nn.Sequential(layer), "plain") == 1
    layer(x)
    assert calls == [1, 1]
    assert fused_loop(snu_step) is not None
    with pytest.raises(ValueError, match="neuron loop 'fast' is invalid; expected one of fused, plain"):
        set_neuron_loop(layer, "fast")


def test_fused_loop_is_deterministic_and_leaves_inputs_unchanged() -> None:
    torch.manual_seed(13)
    layer = SNULayer(nn.Linear(N_IN, N_OUT), N_OUT, soft=True)
    x = _inputs(14)
    x_copy = x.clone()
    a, b = layer(x), layer(x)
    assert torch.equal(a.y, b.y) and torch.equal(x, x_copy)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_runs_the_plain_loop_and_agrees_with_the_cpu() -> None:
    torch.manual_seed(15)
    layer = SNULayer(nn.Linear(N_IN, N_OUT), N_OUT, soft=True)
    x = _inputs(16)
    cpu = layer(x).y
    gpu = layer.to("cuda")(x.to("cuda")).y.cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-5)
