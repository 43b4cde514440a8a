"""Mixed precision on ``pcm-aihwkit-preset`` against aihwkit's own C++ simulator.

aihwkit's side is ``DigitalRankUpdateRPUConfig(device=MixedPrecisionCompound(device=PCMPresetUnitCell()))``
(the device of aihwkit's ``MixedPrecisionPCMPreset``); pcmsim's is an
:class:`pcmsim.analog.AnalogLinear` on ``pcm-aihwkit-preset`` trained by
:class:`hardware_in_loop.updater.HardwareInTheLoop` with ``mixed-precision`` and torch's SGD.

- The granularity ε: aihwkit's (read back from the C++ device) equals the model's.
- The refresh rule: pairs set on both sides of the thresholds, one update with nothing to transfer
  (aihwkit checks its refresh after every transfer); aihwkit and pcmsim refresh the same pairs.
- Training: a linear layer 8 → 4 (no bias) learns a fixed teacher ``W*`` by online SGD (one
  sample x ~ N(0, I) per step, loss ``Σ (y − x W*ᵀ)²/4``, learning rate 0.02, 300 steps) from
  W = 0, on the same data, over SEEDS independent layers per simulator. Statistics, each compared
  as the difference of the two means over seeds in standard errors of that difference (fail beyond
  K_SE): every 20 steps the population loss ``‖W − W*‖²/4`` and the mean device conductance (the
  count of pulses fired: the statistic that sees a wrong ε, ±10 % already); at the end the mean of
  W and the spread of ``W − W*`` per layer, and the spread of the device conductances. A control:
  pcmsim with the old ε (the mean SET step at the RESET level, 8.5 × aihwkit's) must be rejected.

What differs between the two setups, and why it is fine here:

- Pulses per transfer: aihwkit turns ``n = trunc(χ/ε)`` into stochastic pulse trains (update
  management, at most ``desired_bl`` = 31 per update: ``Binomial(N, |n|/N)`` pulses with N the
  largest |n| of the row), pcmsim fires exactly ``n = ⌊|χ|/ε⌋`` (``max_pulses_per_step`` = 31
  here): the same mean.
- aihwkit's transfer counter skips the first sample (its first transfer carries samples 1 and 2);
  pcmsim transfers after every step.
- Refresh: the same rule after every update, decided on noise-free reads (aihwkit's
  ``refresh_forward`` is made perfect here; pcmsim reads the devices' conductances); aihwkit
  rewrites the difference open loop (a pulsed update of up to 31 pulses), pcmsim by
  program-and-verify. In these 300 steps refreshes are rare (asserted: fewer than one per layer);
  when they become frequent (from about step 600) the curves part: measured over 200 seeds at
  step 1000, loss 0.143 (aihwkit) against 0.113 (pcmsim), mean device weight 0.966 against 0.920.
- Periphery: aihwkit's forward and backward are made perfect; pcmsim's periphery is ideal and has
  no read noise (the preset device has none). Both start with every device at w = 0 exactly
  (aihwkit ``set_weights``; pcmsim sets the conductances rather than RESETting).
- aihwkit draws cycle-to-cycle noise from a fixed table of normals per tile (see
  ``test_devices_aihwkit.py``), so every aihwkit layer is its own tile. pcmsim's layers are the
  SEEDS diagonal blocks of one AnalogLinear of SEEDS·4 outputs: each sample goes through every
  block and the loss keeps the diagonal, so each block's gradient, χ, pulses and refreshes are
  those of its own layer (independent devices, one generator).
- aihwkit's C++ random generator is not seeded from torch: its side differs from run to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

import device_models

pytestmark = pytest.mark.aihwkit

aihwkit = pytest.importorskip("aihwkit", reason="aihwkit is not installed (scripts/setup.sh installs it)")

IN, OUT = 8, 4
SEEDS = 200
STEPS = 300
LR = 0.02
EVERY = 20  # steps between the compared statistics
K_SE = 5.0  # tolerance in standard errors of a difference of means
MAX_PULSES = 31  # aihwkit's desired_bl: the most pulses of one transfer
W_STAR = torch.rand(OUT, IN, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.6  # the teacher
X = torch.randn(SEEDS, STEPS, IN, generator=torch.Generator().manual_seed(1))  # the same data for both


def _rpu_config(perfect_refresh_read: bool = True):
    """aihwkit's mixed precision over PCMPresetUnitCell, with perfect forward/backward (and refresh read)."""
    from aihwkit.simulator.configs import DigitalRankUpdateRPUConfig
    from aihwkit.simulator.configs.compounds import MixedPrecisionCompound
    from aihwkit.simulator.presets.compounds import PCMPresetUnitCell

    cell = PCMPresetUnitCell()
    if perfect_refresh_read:
        cell.refresh_forward.is_perfect = True
    cfg = DigitalRankUpdateRPUConfig(device=MixedPrecisionCompound(device=cell))
    cfg.forward.is_perfect = True
    cfg.backward.is_perfect = True
    return cfg


