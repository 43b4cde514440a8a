"""Spike encoders: rate statistics, exact latencies, reproducibility, errors."""

from __future__ import annotations

import math

import pytest
import torch

from pcmsim.encoders import encode, latency_encode, poisson_encode, tile_encode


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("intensity,max_rate,dt", [(0.3, 1.0, 1.0), (0.8, 100.0, 0.005), (0.05, 1.0, 1.0)])
def test_poisson_mean_rate_within_sampling_error(intensity: float, max_rate: float, dt: float) -> None:
    steps, batch, n = 100, 50, 40  # 2·10⁵ Bernoulli draws
    x = torch.full((batch, n), intensity)
    spikes = poisson_encode(x, steps, max_rate=max_rate, dt=dt, generator=_gen(0))
    assert spikes.shape == (steps, batch, n)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    p = intensity * max_rate * dt
    draws = spikes.numel()
    sigma = math.sqrt(p * (1 - p) / draws)
    assert abs(float(spikes.mean()) - p) < 5 * sigma


def test_poisson_rate_follows_intensity_per_input() -> None:
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]]).expand(2000, 4)
    rates = poisson_encode(x, 50, generator=_gen(1)).mean(dim=(0, 1))
    assert rates[0].item() == 0.0 and rates[3].item() == 1.0
    for r, p in zip(rates[1:3].tolist(), (0.25, 0.5)):
        assert abs(r - p) < 5 * math.sqrt(p * (1 - p) / 1e5)


def test_poisson_reproducible_with_generator() -> None:
    x = torch.rand(8, 10, generator=_gen(5))
    a = poisson_encode(x, 20, generator=_gen(7))
    b = poisson_encode(x, 20, generator=_gen(7))
    c = poisson_encode(x, 20, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_poisson_rejects_probability_above_one() -> None:
    with pytest.raises(ValueError, match="max_rate·dt"):
        poisson_encode(torch.ones(1, 1), 5, max_rate=200.0, dt=0.01)


def test_intensities_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\]"):
        tile_encode(torch.tensor([[1.5]]), 3)
    with pytest.raises(ValueError, match="steps"):
        tile_encode(torch.tensor([[0.5]]), 0)


def test_tile_repeats_intensity() -> None:
    x = torch.tensor([[0.1, 0.7], [1.0, 0.0]])
    out = tile_encode(x, 4)
    assert out.shape == (4, 2, 2)
    for t in range(4):
        assert torch.equal(out[t], x)


def test_latency_exact_times() -> None:
    steps = 5  # t = round((1 − x)·4), halves up
    x = torch.tensor([[1.0, 0.75, 0.5, 0.25, 0.0, 0.6, 0.625]])
    out = latency_encode(x, steps)
    assert out.shape == (5, 1, 7)
    first = [int(out[:, 0, i].nonzero()[0]) if out[:, 0, i].any() else None for i in range(7)]
    assert first == [0, 1, 2, 3, None, 2, 2]  # 0.6 → 1.6 → 2; 0.625 → 1.5 → 2
    assert out.sum(dim=0).flatten().tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]


def test_latency_zero_spikes_last_when_configured() -> None:
    out = latency_encode(torch.tensor([[0.0, 1.0]]), 4, zero="last")
    assert out[:, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert out[:, 0, 1].tolist() == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="zero"):
        latency_encode(torch.tensor([[0.5]]), 4, zero="first")  # type: ignore[arg-type]


def test_encode_dispatch_and_errors() -> None:
    x = torch.tensor([[0.5]])
    assert torch.equal(encode("tile", x, 3), tile_encode(x, 3))
    assert torch.equal(
        encode("poisson", x, 3, generator=_gen(0), max_rate=0.5),
        poisson_encode(x, 3, max_rate=0.5, generator=_gen(0)),
    )
    with pytest.raises(ValueError, match="unknown encoder 'rate'"):
        encode("rate", x, 3)
    with pytest.raises(ValueError, match="does not take option"):
        encode("tile", x, 3, max_rate=1.0)
