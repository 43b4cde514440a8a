"""Physics of the device models against their published formulas (issue 3).

Every statistical check samples ≥ 10⁵ devices and compares with the formula written out here
with its literal constants (not read back from the model), at tolerances of a few standard
errors: a wrong constant in a model (0.084 → 0.09, 0.03 → 0.04, …) fails these tests.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from conftest import assert_figure

import device_models
from device_models import DeviceParameterError, DeviceState
from device_models.empirical import CSVFormatError, EmpiricalDevice
from device_models.measurements import write_pulse_response_csv

N = 200_000
DEV = "cpu"  # the models take device=; CUDA is not available on the test machine


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator(device=DEV).manual_seed(seed)


def ones(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool, device=DEV)


def assert_mean(x: torch.Tensor, expected: torch.Tensor | float, k: float = 5.0, *, sigma=None, what: str = ""):
    """Mean of x within k standard errors of ``expected`` (std from the sample unless given)."""
    x = x.double()
    s = x.std() if sigma is None else torch.as_tensor(sigma, dtype=torch.float64)
    se = float(s) / math.sqrt(x.numel())
    got = float(x.mean())
    assert abs(got - float(expected)) <= k * se + 1e-12, f"{what} mean {got:.5f} vs {float(expected):.5f} (se {se:.2g})"


def assert_std(x: torch.Tensor, expected: float, k: float = 5.0, what: str = ""):
    """Std of x within k standard errors (σ/√(2n), Gaussian) of ``expected``."""
    got = float(x.double().std())
    se = expected / math.sqrt(2 * x.numel())
    assert abs(got - expected) <= k * se + 1e-12, f"{what} std {got:.5f} vs {expected:.5f} (se {se:.2g})"


# ---------------------------------------------------------------------------------------------
# registry and validation
# ---------------------------------------------------------------------------------------------
ALL = ["empirical", "ideal", "pcm-aihwkit-preset", "pcm-joshi2020", "pcm-nandakumar2018", "pcm-nandakumar2018-20us"]


def test_registry_lists_every_model():
    assert device_models.available() == ALL
    assert device_models.get("pcm-nandakumar2018").g_max_us == 12.0
    assert device_models.get("pcm-nandakumar2018-20us").g_max_us == 20.0
    assert device_models.get("pcm-nandakumar2018", g_max_us=20.0).g_max_us == 20.0


def test_registry_refuses_unknown_names_and_parameters():
    with pytest.raises(DeviceParameterError, match="available: .*pcm-joshi2020"):
        device_models.get("pcm-nope")
    with pytest.raises(DeviceParameterError, match="unknown parameter.*valid:.*g_max_us"):
        device_models.get("pcm-joshi2020", gmax=3.0)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan"), float("inf")])
def test_g_max_must_be_positive_and_finite(name, value):
    with pytest.raises(DeviceParameterError, match="g_max_us=.*expected a finite number"):
        device_models.get(name, g_max_us=value)


@pytest.mark.parametrize("name", ["pcm-nandakumar2018", "pcm-joshi2020", "empirical"])
@pytest.mark.parametrize("value", [0.0, -5.0, float("nan")])
def test_t0_must_be_positive(name, value):
    with pytest.raises(DeviceParameterError, match="t0_s=.*expected a finite number in \\(0"):
        device_models.get(name, t0_s=value)


@pytest.mark.parametrize("field", ["mu_slope", "read_noise_offset_us", "nu"])
def test_nan_refused_in_any_field(field):
    with pytest.raises(DeviceParameterError, match=f"{field}=nan"):
        device_models.get("pcm-nandakumar2018", **{field: float("nan")})


@pytest.mark.parametrize("name", [n for n in ALL])
def test_same_seed_gives_identical_tensors(name):
    def run(seed):
        m = device_models.get(name)
        g = gen(seed)
        s = m.init_state((3000,), device=DEV, generator=g)
        m.set_pulse(s, ones(3000), 1.0, g)
        m.set_pulse(s, torch.rand(3000, generator=g) < 0.5, 2.0, g)
        m.set_pulse(s, torch.rand(3000, generator=g) < 0.05, 2.5, g)
        m.reset(s, torch.rand(3000, generator=g) < 0.2, 3.0, g)
        m.set_pulses(s, torch.randint(0, 6, (3000,), generator=g), 4.0, g)
        rep = m.program(s.index(slice(0, 1000)), torch.rand(1000, generator=g) * m.g_max_us, 5.0, g)
        r = m.read(s, 1e4, g)
        return s.state_dict(), rep, r

    a, b, c = run(7), run(7), run(8)
    for f in DeviceState.FIELDS:
        assert torch.equal(a[0][f], b[0][f]), f
    assert torch.equal(a[1].error_us, b[1].error_us) and torch.equal(a[2], b[2])
    if name != "ideal":
        assert not torch.equal(a[0]["g_us"], c[0]["g_us"])


@pytest.mark.parametrize("name", ALL)
def test_state_is_at_most_24_bytes_and_masked_devices_untouched(name):
    m = device_models.get(name)
    g = gen(1)
    s = m.init_state((4, 500), device=DEV, generator=g)
    assert s.bytes_per_device <= 24
    before = s.clone()
    mask = torch.zeros(4, 500, dtype=torch.bool)
    mask[1] = True
    m.set_pulse(s, mask, 10.0, g)
    for f in DeviceState.FIELDS:
        assert torch.equal(getattr(s, f)[~mask], getattr(before, f)[~mask]), f
    assert torch.all(s.t_prog_s[mask] == 10.0)
    assert torch.all(s.pulse_count[mask] == before.pulse_count[mask] + 1)
    kept = s.clone()
    m.reset(s, ~mask, 11.0, g)
    for f in DeviceState.FIELDS:
        assert torch.equal(getattr(s, f)[mask], getattr(kept, f)[mask]), f
    assert torch.all(s.t_prog_s[~mask] == 11.0)
    # a view into a larger state (non-contiguous) is updated in place
    view = s.index((slice(None), slice(0, 500, 2)))
    m.set_pulse(view, torch.ones(view.shape, dtype=torch.bool), 12.0, g)
    assert torch.all(s.t_prog_s[:, ::2] == 12.0) and torch.all(s.t_prog_s[:, 1::2] != 12.0)


# ---------------------------------------------------------------------------------------------
# pcm-nandakumar2018 (PCM-MODELS.md §1)
# ---------------------------------------------------------------------------------------------
A_PULSES = 2.6


def nk_mu(g, p):
    return -0.084 * g + 0.880 + 1.40 * p


def nk_sigma(g, p):
    return 0.091 * g + 0.260 + 2.15 * p


def clipped_normal_moments(mu: float, sd: float, lo: float, hi: float) -> tuple[float, float]:
    """Mean and std of clip(N(mu, sd), lo, hi) (closed form with Φ, φ)."""
    def cdf(x):
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    def pdf(x):
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    a, b = (lo - mu) / sd, (hi - mu) / sd
    pa, pb = cdf(a), 1 - cdf(b)
    mid = 1 - pa - pb
    # moments of the part inside (truncated normal mass) plus the clipped masses at lo and hi
    m1_in = mu * mid + sd * (pdf(a) - pdf(b))
    m2_in = (mu * mu + sd * sd) * mid + 2 * mu * sd * (pdf(a) - pdf(b)) + sd * sd * (a * pdf(a) - b * pdf(b))
    m1 = m1_in + lo * pa + hi * pb
    m2 = m2_in + lo * lo * pa + hi * hi * pb
    return m1, math.sqrt(max(m2 - m1 * m1, 0.0))


def test_nandakumar_reset_distribution():
    m = device_models.get("pcm-nandakumar2018")
    s = m.init_state((N,), device=DEV, generator=gen(), t_s=5.0)
    assert_mean(s.g_us, 0.1, what="RESET G")
    assert_std(s.g_us, 0.01, what="RESET G")
    assert torch.all(s.aux == 1.0) and torch.all(s.nu == 0.04) and torch.all(s.t_prog_s == 5.0)
    assert torch.all(s.pulse_count == 0)
    m.reset(s, ones(N), 6.0, gen(1))
    assert torch.all(s.pulse_count == 1)


@pytest.mark.parametrize("path", ["full", "dense", "sparse"])
def test_nandakumar_set_increment_law(path):
    """ΔG ~ N(μ, σ) with P decayed first; G_max raised so that the clip does not bind."""
    m = device_models.get("pcm-nandakumar2018", g_max_us=100.0)
    groups = [(1.0, 1.0), (5.0, 0.0), (10.0, 0.5), (3.0, 0.2)]
    n = N // len(groups)
    g0 = torch.cat([torch.full((n,), g) for g, _ in groups])
    p0 = torch.cat([torch.full((n,), p) for _, p in groups])
    s = DeviceState.empty((g0.numel(),), DEV)
    s.g_us.copy_(g0)
    s.aux.copy_(p0)
    s.nu.fill_(0.04)
    if path == "full":
        mask = ones(g0.numel())
    else:  # pulse only every 2nd (dense) or every 10th (sparse) device
        step = 2 if path == "dense" else 10
        mask = torch.zeros(g0.numel(), dtype=torch.bool)
        mask[::step] = True
    m.set_pulse(s, mask, 1.0, gen(3))
    assert torch.equal(s.g_us[~mask], g0[~mask]) and torch.equal(s.aux[~mask], p0[~mask])
    for k, (g, p) in enumerate(groups):
        sel = torch.zeros_like(mask)
        sel[k * n:(k + 1) * n] = True
        sel &= mask
        p_new = p * math.exp(-1 / A_PULSES)
        assert torch.allclose(s.aux[sel], torch.tensor(p_new, dtype=torch.float32))
        dg = s.g_us[sel] - g
        # the lower clip at 0.1 µS binds for a few % of the devices at small G and large P
        m_exp, s_exp = clipped_normal_moments(nk_mu(g, p_new), nk_sigma(g, p_new), 0.1 - g, 100.0 - g)
        assert_mean(dg, m_exp, sigma=s_exp, what=f"ΔG at G={g}, P={p}")
        assert_std(dg, s_exp, what=f"ΔG at G={g}, P={p}")


def test_nandakumar_clipping_bounds_and_pulse_history():
    m = device_models.get("pcm-nandakumar2018")
    s = m.init_state((N,), device=DEV, generator=gen())
    g = gen(1)
    for k in range(1, 31):
        m.set_pulse(s, ones(N), float(k), g)
        assert float(s.g_us.min()) >= 0.1 and float(s.g_us.max()) <= 12.0
        if k == 1:
            assert float((s.g_us == 0.1).float().mean()) > 0.05  # the lower clip binds after a RESET
    assert torch.allclose(s.aux, torch.tensor(math.exp(-30 / A_PULSES)), rtol=1e-4)
    assert float((s.g_us == 12.0).float().mean()) > 0.05  # G_max binds after 30 pulses
    assert torch.all(s.pulse_count == 30) and torch.all(s.t_prog_s == 30.0)


def test_nandakumar_set_pulses_matches_rounds():
    m = device_models.get("pcm-nandakumar2018")
    s = m.init_state((N,), device=DEV, generator=gen())
    n = torch.randint(0, 12, (N,), generator=gen(2))
    n[:10] = 0
    g_before = s.g_us.clone()
    m.set_pulses(s, n, 3.0, gen(4))
    assert torch.equal(s.pulse_count, n.to(torch.int32))
    assert torch.allclose(s.aux, torch.exp(-n.float() / A_PULSES), rtol=1e-4)
    assert torch.equal(s.g_us[n == 0], g_before[n == 0])
    # the mean after k pulses equals the one of k full-mask rounds
    ref = m.init_state((N,), device=DEV, generator=gen())
    g = gen(5)
    for _ in range(5):
        m.set_pulse(ref, ones(N), 3.0, g)
    sel = n == 5
    assert abs(float(s.g_us[sel].mean()) - float(ref.g_us.mean())) < 5 * float(ref.g_us.std()) / math.sqrt(sel.sum())


def test_nandakumar_programming_curve_matches_paper_inverse():
    """G_max = 20 µS reproduces the paper's mean programming curve, whose inverse the paper and
    xbar.py fit as n(G) ≈ 0.027G³ − 0.15G² + 0.81G: within 10 % in G over pulses 2..20 (the fit is
    approximate; the model's first pulse lands above it)."""

    def g_paper(k: float) -> float:
        lo, hi = 0.0, 20.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if 0.027 * mid**3 - 0.15 * mid**2 + 0.81 * mid < k else (lo, mid)
        return lo

    m = device_models.get("pcm-nandakumar2018-20us")
    s = m.init_state((N // 2,), device=DEV, generator=gen())
    g = gen(1)
    for k in range(1, 21):
        m.set_pulse(s, ones(N // 2), 0.0, g)
        if k >= 2:
            gm, gp = float(s.g_us.mean()), g_paper(k)
            assert abs(gm - gp) < 0.1 * gp, (k, gm, gp)


def test_nandakumar_drift_law_and_no_drift_before_t0():
    m = device_models.get("pcm-nandakumar2018", nu_std=0.0)
    s = m.init_state((1000,), device=DEV, generator=gen())
    s.g_us.uniform_(1.0, 10.0, generator=gen(1))
    s.t_prog_s.fill_(100.0)
    for dt in (0.0, 1.0, 38.6):
        assert torch.equal(m.drifted(s, 100.0 + dt), s.g_us)
    ts = torch.logspace(2, 7, 12, dtype=torch.float64)
    logg = torch.stack([m.drifted(s, 100.0 + float(t)).double().log() for t in ts])  # [T, N]
    x = (ts / 38.6).log()
    slope = ((x - x.mean())[:, None] * (logg - logg.mean(0))).sum(0) / ((x - x.mean()) ** 2).sum()
    assert torch.allclose(slope, torch.full_like(slope, -0.04), atol=2e-4)
    # intercept: log G at t − t_p = T0 is the programmed G
    icpt = logg.mean(0) - slope * x.mean()
    assert torch.allclose(icpt.exp(), s.g_us.double(), rtol=1e-3)


def test_nandakumar_nu_spread():
    m = device_models.get("pcm-nandakumar2018", nu=0.05, nu_std=0.01)
    s = m.init_state((N,), device=DEV, generator=gen())
    assert_mean(s.nu, 0.05, what="ν")
    assert_std(s.nu, 0.01, what="ν")
    g = m.drifted(s, 38.6 * 1000)
    nu_fit = -(g / s.g_us).double().log() / math.log(1000)
    assert torch.allclose(nu_fit, s.nu.double(), atol=1e-4)


def test_nandakumar_read_noise_law():
    m = device_models.get("pcm-nandakumar2018", clip_reads=False)
    levels = torch.tensor([0.5, 2.0, 5.0, 8.0, 11.5])
    n = N // levels.numel()
    s = DeviceState.empty((levels.numel(), n), DEV)
    s.g_us.copy_(levels[:, None].expand(-1, n))
    s.nu.fill_(0.04)
    t = 38.6 * 100  # G(t) = G·100^(−0.04)
    r = m.read(s, t, gen(2))
    gt = levels * 100 ** (-0.04)
    sig = 0.03 * gt + 0.13
    for i in range(levels.numel()):
        assert_mean(r[i], gt[i], sigma=sig[i], what=f"read at G={levels[i]}")
        assert_std(r[i], float(sig[i]), what=f"read at G={levels[i]}")
    assert torch.allclose(m.read_noise_std(s, t)[:, 0], sig, rtol=1e-5)
    # clipped reads stay in [0.1, G_max]
    r = device_models.get("pcm-nandakumar2018").read(s, t, gen(3))
    assert float(r.min()) >= 0.1 and float(r.max()) <= 12.0


def test_nandakumar_program_and_verify():
    m = device_models.get("pcm-nandakumar2018")
    n = 100_000
    s = m.init_state((n,), device=DEV, generator=gen())
    target = torch.rand(n, generator=gen(1)) * 11.0
    target[:100] = 11.9  # out of reach (window beyond G_max − tol is partly unreachable)
    rep = m.program(s, target, 50.0, gen(2))
    assert rep.pulses.dtype == torch.int32 and int(rep.pulses.max()) <= 50 and int(rep.pulses.min()) >= 1
    assert torch.equal(s.pulse_count, rep.pulses)
    assert torch.all(s.t_prog_s == 50.0)
    assert float(rep.verified.float().mean()) > 0.97
    # verified devices lie within tolerance up to the read noise of the accepting read
    err = rep.error_us[rep.verified]
    assert float(err.abs().mean()) < 0.5
    assert float(rep.converged.float().mean()) > 0.6
    assert torch.equal(rep.error_us, s.g_us - target)
    # tighter tolerance and budget
    rep2 = m.program(s, target, 60.0, gen(3), tolerance_us=0.2, max_pulses=5)
    assert int(rep2.pulses.max()) <= 5
    assert float(rep2.verified.float().mean()) < float(rep.verified.float().mean())


def test_nandakumar_mean_set_increment():
    m = device_models.get("pcm-nandakumar2018")
    assert m.mean_set_increment_us() == pytest.approx(0.880 - 0.084 * 0.1)
    assert m.mean_set_increment_us(1.5476) == pytest.approx(0.75, abs=1e-3)
    assert m.mean_set_increment_us(torch.tensor([1.0, 3.0])) == pytest.approx(0.880 - 0.084 * 2.0)


# ---------------------------------------------------------------------------------------------
# pcm-joshi2020 (PCM-MODELS.md §2 = aihwkit PCMLikeNoiseModel)
# ---------------------------------------------------------------------------------------------
GMAX_J = 25.0
TARGETS_J = [0.0, 2.0, 8.0, 15.0, 25.0]


def j_sigma_prog(gt):
    gh = gt / GMAX_J
    return (0.26348 + 1.9650 * gh - 1.1731 * gh**2) * GMAX_J / 25.0


def j_nu_params(gt):
    gh = max(gt / GMAX_J, 1e-7)
    mu = min(max(-0.0155 * math.log(gh) + 0.0244, 0.049), 0.1)
    sd = min(max(-0.0125 * math.log(gh) - 0.0059, 0.008), 0.045)
    return mu, sd


def folded_normal(mu, sd):
    """Mean and std of |N(mu, sd)|."""
    phi = 0.5 * (1 + math.erf(-mu / (sd * math.sqrt(2))))
    m = sd * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * sd * sd)) + mu * (1 - 2 * phi)
    return m, math.sqrt(mu * mu + sd * sd - m * m)


def j_q_s(gp):
    return min(0.0088 / max((abs(gp) / GMAX_J) ** 0.65, 1e-3), 0.2)


def programmed_joshi(n_per: int, seed: int = 0, model=None):
    m = model or device_models.get("pcm-joshi2020")
    tgt = torch.cat([torch.full((n_per,), t) for t in TARGETS_J])
    s = m.init_state((tgt.numel(),), device=DEV, generator=gen(seed))
    rep = m.program(s, tgt, 0.0, gen(seed + 1))
    return m, s, tgt, rep


def test_joshi_programming_noise():
    n = 60_000
    m, s, tgt, rep = programmed_joshi(n)
    assert torch.all(rep.pulses == 1) and torch.all(rep.converged)
    assert float(s.g_us.min()) >= 0.0
    for k, t in enumerate(TARGETS_J):
        g = s.g_us[k * n:(k + 1) * n]
        sig = j_sigma_prog(t)
        if t == 0.0:  # max(0, σξ): half the devices at exactly 0, the rest half-normal
            assert abs(float((g == 0).float().mean()) - 0.5) < 0.01
            assert_mean(g, sig / math.sqrt(2 * math.pi), sigma=sig, what="G_prog at 0")
            continue
        assert_mean(g, t, sigma=sig, what=f"G_prog at {t}")
        assert_std(g, sig, what=f"G_prog at {t}")
        assert torch.allclose(m.prog_noise_std(torch.tensor(t)), torch.tensor(sig))


def test_joshi_nu_distribution():
    n = 60_000
    m, s, tgt, _ = programmed_joshi(n, seed=4)
    for k, t in enumerate(TARGETS_J):
        mu, sd = j_nu_params(t)
        fm, fs = folded_normal(mu, sd)
        nu = s.nu[k * n:(k + 1) * n]
        assert float(nu.min()) >= 0.0
        assert_mean(nu, fm, sigma=fs, what=f"ν at {t}")
        assert_std(nu, fs, what=f"ν at {t}")


def test_joshi_drift_law():
    n = 20_000
    m, s, tgt, _ = programmed_joshi(n, seed=6)
    alive = s.g_us > 0
    ti = torch.tensor([1.0, 60.0, 3600.0, 86400.0, 3.156e7], dtype=torch.float64)
    logg = torch.stack([m.drifted(s, float(t)).double()[alive].log() for t in ti])
    x = ((ti + 20.0) / 20.0).log()
    slope = ((x - x.mean())[:, None] * (logg - logg.mean(0))).sum(0) / ((x - x.mean()) ** 2).sum()
    assert torch.allclose(-slope, s.nu.double()[alive], atol=2e-4)
    assert torch.equal(m.drifted(s, 0.0), s.g_us)  # t_inference = 0: no drift yet


@pytest.mark.parametrize("t_inf", [3600.0, 86400.0 * 30])
def test_joshi_read_noise_law(t_inf):
    n = 40_000
    m, s, tgt, _ = programmed_joshi(n, seed=8)
    s.nu.fill_(0.05)  # a single ν per run keeps G_drift a known function of G_prog
    gd = s.g_us.double() * ((t_inf + 20.0) / 20.0) ** -0.05
    qs = torch.tensor([j_q_s(float(g)) for g in s.g_us[::97]], dtype=torch.float64)
    growth = math.sqrt(math.log((t_inf + 20.0 + 250e-9) / (2 * 250e-9)))
    sig_expected = gd[::97].abs() * qs * growth
    sig_model = m.read_noise_std(s, t_inf)[::97].double()
    assert torch.allclose(sig_model, sig_expected, rtol=1e-4, atol=1e-7)
    r = m.read(s, t_inf, gen(9)).double()
    assert float(r.min()) >= 0.0
    for k, t in enumerate(TARGETS_J[2:], start=2):  # far from the clamp at 0
        sl = slice(k * n, (k + 1) * n)
        z = (r[sl] - gd[sl]) / (gd[sl] * growth * torch.tensor([j_q_s(float(g)) for g in s.g_us[sl]]).double())
        assert_mean(z, 0.0, sigma=1.0, what=f"read z at {t}")
        assert_std(z, 1.0, what=f"read z at {t}")


def test_joshi_set_and_reset_stand_ins():
    m = device_models.get("pcm-joshi2020")
    s = m.init_state((N,), device=DEV, generator=gen())
    assert torch.all(s.g_us == 0)
    m.set_pulse(s, ones(N), 1.0, gen(1))
    # target 1 µS: mean 1, σ_prog(1 µS)
    assert_mean(s.g_us, 1.0, sigma=j_sigma_prog(1.0), what="SET stand-in")
    assert m.mean_set_increment_us() == 1.0
    m.reset(s, ones(N), 2.0, gen(2))
    assert torch.all(s.g_us == 0) and torch.all(s.pulse_count == 2)


# ---------------------------------------------------------------------------------------------
# pcm-aihwkit-preset (PCM-MODELS.md §3; aihwkit ExpStep semantics)
# ---------------------------------------------------------------------------------------------
def test_preset_device_to_device_factors():
    m = device_models.get("pcm-aihwkit-preset")
    s = m.init_state((N,), device=DEV, generator=gen())
    mb, su, rb = m.max_bound(s), m.scale_up(s), m.reset_bias(s)
    assert_mean(mb, 2.0, what="max_bound")
    assert_std(mb, 0.2, what="max_bound")
    assert_mean(rb, 0.01, what="reset_bias")
    assert_std(rb, 0.02, what="reset_bias")
    sd = math.hypot(0.2, 0.05)  # gain (dw_min_dtod) and up/down asymmetry (up_down_dtod) add up
    assert_mean(su, 0.01, sigma=0.01 * sd, what="scale_up")
    assert_std(su, 0.01 * sd, what="scale_up")
    c = torch.corrcoef(torch.stack([mb, su, rb]).double())
    assert float((c - torch.eye(3, dtype=torch.float64)).abs().max()) < 0.02
    # factors are a function of the stored key only
    sub = s.index(slice(100, 200))
    assert torch.equal(m.scale_up(sub.clone()), su[100:200])
    assert torch.equal(m.min_bound(s), torch.zeros_like(mb))


def preset_step_expected(w, mb, su):
    z = -2.0 * w / mb  # a = -1, b = 0, min_bound = 0
    dw = (1.0 + 27.235 * torch.exp(2.5 * z)).clamp(min=0) * su
    std = 0.6 * (dw.abs() + 0.042 + 0.108 * w.abs())
    return dw, std


@pytest.mark.parametrize("w0", [0.5, 0.8, 1.2])
def test_preset_update_law(w0):
    m = device_models.get("pcm-aihwkit-preset")
    s = m.init_state((N,), device=DEV, generator=gen())
    s.g_us.fill_(w0 * 25.0 / 2.0)
    w = s.g_us.double() * 2.0 / 25.0
    m.set_pulse(s, ones(N), 1.0, gen(1))
    mb, su = m.max_bound(s).double(), m.scale_up(s).double()
    dw, std = preset_step_expected(w, mb, su)
    w_new = s.g_us.double() * 2.0 / 25.0
    # devices whose bounds are ≥ 4.5σ away (chosen by their parameters, not by the outcome)
    inside = (w + dw - 4.5 * std > 0) & (w + dw + 4.5 * std < mb)
    assert float(inside.double().mean()) > 0.5
    z = ((w_new - w - dw) / std)[inside]
    assert_mean(z, 0.0, sigma=1.0, what="standardised step")
    assert_std(z, 1.0, k=6, what="standardised step")
    assert float((w_new <= mb + 1e-6).double().mean()) == 1.0 and float(w_new.min()) >= 0.0


def test_preset_reset_distribution():
    m = device_models.get("pcm-aihwkit-preset")
    s = m.init_state((N,), device=DEV, generator=gen())
    rb = m.reset_bias(s).double()
    w = s.g_us.double() * 2.0 / 25.0
    assert float(w.min()) >= 0.0
    far = rb > 0.06  # clip at 0 is 5σ away
    z = (w[far] - rb[far]) / 0.01
    assert_mean(z, 0.0, sigma=1.0, what="reset")
    assert_std(z, 1.0, what="reset")
    assert float((w == 0).double().mean()) > 0.2  # reset_bias < 0 for ≈ 31 %: clipped at w_min = 0


def test_preset_mean_set_increment():
    m = device_models.get("pcm-aihwkit-preset")
    assert m.mean_set_increment_us() == pytest.approx(0.01 * (1 + 27.235 * math.exp(-2.5 * 0.01)) * 12.5)
    assert m.mean_set_increment_us(12.5) == pytest.approx(0.01 * (1 + 27.235 * math.exp(-2.5)) * 12.5)


# ---------------------------------------------------------------------------------------------
# empirical
# ---------------------------------------------------------------------------------------------
def test_empirical_default_tables_set_and_reset():
    m = device_models.get("empirical", g_max_us=100.0)
    s = m.init_state((N,), device=DEV, generator=gen())
    assert_mean(s.g_us, 0.1, k=6, what="RESET")
    assert abs(float(s.g_us.std()) - 0.01) < 0.001
    s.g_us.fill_(5.1)  # a table point: mean 0.88 − 0.084·5.1, std 0.26 + 0.091·5.1
    m.set_pulse(s, ones(N), 1.0, gen(1))
    dg = s.g_us - 5.1
    assert_mean(dg, 0.88 - 0.084 * 5.1, sigma=0.26 + 0.091 * 5.1, what="ΔG")
    assert_std(dg, 0.26 + 0.091 * 5.1, what="ΔG")
    s.g_us.fill_(5.35)  # between two table points: linear interpolation
    mean, std = m.increment_stats(s.g_us[:1])
    assert float(mean) == pytest.approx(0.88 - 0.084 * 5.35, abs=1e-5)
    assert float(std) == pytest.approx(0.26 + 0.091 * 5.35, abs=1e-5)


def test_empirical_multiplicative_cycle_to_cycle_law():
    """``c2c_rel_std`` κ: the step's std is S(G) + κ·|the device's mean step| (its factor included),
    so it shrinks with the mean step; N = 200,000 steps give the std to 0.16 % (5 se ≈ 0.8 %), far
    below the 18 % a κ off by 0.05 would move it at G = 5.1."""
    n_tab = len(device_models.get("empirical").params.dg_mean_us)
    m = device_models.get("empirical", c2c_rel_std=0.4, dg_std_us=(0.05,) * n_tab)
    s = m.init_state((N,), device=DEV, generator=gen())
    s.g_us.fill_(5.1)  # a table point: mean 0.88 − 0.084·5.1
    m.set_pulse(s, ones(N), 1.0, gen(1))
    mean = 0.88 - 0.084 * 5.1
    assert_mean(s.g_us - 5.1, mean, what="ΔG")
    assert_std(s.g_us - 5.1, 0.05 + 0.4 * mean, what="ΔG (multiplicative)")
    assert float(m.increment_stats(torch.tensor([5.1]))[1]) == pytest.approx(0.05 + 0.4 * mean, abs=1e-5)
    # with a device factor the cycle-to-cycle part follows each device's own mean step
    md = device_models.get("empirical", c2c_rel_std=0.4, dg_std_us=(0.05,) * n_tab, d2d_rel_std=0.2)
    s = md.init_state((N,), device=DEV, generator=gen(2))
    f = 1.0 + 0.2 * torch.special.ndtri(s.aux - s.aux.floor()).double()
    s.g_us.fill_(5.1)
    md.set_pulse(s, ones(N), 1.0, gen(3))
    z = (s.g_us.double() - 5.1 - f * mean) / (0.05 + 0.4 * f.abs() * mean)
    assert_std(z, 1.0, what="ΔG standardised by the device's own std")


def test_empirical_log_normal_cycle_to_cycle_shape():
    """``c2c_shape`` "lognormal": the step is ``m·L + S·ξ``, ``L = exp(σ·η − σ²/2)`` with ``σ² = log(1 +
    κ²)`` (mean 1, std κ) and ``ξ`` independent: std ``√(S² + κ²·m²)``, and skewed by ``κ³·m³·(3 + κ²)·κ``
    over std³ (the log-normal's third cumulant). At G = 5.1 (m = 0.4516 µS), κ 0.36, S 0.05 µS: std
    0.1701 µS, skew 0.984 (N = 200,000: the std to 0.16 % and the skew to ±0.05; a κ of 0.34 moves the
    std 5.1 %, 30 se), where the normal shape's steps are symmetric."""
    n_tab = len(device_models.get("empirical").params.dg_mean_us)
    mean, kappa, s_us = 0.88 - 0.084 * 5.1, 0.36, 0.05
    m = device_models.get("empirical", c2c_rel_std=kappa, dg_std_us=(s_us,) * n_tab, c2c_shape="lognormal")
    s = m.init_state((N,), device=DEV, generator=gen(4))
    s.g_us.fill_(5.1)  # a table point
    m.set_pulse(s, ones(N), 1.0, gen(5))
    dg = (s.g_us - 5.1).double()
    std = math.sqrt(s_us ** 2 + (kappa * mean) ** 2)
    assert_mean(dg, mean, sigma=std, what="ΔG")
    assert_std(dg, std, what="ΔG (log-normal multiplicative part)")
    skew = float(((dg - dg.mean()) ** 3).mean() / dg.std() ** 3)
    assert skew == pytest.approx((3.0 + kappa ** 2) * kappa * (kappa * mean) ** 3 / std ** 3, abs=0.05)
    assert float(m.increment_stats(torch.tensor([5.1]))[1]) == pytest.approx(std, abs=1e-5)
    with pytest.raises(device_models.DeviceParameterError, match="c2c_shape='gamma' is invalid"):
        device_models.get("empirical", c2c_shape="gamma")


@pytest.mark.parametrize("tail", ["hold", "linear"])
def test_empirical_mean_step_above_the_tables(tail):
    """``dg_mean_above``: above the top table point (11.6 µS of the placeholder, whose mean step is
    ``0.88 − 0.084·G``) the mean step is the top point's, −0.0944 µS ("hold"), or the top segment
    continued, ``0.88 − 0.084·14`` = −0.296 µS at 14 µS ("linear"); the std is the top point's,
    ``0.26 + 0.091·11.6`` = 1.3156 µS, either way (N = 200,000: the mean to ±0.015 µS at 5 se, the two
    tails 0.2 µS apart)."""
    m = device_models.get("empirical", set_max_us=30.0, dg_mean_above=tail)
    s = m.init_state((N,), device=DEV, generator=gen(8))
    s.g_us.fill_(14.0)
    m.set_pulse(s, ones(N), 1.0, gen(9))
    dg = (s.g_us - 14.0).double()
    mean, std = (0.88 - 0.084 * 11.6) if tail == "hold" else (0.88 - 0.084 * 14.0), 0.26 + 0.091 * 11.6
    assert_mean(dg, mean, sigma=std, what=f"ΔG above the tables ({tail})")
    assert_std(dg, std, what=f"ΔG above the tables ({tail})")
    with pytest.raises(device_models.DeviceParameterError, match="dg_mean_above='cubic' is invalid"):
        device_models.get("empirical", dg_mean_above="cubic")


@pytest.mark.parametrize("law", ["normal", "lognormal"])
def test_empirical_device_factor_law(law):
    """``d2d_law``: each device's factor on its mean step has mean 1 and std ``d2d_rel_std`` under both
    laws; "lognormal" is ``exp(σ·z − σ²/2)``, ``σ² = log(1 + 0.3²)``, so log f is normal with mean
    −σ²/2 = −0.0431 and std σ = 0.2936 (N = 200,000 devices: the std to 0.16 %, 5 se ≈ 0.0023 µS/µS, so
    σ = 0.3 fails), and skewed by (e^{σ²} + 2)·√(e^{σ²} − 1) = 0.927 where the normal law has none."""
    n_tab = len(device_models.get("empirical").params.dg_mean_us)
    m = device_models.get("empirical", dg_std_us=(0.0,) * n_tab, d2d_rel_std=0.3, d2d_law=law)
    s = m.init_state((N,), device=DEV, generator=gen(6))
    s.g_us.fill_(5.1)  # a table point: mean 0.88 − 0.084·5.1
    m.set_pulse(s, ones(N), 1.0, gen(7))
    f = (s.g_us.double() - 5.1) / (0.88 - 0.084 * 5.1)
    assert_mean(f, 1.0, what="device factor")
    skew = float(((f - f.mean()) ** 3).mean() / f.std() ** 3)
    if law == "normal":
        assert_std(f, 0.3, what="device factor")
        assert abs(skew) < 0.03, skew  # (5 se)
        return
    assert abs(float(f.std()) - 0.3) < 0.004, float(f.std())  # (a log-normal std's se is ~1.4× the normal's)
    sigma2 = math.log(1.0 + 0.09)
    assert skew == pytest.approx((math.exp(sigma2) + 2.0) * math.sqrt(math.expm1(sigma2)), abs=0.05)
    assert_mean(f.log(), -sigma2 / 2, what="log of the log-normal factor")
    assert_std(f.log(), math.sqrt(sigma2), what="log of the log-normal factor")
    with pytest.raises(device_models.DeviceParameterError, match="d2d_law='gamma' is invalid"):
        device_models.get("empirical", d2d_law="gamma")


def test_empirical_clip_per_device():
    """``g_max_rel_std``: each device's SET results are clipped at its own ``g_max·(1 + σ_c·z_c)``,
    ``z_c`` normal, independent of the device's factor and kept across RESETs. Steps of 3 µS bring
    every device to its clip within 25 pulses (the slowest factor, 1 − 0.2·3.8, too); N = 200,000
    devices give the clips' std to 0.16 % (5 se ≈ 0.8 %: a σ_c of 0.095 instead of 0.1 fails) and
    their correlation with the factor to ±0.011."""
    n_tab = len(device_models.get("empirical").params.dg_mean_us)
    m = device_models.get("empirical", dg_mean_us=(3.0,) * n_tab, dg_std_us=(0.05,) * n_tab, g_max_us=10.0,
                          g_max_rel_std=0.1, d2d_rel_std=0.2)
    s = m.init_state((N,), device=DEV, generator=gen(4))
    z_d = torch.special.ndtri(s.aux - s.aux.floor()).double()
    g = gen(5)
    for _ in range(25):
        m.set_pulse(s, ones(N), 0.0, g)
    clip = s.g_us.double().clone()
    assert_mean(clip, 10.0, sigma=1.0, what="clip")
    assert_std(clip, 1.0, what="clip")
    assert abs(float((clip < 10.0 * (1.0 - 0.1 * 1.6449)).double().mean()) - 0.05) < 5 * math.sqrt(0.05 * 0.95 / N)
    r = float(torch.corrcoef(torch.stack([clip, z_d]))[0, 1])
    assert abs(r) < 5 / math.sqrt(N), r
    assert abs(float(torch.special.ndtri(s.aux - s.aux.floor()).double().std()) - 1.0) < 5 / math.sqrt(2 * N)
    m.reset(s, None, 1.0, g)  # the device keeps its clip across a RESET
    for _ in range(25):
        m.set_pulse(s, ones(N), 1.0, g)
    assert torch.equal(s.g_us.double(), clip)


def test_empirical_round_trip_recovers_nandakumar_curve(tmp_path: Path):
    nk = device_models.get("pcm-nandakumar2018")
    # small (100 devices × 10 pulses): the fit is the state-space one of `pcmsim device fit`
    csv_path = write_pulse_response_csv(nk, tmp_path / "nk.csv", n_devices=100, n_pulses=10, seed=3)
    emp = device_models.get("empirical", csv_path=str(csv_path), n_bins=6)
    assert emp.params.csv_path == str(csv_path)
    assert emp.g_max_us == pytest.approx(12.0, abs=1e-3)
    # its mean programming curve follows the generating model's
    n = 100_000
    a = nk.init_state((n,), device=DEV, generator=gen(10))
    b = emp.init_state((n,), device=DEV, generator=gen(11))
    assert abs(float(b.g_us.mean()) - float(a.g_us.mean())) < 0.004  # 5 se of 150 RESET reads of std 0.01
    ga, gb = gen(12), gen(13)
    for k in range(1, 11):
        nk.set_pulse(a, ones(n), 0.0, ga)
        emp.set_pulse(b, ones(n), 0.0, gb)
        ma, mb = float(a.g_us.mean()), float(b.g_us.mean())
        assert abs(ma - mb) < 0.06 * ma + 0.1, (k, ma, mb)
    # the mean-increment curve: fitted table vs the generating model's increments at P ≈ 0
    g_hi = torch.tensor([5.0, 6.0, 7.0])
    mean_fit, _ = emp.increment_stats(g_hi)
    assert torch.all(mean_fit < nk_mu(g_hi, 0.2)) and torch.all(mean_fit > nk_mu(g_hi, 0.0) - 0.5)


CSV_CASES = [  # the one pulse-response reader's messages (device_models.measurements.read_pulse_csv)
    ("device,pulse\n0,0\n", "nope.csv:1: header .* lacks column\\(s\\) g_us"),
    ("device,pulse,g_us\n0,0,0.1\n0,x,0.2\n", ":3: field 'pulse' = 'x' is not an integer; expected an integer"),
    ("device,pulse,g_us\n0,0,0.1\n0,1,abc\n", ":3: field 'g' = 'abc' is not a number; expected a finite conductance"),
    ("device,pulse,g_us\n0,0,0.1\n0,1,-1\n", ":3: negative conductance '-1'"),
    ("device,pulse,g_us\n0,0,0.1\n0,1,nan\n", ":3: field 'g' = 'nan'"),
    ("device,pulse,g_us\n0,0,0.1\n0,0,0.2\n", ":2: device '0' has one point \\(pulse 0 only\\)"),
    ("device,pulse,g_us\n0,0,0.1\n0,2,0.2\n", ":3: device '0' pulse 2 follows pulse 0; expected pulse 1"),
    ("device,pulse,g_us\n0,0,0.1\n0,1\n", ":3: 2 field\\(s\\); expected at least 3"),
    ("device,pulse,g_us\n0,0,0.1\n0,1,0.2\n", "1 device\\(s\\) with SET pulses: too few devices"),
    ("", "nope.csv:1: empty file"),
]


@pytest.mark.parametrize("text,pattern", CSV_CASES)
def test_empirical_bad_csv_one_line_errors(tmp_path: Path, text, pattern):
    p = tmp_path / "nope.csv"
    p.write_text(text)
    with pytest.raises(CSVFormatError, match=pattern) as exc:
        EmpiricalDevice.from_csv(p)
    assert "\n" not in str(exc.value)


def test_empirical_missing_file(tmp_path: Path):
    with pytest.raises(CSVFormatError, match="no such file"):
        device_models.get("empirical", csv_path=str(tmp_path / "absent.csv"))


def test_empirical_drift_and_read_noise_parameters():
    m = device_models.get("empirical", nu=0.05, t0_s=10.0, read_noise_std_us=0.1, read_noise_rel=0.02)
    s = m.init_state((N,), device=DEV, generator=gen())
    s.g_us.fill_(4.0)
    t = 10.0 * 1000
    gd = 4.0 * 1000 ** -0.05
    assert torch.allclose(m.drifted(s, t), torch.tensor(gd))
    r = m.read(s, t, gen(1))
    assert_std(r, 0.02 * gd + 0.1, what="empirical read")
    assert torch.equal(device_models.get("empirical").drifted(s, t), s.g_us)


# ---------------------------------------------------------------------------------------------
# plots and the CLI sub-command
# ---------------------------------------------------------------------------------------------
def test_plot_device_model_writes_five_files_per_model(tmp_path: Path):
    from pcmsim.plots.devices import plot_device_model

    for name in ALL:
        out = tmp_path / name
        paths = plot_device_model(device_models.get(name), out, n_devices=300, seed=1)
        assert len(paths) == 5 and len(set(paths)) == 5
        for p in paths:
            assert p.parent == out
            assert_figure(p)
        assert not list(out.glob("*.tmp"))


def test_device_command_list_and_plot(tmp_path: Path, capsys):
    import argparse

    from hardware_in_loop.cli import device as device_cmd

    parser = argparse.ArgumentParser(prog="pcmsim")
    device_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["device", "list"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for name in ALL:
        assert name in out
    args = parser.parse_args(["device", "plot", "pcm-joshi2020", "--out", str(tmp_path), "--n-devices", "200",
                              "--format", "pdf", "--seed", "3", "--set", "g_max_us=20"])
    assert args.func(args) == 0
    pdfs = sorted(tmp_path.glob("*.pdf"))
    assert len(pdfs) == 5 and all(p.read_bytes()[:4] == b"%PDF" for p in pdfs)
    args = parser.parse_args(["device", "plot", "pcm-joshi2020", "--out", str(tmp_path), "--set", "g_max_us=-1"])
    with pytest.raises(DeviceParameterError, match="g_max_us"):
        args.func(args)


def test_params_are_frozen_and_documented():
    for name in [n for n in ALL if n != "ideal"]:
        m = device_models.get(name)
        assert dataclasses.is_dataclass(m.params)
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.params.g_max_us = 1.0  # type: ignore[misc]
        assert type(m).__doc__ and type(m.params).__doc__


# ---------------------------------------------------------------------------------------------
# the parallel normal generator behind the SET pulse
# ---------------------------------------------------------------------------------------------
def test_fill_normal_is_normal_and_independent_of_thread_count():
    from device_models.sampling import NORMAL_CHUNK, fill_normal_

    n = 3 * NORMAL_CHUNK + 5
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = fill_normal_(torch.empty(n), gen(11))
        torch.set_num_threads(2)
        b = fill_normal_(torch.empty(n), gen(11))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a, b)
    assert_mean(a, 0.0, sigma=1.0, what="fill_normal_")
    assert_std(a, 1.0, what="fill_normal_")
    blocks = a[: 3 * NORMAL_CHUNK].view(3, NORMAL_CHUNK).double()
    c = torch.corrcoef(blocks)
    assert float((c - torch.eye(3, dtype=torch.float64)).abs().max()) < 5 / math.sqrt(NORMAL_CHUNK)
    small = fill_normal_(torch.empty(1000), gen(3))
    assert torch.equal(small, torch.empty(1000).normal_(generator=gen(3)))  # small tensors: plain normal_
