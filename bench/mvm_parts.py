"""What one analog forward of the 150×88 hidden array costs, against ``F.linear``.

    python bench/mvm_parts.py [--rows 1200] [--threads 1] [--repeats 200]

A 150×88 ``pcm-nandakumar2018`` crossbar (weight scale 0.05, default periphery, read noise) and
``--rows`` binary input vectors (10 % ones, as spikes; 1,200 ≈ 150 time steps × batch 8). Times,
each the median of ``--repeats`` calls: the whole ``Crossbar.mvm`` at a new time (a fresh read of
the devices), its parts (the read with drift and read-noise variance, one product, the
output-noise draw) and ``F.linear`` of the same shapes (what the FP32 network does). Printed only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return 1000 * statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1200, help="input vectors per call (default 1200)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=200, help="calls per timing (default 200)")
    args = ap.parse_args(argv)
    if args.rows < 1 or args.threads < 1 or args.repeats < 1:
        ap.error("--rows, --threads and --repeats must be ≥ 1")
    sys.path.insert(0, str(ROOT))
    import torch
    import torch.nn.functional as F

    from pcmsim.crossbar import Crossbar, CrossbarConfig

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    xb = Crossbar(150, 88, "pcm-nandakumar2018", CrossbarConfig(weight_scale=0.05), seed=0)
    w = torch.randn(150, 88, generator=gen) * 0.1
    xb.program_weights(w, 0.0)
    x = (torch.rand(args.rows, 88, generator=gen) < 0.1).float()
    clock = [100.0]

    def tick() -> float:
        clock[0] += 1.0
        return clock[0]

    read = xb.reader.read(xb.state, 50.0)
    xh = x.unsqueeze(0)
    rows = {
        "Crossbar.mvm (fresh read each call)": median_ms(lambda: xb.mvm(x, tick()), args.repeats),
        "  read: drift, read-noise variance, tiles": median_ms(
            lambda: xb.reader.read(xb.state, tick()), args.repeats),
        "  one product (there are two: mean, variance)": median_ms(lambda: torch.bmm(xh, read.g_tiles),
                                                                   args.repeats),
        "  output-noise draw (rows × 150 normals)": median_ms(
            lambda: torch.randn(1, args.rows, 150, generator=xb.generator), args.repeats),
        "F.linear (the FP32 forward)": median_ms(lambda: F.linear(x, w), args.repeats),
    }
    print(f"150×88 array, {args.rows} input vectors, {torch.get_num_threads()} thread(s); median ms per call")
    for name, ms in rows.items():
        print(f"  {name:48s} {ms:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
