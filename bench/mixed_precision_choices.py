"""What each of aihwkit's four mixed-precision choices costs on the teacher task (pcmsim alone).

    python bench/mixed_precision_choices.py [--seeds 50] [--out PATH]

The 16 → 8 teacher of ``tests/test_schemes_aihwkit.py`` (mini-batches of 4, 1,500 steps,
``pcm-aihwkit-preset``) with ``mixed-precision`` at its defaults, with each choice alone
(binomial pulse counts; transfer with the next mini-batch; open-loop refresh rewrite; refresh
decided on a read with 1.25 µS noise per device) and with all four. Prints the population loss and
the mean device weight at the end (mean ± standard error over ``--seeds`` layers) and the refreshes;
writes ``bench/results/mixed_precision_choices.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "mixed_precision_choices.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch
    from _benchutil import machine_info, write_json

    from tests import test_schemes_aihwkit as t

    torch.set_num_threads(1)
    variants = {
        "defaults": {},
        "binomial pulse counts": {"pulse_counts": "binomial"},
        "transfer with the next mini-batch": {"transfer": "next-batch"},
        "open-loop refresh rewrite": {"refresh": {"rewrite": "open-loop"}},
        "refresh decided on a noisy read": {"refresh": {"read_noise_us": 1.25}},
        "all four (aihwkit's)": t.AIHWKIT_CHOICES,
    }
    rows = []
    print("| mixed precision | final loss | final mean device w | refreshes per layer |\n|---|---|---|---|")
    for name, params in variants.items():
        r = t.mp_pcmsim_runs(args.seeds, **params)
        loss, dev = r["loss"][:, -1].double(), r["device_w"][:, -1].double()
        n = loss.numel()
        row = {"variant": name, "scheme_params": params, "loss": loss.mean().item(),
               "loss_se": (loss.std() / n**0.5).item(), "device_w": dev.mean().item(),
               "device_w_se": (dev.std() / n**0.5).item(), "refreshes_per_layer": int(r["refreshes"]) / n}
        rows.append(row)
        print(f"| {name} | {row['loss']:.3f} ± {row['loss_se']:.3f} | {row['device_w']:.3f} ± {row['device_w_se']:.3f} "
              f"| {row['refreshes_per_layer']:.0f} |", flush=True)
    write_json(args.out, {"command": "python bench/mixed_precision_choices.py " + " ".join(argv or sys.argv[1:]),
                          "machine": machine_info(torch), "seeds": args.seeds, "steps": t.MP_STEPS, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
