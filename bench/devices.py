"""Throughput of the device models: SET pulses, program-and-verify and reads on N devices.

    python bench/devices.py [--sizes 1e6,1e7] [--models pcm-nandakumar2018] [--pulses 100]
                            [--threads 2] [--out bench/results/devices.json]

For every model and population size N it times, on the CPU (or ``--device``):

- ``set_pulse``: ``--pulses`` SET pulses with an all-true mask (device-pulses/s);
- ``set_pulses``: random pulse counts uniform in [0, ``--pulses``] (applied device-pulses/s);
- ``program``: program-and-verify to random targets in [0.05, 0.9]·g_max (devices/s, mean pulses);
- ``read``: one read (drift + read noise) one day after programming (device-reads/s);

and reports the state's bytes per device and the process's peak resident memory. Prints a table
and writes the results as JSON (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

import device_models  # noqa: E402


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(name: str, n: int, *, pulses: int, device: torch.device, seed: int) -> dict:
    model = device_models.get(name)
    gen = torch.Generator(device=device).manual_seed(seed)
    state = model.init_state((n,), device=device, generator=gen)
    mask = torch.ones(n, dtype=torch.bool, device=device)
    out: dict = {"model": name, "n_devices": n, "bytes_per_device": state.bytes_per_device}

    model.set_pulse(state, mask, 0.0, gen)  # warm-up (allocates the scratch buffers)
    model.reset(state, mask, 0.0, gen)
    _sync(device)
    t0 = time.perf_counter()
    for k in range(pulses):
        model.set_pulse(state, mask, float(k), gen)
    _sync(device)
    dt = time.perf_counter() - t0
    out["set_pulse"] = {"pulses": pulses, "seconds": dt, "device_pulses_per_s": n * pulses / dt}

    model.reset(state, mask, 0.0, gen)
    counts = torch.randint(0, pulses + 1, (n,), generator=gen, device=device)
    applied = int(counts.sum())
    _sync(device)
    t0 = time.perf_counter()
    model.set_pulses(state, counts, 1.0, gen)
    _sync(device)
    dt = time.perf_counter() - t0
    out["set_pulses"] = {"max_pulses": pulses, "applied_pulses": applied, "seconds": dt,
                         "device_pulses_per_s": applied / dt}

    target = (0.05 + 0.85 * torch.rand(n, generator=gen, device=device)) * model.g_max_us
    _sync(device)
    t0 = time.perf_counter()
    rep = model.program(state, target, 2.0, gen)
    _sync(device)
    dt = time.perf_counter() - t0
    out["program"] = {"seconds": dt, "devices_per_s": n / dt, "mean_pulses": float(rep.pulses.float().mean()),
                      "converged": float(rep.converged.float().mean()),
                      "device_pulses_per_s": float(rep.pulses.double().sum()) / dt}

    _sync(device)
    t0 = time.perf_counter()
    r = model.read(state, 2.0 + 86400.0, gen)
    _sync(device)
    dt = time.perf_counter() - t0
    del r
    out["read"] = {"seconds": dt, "device_reads_per_s": n / dt}
    out["peak_rss_mib"] = _peak_rss_mib()
    return out


def _print_row(r: dict) -> None:
    print(f"{r['model']:24s} {r['threads']:3d} {r['n_devices']:10.3g} {r['bytes_per_device']:5d} "
          f"{r['set_pulse']['device_pulses_per_s']:13.3e} {r['set_pulses']['device_pulses_per_s']:14.3e} "
          f"{r['program']['devices_per_s']:11.3e} {r['program']['mean_pulses']:11.2f} "
          f"{r['read']['device_reads_per_s']:10.3e} {r['peak_rss_mib']:8.0f}", flush=True)


def _write_json(path: Path, data: dict) -> None:
    """Write the results atomically (the project's own writer)."""
    from hardware_in_loop.checkpoint import write_json

    write_json(path, data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1e6,1e7", help="comma-separated population sizes (e.g. 1e6,1e7)")
    ap.add_argument("--models", default="pcm-nandakumar2018", help="comma-separated registered model names")
    ap.add_argument("--pulses", type=int, default=100, help="SET pulses per device (default 100)")
    ap.add_argument("--threads", default="2",
                    help="torch intra-op threads; a comma-separated list runs each (default 2; e.g. 1,2)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/devices.json", help="JSON output file")
    args = ap.parse_args(argv)

    try:
        sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes {args.sizes!r}: expected comma-separated numbers such as 1e6,1e7")
    try:
        thread_counts = [int(s) for s in args.threads.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--threads {args.threads!r}: expected comma-separated integers such as 1,2")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    device = torch.device(args.device)
    load_start = os.getloadavg()
    results = []
    header = (f"{'model':24s} {'thr':>3s} {'N':>10s} {'B/dev':>5s} {'SET/s (full)':>13s} {'SET/s (counts)':>14s} "
              f"{'prog dev/s':>11s} {'prog pulses':>11s} {'read/s':>10s} {'RSS MiB':>8s}")
    print(header)
    print("-" * len(header))
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for name in models:
            for n in sizes:
                r = bench_model(name, n, pulses=args.pulses, device=device, seed=args.seed)
                r["threads"] = threads
                r["loadavg_1min"] = os.getloadavg()[0]
                results.append(r)
                _print_row(r)
    meta = {"torch": torch.__version__, "threads": thread_counts, "device": str(device),
            "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "pulses": args.pulses, "loadavg_1min_start": load_start[0], "loadavg_1min_end": os.getloadavg()[0]}
    _write_json(Path(args.out), {"meta": meta, "results": results})
    print(f"load average (1 min) {load_start[0]:.2f} at start, {meta['loadavg_1min_end']:.2f} at end "
          f"(other processes on {os.cpu_count()} cores share the machine)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
