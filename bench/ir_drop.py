"""The first-order IR-drop mode against the exact solve, over tile size and wire resistance.

    python bench/ir_drop.py [--sizes 64 128 256 512] [--wires 0.35 1 3.5] [--vectors 4] [--out PATH]

Per square tile of ``n × n`` unit cells (one differential pair each: ``n`` rows × ``2n`` device
columns, :class:`pcmsim.crossbar.ir_drop.IRDrop`'s layout): weights ``N(0, 1)`` mapped onto the
pairs at 25 µS for the largest (aihwkit's mapping with ``g_max = 25 µS``, the PCM models'), the
other device of a pair at 0; ``--vectors`` input vectors uniform in ``[0, 0.2]`` V (spike rates
at a 0.2 V read). For each wire resistance: the relative error ``‖y − y_exact‖ / ‖y_exact‖`` of the
unit-cell outputs ``I⁺ − I⁻`` of the ideal product (the IR drop itself) and of the first-order
mode, and the time of each solve. Writes ``bench/results/ir_drop.json`` (``--out``) and prints a
Markdown table (``docs/ir-drop.md``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512], help="tile sizes n (n × n cells)")
    ap.add_argument("--wires", type=float, nargs="+", default=[0.35, 1.0, 3.5], help="wire resistances, Ω")
    ap.add_argument("--vectors", type=int, default=4, help="input vectors per tile (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ir_drop.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch
    from _benchutil import machine_info, write_json

    from pcmsim.crossbar.ir_drop import column_currents, transfer_first_order

    g_max_s = 25e-6
    rows = []
    for n in args.sizes:
        gen = torch.Generator().manual_seed(args.seed + n)
        w = torch.randn(n, n, generator=gen, dtype=torch.float64)  # [rows (inputs), outputs]
        w = w / w.abs().max() * g_max_s
        g = torch.stack([w.clamp(min=0), (-w).clamp(min=0)], dim=-1).reshape(n, 2 * n)  # (o, sign) side by side
        v = torch.rand(args.vectors, n, generator=gen, dtype=torch.float64) * 0.2
        ideal = v @ g
        for r_wire in args.wires:
            t0 = time.perf_counter()
            exact = column_currents(g, v, r_wire)
            t_exact = time.perf_counter() - t0
            t0 = time.perf_counter()
            m1, _ = transfer_first_order(g, r_wire)
            first = v @ m1
            t_first = time.perf_counter() - t0

            def out(i: torch.Tensor) -> torch.Tensor:
                return i[:, 0::2] - i[:, 1::2]

            ref = out(exact)
            rel = {k: float(torch.linalg.norm(out(y) - ref) / torch.linalg.norm(ref))
                   for k, y in (("ideal", ideal), ("first_order", first))}
            loss = float(1 - exact.sum() / ideal.sum())  # fraction of the total current lost
            row = {"n": n, "device_columns": 2 * n, "wire_ohm": r_wire, "rel_err_ideal": rel["ideal"],
                   "rel_err_first_order": rel["first_order"], "current_lost": loss,
                   "t_exact_s": t_exact, "t_first_order_s": t_first}
            rows.append(row)
            print(f"n={n:4d} r={r_wire:5.2f} Ω: ideal {rel['ideal']:.2e}, first-order {rel['first_order']:.2e}, "
                  f"lost {loss:.2%} (exact {t_exact:.1f} s, first-order {t_first:.3f} s)", flush=True)
    write_json(args.out, {"command": "python bench/ir_drop.py " + " ".join(argv or sys.argv[1:]),
                          "machine": machine_info(torch), "g_max_s": g_max_s, "vectors": args.vectors,
                          "numpy": np.__version__, "rows": rows})
    print("\n| tile (cells) | r_wire (Ω) | current lost | ideal product's error | first-order's error |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']}×{r['n']} | {r['wire_ohm']:g} | {r['current_lost']:.2%} | {r['rel_err_ideal']:.2e} | "
              f"{r['rel_err_first_order']:.2e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
