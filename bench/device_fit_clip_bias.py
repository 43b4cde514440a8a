"""The clip per device's likelihood against the file's own clips (issue 23: with the two-state filter
it replaced, ``clip-dev``'s programming-curve spread was 7.5 % off at full size, its fitted clips'
spread 0.0857 against the file's 0.0795).

Writes ``clip-dev`` pulse-response files (``tests/device_fit_generators.py``: ``--n-devices`` × 2 RESET
cycles × ``--pulses`` pulses) with its own read noise (2 % of G + 0.1 µS) and read ten times as
precisely (0.2 % of G + 0.01 µS), holds every constant at the generator's own (its mean step on the
knots, S = 0.08 µS and κ = 0.3, the device factor's std, G_max at the mean of the file's own clips)
and evaluates the fit's likelihood (``PulseLikelihood``, the nodes of the factor and the clips held as the
optimiser holds them) over the clips' relative spread, 0.6–1.6 times the std of the file's own clips.
The likeliest spread (a parabola through the best of ``--points`` and its neighbours) is set against
that std: a likelihood that is right puts it there to within the file's estimation error (each
device's clip is read ~20 times at its plateau). Then, on a small file (60 devices × 2 × 20), each
device's likelihood against a brute-force integral over its clip written here (the one-clip filter at
4001 clips over ±8 prior stds, the trapezoid rule), at the same constants and no device factor.
Writes ``bench/results/device_fit_clip_bias.json``.

    python bench/device_fit_clip_bias.py [--n-devices 1500] [--pulses 30] [--points 11]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from _benchutil import machine_info, write_json  # noqa: E402
from device_fit_generators import CLIP_DEV  # noqa: E402

from device_models.fit_filter import PulseLikelihood, _Layout  # noqa: E402
from device_models.measurements import read_pulse_csv  # noqa: E402

D = torch.float64
N_KNOTS = 10
READS = {"2 % of G + 0.1 µS": CLIP_DEV,
         "0.2 % of G + 0.01 µS": dataclasses.replace(CLIP_DEV, read_rel=0.002, read_add_us=0.01)}


def own_x(lik: PulseLikelihood, lay: _Layout, rest: list[float]) -> torch.Tensor:
    """``clip-dev``'s own laws on the knots (its mean step, S = 0.08 µS, κ = 0.3), then ``rest``."""
    g = torch.as_tensor(lik.start + lik.step * np.arange(lay.k))
    return torch.cat([CLIP_DEV.mean_step(g), torch.tensor([0.08, 0.3], dtype=D), torch.tensor(rest, dtype=D)])


def likeliest_spread(gen, n: int, pulses: int, points: int, folder: Path, seed: int = 5) -> dict:  # noqa: ANN001
    lik = PulseLikelihood(read_pulse_csv(gen.write_pulses(folder / "p.csv", n, pulses, 2, seed=seed)),
                          n_knots=N_KNOTS, floor_us=None, cap_us=None, noise_table=None)
    clips = gen.clips(n, seed)
    own = float(clips.std() / clips.mean())
    lay = _Layout(N_KNOTS, True, True, False, True, "multiplicative", clip_d2d=True)
    x = own_x(lik, lay, [float(clips.mean()), gen.read_add_us, gen.read_rel, CLIP_DEV.d2d_rel_std(), own])
    i = lay.index("g_max_rel_std")
    spreads = own * np.linspace(0.6, 1.6, points)
    lls = []
    with lik.frozen_nodes(x, lay), torch.no_grad():
        for sp in spreads:
            x[i] = float(sp)
            lls.append(-float(lik.nll(x, lay) - lik.penalty(x.numpy(), lay)) * lik.n_reads)
    j = int(np.argmax(lls))
    if 0 < j < points - 1:
        a, b, _ = np.polyfit(spreads[j - 1:j + 2], lls[j - 1:j + 2], 2)
        best, edge = float(-b / (2 * a)), False
    else:
        best, edge = float(spreads[j]), True  # at an end of the range: beyond it
    return {"files_own_spread": own, "likeliest_spread": best, "ratio": best / own, "at_range_end": edge,
            "spreads": spreads.tolist(), "loglik": lls}


def against_brute_force(folder: Path) -> dict:
    n_dev = 60
    lik = PulseLikelihood(read_pulse_csv(CLIP_DEV.write_pulses(folder / "b.csv", n_dev, 20, 2, seed=3)),
                          n_knots=8, floor_us=None, cap_us=None, noise_table=None)
    lay = _Layout(8, True, True, False, False, "multiplicative", clip_d2d=True)
    g_max, rel = 12.0, 0.08
    k = lay.k
    g = torch.as_tensor(lik.start + lik.step * np.arange(k))
    x = torch.cat([CLIP_DEV.mean_step(g), torch.tensor([0.08, 0.3, g_max, 0.1, 0.02, rel], dtype=D)])
    t = lik._unpack(x, lay)
    s = rel * g_max
    grid = torch.linspace(g_max - 8 * s, g_max + 8 * s, 4001, dtype=D)
    per_cycle = lik._filter(dataclasses.replace(t, cap=grid[None, :], factor=torch.ones(1, 1, dtype=D)), lay)
    per_dev = torch.zeros(n_dev, grid.numel(), dtype=D).index_add(0, lik.cycle_dev, per_cycle)
    dz = float(grid[1] - grid[0])
    w = torch.full_like(grid, dz)
    w[0] = w[-1] = dz / 2
    log_prior = torch.log(w) - 0.5 * ((grid - g_max) / s) ** 2 - math.log(s * math.sqrt(2.0 * math.pi))
    want = torch.logsumexp(per_dev + log_prior, dim=1)
    got = lik._per_device(t, lay, lik.clip_nodes(x, lay))[:, 0]
    err = got - want
    return {"devices": n_dev, "mean_error_per_device": float(err.mean()), "mean_abs_error_per_device":
            float(err.abs().mean()), "largest_abs_error": float(err.abs().max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-devices", type=int, default=1500)
    ap.add_argument("--pulses", type=int, default=30)
    ap.add_argument("--points", type=int, default=11)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "device_fit_clip_bias.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    out: dict = {"command": " ".join(["bench/device_fit_clip_bias.py", *sys.argv[1:]]), "machine": machine_info(torch),
                 "size": {"devices": args.n_devices, "cycles": 2, "pulses": args.pulses}, "reads": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, gen in READS.items():
            r = likeliest_spread(gen, args.n_devices, args.pulses, args.points, folder)
            out["reads"][name] = r
            print(f"reads {name}: likeliest spread {r['likeliest_spread']:.4f}"
                  f"{' (at the end of the range)' if r['at_range_end'] else ''}, the file's own "
                  f"{r['files_own_spread']:.4f} (ratio {r['ratio']:.3f})", flush=True)
        out["against_brute_force"] = bf = against_brute_force(folder)
        print(f"60 devices × 2 × 20: the likelihood minus a brute-force integral over each device's clip: "
              f"mean {bf['mean_error_per_device']:+.3f}, mean |·| {bf['mean_abs_error_per_device']:.3f}, "
              f"largest {bf['largest_abs_error']:.3f} log-units per device")
    write_json(args.out, out)


if __name__ == "__main__":
    main()
