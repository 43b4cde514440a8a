"""pcmsim.nir: NIR graphs (from snnTorch's real export) on crossbars, the same outputs as snnTorch on
ideal devices; export back to NIR; one-line errors."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import Tensor, nn

import pcmsim
from hardware_in_loop.clock import Clock
from hardware_in_loop.updater import HardwareInTheLoop
from pcmsim.analog import AnalogLinear
from pcmsim.analog_conv import AnalogConv2d
from pcmsim.nir import SUPPORTED_NODES, NeuronNode

snn = pytest.importorskip("snntorch")
from snntorch import utils as snn_utils  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402

EXACT = {"periphery": "ideal", "read_noise": False}
TOL = 1e-5
torch.set_num_threads(1)


def _leaky(shape: tuple[int, ...], beta: float, **kw: object) -> nn.Module:
    # per-neuron parameters (snnTorch's export infers the node shapes from them); NIR resets to v_reset
    # in the step of the spike: snnTorch's reset_mechanism="zero", reset_delay=False (what its NIR import builds)
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True,
                     reset_mechanism="zero", reset_delay=False, **kw)


def _snntorch_run(net: nn.Sequential, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
    """snnTorch's own time loop: output spikes and potentials ``[T, B, n]`` and every layer's output."""
    snn_utils.reset(net)
    spikes, mems, layers = [], [], []
    for x_t in x:
        h, outs = x_t, []
        for module in net:
            h = module(h)
            if isinstance(h, tuple):  # the output layer: (spk, mem), or (spk, syn, mem) for Synaptic
                h, mem = h[0], h[-1]
            outs.append(h)
        spikes.append(h)
        mems.append(mem)
        layers.append(outs)
    per_layer = [torch.stack([o[k] for o in layers]) for k in range(len(net))]
    return torch.stack(spikes), torch.stack(mems), per_layer


def test_an_snntorch_network_through_nir_runs_the_same_in_pcmsim_on_ideal_devices() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), _leaky((32,), 0.9), nn.Linear(32, 4), _leaky((4,), 0.8, output=True))
    with torch.no_grad():
        net[2].weight.mul_(3.0)  # enough drive for the output layer to spike
    graph = export_to_nir(net, torch.randn(1, 10), ignore_dims=[0])
    x = (torch.rand(30, 6, 10, generator=torch.Generator().manual_seed(1)) < 0.4).float() * 2.0
    with torch.no_grad():
        spikes, mems, layers = _snntorch_run(net, x)
        pnet = pcmsim.nir.load(graph, device_model="ideal", crossbar=EXACT)
        values = pnet.run(x)
    assert [type(pnet.node(n)).__name__ for n in pnet.order] == [
        "Identity", "AnalogLinear", "NeuronNode", "AnalogLinear", "NeuronNode", "Identity"]
    assert spikes.sum() > 10 and layers[1].sum() > 100  # both layers spike
    diff_hidden = float((values["1"] - layers[1]).abs().max())
    diff_spikes = float((values["output"] - spikes).abs().max())
    diff_mem = float((pnet.node("3").potential - mems).abs().max())
    print(f"snnTorch vs pcmsim (ideal devices): max |Δ| spikes {diff_spikes:g}, hidden {diff_hidden:g}, "
          f"potential {diff_mem:.3g}")
    assert diff_spikes == 0.0 and diff_hidden == 0.0 and diff_mem < TOL
    assert pnet.report.n_devices == 2 * (10 * 32 + 32 * 4)


def test_a_convolutional_snntorch_network_with_cuba_neurons_runs_the_same(tmp_path: Path) -> None:
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), _leaky((3, 6, 6), 0.85), nn.Flatten(), nn.Linear(3 * 36, 5),
        snn.Synaptic(alpha=torch.full((5,), 0.6), beta=torch.full((5,), 0.8), threshold=torch.ones(5),
                     init_hidden=True, reset_mechanism="zero", reset_delay=False, output=True),
    )
    graph = export_to_nir(net, torch.randn(1, 1, 6, 6), ignore_dims=[0])
    x = torch.rand(12, 4, 1, 6, 6, generator=torch.Generator().manual_seed(3)) * 4.0
    with torch.no_grad():
        spikes, mems, layers = _snntorch_run(net, x)
        pnet = pcmsim.nir.load(graph, device_model="ideal", crossbar=EXACT)
        values = pnet.run(x)
    assert isinstance(pnet.node("0"), AnalogConv2d) and pnet.node("4").kind == "CubaLIF"
    assert layers[1].sum() > 10 and spikes.sum() > 0
    assert float((values["1"] - layers[1]).abs().max()) == 0.0
    assert float((values["output"] - spikes).abs().max()) == 0.0
    assert float((pnet.node("4").potential - mems).abs().max()) < TOL
    assert pnet.report.layers[0].crossbar_shape == (3, 9)
    pcmsim.nir.export(pnet, tmp_path / "cnn.nir")  # and back, through a file
    again = pcmsim.nir.load(tmp_path / "cnn.nir", device_model="ideal", crossbar=EXACT)
    with torch.no_grad():
        assert torch.equal(again(x), values["output"])


def _euler(x: Tensor, decay: float, gain: float, leak: float, thr: float | None) -> Tensor:
    """The reference forward-Euler step, written out: spikes (or the potential) ``[T, B, n]``."""
    v, out = torch.zeros_like(x[0]), []
    for x_t in x:
        v = decay * v + leak + gain * x_t
        if thr is None:
            out.append(v.clone())
            continue
        s = (v > thr).float()
        v = torch.where(s > 0, torch.zeros_like(v), v)
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("kind", ["LIF", "IF", "LI", "I"])
def test_each_neuron_node_follows_the_documented_euler_step(kind: str) -> None:
    n, dt = 5, 1e-3
    tau, r, v_leak, thr = np.full(n, 0.01), np.full(n, 2.0), np.full(n, 0.1), np.full(n, 1.0)
    node = {"LIF": nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=thr),
            "IF": nir.IF(r=r * 100, v_threshold=thr),
            "LI": nir.LI(tau=tau, r=r, v_leak=v_leak),
            "I": nir.I(r=r * 100)}[kind]
    w = np.eye(n, dtype=np.float32)
    graph = nir.NIRGraph(nodes={"in": nir.Input(np.array([n])), "w": nir.Linear(weight=w), "neuron": node,
                                "out": nir.Output(np.array([n]))},
                         edges=[("in", "w"), ("w", "neuron"), ("neuron", "out")])
    x = torch.rand(15, 3, n, generator=torch.Generator().manual_seed(0)) * 2.0
    pnet = pcmsim.nir.load(graph, device_model="ideal", crossbar=EXACT, dt_s=dt)
    with torch.no_grad():
        got = pnet(x)
    a = dt / 0.01
    expected = {"LIF": _euler(x, 1 - a, a * 2.0, a * 0.1, 1.0), "IF": _euler(x, 1.0, dt * 200.0, 0.0, 1.0),
                "LI": _euler(x, 1 - a, a * 2.0, a * 0.1, None), "I": _euler(x, 1.0, dt * 200.0, 0.0, None)}[kind]
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)
    back = pcmsim.nir.export(pnet).nodes["neuron"]  # export inverts the mapping with the network's dt
    assert type(back) is type(node)
    for field in ("tau", "r", "v_leak", "v_threshold"):
        if hasattr(node, field):
            np.testing.assert_allclose(getattr(back, field), getattr(node, field), rtol=1e-5)


def test_export_and_load_round_trip_through_a_nir_file(tmp_path: Path) -> None:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 8), _leaky((8,), 0.9), nn.Linear(8, 3), _leaky((3,), 0.7, output=True))
    graph = export_to_nir(net, torch.randn(1, 6), ignore_dims=[0])
    pnet = pcmsim.nir.load(graph, device_model="ideal", crossbar=EXACT)
    exported = pcmsim.nir.export(pnet, tmp_path / "net.nir")
    assert set(exported.nodes) == set(graph.nodes) and sorted(exported.edges) == sorted(graph.edges)
    np.testing.assert_allclose(exported.nodes["0"].weight, graph.nodes["0"].weight, atol=1e-6)
    again = pcmsim.nir.load(tmp_path / "net.nir", device_model="ideal", crossbar=EXACT)
    x = torch.rand(10, 2, 6, generator=torch.Generator().manual_seed(5)) * 3
    with torch.no_grad():
        assert torch.equal(pnet(x), again(x))


def test_export_of_a_classifier_with_nir_neurons_and_refusal_of_others() -> None:
    from pcmsim.classifier import SpikingClassifier
    from pcmsim.network_config import NetworkConfig
    from pcmsim.networks import fp32_linear
    from pcmsim.neuron_models import LeakyLayer

    torch.manual_seed(6)
    net = SpikingClassifier(NetworkConfig(layers=(6, 8, 3), neuron="lif", readout="integrator"), fp32_linear)
    with pytest.raises(ValueError, match="LIFLayer has no NIR equivalent") as exc:
        pcmsim.nir.export(net)
    assert "\n" not in str(exc.value)
    net.hidden[0] = LeakyLayer(nn.Linear(6, 8, bias=False), 8, decay=0.9, gain=1.5, bias=True)
    with torch.no_grad():
        net.hidden[0].bias.uniform_(0, 0.5)
        net.readout.bias.uniform_(-0.2, 0.2)
    graph = pcmsim.nir.export(net)
    assert [type(graph.nodes[k]).__name__ for k in ("hidden0.synapse", "hidden0.neuron", "readout.neuron")] == [
        "Affine", "LIF", "I"]
    pnet = pcmsim.nir.load(graph, device_model="ideal", crossbar=EXACT)
    x = torch.rand(9, 4, 6, generator=torch.Generator().manual_seed(7)) * 2
    with torch.no_grad():
        torch.testing.assert_close(pnet(x)[-1], net(x).logits, atol=TOL, rtol=TOL)
    with pytest.raises(ValueError, match="cannot be exported"):
        pcmsim.nir.export(nn.Linear(2, 2))


def _graph(node: object, name: str = "odd") -> nir.NIRGraph:
    return nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), name: node, "out": nir.Output(np.array([3]))},
                        edges=[("in", name), (name, "out")], type_check=False)


@pytest.mark.parametrize(("graph", "message"), [
    (_graph(nir.Delay(delay=np.ones(3))), r"NIR node 'odd' \(Delay\) is not supported: expected one of Input"),
    (_graph(nir.Threshold(threshold=np.ones(3)), "thr"), r"NIR node 'thr' \(Threshold\) is not supported"),
    (_graph(nir.LIF(tau=np.full(3, 1e-5), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))),
     r"NIR node 'odd': tau = 1e-05 s is shorter than the step dt_s = 0.0001 s"),
    (nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "a": nir.Linear(weight=np.eye(3)),
                         "b": nir.IF(r=np.ones(3), v_threshold=np.ones(3))},
                  edges=[("in", "a"), ("a", "b"), ("b", "a")], type_check=False),
     r"NIR graph has a cycle through node"),
])
def test_unsupported_graphs_are_refused_in_one_line_naming_the_node(graph: nir.NIRGraph, message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        pcmsim.nir.load(graph, device_model="ideal")
    assert "\n" not in str(exc.value)


def test_the_nir_module_uses_the_real_package_and_names_what_it_supports() -> None:
    import pcmsim.nir as pnir

    assert pnir.from_nir.nir is nir and pnir.to_nir.nir is nir and pcmsim.nir is pnir
    assert set(SUPPORTED_NODES) >= {"Affine", "Linear", "Conv2d", "LIF", "CubaLIF", "LI", "IF", "I", "Flatten"}


def test_a_loaded_network_trains_with_the_hardware_in_the_loop() -> None:
    n_in, n_hidden, n_out = 12, 24, 2
    rng = np.random.default_rng(0)
    graph = nir.NIRGraph(
        nodes={"in": nir.Input(np.array([n_in])),
               "fc1": nir.Affine(weight=rng.uniform(-0.5, 0.5, (n_hidden, n_in)).astype(np.float32),
                                 bias=np.zeros(n_hidden, np.float32)),
               "lif": nir.LIF(tau=np.full(n_hidden, 1e-3), r=np.full(n_hidden, 10.0), v_leak=np.zeros(n_hidden),
                              v_threshold=np.ones(n_hidden)),
               "fc2": nir.Linear(weight=rng.uniform(-0.3, 0.3, (n_out, n_hidden)).astype(np.float32)),
               "li": nir.LI(tau=np.full(n_out, 2e-3), r=np.full(n_out, 20.0), v_leak=np.zeros(n_out)),
               "out": nir.Output(np.array([n_out]))},
        edges=[("in", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "out")])
    pnet = pcmsim.nir.load(graph, device_model="pcm-joshi2020", t_s=60.0)
    assert all(isinstance(pnet.node(k), AnalogLinear) for k in ("fc1", "fc2"))
    assert isinstance(pnet.node("lif"), NeuronNode)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (128,), generator=g)
    prototypes = torch.rand(2, n_in, generator=g)
    rates = prototypes[y] * 0.8
    clock = Clock()
    optimizer = torch.optim.Adam(pnet.parameters(), lr=0.02)
    hil = HardwareInTheLoop(pnet, optimizer, clock=clock, generator=torch.Generator().manual_seed(1))
    losses = []
    for step in range(25):
        i = torch.arange(step * 32, step * 32 + 32) % 128
        x = (torch.rand(10, 32, n_in, generator=g) < rates[i]).float()
        loss = nn.functional.cross_entropy(pnet(x).mean(0), y[i])
        optimizer.zero_grad()
        loss.backward()
        hil.step()
        clock.batch_done()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses


def test_neuron_parameters_given_once_for_all_units_take_the_size_of_their_input() -> None:
    n = 4
    lif = nir.LIF(tau=np.array(2e-4), r=np.array(2.0), v_leak=np.array(0.0), v_threshold=np.array(1.0))
    graph = nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "w": nir.Linear(weight=np.ones((n, 3), np.float32)),
                                "lif": lif, "out": nir.Output(np.array([n]))},
                         edges=[("in", "w"), ("w", "lif"), ("lif", "out")], type_check=False)
    pnet = pcmsim.nir.load(graph, device_model="ideal", crossbar=EXACT)
    assert pnet.node("lif").shape == (n,)
    x = torch.full((3, 1, 3), 0.2)  # W x = 0.6 per step; decay 0.5, gain 1: v = 0.6, 0.9, 1.05 → spike
    with torch.no_grad():
        assert pnet(x)[:, 0, 0].tolist() == [0.0, 0.0, 1.0]
