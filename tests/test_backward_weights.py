"""What the backward pass of an analog layer reads (issue 12, item 3): ``exact``, ``read``, ``transpose``."""

from __future__ import annotations

import pytest
import torch

from hardware_in_loop.tasks import load_config
from pcmsim.analog import AnalogLinear
from pcmsim.crossbar import Crossbar, CrossbarConfig
from pcmsim.periphery import PeripheryConfig
from pcmsim.typedconfig import ConfigError

IDEAL = PeripheryConfig.ideal()


def _layer(mode: str, model: str = "pcm-nandakumar2018", **cfg: object) -> AnalogLinear:
    config = CrossbarConfig(**{"weight_scale": 0.05, **cfg})  # type: ignore[arg-type]
    return AnalogLinear(12, 5, False, device_model=model, config=config, seed=3, t_s=10.0, backward_weights=mode)


def _grad_x(layer: AnalogLinear, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    layer(x).backward(g)
    assert x.grad is not None
    return x.grad


def test_exact_uses_the_noise_free_digital_estimate() -> None:
    layer = _layer("exact")
    x, g = torch.rand(7, 12), torch.randn(7, 5)
    torch.testing.assert_close(_grad_x(layer, x, g), g @ layer.weight.detach(), rtol=0, atol=0)


def test_read_uses_one_fresh_noisy_read_per_forward() -> None:
    layer = _layer("read")
    layer.set_time(3600.0)
    x, g = torch.rand(7, 12), torch.randn(7, 5)
    state = layer.crossbar.generator.get_state()
    got = _grad_x(layer, x, g)
    layer.crossbar.generator.set_state(state)  # the read is the forward's first draw
    w_read = layer.crossbar.weights(3600.0, noise=True)
    torch.testing.assert_close(got, g @ w_read, rtol=0, atol=0)
    assert not torch.equal(w_read, layer.weight.detach())  # read noise: not the exact estimate
    assert not torch.equal(_grad_x(layer, x, g), got)  # the next batch reads again
    # grad_weight stays the outer product of errors and inputs (the optimiser's ΔW)
    layer.weight.grad = None
    layer(x).backward(g)
    torch.testing.assert_close(layer.weight.grad, g.t() @ x)


@pytest.mark.parametrize("cfg", [
    {"periphery": IDEAL, "read_noise": False},
    {"periphery": IDEAL, "read_noise": False, "tile_rows": 5, "tile_cols": 2},
    {"periphery": IDEAL, "read_noise": False, "per_column_scale": True, "weight_scale": "auto"},
])
def test_transpose_is_the_transposed_product_on_the_array(cfg: dict[str, object]) -> None:
    layer = _layer("transpose", "ideal", **cfg)
    x, g = torch.rand(7, 12), torch.randn(7, 5)
    torch.testing.assert_close(_grad_x(layer, x, g), g @ layer.weight.detach(), rtol=1e-5, atol=1e-6)


def test_transpose_goes_through_the_periphery_and_its_noise() -> None:
    xb = Crossbar(5, 12, "pcm-nandakumar2018", CrossbarConfig(weight_scale=0.05), seed=1, t_s=10.0)
    xb.program_weights(torch.linspace(-0.3, 0.3, 60).view(5, 12), 10.0)
    d = torch.randn(4000, 5)
    exact = d @ xb.weights(20.0)
    ys = xb.mvm_transposed(d, 20.0)
    err = ys - exact
    # DAC (7 bits), ADC (9 bits), read and output noise: unbiased to the clipped reads' means, not exact
    assert float(err.abs().mean()) > 1e-4
    assert float(err.mean().abs()) < 4 * float(err.std()) / err.numel() ** 0.5 + 0.01 * float(exact.abs().mean())
    assert xb.stats.mvm_calls > 0  # counted like any analog read


def test_the_config_field_names_the_valid_modes() -> None:
    with pytest.raises(ConfigError, match="'backward_weights' = 'guess' is invalid: expected one of exact, read, tra"):
        load_config({"flavour": "pcm", "backward_weights": "guess"})
    with pytest.raises(ValueError, match="backward_weights='x'"):
        _layer("x")
