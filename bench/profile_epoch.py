"""Where the time of a hardware-in-the-loop epoch goes: the phases of ``jsb-52800`` beside FP32.

    python bench/profile_epoch.py [--epochs 3] [--threads 1] [--out bench/results/profile_epoch.json]

Trains the ``fp32`` and ``pcm`` flavours of ``bench/epoch.py`` (same data, seed and batches; one
untimed warm-up epoch each), epochs interleaved, and times inside every ``pcm`` epoch:

- ``analog forward``: ``Crossbar.mvm`` (read of the devices with drift and read-noise variance,
  DAC, the two products, output noise, ADC, bound management);
- ``analog backward``: the digital products of ``AnalogMVM.backward``;
- ``update``: ``HardwareInTheLoop.step``, split into the scheme's ``apply`` (χ and SET pulses),
  ``end_step`` (refresh of saturated pairs: a drift read of every device, program-and-verify of
  the saturated ones) and ``sync`` (re-read of the digital weight estimates); the rest of the step
  is the optimiser and its bookkeeping.

Printed per epoch and as medians (ms per epoch); saved as JSON. The wrappers add a few µs per call.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _timed(counter: collections.Counter, key: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            counter[key] += time.perf_counter() - t0

    return wrapper


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--data-dir", default=None, help="folder of the JSB data (default: $PCMSIM_DATA or the cache)")
    ap.add_argument("--out", default="bench/results/profile_epoch.json", help="JSON output file")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        ap.error("--epochs and --threads must be ≥ 1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.path.insert(0, str(ROOT))
    import torch
    from _benchutil import machine_info, median, write_json
    from epoch import build_trainers, parse_args, run_epoch

    from pcmsim.analog import AnalogMVM
    from pcmsim.crossbar import Crossbar

    torch.set_num_threads(args.threads)
    bench_args = parse_args(["--threads", str(args.threads), "--flavours", "fp32,pcm"]
                            + (["--data-dir", args.data_dir] if args.data_dir else []))
    trainers, _ = build_trainers(bench_args)
    t = collections.Counter()
    hil = trainers["pcm"].hil
    scheme = hil.scheme
    # instance attributes: only the pcm run is timed (the fp32 run has no crossbar)
    scheme.apply = _timed(t, "update: apply (χ, SET pulses)", scheme.apply)
    scheme.end_step = _timed(t, "update: refresh", scheme.end_step)
    hil.sync = _timed(t, "update: sync (re-read)", hil.sync)
    hil.step = _timed(t, "update (whole step)", hil.step)
    mvm, backward = Crossbar.mvm, AnalogMVM.backward
    Crossbar.mvm = _timed(t, "analog forward", mvm)  # type: ignore[method-assign]
    AnalogMVM.backward = staticmethod(_timed(t, "analog backward", backward))  # type: ignore[method-assign]
    try:
        for tr in trainers.values():
            run_epoch(tr, 0)
        rows: list[dict[str, Any]] = []
        for ep in range(1, args.epochs + 1):
            fp32 = run_epoch(trainers["fp32"], ep)
            t.clear()
            pcm = run_epoch(trainers["pcm"], ep)
            row = {"epoch": ep, "fp32_s": fp32["wall_s"], "pcm_s": pcm["wall_s"],
                   **{k: v for k, v in sorted(t.items())}}
            rows.append(row)
            print(f"epoch {ep}: fp32 {fp32['wall_s']:.3f} s, pcm {pcm['wall_s']:.3f} s; "
                  + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in sorted(t.items())), flush=True)
    finally:
        Crossbar.mvm, AnalogMVM.backward = mvm, staticmethod(backward)  # type: ignore[method-assign]
    keys = [k for k in rows[0] if k != "epoch"]
    med = {k: median([r[k] for r in rows]) for k in keys}
    print(f"\nmedian of {args.epochs} epochs, ms per epoch ({args.threads} thread(s)):")
    for k in keys:
        print(f"  {k:34s} {1000 * med[k]:8.1f}")
    print(f"  {'pcm − fp32':34s} {1000 * (med['pcm_s'] - med['fp32_s']):8.1f}")
    meta = machine_info(torch)
    meta["loadavg_end"] = list(os.getloadavg())
    write_json(Path(args.out), {"meta": meta, "config": {"epochs": args.epochs, "threads": args.threads,
                                                         "command": "python bench/profile_epoch.py "
                                                         + " ".join(sys.argv[1:] if argv is None else argv)},
                                "epochs": rows, "median_s": med})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
