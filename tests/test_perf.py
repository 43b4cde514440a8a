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
    # within the verify window around its centred aim (the window's centre may sit up to ~0.5 µS
    # above the target so that the programmed conductances are right on average)
    assert torch.allclose(a.weights(50.0)[mask], torch.full((3,), 0.2), atol=0.05 * 1.0 + 1e-6)


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
    g = a.drifted_conductances(500.0)
    assert torch.equal(g, b.model.drifted(b.state, 500.0))
    assert torch.equal(a.weights(500.0), b.weights(500.0))
    x = torch.rand(5, 17, generator=torch.Generator().manual_seed(5))
    # a: variance from the conductances the refresh read cached; b: recomputed (weights() dropped them)
    assert torch.equal(a.mvm(x, 500.0), b.mvm(x, 500.0))
    assert torch.equal(a.mvm(x, 600.0), b.mvm(x, 600.0))


# ---- device-model fast paths (issue 6, second round) --------------------------------------------
def _nk(**kw):
    import device_models

    return device_models.get("pcm-nandakumar2018", **kw)


def _states_equal(a, b) -> None:
    for f in a.FIELDS:
        assert torch.equal(getattr(a, f), getattr(b, f)), f


@pytest.mark.parametrize("n_max", [1, 5])
def test_set_pulses_sorting_only_the_active_devices_equals_a_full_stable_sort(n_max: int) -> None:
    """The reference orders every device by a stable sort of n_max − n (the former implementation);
    set_pulses sorts only the devices with pulses: the same order, the same draws, bit for bit."""
    from device_models import DeviceState

    m = _nk()
    size = 50_000
    a = m.init_state((2, size), generator=torch.Generator().manual_seed(0))
    b = a.clone()
    counts = torch.randint(0, n_max + 1, (2, size), generator=torch.Generator().manual_seed(1))
    counts[torch.rand(2, size, generator=torch.Generator().manual_seed(2)) < 0.9] = 0
    counts[0, :7] = -1  # negative counts fire nothing
    ga, gb = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    m.set_pulses(a, counts.to(torch.int32), 7.0, ga)
    # reference
    n = counts.reshape(-1).to(torch.int64)
    active = [int((n >= r).sum()) for r in range(n_max + 1)]
    order = torch.argsort(n_max - n, stable=True)[: active[1]]
    flat = DeviceState(**{f: getattr(b, f).reshape(-1) for f in DeviceState.FIELDS})
    work = flat.index(order)
    for r in range(n_max):
        m.set_pulse(work.index(slice(0, active[r + 1])), None, 7.0, gb)
    for f in DeviceState.FIELDS:
        getattr(flat, f).index_copy_(0, order, getattr(work, f))
    _states_equal(a, b)
    assert torch.equal(ga.get_state(), gb.get_state())
    assert torch.equal(a.pulse_count, counts.clamp(min=0).to(torch.int32))


@pytest.mark.parametrize("op", ["reset", "set_pulse"])
@pytest.mark.parametrize("density", [0.01, 0.5])
def test_partial_mask_acts_as_a_full_mask_on_the_selected_devices_in_row_major_order(op: str, density: float) -> None:
    """RESET and a sparse SET pulse draw for the selected devices only and write them back with masked
    scatters: the same as the all-device operation on the gathered devices, with the same draws. (A
    dense SET pulse draws for every device and selects: checked on the unselected devices.)"""
    m = _nk(nu_std=0.01)
    a = m.init_state((3, 4000), generator=torch.Generator().manual_seed(0))
    m.set_pulses(a, torch.randint(0, 4, (3, 4000), generator=torch.Generator().manual_seed(5)), 1.0,
                 torch.Generator().manual_seed(6))
    b = a.clone()
    mask = torch.rand(3, 4000, generator=torch.Generator().manual_seed(1)) < density
    ga, gb = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    getattr(m, op)(a, mask, 50.0, ga)
    for f in a.FIELDS:
        assert torch.equal(getattr(a, f)[~mask], getattr(b, f)[~mask]), f
    if op == "set_pulse" and density * 8 >= 1:
        return
    sub = b.index(mask.nonzero(as_tuple=True))
    getattr(m, op)(sub, None, 50.0, gb)
    for f in a.FIELDS:
        assert torch.equal(getattr(a, f)[mask], getattr(sub, f)), f
    assert torch.equal(ga.get_state(), gb.get_state())


@pytest.mark.parametrize("t_s", [10.0, 38.6 * 2.0**21])
def test_verify_read_equals_read_of_devices_programmed_at_that_time(t_s: float) -> None:
    """The verify read skips the drift of devices programmed at t_s (G·1^(−ν) = G); beyond t_s/T0 = 2^20
    (where float32 time stamps could make (t − t_p)/T0 exceed 1) it is the plain read."""
    m = _nk(nu_std=0.02)
    s = m.init_state((5000,), generator=torch.Generator().manual_seed(0), t_s=t_s)
    m.set_pulses(s, torch.randint(0, 6, (5000,), generator=torch.Generator().manual_seed(1)), t_s,
                 torch.Generator().manual_seed(2))
    ga, gb = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(m.verify_read(s, t_s, ga), m.read(s, t_s, gb))
    assert torch.equal(ga.get_state(), gb.get_state())


