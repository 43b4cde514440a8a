"""pcmsim's mixed precision with aihwkit's four choices against aihwkit, over more layers than CI.

    python bench/mixed_precision_aihwkit.py [--seeds 50] [--out PATH]

The check of ``tests/test_schemes_aihwkit.py::test_aihwkit_choices_match_aihwkit_for_1500_steps``
(a 16 → 8 teacher, mini-batches of 4, 1,500 steps, aihwkit's
``MixedPrecisionCompound(PCMPresetUnitCell)`` against ``mixed-precision`` with
``pulse_counts="binomial"``, ``transfer="next-batch"``, ``refresh.rewrite="open-loop"``,
``refresh.read_noise_us=1.25``) over ``--seeds`` layers per simulator (the suite runs 25), and the
same for pcmsim's defaults. Prints the loss and the mean device weight every 250 steps, each
pcmsim/aihwkit with the difference in standard errors; writes ``bench/results/mixed_precision_aihwkit.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=50, help="layers per simulator (default 50)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "mixed_precision_aihwkit.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch
    from _benchutil import machine_info, write_json

    from tests import test_schemes_aihwkit as t

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    theirs = t.mp_aihwkit_runs(args.seeds)
    choices = t.mp_pcmsim_runs(args.seeds, **t.AIHWKIT_CHOICES)
    defaults = t.mp_pcmsim_runs(args.seeds)
    result: dict = {"command": "python bench/mixed_precision_aihwkit.py " + " ".join(argv or sys.argv[1:]),
                    "machine": machine_info(torch), "seeds": args.seeds, "steps": t.MP_STEPS, "every": t.MP_EVERY,
                    "aihwkit_choices": t.AIHWKIT_CHOICES, "wall_s": None}
    for name, ours in (("aihwkit choices", choices), ("pcmsim defaults", defaults)):
        lines, worst = t.mp_report(ours, theirs)
        print(f"{name} (worst {worst:.1f} SE):\n  " + "\n  ".join(lines))
        result[name] = {"lines": lines, "worst_se": worst, "refreshes": int(ours["refreshes"])}
    result["aihwkit"] = {k: v.mean(0).tolist() for k, v in theirs.items()}
    result["wall_s"] = time.perf_counter() - t0
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
