"""The speed-ups of issue 6 change no result: compact masked programming, one thread for small arrays,
the lazy read cache and the leaner update path give the same devices and numbers bit for bit."""

from __future__ import annotations

import pytest
import torch

from hardware_in_loop.schemes import make_scheme
from pcmsim.crossbar import SINGLE_THREAD_MAX_DEVICES, Crossbar, CrossbarConfig, threads_for


def _pair(cfg: CrossbarConfig, model: str = "pcm-nandakumar2018") -> tuple[Crossbar, Crossbar]:
    a = Crossbar(13, 17, model, cfg, seed=3)
    b = Crossbar(13, 17, model, cfg, seed=3)
    w = torch.randn(13, 17, generator=torch.Generator().manual_seed(0)) * 0.3
    a.program_weights(w, 10.0)
    b.program_weights(w, 10.0)
    return a, b


def _assert_same(a: Crossbar, b: Crossbar) -> None:
    for f in a.state.FIELDS:
        assert torch.equal(getattr(a.state, f), getattr(b.state, f)), f
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


@pytest.mark.parametrize(
    "cfg",
    [
        CrossbarConfig(weight_scale=0.05),
        CrossbarConfig(weight_scale=0.05, per_column_scale=True),
        CrossbarConfig(devices_per_sign=2, significance="graded", weight_scale=0.05),
        CrossbarConfig(devices_per_sign=3, weight_scale=0.05),
    ],
)
def test_masked_programming_equals_full_programming(cfg: CrossbarConfig) -> None:
    """An all-true mask takes the compact path, no mask the full-matrix one: same draws, same report."""
    a, b = _pair(cfg)
    w2 = torch.randn(13, 17, generator=torch.Generator().manual_seed(1)) * 0.6  # some beyond the range
    ra = a.program_weights(w2, 100.0)
    rb = b.program_weights(w2, 100.0, mask=torch.ones(13, 17, dtype=torch.bool))
    for f in ("pulses", "error", "converged", "clipped", "w_per_us"):
        assert torch.equal(getattr(ra, f), getattr(rb, f)), f
    assert ra.n_clipped == rb.n_clipped > 0
    _assert_same(a, b)


def test_masked_programming_touches_only_the_mask_and_reports_zero_elsewhere() -> None:
    a, _ = _pair(CrossbarConfig(weight_scale=0.05))
    before = a.state.clone()
    mask = torch.zeros(13, 17, dtype=torch.bool)
    mask[2, 3] = mask[7, 0] = mask[12, 16] = True
    rep = a.program_weights(torch.full((13, 17), 0.2), 50.0, mask=mask)
    assert int((rep.pulses.sum(dim=(0, 1)) > 0).sum()) == 3
    assert bool((rep.error[~mask] == 0).all()) and bool(rep.converged[~mask].all())
    for f in a.state.FIELDS:
        assert torch.equal(getattr(a.state, f)[..., ~mask], getattr(before, f)[..., ~mask]), f
    assert torch.allclose(a.weights(50.0)[mask], torch.full((3,), 0.2), atol=0.05 * 0.5 + 1e-6)


def test_threads_for_sets_one_thread_for_small_arrays_and_restores() -> None:
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threads_for(1000):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with threads_for(SINGLE_THREAD_MAX_DEVICES + 1):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_mvm_and_update_do_not_depend_on_the_thread_count() -> None:
    old = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            xb = Crossbar(40, 60, "pcm-nandakumar2018", CrossbarConfig(weight_scale=0.05), seed=1)
            xb.program_weights(torch.randn(40, 60, generator=torch.Generator().manual_seed(2)) * 0.2, 0.0)
            scheme = make_scheme("mixed-precision", [xb])
            x = (torch.rand(200, 60, generator=torch.Generator().manual_seed(4)) < 0.2).float()
            ys = []
            for step in range(5):
                ys.append(xb.mvm(x, 100.0 + step))
                scheme.apply(0, torch.randn(40, 60, generator=torch.Generator().manual_seed(step)) * 0.05,
                             100.5 + step, xb.generator)
                scheme.end_step(100.5 + step, xb.generator)
            outs.append((torch.stack(ys), xb.state.clone(), xb.weights(200.0)))
    finally:
        torch.set_num_threads(old)
    (y1, s1, w1), (y2, s2, w2) = outs
    assert torch.equal(y1, y2) and torch.equal(w1, w2)
    for f in s1.FIELDS:
        assert torch.equal(getattr(s1, f), getattr(s2, f)), f


def test_cached_reads_equal_fresh_reads() -> None:
    """weights() after the refresh's cached read, and a forward at the same time after weights(),
    give what a fresh crossbar computes."""
    a, b = _pair(CrossbarConfig(weight_scale=0.05))
    g = a._drifted_cached(500.0)
    assert torch.equal(g, b.model.drifted(b.state, 500.0))
    assert torch.equal(a.weights(500.0), b.weights(500.0))
    x = torch.rand(5, 17, generator=torch.Generator().manual_seed(5))
    # a: variance from the conductances the refresh read cached; b: recomputed (weights() dropped them)
    assert torch.equal(a.mvm(x, 500.0), b.mvm(x, 500.0))
    assert torch.equal(a.mvm(x, 600.0), b.mvm(x, 600.0))