def _tile(out: int = OUT, inp: int = IN):
    from aihwkit.simulator.tiles import AnalogTile

    tile = AnalogTile(out, inp, _rpu_config())
    tile.set_learning_rate(LR)
    tile.set_weights(torch.zeros(out, inp))
    return tile


@pytest.fixture(scope="module")
def simulator_works() -> None:
    """Fail (never skip) when aihwkit is installed but its C++ simulator does not work."""
    try:
        tile = _tile()
        x = torch.zeros(1, IN)
        x[0, 0] = 1.0
        for _ in range(2):  # the first update only accumulates χ; the second transfers it
            tile.update(x, torch.full((1, OUT), -3.0 / LR))
        moved = not torch.equal(tile.get_weights()[0], torch.zeros(OUT, IN))
    except Exception as exc:  # noqa: BLE001 - any failure means the simulator is unusable here
        pytest.fail(f"aihwkit is installed but its C++ simulator does not work: {type(exc).__name__}: {exc}")
    if not moved:
        pytest.fail("aihwkit is installed but its C++ simulator left the weights unchanged after a mixed-precision "
                    "transfer (scripts/setup.sh builds a working one)")


@contextmanager
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only contend
    try:
        yield
    finally:
        torch.set_num_threads(n)


def test_granularity_is_aihwkits(simulator_works) -> None:
    extra = _tile().tile.dump_extra()
    keys = [k for k in extra if k.endswith("rpu_device.granularity")]
    assert keys, f"no mixed-precision granularity in aihwkit's state: {sorted(extra)[:20]}"
    theirs = float(extra[keys[0]][0])
    model = device_models.get("pcm-aihwkit-preset")
    assert model.granularity_w() == pytest.approx(theirs, rel=1e-6)  # float32 on aihwkit's side
    assert model.update_granularity_us() == pytest.approx(theirs * model.us_per_w, rel=1e-6)


# the larger and the smaller device of a pair (w, units of w_max = 2 ↔ 25 µS) on both sides of
# aihwkit's thresholds 0.75·w_max = 1.5 and 0.25·w_max = 0.5, 0.004 away (0.05 µS)
LARGER = (1.2, 1.496, 1.504, 1.9)
SMALLER = (0.2, 0.496, 0.504, 1.1)