def test_program_refuses_non_finite_targets() -> None:
    m = _nk()
    s = m.init_state((4,), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="target_us has NaN or infinite"):
        m.program(s, torch.tensor([1.0, float("nan"), 2.0, 3.0]), 5.0, torch.Generator().manual_seed(1))


def test_scratch_buffers_allocate_small_tensors_and_reuse_large_ones() -> None:
    from device_models.sampling import ScratchBuffers

    buf = ScratchBuffers()
    small = torch.empty(ScratchBuffers.SMALL - 1)
    assert buf.out("x", small) is None
    large = torch.empty(ScratchBuffers.SMALL, 2)
    o1, o2 = buf.out("x", large), buf.out("x", large[: ScratchBuffers.SMALL // 2])
    assert o1.shape == large.shape and o1.is_contiguous() and o1.data_ptr() == o2.data_ptr()
    for like in (small, large):
        ga, gb = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        assert torch.equal(buf.normal("n", like, ga), torch.randn(like.shape, generator=gb))


def test_refresh_equals_masked_program_weights() -> None:
    """The refresh programs the saturated weights through the compact core of program_weights: the
    same devices, draws and pulse counts as program_weights(weights, mask=saturated)."""
    from hardware_in_loop.schemes import RefreshConfig

    a, b = _pair(CrossbarConfig(weight_scale=0.05))
    pulses = torch.randint(0, 14, (1, 2, 13, 17), generator=torch.Generator().manual_seed(8)).to(torch.int32)
    for xb in (a, b):
        xb.apply_pulse_counts(pulses[0], 20.0)
    scheme = make_scheme("mixed-precision", [a], refresh=RefreshConfig())
    g = b.model.drifted(b.state, 30.0)
    mask = (torch.maximum(g[0, 0], g[0, 1]) > 6.0) & ((g[0, 0] - g[0, 1]).abs() < 1.5)
    assert 0 < int(mask.sum()) < mask.numel()
    stats = scheme.refresh(a, 30.0, None)
    rep = b.program_weights(b.weights(30.0), 30.0, mask=mask)
    assert stats.refreshes == int(mask.sum())
    assert stats.pulses_set == rep.total_pulses and stats.pulse_rounds == int(rep.pulses.max())
    _assert_same(a, b)


@pytest.mark.parametrize("lo, hi", [(0.1, 12.0), (0.0, float("inf")), (0.1, 20.0)])
def test_clipped_moments_far_from_the_bounds_equal_the_full_formula_bit_for_bit(
    lo: float, hi: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the devices within CLIP_FAR_SIGMAS σ of a clip bound take the float64 formula; the rest
    keep (mean, std), and that is bit for bit what the formula gives them in float32 — at random
    points, on the threshold itself, and at σ = 0 (the pcm-nandakumar2018 σ(G) = 0.03·G + 0.13 µS).
    The compiled CPU pass agrees with the formula to one unit in the last place (10⁻⁸ µS where the
    float64 formula cancels to about zero)."""
    from device_models.clipped import (
        CLIP_FAR_SIGMAS,
        _clipped_normal_moments_full,
        _clipped_normal_moments_torch,
        clipped_normal_moments,
    )

    g = torch.Generator().manual_seed(0)
    top = 25.0 if hi == float("inf") else hi + 1.0
    mean = torch.rand(200_000, generator=g) * (top - lo + 1.0) + lo - 0.5
    std = 0.03 * mean.abs() + 0.13 * torch.rand(200_000, generator=g)
    std[:1000] = 0.0
    # the threshold itself and just around it, at both bounds
    s = torch.rand(4000, generator=g) * 0.5 + 0.05
    edge = torch.cat([lo + CLIP_FAR_SIGMAS * s, lo + CLIP_FAR_SIGMAS * s * (1 + 1e-6), lo + 8.99 * s])
    if hi != float("inf"):
        edge = torch.cat([edge, hi - CLIP_FAR_SIGMAS * s, hi - 9.01 * s])
    mean = torch.cat([mean, edge])
    std = torch.cat([std, s.repeat(edge.numel() // s.numel())])
    m_full, s_full = _clipped_normal_moments_full(mean, std, lo, hi)
    m_fast, s_fast = _clipped_normal_moments_torch(mean, std, lo, hi)
    assert torch.equal(m_fast, m_full) and torch.equal(s_fast, s_full)
    monkeypatch.setattr("device_models.clipped.CLIP_CHUNK", 1000)  # the same in chunks
    m_chunked, s_chunked = _clipped_normal_moments_torch(mean, std, lo, hi)
    assert torch.equal(m_chunked, m_full) and torch.equal(s_chunked, s_full)
    assert ((m_full - mean).abs() > 0).any()  # some points were near a bound: the formula mattered there
    m_cpu, s_cpu = clipped_normal_moments(mean, std, lo, hi)  # the compiled pass
    ulp = torch.finfo(torch.float32).eps
    for got, ref in ((m_cpu, m_full), (s_cpu, s_full)):
        # one unit in the last place, or 10⁻⁸ µS where the formula cancels to ~0 (far inside a clip)
        assert ((got - ref).abs() <= ulp * ref.abs() + 1e-8).all()
        assert (got != ref).float().mean() < 0.01
    far = (mean - lo >= CLIP_FAR_SIGMAS * std) & (hi - mean >= CLIP_FAR_SIGMAS * std)
    assert torch.equal(m_cpu[far], mean[far]) and torch.equal(s_cpu[far], std[far])
