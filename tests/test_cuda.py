"""The CUDA path: training with the hardware in the loop and the analog product on a GPU.

Every test here needs CUDA and skips cleanly without it (CI has no GPU; ``bench/gpu_session.sh``
runs them on a GPU machine). On a machine without CUDA, ``--device cuda`` is refused in one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hardware_in_loop.config import ConfigError
from hardware_in_loop.experiments import experiment_config, run_training
from hardware_in_loop.tasks import load_config
from pcmsim.analog import AnalogLinear

ROOT = Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_refused_in_one_line_without_a_gpu() -> None:
    with pytest.raises(ConfigError, match="'device' = 'cuda' is invalid: expected 'cpu': this machine has no CUDA"):
        experiment_config("jsb-52800", quick=True, device="cuda")


@needs_cuda
def test_hardware_in_the_loop_trains_on_cuda(tmp_path: Path) -> None:
    config = experiment_config("jsb-52800", quick=True, device="cuda", epochs=2, max_train_sequences=24,
                               max_eval_sequences=16, drift_times=["1h"])
    results = run_training(config, tmp_path / "hil", progress=False)
    assert math.isfinite(results["test_nll"]) and results["test_nll"] < 20
    assert results["pulses_set"] > 0
    assert all(math.isfinite(r["nll"]) for r in results["drift"])
    again = run_training(config, tmp_path / "hil-again", progress=False)
    assert again["test_nll"] == results["test_nll"]  # the same seed gives the same run on the GPU too


@needs_cuda
def test_classification_trains_on_cuda(tmp_path: Path) -> None:
    data = json.loads((ROOT / "configs" / "digits-lif.json").read_text())
    data.update(device="cuda", epochs=1)
    config = load_config(data, source="digits-lif.json")
    results = run_training(config, tmp_path / "digits", progress=False)
    assert results["test_accuracy"] > 0.3


@needs_cuda
def test_analog_layer_on_cuda_matches_the_cpu_statistics() -> None:
    torch.manual_seed(0)
    w = torch.randn(64, 128) * 0.05
    x = (torch.rand(256, 128) < 0.3).float()
    outs = {}
    for dev in ("cpu", "cuda"):
        layer = AnalogLinear(128, 64, bias=False, device_model="pcm-nandakumar2018", seed=1, device=dev)
        layer.program_from(w)
        outs[dev] = layer(x.to(dev)).detach().cpu()
    exact = x @ w.T
    err = {d: float((o - exact).pow(2).mean().sqrt()) for d, o in outs.items()}
    # different random streams on the two devices: the same error statistics, not the same draws
    assert err["cuda"] == pytest.approx(err["cpu"], rel=0.25)