def test_refresh_rule_is_aihwkits(simulator_works) -> None:
    from hardware_in_loop.schemes import make_scheme
    from pcmsim.crossbar import Crossbar, CrossbarConfig
    from pcmsim.periphery import PeripheryConfig

    big = torch.tensor(LARGER)[:, None].expand(4, 4)
    small = torch.tensor(SMALLER)[None, :].expand(4, 4)
    # the upper half has the larger device on G⁺, the lower half on G⁻
    w_plus = torch.cat([big, small]).contiguous()
    w_minus = torch.cat([small, big]).contiguous()
    rows, cols = w_plus.shape

    tile = _tile(rows, cols)
    hp = tile.get_hidden_parameters()
    hp["max_bound_0"], hp["max_bound_1"] = torch.full((rows, cols), 2.0), torch.full((rows, cols), 2.0)
    hp["hidden_weights_1"], hp["hidden_weights_0"] = w_plus.clone(), w_minus.clone()  # g_plus is device 1
    tile.set_hidden_parameters(hp)
    for _ in range(2):  # nothing to transfer; the second update runs the transfer and its refresh check
        tile.update(torch.zeros(1, cols), torch.zeros(1, rows))
    hp = tile.get_hidden_parameters()
    theirs = (hp["hidden_weights_1"] != w_plus) | (hp["hidden_weights_0"] != w_minus)

    model = device_models.get("pcm-aihwkit-preset")
    cfg = CrossbarConfig(weight_scale=1.0 / model.us_per_w, periphery=PeripheryConfig.ideal(), read_noise=False)
    xb = Crossbar(rows, cols, model, cfg, seed=0)
    xb.state.g_us[0, 0].copy_(w_plus * model.us_per_w)
    xb.state.g_us[0, 1].copy_(w_minus * model.us_per_w)
    xb.state.pulse_count.zero_()
    xb.invalidate()
    stats = make_scheme("mixed-precision", [xb]).end_step(1.0, torch.Generator().manual_seed(0))
    ours = (xb.state.pulse_count[0] > 0).all(dim=0)  # both devices RESET

    expected = (torch.maximum(w_plus, w_minus) > 1.5) & (torch.minimum(w_plus, w_minus) > 0.5)
    assert int(expected.sum()) == 8  # both orders of (1.504 or 1.9) × (0.504 or 1.1)
    assert torch.equal(theirs, expected), f"aihwkit refreshed\n{theirs.int()}"
    assert torch.equal(ours, expected), f"pcmsim refreshed\n{ours.int()}"
    assert stats.refreshes == 8


