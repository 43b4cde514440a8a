"""Cross-check of pcmsim's hardware-aware training against aihwkit's, on a small MLP on sklearn digits.

The same network (64-32-10, ReLU), data (pcmsim's digits split), optimiser (SGD, lr 0.1, batch 32) and
device model (Joshi et al. 2020 PCM: pcmsim ``pcm-joshi2020``, aihwkit ``PCMLikeNoiseModel``, which it
is written after) are trained hardware-aware twice and programmed once:

- pcmsim: :class:`pcmsim.hwa.HWALinear` layers (programming noise, read noise and the periphery of a fresh
  crossbar per batch, no drift, as aihwkit's modifier draws none), programmed with :func:`pcmsim.convert`
  and evaluated with :func:`pcmsim.evaluate_over_drift` (global compensation);
- aihwkit: ``AnalogLinear`` layers with ``InferenceRPUConfig`` (``PCMLikeNoiseModel(g_max=25)``,
  ``GlobalDriftCompensation``, the ``PROG_NOISE`` weight modifier: the programming noise of Joshi's
  polynomial, per batch; aihwkit's ``PCM_NOISE`` modifier has no CPU implementation), trained with
  ``AnalogSGD``, then ``program_analog_weights`` and ``drift_analog_weights(t)``.

Accuracy after 0 s, 1 h, 1 d and 1 y over ``--seeds`` (aihwkit draws from torch's global generator, seeded
per run). Writes ``bench/results/aihwkit-crosscheck.json``; the criterion of issue 26 is that the two
means lie within the seed spread (|Δmean| ≤ the larger std + the smaller std) at every delay; the summary
also gives the paired (same seed) difference's 95 % confidence interval, a sharper test.

aihwkit's mapping is left at its default (``weight_scaling_omega = 0``). With ``weight_scaling_omega = 1``
(the first version of this bench, 0.73-0.80) ``AnalogSGD`` does not follow torch's SGD: from the same initial
weights, with a perfect forward, 200 steps of this network put the first layer's weights 32 % (of the
update's norm) away from ``torch.optim.SGD``'s (36 % without biases), where ``weight_scaling_omega = 0``
matches to 1e-7; one step, a single layer's step and the input gradient do match, so the cause lies in
how the mapping evolves over steps (not found); ``weight_scaling_lr_compensation`` makes it worse (seed 0
software accuracy after 10 epochs: 0.933 at ω = 0, 0.84 at ω = 1, 0.76 at ω = 1 with the compensation).
Both sides read through their default periphery, which is the same
(7-bit input, 9-bit output, input bound 1, output bound 12, output noise 0.06, noise and bound management:
aihwkit's ``IOParameters``, pcmsim's ``PeripheryConfig``).

    python bench/aihwkit_crosscheck.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TIMES = {"0s": 0.0, "1h": 3600.0, "1d": 86400.0, "1y": 365 * 86400.0}
SIZES = (64, 32, 10)


def data(seed: int) -> tuple[Any, Any, Any, Any]:
    from pcmsim.data.classification import load_classification_data

    d = load_classification_data("digits", seed=seed)
    scale = float(d.x_train.max())
    return d.x_train.float() / scale, d.y_train, d.x_test.float() / scale, d.y_test


def train(model: Any, optimizer: Any, x: Any, y: Any, epochs: int, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 32):
            idx = order[i : i + 32]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()


def pcmsim_run(seed: int, epochs: int) -> dict[str, float]:
    import torch
    from torch import nn

    import pcmsim
    from pcmsim.hwa import HWAConfig, hwa_linear_factory

    x, y, xt, yt = data(seed)
    gen = torch.Generator().manual_seed(seed)

    def base(n_in: int, n_out: int, bias: bool) -> nn.Linear:
        layer = nn.utils.skip_init(nn.Linear, n_in, n_out, bias=bias)
        bound = 1 / n_in**0.5
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.uniform_(-bound, bound, generator=gen)  # type: ignore[union-attr]
        return layer

    factory = hwa_linear_factory(base, HWAConfig(drift=False, compensation="none"), device_model="pcm-joshi2020",
                                 crossbar={"weight_scale": "auto"}, seed=seed)
    model = nn.Sequential(factory(SIZES[0], SIZES[1], True), nn.ReLU(), factory(SIZES[1], SIZES[2], True))
    train(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, epochs, seed)
    analog, _ = pcmsim.convert(model, "pcm-joshi2020", {"weight_scale": "auto"}, seed=seed, t_s=0.0)
    analog.eval()

    @torch.no_grad()
    def accuracy() -> float:
        return float((analog(xt).argmax(-1) == yt).float().mean())

    rows = pcmsim.evaluate_over_drift(analog, accuracy, [(k, v) for k, v in TIMES.items() if v > 0], ("global",))
    return {r["delay"]: r["metric"] for r in rows}


def aihwkit_run(seed: int, epochs: int, modifier: str = "prog-noise") -> dict[str, float]:
    import torch
    from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.optim import AnalogSGD
    from aihwkit.simulator.configs import InferenceRPUConfig, WeightModifierType

    x, y, xt, yt = data(seed)
    torch.manual_seed(seed)
    rpu = InferenceRPUConfig()
    rpu.noise_model = PCMLikeNoiseModel(g_max=25.0)
    rpu.drift_compensation = GlobalDriftCompensation()
    # PCM_NOISE has no CPU implementation; "none" trains without a modifier (a diagnostic)
    rpu.modifier.type = WeightModifierType.PROG_NOISE if modifier == "prog-noise" else WeightModifierType.NONE
    rpu.modifier.std_dev = 1.0
    # Joshi's σ_prog polynomial relative to w_max (the noise model's prog_coeff / g_max; aihwkit's default
    # modifier coeffs carry 0.0768 for 1.965/25 = 0.0786)
    rpu.modifier.coeffs = [c / rpu.noise_model.g_max for c in rpu.noise_model.prog_coeff]
    # No weight_scaling_omega: with it (and weight_scaling_lr_compensation off, aihwkit's default) the tile
    # holds W/α (α = max|W|/ω) and SGD's step on W shrinks by α² (1/64 on the first layer at init), which
    # left the network under-trained (0.84 software accuracy after 10 epochs instead of 0.93).
    model = AnalogSequential(AnalogLinear(SIZES[0], SIZES[1], True, rpu_config=rpu), torch.nn.ReLU(),
                             AnalogLinear(SIZES[1], SIZES[2], True, rpu_config=rpu))
    optimizer = AnalogSGD(model.parameters(), lr=0.1)
    optimizer.regroup_param_groups(model)
    train(model, optimizer, x, y, epochs, seed)
    model.eval()
    model.program_analog_weights()
    out = {}
    for label, t in TIMES.items():
        model.drift_analog_weights(t)
        with torch.no_grad():
            out[label] = float((model(xt).argmax(-1) == yt).float().mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--aihwkit-modifier", choices=["prog-noise", "none"], default="prog-noise")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "aihwkit-crosscheck.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from scipy.stats import t as t_dist

    from hardware_in_loop.checkpoint import write_json

    runs = {"pcmsim": [pcmsim_run(s, args.epochs) for s in args.seeds],
            "aihwkit": [aihwkit_run(s, args.epochs, args.aihwkit_modifier) for s in args.seeds]}
    summary: dict[str, Any] = {}
    for label in TIMES:
        a = [r[label] for r in runs["pcmsim"]]
        b = [r[label] for r in runs["aihwkit"]]
        sa = statistics.stdev(a) if len(a) > 1 else 0.0
        sb = statistics.stdev(b) if len(b) > 1 else 0.0
        diff = statistics.fmean(a) - statistics.fmean(b)
        paired = [x - z for x, z in zip(a, b)]  # the same seed: the same data order, split and init seed
        sd = statistics.stdev(paired) if len(paired) > 1 else 0.0
        half = float(t_dist.ppf(0.975, len(paired) - 1)) * sd / len(paired) ** 0.5 if len(paired) > 1 else 0.0
        summary[label] = {"pcmsim_mean": statistics.fmean(a), "pcmsim_std": sa, "aihwkit_mean": statistics.fmean(b),
                          "aihwkit_std": sb, "difference": diff, "within_spread": abs(diff) <= sa + sb,
                          "paired_difference_std": sd, "paired_difference_ci95": [diff - half, diff + half]}
        print(f"{label:>4}  pcmsim {statistics.fmean(a):.4f} ± {sa:.4f}   aihwkit {statistics.fmean(b):.4f} ± {sb:.4f}"
              f"   Δ {diff:+.4f} (paired 95 % CI {diff - half:+.4f} … {diff + half:+.4f})  "
              f"{'within' if abs(diff) <= sa + sb else 'OUTSIDE'} the seed spread")
    write_json(Path(args.out), {"command": "python bench/aihwkit_crosscheck.py " + " ".join(argv or sys.argv[1:]),
                                "seeds": args.seeds, "epochs": args.epochs, "summary": summary, "runs": runs})
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
