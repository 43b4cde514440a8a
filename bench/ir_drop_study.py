"""IR drop on the 52,800-device experiment: training with the devices in the loop against programming
the FP32 network once, at tile sizes 128, 256 and 512.

    python bench/ir_drop_study.py [--out runs/sweeps/jsb-ir-drop] [--seeds N] [--set PATH=VALUE ...]
                                  [--workers 0] [--results bench/results/ir_drop_study.json]

1. Runs (or resumes) the sweep ``configs/sweeps/jsb-ir-drop.json`` (HIL runs trained through the
   first-order IR-drop mode at each tile size, and the FP32 runs), with ``--set`` overrides for a
   reduced run.
2. Every HIL run is evaluated on the test split with the exact IR-drop solve, and with ideal wires.
3. Every FP32 run is programmed once (``hardware_in_loop.inference.program_run_onto_devices``:
   the run's device model, the weight scale chosen so that ``max|W|`` lands at G_max) onto crossbars
   of each tile size with the exact IR drop, and evaluated the same way.
4. The error of one read against the ideal product, per layer: ``‖x·M − x·G‖ / ‖x·G‖`` for 1,024
   input vectors of Bernoulli(0.05) spikes (about the 4 notes of 88 of a JSB frame), with ``M`` the
   exact IR-drop tiles and ``G`` the ideal ones of the same devices (noise-free).

Prints a Markdown table (means ± std over seeds) and writes ``--results``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "configs" / "sweeps" / "jsb-ir-drop.json"


def _ir_exact(model: Any, mode: str | None) -> None:
    """Switch every crossbar of ``model`` to exact IR drop (``mode="exact"``) or ideal wires (None)."""
    from pcmsim.analog import analog_layers

    for layer in analog_layers(model):
        xb = layer.crossbar
        base = xb.reader.ir_drop
        assert base is not None, "a crossbar without IR drop in an IR-drop study"
        xb.__dict__.setdefault("_study_ir", base)
        xb.reader.ir_drop = None if mode is None else dataclasses.replace(xb.__dict__["_study_ir"], mode=mode)
        xb._transposed = None
        xb.invalidate()


def _read_errors(model: Any, t_s: float) -> list[float]:
    """Per layer: the relative error of one noise-free read with exact IR drop against the ideal product."""
    import torch

    from pcmsim.analog import analog_layers

    errors = []
    for layer in analog_layers(model):
        xb = layer.crossbar
        ir = dataclasses.replace(xb.__dict__["_study_ir"], mode="exact")
        g = xb.drifted_conductances(t_s)
        m_us, _ = ir.forward_tiles(g, xb.mapping.c, xb.tiles)
        ideal = xb.tiles.to_tiles(xb.mapping.combine(g))
        x = (torch.rand(1024, xb.in_features, generator=torch.Generator().manual_seed(0)) < 0.05).float()
        xt = xb.tiles.split_inputs(x)
        y_ir, y_id = xb.tiles.sum_outputs(torch.bmm(xt, m_us)), xb.tiles.sum_outputs(torch.bmm(xt, ideal))
        errors.append(float(torch.linalg.norm(y_ir - y_id) / torch.linalg.norm(y_id)))
    return errors


def _evaluate(trainer: Any) -> dict[str, Any]:
    _ir_exact(trainer.model, "exact")
    nll_exact = trainer.evaluate("test")["nll"]
    errs = _read_errors(trainer.model, trainer.clock.now_s)
    _ir_exact(trainer.model, None)
    nll_ideal = trainer.evaluate("test")["nll"]
    return {"test_nll_ir_exact": nll_exact, "test_nll_ideal_wires": nll_ideal, "read_error_per_layer": errs}


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "sweeps" / "jsb-ir-drop"))
    ap.add_argument("--seeds", default=None, help="N or a list such as 0,1 (default: the file's 5)")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override (JSON value)")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--results", default=str(ROOT / "bench" / "results" / "ir_drop_study.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch
    from _benchutil import machine_info, write_json

    from hardware_in_loop.evaluate import load_trainer
    from hardware_in_loop.inference import program_run_onto_devices
    from hardware_in_loop.sweep import run_sweep
    from hardware_in_loop.sweep_spec import load_sweep

    overrides = {}
    for item in args.set:
        path, _, value = item.partition("=")
        overrides[path] = json.loads(value)
    seeds: Any = None
    if args.seeds is not None:
        seeds = int(args.seeds) if "," not in args.seeds else [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    sweep = load_sweep(SWEEP, overrides=overrides, seeds=seeds)
    run_sweep(sweep, args.out, workers=args.workers, progress=False)
    t_sweep = time.perf_counter() - t0
    points = json.loads((Path(args.out) / "points.json").read_text())
    sizes = sorted({p["values"]["crossbar.tile_rows"] for p in points if p["values"]["flavour"] == "pcm"})
    rows: list[dict[str, Any]] = []
    torch.set_num_threads(1)
    for p in points:
        folder = Path(args.out) / "points" / p["id"]
        if p["status"] != "done":
            print(f"point {p['id']} {p['values']} seed {p['seed']}: {p['status']} ({p['error']}), left out")
            continue
        if p["values"]["flavour"] == "pcm":
            trainer = load_trainer(folder)
            rows.append({"arm": "HIL", "tile": p["values"]["crossbar.tile_rows"], "seed": p["seed"],
                         "trained_test_nll": p["test_nll"], **_evaluate(trainer)})
        else:
            config = json.loads((folder / "config.json").read_text())
            for n in sizes:
                hardware, _ = program_run_onto_devices(
                    folder, config["device_model"], device_params=config.get("device_params"),
                    crossbar={"ir_drop": "exact", "tile_rows": n, "tile_cols": n})
                rows.append({"arm": "FP32 programmed once", "tile": n, "seed": p["seed"],
                             "fp32_test_nll": p["test_nll"], **_evaluate(hardware)})
        print(json.dumps(rows[-1]), flush=True)
    table = ["| arm | tile | test NLL, exact IR drop | test NLL, ideal wires | read error, layer 1 | layer 2 |",
             "|---|---|---|---|---|---|"]
    for arm in ("HIL", "FP32 programmed once"):
        for n in sizes:
            sel = [r for r in rows if r["arm"] == arm and r["tile"] == n]
            if not sel:
                continue
            table.append(f"| {arm} | {n} | {_mean_std([r['test_nll_ir_exact'] for r in sel])} | "
                         f"{_mean_std([r['test_nll_ideal_wires'] for r in sel])} | "
                         f"{_mean_std([r['read_error_per_layer'][0] for r in sel])} | "
                         f"{_mean_std([r['read_error_per_layer'][1] for r in sel])} |")
    print("\n".join(table))
    write_json(args.results, {"command": "python bench/ir_drop_study.py " + " ".join(argv or sys.argv[1:]),
                              "machine": machine_info(torch), "overrides": overrides, "seeds": sweep.seeds,
                              "sweep_wall_s": t_sweep, "wall_s": time.perf_counter() - t0, "rows": rows,
                              "table": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