def _aihwkit_runs() -> dict[str, torch.Tensor]:
    loss, dev = torch.empty(SEEDS, STEPS // EVERY), torch.empty(SEEDS, STEPS // EVERY)
    final_w, final_g = torch.empty(SEEDS, OUT, IN), torch.empty(SEEDS, 2, OUT, IN)
    for s in range(SEEDS):
        tile = _tile()
        for t in range(STEPS):
            x = X[s, t : t + 1]
            y = tile.forward(x)
            tile.update(x, 2.0 * (y - x @ W_STAR.T) / OUT)  # Δw = −lr·dᵀx: SGD on Σ(y − t)²/OUT
            if (t + 1) % EVERY == 0:
                hp = tile.get_hidden_parameters()
                g = torch.stack([hp["hidden_weights_1"], hp["hidden_weights_0"]])
                w = tile.get_weights()[0]
                loss[s, t // EVERY] = ((w - W_STAR) ** 2).sum() / OUT
                dev[s, t // EVERY] = g.mean()
        final_w[s], final_g[s] = w, g
    return {"loss": loss, "device_w": dev, "final_w": final_w, "final_g": final_g}


def _pcmsim_runs(**scheme_params) -> dict[str, torch.Tensor]:
    from hardware_in_loop.updater import HardwareInTheLoop
    from pcmsim.analog import AnalogLinear
    from pcmsim.crossbar import CrossbarConfig
    from pcmsim.periphery import PeripheryConfig

    model = device_models.get("pcm-aihwkit-preset")
    cfg = CrossbarConfig(weight_scale=1.0 / model.us_per_w, periphery=PeripheryConfig.ideal(), read_noise=False)
    layer = AnalogLinear(IN, SEEDS * OUT, bias=False, device_model=model, config=cfg, seed=7, program=False)
    layer.crossbar.state.g_us.zero_()  # every device at w = 0, as aihwkit's set_weights(0)
    layer.crossbar.invalidate()
    layer.sync_weight()
    opt = torch.optim.SGD(layer.parameters(), lr=LR)
    hil = HardwareInTheLoop(torch.nn.Sequential(layer), opt, "mixed-precision",
                            generator=torch.Generator().manual_seed(8), max_pulses_per_step=MAX_PULSES, **scheme_params)
    diag = torch.arange(SEEDS)
    loss, dev = torch.empty(SEEDS, STEPS // EVERY), torch.empty(SEEDS, STEPS // EVERY)
    refreshes = 0
    for t in range(STEPS):
        x = X[:, t]
        opt.zero_grad()
        y = layer(x).view(SEEDS, SEEDS, OUT)[diag, diag]  # layer s on sample s
        (((y - x @ W_STAR.T) ** 2).sum() / OUT).backward()
        refreshes += hil.step().refreshes
        if (t + 1) % EVERY == 0:
            w = layer.weight.detach().view(SEEDS, OUT, IN)
            g = layer.crossbar.state.g_us[0].view(2, SEEDS, OUT, IN).transpose(0, 1) / model.us_per_w
            loss[:, t // EVERY] = ((w - W_STAR) ** 2).sum((1, 2)) / OUT
            dev[:, t // EVERY] = g.mean((1, 2, 3))
    return {"loss": loss, "device_w": dev, "final_w": w.clone(), "final_g": g.clone(),
            "refreshes": torch.tensor(refreshes)}


def _z(ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """(mean ours − mean theirs) over seeds (dim 0) in standard errors of the difference."""
    a, b = ours.double(), theirs.double()
    return (a.mean(0) - b.mean(0)) / (a.var(0) / a.shape[0] + b.var(0) / b.shape[0]).sqrt()


def _statistics(r: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    err = r["final_w"] - W_STAR
    return {
        f"loss every {EVERY} steps": r["loss"],
        f"mean device w every {EVERY} steps": r["device_w"],
        "final mean W": r["final_w"].mean((1, 2)),
        "final std of W − W*": err.std((1, 2)),
        "final std of device w": r["final_g"].std((1, 2, 3)),
    }


@pytest.fixture(scope="module")
def runs(simulator_works) -> dict[str, dict[str, torch.Tensor]]:
    with _one_thread():
        theirs = _aihwkit_runs()
        ours = _pcmsim_runs()
        old_eps = device_models.get("pcm-aihwkit-preset").mean_set_increment_us()
        control = _pcmsim_runs(granularity_us=old_eps)
    return {"aihwkit": theirs, "pcmsim": ours, "control": control}


def test_mixed_precision_training_matches_aihwkit(runs) -> None:
    theirs, ours = _statistics(runs["aihwkit"]), _statistics(runs["pcmsim"])
    report, failures = [], []
    for name in theirs:
        z = _z(ours[name], theirs[name]).reshape(-1)
        worst = int(z.abs().argmax())
        a, b = ours[name].mean(0).reshape(-1)[worst], theirs[name].mean(0).reshape(-1)[worst]
        line = f"{name}: worst of {z.numel()} at index {worst}: pcmsim {a:.4f} aihwkit {b:.4f} ({z[worst]:+.2f} SE)"
        report.append(line)
        if not bool((z.abs() <= K_SE).all()):
            failures.append(line)
    report.append(f"pcmsim refreshes: {int(runs['pcmsim']['refreshes'])} over {SEEDS} layers")
    print("\n".join(report))
    assert not failures, "; ".join(failures)
    assert int(runs["pcmsim"]["refreshes"]) < SEEDS  # the window where the rewrite method does not matter


def test_the_old_granularity_is_rejected(runs) -> None:
    """The control: ε = the mean SET step at the RESET level (0.2756 in w) fires far fewer pulses."""
    name = f"mean device w every {EVERY} steps"
    z = _z(_statistics(runs["control"])[name], _statistics(runs["aihwkit"])[name])
    print(f"old ε: {name}, pcmsim − aihwkit in SE: {[round(v, 1) for v in z.tolist()]}")
    assert float(z.min()) < -K_SE, f"the old ε is not rejected: z = {z.tolist()}"


# ---- aihwkit's choices as options: the whole run, 1,500 steps -------------------------------------
# With pcmsim's mixed precision set to aihwkit's four choices (binomial pulse counts, transfer with
# the next mini-batch, open-loop refresh rewrite, refresh decided on a read with aihwkit's refresh
# out_noise 0.1 w = 1.25 µS per device) and aihwkit's default preset cell (noisy refresh read), a
# 16 → 8 teacher learnt with mini-batches of 4 for 1,500 steps. Compared every 250 steps within
# MP_K_SE standard errors: the population loss and the mean device weight (the pulses fired:
# aihwkit counts pulses on CUDA only, ``count_pulses``). The control, pcmsim's defaults, parts.
# Differences left: aihwkit adds the first vector of a mini-batch to χ before the transfer, pcmsim
# transfers before the whole mini-batch's ΔW; aihwkit's refresh read is also quantised (9-bit ADC
# over ±20 w, a step of 0.078 w).
# In the suite: 25 layers per simulator (about 30 s of CPU); bench/mixed_precision_aihwkit.py runs
# the same check over 50 or more (its last run: bench/results/mixed_precision_aihwkit.json).
MP_IN, MP_OUT, MP_BATCH, MP_STEPS, MP_SEEDS, MP_EVERY = 16, 8, 4, 1500, 25, 250
MP_K_SE = 3.5
"""Twelve comparisons against a simulator whose generator is not seeded: at 3.0 a suite run failed
on noise alone (+3.2 SE for the loss at step 250, −1.3 SE at the same point in the next run); the
control parts by 5–8 SE."""
MP_W_STAR = torch.rand(MP_OUT, MP_IN, generator=torch.Generator().manual_seed(10)) * 1.2 - 0.6


def _mp_x(seeds: int) -> torch.Tensor:
    """The mini-batches of every layer, ``[seeds, steps, batch, in]`` (the same for both simulators)."""
    return torch.randn(seeds, MP_STEPS, MP_BATCH, MP_IN, generator=torch.Generator().manual_seed(11))
AIHWKIT_CHOICES = {"pulse_counts": "binomial", "transfer": "next-batch",
                   "refresh": {"rewrite": "open-loop", "read_noise_us": 0.1 * 12.5}}


def mp_aihwkit_runs(seeds: int = MP_SEEDS) -> dict[str, torch.Tensor]:
    from aihwkit.simulator.tiles import AnalogTile

    xs = _mp_x(seeds)
    n_pts = MP_STEPS // MP_EVERY
    loss, dev = torch.empty(seeds, n_pts), torch.empty(seeds, n_pts)
    for s in range(seeds):
        tile = AnalogTile(MP_OUT, MP_IN, _rpu_config(perfect_refresh_read=False))
        tile.set_learning_rate(LR)
        tile.set_weights(torch.zeros(MP_OUT, MP_IN))
        for t in range(MP_STEPS):
            x = xs[s, t]
            y = tile.forward(x)
            tile.update(x, 2.0 * (y - x @ MP_W_STAR.T) / (MP_OUT * MP_BATCH))  # SGD on the batch mean
            if (t + 1) % MP_EVERY == 0:
                hp = tile.get_hidden_parameters()
                w = tile.get_weights()[0]
                loss[s, t // MP_EVERY] = ((w - MP_W_STAR) ** 2).sum() / MP_OUT
                dev[s, t // MP_EVERY] = torch.stack([hp["hidden_weights_1"], hp["hidden_weights_0"]]).mean()
    return {"loss": loss, "device_w": dev}


def mp_pcmsim_runs(seeds: int = MP_SEEDS, **scheme_params) -> dict[str, torch.Tensor]:
    from hardware_in_loop.updater import HardwareInTheLoop
    from pcmsim.analog import AnalogLinear
    from pcmsim.crossbar import CrossbarConfig
    from pcmsim.periphery import PeripheryConfig

    model = device_models.get("pcm-aihwkit-preset")
    cfg = CrossbarConfig(weight_scale=1.0 / model.us_per_w, periphery=PeripheryConfig.ideal(), read_noise=False)
    layer = AnalogLinear(MP_IN, seeds * MP_OUT, bias=False, device_model=model, config=cfg, seed=17, program=False)
    layer.crossbar.state.g_us.zero_()
    layer.crossbar.invalidate()
    layer.sync_weight()
    opt = torch.optim.SGD(layer.parameters(), lr=LR)
    hil = HardwareInTheLoop(torch.nn.Sequential(layer), opt, "mixed-precision",
                            generator=torch.Generator().manual_seed(18), max_pulses_per_step=MAX_PULSES,
                            **scheme_params)
    diag = torch.arange(seeds)
    xs = _mp_x(seeds)
    n_pts = MP_STEPS // MP_EVERY
    loss, dev = torch.empty(seeds, n_pts), torch.empty(seeds, n_pts)
    refreshes = 0
    for t in range(MP_STEPS):
        x = xs[:, t]  # [seeds, batch, in]
        opt.zero_grad()
        y = layer(x.reshape(-1, MP_IN)).view(seeds, MP_BATCH, seeds, MP_OUT)[diag, :, diag]
        (((y - x @ MP_W_STAR.T) ** 2).sum() / (MP_OUT * MP_BATCH)).backward()
        refreshes += hil.step().refreshes
        if (t + 1) % MP_EVERY == 0:
            w = layer.weight.detach().view(seeds, MP_OUT, MP_IN)
            g = layer.crossbar.state.g_us[0].view(2, seeds, MP_OUT, MP_IN).transpose(0, 1) / model.us_per_w
            loss[:, t // MP_EVERY] = ((w - MP_W_STAR) ** 2).sum((1, 2)) / MP_OUT
            dev[:, t // MP_EVERY] = g.mean((1, 2, 3))
    return {"loss": loss, "device_w": dev, "refreshes": torch.tensor(refreshes)}


@pytest.fixture(scope="module")
def mp_runs(simulator_works) -> dict[str, dict[str, torch.Tensor]]:
    with _one_thread():
        return {"aihwkit": mp_aihwkit_runs(), "choices": mp_pcmsim_runs(**AIHWKIT_CHOICES),
                "defaults": mp_pcmsim_runs()}


def mp_report(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> tuple[list[str], float]:
    """One line per statistic (pcmsim/aihwkit means and the difference in SE) and the worst |z|."""
    lines, worst = [], 0.0
    for name in ("loss", "device_w"):
        z = _z(ours[name], theirs[name])
        worst = max(worst, float(z.abs().max()))
        pts = ", ".join(f"{a:.3f}/{b:.3f} ({v:+.1f})" for a, b, v in
                        zip(ours[name].mean(0).tolist(), theirs[name].mean(0).tolist(), z.tolist(), strict=True))
        lines.append(f"{name} every {MP_EVERY} steps, pcmsim/aihwkit (SE): {pts}")
    return lines, worst


def test_aihwkit_choices_match_aihwkit_for_1500_steps(mp_runs) -> None:
    lines, worst = mp_report(mp_runs["choices"], mp_runs["aihwkit"])
    print("\n".join(lines) + f"\nrefreshes: {int(mp_runs['choices']['refreshes'])} over {MP_SEEDS} layers")
    assert int(mp_runs["choices"]["refreshes"]) > 5 * MP_SEEDS  # refreshes are frequent: the rewrite matters
    assert worst <= MP_K_SE, "\n".join(lines)


def test_pcmsim_defaults_part_from_aihwkit(mp_runs) -> None:
    lines, worst = mp_report(mp_runs["defaults"], mp_runs["aihwkit"])
    print("\n".join(lines))
    assert worst > MP_K_SE, "\n".join(lines)
