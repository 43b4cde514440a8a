"""The README's quick start and the manual's examples (adding a device or neuron model, the Python API)
run as printed, and a network trains with each."""

from __future__ import annotations

import math
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import device_models
import device_models.registry as device_registry
import pcmsim.neuron_models.registry as neuron_registry
from hardware_in_loop.experiments import run_training
from hardware_in_loop.tasks import load_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXTENDING = ROOT / "docs" / "extending.md"


def _example(title: str, page: Path = README) -> types.ModuleType:
    """Execute the first python block after the heading ``title`` of ``page`` as a module."""
    text = page.read_text()
    section = text[text.index(title):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, title
    name = "readme_" + re.sub(r"\W+", "_", title.lower()).strip("_")
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(code.group(1), f"{page.name}: {title}", "exec"), module.__dict__)  # noqa: S102 - our own README
    return module


@pytest.fixture(scope="module")
def device_example() -> Iterator[types.ModuleType]:
    before = dict(device_registry._REGISTRY)
    yield _example("## Adding a device model", EXTENDING)
    device_registry._REGISTRY.clear()  # the example's model stays out of the other tests' registry
    device_registry._REGISTRY.update(before)


@pytest.fixture(scope="module")
def neuron_example() -> Iterator[types.ModuleType]:
    before = dict(neuron_registry._MODELS)
    yield _example("## Adding a neuron model", EXTENDING)
    neuron_registry._MODELS.clear()
    neuron_registry._MODELS.update(before)


IRIS: dict[str, Any] = {"task": "classification", "dataset": "iris", "encoder": "tile", "steps": 8,
                        "network": {"layers": [4, 16, 3]}, "epochs": 3, "batch_size": 16, "lr": 0.02}


def test_the_device_example_is_a_registered_model_with_its_statistics(device_example: types.ModuleType) -> None:
    assert "noisy-step" in device_models.available()
    model = device_models.get("noisy-step", delta_g_us=0.1, step_std_us=0.05)
    state = model.init_state((200_000,), generator=torch.Generator().manual_seed(0))
    model.set_pulses(state, torch.full((200_000,), 4), 1.0, torch.Generator().manual_seed(1))
    g = state.g_us.double()
    se = 0.1 / math.sqrt(g.numel())  # std of 4 steps: √4·0.05 = 0.1 µS
    assert abs(float(g.mean()) - 0.4) < 5 * se and abs(float(g.std()) - 0.1) < 5 * 0.1 / math.sqrt(2 * g.numel())
    with pytest.raises(device_models.DeviceParameterError, match="step_std_us"):
        device_models.get("noisy-step", step_std_us=-1.0)


def test_a_network_trains_on_the_example_device(device_example: types.ModuleType, tmp_path: Path) -> None:
    config = load_config({**IRIS, "flavour": "pcm", "device_model": "noisy-step",
                          "device_params": {"g_max_us": 25.0, "delta_g_us": 0.2}, "crossbar": {"weight_scale": 0.1}})
    results = run_training(config, tmp_path / "run", progress=False)
    assert results["device_model"] == "noisy-step" and results["pulses_set"] > 0
    assert results["final_test_accuracy"] > 0.5


def test_the_neuron_example_is_a_registered_model_that_trains(neuron_example: types.ModuleType,
                                                              tmp_path: Path) -> None:
    from pcmsim.neuron_models import available

    assert "if" in available(hidden=True)
    layer = neuron_example.IFLayer(torch.nn.Identity(), 3, threshold=1.0)
    out = layer(torch.full((4, 1, 3), 0.6))  # 0.6, 1.2 → spike, 0.8, 1.4 → spike
    assert out.activity[:, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
    config = load_config({**IRIS, "network": {"layers": [4, 16, 3], "neuron": "if"}, "epochs": 4})
    results = run_training(config, tmp_path / "run", progress=False)
    assert results["final_test_accuracy"] > 0.5


def test_the_quick_start_of_the_readme_runs() -> None:
    example = _example("## Quick start")
    assert example.report.n_devices == 1280 and example.hil.totals.pulses_set > 0
    assert [r["delay"] for r in example.rows] == ["0s", "1d", "1y"] * 2
