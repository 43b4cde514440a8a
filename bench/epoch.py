"""Seconds per training epoch of the 88-150-88 SNU network on JSB: FP32, pcmsim HIL and aihwkit.

    python bench/epoch.py [--epochs 3] [--batch-size 8] [--threads 2] [--out bench/results/epoch.json]
                          [--flavours fp32,fp32-plain,pcm,pcm-plain,aihwkit-mp,aihwkit-inference]
                          [--warmup 1] [--device cpu|cuda]
                          [--omp-wait-policy passive] [--data-dir DIR] [--max-train-sequences N]
                          [--aihwkit-lr 1.0]

One process, one data set, one seed and one batch size for every flavour:

- ``fp32``: the ideal network (``nn.Linear`` synapses), Adam;
- ``pcm``: pcmsim with the hardware in the loop, the ``jsb-52800`` experiment
  (``experiment_config("jsb-52800")``: ``pcm-nandakumar2018`` devices, mixed-precision updates,
  read noise, drift, refresh, the default periphery);
- ``fp32-plain``, ``pcm-plain``: the same with ``neuron_loop="plain"`` (the step-by-step SNU
  loop instead of the compiled one of :mod:`pcmsim.neuron_models.fused`);
- ``aihwkit-mp``: aihwkit's ``MixedPrecisionPCMPreset`` (its C++ simulator) with ``AnalogSGD``;
- ``aihwkit-inference``: aihwkit's ``InferenceRPUConfig`` with ``PCMLikeNoiseModel``
  (hardware-aware training) with ``AnalogSGD``.

The aihwkit flavours are the trainer's ``flavour="aihwkit"`` with ``crossbar={"preset": ...}``
(:mod:`pcmsim.aihwkit_bridge`); everything else comes from the same experiment config, except the
learning rate of their ``AnalogSGD`` (``--aihwkit-lr``, 1.0): at the experiment's 0.01 the
mixed-precision preset fires no pulse (its weights never move) and neither aihwkit flavour learns,
so the comparison would time devices that are never programmed.

Only the training batches of an epoch are timed (``Trainer.train_batch`` over the epoch's
batches: padding, forward, loss, backward, clipping, the update); loading the data, shuffling
and evaluation are not. The flavours take turns epoch by epoch (a, b, c, d, a, b, c, d, ...) after
``--warmup`` untimed epochs each, so that a change of the machine's load hits all of them alike;
each timed epoch is a further training epoch of that flavour's run. Reported per flavour: the
median wall-clock seconds per epoch (and CPU seconds), and the ratios to FP32 and to
aihwkit-mp as the median of the per-round ratios (each round's epochs ran back to back).

Every flavour runs on ``--threads`` threads: torch's (``torch.set_num_threads``) and, through
``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` set before anything is imported,
aihwkit's C++ simulator (its own OpenMP runtime and OpenBLAS, which would otherwise take every
core). ``--omp-wait-policy passive`` (the default) sets ``OMP_WAIT_POLICY=PASSIVE`` before torch is
imported: idle OpenMP threads sleep instead of spinning. On a machine whose cores are shared with
other processes, spinning threads make timings with more than one thread erratic (seconds to
tens of seconds for the same epoch); ``keep`` leaves the environment as it is.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLAVOURS = ("fp32", "fp32-plain", "pcm", "pcm-plain", "aihwkit-mp", "aihwkit-inference")
LABELS = {
    "fp32": "FP32 (ideal, Adam)",
    "fp32-plain": "FP32, plain neuron loop",
    "pcm": "pcmsim HIL jsb-52800",
    "pcm-plain": "pcmsim HIL, plain neuron loop",
    "aihwkit-mp": "aihwkit MixedPrecisionPCMPreset",
    "aihwkit-inference": "aihwkit InferenceRPUConfig+PCMLike",
}
PRESETS = {"aihwkit-mp": "mixed-precision-pcm", "aihwkit-inference": "inference-pcm"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per flavour (median over them; default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed epochs per flavour first (default 1)")
    ap.add_argument("--batch-size", type=int, default=8, help="sequences per batch (default 8)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--flavours", default=",".join(FLAVOURS), help=f"comma-separated subset of {','.join(FLAVOURS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="torch device of every flavour (default cpu; aihwkit: cpu only)")
    ap.add_argument("--data-dir", default=None, help="folder of the JSB data (default: $PCMSIM_DATA or the cache)")
    ap.add_argument("--max-train-sequences", type=int, default=None, help="fewer training sequences (quick runs)")
    ap.add_argument("--aihwkit-lr", type=float, default=1.0,
                    help="learning rate of the aihwkit flavours' AnalogSGD (default 1.0: at the experiment's 0.01, "
                         "aihwkit's mixed-precision preset fires no pulse and neither aihwkit flavour learns)")
    ap.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "keep"],
                    help="OMP_WAIT_POLICY set before torch is imported (default passive)")
    ap.add_argument("--out", default="bench/results/epoch.json", help="JSON output file")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0 or args.batch_size < 1 or args.threads < 1:
        ap.error("--epochs, --batch-size and --threads must be ≥ 1 and --warmup ≥ 0")
    if not (math.isfinite(args.aihwkit_lr) and args.aihwkit_lr > 0):
        ap.error(f"--aihwkit-lr {args.aihwkit_lr}: expected a finite learning rate > 0")
    flavours = [f.strip() for f in args.flavours.split(",") if f.strip()]
    unknown = sorted(set(flavours) - set(FLAVOURS))
    if unknown or not flavours:
        ap.error(f"--flavours {args.flavours!r}: expected a comma-separated subset of {', '.join(FLAVOURS)}")
    args.flavour_list = flavours
    return args


def build_trainers(args: argparse.Namespace, log: Any = print) -> tuple[dict[str, Any], dict[str, str]]:
    """One Trainer per flavour, all on the same loaded data; returns (trainers, skipped)."""
    from hardware_in_loop.experiments import experiment_config
    from hardware_in_loop.tasks import MusicTask
    from hardware_in_loop.trainer import Trainer

    overrides: dict[str, Any] = {"batch_size": args.batch_size, "seed": args.seed, "data_dir": args.data_dir,
                                 "max_train_sequences": args.max_train_sequences, "device": args.device}
    base = experiment_config("jsb-52800", **overrides)
    shared: dict[str, Any] = {}

    class SharedDataTask(MusicTask):
        """Loads the data once for all flavours (loading is not part of an epoch's work)."""

        def load_data(self) -> None:
            if "data" not in shared:
                super().load_data()
                shared["data"] = self.data
            self.data = shared["data"]

    trainers: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for flavour in args.flavour_list:
        if flavour in ("fp32", "fp32-plain"):
            cfg = base.replace(flavour="fp32")
        elif flavour in ("pcm", "pcm-plain"):
            cfg = base
        else:
            cfg = base.replace(flavour="aihwkit", crossbar={"preset": PRESETS[flavour]},
                               lr=args.aihwkit_lr)
        if flavour.endswith("-plain"):
            cfg = cfg.replace(neuron_loop="plain")
        t0 = time.perf_counter()
        try:
            trainers[flavour] = Trainer(cfg, ROOT / "runs" / "bench-epoch" / flavour, progress=False,
                                        task=SharedDataTask(cfg))
        except ImportError as exc:  # aihwkit missing or broken: report and go on without it
            skipped[flavour] = f"{type(exc).__name__}: {exc}"
            log(f"skipping {flavour}: {skipped[flavour]}")
            continue
        log(f"built {flavour:18s} in {time.perf_counter() - t0:5.1f} s")
    return trainers, skipped


def run_epoch(trainer: Any, epoch: int) -> dict[str, float]:
    """Train one epoch (only ``train_batch`` calls are timed); returns times, NLL and pulses."""
    trainer.epoch = epoch
    trainer.batch_index = 0
    trainer._lr_for_epoch()
    batches = [indices for _, indices in trainer.batches()]  # data order: not timed
    loss_sum = steps = 0.0
    pulses = 0
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    for indices in batches:
        sums, stats = trainer.train_batch(indices)
        loss_sum += sums["loss_sum"]
        steps += sums["steps"]
        pulses += stats.pulses_set
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    trainer.clock.epoch_done()  # the simulated gap between epochs (as Trainer.fit)
    return {"wall_s": wall, "cpu_s": cpu, "batches": len(batches), "train_nll": loss_sum / max(steps, 1.0),
            "pulses_set": pulses}


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of a[i]/b[i] (both flavours' epochs of round i ran back to back)."""
    from _benchutil import median

    return median([x / y for x, y in zip(a, b) if y > 0])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.omp_wait_policy != "keep":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    # aihwkit's simulator runs on its own OpenMP runtime and OpenBLAS, which torch.set_num_threads does
    # not reach: the environment gives every flavour the same number of threads
    for var in THREAD_VARS:
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(ROOT))
    import torch  # after OMP_WAIT_POLICY: libgomp reads it when torch loads it
    from _benchutil import machine_info, median, write_json

    torch.set_num_threads(args.threads)
    meta = machine_info(torch)
    print(f"{meta['cpu_model']}, {meta['cpu_count']} cores, torch {meta['torch']}, aihwkit {meta['aihwkit']}, "
          f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={meta['omp_wait_policy']}")
    trainers, skipped = build_trainers(args)
    if not trainers:
        print("no flavour could be built", file=sys.stderr)
        return 1
    n_batches = {f: t.n_batches() for f, t in trainers.items()}
    epochs: dict[str, list[dict[str, float]]] = {f: [] for f in trainers}
    for rnd in range(args.warmup + args.epochs):
        timed = rnd >= args.warmup
        line = []
        for flavour, trainer in trainers.items():  # interleaved: a, b, c, d, a, b, c, d, ...
            r = run_epoch(trainer, rnd)
            if timed:
                epochs[flavour].append(r)
            line.append(f"{flavour} {r['wall_s']:.3f}s")
        print(f"{'epoch' if timed else 'warm-up'} {rnd + 1}: " + "  ".join(line), flush=True)

    wall = {f: [e["wall_s"] for e in es] for f, es in epochs.items()}
    cpu = {f: [e["cpu_s"] for e in es] for f, es in epochs.items()}
    results: dict[str, Any] = {}
    for f, es in epochs.items():
        results[f] = {
            "label": LABELS[f],
            "wall_s_per_epoch_median": median(wall[f]),
            "wall_s_per_epoch_min": min(wall[f]),
            "cpu_s_per_epoch_median": median(cpu[f]),
            "wall_s_per_epoch": wall[f],
            "cpu_s_per_epoch": cpu[f],
            "train_nll_per_epoch": [e["train_nll"] for e in es],
            "pulses_set_per_epoch": [e["pulses_set"] for e in es] if f.startswith("pcm") else None,
            "batches_per_epoch": n_batches[f],
        }
        for ref in ("fp32", "fp32-plain", "aihwkit-mp"):
            if ref in epochs:
                results[f][f"ratio_to_{ref.replace('-', '_')}"] = paired_ratio(wall[f], wall[ref])
                results[f][f"ratio_of_medians_to_{ref.replace('-', '_')}"] = median(wall[f]) / median(wall[ref])
                results[f][f"cpu_ratio_to_{ref.replace('-', '_')}"] = paired_ratio(cpu[f], cpu[ref])
    # the overhead ratio: (HIL − FP32) / (aihwkit-MP − FP32), per round, fused loops
    if {"fp32", "pcm", "aihwkit-mp"} <= set(epochs):
        overheads = [(p - f) / (a - f) for p, f, a in zip(wall["pcm"], wall["fp32"], wall["aihwkit-mp"]) if a > f]
        results["pcm"]["overhead_ratio_to_aihwkit_mp"] = median(overheads) if overheads else None
    meta["loadavg_end"] = list(os.getloadavg())

    print()
    header = (f"{'flavour':34s} {'s/epoch':>8s} {'min':>7s} {'CPU s':>7s} {'× FP32':>7s} {'× aihwkit-MP':>12s} "
              f"{'train NLL':>9s}")
    print(header)
    print("-" * len(header))
    for r in results.values():
        x_fp = r.get("ratio_to_fp32", float("nan"))
        x_mp = r.get("ratio_to_aihwkit_mp", float("nan"))
        print(f"{r['label']:34s} {r['wall_s_per_epoch_median']:8.3f} {r['wall_s_per_epoch_min']:7.3f} "
              f"{r['cpu_s_per_epoch_median']:7.3f} {x_fp:7.2f} {x_mp:12.2f} {r['train_nll_per_epoch'][-1]:9.3f}")
    print(f"(median of {args.epochs} interleaved epochs after {args.warmup} warm-up; ratios: median of per-round "
          f"ratios; {next(iter(n_batches.values()))} batches of {args.batch_size}; load average "
          f"{meta['loadavg_start'][0]:.2f} → {meta['loadavg_end'][0]:.2f} on {meta['cpu_count']} cores)")
    if results.get("pcm", {}).get("overhead_ratio_to_aihwkit_mp") is not None:
        print(f"HIL overhead over FP32 / aihwkit-MP overhead over FP32: "
              f"{results['pcm']['overhead_ratio_to_aihwkit_mp']:.2f} (median of rounds)")
    config = {"epochs": args.epochs, "warmup": args.warmup, "device": args.device, "batch_size": args.batch_size,
              "threads": args.threads,
              "seed": args.seed, "max_train_sequences": args.max_train_sequences,
              "omp_wait_policy": args.omp_wait_policy, "experiment": "jsb-52800", "aihwkit_lr": args.aihwkit_lr,
              "thread_env": {v: os.environ.get(v) for v in THREAD_VARS},
              "command": "python bench/epoch.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    write_json(Path(args.out), {"meta": meta, "config": config, "results": results, "skipped": skipped})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
