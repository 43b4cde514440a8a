"""The one analog-layer contract and the one clock: built-in, converted and NIR networks behave the same.

Each finding of the seam audit is a test here: export after drift reads the devices, a converted
snnTorch network with ``init_hidden=True`` resets, a weight tied to a digital module is refused, the
exact decays 0 and 1 of snnTorch's NIR export load, and a loop written by hand advances the same
simulated clock as the trainer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pcmsim
from hardware_in_loop.clock import Clock
from hardware_in_loop.updater import HardwareInTheLoop

snn = pytest.importorskip("snntorch")
from snntorch import utils as snn_utils  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402

torch.set_num_threads(1)
YEAR_S = 365 * 86_400.0


def test_the_public_names_are_curated_and_listed() -> None:
    for name in ("convert", "nir", "analog_layers", "set_time", "calibrate", "compensate", "evaluate_over_drift",
                 "build_snu_network", "load_dataset", "Crossbar", "CrossbarConfig", "AnalogLinear"):
        assert name in pcmsim.__all__ and name in dir(pcmsim), name
        assert getattr(pcmsim, name) is not None
    with pytest.raises(AttributeError):
        pcmsim.no_such_name  # noqa: B018


def _graph() -> object:
    import nir

    g = np.random.default_rng(0)
    return nir.NIRGraph.from_list(
        nir.Affine(weight=g.normal(0, 0.4, (16, 12)).astype(np.float32), bias=np.zeros(16, np.float32)),
        nir.LI(tau=np.full(16, 2e-3, np.float32), r=np.ones(16, np.float32), v_leak=np.zeros(16, np.float32)),
        nir.Affine(weight=g.normal(0, 0.4, (5, 16)).astype(np.float32), bias=np.zeros(5, np.float32)),
        nir.LI(tau=np.full(5, 2e-3, np.float32), r=np.ones(5, np.float32), v_leak=np.zeros(5, np.float32)))


NOISE_FREE = {"periphery": "ideal", "read_noise": False}


@pytest.mark.parametrize("mode", ["none", "global"])
def test_read_weights_and_nir_export_follow_the_devices_after_a_year_of_drift(mode: str) -> None:
    pnet = pcmsim.nir.load(_graph(), device_model="pcm-joshi2020", crossbar=NOISE_FREE, t_s=60.0,
                           compensation=mode, seed=3)
    layers = pcmsim.analog_layers(pnet)
    assert len(layers) == 2
    as_programmed = [m.read_weights().clone() for m in layers]
    pcmsim.set_time(pnet, 60.0 + YEAR_S)
    if mode != "none":
        pcmsim.compensate(pnet, mode)
        assert all(float(m.comp_alpha.mean()) > 1.05 for m in layers)  # a year of drift is compensated
    for layer, w0 in zip(layers, as_programmed):
        w = layer.read_weights()
        # independently: the devices' own conductances at the layer's time, G+ − G−, scaled, × α
        g = layer.crossbar.model.drifted(layer.crossbar.state, layer.time_s)
        expected = (g[:, 0] - g[:, 1]).sum(0) * layer.crossbar.w_per_us * layer.comp_alpha[:, None]
        torch.testing.assert_close(w, expected, rtol=1e-5, atol=1e-6)
        if mode == "none":
            assert float((w - w0).abs().max()) > 0.05  # a year of drift is visible
    graph = pcmsim.nir.export(pnet)
    affines = [graph.nodes[k] for k in sorted(graph.nodes) if type(graph.nodes[k]).__name__ == "Affine"]
    assert len(affines) == 2
    for node, layer in zip(affines, layers):
        np.testing.assert_allclose(node.weight, layer.read_weights().numpy(), rtol=1e-6, atol=1e-7)
    # the exported graph, on ideal devices, computes what the drifted network computes
    x = torch.rand(20, 4, 12, generator=torch.Generator().manual_seed(1))
    reloaded = pcmsim.nir.load(graph, device_model="ideal", crossbar=NOISE_FREE)
    with torch.no_grad():
        y_dev, y_exp = pnet(x), reloaded(x)
    assert float(y_dev.abs().max()) > 0.1
    torch.testing.assert_close(y_exp, y_dev, rtol=1e-4, atol=1e-4)


def test_a_converted_snntorch_network_with_init_hidden_resets_and_trains_batch_after_batch() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 10), snn.Leaky(beta=0.9, init_hidden=True),
                        nn.Linear(10, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    analog, _ = pcmsim.convert(net, device_model="pcm-joshi2020", crossbar=NOISE_FREE, seed=0)
    assert analog is not net and isinstance(net[0], nn.Linear)  # the original is untouched

    def run(x: torch.Tensor) -> torch.Tensor:
        snn_utils.reset(analog)
        mems = []
        for x_t in x:
            _, mem = analog(x_t)
            mems.append(mem)
        return torch.stack(mems)

    x = torch.rand(5, 4, 6, generator=torch.Generator().manual_seed(2)) * 2
    with torch.no_grad():
        first, second = run(x), run(x)
    assert float(first.abs().sum()) > 0
    torch.testing.assert_close(first, second, rtol=0, atol=1e-6)  # no state leaks into the next sequence
    opt = torch.optim.SGD(analog.parameters(), lr=0.01)
    hil = HardwareInTheLoop(analog, opt, "mixed-precision", clock=Clock(),
                            generator=torch.Generator().manual_seed(0))
    for _ in range(3):  # snnTorch's usual style: reset, run, backward, step
        loss = run(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        hil.step()


def test_converting_after_a_forward_pass_names_the_module_holding_autograd_state() -> None:
    net = nn.Sequential(nn.Linear(6, 10), snn.Leaky(beta=0.9, init_hidden=True))
    net(torch.rand(2, 6))  # leaves mem, computed with autograd, on the neuron
    with pytest.raises(ValueError, match=r"module '1' \(Leaky\) holds 'mem'.*inplace=True") as err:
        pcmsim.convert(net)
    assert "\n" not in str(err.value)
    snn_utils.reset(net)
    pcmsim.convert(net)  # after a reset it converts


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.lm_head = nn.Linear(8, 20, bias=False)
        self.embed.weight = self.lm_head.weight  # weight tying

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.embed(tokens))


def test_a_weight_tied_to_a_digital_module_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match=r"'lm_head' \(Linear\) shares its weight with 'embed' \(Embedding\.weight\)"):
        pcmsim.convert(TiedLM())
    with pytest.raises(ValueError, match="nothing to convert"):
        pcmsim.convert(TiedLM(), exclude=["lm_head"])


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_snntorch_leaky_with_the_exact_decays_0_and_1_loads_from_nir(beta: float) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), snn.Leaky(beta=torch.full((4,), beta), threshold=torch.ones(4),
                                                   init_hidden=True, reset_mechanism="zero", reset_delay=False,
                                                   output=True))
    graph = export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0])
    pnet = pcmsim.nir.load(graph, device_model="ideal", crossbar={"periphery": "ideal", "read_noise": False})
    neuron = next(m for m in pnet.modules() if type(m).__name__ == "LeakyLayer")
    assert torch.all(neuron.decay == beta) and torch.allclose(neuron.gain, torch.ones(4))
    x = torch.rand(12, 3, 5, generator=torch.Generator().manual_seed(1)) * 1.5
    with torch.no_grad():
        snn_utils.reset(net)
        ref = torch.stack([net(x_t)[1] for x_t in x])
        pnet(x)
        torch.testing.assert_close(pnet.node("1").potential, ref, rtol=1e-5, atol=1e-5)


def test_a_time_constant_shorter_than_the_step_is_still_refused() -> None:
    import nir

    graph = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((2, 2), np.float32)),
                                   nir.LI(tau=np.full(2, 5e-5, np.float32), r=np.ones(2, np.float32),
                                          v_leak=np.zeros(2, np.float32)))
    with pytest.raises(ValueError, match=r"tau = 5e-05 s is shorter than the step dt_s = 0.0001 s"):
        pcmsim.nir.load(graph, device_model="ideal")


def test_a_loop_written_by_hand_and_the_trainer_give_the_same_clock_devices_and_metrics(music_data_dir,
                                                                                        tmp_path) -> None:
    """The simulated clock belongs to HardwareInTheLoop: a hand-written loop (loss.backward(); hil.step();
    hil.epoch_done()) and the Trainer end at the same time with the same devices and metrics."""
    from hardware_in_loop.seeds import epoch_order
    from hardware_in_loop.tasks import load_config
    from hardware_in_loop.trainer import Trainer
    from pcmsim.data import pad_batch
    from pcmsim.metrics import nll_sum_over_keys

    config = load_config({"task": "music", "flavour": "pcm", "dataset": "jsb", "data_dir": str(music_data_dir),
                          "max_train_sequences": 6, "max_eval_sequences": 3, "epochs": 2, "batch_size": 3,
                          "network": {"layers": [88, 24, 88]}, "snapshot_epochs": []})
    by_trainer = Trainer(config, tmp_path / "trainer", progress=False)
    by_trainer.fit()

    own = Trainer(config, tmp_path / "own", progress=False)  # only to build the same model and optimiser
    model, optimizer, task = own.model, own.optimizer, own.task
    hil = own.hil
    assert hil is not None
    train = task.data["train"]
    for epoch in range(config.epochs):
        for k in range(0, len(train), config.batch_size):
            order = epoch_order(len(train), config.seed, epoch)[k : k + config.batch_size]
            batch = pad_batch([train[j] for j in order])
            loss = nll_sum_over_keys(model(batch.inputs), batch.targets, batch.mask) / batch.mask.sum()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            hil.step()
        model.eval()
        with torch.no_grad():
            for split in ("valid", "test"):
                task.evaluate(model, split)
        model.train()
        hil.epoch_done()

    assert own.clock.now_s == by_trainer.clock.now_s > config.clock.t_start_s + 2 * config.clock.epoch_gap_s
    for a, b in zip(pcmsim.analog_layers(by_trainer.model), pcmsim.analog_layers(model)):
        assert a.time_s == b.time_s == own.clock.now_s
        assert torch.equal(a.crossbar.state.g_us, b.crossbar.state.g_us)
    with torch.no_grad():
        model.eval()
        assert task.evaluate(model, "test") == by_trainer.evaluate("test")


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[1.5, 0.0, -1.0, 0.5], [-1.5, 1.0, 0.5, -0.5], [0.0, -1.5, 1.0, 1.0]])
    return centres[y] + 0.6 * torch.randn(n, 4, generator=g), y


def _converted_mlp() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    return pcmsim.convert(net, device_model="pcm-joshi2020", seed=0, t_s=60.0).model


def test_your_own_model_trains_through_the_trainer_and_resumes_after_an_interrupt(tmp_path) -> None:
    import json
    import os
    import signal

    from hardware_in_loop import train
    from hardware_in_loop.trainer import TrainingInterrupted

    train_xy, valid_xy, test_xy = _blobs(96, 1), _blobs(48, 2), _blobs(48, 3)
    config = {"epochs": 3, "lr": 0.01, "batch_size": 16, "metric": "accuracy", "higher_is_better": True,
              "drift_times": ["1h", "1d"]}
    accuracy = {"accuracy": lambda out, y: (out.argmax(-1) == y).float().mean()}
    ce = nn.functional.cross_entropy
    results = train(_converted_mlp(), train_xy, valid_xy, ce, config, out=tmp_path / "a", test_data=test_xy,
                    metrics=accuracy, progress=False)
    assert results["task"] == "model" and results["device_model"] == "pcm-joshi2020"
    assert results["pulses_set"] > 0 and results["n_devices"] == 2 * (4 * 16 + 16 * 3)
    assert results["final_test_accuracy"] > 0.8
    assert {(r["compensation"], r["delay"]) for r in results["drift"]} >= {("none", "1d"), ("global", "1d")}
    assert (tmp_path / "a" / "checkpoint.pt").is_file() and (tmp_path / "a" / "metrics.jsonl").is_file()

    calls = {"n": 0}

    def interrupting(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 9:  # in epoch 2: as by Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        return ce(out, y)

    with pytest.raises(TrainingInterrupted):
        train(_converted_mlp(), train_xy, valid_xy, interrupting, config, out=tmp_path / "b", test_data=test_xy,
              metrics=accuracy, progress=False)
    resumed = train(_converted_mlp(), train_xy, valid_xy, ce, config, out=tmp_path / "b", test_data=test_xy,
                    metrics=accuracy, progress=False, resume=True)
    assert json.dumps(resumed, sort_keys=True) == json.dumps(results, sort_keys=True)


def test_a_run_of_your_own_model_says_it_is_evaluated_from_python(tmp_path) -> None:
    from hardware_in_loop import train
    from hardware_in_loop.tasks import load_config, make_task
    from pcmsim.typedconfig import ConfigError

    with pytest.raises(ConfigError, match="needs a model with analog layers"):
        train(nn.Linear(4, 3), _blobs(8, 0), _blobs(8, 1), nn.functional.cross_entropy, {"epochs": 1},
              out=tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match=r"hardware_in_loop.train\(model"):
        make_task(load_config({"task": "model"}))


def test_the_bring_your_own_network_page_runs_as_printed(tmp_path, monkeypatch) -> None:
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "bring-your-own-network.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {"__name__": "byon_page"}
    for code in blocks:
        exec(compile(code, str(page), "exec"), scope)  # noqa: S102 - our own docs
    hil, results = scope["hil"], scope["results"]
    assert hil.totals.pulses_set > 0 and len(scope["rows"]) == 6  # type: ignore[attr-defined, arg-type]
    assert results["pulses_set"] > 0 and (tmp_path / "runs" / "byon-example" / "results.json").is_file()


def test_an_fp32_classification_run_is_programmed_onto_devices_by_convert(tmp_path, capsys) -> None:
    import json

    from hardware_in_loop.cli import main
    from hardware_in_loop.experiments import run_training
    from hardware_in_loop.tasks import load_config

    config = load_config({"task": "classification", "dataset": "iris", "encoder": "tile", "steps": 6,
                          "network": {"layers": [4, 12, 3]}, "epochs": 2, "batch_size": 16, "lr": 0.02})
    run_training(config, tmp_path / "run", progress=False)
    code = main(["evaluate", str(tmp_path / "run"), "--device-model", "pcm-joshi2020", "--times", "1h,1y",
                 "--compensation", "none,global"])
    out = capsys.readouterr().out
    head, columns = out.splitlines()[:2]
    assert code == 0 and "software test" in head and "accuracy 0." in head and "accuracy" in columns
    saved = json.loads((tmp_path / "run" / "evaluation-pcm-joshi2020.json").read_text())
    assert saved["n_devices"] == 2 * (4 * 12 + 12 * 3)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in saved["rows"]) and len(saved["rows"]) == 6


def test_run_seeds_beyond_32_bits_are_not_cut() -> None:
    from hardware_in_loop.seeds import Stream, derive_seed

    assert derive_seed(2**32, Stream.MODEL) != derive_seed(0, Stream.MODEL)
    assert derive_seed(7, Stream.MODEL) == ((7 * 6364136223846793005 + 1442695040888963407 + 2) & (2**63 - 1))
