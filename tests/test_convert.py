"""pcmsim.convert: any PyTorch (or snnTorch) model's layers on crossbars, programmed, trained in the loop."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import Tensor, nn

import pcmsim
from hardware_in_loop.clock import Clock
from hardware_in_loop.updater import HardwareInTheLoop
from pcmsim.analog import AnalogLinear, analog_layers
from pcmsim.analog_conv import AnalogConv1d, AnalogConv2d

EXACT = {"periphery": "ideal", "read_noise": False}
"""A crossbar that computes exactly: with the ``ideal`` device, the converted model is the original."""

torch.set_num_threads(1)


def test_an_mlp_converts_exactly_on_ideal_devices_and_the_original_is_untouched() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3, bias=False))
    x = torch.randn(9, 6)
    analog, report = pcmsim.convert(mlp, device_model="ideal", crossbar=EXACT)
    assert isinstance(mlp[0], nn.Linear) and not isinstance(mlp[0], AnalogLinear)
    assert [type(m) for m in analog] == [AnalogLinear, nn.ReLU, AnalogLinear]
    torch.testing.assert_close(analog(x), mlp(x), atol=1e-5, rtol=1e-5)
    assert report.device_model == "ideal" and report.n_devices == 2 * (6 * 12 + 12 * 3)
    assert [(r.name, r.kind, r.crossbar_shape) for r in report.layers] == [("0", "Linear", (12, 6)),
                                                                           ("2", "Linear", (3, 12))]
    assert all(r.program.n_clipped == 0 and r.program.rms_error < 1e-6 for r in report.layers)
    assert torch.equal(analog[0].bias.detach(), mlp[0].bias.detach()) and analog[2].bias is None  # digital
    assert "total on ideal" in report.table() and report.as_dict()["n_devices"] == report.n_devices
    single, _ = pcmsim.convert(nn.Linear(3, 2))  # a bare layer is the model itself
    assert isinstance(single, AnalogLinear)
    shared = nn.Linear(4, 4)
    tied, tied_report = pcmsim.convert(nn.Sequential(shared, nn.Tanh(), shared))  # one layer used twice
    assert tied[0] is tied[2] and isinstance(tied[0], AnalogLinear) and len(tied_report.layers) == 1


def test_convolutions_map_onto_one_crossbar_each_with_unfolded_inputs() -> None:
    torch.manual_seed(1)
    cnn = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 3, 3, padding="same", dilation=2, bias=False), nn.Flatten(), nn.Linear(3 * 4 * 4, 5),
    )
    x = torch.randn(3, 2, 8, 8)
    analog, report = pcmsim.convert(cnn, device_model="ideal", crossbar=EXACT)
    assert isinstance(analog[0], AnalogConv2d) and isinstance(analog[2], AnalogConv2d)
    torch.testing.assert_close(analog(x), cnn(x), atol=1e-5, rtol=1e-5)
    assert [r.crossbar_shape for r in report.layers] == [(4, 18), (3, 36), (5, 48)]
    assert [r.n_devices for r in report.layers] == [2 * 4 * 18, 2 * 3 * 36, 2 * 5 * 48]
    assert len(analog_layers(analog)) == 3  # one crossbar per convolution
    torch.testing.assert_close(analog[0].weight, cnn[0].weight, atol=1e-6, rtol=1e-5)
    conv1d = nn.Conv1d(3, 5, 4, stride=2, padding=1)
    a1d, r1d = pcmsim.convert(conv1d, device_model="ideal", crossbar=EXACT)
    assert isinstance(a1d, AnalogConv1d) and r1d.layers[0].crossbar_shape == (5, 12)
    x1 = torch.randn(2, 3, 11)
    torch.testing.assert_close(a1d(x1), conv1d(x1), atol=1e-5, rtol=1e-5)


def _net() -> nn.Module:
    return nn.Sequential(OrderedDict(
        enc=nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8)), head=nn.Linear(8, 2),
    ))


@pytest.mark.parametrize(("include", "exclude", "analog"), [
    (None, None, {"enc.0", "enc.2", "head"}),
    (None, ["head"], {"enc.0", "enc.2"}),
    (["enc"], None, {"enc.0", "enc.2"}),  # a name selects everything under it
    ([nn.Linear], ["enc.2"], {"enc.0", "head"}),
    ("he*", None, {"head"}),
    (None, [nn.Sequential], set()),  # the model itself is a Sequential: nothing left, see below
])
def test_layers_are_selected_by_name_and_type(include: object, exclude: object, analog: set[str]) -> None:
    if not analog:
        with pytest.raises(ValueError, match="nothing to convert"):
            pcmsim.convert(_net(), include=include, exclude=exclude)  # type: ignore[arg-type]
        return
    converted, report = pcmsim.convert(_net(), include=include, exclude=exclude)  # type: ignore[arg-type]
    got = {name for name, m in converted.named_modules() if isinstance(m, AnalogLinear)}
    assert got == analog == {r.name for r in report.layers}


@pytest.mark.parametrize(("model", "kwargs", "message"), [
    (nn.Sequential(nn.ReLU(), nn.Flatten()), {}, r"nothing to convert: the model \(Sequential\) has no nn.Linear"),
    (nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 3)), {}, r"layer '1' \(LSTM\) cannot map onto a crossbar"),
    (nn.Sequential(nn.Conv3d(1, 2, 3)), {}, r"layer '0' \(Conv3d\) cannot map onto a crossbar"),
    (nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), {}, r"layer '0' \(Conv2d\) cannot map .*groups=2"),
    (nn.Sequential(nn.Linear(3, 3), nn.ReLU()), {"include": ["1"]}, r"layer '1' \(ReLU\) cannot map"),
    (nn.Sequential(nn.Linear(3, 3)), {"device_model": "no-such-device"}, r"no-such-device"),
    (nn.Sequential(nn.Linear(3, 3)), {"compensation": "perfect"}, r"unknown drift compensation 'perfect'"),
])
def test_bad_input_is_refused_in_one_line(model: nn.Module, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        pcmsim.convert(model, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(exc.value)


def test_an_unmappable_layer_can_be_excluded_and_stays_digital() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.LSTM(3, 3))
    converted, report = pcmsim.convert(model, exclude=[nn.LSTM])
    assert isinstance(converted[0], AnalogLinear) and type(converted[1]) is nn.LSTM
    assert len(report.layers) == 1


def test_shared_modules_and_shared_weights() -> None:
    """A module used at two places is selected by either name and becomes one analog layer; two
    modules sharing one weight tensor are refused (two crossbars would let the copies drift apart);
    a Linear inside a module that reads its weights itself (attention) is refused by name."""
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 2))
    converted, _ = pcmsim.convert(model, exclude=["2"])  # excluded by its second name: digital at both places
    assert type(converted[0]) is nn.Linear and converted[0] is converted[2] and isinstance(converted[3], AnalogLinear)
    converted, report = pcmsim.convert(model, include=["2"])
    assert isinstance(converted[2], AnalogLinear) and converted[0] is converted[2] and len(report.layers) == 1
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    with pytest.raises(ValueError, match=r"^layers '0' and '1' share one weight tensor"):
        pcmsim.convert(nn.Sequential(a, b))

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2)
            self.head = nn.Linear(8, 2)

    with pytest.raises(ValueError, match=r"^layer 'attn.out_proj' \(NonDynamicallyQuantizableLinear\) sits inside "
                       r"'attn' \(MultiheadAttention\)"):
        pcmsim.convert(Attention(), include=[nn.Linear])
    converted, report = pcmsim.convert(Attention(), exclude=["attn"])
    assert [r.name for r in report.layers] == ["head"]


def _bars(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """A tiny two-class image task: a horizontal or a vertical bar in noise, ``[n, 1, 6, 6]``."""
    y = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(0, 6, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 6, 6, generator=g)
    for k in range(n):  # building the data set, not a model computation
        if y[k] == 0:
            x[k, 0, pos[k], :] += 1.0
        else:
            x[k, 0, :, pos[k]] += 1.0
    return x, y


def _train(model: nn.Module, x: Tensor, y: Tensor, steps: int, lr: float) -> tuple[float, float, float]:
    """Train in the loop (Adam → mixed-precision pulses); returns first loss, last loss, accuracy."""
    clock = Clock()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    hil = HardwareInTheLoop(model, optimizer, clock=clock, generator=torch.Generator().manual_seed(0))
    losses = []
    for step in range(steps):
        i = torch.arange(step * 32, step * 32 + 32) % len(y)
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        optimizer.zero_grad()
        loss.backward()
        stats = hil.step()
        clock.batch_done()
        losses.append(float(loss.detach()))
    assert hil.totals.pulses_set > 0 and stats.pulses_set >= 0
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    return sum(losses[:3]) / 3, sum(losses[-3:]) / 3, acc


def test_a_plain_mlp_and_a_small_cnn_convert_program_and_train_in_the_loop() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = _bars(192, g)
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    analog, report = pcmsim.convert(cnn, device_model="pcm-joshi2020", t_s=60.0)
    assert report.n_devices == 2 * (4 * 9 + 2 * 64) and report.total_pulses > 0
    first, last, acc = _train(analog, x, y, steps=30, lr=0.02)
    assert last < 0.7 * first and acc > 0.85, (first, last, acc)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 2))
    analog_mlp, _ = pcmsim.convert(mlp, device_model="pcm-joshi2020", t_s=60.0)
    first, last, acc = _train(analog_mlp, x, y, steps=30, lr=0.02)
    assert last < 0.7 * first and acc > 0.85, (first, last, acc)


def test_an_snntorch_network_learns_with_the_hardware_in_the_loop() -> None:
    snn = pytest.importorskip("snntorch")
    from pcmsim.data import load_digits_data

    class Net(nn.Module):  # Linear + Leaky, as in snnTorch's tutorials
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(64, 48), snn.Leaky(beta=0.9)
            self.fc2, self.lif2 = nn.Linear(48, 10), snn.Leaky(beta=0.9)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            cur1 = self.fc1(x)  # a constant input current: one analog read per batch
            spikes, mems = [], []
            for _ in range(8):
                spk1, mem1 = self.lif1(cur1, mem1)
                spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
                spikes.append(spk2)
                mems.append(mem2)
            return torch.stack(spikes), torch.stack(mems)

    torch.manual_seed(0)
    data = load_digits_data(seed=0)
    analog, report = pcmsim.convert(Net(), device_model="pcm-joshi2020", t_s=60.0)
    assert report.n_devices == 2 * (64 * 48 + 48 * 10)
    clock = Clock()
    optimizer = torch.optim.Adam(analog.parameters(), lr=3e-3)
    hil = HardwareInTheLoop(analog, optimizer, clock=clock, generator=torch.Generator().manual_seed(0))
    losses = []
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(0))
    for _epoch in range(2):
        for i in order.split(48):
            _, mem = analog(data.x_train[i])
            loss = sum(nn.functional.cross_entropy(m, data.y_train[i]) for m in mem) / len(mem)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            hil.step()
            clock.batch_done()
            losses.append(float(loss.detach()))
    with torch.no_grad():
        spikes, _ = analog(data.x_test)
    accuracy = float((spikes.sum(0).argmax(1) == data.y_test).float().mean())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"snnTorch on PCM: loss {first:.3f} → {last:.3f}, test accuracy {accuracy:.3f}")
    assert last < 0.6 * first and accuracy > 0.6, (first, last, accuracy)  # chance is 0.1


def test_drift_evaluation_reads_the_devices_without_programming_them() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    analog, _ = pcmsim.convert(mlp, device_model="pcm-joshi2020", t_s=60.0, compensation="global")
    assert all(bool((m.comp_reference != 0).any()) and m.compensation == "global" for m in analog_layers(analog))
    x = torch.randn(64, 16)
    g_before = [m.crossbar.state.g_us.clone() for m in analog_layers(analog)]
    with torch.no_grad():
        def evaluate() -> dict[str, float]:
            return {"mean_abs": float(analog(x).abs().mean())}

        rows = pcmsim.evaluate_over_drift(analog, evaluate, {"1 h": 3600.0, "1 day": 86400.0}, ("none", "global"),
                                          t_end_s=100.0)
    assert [(r["compensation"], r["delay"]) for r in rows] == [
        ("none", "0s"), ("none", "1 h"), ("none", "1 day"), ("global", "0s"), ("global", "1 h"), ("global", "1 day")]
    none = [r["mean_abs"] for r in rows if r["compensation"] == "none"]
    comp = [r["mean_abs"] for r in rows if r["compensation"] == "global"]
    assert none[2] < none[0]  # the outputs shrink as the conductances drift
    assert abs(comp[2] - comp[0]) < abs(none[2] - none[0])  # compensation restores them
    assert all(torch.equal(g, m.crossbar.state.g_us) for g, m in zip(g_before, analog_layers(analog)))
    assert all(m.time_s == 100.0 and m.compensation == "none" for m in analog_layers(analog))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_model_on_cuda_converts_and_trains_on_cuda() -> None:
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)).cuda()
    analog, report = pcmsim.convert(cnn, device_model="pcm-joshi2020", t_s=60.0)
    assert all(m.crossbar.device.type == "cuda" for m in analog_layers(analog))
    x, y = _bars(96, torch.Generator().manual_seed(0))
    first, last, acc = _train(analog, x.cuda(), y.cuda(), steps=20, lr=0.02)
    assert last < first, (first, last, acc)
    rows = pcmsim.evaluate_over_drift(analog, lambda: float(analog(x.cuda()).abs().mean()), {"1 h": 3600.0},
                                     t_end_s=1000.0)
    assert len(rows) == 4
